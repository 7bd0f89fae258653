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
    @Option(help: "With --target: KV cache type (llama.cpp -ctk/-ctv).") var cacheType: QuantType = .f16
    @Option(help: "Calibration text (tokenized with the model's tokenizer.json).") var text: String?
    @Option(help: "Calibration token ids (.npy or whitespace-separated).") var tokens: String?
    @Option(name: .shortAndLong, help: "Output .gguf.") var output: String
    @Option(help: "Importance matrix (llama.cpp GGUF or .dat): used for every quantization, needed by IQ2_XXS/IQ2_XS/IQ1_S.")
    var imatrix: String?
    @Option(parsing: .upToNextOption, help: "Candidate types (default: Q8_0 … IQ1_M; IQ2_XXS, IQ2_XS and IQ1_S only with --imatrix).")
    var types: [QuantType] = []
    @Option(help: "Where the recipe file goes (default OUT.recipe.json).") var recipeFile: String?
    @Option(help: "Where the llama-quantize --tensor-type-file goes (default OUT.tensor-types.txt).") var tensorTypeFile: String?
    @Option(help: "Sensitivity cache file: read when its key matches, else measured and written there.") var sensitivity: String?
    @Flag(
        help: ArgumentHelp(
            "Use the --sensitivity file although it was made for another model, text, imatrix or candidate set (matched by tensor "
                + "name; tensors it lacks are priced by bytes alone): sensitivities measured on a slice, or generated for a rehearsal."
        ))
    var reuseSensitivity = false
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
        guard PlanCommand.cacheTypes.contains(cacheType) else {
            throw ValidationError(
                "--cache-type \(cacheType.rawValue) is not a KV cache type llama.cpp runs; use "
                    + PlanCommand.cacheTypes.map(\.rawValue).joined(separator: ", "))
        }
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
            let written = try ReferenceModel.weights(path: output, configDirectory: model)
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
        var text = "fit 2\u{0}\(probes)\u{0}" + (try ModelFingerprint.of(model))
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
            weights: weights, windows: windows, candidates: candidates, importance: importance, budget: memory)
        // Probes: each group alone at a mid type, then the whole model at a few types for the power law.
        let probeType: QuantType = candidates.contains(.q3_K) ? .q3_K : candidates[candidates.count / 2]
        let whole = [QuantType.q4_K, .q3_K, .q2_K, .iq2_xs].filter(candidates.contains)
        let calibration = try FitCalibration.measure(
            tensors, probeType: probeType, wholeTypes: whole.isEmpty ? [probeType] : whole, maxGroups: probes,
            evaluate: { types in
                let quant = RoundTripWeights(base: weights, types: types, importance: importance)
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

    // MARK: - Solve

    struct Solution {
        let types: [String: QuantType]
        let base: RecipeName
        let seconds: Double
    }

    /// Exact bytes of `type` for a tensor (padded to the file's alignment), or nil when its rows are not whole blocks.
    static func bytes(_ tensor: GGUFTensorPlan, _ type: QuantType, alignment: Int) -> Int? {
        guard let row = type.rowBytes(width: tensor.rowWidth) else { return nil }
        let rows = tensor.dimensions.reduce(1, *) / max(tensor.rowWidth, 1)
        return (row * rows + alignment - 1) / alignment * alignment
    }

    func solve(plan: ConversionPlan, measured: Measured, candidates: [QuantType], limit: Int, tiers: FitBudget?) throws -> Solution {
        let started = Date()
        let alignment = 32
        let byName = Dictionary(measured.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        let quantizable = plan.tensors.filter(\.quantizable)
        // What the budget must also hold: header, and every tensor fit does not choose (norms, routers) as planned.
        let chosenNow = zip(plan.tensors, plan.types).reduce(0) { sum, pair in
            sum + (pair.0.quantizable ? Self.bytes(pair.0, pair.1, alignment: alignment) ?? 0 : 0)
        }
        let fixed = plan.layout.fileSize - chosenNow
        // Items: gate and up of one FFN share a type (llama.cpp fuses them); every other tensor alone.
        var items: [BudgetItem] = []
        var taken = Set<String>()
        for tensor in quantizable where !taken.contains(tensor.name) {
            var members = [tensor]
            if tensor.role.projection == .gate, let up = tensor.role.withProjection(.up),
                let other = quantizable.first(where: { $0.role == up })
            {
                members.append(other)
            }
            members.forEach { taken.insert($0.name) }
            var options: [BudgetOption] = []
            for type in candidates {
                var bytes = 0, cost = 0.0, ok = true
                for m in members {
                    guard let b = Self.bytes(m, type, alignment: alignment) else { ok = false; break }
                    guard let s = byName[m.name] else {
                        // Never met by the calibration pass (e.g. an expert tensor no token reached): priced by bytes only.
                        bytes += b
                        continue
                    }
                    guard let c = measured.calibration.cost(s, type) else { ok = false; break }
                    bytes += b
                    cost += c
                }
                if ok { options.append(BudgetOption(type: type, bytes: bytes, cost: cost)) }
            }
            items.append(BudgetItem(tensors: members.map(\.name), options: options))
        }
        let unmeasured = quantizable.filter { byName[$0.name] == nil }.count
        if reuseSensitivity, unmeasured > 0 {
            printError(
                "warning: \(unmeasured) of \(quantizable.count) tensors have no sensitivity in \(measured.path): priced by bytes alone")
        }
        let available = limit - fixed
        guard available > 0 else {
            throw ValidationError("the budget, \(limit) bytes, does not hold even the header and unquantized tensors (\(fixed) bytes)")
        }
        func solved(_ items: [BudgetItem], _ bytes: Int, _ what: String) throws -> [Int] {
            do { return try BudgetSolver.solve(items, budget: bytes) } catch let error as BudgetSolverError {
                if case .doesNotFit(_, let smallest) = error {
                    throw ValidationError(
                        "\(what), \(bytes + fixed) bytes, is below the smallest file the candidate types make (\(smallest + fixed) bytes)")
                }
                throw error
            }
        }
        var chosen = try solved(items, available, "the budget")
        // With tiers: the fast tier must hold every tensor but the routed experts (and the unquantized ones). When the
        // joint solution puts more there, those tensors are solved within the fast tier alone and the experts within
        // the rest.
        if let tiers, !tiers.unified {
            let routed = Set(quantizable.filter { $0.role.category == .routedExperts }.map(\.name))
            let isFast = items.map { !$0.tensors.contains(where: routed.contains) }
            let fastBytes = zip(items, chosen).enumerated().reduce(0) {
                $0 + (isFast[$1.offset] ? $1.element.0.options[$1.element.1].bytes : 0)
            }
            if fastBytes + fixed > tiers.fastBytes {
                let fastItems = items.indices.filter { isFast[$0] }, slowItems = items.indices.filter { !isFast[$0] }
                let fastChosen = try solved(fastItems.map { items[$0] }, tiers.fastBytes - fixed, "the fast tier")
                let fastUsed = zip(fastItems, fastChosen).reduce(0) { $0 + items[$1.0].options[$1.1].bytes }
                let slowChosen = try solved(slowItems.map { items[$0] }, available - fastUsed, "system RAM")
                for (i, c) in zip(fastItems, fastChosen) { chosen[i] = c }
                for (i, c) in zip(slowItems, slowChosen) { chosen[i] = c }
            }
        }
        var types: [String: QuantType] = [:]
        for (item, index) in zip(items, chosen) { for name in item.tensors { types[name] = item.options[index].type } }
        // general.file_type: the named recipe nearest in bits per weight (llama-quantize's positional type for the type file).
        let weightsCount = quantizable.reduce(0) { $0 + $1.dimensions.reduce(1, *) }
        let bits = Double(zip(items, chosen).reduce(0) { $0 + $1.0.options[$1.1].bytes } * 8) / Double(max(weightsCount, 1))
        let named: [(RecipeName, Double)] = [
            (.q8_0, 8.5), (.q6_K, 6.56), (.q5_K_M, 5.7), (.q4_K_M, 4.9), (.q3_K_M, 3.9), (.q2_K, 3.0), (.iq2_xs, 2.4), (.iq2_xxs, 2.1),
            (.iq1_m, 1.8),
        ]
        let base = named.filter { importance(needed: $0.0) }.min { abs($0.1 - bits) < abs($1.1 - bits) }?.0 ?? .q8_0
        return Solution(types: types, base: base, seconds: Date().timeIntervalSince(started))
    }

    /// Named recipes whose own rules need an importance matrix are usable as the base only with one.
    func importance(needed recipe: RecipeName) -> Bool { imatrix != nil || ![.iq2_xs, .iq2_xxs, .iq1_m].contains(recipe) }

    // MARK: - Outputs

    func recipeDocument(_ solution: Solution, limit: Int) -> JSONValue {
        let rules: [JSONValue] = solution.types.sorted { $0.key < $1.key }.map { name, type in
            .object(JSONObject([("tensor", .string(name)), ("type", .string(type.rawValue))]))
        }
        var pairs: [(String, JSONValue)] = [
            ("format", .string("moeq recipe 1")), ("base", .string(solution.base.rawValue)),
            (
                "description",
                .string(
                    "moeq fit: \(solution.types.count) tensors within \(limit) bytes\(target.map { " (\($0))" } ?? ""), solved from measured "
                        + "sensitivities")
            ),
            ("source", .string(model)), ("output", .string(output)),
        ]
        if let imatrix { pairs.append(("imatrix", .string(imatrix))) }
        pairs.append(("rules", .array(rules)))
        return .object(JSONObject(pairs))
    }

    /// llama-quantize --tensor-type-file: one anchored, escaped pattern per quantized tensor (regex_search on the name).
    func tensorTypeLines(_ plan: ConversionPlan) -> String {
        zip(plan.tensors, plan.types).filter { $0.0.quantizable }.map { tensor, type in
            "^" + tensor.name.replacingOccurrences(of: ".", with: "\\.") + "$=" + type.rawValue.lowercased()
        }.joined(separator: "\n") + "\n"
    }

    struct GroupRow {
        let group: String
        let types: [QuantType: Int]
        let bytes: Int
    }

    func groupTable(_ plan: ConversionPlan) -> (rows: [GroupRow], json: JSONValue) {
        var rows: [String: (types: [QuantType: Int], bytes: Int)] = [:]
        for (tensor, info) in zip(plan.tensors, plan.layout.tensors) where tensor.quantizable {
            let g = FitCalibration.kind(tensor.name)
            rows[g, default: ([:], 0)].types[info.type, default: 0] += 1
            rows[g, default: ([:], 0)].bytes += info.byteCount
        }
        let list = rows.sorted { $0.key < $1.key }.map { GroupRow(group: $0.key, types: $0.value.types, bytes: $0.value.bytes) }
        let json: JSONValue = .array(
            list.map { row in
                .object(
                    JSONObject([
                        ("group", .string(row.group)), ("bytes", .integer(Int64(row.bytes))),
                        (
                            "types",
                            .object(
                                JSONObject(
                                    row.types.sorted { $0.key.rawValue < $1.key.rawValue }.map {
                                        ($0.key.rawValue, .integer(Int64($0.value)))
                                    }))
                        ),
                    ]))
            })
        return (list, json)
    }

    func report(
        plan: ConversionPlan, groups: (rows: [GroupRow], json: JSONValue), predicted: Double, measured: Measured, solution: Solution,
        validation: QuantValidationReport?, limit: Int, placement: Plan?
    ) {
        guard !json else { return }
        let width = max(groups.rows.map(\.group.count).max() ?? 5, 5)
        print("group".padding(toLength: width, withPad: " ", startingAt: 0) + "  types (tensors)                        bytes")
        for row in groups.rows {
            let types = row.types.sorted { $0.key.bitsPerWeight > $1.key.bitsPerWeight }.map { "\($0.key.rawValue)×\($0.value)" }
                .joined(separator: " ")
            print(
                row.group.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                    + types.padding(toLength: max(36, types.count), withPad: " ", startingAt: 0) + "  " + humanBytes(row.bytes))
        }
        print(
            "file: \(grouped(plan.layout.fileSize)) bytes of a \(grouped(limit))-byte budget (general.file_type "
                + "\(solution.base.rawValue)); solved in \(String(format: "%.3f", solution.seconds)) s")
        print(String(format: "predicted KLD %.6f (calibrated on %d probes)", predicted, measured.calibration.probes.count))
        if let placement {
            print(
                "on \(placement.target): \(placement.verdict), fast tier \(humanBytes(Int(placement.fastBytes))), RAM "
                    + "\(humanBytes(Int(placement.ramBytes))), disk \(humanBytes(Int(placement.diskBytes))); "
                    + String(format: "%.1f tok/s decode (planner)", placement.tokensPerSecond))
            print("run: \(placement.command)")
        }
        if let validation {
            print(
                String(
                    format: "measured on the calibration windows: KLD %.6f, PPL ratio %.4f, top-1 agreement %.2f %%", validation.meanKLD,
                    validation.ratio, 100 * validation.top1Agreement))
            print("wrote \(output), \(recipePath), \(typesPath)")
        }
    }

    // MARK: - Tiers (--target)

    func tierLine(_ tiers: FitBudget) -> String {
        "budget on \(tiers.target): fast tier \(humanBytes(tiers.fastBytes)), RAM \(humanBytes(tiers.ramBytes)) (KV cache "
            + "\(humanBytes(tiers.kvBytes)) at \(grouped(tiers.context)) tokens, \(tiers.cacheType.rawValue), taken off first)"
    }

    func tierJSON(_ tiers: FitBudget, plan: ConversionPlan, placement: Plan) -> [(String, JSONValue)] {
        [
            ("target", .string(tiers.target)), ("context", .integer(Int64(tiers.context))), ("kv_bytes", .integer(Int64(tiers.kvBytes))),
            ("fast_tier_budget_bytes", .integer(Int64(tiers.fastBytes))), ("ram_budget_bytes", .integer(Int64(tiers.ramBytes))),
            ("fast_tier_bytes", .integer(Int64(placement.fastBytes))), ("ram_bytes", .integer(Int64(placement.ramBytes))),
            ("disk_bytes", .integer(Int64(placement.diskBytes))), ("verdict", .string("\(placement.verdict)")),
            ("decode_tokens_per_second", .double(placement.tokensPerSecond)), ("command", .string(placement.command)),
        ]
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
