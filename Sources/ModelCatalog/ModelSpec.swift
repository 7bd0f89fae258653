// The architecture-level facts of an MoE checkpoint, parsed once from config.json (or a GGUF header) and
// range-checked there; everything else reads them from here.
import TensorFormats

/// Architectures moeq understands, by their HF `model_type` family. Each has one table in `Architectures/`.
public enum Architecture: String, Sendable, CaseIterable, Codable {
    /// DeepSeek-V3 and the Kimi K2 family (MLA attention, sigmoid router with bias, shared experts).
    case deepseekV3 = "deepseek_v3"
    /// DeepSeek-V3.2: DeepSeek-V3 with a lightning indexer choosing the keys each query attends to (DSA).
    case deepseekV32 = "deepseek_v32"
    /// GLM-5: DeepSeek-V3.2's block (MLA and the lightning indexer, its rope interleaved) with GLM's sizes.
    case glmMoeDsa = "glm_moe_dsa"
    /// Kimi-Linear: Kimi Delta Attention layers between MLA layers without positions, DeepSeek-style MoE.
    case kimiLinear = "kimi_linear"
    /// Qwen3-MoE (GQA with q/k norms, softmax top-k router, no shared experts).
    case qwen3Moe = "qwen3_moe"
    /// Mixtral (GQA, softmax top-2 router).
    case mixtral = "mixtral"
    /// gpt-oss (GQA with biases and sinks, alternating sliding-window layers, softmax over the top-k router
    /// logits, experts with biases, MXFP4 experts at the source).
    case gptOss = "gpt_oss"
    /// GLM-4.5 / GLM-4.5-Air (GQA with q/k/v biases and partial rotary, DeepSeek-style sigmoid router with
    /// correction bias, one shared expert, leading dense layers, one MTP layer).
    case glm4Moe = "glm4_moe"
    /// MiniMax-M2 (GQA with q/k norms over all heads, partial rotary, sigmoid router with a selection bias, every
    /// layer MoE).
    case minimaxM2 = "minimax_m2"

    /// The architecture's tensor and key table.
    public var table: ArchitectureTable {
        switch self {
        case .deepseekV3: .deepseekV3
        case .deepseekV32: .deepseekV32
        case .glmMoeDsa: .glmMoeDsa
        case .kimiLinear: .kimiLinear
        case .qwen3Moe: .qwen3Moe
        case .mixtral: .mixtral
        case .gptOss: .gptOss
        case .glm4Moe: .glm4Moe
        case .minimaxM2: .minimaxM2
        }
    }

    /// True when `moeq convert` and the reference engine handle this architecture.
    public var isConvertible: Bool { table.isConvertible }

    /// Every `model_type` accepted, and the architecture it maps to.
    public static let modelTypes: [String: Architecture] = Dictionary(
        uniqueKeysWithValues: allCases.flatMap { architecture in architecture.table.modelTypes.map { ($0, architecture) } })
}

/// How the router turns logits into expert weights.
public enum RouterScoring: String, Sendable, Codable, CaseIterable {
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
    /// YaRN: floor / ceil the correction range's bounds (transformers' default; gpt-oss sets false).
    public var truncate: Bool = true
}

/// DeepSeek-V3.2's lightning indexer: `heads` heads of `headDim` (the first rope dims rotated) score every earlier
/// key; each query attends to the `topK` best (all of them while there are no more).
public struct SparseIndexer: Sendable, Equatable, Codable {
    public var heads: Int
    public var headDim: Int
    public var topK: Int
    /// Rope on the indexer's rotated dims in interleaved pairs (GLM-5) rather than halves (DeepSeek-V3.2).
    public var interleavedRope: Bool
}

/// Kimi Delta Attention (Kimi-Linear): `heads` heads of `headDim` with short causal convolutions of `convKernel` taps
/// on q, k and v, a per-channel forget gate, and a delta-rule state of headDim × headDim per head.
public struct LinearAttention: Sendable, Equatable, Codable {
    public var heads: Int
    public var headDim: Int
    public var convKernel: Int
    /// 0-based layers with KDA (config.json lists them 1-based).
    public var layers: Set<Int>
}

/// gpt-oss's expert activation constants (config.json `swiglu_alpha`, `swiglu_limit`).
public struct ClampedSwiGLU: Sendable, Equatable, Codable {
    public var alpha: Double
    public var limit: Double
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
    public var modelType = ""
    public var architecture = Architecture.qwen3Moe
    public var hiddenSize = 0
    public var layerCount = 0
    public var vocabularySize = 0
    public var headCount = 0
    public var keyValueHeadCount = 0
    /// Per-head dimension for GQA architectures.
    public var headDim = 0
    /// True when config.json states `head_dim` (llama.cpp's converter then writes key/value lengths).
    public var headDimGiven = false
    public var latentAttention: LatentAttention?
    /// Dense FFN width (DeepSeek's leading dense layers; unused by all-MoE models).
    public var intermediateSize = 0
    public var expertIntermediateSize = 0
    public var routedExpertCount = 0
    public var sharedExpertCount = 0
    public var expertsPerToken = 0
    /// Layer indices (0-based) whose FFN is a dense MLP instead of MoE.
    public var denseLayers: Set<Int> = []
    public var routerScoring = RouterScoring.softmax
    public var expertGroupCount = 1
    public var expertGroupsUsed = 1
    public var routedScalingFactor = 1.0
    public var normalizeTopKProbabilities = false
    public var ropeTheta = 10_000.0
    public var ropeScaling: RopeScaling?
    public var rmsNormEpsilon = 1e-6
    public var maxPositionEmbeddings = 0
    public var tieWordEmbeddings = false
    /// Multi-token-prediction layers stored after the main layers (DeepSeek-V3: 1).
    public var nextTokenPredictionLayers = 0
    /// `dtype` / `torch_dtype` as written.
    public var dtype: String?
    public var quantization = SourceQuantization.none
    /// True when the language model sat under `text_config` (Kimi K2.5 layout).
    public var nestedTextConfig = false
    /// Sliding-window attention: the window in tokens and the layers that use it (gpt-oss: 128, even layers).
    public var slidingWindow: Int? = nil
    public var slidingWindowLayers: Set<Int> = []
    /// gpt-oss's clamped SwiGLU, (up + 1) · g · σ(alpha · g) with g = min(gate, limit), up clamped to ±limit; nil:
    /// plain silu(gate) · up.
    public var clampedSwiGLU: ClampedSwiGLU? = nil
    /// DeepSeek-V3.2's sparse-attention indexer; nil for dense attention.
    public var indexer: SparseIndexer? = nil
    /// Kimi-Linear's Kimi Delta Attention layers (the others MLA); nil when every layer has softmax attention.
    public var linearAttention: LinearAttention? = nil
    /// MLA without rotary positions (Kimi-Linear: q and k's rope parts enter the product unrotated).
    public var latentAttentionWithoutPositions = false
    /// q/k/v (and for gpt-oss o) projections carry biases.
    public var attentionBias = false
    /// Per-head q/k RMS norms (Qwen3; GLM-4.5 when `use_qk_norm`).
    public var queryKeyNorm = false
    /// The q/k norms span all heads of the projection at once (MiniMax-M2) instead of each head.
    public var queryKeyNormAcrossHeads = false
    /// Share of each head's dimensions that get rotary embedding (GLM-4.5: 0.5).
    public var partialRotaryFactor = 1.0
    /// transformers' `rope_interleave` (DeepSeek-V3: true unless config.json says otherwise).
    public var ropeInterleave = true

    /// True when layer `layer` routes tokens to experts.
    public func isMoELayer(_ layer: Int) -> Bool { !denseLayers.contains(layer) && routedExpertCount > 0 }

    /// Number of MoE layers among the main layers.
    public var moeLayerCount: Int { routedExpertCount > 0 ? layerCount - denseLayers.filter { $0 < layerCount }.count : 0 }

    /// Parameters of one routed expert (gate, up and down projections).
    public var parametersPerExpert: Int { 3 * hiddenSize * expertIntermediateSize }

    /// What layer `layer` is: a dense or MoE main layer, a multi-token-prediction layer, or none (out of range).
    public func layerKind(_ layer: Int) -> LayerKinds? {
        if layer >= 0 && layer < layerCount {
            let feedForward: LayerKinds = isMoELayer(layer) ? .moe : .dense
            // Hybrid models add the layer's attention kind.
            guard let linear = linearAttention else { return feedForward }
            return feedForward.union(linear.layers.contains(layer) ? .linearAttention : .fullAttention)
        }
        if layer >= layerCount && layer < layerCount + nextTokenPredictionLayers { return .mtp }
        return nil
    }

    /// Layers of each kind: dense and MoE main layers, MTP layers.
    public func layerCount(of kinds: LayerKinds) -> Int {
        (kinds.contains(.dense) ? layerCount - moeLayerCount : 0) + (kinds.contains(.moe) ? moeLayerCount : 0)
            + (kinds.contains(.mtp) ? nextTokenPredictionLayers : 0)
    }
}
