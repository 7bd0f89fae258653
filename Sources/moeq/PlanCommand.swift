// `moeq plan MODEL [--recipe R ...] [--context N] [--json]`: what each recipe weighs, split by what a token
// touches, and the KV cache — from headers or config.json alone. (Hardware targets and speed: issue 7, to come.)
import ArgumentParser
import ConversionPipeline
import Foundation
import HardwarePlanner
import ModelCatalog
import TensorFormats

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Footprint per recipe (always-on vs routed-expert bytes, bytes read per token) and KV cache, from a checkpoint's headers, a config.json or a bundled spec.",
        discussion: "From a checkpoint the sizes are `convert --dry-run`'s to the byte; from a config.json or a bundled name they are the GGUF's tensor data (the header depends on the tokenizer). Bundled: kimi-k2, deepseek-v3, qwen3-235b-a22b, qwen3-30b-a3b, mixtral-8x7b.")

    @Argument(help: "A checkpoint directory, a config.json, or a bundled model name.") var model: String
    @Option(name: .customLong("recipe"), help: "Recipe (repeatable; default Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0).") var recipes: [RecipeName] = []
    @Option(help: "Context length for the KV cache line.") var context = 32768
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try reportingErrors {
            let chosen = recipes.isEmpty ? [RecipeName.q8_0, .q6_K, .q5_K_M, .q4_K_M, .q4_0] : recipes
            var footprints: [Footprint] = []
            var isDirectory: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory)
            if exists && isDirectory.boolValue {
                footprints = try chosen.map { try Footprint.of(checkpoint: model, recipe: $0) }
            } else {
                let spec: ModelSpec
                if exists {
                    spec = try ModelSpec(configFile: model)
                } else if let preset = Architecture.allCases.lazy.compactMap({ ModelPresets.named(model, architecture: $0) }).first {
                    spec = try ModelSpec(config: preset.config)
                } else {
                    throw ValidationError("\(model) is neither a checkpoint directory, a config.json nor a bundled model name")
                }
                footprints = try chosen.map { try Footprint.of(spec: spec, recipe: $0) }
            }
            let kv = footprints.first?.kvBytesPerToken ?? 0
            if json {
                let rows: [JSONValue] = footprints.map { f in
                    ["recipe": .string(f.recipe.rawValue), "bytes": .integer(Int64(f.fileBytes)), "header_included": .bool(f.headerIncluded),
                     "always_on_bytes": .integer(Int64(f.alwaysOnBytes)), "routed_expert_bytes": .integer(Int64(f.routedExpertBytes)),
                     "active_bytes_per_token": .integer(Int64(f.activeBytesPerToken)),
                     "bytes_by_group": .object(JSONObject(f.bytesByGroup.sorted { $0.key.rawValue < $1.key.rawValue }.map { ($0.key.rawValue, .integer(Int64($0.value))) }))]
                }
                print((["model": .string(model), "kv_bytes_per_token_f16": .integer(Int64(kv)), "context": .integer(Int64(context)),
                        "kv_bytes_at_context": .integer(Int64(kv * context)), "recipes": .array(rows)] as JSONValue).prettyPrinted(), terminator: "")
                return
            }
            print("recipe     file            always-on       routed experts  read per token")
            for f in footprints {
                print(f.recipe.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)
                      + humanBytes(f.fileBytes).padding(toLength: 16, withPad: " ", startingAt: 0)
                      + humanBytes(f.alwaysOnBytes).padding(toLength: 16, withPad: " ", startingAt: 0)
                      + humanBytes(f.routedExpertBytes).padding(toLength: 16, withPad: " ", startingAt: 0)
                      + humanBytes(f.activeBytesPerToken))
            }
            print("KV cache (F16): \(grouped(kv)) B per token, \(humanBytes(kv * context)) at \(grouped(context)) tokens\(footprints.first?.headerIncluded == false ? "; sizes are tensor data (header excluded)" : "")")
        }
    }
}
