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

    @Argument(help: "The quantized model: a .gguf moeq or llama.cpp wrote, or a checkpoint directory.") var quant: String?
    @Option(help: "The base checkpoint directory (its config.json also describes the GGUF).") var base: String?
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
    @Option(
        parsing: .unconditional,
        help: "Evaluate only shard k of n (1 ≤ k ≤ n): a contiguous range of the chunks, written with -o as a part file.")
    var shard: String?
    @Option(name: .shortAndLong, help: "The part file --shard writes (formats/validate-part.md).") var output: String?
    @Option(
        help:
            """
            Memory for the hidden states of all chunks, which advance one layer at a time (default a quarter of RAM); beyond \
            it they go to a scratch file in $TMPDIR. E.g. 8GiB, 500MB: \(ByteSize.units).
            """)
    var memory: ByteSize?
    @Option(
        parsing: .upToNextOption,
        help: "Merge the part files of one sharded run (every shard once) into the single-machine report; nothing else is run.")
    var merge: [String] = []
    @Flag(
        name: .customLong("no-weight-errors"),
        help: "Skip the per-tensor weight error table (it reads both models' weights once more after the passes).")
    var noWeightErrors = false
    @Flag(help: "Print JSON.") var json = false
    @Flag(help: "JSON lines on stderr: every layer of each model's layer-major pass (tokens/s, ETA, bytes spilled), then a summary.")
    var events = false
    @OptionGroup var outputs: OutputOptions

    enum Arithmetic: String, ExpressibleByArgument { case exact, llamaCPU = "llama-cpu" }

    func validate() throws {
        if !merge.isEmpty {
            guard quant == nil, base == nil, tokens == nil, text == nil, shard == nil, output == nil, saveBaseLogits == nil,
                baseLogits == nil, chunks == nil, ctx == 128, memory == nil, arithmetic == .exact, expertCache == 8, topK == 32,
                !outputs.force, !events, !noWeightErrors
            else { throw ValidationError("--merge takes part files (and --json) only: the parts already hold the run's scores") }
            return
        }
        guard quant != nil, base != nil else { throw ValidationError("give the quantized model and --base (or --merge PART…)") }
        guard (4...(1 << 20)).contains(ctx) else { throw ValidationError("--ctx must be in 4…1048576") }
        if let chunks, chunks < 1 { throw ValidationError("--chunks must be at least 1") }
        guard (tokens == nil) != (text == nil) else { throw ValidationError("give exactly one of --tokens and --text") }
        guard saveBaseLogits == nil || baseLogits == nil else {
            throw ValidationError("--save-base-logits and --base-logits exclude each other")
        }
        guard (1...65_536).contains(topK) else { throw ValidationError("--top-k must be in 1…65536") }
        guard (1...1_000_000).contains(expertCache) else { throw ValidationError("--expert-cache must be in 1…1000000") }
        guard (shard == nil) == (output == nil) else { throw ValidationError("--shard k/n and -o PART go together") }
        guard shard == nil || !json else { throw ValidationError("--shard writes a part file, not a report: --json goes with --merge") }
        if let output, output.isEmpty { throw ValidationError("-o needs a file name") }
        if shard != nil {
            _ = try shardIndex()
            guard saveBaseLogits == nil else {
                throw ValidationError(
                    "--shard does not write --save-base-logits records: save the record in one run, then give every shard --base-logits")
            }
        }
    }

    /// `--shard k/n` (1 ≤ k ≤ n, as `convert --shard`) as a 0-based shard index and the count.
    func shardIndex() throws -> (k: Int, n: Int) {
        let parts = (shard ?? "").split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, parts.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
            let k = Int(parts[0]), let n = Int(parts[1]), (1...100_000).contains(n), (1...n).contains(k)
        else {
            throw ValidationError("--shard takes k/n with 1 ≤ k ≤ n ≤ 100000, e.g. --shard 2/3 (not \"\(shard ?? "")\")")
        }
        return (k - 1, n)
    }

    func run() throws {
        try reportingErrors {
            if !merge.isEmpty { return try runMerge() }
            let stream = EventStream(enabled: events), totals = ReadTotals()
            guard let quant, let base else { return }
            if let output {
                try checkOutputs(
                    [.file(output, companions: [output + ".partial"]) { OutputPolicy.starts($0, with: ValidationPart.magic) }],
                    inputs: [quant, base, tokens, text], force: outputs.force)
            }
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
            if let output {
                let (k, n) = try shardIndex()
                let range = ValidationPart.chunks(shard: k, of: n, total: windows.count)
                guard !range.isEmpty else {
                    throw TokenInputError.empty(
                        file: text ?? tokens ?? base,
                        reason:
                            "\(windows.count) chunks of --ctx \(ctx): shard \(k + 1) of \(n) gets none "
                            + "(use at most \(windows.count) shards)"
                    )
                }
                let shardWindows = Array(windows[range])
                // A base-logits record numbers positions across all windows: this shard's start where its first window's do.
                let offset = windows[..<range.lowerBound].reduce(0) { $0 + $1.count - 1 - $1.count / 2 }
                let scores = try QuantValidation.score(
                    quant: quantWeights, base: source, windows: shardWindows, recordOffset: offset,
                    memory: memory?.bytes ?? LayerMajor.defaultBudget,
                    progress: progress(tokens: shardWindows.count * ctx, models: baseLogits == nil ? 2 : 1, stream: stream, totals: totals))
                finishProgress(stream, totals: totals)
                let part = ValidationPart(
                    shard: k, shards: n, firstChunk: range.lowerBound, totalChunks: windows.count, ctx: ctx,
                    windowsHash: QuantValidation.windowsHash(windows), arithmetic: arithmetic.rawValue,
                    quantFingerprint: try ModelFingerprint.of(quant), baseFingerprint: try ModelFingerprint.of(base), scores: scores)
                try part.write(to: output)
                print(
                    "wrote \(output): shard \(k + 1) of \(n), chunks \(range.lowerBound)…\(range.upperBound - 1) of \(windows.count), "
                        + "\(scores.positions) positions")
                return
            }
            var (report, record) = try QuantValidation.run(
                quant: quantWeights, base: source, configDirectory: base, windows: windows,
                recordTopK: saveBaseLogits == nil ? nil : topK, memory: memory?.bytes ?? LayerMajor.defaultBudget,
                progress: progress(tokens: windows.count * ctx, models: baseLogits == nil ? 2 : 1, stream: stream, totals: totals))
            finishProgress(stream, totals: totals)
            if let saveBaseLogits, let record { try record.write(to: saveBaseLogits) }
            if !noWeightErrors, let gguf = quantWeights as? GGUFWeights {
                report.tensors = try QuantValidation.tensorErrors(quant: gguf, base: baseWeights)
            }
            let cost = costOfRecord(report: report, stored: stored, vocabulary: baseWeights.spec.vocabularySize)
            printReport(report, baseLogits: cost, expertPack: quantWeights as? ExpertPackWeights, reads: totals)
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
