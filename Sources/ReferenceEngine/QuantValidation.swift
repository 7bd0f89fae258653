// `moeq validate`: a quantized model against its base, llama-perplexity style — chunks of `ctx` tokens, the
// second half of each scored — with perplexities, their ratio and ΔPPL with 95 % intervals, KL divergence,
// top-1 agreement, RMS Δp, and the per-tensor weight error table.
import Foundation
import ModelCatalog
import QuantKernels

public struct QuantValidationReport: Sendable {
    public struct TensorError: Sendable {
        public let name: String
        public let metrics: ErrorMetrics
        /// RMSE divided by the base weight's RMS.
        public let relativeRMSE: Double
    }

    public var chunks = 0, positions = 0
    public var basePerplexity = 0.0, quantPerplexity = 0.0
    /// PPL(Q)/PPL(base) = exp(mean Δ NLL) and its 95 % interval.
    public var ratio = 1.0, ratioLow = 1.0, ratioHigh = 1.0
    /// PPL(Q) − PPL(base) and its 95 % interval (PPL(base) taken as fixed).
    public var deltaPerplexity = 0.0, deltaLow = 0.0, deltaHigh = 0.0
    public var meanKLD = 0.0, p99KLD = 0.0, maxKLD = 0.0
    public var top1Agreement = 0.0
    public var rmsDeltaP = 0.0
    public var tensors: [TensorError] = []
}

public enum QuantValidation {
    public static func run(quant: WeightProvider, base: WeightProvider, configDirectory: String, tokens: [Int],
                           context: Int, maxChunks: Int?, beginningOfSequence: Int? = nil) throws -> QuantValidationReport {
        var report = QuantValidationReport()
        let vocabulary = base.spec.vocabularySize
        var baseNLL: [Double] = [], quantNLL: [Double] = [], klds: [Double] = [], deltaP: [Double] = []
        var agree = 0
        var chunk = 0
        while (chunk + 1) * context <= tokens.count && chunk < (maxChunks ?? Int.max) {
            var window = Array(tokens[(chunk * context)..<((chunk + 1) * context)])
            if let beginningOfSequence { window[0] = beginningOfSequence }
            let b = try ReferenceModel.logits(weights: base, configDirectory: configDirectory, tokens: window)
            let q = try ReferenceModel.logits(weights: quant, configDirectory: configDirectory, tokens: window)
            for t in (context / 2)..<(context - 1) {
                let lb = logSoftmax(b[(t * vocabulary)..<((t + 1) * vocabulary)])
                let lq = logSoftmax(q[(t * vocabulary)..<((t + 1) * vocabulary)])
                let next = window[t + 1]
                baseNLL.append(-lb[next]); quantNLL.append(-lq[next])
                var kld = 0.0
                for i in 0..<vocabulary { kld += exp(lb[i]) * (lb[i] - lq[i]) }
                klds.append(max(kld, 0))
                if argmax(lb) == argmax(lq) { agree += 1 }
                deltaP.append(exp(lq[next]) - exp(lb[next]))
            }
            chunk += 1
        }
        let n = baseNLL.count
        report.chunks = chunk
        report.positions = n
        guard n > 1 else { return report }
        let meanBase = baseNLL.reduce(0, +) / Double(n), meanQuant = quantNLL.reduce(0, +) / Double(n)
        report.basePerplexity = exp(meanBase)
        report.quantPerplexity = exp(meanQuant)
        let differences = zip(quantNLL, baseNLL).map { $0 - $1 }
        let meanDifference = differences.reduce(0, +) / Double(n)
        let variance = differences.reduce(0) { $0 + ($1 - meanDifference) * ($1 - meanDifference) } / Double(n - 1)
        let halfWidth = 1.96 * (variance / Double(n)).squareRoot()
        report.ratio = exp(meanDifference)
        report.ratioLow = exp(meanDifference - halfWidth)
        report.ratioHigh = exp(meanDifference + halfWidth)
        report.deltaPerplexity = report.quantPerplexity - report.basePerplexity
        report.deltaLow = report.basePerplexity * (report.ratioLow - 1)
        report.deltaHigh = report.basePerplexity * (report.ratioHigh - 1)
        let sorted = klds.sorted()
        report.meanKLD = klds.reduce(0, +) / Double(n)
        report.p99KLD = sorted[min(n - 1, Int(Double(n) * 0.99))]
        report.maxKLD = sorted.last ?? 0
        report.top1Agreement = Double(agree) / Double(n)
        report.rmsDeltaP = (deltaP.reduce(0) { $0 + $1 * $1 } / Double(n)).squareRoot()
        return report
    }

    /// Weight error of every quantized weight against the base, worst first.
    public static func tensorErrors(quant: GGUFWeights, base: WeightProvider) throws -> [QuantValidationReport.TensorError] {
        var errors: [QuantValidationReport.TensorError] = []
        for name in quant.names where base.has(name) {
            let reference = try base.weight(name), approximation = try quant.weight(name)
            let metrics = ErrorMetrics(reference: reference, approximation: approximation, width: reference.count)
            let rms = (reference.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(reference.count, 1))).squareRoot()
            errors.append(.init(name: name, metrics: metrics, relativeRMSE: rms > 0 ? metrics.rmse / rms : 0))
        }
        return errors.sorted { $0.relativeRMSE > $1.relativeRMSE }
    }

    static func logSoftmax(_ row: ArraySlice<Float>) -> [Double] {
        let maximum = Double(row.max() ?? 0)
        let logSum = log(row.reduce(0.0) { $0 + exp(Double($1) - maximum) }) + maximum
        return row.map { Double($0) - logSum }
    }

    static func argmax(_ values: [Double]) -> Int { values.indices.max { values[$0] < values[$1] } ?? 0 }
}
