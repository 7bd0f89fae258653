// `moeq plan MODEL [--recipe R ...] [--target T ...] [--context N] [--json | --svg F | --html F]`: what each recipe
// weighs, split by what a token touches, the KV cache, and on each hardware target where it goes, how fast it decodes
// and prefills, and the llama.cpp command — from headers or config.json alone.
import ArgumentParser
import ConversionPipeline
import OutputPlanning
import Foundation
import HardwarePlanner
import QuantKernels
import ModelCatalog
import TensorFormats

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract:
            """
            Footprint per recipe (always-on vs routed-expert bytes, bytes read per token) and KV cache, from a checkpoint's headers, \
            a config.json or a bundled spec.
            """,
        discussion:
            """
            From a checkpoint the sizes are `convert --dry-run`'s to the byte; from a config.json or a bundled name they are the \
            GGUF's tensor data (the header depends on the tokenizer). Bundled (formats/models/): \
            \(ModelPresets.names.dropFirst().joined(separator: ", ")). A GGUF file is planned as it is (its own tensor types).
            """
    )

    @Argument(help: "A checkpoint directory, a GGUF file, a config.json, or a bundled model name.") var model: String
    @Option(name: .customLong("recipe"), help: "Recipe (repeatable; default Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0).") var recipes: [RecipeName] =
        []
    @Option(parsing: .unconditional, help: "Context length (KV cache), 1…268435456 tokens.") var context = 32768
    @Option(
        name: .customLong("target"),
        help:
            """
            Hardware target (repeatable), e.g. rtx4090+256gb, 2x3090+128gb-ddr4, 8xh200, m3-ultra-512gb, \
            rtx4090+512gb-2x8ch-ddr5-4800, 384gb-12ch-ddr5-4800, or by numbers: gpu:16:448+ram:64:60 (KIND:GB:GB/s, KIND gpu, \
            unified, ram, disk).
            """
    ) var targets: [String] = []
    @Option(name: .customLong("cache-type"), help: "KV cache type (llama.cpp -ctk/-ctv; GGUF or llama.cpp spelling, e.g. q8_0).")
    var cacheTypeOption = CacheType(.f16)
    var cacheType: QuantType { cacheTypeOption.type }
    @Option(help: "More hardware: a JSON file with the schema of formats/hardware/targets.json (its names replace the bundled ones).")
    var targetsFile: String?
    @Option(help: "llama.cpp or ktransformers (multi-socket RAM bandwidth and expert duplication differ).") var engine: EngineArgument =
        .llamaCpp
    @Option(
        help:
            """
            Routing statistics: an importance matrix (llama.cpp imatrix GGUF or `moeq imatrix` output) whose per-expert counts say \
            how unevenly tokens reach the experts; RAM then holds the hot experts and disk serves the cold tail.
            """
    ) var routing: String?
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Also write the recipes × targets matrix as an SVG chart to this file.") var svg: String?
    @Option(help: "Also write it as a standalone HTML page (the SVG plus a table) to this file.") var html: String?
    @OptionGroup var outputs: OutputOptions

    enum EngineArgument: String, ExpressibleByArgument { case llamaCpp = "llama.cpp", ktransformers }

    func validate() throws {
        guard (1...(1 << 28)).contains(context) else { throw ValidationError("--context must be in 1…268435456 tokens, not \(context)") }
        if (svg != nil || html != nil) && targets.isEmpty {
            throw ValidationError("--svg and --html draw the recipes × targets matrix: give at least one --target")
        }
        if let svg, let html, svg == html { throw ValidationError("--svg and --html name the same file (\(svg)): give two") }
        if routing != nil && targets.isEmpty {
            throw ValidationError("--routing places experts on hardware: give at least one --target with it")
        }
    }

    func run() throws {
        try reportingErrors {
            try checkOutputs(
                [svg, html].compactMap { $0 }.map { .file($0, companions: [$0 + ".partial"]) },
                inputs: [model, targetsFile, routing], force: outputs.force)
            // A targets file given is read (and its errors reported) even when no --target uses it.
            let catalog = try targetsFile.map { try HardwareCatalog.bundled().adding(file: $0) } ?? HardwareCatalog.bundled()
            // With targets and no --recipe: every recipe (F32 is no better than BF16), best quality (largest) first.
            let chosen =
                !recipes.isEmpty
                ? recipes : targets.isEmpty ? [RecipeName.q8_0, .q6_K, .q5_K_M, .q4_K_M, .q4_0] : RecipeName.allCases.filter { $0 != .f32 }
            var planned = try resolveModel(chosen)
            if recipes.isEmpty && !targets.isEmpty { planned.footprints.sort { $0.fileBytes > $1.fileBytes } }
            if !targets.isEmpty {
                try printMatrix(planned, catalog: catalog)
                return
            }
            printRecipes(planned)
        }
    }

    /// The recipes' footprints alone (no target).
    func printRecipes(_ planned: PlannedModel) {
        let (spec, footprints) = (planned.spec, planned.footprints)
        let kv = footprints.first?.kvBytesPerToken ?? 0
        let kvAtContext = KVCache.bytes(spec, context: context, cacheType: cacheType)
        if json {
            let rows: [JSONValue] = footprints.map { f in
                [
                    "recipe": .string(f.label), "bytes": .integer(Int64(f.fileBytes)), "header_included": .bool(f.headerIncluded),
                    "always_on_bytes": .integer(Int64(f.alwaysOnBytes)), "routed_expert_bytes": .integer(Int64(f.routedExpertBytes)),
                    "active_bytes_per_token": .integer(Int64(f.activeBytesPerToken)),
                    "bytes_by_group": groupsJSON(f),
                ]
            }
            var document = JSONObject()
            document["model"] = .string(model)
            document["kv_bytes_per_token_f16"] = .integer(Int64(kv))
            document["context"] = .integer(Int64(context))
            document["kv_bytes_at_context"] = .integer(Int64(kvAtContext))
            document["kv_cache_type"] = .string(cacheType.rawValue)
            document["source"] = planned.source.map(\.json) ?? .null
            document["recipes"] = .array(rows)
            print(withResources(.object(document)).prettyPrinted(), terminator: "")
            return
        }
        var table = TextTable([
            .init("recipe"), .init("file", .right), .init("vs source", .right), .init("always-on", .right),
            .init("routed experts", .right), .init("read per token", .right),
        ])
        for f in footprints {
            table.add(
                f.label, humanBytes(f.fileBytes), planned.ratio(f), humanBytes(f.alwaysOnBytes), humanBytes(f.routedExpertBytes),
                humanBytes(f.activeBytesPerToken))
        }
        table.print()
        if let source = planned.source { print(source.line) }
        var sliding =
            spec.slidingWindowLayers.isEmpty
            ? ""
            : """
             (\(spec.slidingWindowLayers.count) sliding-window layers hold \(KVCache.slidingCells(spec, context: context)) tokens \
            each)
            """
        if let linear = spec.linearAttention {
            let state = humanBytes(KVCache.recurrentStateBytes(spec))
            let full = KVCache.fullAttentionLayers(spec)
            sliding += " on \(full) MLA layers (\(linear.layers.count) KDA layers keep \(state) of state per sequence)"
        }
        print(
            """
            KV cache (F16): \(grouped(kv)) B per token\(sliding), \(humanBytes(kvAtContext)) at \(grouped(context)) tokens \
            (\(cacheType.rawValue))\(footprints.first?.headerIncluded == false ? "; sizes are tensor data (header excluded)" : "")
            """
        )
    }

    /// MODEL as a checkpoint directory, a GGUF file, a config.json or a bundled name → its spec, footprints and source.
    func resolveModel(_ chosen: [RecipeName]) throws -> PlannedModel {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory)
        let looksLikeGGUF = model.hasSuffix(".gguf") || OutputPolicy.starts(model, with: Array("GGUF".utf8))
        if exists && isDirectory.boolValue {
            let spec = try ModelSpec(configFile: (model as NSString).appendingPathComponent("config.json"))
            // Convertible checkpoints are planned by the conversion itself (sizes = `convert --dry-run`'s).
            guard spec.architecture.isConvertible else {
                return PlannedModel(spec: spec, footprints: try Footprint.of(spec: spec, recipes: chosen), source: .fromConfig(spec))
            }
            let (footprints, bytes) = try Footprint.withSource(checkpoint: model, recipes: chosen)
            return PlannedModel(
                spec: spec, footprints: footprints,
                source: SourceSize(
                    bytes: bytes,
                    note: "the checkpoint's safetensors files" + (spec.quantization == .none ? "" : " (\(spec.quantization.summary))")))
        }
        if exists, looksLikeGGUF {
            let files = try Footprint.ggufFiles(first: model)
            let spec = try ModelSpec(gguf: files[0])
            try Footprint.checkHoldsExperts(files, path: model, spec: spec)
            // The file (or split set) as it is; named recipes (if asked) are planned from its hyper-parameters.
            return PlannedModel(
                spec: spec,
                footprints: [Footprint.of(gguf: files, spec: spec)]
                    + (recipes.isEmpty ? [] : try Footprint.of(spec: spec, recipes: recipes)),
                source: nil)
        }
        if exists {
            let spec = try ModelSpec(configFile: model)
            return PlannedModel(spec: spec, footprints: try Footprint.of(spec: spec, recipes: chosen), source: .fromConfig(spec))
        }
        guard let preset = ModelPresets.named(model) else {
            _ = try ModelPresets.bundled()  // says so when the bundled specs themselves cannot be read
            throw ValidationError(
                """
                \(model) is neither a checkpoint directory, a GGUF file, a config.json nor a bundled model name \
                (\(ModelPresets.names.dropFirst().joined(separator: ", ")))
                """
            )
        }
        let spec = try ModelSpec(config: preset.config)
        return PlannedModel(
            spec: spec, footprints: try Footprint.of(spec: spec, recipes: chosen),
            source: .fromConfig(spec, floatBytes: preset.nativeDType == "f32" ? 4 : 2))
    }

    /// Bytes by role group, named as recipe files name the groups.
    func groupsJSON(_ footprint: Footprint) -> JSONValue {
        var bytes: [String: Int] = [:]
        for (group, count) in footprint.bytesByGroup { bytes[group.recipeName, default: 0] += count }
        return .object(JSONObject(bytes.sorted { $0.key < $1.key }.map { ($0.key, .integer(Int64($0.value))) }))
    }
}
