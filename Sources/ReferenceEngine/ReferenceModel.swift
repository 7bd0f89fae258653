// Picks the forward pass for a model's architecture and runs it on weights from a checkpoint or a GGUF.
import Foundation
import ModelCatalog
import TensorFormats

public enum ReferenceModel {
    /// The model at `path`: a safetensors checkpoint directory, or a `.gguf` of the model whose config.json
    /// sits in `configDirectory` (the base checkpoint). `llamaCPUArithmetic`: see GGUFWeights (GGUF only).
    /// A `.gguf` with an expert pack beside it (expert-major layout) runs through a cache of `expertCache` decoded
    /// experts (default 8).
    public static func weights(path: String, configDirectory: String? = nil, llamaCPUArithmetic: Bool = false,
                               expertCache: Int? = nil) throws -> WeightProvider {
        if path.hasSuffix(".gguf") {
            guard let configDirectory else { throw EngineError.unsupported("a GGUF without its base checkpoint's config.json (pass --base)") }
            let spec = try ModelSpec(configFile: (configDirectory as NSString).appendingPathComponent("config.json"))
            if FileManager.default.fileExists(atPath: String(path.dropLast(5)) + ".expert-pack") {
                return try ExpertPackWeights(densePath: path, spec: spec, cacheExperts: expertCache ?? 8)
            }
            return try GGUFWeights(path: path, spec: spec, llamaCPUArithmetic: llamaCPUArithmetic)
        }
        return try CheckpointWeights(path: path)
    }

    /// transformers' `rope_interleave` from config.json (DeepSeek-V3 default: true).
    static func ropeInterleave(_ directory: String) -> Bool {
        let path = (directory as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: path), let config = try? JSONParser.parse([UInt8](data)) else { return true }
        return config["rope_interleave"]?.boolValue ?? config["text_config"]?["rope_interleave"]?.boolValue ?? true
    }

    /// Logits [tokens × vocabulary] of one window; `observer` sees every projection's input.
    public static func logits(weights: WeightProvider, configDirectory: String, tokens: [Int],
                              observer: ActivationObserver? = nil) throws -> [Float] {
        switch weights.spec.architecture {
        case .deepseekV3:
            var engine = try DeepseekV3Forward(weights: weights, ropeInterleave: ropeInterleave(configDirectory))
            engine.observer = observer
            return try engine.logits(tokens: tokens)
        case .qwen3Moe, .mixtral:
            var engine = try GQAMoEForward(weights: weights)
            engine.observer = observer
            return try engine.logits(tokens: tokens)
        case .gptOss, .glm4Moe:
            throw EngineError.unsupported("\(weights.spec.modelType) models (`moeq plan` and `inspect` read them)")
        }
    }

    /// Convenience for a checkpoint directory: logits and the vocabulary size.
    public static func logits(checkpointPath: String, tokens: [Int]) throws -> (logits: [Float], vocabulary: Int) {
        let weights = try CheckpointWeights(path: checkpointPath)
        let directory = (try Checkpoint(path: checkpointPath)).directory
        return (try logits(weights: weights, configDirectory: directory, tokens: tokens), weights.spec.vocabularySize)
    }
}
