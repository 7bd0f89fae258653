// `moeq validate QUANT --base BASE --tokens F`: a quantized GGUF (or checkpoint) against its base model.
import ArgumentParser
import Foundation
import ReferenceEngine
import TensorFormats

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract:
            """
            Perplexity, ΔPPL with its 95 % interval, KL divergence, top-1 agreement and per-tensor error of a quantized model against \
            its base (reference engine).
            """,
        discussion:
            """
            Chunks of --ctx tokens, the second half of each scored (llama-perplexity's method). Base logits are recomputed per chunk, \
            not stored.
            """
    )

    @Argument(help: "The quantized model: a .gguf moeq or llama.cpp wrote, or a checkpoint directory.") var quant: String
    @Option(help: "The base checkpoint directory (its config.json also describes the GGUF).") var base: String
    @Option(help: "Token ids (.npy int32/int64 or whitespace-separated text).") var tokens: String?
    @Option(help: "A text file, tokenized with the base model's tokenizer.json.") var text: String?
    @Option(parsing: .unconditional, help: "Tokens per chunk.") var ctx = 128
    @Option(parsing: .unconditional, help: "At most this many chunks.") var chunks: Int?
    @Option(
        help: "Keep the base's distributions at the scored positions in FILE (top-k log-probs + the next token's, zstd) for later runs.")
    var saveBaseLogits: String?
    @Option(help: "Use a file written by --save-base-logits instead of running the base model (KLD then from its top-k + tail form).")
    var baseLogits: String?
    @Option(parsing: .unconditional, help: "Log-probabilities kept per position by --save-base-logits.") var topK = 32
    @Option(
        help:
            """
            exact: f32 matmul inputs. llama-cpu: each matmul input rounded as llama.cpp's CPU backend rounds it for the stored weight \
            type (Q8_0 blocks for Q8_0/Q4_0/Q5_0 weights, Q8_K for k-quants, F16 for F16), so the numbers predict llama-perplexity's.
            """
    ) var arithmetic: Arithmetic = .exact
    @Option(
        parsing: .unconditional, help: "Decoded experts the engine keeps when QUANT is an expert-major GGUF (OUT.gguf + OUT.expert-pack).")
    var expertCache = 8
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var outputs: OutputOptions

    enum Arithmetic: String, ExpressibleByArgument { case exact, llamaCPU = "llama-cpu" }

    func validate() throws {
        guard (4...(1 << 20)).contains(ctx) else { throw ValidationError("--ctx must be in 4…1048576") }
        if let chunks, chunks < 1 { throw ValidationError("--chunks must be at least 1") }
        guard (tokens == nil) != (text == nil) else { throw ValidationError("give exactly one of --tokens and --text") }
        guard saveBaseLogits == nil || baseLogits == nil else {
            throw ValidationError("--save-base-logits and --base-logits exclude each other")
        }
        guard (1...65_536).contains(topK) else { throw ValidationError("--top-k must be in 1…65536") }
        guard (1...1_000_000).contains(expertCache) else { throw ValidationError("--expert-cache must be in 1…1000000") }
    }

    func run() throws {
        try reportingErrors {
            if let saveBaseLogits {
                try checkOutputs(
                    [
                        .file(saveBaseLogits, companions: [saveBaseLogits + ".partial"]) {
                            OutputPolicy.starts($0, with: BaseLogitRecord.magic)
                        }
                    ],
                    inputs: [quant, base, tokens, text, baseLogits], force: outputs.force)
            }
            let baseWeights = try ReferenceModel.weights(path: base)
            warnBeyondTrainedContext(ctx, spec: baseWeights.spec, what: "--ctx")
            let windows = try llamaWindows(
                tokens: tokens, text: text, directory: base, vocabularySize: baseWeights.spec.vocabularySize, context: ctx,
                maxChunks: chunks)
            let quantWeights = try ReferenceModel.weights(
                path: quant, configDirectory: base, llamaCPUArithmetic: arithmetic == .llamaCPU, expertCache: expertCache)
            var source = QuantValidation.BaseSource.model(baseWeights)
            var stored: BaseLogitRecord?
            if let baseLogits {
                let record = try BaseLogitRecord.read(path: baseLogits)
                try record.check(windows: windows, vocabulary: baseWeights.spec.vocabularySize, path: baseLogits)
                source = .record(record)
                stored = record
            }
            var (report, record) = try QuantValidation.run(
                quant: quantWeights, base: source, configDirectory: base, windows: windows,
                recordTopK: saveBaseLogits == nil ? nil : topK)
            if let saveBaseLogits, let record { try record.write(to: saveBaseLogits) }
            if let gguf = quantWeights as? GGUFWeights { report.tensors = try QuantValidation.tensorErrors(quant: gguf, base: baseWeights) }
            let cost = costOfRecord(report: report, stored: stored, vocabulary: baseWeights.spec.vocabularySize)
            if json {
                let document: JSONValue = [
                    "arithmetic": .string(arithmetic.rawValue), "chunks": .integer(Int64(report.chunks)),
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
                    "base_logits": cost.json,
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
                (\(arithmetic == .exact ? "exact f32 arithmetic" : "llama.cpp CPU arithmetic"))
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
            if let line = cost.line { print(line) }
            if let packed = quantWeights as? ExpertPackWeights {
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

    /// What keeping the base compactly costs, for the report: measured now when a record was written, or as
    /// measured when the record being read was written.
    func costOfRecord(report: QuantValidationReport, stored: BaseLogitRecord?, vocabulary: Int) -> (json: JSONValue, line: String?) {
        if let approximate = report.recordMeanKLD, let saveBaseLogits {
            let size = (try? FileManager.default.attributesOfItem(atPath: saveBaseLogits)[.size] as? Int) ?? 0
            let full = report.positions * vocabulary * 2
            let relative = report.meanKLD > 0 ? approximate / report.meanKLD - 1 : 0
            return (
                [
                    "written": .string(saveBaseLogits), "top_k": .integer(Int64(topK)), "bytes": .integer(Int64(size)),
                    "bytes_at_2_per_vocabulary_entry": .integer(Int64(full)), "kld_top_k_plus_tail": .double(approximate),
                    "kld_relative_error": .double(relative),
                ],
                String(
                    format:
                        """
                        base logits kept in %@: %@ bytes (top %d + tail, zstd) instead of %@ at 2 bytes per vocabulary entry; KLD \
                        from it would read %.6f (%+.2f %% of the full-vocabulary %.6f)
                        """,
                    saveBaseLogits, grouped(size), topK, grouped(full), approximate, 100 * relative, report.meanKLD)
            )
        }
        if let stored, let baseLogits {
            let full = stored.approximation["kld_full_vocabulary"]?.doubleValue ?? 0,
                approx = stored.approximation["kld_top_k_plus_tail"]?.doubleValue ?? 0
            let note =
                full > 0
                ? String(
                    format: "; when it was written the top-k + tail KLD read %+.2f %% of the full-vocabulary KLD", 100 * (approx / full - 1)
                ) : ""
            return (
                ["read": .string(baseLogits), "top_k": .integer(Int64(stored.topK)), "approximation": stored.approximation],
                "base distributions from \(baseLogits) (top \(stored.topK) + tail; KLD is a lower bound of the full-vocabulary KLD\(note))"
            )
        }
        return (.null, nil)
    }
}
