// The one tensor taxonomy: what each tensor of a model is for, decided once from the architecture's table
// (`Architectures/`). Recipes, recipe-file rules, offload layouts, planner groups, imatrix keys and the engine's
// weight lookups all switch on roles, never on names.
import TensorFormats

/// The projections of a SwiGLU FFN (Mixtral's w1 / w3 / w2); `gateUp` is gate and up fused in one tensor.
public enum Projection: String, Sendable, Hashable, CaseIterable, Codable {
    case gate, up, down
    case gateUp = "gate_up"
}

/// Attention weights, by their role in the block.
public enum AttentionPart: String, Sendable, Hashable, CaseIterable, Codable {
    case query = "q", key = "k", value = "v", output
    /// MLA: q down-projection, its norm, q up-projection.
    case queryA = "q_a", queryANorm = "q_a_norm", queryB = "q_b"
    /// MLA: joint kv down-projection (with the shared rope key), its norm, kv up-projection.
    case keyValueA = "kv_a_mqa", keyValueANorm = "kv_a_norm", keyValueB = "kv_b"
    /// MLA as llama.cpp stores kv_b: per head the no-position key block (transposed) and the value block.
    case keyB = "k_b", valueB = "v_b"
    /// Per-head q/k RMS norms (Qwen3, GLM-4.5).
    case queryNorm = "q_norm", keyNorm = "k_norm"
    /// gpt-oss per-head attention sinks (one learned logit per head).
    case sinks
    /// DeepSeek-V3.2 / GLM-5 lightning indexer: its query up-projection (from the compressed query), key projection,
    /// key LayerNorm (weight and bias) and per-head weights.
    case indexerQueryB = "indexer_q_b", indexerKey = "indexer_k", indexerKeyNorm = "indexer_k_norm", indexerWeights = "indexer_proj"
    /// Kimi Delta Attention (Kimi-Linear): short convolutions of q, k and v; the forget gate's low-rank pair, its
    /// per-head log decay (`A_log`) and bias (`dt_bias`); the per-head beta projection; the output gate's low-rank
    /// pair and its gated RMS norm.
    case convQuery = "conv_q", convKey = "conv_k", convValue = "conv_v"
    case forgetA = "f_a", forgetB = "f_b", decayLog = "a_log", decayBias = "dt_bias", beta
    case gateA = "g_a", gateB = "g_b", outputNorm = "o_norm"

    /// Norm weights among the attention parts.
    public var isNorm: Bool {
        self == .queryANorm || self == .keyValueANorm || self == .queryNorm || self == .keyNorm || self == .indexerKeyNorm
            || self == .outputNorm
    }
}

/// The tensors a multi-token-prediction layer adds to a decoder layer (DeepSeek-V3, GLM-4.5).
public enum MTPPart: String, Sendable, Hashable, CaseIterable, Codable {
    case embeddingNorm = "enorm", hiddenNorm = "hnorm", projection = "eh_proj"
    case headNorm = "shared_head_norm", head = "shared_head", embedding = "embed_tokens"
    /// Any other tensor of an MTP layer (its attention and experts) as a checkpoint stores it.
    case block
}

/// What a tensor is, with its place: a role of `RoleKind` at a layer (and expert).
public enum TensorRole: Sendable, Hashable {
    case embedding
    case outputHead
    case finalNorm
    case attentionNorm(layer: Int)
    /// The norm before the FFN (the post-attention norm in transformers).
    case feedForwardNorm(layer: Int)
    case attention(layer: Int, part: AttentionPart)
    case router(layer: Int)
    /// DeepSeek / GLM selection bias beside the sigmoid router (`e_score_correction_bias`).
    case routerBias(layer: Int)
    /// One routed expert's projection (checkpoints store experts one by one).
    case routedExpert(layer: Int, expert: Int, projection: Projection)
    /// Every routed expert of a layer in one tensor (GGUF's stacked tensors; transformers v5 fused experts).
    case routedExperts(layer: Int, projection: Projection)
    case sharedExpert(layer: Int, projection: Projection)
    case denseFeedForward(layer: Int, projection: Projection)
    /// A tensor of a multi-token-prediction layer (index ≥ num_hidden_layers).
    case nextTokenPrediction(layer: Int, part: MTPPart)
    case unknown

    /// The layer index, for per-layer roles.
    public var layer: Int? {
        switch self {
        case .attentionNorm(let l), .feedForwardNorm(let l), .attention(let l, _), .router(let l), .routerBias(let l),
            .routedExpert(let l, _, _), .routedExperts(let l, _), .sharedExpert(let l, _), .denseFeedForward(let l, _),
            .nextTokenPrediction(let l, _):
            return l
        case .embedding, .outputHead, .finalNorm, .unknown:
            return nil
        }
    }

    /// The expert index of a single routed expert's role.
    public var expert: Int? {
        if case .routedExpert(_, let e, _) = self { return e }
        return nil
    }

    /// The role without its indices (nil for `.unknown`).
    public var kind: RoleKind? {
        switch self {
        case .embedding: .embedding
        case .outputHead: .outputHead
        case .finalNorm: .finalNorm
        case .attentionNorm: .attentionNorm
        case .feedForwardNorm: .feedForwardNorm
        case .attention(_, let part): .attention(part)
        case .router: .router
        case .routerBias: .routerBias
        case .routedExpert(_, _, let p): .routedExpert(p)
        case .routedExperts(_, let p): .routedExperts(p)
        case .sharedExpert(_, let p): .sharedExpert(p)
        case .denseFeedForward(_, let p): .denseFeedForward(p)
        case .nextTokenPrediction(_, let part): .nextTokenPrediction(part)
        case .unknown: nil
        }
    }

    /// The reporting and policy group this role falls in.
    public var category: RoleCategory { kind?.category ?? .unknown }

    /// The FFN projection of expert, shared-expert and dense-FFN roles.
    public var projection: Projection? {
        switch self {
        case .routedExpert(_, _, let p), .routedExperts(_, let p), .sharedExpert(_, let p), .denseFeedForward(_, let p): p
        default: nil
        }
    }

    /// The same FFN role with another projection (gate → up of the same layer and expert), nil for other roles.
    public func withProjection(_ projection: Projection) -> TensorRole? {
        switch self {
        case .routedExpert(let l, let e, _): .routedExpert(layer: l, expert: e, projection: projection)
        case .routedExperts(let l, _): .routedExperts(layer: l, projection: projection)
        case .sharedExpert(let l, _): .sharedExpert(layer: l, projection: projection)
        case .denseFeedForward(let l, _): .denseFeedForward(layer: l, projection: projection)
        default: nil
        }
    }
}

/// A role without its layer and expert indices: what an architecture table declares.
public enum RoleKind: Sendable, Hashable {
    case embedding, outputHead, finalNorm, attentionNorm, feedForwardNorm
    case attention(AttentionPart)
    case router, routerBias
    case routedExpert(Projection), routedExperts(Projection), sharedExpert(Projection), denseFeedForward(Projection)
    case nextTokenPrediction(MTPPart)

    /// The role of this kind at `layer` (and `expert`); nil when an index the kind needs is missing.
    public func role(layer: Int?, expert: Int? = nil) -> TensorRole? {
        switch self {
        case .embedding: return .embedding
        case .outputHead: return .outputHead
        case .finalNorm: return .finalNorm
        default: break
        }
        guard let l = layer else { return nil }
        switch self {
        case .attentionNorm: return .attentionNorm(layer: l)
        case .feedForwardNorm: return .feedForwardNorm(layer: l)
        case .attention(let part): return .attention(layer: l, part: part)
        case .router: return .router(layer: l)
        case .routerBias: return .routerBias(layer: l)
        case .routedExpert(let p): return expert.map { .routedExpert(layer: l, expert: $0, projection: p) }
        case .routedExperts(let p): return .routedExperts(layer: l, projection: p)
        case .sharedExpert(let p): return .sharedExpert(layer: l, projection: p)
        case .denseFeedForward(let p): return .denseFeedForward(layer: l, projection: p)
        case .nextTokenPrediction(let part): return .nextTokenPrediction(layer: l, part: part)
        case .embedding, .outputHead, .finalNorm: return nil
        }
    }

    public var category: RoleCategory {
        switch self {
        case .embedding: .embedding
        case .outputHead: .outputHead
        case .finalNorm, .attentionNorm, .feedForwardNorm: .norms
        case .attention(let part): part.isNorm ? .norms : .attention
        case .router, .routerBias: .router
        case .routedExpert, .routedExperts: .routedExperts
        case .sharedExpert: .sharedExperts
        case .denseFeedForward: .denseFeedForward
        case .nextTokenPrediction: .nextTokenPrediction
        }
    }

    /// The short name recipe-file rules match with `projection:` ("down", "q", "kv_a", "k_b" …).
    public var partName: String? {
        switch self {
        case .attention(let part): part.rawValue
        case .routedExpert(let p), .routedExperts(let p), .sharedExpert(let p), .denseFeedForward(let p): p.rawValue
        case .nextTokenPrediction(let part): part.rawValue
        default: nil
        }
    }
}

/// Coarse groups of roles, in report order: parameter accounting, recipe-file rules (`role:`), planner tiers.
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

    /// The name a recipe file's `role:` uses (formats/recipe.md): `output` and `norm` there.
    public var recipeName: String {
        switch self {
        case .outputHead: "output"
        case .norms: "norm"
        case .nextTokenPrediction, .unknown: "other"
        default: rawValue
        }
    }
}

/// Which stored piece of a logical weight a tensor is.
public enum TensorPart: String, Sendable, Hashable, Codable {
    case weight, bias
    /// DeepSeek/Kimi FP8 block scale.
    case fp8ScaleInverse = "weight_scale_inv"
    /// compressed-tensors companions, and gpt-oss's MXFP4 blocks (packed) and scales (scale).
    case packed = "weight_packed"
    case scale = "weight_scale"
    case zeroPoint = "weight_zero_point"
    case shape = "weight_shape"
    case groupIndex = "weight_g_idx"

    /// The part a stored companion is.
    public init(_ companion: CompanionSuffix) {
        switch companion {
        case .fp8ScaleInverse: self = .fp8ScaleInverse
        case .packed, .mxfp4Blocks: self = .packed
        case .scale, .mxfp4Scales: self = .scale
        case .zeroPoint: self = .zeroPoint
        case .shape: self = .shape
        case .groupIndex: self = .groupIndex
        }
    }

    /// True for the parts that hold quantization metadata rather than parameters.
    public var isQuantizationCompanion: Bool {
        switch self {
        case .fp8ScaleInverse, .scale, .zeroPoint, .shape, .groupIndex: true
        case .weight, .bias, .packed: false
        }
    }
}

/// A tensor name with its role and part.
public struct ClassifiedTensor: Sendable, Hashable {
    public let name: String
    public let role: TensorRole
    public let part: TensorPart

    public init(name: String, role: TensorRole, part: TensorPart) {
        self.name = name
        self.role = role
        self.part = part
    }
}
