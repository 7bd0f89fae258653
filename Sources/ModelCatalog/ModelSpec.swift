// The architecture-level facts of an MoE checkpoint, parsed once from config.json.
import TensorFormats

/// Architectures moeq understands, by their HF `model_type` family.
public enum Architecture: String, Sendable, CaseIterable, Codable {
    /// DeepSeek-V3 and the Kimi K2 family (MLA attention, sigmoid router with bias, shared experts).
    case deepseekV3 = "deepseek_v3"
    /// Qwen3-MoE (GQA with q/k norms, softmax top-k router, no shared experts).
    case qwen3Moe = "qwen3_moe"
    /// Mixtral (GQA, softmax top-2 router).
    case mixtral = "mixtral"
    /// gpt-oss (GQA with biases and sinks, alternating sliding-window layers, softmax over the top-k router
    /// logits, experts with biases, MXFP4 experts at the source). Planned and inspected; not converted yet.
    case gptOss = "gpt_oss"
    /// GLM-4.5 / GLM-4.5-Air (GQA with q/k/v biases and partial rotary, DeepSeek-style sigmoid router with
    /// correction bias, one shared expert, leading dense layers, one MTP layer). Planned and inspected; not converted yet.
    case glm4Moe = "glm4_moe"

    /// True when `moeq convert` and the reference engine handle this architecture.
    public var isConvertible: Bool { self == .deepseekV3 || self == .qwen3Moe || self == .mixtral }

    /// Every `model_type` accepted, and the architecture it maps to.
    public static let modelTypes: [String: Architecture] = [
        "deepseek_v3": .deepseekV3, "kimi_k2": .deepseekV3, "kimi_k25": .deepseekV3,
        "qwen3_moe": .qwen3Moe, "mixtral": .mixtral, "gpt_oss": .gptOss, "glm4_moe": .glm4Moe,
    ]
}

/// How the router turns logits into expert weights.
public enum RouterScoring: String, Sendable, Codable {
    case softmax, sigmoid
}

/// RoPE frequency scaling (`rope_scaling` in released configs, `rope_parameters` in current transformers).
public struct RopeScaling: Sendable, Equatable, Codable {
    public var type: String
    public var factor: Double
    public var originalMaxPositionEmbeddings: Int?
    public var betaFast: Double?
    public var betaSlow: Double?
    public var mscale: Double?
    public var mscaleAllDim: Double?
}

/// Multi-head latent attention dimensions (DeepSeek-V3 / Kimi).
public struct LatentAttention: Sendable, Equatable, Codable {
    /// nil when queries are projected directly (no q LoRA).
    public var queryRank: Int?
    public var keyValueRank: Int
    public var noPositionHeadDim: Int
    public var ropeHeadDim: Int
    public var valueHeadDim: Int
}

/// Everything moeq needs to know about a model's shape, from its config.json.
public struct ModelSpec: Sendable, Equatable {
    public var modelType: String
    public var architecture: Architecture
    public var hiddenSize: Int
    public var layerCount: Int
    public var vocabularySize: Int
    public var headCount: Int
    public var keyValueHeadCount: Int
    /// Per-head dimension for GQA architectures.
    public var headDim: Int
    /// True when config.json states `head_dim` (llama.cpp's converter then writes key/value lengths).
    public var headDimGiven: Bool
    public var latentAttention: LatentAttention?
    /// Dense FFN width (DeepSeek's leading dense layers; unused by all-MoE models).
    public var intermediateSize: Int
    public var expertIntermediateSize: Int
    public var routedExpertCount: Int
    public var sharedExpertCount: Int
    public var expertsPerToken: Int
    /// Layer indices (0-based) whose FFN is a dense MLP instead of MoE.
    public var denseLayers: Set<Int>
    public var routerScoring: RouterScoring
    public var expertGroupCount: Int
    public var expertGroupsUsed: Int
    public var routedScalingFactor: Double
    public var normalizeTopKProbabilities: Bool
    public var ropeTheta: Double
    public var ropeScaling: RopeScaling?
    public var rmsNormEpsilon: Double
    public var maxPositionEmbeddings: Int
    public var tieWordEmbeddings: Bool
    /// Multi-token-prediction layers stored after the main layers (DeepSeek-V3: 1).
    public var nextTokenPredictionLayers: Int
    /// `dtype` / `torch_dtype` as written.
    public var dtype: String?
    public var quantization: SourceQuantization
    /// True when the language model sat under `text_config` (Kimi K2.5 layout).
    public var nestedTextConfig: Bool
    /// Sliding-window attention: the window in tokens and the layers that use it (gpt-oss: 128, even layers).
    public var slidingWindow: Int? = nil
    public var slidingWindowLayers: Set<Int> = []
    /// q/k/v (and for gpt-oss o) projections carry biases.
    public var attentionBias = false
    /// Per-head q/k RMS norms (Qwen3; GLM-4.5 when `use_qk_norm`).
    public var queryKeyNorm = false
    /// Share of each head's dimensions that get rotary embedding (GLM-4.5: 0.5).
    public var partialRotaryFactor = 1.0

    /// True when layer `layer` routes tokens to experts.
    public func isMoELayer(_ layer: Int) -> Bool { !denseLayers.contains(layer) && routedExpertCount > 0 }

    /// Number of MoE layers among the main layers.
    public var moeLayerCount: Int { (0..<layerCount).filter(isMoELayer).count }

    /// Parameters of one routed expert (gate, up and down projections).
    public var parametersPerExpert: Int { 3 * hiddenSize * expertIntermediateSize }
}
