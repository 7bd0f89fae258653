// `moeq fit MODEL (--budget SIZE | --target T) (--text F | --tokens F) -o OUT.gguf`: the mix of types (one per GGUF tensor) with the
// smallest predicted KL divergence whose file fits the budget, chosen from per-tensor sensitivities measured on the
// calibration data and calibrated against end-to-end KLD on probe mixes; written with the conversion, with a recipe
// file and a llama-quantize --tensor-type-file that reproduce it, then validated.
import ArgumentParser
import ConversionPipeline
import Foundation
import HardwarePlanner
import ModelCatalog
import OutputPlanning
import QuantKernels
import ReferenceEngine
import TensorFormats

struct FitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fit",
        abstract: "Write the best GGUF that fits a byte budget, chosen by measured per-tensor sensitivity, and prove it by KL divergence.",
        discussion:
            """
            Sensitivities and the calibration are cached (--sensitivity, by default under $XDG_CACHE_HOME/moeq or ~/.cache/moeq, \
            keyed by model, calibration tokens, imatrix and candidates): a new budget re-solves in seconds. Beside OUT.gguf go \
            OUT.recipe.json (moeq convert --recipe-file) and OUT.tensor-types.txt (llama-quantize --tensor-type-file).

            With --target the budget is the machine's, per tier, as `moeq plan --target` places a model: every tensor but the \
            routed experts in the fast tier (GPUs or unified memory, after the KV cache at --context and llama.cpp's margins), \
            the routed experts in system RAM; the fast-tier tensors get their own types when the joint solution would not fit there.
            """)

    static let defaultCandidates: [QuantType] = [
        .q8_0, .q6_K, .q5_K, .q4_K, .iq4_xs, .q3_K, .iq3_s, .iq3_xxs, .q2_K, .iq2_s, .iq2_xs, .iq2_xxs, .iq1_m,
    ]

    @Argument(help: "Checkpoint directory (safetensors + config.json).") var model: String
    @Option(help: ArgumentHelp("The output file's size limit: \(ByteSize.units).")) var budget: ByteSize?
    @Option(help: "Hardware target whose memory is the budget, per tier (names as in `moeq plan --target`).") var target: String?
    @Option(parsing: .unconditional, help: "With --target: context length the KV cache is sized for.") var context = 32768
    @Option(name: .customLong("cache-type"), help: "With --target: KV cache type (llama.cpp -ctk/-ctv; GGUF or llama.cpp spelling).")
    var cacheTypeOption = CacheType(.f16)
    var cacheType: QuantType { cacheTypeOption.type }
    @Option(help: "Calibration text (tokenized with the model's tokenizer.json).") var text: String?
    @Option(help: "Calibration token ids (.npy or whitespace-separated).") var tokens: String?
    @Option(name: .shortAndLong, help: "Output .gguf.") var output: String
    @Option(help: "Importance matrix (llama.cpp GGUF or .dat): used for every quantization, needed by IQ2_XXS/IQ2_XS/IQ1_S.")
    var imatrix: String?
    @Option(parsing: .upToNextOption, help: "Candidate types (default: Q8_0 … IQ1_M; IQ2_XXS, IQ2_XS and IQ1_S only with --imatrix).")
    var types: [QuantType] = []
    /// Which FFNs keep gate and up on one type.
    enum GateUpTie: String, ExpressibleByArgument, CaseIterable { case dense, all, none }
    @Option(
        name: .customLong("tie-gate-up"),
        help: """
            Which FFNs keep gate and up on one type. dense (default): every FFN but the routed experts, as llama.cpp's CUDA \
            backend fuses gate and up only when their types match and the offload layout runs the routed experts on the CPU, \
            where nothing fuses them (each routed gate and up then gets the type its own sensitivity earns). all: the routed \
            experts too, for a file meant to run wholly on CUDA GPUs. none: no tie.
            """) var tieGateUp: GateUpTie = .dense
    @Option(help: "Where the recipe file goes (default OUT.recipe.json).") var recipeFile: String?
    @Option(help: "Where the llama-quantize --tensor-type-file goes (default OUT.tensor-types.txt).") var tensorTypeFile: String?
    @Option(help: "Sensitivity cache file: read when its key matches, else measured and written there.") var sensitivity: String?
    @Flag(
        help: ArgumentHelp(
            "Use the --sensitivity file although it was made for another model, text, imatrix or candidate set (matched by tensor "
                + "name; tensors it lacks are priced by bytes alone): sensitivities measured on a slice, or generated for a rehearsal."
        ))
    var reuseSensitivity = false
    @Option(
        help: """
            Arithmetic the mix is chosen and proven for. llama-cpu (default): every product's input rounded as llama.cpp's CPU \
            backend rounds it for the weight's type (Q8_K for k- and i-quants, Q8_0 for Q8_0/Q4_0/Q5_0/IQ4_NL), so the \
            activation's rounding counts in each type's error and the measured KLD predicts llama-perplexity's. exact: f32 inputs.
            """) var arithmetic: ValidateCommand.Arithmetic = .llamaCPU
    var llamaCPU: Bool { arithmetic == .llamaCPU }
    @Option(parsing: .unconditional, help: "Tokens per calibration window.") var ctx = 512
    @Option(parsing: .unconditional, help: "At most this many calibration windows.") var chunks: Int?
    @Option(help: ArgumentHelp("Memory for the windows' hidden states (default a quarter of RAM): \(ByteSize.units).")) var memory:
        ByteSize?
    @Option(
        help: "At most this many probe groups (one per tensor when the model has no more; else tensors of one kind over a run of blocks).")
    var probes = 48
    @Option(help: "Quantization threads.") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Flag(help: "Measure (or read) and solve, print the mix and its predicted KLD; write no model.") var dryRun = false
    @Flag(help: "Print a JSON summary.") var json = false
    @OptionGroup var outputs: OutputOptions

    func validate() throws {
        guard (tokens == nil) != (text == nil) else { throw ValidationError("give exactly one of --tokens and --text") }
        guard (2...(1 << 20)).contains(ctx) else { throw ValidationError("--ctx must be in 2…1048576") }
        if let chunks, chunks < 1 { throw ValidationError("--chunks must be at least 1") }
        guard (1...4096).contains(threads) else { throw ValidationError("--threads must be in 1…4096, not \(threads)") }
        guard (1...100_000).contains(probes) else { throw ValidationError("--probes must be in 1…100000") }
        if reuseSensitivity, sensitivity == nil { throw ValidationError("--reuse-sensitivity needs --sensitivity FILE") }
        guard (budget == nil) != (target == nil) else { throw ValidationError("give exactly one of --budget and --target") }
        if let budget, budget.bytes <= 0 { throw ValidationError("--budget must be more than 0 bytes") }
        guard (1...(1 << 28)).contains(context) else { throw ValidationError("--context must be in 1…268435456 tokens, not \(context)") }
        guard output.hasSuffix(".gguf") else { throw ValidationError("-o must name a .gguf file (not \(output))") }
        if model.hasSuffix(".gguf") || OutputPolicy.starts(model, with: Array("GGUF".utf8)) {
            throw ValidationError("\(model) is a GGUF: moeq fit quantizes from the checkpoint directory (its config.json and weights)")
        }
    }

    var stem: String { String(output.dropLast(".gguf".count)) }
    var recipePath: String { recipeFile ?? stem + ".recipe.json" }
    var typesPath: String { tensorTypeFile ?? stem + ".tensor-types.txt" }

    func run() throws {
        try reportingErrors {
            let moeq: (String) -> Bool = isMoeqModel
            if !dryRun {
                try checkOutputs(
                    [
                        .file(
                            output, companions: [StagedFile.temporaryPath(for: output), OutputManifest.path(for: output)],
                            writtenByMoeq: moeq),
                        .file(recipePath) { OutputPolicy.starts($0, with: Array("{\n  \"format\": \"moeq recipe 1\"".utf8)) },
                        .file(typesPath) { OutputPolicy.starts($0, with: Array("^".utf8)) },
                    ],
                    inputs: [model, text, tokens, imatrix, sensitivity], force: outputs.force)
            }
            let started = Date()
            let importance = try imatrix.map { try ImportanceMatrix(path: $0) }
            var candidates = types.isEmpty ? Self.defaultCandidates : types
            if importance == nil {
                let dropped = candidates.filter { $0.layout.requiresImportance }
                if !dropped.isEmpty, !types.isEmpty {
                    throw ValidationError(
                        "\(dropped.map(\.rawValue).joined(separator: ", ")) need an importance matrix: give --imatrix (moeq imatrix makes one)"
                    )
                }
                candidates.removeAll { $0.layout.requiresImportance }
            }
            // The file's layout (names, shapes, fixed tensors) from a plan every candidate set can start from.
            // The checkpoint is read and checked once; the weights are opened only to measure or validate.
            let checked = try ConversionPlan.CheckedCheckpoint(path: model)
            let layoutPlan = try ConversionPlan(checked: checked, recipe: .q8_0, importance: importance)
            let weights = LazyWeights { try ReferenceModel.weights(path: model) }
            warnBeyondTrainedContext(ctx, spec: layoutPlan.spec, what: "--ctx")
            let machine = try target.map { try HardwareCatalog.bundled().target($0) }
            let tiers = machine.map { FitBudget.of(spec: layoutPlan.spec, target: $0, context: context, cacheType: cacheType) }
            let limit = budget?.bytes ?? tiers?.totalBytes ?? 0
            if let tiers {
                guard limit > 0 else { throw ValidationError("--target \(tiers.target) leaves no memory for weights") }
                if !json { print(tierLine(tiers)) }
            }
            let windows = try llamaWindows(
                tokens: tokens, text: text, directory: model, vocabularySize: layoutPlan.spec.vocabularySize, context: ctx,
                maxChunks: chunks)
            let memoryBytes = memory?.bytes ?? LayerMajor.defaultBudget
            let measured = try sensitivities(
                weights: weights, windows: windows, candidates: candidates, importance: importance, memory: memoryBytes)
            let solution = try solve(plan: layoutPlan, measured: measured, candidates: candidates, limit: limit, tiers: tiers)
            let calibration = measured.calibration
            let score = calibration.score(measured.tensors, types: solution.types)
            let predicted = calibration.predictedKLD(score: score)
            let recipeJSON = recipeDocument(solution, limit: limit)
            let rules = try RecipeFile(json: recipeJSON, path: recipePath)
            let plan = try ConversionPlan(checked: checked, recipe: solution.base, importance: importance, rules: rules)
            for warning in plan.warnings where !warning.hasPrefix("imatrix has no entry") { printError("warning: \(warning)") }
            guard plan.layout.fileSize <= limit else {
                throw ValidationError("internal: the solved mix is \(plan.layout.fileSize) bytes, over the budget \(limit)")
            }
            var summary: [(String, JSONValue)] = [
                ("model", .string(model)), ("budget_bytes", .integer(Int64(limit))),
                ("file_bytes", .integer(Int64(plan.layout.fileSize))), ("base_recipe", .string(solution.base.rawValue)),
                ("arithmetic", .string(arithmetic.rawValue)),
                ("predicted_kld", .double(predicted)), ("sensitivity_file", .string(measured.path)),
                ("sensitivity_cached", .bool(measured.cached)), ("solve_seconds", .double(solution.seconds)),
            ]
            let groups = groupTable(plan)
            let placement = try machine.map { machine in
                Planner.plan(
                    try Footprint.of(conversion: plan), spec: plan.spec, target: machine, context: context, cacheType: cacheType,
                    file: (output as NSString).lastPathComponent)
            }
            if let tiers, let placement { summary += tierJSON(tiers, plan: plan, placement: placement) }
            if dryRun {
                report(
                    plan: plan, groups: groups, predicted: predicted, measured: measured, solution: solution, validation: nil, limit: limit,
                    placement: placement)
                if json {
                    let document = summary + [("groups", groups.json)] + ResourceUsage.shared.json
                    print(JSONValue.object(JSONObject(document)).prettyPrinted(), terminator: "")
                }
                return
            }
            try AtomicFile.write(recipeJSON.prettyPrinted(), to: recipePath)
            try AtomicFile.write(tensorTypeLines(plan), to: typesPath)
            Interruption.install()
            _ = try GGUFConversion.run(plan, output: output, threads: threads, cancelled: { Interruption.requested })
            // Proof: the written file against the checkpoint on the calibration windows.
            let written = try ReferenceModel.weights(path: output, configDirectory: model, llamaCPUArithmetic: llamaCPU)
            let (validation, _) = try QuantValidation.run(
                quant: written, base: .model(try weights.get()), configDirectory: model, windows: windows, memory: memoryBytes)
            report(
                plan: plan, groups: groups, predicted: predicted, measured: measured, solution: solution, validation: validation,
                limit: limit, placement: placement)
            summary += [
                ("output", .string(output)), ("recipe_file", .string(recipePath)), ("tensor_type_file", .string(typesPath)),
                ("measured_kld", .double(validation.meanKLD)), ("ppl_ratio", .double(validation.ratio)),
                ("top1_agreement", .double(validation.top1Agreement)), ("seconds", .double(Date().timeIntervalSince(started))),
            ]
            summary += ResourceUsage.shared.json
            if json { print(JSONValue.object(JSONObject(summary + [("groups", groups.json)])).prettyPrinted(), terminator: "") }
        }
    }

    // MARK: - Sensitivity (measured or cached)

    struct Measured {
        let tensors: [TensorSensitivity]
        let calibration: FitCalibration
        let path: String
        let cached: Bool
    }

    func cacheKey(windows: [[Int]], candidates: [QuantType]) throws -> String {
        var text = "fit 3\u{0}\(probes)\u{0}\(arithmetic.rawValue)\u{0}" + (try ModelFingerprint.of(model))
        text += "\u{0}\(QuantValidation.windowsHash(windows))\u{0}" + (try imatrix.map { try ModelFingerprint.of($0) } ?? "-")
        text += "\u{0}" + candidates.map(\.rawValue).joined(separator: ",")
        return ContentHash.hex(ContentHash.xxh3(Array(text.utf8)))
    }

    func sensitivities(
        weights lazy: LazyWeights, windows: [[Int]], candidates: [QuantType], importance: ImportanceMatrix?, memory: Int
    ) throws -> Measured {
        // A reused file is taken whatever its key: no need to fingerprint the model (megabytes per shard).
        let key = reuseSensitivity ? "-" : try cacheKey(windows: windows, candidates: candidates)
        let path = sensitivity ?? Self.cacheDirectory() + "/fit-\(key).json"
        if FileManager.default.fileExists(atPath: path) {
            let file = try SensitivityFile(path: path)
            if file.key == key || reuseSensitivity {
                if !json { print("sensitivities from \(path)") }
                return Measured(tensors: file.tensors, calibration: file.calibration, path: path, cached: true)
            }
            if sensitivity != nil, !outputs.force {
                throw ValidationError(
                    "\(path) holds the sensitivities of another model, calibration text, imatrix or candidate set (key \(file.key), "
                        + "this run's is \(key)): give another --sensitivity file, or --force to measure again and replace it")
            }
        }
        if reuseSensitivity { throw ValidationError("--reuse-sensitivity: \(path) does not exist") }
        let weights = try lazy.get()
        let quiet = json
        func note(_ line: String) { if !quiet { print(line) } }
        note("measuring sensitivities: \(windows.count) windows × \(ctx) tokens, \(candidates.count) candidate types")
        let tensors = try Sensitivity.measure(
            weights: weights, windows: windows, candidates: candidates, importance: importance, llamaCPUArithmetic: llamaCPU,
            budget: memory)
        // Probes: each group alone at a mid type, then the whole model at a few types for the power law.
        let probeType: QuantType = candidates.contains(.q3_K) ? .q3_K : candidates[candidates.count / 2]
        let whole = [QuantType.q4_K, .q3_K, .q2_K, .iq2_xs].filter(candidates.contains)
        let calibration = try FitCalibration.measure(
            tensors, probeType: probeType, wholeTypes: whole.isEmpty ? [probeType] : whole, maxGroups: probes,
            evaluate: { types in
                let quant = RoundTripWeights(base: weights, types: types, importance: importance, llamaCPUArithmetic: llamaCPU)
                let (report, _) = try QuantValidation.run(
                    quant: quant, base: .model(weights), configDirectory: model, windows: windows, memory: memory)
                return (report.meanKLD, report.ratio, report.top1Agreement)
            }, note: note)
        let file = SensitivityFile(key: key, candidates: candidates, tensors: tensors, calibration: calibration)
        try FileManager.default.createDirectory(
            atPath: (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent,
            withIntermediateDirectories: true)
        try file.write(to: path)
        note("sensitivities written to \(path)")
        return Measured(tensors: tensors, calibration: calibration, path: path, cached: false)
    }

    static func cacheDirectory() -> String {
        let environment = ProcessInfo.processInfo.environment
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/moeq" }
        return (environment["HOME"] ?? NSTemporaryDirectory()) + "/.cache/moeq"
    }
}

/// The checkpoint's weights, opened on first use (a fit from cached sensitivities that writes nothing never needs them).
final class LazyWeights {
    private let open: () throws -> WeightProvider
    private var opened: WeightProvider?
    init(_ open: @escaping () throws -> WeightProvider) { self.open = open }
    func get() throws -> WeightProvider {
        if let opened { return opened }
        let made = try open()
        opened = made
        return made
    }
}
