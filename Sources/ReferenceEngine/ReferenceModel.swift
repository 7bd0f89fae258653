// Picks the forward pass for a checkpoint's architecture.
import Foundation
import ModelCatalog
import TensorFormats

public enum ReferenceModel {
    /// Logits [tokens × vocabulary] of one window, and the vocabulary size.
    public static func logits(checkpointPath: String, tokens: [Int]) throws -> (logits: [Float], vocabulary: Int) {
        let checkpoint = try Checkpoint(path: checkpointPath)
        let spec = try ModelSpec(configFile: (checkpoint.directory as NSString).appendingPathComponent("config.json"))
        switch spec.architecture {
        case .deepseekV3:
            let engine = try DeepseekV3Forward(checkpointPath: checkpointPath)
            return (try engine.logits(tokens: tokens), spec.vocabularySize)
        case .qwen3Moe, .mixtral:
            let engine = try GQAMoEForward(checkpointPath: checkpointPath)
            return (try engine.logits(tokens: tokens), spec.vocabularySize)
        }
    }
}
