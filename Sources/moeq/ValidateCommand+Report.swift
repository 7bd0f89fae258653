// `moeq validate` output: the report as text or JSON (one printer for a run and for merged parts), and `--merge`.
import ArgumentParser
import Foundation
import ReferenceEngine
import TensorFormats

extension ValidateCommand {
    /// Weight bytes read by each model's pass (the last step of each), for the summary.
    final class ReadTotals {
        var bytes: [String: Int] = [:], seconds: [String: Double] = [:]
        var total: Int { bytes.values.reduce(0, +) }
        /// Bytes over the seconds of the passes that read them.
        var rate: Double {
            let time = seconds.values.reduce(0, +)
            return time > 0 ? Double(total) / time : 0
        }
    }

    /// Per layer of each model's pass: `--events` JSON lines, or a progress line with ETA on a terminal.
    func progress(tokens: Int, models: Int, stream: EventStream, totals: ReadTotals) -> (String, LayerMajor.Step) -> Void {
        let started = Date()
        let showProgress = isatty(2) != 0 && !json && !events
        var done = 0
        return { model, step in
            done += 1
            totals.bytes[model] = step.bytesRead
            totals.seconds[model] = step.seconds
            let total = models * step.layers, elapsed = Date().timeIntervalSince(started)
            // Forward-pass tokens per second: each model's pass moves every token through every layer.
            let rate = elapsed > 0 ? Double(tokens) * Double(done) / Double(step.layers) / elapsed : 0
            let eta = done > 0 ? elapsed / Double(done) * Double(total - done) : 0
            let readRate = step.seconds > 0 ? Double(step.bytesRead) / step.seconds : 0
            stream.emit(
                "layer",
                [
                    "model": .string(model), "layer": .integer(Int64(step.layer + 1)), "layers": .integer(Int64(step.layers)),
                    "tokens": .integer(Int64(tokens)), "tokens_per_second": .double(rate), "eta_seconds": .double(eta),
                    "spilled_bytes": .integer(Int64(step.spilledBytes)), "bytes_read": .integer(Int64(step.bytesRead)),
                    "read_bytes_per_second": .double(readRate), "peak_rss_bytes": .integer(Int64(peakResidentBytes())),
                ])
            if showProgress {
                FileHandle.standardError.write(
                    Data(
                        String(
                            format: "\r%@ layer %d/%d  %.0f tok/s  %.2f GB/s read  ETA %.0f s ", model, step.layer + 1, step.layers, rate,
                            readRate / 1e9, eta
                        ).utf8))
            }
        }
    }

    func finishProgress(_ stream: EventStream, totals: ReadTotals) {
        if isatty(2) != 0 && !json && !events { FileHandle.standardError.write(Data("\n".utf8)) }
        stream.emit(
            "summary",
            [
                "seconds": .double(Date().timeIntervalSince(stream.started)), "peak_rss_bytes": .integer(Int64(peakResidentBytes())),
                "bytes_read": .integer(Int64(totals.total)), "read_bytes_per_second": .double(totals.rate),
                "resources": ResourceUsage.shared.object,
            ])
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
        ctx: Int? = nil, arithmeticName: String? = nil, reads: ReadTotals? = nil
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
                "resources": ResourceUsage.shared.object,
                "bytes_read": reads.map { .integer(Int64($0.total)) } ?? .null,
                "read_bytes_per_second": reads.map { .double($0.rate) } ?? .null,
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
        if let reads, reads.total > 0 {
            print(
                String(
                    format: "weights read: %@ bytes in %.2f s of layer-major passes (%.3f GB/s); peak RSS %@ bytes", grouped(reads.total),
                    reads.seconds.values.reduce(0, +), reads.rate / 1e9, grouped(peakResidentBytes())))
        }
        if let packed = expertPack {
            print(
                String(
                    format: "expert pack: cache of %d experts, %d hits / %d loads, hit rate %.1f %%", packed.capacity, packed.hits,
                    packed.hits + packed.misses, 100 * packed.hitRate))
        }
        if !report.tensors.isEmpty {
            print("\nworst tensors:")
            var table = TextTable([
                .init("tensor"), .init("relative RMSE", .right), .init("max |error|", .right), .init("cosine", .right),
            ])
            for tensor in report.tensors.prefix(10) {
                table.add(
                    tensor.name, String(format: "%.5f", tensor.relativeRMSE), String(format: "%.5f", tensor.metrics.maxAbsoluteError),
                    String(format: "%.6f", tensor.metrics.cosineSimilarity))
            }
            table.print()
        }
    }
}
