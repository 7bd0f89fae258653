// Picks the forward pass for a model's architecture and runs it on weights from a checkpoint or a GGUF.
import Foundation
import ModelCatalog
import TensorFormats

public enum ReferenceModel {
    /// The model at `path`: a safetensors checkpoint directory, or a `.gguf` of the model whose config.json
    /// sits in `configDirectory` (the base checkpoint). `llamaCPUArithmetic`: see GGUFWeights (GGUF only).
    /// A `.gguf` with an expert pack beside it (expert-major layout) runs through a cache of `expertCache` decoded
    /// experts (default 8).
    public static func weights(
        path: String, configDirectory: String? = nil, llamaCPUArithmetic: Bool = false,
        expertCache: Int? = nil
    ) throws -> WeightProvider {
        if path.hasSuffix(".gguf") {
            guard let configDirectory else {
                throw EngineError.unsupported("a GGUF without its base checkpoint's config.json (pass --base)")
            }
            let spec = try ModelSpec(configFile: (configDirectory as NSString).appendingPathComponent("config.json"))
            guard spec.architecture.isConvertible else {
                throw EngineError.unsupported("\(spec.modelType) models (`moeq plan` and `inspect` read them)")
            }
            let weights: WeightProvider
            if PositionalFile.exists(ExpertPackFile.path(forDense: path)) {
                weights = try ExpertPackWeights(densePath: path, spec: spec, cacheExperts: expertCache ?? 8)
            } else {
                weights = try GGUFWeights(path: path, spec: spec, llamaCPUArithmetic: llamaCPUArithmetic)
            }
            try checkComplete(weights, source: path)
            return weights
        }
        return try CheckpointWeights(path: path)
    }

    /// Every tensor the forward pass reads is there (main layers only; MTP layers are not run).
    static func checkComplete(_ weights: WeightProvider, source: String) throws {
        let layout = weights.spec.tensorLayout
        for tensor in layout.expectedTensors() where tensor.part == layout.storedPart(of: tensor.role) {
            if case .nextTokenPrediction = tensor.role { continue }
            // Experts fused per layer in the checkpoint (gpt-oss) are per-expert gate / up / down in a GGUF.
            if case .routedExperts(let l, let projection) = tensor.role, !weights.has(tensor.role) {
                let parts: [Projection] = projection == .gateUp ? [.gate, .up] : [projection]
                if parts.allSatisfy({ weights.has(.routedExpert(layer: l, expert: 0, projection: $0)) }) { continue }
            }
            if !weights.has(tensor.role) { throw EngineError.missingTensor(file: source, tensor: tensor.name) }
        }
    }

    /// The architecture's forward pass over `weights`.
    public static func engine(weights: WeightProvider) throws -> LayerForward {
        switch weights.spec.architecture {
        case .deepseekV3, .deepseekV32, .glmMoeDsa, .kimiLinear: return try DeepseekV3Forward(weights: weights)
        case .qwen3Moe, .mixtral, .glm4Moe, .minimaxM2, .gptOss: return try GQAMoEForward(weights: weights)
        }
    }

    /// Logits [tokens × vocabulary] of one window; `observer` sees every projection's input.
    public static func logits(weights: WeightProvider, tokens: [Int], observer: ActivationObserver? = nil) throws -> [Float] {
        guard !tokens.isEmpty else { throw EngineError.noWork("an empty window") }
        var engine = try engine(weights: weights)
        engine.observer = observer
        return try engine.logits(tokens: tokens)
    }

    /// Convenience for a checkpoint directory: logits and the vocabulary size.
    public static func logits(checkpointPath: String, tokens: [Int]) throws -> (logits: [Float], vocabulary: Int) {
        let weights = try CheckpointWeights(path: checkpointPath)
        return (try logits(weights: weights, tokens: tokens), weights.spec.vocabularySize)
    }
}
