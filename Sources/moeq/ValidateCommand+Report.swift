// `moeq validate` output: the report as text or JSON (one printer for a run and for merged parts), and `--merge`.
import ArgumentParser
import Foundation
import ReferenceEngine
import TensorFormats

extension ValidateCommand {
    /// Per layer of each model's pass: `--events` JSON lines, or a progress line with ETA on a terminal.
    func progress(tokens: Int, models: Int, stream: EventStream) -> (String, Int, Int, Int) -> Void {
        let started = Date()
        let showProgress = isatty(2) != 0 && !json && !events
        var done = 0
        return { model, layer, layers, spilled in
            done += 1
            let total = models * layers, elapsed = Date().timeIntervalSince(started)
            // Forward-pass tokens per second: each model's pass moves every token through every layer.
            let rate = elapsed > 0 ? Double(tokens) * Double(done) / Double(layers) / elapsed : 0
            let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
            stream.emit(
                "layer",
                [
                    "model": .string(model), "layer": .integer(Int64(layer + 1)), "layers": .integer(Int64(layers)),
                    "tokens": .integer(Int64(tokens)), "tokens_per_second": .double(rate), "eta_seconds": .double(eta),
                    "spilled_bytes": .integer(Int64(spilled)), "peak_rss_bytes": .integer(Int64(peakResidentBytes())),
                ])
            if showProgress {
                FileHandle.standardError.write(
                    Data(
                        String(
                            format: "\r%@ layer %d/%d  %.0f tok/s  ETA %.0f s ", model, layer + 1, layers, rate, eta
                        ).utf8))
            }
        }
    }

    func finishProgress(_ stream: EventStream) {
        if isatty(2) != 0 && !json && !events { FileHandle.standardError.write(Data("\n".utf8)) }
        stream.emit(
            "summary",
            ["seconds": .double(Date().timeIntervalSince(stream.started)), "peak_rss_bytes": .integer(Int64(peakResidentBytes()))])
    }

    /// `--merge PART…`: the parts' scores concatenated in chunk order give the single-machine report.
    func runMerge() throws {
        let parts = try merge.map { (path: $0, part: try ValidationPart.read(path: $0)) }
        let scores = try ValidationPart.merge(parts)
        let report = try QuantValidation.report(scores)
        let first = parts[0].part
        if !json { print("merged \(parts.count) parts (shards 1…\(first.shards) of \(first.shards))") }
        printReport(report, baseLogits: (.null, nil), expertPack: nil, ctx: first.ctx, arithmeticName: first.arithmetic)
    }

    func printReport(
        _ report: QuantValidationReport, baseLogits: (json: JSONValue, line: String?), expertPack: ExpertPackWeights?,
        ctx: Int? = nil, arithmeticName: String? = nil
    ) {
        let ctx = ctx ?? self.ctx
        let arithmeticName = arithmeticName ?? arithmetic.rawValue
        if json {
            let document: JSONValue = [
                "arithmetic": .string(arithmeticName), "chunks": .integer(Int64(report.chunks)),
                "positions": .integer(Int64(report.positions)), "ctx": .integer(Int64(ctx)),
                "ppl_base": .double(report.basePerplexity), "ppl_quant": .double(report.quantPerplexity),
                "ppl_ratio": ["value": .double(report.ratio), "ci95": [.double(report.ratioLow), .double(report.ratioHigh)]],
                "delta_ppl": [
                    "value": .double(report.deltaPerplexity), "ci95": [.double(report.deltaLow), .double(report.deltaHigh)],
                ],
                "kld": [
                    "mean": .double(report.meanKLD), "median": .double(report.kldPercentiles.first?.value ?? 0),
                    "p90": .double(report.kldPercentiles.count > 1 ? report.kldPercentiles[1].value : 0),
                    "p95": .double(report.kldPercentiles.count > 2 ? report.kldPercentiles[2].value : 0),
                    "p99": .double(report.p99KLD), "p99.9": .double(report.kldPercentiles.last?.value ?? 0),
                    "max": .double(report.maxKLD),
                ],
                "top1_agreement": .double(report.top1Agreement), "rms_delta_p": .double(report.rmsDeltaP),
                "base_logits": baseLogits.json, "peak_rss_bytes": .integer(Int64(peakResidentBytes())),
                "hidden_state_memory_bytes": .integer(Int64(memory?.bytes ?? LayerMajor.defaultBudget)),
                "tensors": .array(
                    report.tensors.map {
                        [
                            "name": .string($0.name), "relative_rmse": .double($0.relativeRMSE),
                            "max_abs_error": .double($0.metrics.maxAbsoluteError), "cosine": .double($0.metrics.cosineSimilarity),
                        ]
                    }),
            ]
            print(document.prettyPrinted(), terminator: "")
            return
        }
        print(
            """
            \(report.chunks) chunks × \(ctx) tokens, \(report.positions) positions scored \
            (\(arithmeticName == "exact" ? "exact f32 arithmetic" : "llama.cpp CPU arithmetic"))
            """
        )
        print(
            String(
                format: "PPL base %.4f  quant %.4f  ratio %.5f [%.5f, %.5f]  ΔPPL %+.4f [%+.4f, %+.4f]",
                report.basePerplexity, report.quantPerplexity, report.ratio, report.ratioLow, report.ratioHigh,
                report.deltaPerplexity, report.deltaLow, report.deltaHigh))
        print(
            String(
                format: "KLD mean %.6f  p99 %.6f  max %.6f   top-1 agreement %.2f %%   RMS Δp %.4f",
                report.meanKLD, report.p99KLD, report.maxKLD, 100 * report.top1Agreement, report.rmsDeltaP))
        if let line = baseLogits.line { print(line) }
        if let packed = expertPack {
            print(
                String(
                    format: "expert pack: cache of %d experts, %d hits / %d loads, hit rate %.1f %%", packed.capacity, packed.hits,
                    packed.hits + packed.misses, 100 * packed.hitRate))
        }
        if !report.tensors.isEmpty {
            print("\nworst tensors (relative RMSE, max |error|, cosine):")
            for tensor in report.tensors.prefix(10) {
                print(
                    String(
                        format: "  %-56@ %.5f  %.5f  %.6f", tensor.name, tensor.relativeRMSE, tensor.metrics.maxAbsoluteError,
                        tensor.metrics.cosineSimilarity))
            }
        }
    }
}
