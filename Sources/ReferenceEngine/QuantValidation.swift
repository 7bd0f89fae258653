// `moeq validate`: a quantized model against its base, llama-perplexity style — chunks of `ctx` tokens, the
// second half of each scored — with perplexities, their ratio and ΔPPL with 95 % intervals, KL divergence,
// top-1 agreement, RMS Δp, and the per-tensor weight error table.
import CRowGEMM
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

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
    /// KLD percentiles as llama-perplexity prints them (0.5 = median), same nearest-rank rule.
    public var kldPercentiles: [(fraction: Double, value: Double)] = []
    public var top1Agreement = 0.0
    public var rmsDeltaP = 0.0
    public var tensors: [TensorError] = []
    /// True when the base distributions came from a base-logits record (KLD then from its top-k + tail form).
    public var kldFromRecord = false
    /// When a record was written in this run: the mean KLD its top-k + tail form gives, beside the exact meanKLD.
    public var recordMeanKLD: Double?
}

public enum QuantValidation {
    /// Where the base distributions come from: the base model itself, or a compact record of an earlier run.
    public enum BaseSource {
        case model(WeightProvider)
        case record(BaseLogitRecord)
    }

    /// llama-perplexity's windows: consecutive chunks of `context` tokens, the first token of each replaced by BOS.
    public static func windows(tokens: [Int], context: Int, maxChunks: Int?, beginningOfSequence: Int?) -> [[Int]] {
        var windows: [[Int]] = []
        while (windows.count + 1) * context <= tokens.count && windows.count < (maxChunks ?? Int.max) {
            var window = Array(tokens[(windows.count * context)..<((windows.count + 1) * context)])
            if let beginningOfSequence { window[0] = beginningOfSequence }
            windows.append(window)
        }
        return windows
    }

    /// XXH3-64 of the windows' ids as int32 LE: what a base-logits record must have been made from.
    public static func windowsHash(_ windows: [[Int]]) -> UInt64 {
        let hasher = ContentHasher()
        for window in windows {
            let words = window.map { Int32(truncatingIfNeeded: $0).littleEndian }
            words.withUnsafeBytes { hasher.update($0) }
        }
        return hasher.digest
    }

    /// Perplexity of one model on `windows` (second half of each scored), and the number of scored positions.
    public static func perplexity(
        model: WeightProvider, configDirectory: String, windows: [[Int]]
    ) throws -> (perplexity: Double, positions: Int) {
        let vocabulary = model.spec.vocabularySize
        guard !windows.isEmpty, windows.allSatisfy({ $0.count >= 2 }) else {
            throw EngineError.noWork(
                "no window of at least 2 tokens (the text is shorter than one window of --ctx tokens, or --chunks is 0)")
        }
        var total = 0.0, count = 0
        for window in windows {
            let logits = try ReferenceModel.logits(weights: model, tokens: window)
            for t in (window.count / 2)..<(window.count - 1) {
                total -= logSoftmax(logits[(t * vocabulary)..<((t + 1) * vocabulary)])[window[t + 1]]
                count += 1
            }
        }
        return (exp(total / Double(max(count, 1))), count)
    }

    /// Per scored position, in window order: what a report is computed from. Parts of a sharded run concatenate in
    /// chunk order into exactly the single run's scores.
    public struct Scores: Sendable, Equatable {
        public var chunks = 0
        public var baseNLL: [Double] = [], quantNLL: [Double] = [], kld: [Double] = [], deltaP: [Double] = []
        /// Whether base and quant agree on the most likely next token.
        public var agree: [Bool] = []
        /// True when the base distributions came from a base-logits record.
        public var kldFromRecord = false
        public init() {}
        public var positions: Int { baseNLL.count }

        public mutating func append(_ other: Scores) {
            chunks += other.chunks
            baseNLL += other.baseNLL; quantNLL += other.quantNLL; kld += other.kld; deltaP += other.deltaP
            agree += other.agree
        }
    }

    /// Scores `windows` (second half of each). With `recordTopK` (and a model as base) the base distributions are
    /// also returned as a compact record, and the report says what the record's top-k + tail KLD would have been.
    public static func run(
        quant: WeightProvider, base: BaseSource, configDirectory: String, windows: [[Int]],
        recordTopK: Int? = nil, memory: Int = LayerMajor.defaultBudget,
        progress: ((_ model: String, _ step: LayerMajor.Step) -> Void)? = nil
    ) throws -> (report: QuantValidationReport, record: BaseLogitRecord?) {
        var record = recordTopK.map {
            BaseLogitRecord(
                vocabulary: quant.spec.vocabularySize, context: windows.first?.count ?? 0, topK: $0, windowsHash: windowsHash(windows))
        }
        var approximateSum = 0.0
        let seen: (([Double], Int, [Double]) -> Void)? =
            record == nil
            ? nil
            : { distribution, target, quantDistribution in
                record!.append(distribution, target: target)
                approximateSum += record!.divergence(record!.positions - 1, quant: quantDistribution)
            }
        let scores = try score(quant: quant, base: base, windows: windows, memory: memory, progress: progress, baseSeen: seen)
        record?.chunks = windows.count
        var report = try self.report(scores)
        if record != nil {
            let n = Double(scores.positions)
            report.recordMeanKLD = approximateSum / n
            record!.approximation = [
                "measured_on": .string(configDirectory), "top_k": .integer(Int64(recordTopK ?? 0)),
                "kld_full_vocabulary": .double(report.meanKLD), "kld_top_k_plus_tail": .double(approximateSum / n),
            ]
        }
        return (report, record)
    }

    /// The per-position scores of `windows` (with a base-logits record, `recordOffset` is the record position of the
    /// first window's first scored token: windows k… of a shard); `baseSeen` receives each base distribution (log-probabilities), the
    /// next token and the quant's distribution, when the base is a model. Without `baseSeen` the windows are scored
    /// on all cores (as many windows' logits at a time as there are threads); the scores keep window order either way.
    public static func score(
        quant: WeightProvider, base: BaseSource, windows: [[Int]], recordOffset: Int = 0, memory: Int = LayerMajor.defaultBudget,
        progress: ((_ model: String, _ step: LayerMajor.Step) -> Void)? = nil,
        baseSeen: (([Double], Int, [Double]) -> Void)? = nil, largeHeadBytes: Int = LayerMajor.largeWeightBytes
    ) throws -> Scores {
        guard !windows.isEmpty, windows.allSatisfy({ $0.count >= 4 }) else {
            throw EngineError.noWork(
                "no window of at least 4 tokens to score (the text is shorter than one window of --ctx tokens, or --chunks is 0)")
        }
        var scores = Scores()
        if case .record = base { scores.kldFromRecord = true }
        // Layer-major: all windows advance one layer at a time through each model (each layer's weights decoded once per
        // pass), then each window's logits are taken from its final hidden states and scored.
        let quantEngine = try ReferenceModel.engine(weights: quant)
        // The two models' states share the budget.
        // Read ahead during each pass's last layer: the base's first layer, then both heads (scored after both passes).
        var baseModel: WeightProvider?
        if case .model(let model) = base { baseModel = model }
        let heads = quant.regions(layer: nil) + (baseModel?.regions(layer: nil) ?? [])
        let quantStates = try LayerMajor.hiddenStates(
            quantEngine, windows: windows, budget: memory / 2, progress: progress.map { report in { report("quant", $0) } },
            next: baseModel.map { $0.regions(layer: 0) } ?? heads)
        var baseEngine: LayerForward?, baseStates: HiddenStates?
        if let model = baseModel {
            let engine = try ReferenceModel.engine(weights: model)
            baseStates = try LayerMajor.hiddenStates(
                engine, windows: windows, budget: memory / 2, progress: progress.map { report in { report("base", $0) } },
                next: heads)
            baseEngine = engine
        }
        // Positions scored before each window (a record's positions are numbered across windows).
        var firstPosition: [Int] = [], positions = recordOffset
        for window in windows {
            firstPosition.append(positions)
            positions += window.count - 1 - window.count / 2
        }
        let h = quant.spec.hiddenSize
        // Logits only where they are scored (positions n/2 … n−2, as llama-perplexity asks for them).
        func scored(_ w: Int) -> Range<Int> {
            let n = windows[w].count
            return (n / 2)..<(n - 1)
        }
        func rows(_ hidden: [Float], _ w: Int) -> ArraySlice<Float> { hidden[(scored(w).lowerBound * h)..<(scored(w).upperBound * h)] }
        if baseSeen == nil, 4 * h * quant.spec.vocabularySize > largeHeadBytes {
            // A head too large to keep decoded (`largeHeadBytes` in f32) is decoded a slice at a time for every call: the
            // windows of a group share one call, so it is decoded once per group rather than once per window (as many
            // windows as a quarter of `memory`, at least `largeHeadBytes`, holds in logits). The products are row-exact,
            // so grouping changes no number.
            let perRow = 4 * quant.spec.vocabularySize * (baseEngine == nil ? 1 : 2)
            let capacity = max(memory / 4, largeHeadBytes) / perRow
            var start = 0
            while start < windows.count {
                var end = start, count = 0
                while end < windows.count, end == start || count + scored(end).count <= capacity {
                    count += scored(end).count
                    end += 1
                }
                var xq: [Float] = [], xb: [Float] = []
                for w in start..<end {
                    xq += rows(try quantStates.read(w), w)
                    if let baseStates { xb += rows(try baseStates.read(w), w) }
                }
                let q = try quantEngine.head(xq, tokens: count)
                let b = try baseEngine.map { try $0.head(xb, tokens: count) } ?? []
                let vocabulary = quant.spec.vocabularySize
                var offsets: [Int] = [], row = 0
                for w in start..<end {
                    offsets.append(row)
                    row += scored(w).count
                }
                var results = [Result<Scores, Error>](repeating: .success(Scores()), count: end - start)
                results.withUnsafeMutableBufferPointer { slots in
                    Parallel.forEach(end - start) { i in
                        let w = start + i, span = (offsets[i] * vocabulary)..<((offsets[i] + scored(w).count) * vocabulary)
                        slots[i] = .success(
                            windowScores(
                                windows[w], quant: q[span], base: base, baseLogits: b.isEmpty ? [] : b[span],
                                firstPosition: firstPosition[w], baseSeen: nil))
                    }
                }
                for result in results { scores.append(try result.get()) }
                start = end
            }
            LayerMajor.releaseMapped(quantEngine.weights, layer: nil)
            if let baseEngine { LayerMajor.releaseMapped(baseEngine.weights, layer: nil) }
            return scores
        }
        let group = baseSeen == nil ? Parallel.threads : 1
        for start in stride(from: 0, to: windows.count, by: group) {
            let batch = Array(start..<min(start + group, windows.count))
            var inputs: [(quant: [Float], base: [Float])] = []
            for w in batch { inputs.append((try quantStates.read(w), try baseStates?.read(w) ?? [])) }
            var results = [Result<Scores, Error>](repeating: .success(Scores()), count: batch.count)
            results.withUnsafeMutableBufferPointer { slots in
                Parallel.forEach(batch.count, enabled: baseSeen == nil) { slot in
                    let w = batch[slot]
                    slots[slot] = Result {
                        let count = scored(w).count
                        let q = try quantEngine.head(Array(rows(inputs[slot].quant, w)), tokens: count)
                        let b = try baseEngine.map { try $0.head(Array(rows(inputs[slot].base, w)), tokens: count) } ?? []
                        return windowScores(
                            windows[w], quant: q[...], base: base, baseLogits: b[...], firstPosition: firstPosition[w],
                            baseSeen: baseSeen)
                    }
                }
            }
            for result in results { scores.append(try result.get()) }
        }
        LayerMajor.releaseMapped(quantEngine.weights, layer: nil)
        if let baseEngine { LayerMajor.releaseMapped(baseEngine.weights, layer: nil) }
        return scores
    }

    /// One window's scores (its second half) from its logits.
    static func windowScores(
        _ window: [Int], quant q: ArraySlice<Float>, base: BaseSource, baseLogits b: ArraySlice<Float>, firstPosition: Int,
        baseSeen: (([Double], Int, [Double]) -> Void)?
    ) -> Scores {
        var scores = Scores()
        // `q` and `b` hold the logits of the scored positions only: position t is row t − context/2.
        let context = window.count, first = context / 2, vocabulary = q.count / max(context - 1 - first, 1)
        let q0 = q.startIndex, b0 = b.startIndex
        for t in (context / 2)..<(context - 1) {
            let lq = logSoftmax(q[(q0 + (t - first) * vocabulary)..<(q0 + (t - first + 1) * vocabulary)])
            let next = window[t + 1]
            let quantTop = argmax(lq)
            switch base {
            case .model:
                let lb = logSoftmax(b[(b0 + (t - first) * vocabulary)..<(b0 + (t - first + 1) * vocabulary)])
                scores.baseNLL.append(-lb[next])
                var kld = 0.0
                for i in 0..<vocabulary { kld += exp(lb[i]) * (lb[i] - lq[i]) }
                scores.kld.append(max(kld, 0))
                scores.agree.append(argmax(lb) == quantTop)
                baseSeen?(lb, next, lq)
            case .record(let stored):
                let p = firstPosition + scores.baseNLL.count
                scores.baseNLL.append(-Double(stored.targetLogProbabilities[p]))
                scores.kld.append(stored.divergence(p, quant: lq))
                scores.agree.append(stored.argmax(p) == quantTop)
            }
            scores.quantNLL.append(-lq[next])
            scores.deltaP.append(exp(lq[next]) - exp(-scores.baseNLL[scores.baseNLL.count - 1]))
        }
        scores.chunks = 1
        return scores
    }

    /// Perplexities, the ratio's 95 % interval, KLD statistics and top-1 agreement of per-position scores.
    public static func report(_ scores: Scores) throws -> QuantValidationReport {
        var report = QuantValidationReport()
        let n = scores.positions
        report.chunks = scores.chunks
        report.positions = n
        report.kldFromRecord = scores.kldFromRecord
        guard n > 1 else { throw EngineError.noWork("\(n) scored position(s); at least 2 are needed for perplexity and its interval") }
        let meanBase = scores.baseNLL.reduce(0, +) / Double(n), meanQuant = scores.quantNLL.reduce(0, +) / Double(n)
        report.basePerplexity = exp(meanBase)
        report.quantPerplexity = exp(meanQuant)
        let differences = zip(scores.quantNLL, scores.baseNLL).map { $0 - $1 }
        let meanDifference = differences.reduce(0, +) / Double(n)
        let variance = differences.reduce(0) { $0 + ($1 - meanDifference) * ($1 - meanDifference) } / Double(n - 1)
        let halfWidth = 1.96 * (variance / Double(n)).squareRoot()
        report.ratio = exp(meanDifference)
        report.ratioLow = exp(meanDifference - halfWidth)
        report.ratioHigh = exp(meanDifference + halfWidth)
        report.deltaPerplexity = report.quantPerplexity - report.basePerplexity
        report.deltaLow = report.basePerplexity * (report.ratioLow - 1)
        report.deltaHigh = report.basePerplexity * (report.ratioHigh - 1)
        let sorted = scores.kld.sorted()
        report.meanKLD = scores.kld.reduce(0, +) / Double(n)
        report.p99KLD = sorted[min(n - 1, Int(Double(n) * 0.99))]
        report.kldPercentiles = [0.5, 0.9, 0.95, 0.99, 0.999].map { ($0, sorted[min(n - 1, Int(Double(n) * $0))]) }
        report.maxKLD = sorted.last ?? 0
        report.top1Agreement = Double(scores.agree.filter { $0 }.count) / Double(n)
        report.rmsDeltaP = (scores.deltaP.reduce(0) { $0 + $1 * $1 } / Double(n)).squareRoot()
        return report
    }

    /// Weight error of every quantized weight against the base, worst first.
    public static func tensorErrors(quant: GGUFWeights, base: WeightProvider) throws -> [QuantValidationReport.TensorError] {
        let layout = quant.spec.tensorLayout
        let roles = quant.roles.filter { base.has($0) }
        var results = [Result<QuantValidationReport.TensorError, Error>?](repeating: nil, count: roles.count)
        results.withUnsafeMutableBufferPointer { slots in
            Parallel.forEach(roles.count) { r in
                slots[r] = Result {
                    let role = roles[r]
                    let metrics = try weightError(role, quant: quant, base: base)
                    var name = layout.checkpointName(role, part: layout.storedPart(of: role)) ?? "\(role)"
                    // An expert cut from a fused checkpoint tensor (gpt-oss): its GGUF tensor and index.
                    if case let .routedExpert(l, e, p) = role, let stacked = layout.fileName(.routedExperts(layer: l, projection: p)),
                        layout.checkpointName(role, part: .weight) == nil
                    {
                        name = "\(stacked)[\(e)]"
                    }
                    return .init(name: name, metrics: metrics.metrics, relativeRMSE: metrics.relativeRMSE)
                }
            }
        }
        // Worst first; ties in name order, so the list does not depend on scheduling.
        return try results.compactMap { try $0?.get() }.sorted {
            $0.relativeRMSE > $1.relativeRMSE || ($0.relativeRMSE == $1.relativeRMSE && $0.name < $1.name)
        }
    }

    /// One weight's error; a vocabulary-sized one (embedding, head) larger than `LayerMajor.largeWeightBytes` in f32 is
    /// compared a slice of rows at a time, its sums combined.
    static func weightError(
        _ role: TensorRole, quant: GGUFWeights, base: WeightProvider
    ) throws -> (
        metrics: ErrorMetrics, relativeRMSE: Double
    ) {
        let h = quant.spec.hiddenSize, rows = quant.rowCount(role)
        let slice = rows > 1 && 4 * h * rows > LayerMajor.largeWeightBytes ? max(LayerMajor.largeWeightBytes / (4 * h), 1) : rows
        var squared = 0.0, dot = 0.0, referenceEnergy = 0.0, approximationEnergy = 0.0, maxError = 0.0, count = 0
        for start in stride(from: 0, to: rows, by: slice) {
            let range = start..<min(rows, start + slice)
            let reference = slice == rows ? try base.weight(role) : try base.weightRows(role, range)
            let approximation = slice == rows ? try quant.weight(role) : try quant.weightRows(role, range)
            for (a, b) in zip(reference, approximation) {
                let x = Double(a), y = Double(b), e = x - y
                squared += e * e
                dot += x * y
                referenceEnergy += x * x
                approximationEnergy += y * y
                maxError = max(maxError, abs(e))
            }
            count += min(reference.count, approximation.count)
        }
        var metrics = ErrorMetrics(reference: [], approximation: [], width: 1)
        metrics.count = count
        metrics.rmse = count > 0 ? (squared / Double(count)).squareRoot() : 0
        metrics.maxAbsoluteError = maxError
        let norms = (referenceEnergy * approximationEnergy).squareRoot()
        metrics.cosineSimilarity = norms > 0 ? dot / norms : (referenceEnergy == approximationEnergy ? 1 : 0)
        let rms = (referenceEnergy / Double(max(count, 1))).squareRoot()
        return (metrics, rms > 0 ? metrics.rmse / rms : 0)
    }

    /// log p over one row of logits: the shifted exponentials in f32 (every term ≤ 1, within 1 ulp of expf), summed
    /// and logged in f64 (`moeq_log_softmax`: vectorized, the same bits with or without AVX2).
    static func logSoftmax(_ row: ArraySlice<Float>) -> [Double] {
        row.withUnsafeBufferPointer { x in
            [Double](unsafeUninitializedCapacity: x.count) { out, count in
                if let source = x.baseAddress, let target = out.baseAddress { moeq_log_softmax(source, x.count, target) }
                count = x.count
            }
        }
    }

    /// The first index of the largest value.
    static func argmax(_ values: [Double]) -> Int {
        values.withUnsafeBufferPointer { v in
            var best = 0
            for i in v.indices where v[i] > v[best] { best = i }
            return best
        }
    }
}
