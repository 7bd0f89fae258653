// `moeq convert PATH -o OUT.gguf --recipe NAME`: one pass from the source checkpoint to a GGUF llama.cpp runs.
import ArgumentParser
import ConversionPipeline
import Foundation
import OutputPlanning
import QuantKernels
import TensorFormats

extension RecipeName: ExpressibleByArgument {}
extension OutputLayout: ExpressibleByArgument {}

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a safetensors checkpoint (BF16, FP8 block, compressed-tensors INT4) to GGUF in one pass.",
        discussion:
            """
            Recipes: \(RecipeName.allCases.map(\.rawValue).joined(separator: ", ")). Mixtures follow llama-quantize's per-tensor \
            rules (formats/recipes.md). 
            """
                + "SIGINT or SIGTERM stops after the current chunk with the finished tensors kept: rerun with --resume.")

    @Argument(help: "Checkpoint directory (config.json, safetensors, tokenizer.json).")
    var path: String

    @Option(name: .shortAndLong, help: "Output .gguf file.")
    var output: String

    @Option(name: .customLong("recipe"), help: "Recipe name.")
    var recipeName: RecipeName?

    @Option(
        help: "A recipe file (JSON or YAML, formats/recipe.md): a base recipe plus rules by role, projection, layer range or tensor name.")
    var recipeFile: String?

    @Option(parsing: .unconditional, help: "Threads for quantization (default: all cores).")
    var threads = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "general.name to record (default: the checkpoint directory's name).")
    var name: String?

    @Option(help: "llama.cpp importance matrix (GGUF or legacy .dat) for the imatrix-weighted quantizers.")
    var imatrix: String?

    @Flag(
        help:
            """
            Continue an interrupted conversion: tensors already written (and recorded in OUT.journal) are kept if their bytes still \
            verify and their source files are unchanged.
            """
    )
    var resume = false

    @Option(
        help:
            """
            k/n: convert only shard k of n (a deterministic, byte-balanced run of tensors) into OUT.part-k-of-n; `moeq merge` \
            assembles the parts.
            """
    )
    var shard: String?

    @Option(
        help:
            """
            gguf, or safetensors: a Hugging Face checkpoint directory -o DIR in plain floats (--recipe BF16, F16 or F32; FP8 and INT4 \
            sources decoded, F32 tensors kept F32, sharded at 5 GB with an index, config.json without quantization_config).
            """
    )
    var format: OutputFormat = .gguf

    @Option(
        help:
            """
            stacked (llama.cpp's 3-D expert tensors), split (llama.cpp multi-file GGUF: OUT-00001-of-00002.gguf without the routed \
            experts, OUT-00002-of-00002.gguf with them) or expert-major (OUT.gguf without routed experts + OUT.expert-pack: each \
            expert's blocks contiguous and page-aligned, hot → cold by the --imatrix routing counts).
            """
    )
    var layout: OutputLayout = .stacked

    @Option(help: "Expert-pack record alignment in bytes (4096, or 2097152 for huge pages).")
    var pageSize = 4096

    @Flag(help: "Leave out checkpoint tensors config.json does not describe (listed as a warning) instead of refusing them.")
    var skipUnknown = false

    @Flag(help: "Print the layout and the exact output size; write nothing.")
    var dryRun = false

    @Flag(help: "Print a JSON summary instead of text.")
    var json = false

    @Flag(
        help: "Stream progress as JSON lines on stderr (stage start/end, each tensor with bytes done, rate and ETA, the summary) for tools."
    )
    var events = false

    @OptionGroup var outputs: OutputOptions

    func validate() throws {
        guard (1...4096).contains(threads) else { throw ValidationError("--threads must be in 1…4096, not \(threads)") }
        guard (recipeName == nil) != (recipeFile == nil) else {
            throw ValidationError("give exactly one of --recipe NAME and --recipe-file FILE")
        }
        if format == .gguf {
            guard output.hasSuffix(".gguf") else {
                throw ValidationError("-o must name a .gguf file (or pass --format safetensors and a directory)")
            }
        } else {
            guard layout == .stacked, shard == nil, !resume, recipeFile == nil else {
                throw ValidationError(
                    "--format safetensors takes --recipe BF16|F16|F32 only (no --layout, --shard, --resume, --recipe-file)")
            }
        }
        guard (4096...(1 << 30)).contains(pageSize), pageSize & (pageSize - 1) == 0 else {
            throw ValidationError("--page-size must be a power of two in 4096…2^30")
        }
        if layout != .stacked {
            guard shard == nil else { throw ValidationError("--shard applies to the stacked layout") }
            guard layout == .split || !resume else {
                throw ValidationError(
                    """
                    --resume applies to the stacked and split layouts (an expert-major conversion restarts; its files are still \
                    staged and atomic)
                    """
                )
            }
        }
        if shard != nil {
            guard shardNumbers != nil else { throw ValidationError("--shard takes k/n with 1 ≤ k ≤ n ≤ 100000, e.g. --shard 2/3") }
            guard !resume else { throw ValidationError("--resume applies to whole conversions; rerun a failed shard instead") }
        }
    }

    /// --shard k/n as numbers.
    var shardNumbers: (k: Int, n: Int)? {
        guard let parts = shard?.split(separator: "/"), parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]),
            (1...100_000).contains(n),
            (1...n).contains(k)
        else { return nil }
        return (k, n)
    }

    /// Every file this run writes, for the output policy.
    var plannedOutputs: [PlannedOutput] {
        let staged = { (file: String) in [StagedFile.temporaryPath(for: file), OutputManifest.path(for: file)] }
        let moeq: (String) -> Bool = { isMoeqModel($0) || (resume && PositionalFile.exists(StagedFile.temporaryPath(for: $0))) }
        if format == .safetensors { return [.directory(output)] }
        if let (k, n) = shardNumbers {
            let part = ConversionPlan.partPath(output: output, shard: k, of: n)
            return [
                .file(part, companions: [StagedFile.temporaryPath(for: part)]) { OutputPolicy.starts($0, with: Array("MOEQPRT1".utf8)) }
            ]
        }
        switch layout {
        case .stacked: return [.file(output, companions: staged(output) + [output + ".journal"], writtenByMoeq: moeq)]
        case .split:
            return ConversionPlan.splitPaths(output: output).map {
                .file($0, companions: staged($0) + [$0 + ".journal"], writtenByMoeq: moeq)
            }
        case .expertMajor:
            let pack = ConversionPlan.packPath(output: output)
            return [
                .file(output, companions: staged(output), writtenByMoeq: moeq), .file(pack, companions: staged(pack), writtenByMoeq: moeq),
            ]
        }
    }

    func run() throws {
        try reportingErrors {
            if !dryRun { try checkOutputs(plannedOutputs, inputs: [path, imatrix, recipeFile], force: outputs.force) }
            if format == .safetensors {
                let started = Date()
                let summary = try SafetensorsExport.run(source: path, output: output, recipe: recipeName ?? .bf16, threads: threads)
                print(
                    """
                    wrote \(output): \(summary.tensors) tensors, \(humanBytes(summary.bytes)) in \(summary.files.count) \
                    file\(summary.files.count == 1 ? "" : "s") (\(recipeName?.rawValue ?? "BF16")) in \
                    \(String(format: "%.2f", Date().timeIntervalSince(started))) s
                    """
                )
                return
            }
            let importance = try imatrix.map { try ImportanceMatrix(path: $0) }
            let rules = try recipeFile.map { try RecipeFile(path: $0) }
            let recipe = rules?.base ?? recipeName ?? .q8_0
            let plan = try GGUFConversion.plan(
                path: path, recipe: recipe, name: name, importance: importance, rules: rules, skipUnknown: skipUnknown,
                readsScales: !dryRun)
            for warning in plan.warnings { printError("warning: \(warning)") }
            if dryRun { return try printDryRun(plan) }
            Interruption.install()
            try write(plan, recipe: recipe)
        }
    }

    private func write(_ plan: ConversionPlan, recipe: RecipeName) throws {
        let showProgress = isatty(2) != 0 && !json && !events
        let started = Date()
        let stream = EventStream(enabled: events)
        stream.emit(
            "plan",
            [
                "tensors": .integer(Int64(plan.tensors.count)), "bytes": .integer(Int64(plan.layout.fileSize)),
                "source_bytes": .integer(Int64(plan.sourceBytes)), "recipe": .string(recipe.rawValue), "output": .string(output),
            ])
        // Crash testing (validation/pipeline/kill_resume.py): MOEQ_KILL_AT=<bytes> or "rename" sends this
        // process SIGKILL once that many output bytes are written, or just before the final rename.
        let killAt = ProcessInfo.processInfo.environment["MOEQ_KILL_AT"]
        // Signal testing (validation/hostile): MOEQ_THROTTLE_MS=<ms> pauses after every written chunk, so a signal
        // sent after a fixed delay lands mid-conversion however fast the machine is.
        let throttle = ProcessInfo.processInfo.environment["MOEQ_THROTTLE_MS"].flatMap(UInt32.init).map { min($0, 10_000) }
        let pace = { if let throttle { usleep(throttle * 1000) } }
        let cancelled = { Interruption.requested }
        switch layout {
        case .split:
            let files = try OffloadLayouts.runSplit(
                plan, output: output, threads: threads, resume: resume, cancelled: cancelled,
                progress: { done, _ in
                    if let killAt, let limit = Int(killAt), done >= limit { kill(getpid(), SIGKILL) }
                    pace()
                })
            for file in files { print("wrote \(file.path): \(humanBytes(file.bytes))") }
            return
        case .expertMajor:
            let hits = plan.importance.map(plan.tensorLayout.routingCounts) ?? [:]
            let written = try OffloadLayouts.runExpertMajor(plan, output: output, threads: threads, alignment: pageSize, hits: hits)
            print(
                """
                wrote \(output): \(humanBytes(written.dense)) (every tensor but the routed experts) and \
                \(ConversionPlan.packPath(output: output)): \(humanBytes(written.pack)), \(written.records) expert records aligned to \
                \(pageSize) B\(plan.importance == nil ? "" : ", hot → cold by the imatrix's routing counts")
                """
            )
            return
        case .stacked:
            break
        }
        if let (k, n) = shardNumbers {
            let part = try ShardedConversion.run(plan, output: output, shard: k, of: n, threads: threads)
            let seconds = Date().timeIntervalSince(started)
            if json {
                print(
                    ([
                        "part": .string(part.path), "shard": .integer(Int64(k)), "shards": .integer(Int64(n)),
                        "tensors": .integer(Int64(part.tensors)),
                        "bytes": .integer(Int64(part.bytes)), "seconds": .double(seconds), "resources": ResourceUsage.shared.object,
                    ] as JSONValue).prettyPrinted(), terminator: "")
            } else {
                print(
                    """
                    wrote \(part.path): shard \(k)/\(n), \(part.tensors) of \(plan.tensors.count) tensors, \(humanBytes(part.bytes)) \
                    in \(String(format: "%.2f", seconds)) s; merge with `moeq merge \(output).part-*-of-\(n) -o \(output)`
                    """
                )
            }
            return
        }
        var written = 0
        let total = plan.layout.fileSize - plan.layout.dataStart
        stream.emit("stage", ["stage": "write", "state": "start"])
        let summary = try GGUFConversion.run(
            plan, output: output, threads: threads, resume: resume, cancelled: cancelled,
            beforeRename: {
                stream.emit("stage", ["stage": "write", "state": "end"])
                stream.emit("stage", ["stage": "finish", "state": "start", "what": "fsync, rename, manifest"])
                if killAt == "rename" { kill(getpid(), SIGKILL) }
            },
            tensorDone: { name, type, bytes, kept in
                written += bytes
                let elapsed = Date().timeIntervalSince(started)
                let rate = elapsed > 0 ? Double(written) / elapsed : 0
                stream.emit(
                    "tensor",
                    [
                        "name": .string(name), "type": .string(type.rawValue), "bytes": .integer(Int64(bytes)),
                        "kept_from_earlier_run": .bool(kept), "done": .integer(Int64(written)), "total": .integer(Int64(total)),
                        "bytes_per_second": .double(rate), "eta_seconds": .double(rate > 0 ? Double(total - written) / rate : 0),
                    ])
            }
        ) { done, total in
            if let killAt, let limit = Int(killAt), done >= limit { kill(getpid(), SIGKILL) }
            pace()
            guard showProgress else { return }
            let elapsed = Date().timeIntervalSince(started)
            let rate = elapsed > 0 ? Double(done) / elapsed : 0
            let eta = rate > 0 ? Double(total - done) / rate : 0
            FileHandle.standardError.write(
                Data(
                    String(
                        format: "\r%5.1f%%  %@ / %@  %.1f MB/s  ETA %.0f s ", 100 * Double(done) / Double(max(total, 1)),
                        humanBytes(done), humanBytes(total), rate / 1e6, eta
                    ).utf8))
        }
        if showProgress { FileHandle.standardError.write(Data("\n".utf8)) }
        stream.emit("stage", ["stage": "finish", "state": "end"])
        stream.emit(
            "summary",
            [
                "output": .string(output), "bytes": .integer(Int64(summary.outputBytes)), "seconds": .double(summary.seconds),
                "bits_per_weight": .double(summary.bitsPerWeight),
            ])
        if json {
            var counts: [(String, JSONValue)] = []
            for type in QuantType.allCases { if let n = summary.typeCounts[type] { counts.append((type.rawValue, .integer(Int64(n)))) } }
            let document: JSONValue = [
                "output": .string(output), "recipe": .string(recipe.rawValue), "bytes_in": .integer(Int64(summary.sourceBytes)),
                "bytes_out": .integer(Int64(summary.outputBytes)), "bits_per_weight": .double(summary.bitsPerWeight),
                "seconds": .double(summary.seconds), "tensor_types": .object(JSONObject(counts)),
                "kept_from_earlier_run": .integer(Int64(summary.keptTensors)), "resources": ResourceUsage.shared.object,
            ]
            print(document.prettyPrinted(), terminator: "")
        } else {
            let counts = QuantType.allCases.compactMap { t in summary.typeCounts[t].map { "\($0) \(t.rawValue)" } }.joined(separator: ", ")
            let kept = summary.keptTensors > 0 ? "; \(summary.keptTensors) tensors kept from the earlier run" : ""
            print(
                """
                wrote \(output): \(humanBytes(summary.outputBytes)) (\(String(format: "%.3f", summary.bitsPerWeight)) bpw) from \
                \(humanBytes(summary.sourceBytes)) in \(String(format: "%.2f", summary.seconds)) s; tensors: \(counts)\(kept)
                """
            )
        }
    }

}

/// JSON lines on stderr, one object per event, each with "event" and seconds since the stream began.
final class EventStream {
    let enabled: Bool
    let started = Date()
    init(enabled: Bool) { self.enabled = enabled }

    func emit(_ event: String, _ fields: KeyValuePairs<String, JSONValue>) {
        guard enabled else { return }
        var object = JSONObject([("event", .string(event)), ("t", .double((Date().timeIntervalSince(started) * 1000).rounded() / 1000))])
        for (key, value) in fields { object[key] = value }
        FileHandle.standardError.write(Data((JSONValue.object(object).serialized() + "\n").utf8))
    }
}

enum OutputFormat: String, ExpressibleByArgument { case gguf, safetensors }
