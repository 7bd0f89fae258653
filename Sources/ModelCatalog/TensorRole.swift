// What each tensor of a checkpoint is for, decided once from its name; all policy switches on this.

/// The three projections of a SwiGLU FFN (Mixtral's w1 / w3 / w2).
public enum Projection: String, Sendable, Hashable, CaseIterable, Codable {
    case gate, up, down
}

/// Attention weights, by their role in the block.
public enum AttentionPart: String, Sendable, Hashable, CaseIterable, Codable {
    case query, key, value, output
    /// MLA: q down-projection, its norm, q up-projection.
    case queryA, queryANorm, queryB
    /// MLA: joint kv down-projection (with the shared rope key), its norm, kv up-projection.
    case keyValueA, keyValueANorm, keyValueB
    /// Qwen3 per-head q/k RMS norms.
    case queryNorm, keyNorm
    /// gpt-oss per-head attention sinks (one learned logit per head).
    case sinks
}

/// Fused expert tensors as transformers v5 saves them (`mlp.experts.gate_up_proj` `[E, 2·ff, H]`).
public enum FusedExpertPart: String, Sendable, Hashable, Codable {
    case gateUp, down
}

/// The role of a tensor in the model.
public enum TensorRole: Sendable, Hashable {
    case embedding
    case outputHead
    case finalNorm
    case attentionNorm(layer: Int)
    case feedForwardNorm(layer: Int)
    case attention(layer: Int, part: AttentionPart)
    case router(layer: Int)
    case routerBias(layer: Int)
    case routedExpert(layer: Int, expert: Int, projection: Projection)
    case routedExpertsFused(layer: Int, part: FusedExpertPart)
    case sharedExpert(layer: Int, projection: Projection)
    case denseFeedForward(layer: Int, projection: Projection)
    /// Anything in a multi-token-prediction layer (index ≥ num_hidden_layers); loaders skip these.
    case nextTokenPrediction(layer: Int)
    case unknown

    /// The layer index, for per-layer roles.
    public var layer: Int? {
        switch self {
        case .attentionNorm(let l), .feedForwardNorm(let l), .attention(let l, _), .router(let l), .routerBias(let l),
             .routedExpert(let l, _, _), .routedExpertsFused(let l, _), .sharedExpert(let l, _), .denseFeedForward(let l, _),
             .nextTokenPrediction(let l):
            return l
        case .embedding, .outputHead, .finalNorm, .unknown:
            return nil
        }
    }

    /// The reporting bucket this role falls in.
    public var category: RoleCategory {
        switch self {
        case .embedding: .embedding
        case .outputHead: .outputHead
        case .finalNorm, .attentionNorm, .feedForwardNorm: .norms
        case .attention(_, let part): part == .queryANorm || part == .keyValueANorm || part == .queryNorm || part == .keyNorm ? .norms : .attention
        case .router, .routerBias: .router
        case .routedExpert, .routedExpertsFused: .routedExperts
        case .sharedExpert: .sharedExperts
        case .denseFeedForward: .denseFeedForward
        case .nextTokenPrediction: .nextTokenPrediction
        case .unknown: .unknown
        }
    }
}

/// Coarse groups of roles for accounting and reports, in report order.
public enum RoleCategory: String, Sendable, CaseIterable, Codable, Comparable {
    case embedding, attention, norms, router
    case denseFeedForward = "dense_ffn"
    case sharedExperts = "shared_experts"
    case routedExperts = "routed_experts"
    case outputHead = "lm_head"
    case nextTokenPrediction = "mtp"
    case unknown

    public static func < (a: RoleCategory, b: RoleCategory) -> Bool {
        (allCases.firstIndex(of: a) ?? 0) < (allCases.firstIndex(of: b) ?? 0)
    }
}

/// Which stored piece of a logical weight a tensor is.
public enum TensorPart: String, Sendable, Hashable, Codable {
    case weight, bias
    /// DeepSeek/Kimi FP8 block scale (`weight_scale_inv`).
    case fp8ScaleInverse = "weight_scale_inv"
    /// compressed-tensors companions.
    case packed = "weight_packed"
    case scale = "weight_scale"
    case zeroPoint = "weight_zero_point"
    case shape = "weight_shape"
    case groupIndex = "weight_g_idx"
    /// A tensor without a recognised suffix (e.g. `e_score_correction_bias`, Qwen's norm weights are `.weight`).
    case other

    /// True for the parts that hold quantization metadata rather than parameters.
    public var isQuantizationCompanion: Bool {
        switch self {
        case .fp8ScaleInverse, .scale, .zeroPoint, .shape, .groupIndex: true
        case .weight, .bias, .packed, .other: false
        }
    }
}

/// A tensor name with its role and part.
public struct ClassifiedTensor: Sendable, Hashable {
    public let name: String
    public let role: TensorRole
    public let part: TensorPart
}
