// Named recipes: which QuantType each GGUF tensor gets, as typed rules over tensor roles (what llama-quantize
// matches by name: attn_v, attn_k, attn_output, ffn_down…) and layer index (LCPP src/llama-quant.cpp
// `llama_tensor_get_type_impl`, formats.md §6.4).
import ModelCatalog
import QuantKernels

public enum RecipeName: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", q8_0 = "Q8_0", q6_K = "Q6_K"
    case q5_K_M = "Q5_K_M", q5_K_S = "Q5_K_S", q4_K_M = "Q4_K_M", q4_K_S = "Q4_K_S", q4_0 = "Q4_0"
    /// Non-linear 4-bit: IQ4_XS (256-value super-blocks, 4.25 bpw) and IQ4_NL (32-value blocks, 4.5 bpw).
    case iq4_xs = "IQ4_XS", iq4_nl = "IQ4_NL"
    /// compressed-tensors INT4 group-32 routed experts repacked losslessly into Q4_0 (exact F32 where a scale
    /// is not F16-exact); every other quantizable tensor Q8_0.
    case int4Native = "INT4-NATIVE"
    /// llama-quantize's MXFP4_MOE: every 3-D expert tensor MXFP4, every other quantizable tensor (output included)
    /// Q8_0 — the layout of the published gpt-oss GGUFs.
    case mxfp4Moe = "MXFP4_MOE"

    /// `general.file_type` (llama_ftype).
    public var fileType: UInt32 {
        switch self {
        case .f32: 0
        case .f16: 1
        case .q4_0, .int4Native: 2
        case .q8_0: 7
        case .q4_K_S: 14
        case .q4_K_M: 15
        case .q5_K_S: 16
        case .q5_K_M: 17
        case .q6_K: 18
        case .iq4_nl: 25
        case .iq4_xs: 30
        case .bf16: 32
        case .mxfp4Moe: 38
        }
    }

    /// The base type quantizable tensors get before the mixture's exceptions.
    public var baseType: QuantType {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .q8_0, .int4Native, .mxfp4Moe: .q8_0
        case .q6_K: .q6_K
        case .q5_K_M, .q5_K_S: .q5_K
        case .q4_K_M, .q4_K_S: .q4_K
        case .q4_0: .q4_0
        case .iq4_nl: .iq4_nl
        case .iq4_xs: .iq4_xs
        }
    }

    public var isQuantizedMixture: Bool { ![.f32, .f16, .bf16].contains(self) }
}

/// Assigns types to a model's GGUF tensors, walking them in file order as llama-quantize does (its
/// attn_v counter depends on that order).
public struct RecipeRules: Sendable {
    public let recipe: RecipeName
    public let layerCount: Int
    public let expertCount: Int
    /// llama.cpp's `n_gqa()`: query heads per KV head as the GGUF states them (MLA files state one KV head).
    public let queryHeadsPerKeyValueHead: Int
    public let hasImportance: Bool

    public init(recipe: RecipeName, spec: ModelSpec, hasImportance: Bool = false) {
        self.recipe = recipe
        layerCount = spec.layerCount
        expertCount = spec.routedExpertCount
        let keyValueHeads = spec.latentAttention == nil ? spec.keyValueHeadCount : 1
        queryHeadsPerKeyValueHead = keyValueHeads > 0 ? spec.headCount / keyValueHeads : 0
        self.hasImportance = hasImportance
    }

    /// llama-quantize's `use_more_bits`: the first and last eighth of layers and every third in between.
    static func useMoreBits(_ layer: Int, _ layers: Int) -> Bool {
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2
    }

    /// Types for every plan, in order.
    public func types(for plans: [GGUFTensorPlan]) -> [QuantType] {
        let attentionVCount = plans.filter(RecipeRules.sharesTheAttentionVRule).count
        var attentionVIndex = 0
        let tied = !plans.contains { $0.role == .outputHead }
        return plans.map { plan in
            var type = chosen(plan, attentionVIndex: attentionVIndex, attentionVCount: attentionVCount, tiedEmbeddings: tied)
            if RecipeRules.sharesTheAttentionVRule(plan) { attentionVIndex += 1 }
            if plan.quantizable && recipe.isQuantizedMixture { type = RecipeRules.fallback(type, width: plan.rowWidth) }
            return type
        }
    }

    /// attn_v (and attn_qkv / attn_kv_b, which no converted architecture has) share one rule and one counter.
    static func sharesTheAttentionVRule(_ plan: GGUFTensorPlan) -> Bool {
        if case .attention(_, .value) = plan.role { return plan.part == .weight }
        return false
    }

    private func chosen(_ plan: GGUFTensorPlan, attentionVIndex: Int, attentionVCount: Int, tiedEmbeddings: Bool) -> QuantType {
        // 1-D tensors, norms, routers and biases stay F32, as llama.cpp's converter writes them.
        guard plan.quantizable else { return .f32 }
        let base = recipe.baseType
        guard recipe.isQuantizedMixture else { return base }
        if recipe == .mxfp4Moe { return plan.dimensions.count >= 3 && plan.dimensions[2] > 1 ? .mxfp4 : .q8_0 }
        if plan.role == .outputHead || (tiedEmbeddings && plan.role == .embedding) {
            if plan.rowWidth % base.blockSize != 0 { return .q8_0 }
            return base == .q8_0 ? .q8_0 : .q6_K
        }
        let layer = plan.layer ?? 0
        switch plan.role {
        case .attention(_, .value):
            var type = base
            if (recipe == .q4_K_M || recipe == .q5_K_M) && RecipeRules.useMoreBits(attentionVIndex, attentionVCount) {
                type = .q6_K
            } else if recipe == .q4_K_S && attentionVIndex < 4 {
                type = .q5_K
            } else if (recipe == .iq4_nl || recipe == .iq4_xs) && queryHeadsPerKeyValueHead >= 4 {
                type = .q5_K
            }
            if expertCount == 8 { type = .q8_0 }
            return type
        case .attention(_, .key):
            return expertCount == 8 ? .q8_0 : base
        case .attention(_, .output):
            return expertCount == 8 && [.q4_K_S, .q4_K_M, .iq4_nl, .iq4_xs].contains(recipe) ? .q5_K : base
        case .denseFeedForward(_, .down), .routedExperts(_, .down), .sharedExpert(_, .down):
            switch recipe {
            case .q4_K_M, .q5_K_M: return RecipeRules.useMoreBits(layer, layerCount) ? .q6_K : base
            case .q4_K_S: return layer < layerCount / 8 ? .q5_K : base
            case .q4_0: return hasImportance && layer < layerCount / 8 ? .q4_1 : base
            case .iq4_nl, .iq4_xs: return !hasImportance && layer < layerCount / 8 ? .q5_K : base
            default: return base
            }
        default:
            return base
        }
    }

    /// llama-quantize's fallback when a row is not a whole number of the type's blocks.
    public static func fallback(_ type: QuantType, width: Int) -> QuantType {
        guard width % type.blockSize != 0 else { return type }
        let replacement: QuantType
        switch type {
        case .q2_K, .q3_K: replacement = .q4_0
        case .q4_K: replacement = .q5_0
        case .q5_K: replacement = .q5_1
        case .q6_K: replacement = .q8_0
        case .iq4_xs: replacement = .iq4_nl
        default: replacement = type
        }
        return width % replacement.blockSize == 0 ? replacement : .f16
    }
}
