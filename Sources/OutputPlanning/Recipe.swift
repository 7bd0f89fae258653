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
    /// Low K-quant mixes.
    case q3_K_L = "Q3_K_L", q3_K_M = "Q3_K_M", q3_K_S = "Q3_K_S", q2_K = "Q2_K", q2_K_S = "Q2_K_S"
    /// i-quant mixes, 3.66 down to 1.75 bits per weight (llama-quantize's names; IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M
    /// and IQ3_XXS need an importance matrix, as there).
    case iq3_m = "IQ3_M", iq3_s = "IQ3_S", iq3_xs = "IQ3_XS", iq3_xxs = "IQ3_XXS"
    case iq2_m = "IQ2_M", iq2_s = "IQ2_S", iq2_xs = "IQ2_XS", iq2_xxs = "IQ2_XXS", iq1_m = "IQ1_M", iq1_s = "IQ1_S"
    /// compressed-tensors INT4 group-32 routed experts repacked losslessly into Q4_0 (exact F32 where a scale
    /// is not F16-exact); every other quantizable tensor Q8_0.
    case int4Native = "INT4-NATIVE"
    /// llama-quantize's MXFP4_MOE: every 3-D expert tensor MXFP4, every other quantizable tensor (output included)
    /// Q8_0 — the layout of the published gpt-oss GGUFs.
    case mxfp4Moe = "MXFP4_MOE"

    /// The dimensions a tensor is written with: as llama.cpp's converter writes them for F32 / F16 / BF16, as
    /// llama-quantize writes them (ggml_n_dims: trailing 1s dropped) for every quantizing recipe.
    public func dimensions(of tensor: GGUFTensorPlan) -> [Int] {
        [.f32, .f16, .bf16].contains(self) ? tensor.dimensions : tensor.trimmedDimensions
    }

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
        case .q2_K: 10
        case .q3_K_S: 11
        case .q3_K_M: 12
        case .q3_K_L: 13
        case .iq2_xxs: 19
        case .iq2_xs: 20
        case .q2_K_S: 21
        case .iq3_xs: 22
        case .iq3_xxs: 23
        case .iq1_s: 24
        case .iq4_nl: 25
        case .iq3_s: 26
        case .iq3_m: 27
        case .iq2_s: 28
        case .iq2_m: 29
        case .iq4_xs: 30
        case .iq1_m: 31
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
        case .q3_K_L, .q3_K_M, .q3_K_S: .q3_K
        case .q2_K, .q2_K_S: .q2_K
        case .iq3_m, .iq3_s, .iq3_xs: .iq3_s
        case .iq3_xxs: .iq3_xxs
        case .iq2_m: .iq2_s
        case .iq2_s, .iq2_xs: .iq2_xs
        case .iq2_xxs: .iq2_xxs
        case .iq1_m: .iq1_m
        case .iq1_s: .iq1_s
        }
    }

    /// The ≤ 2-bit mixes llama-quantize gives its own rules (IQ2_XXS, IQ2_XS, IQ2_S, IQ2_M, IQ1_S, IQ1_M).
    var isTwoBitFamily: Bool { [.iq2_xxs, .iq2_xs, .iq2_s, .iq2_m, .iq1_s, .iq1_m].contains(self) }

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

    static func category(_ plan: GGUFTensorPlan) -> LlamaQuantizeCategory { LlamaQuantizeCategory(plan) }

    /// attn_v, attn_qkv and attn_kv_b share one rule and one counter (`category_is_attn_v`).
    static func sharesTheAttentionVRule(_ plan: GGUFTensorPlan) -> Bool {
        [.attentionV, .attentionQKV, .attentionKVB].contains(category(plan))
    }

    /// Types for every plan, in order.
    public func types(for plans: [GGUFTensorPlan]) -> [QuantType] {
        var counters = Counters(attentionVCount: plans.filter(RecipeRules.sharesTheAttentionVRule).count)
        let tied = !plans.contains { $0.role == .outputHead }
        return plans.map { plan in
            var type = chosen(plan, &counters, tiedEmbeddings: tied)
            if plan.quantizable && recipe.isQuantizedMixture { type = RecipeRules.fallback(type, width: plan.rowWidth) }
            return type
        }
    }

    /// llama-quantize's running counts (`i_attention_wv`, `i_ffn_down`), which some rules read.
    struct Counters {
        let attentionVCount: Int
        var attentionV = 0
        var down = 0
    }

    /// `llama_tensor_get_type_impl` for one tensor (src/llama-quant.cpp), in its order of cases.
    private func chosen(_ plan: GGUFTensorPlan, _ counters: inout Counters, tiedEmbeddings: Bool) -> QuantType {
        // 1-D tensors, norms, routers and biases stay F32, as llama.cpp's converter writes them.
        guard plan.quantizable else { return .f32 }
        let base = recipe.baseType
        guard recipe.isQuantizedMixture else { return base }
        let category = RecipeRules.category(plan)
        if category == .output || (tiedEmbeddings && category == .tokenEmbedding) {
            if recipe == .mxfp4Moe || plan.rowWidth % base.blockSize != 0 { return .q8_0 }
            if [.iq2_xxs, .iq2_xs, .iq3_xxs, .iq1_s, .iq2_s, .iq2_m, .iq1_m].contains(recipe) { return .q5_K }
            return base == .q8_0 ? .q8_0 : .q6_K
        }
        if recipe == .mxfp4Moe { return plan.dimensions.count >= 3 && plan.dimensions[2] > 1 ? .mxfp4 : .q8_0 }
        let layer = plan.layer ?? 0
        let gqa = queryHeadsPerKeyValueHead
        if category == .tokenEmbedding {
            switch recipe {
            case .iq2_xxs, .iq2_xs, .iq1_s, .iq1_m: return .q2_K
            case .iq2_s, .iq2_m, .iq3_xxs: return .iq3_s
            default: return base
            }
        }
        let attentionV = RecipeRules.sharesTheAttentionVRule(plan)
        if recipe.isTwoBitFamily {
            let wider: QuantType = recipe == .iq2_s || recipe == .iq2_m ? .iq3_s : .q2_K
            if attentionV {
                counters.attentionV += 1
                return gqa >= 4 || expertCount >= 4 ? .q4_K : wider
            }
            if expertCount == 8 && category == .attentionK { return .q4_K }
            if category == .down {
                defer { counters.down += 1 }
                return counters.down < layerCount / 8 ? wider : base
            }
            if category == .attentionOutput {
                if expertCount == 8 { return .q5_K }
                if recipe == .iq1_s || recipe == .iq1_m { return .iq2_xxs }
                if recipe == .iq2_s || recipe == .iq2_m { return .iq3_s }
            }
            return base
        }
        switch category {
        case .attentionV, .attentionQKV, .attentionKVB:
            var type = base
            let index = counters.attentionV
            counters.attentionV += 1
            switch recipe {
            case .q2_K: type = gqa >= 4 ? .q4_K : .q3_K
            case .q2_K_S: if gqa >= 4 { type = .q4_K }
            case .iq3_xxs: type = gqa >= 4 ? .q4_K : !hasImportance ? .iq3_s : .iq3_xxs
            case .iq3_xs, .iq3_s: if gqa >= 4 { type = .q4_K }
            case .iq3_m: type = .q4_K
            case .q3_K_M: type = index < 2 ? .q5_K : .q4_K
            case .q3_K_L: type = .q5_K
            case .iq4_nl, .iq4_xs: if gqa >= 4 { type = .q5_K }
            case .q4_K_M, .q5_K_M: if RecipeRules.useMoreBits(index, counters.attentionVCount) { type = .q6_K }
            case .q4_K_S: if index < 4 { type = .q5_K }
            default: break
            }
            if expertCount == 8 { type = .q8_0 }
            return type
        case .attentionK:
            if expertCount == 8 { return .q8_0 }
            if recipe == .iq3_xs { return .iq3_xxs }
            if recipe == .iq3_xxs { return .iq2_s }
            return base
        case .attentionQ:
            if recipe == .iq3_xs { return .iq3_xxs }
            if recipe == .iq3_xxs { return .iq2_s }
            return base
        case .down:
            // With experts, llama-quantize reads the layer from the name; without, it counts ffn_down tensors.
            let i = expertCount > 1 ? layer : counters.down, n = layerCount
            counters.down += 1
            switch recipe {
            case .q2_K: return .q3_K
            case .q2_K_S: return i < n / 8 ? .q4_K : base
            case .iq3_xxs where !hasImportance: return i < n / 8 ? .q4_K : .q3_K
            case .q3_K_M: return i < n / 16 ? .q5_K : .q4_K
            case .iq3_m: return i < n / 8 || (expertCount == 8 && RecipeRules.useMoreBits(i, n)) ? .q4_K : base
            case .q3_K_L: return .q5_K
            case .q4_K_M: return RecipeRules.useMoreBits(i, n) ? .q6_K : base
            case .iq4_nl, .iq4_xs: return i < n / 8 && !hasImportance ? .q5_K : base
            case .q5_K_M: return RecipeRules.useMoreBits(i, n) ? .q6_K : base
            case .q4_K_S: return i < n / 8 ? .q5_K : base
            case .q4_0: return hasImportance && i < n / 8 ? .q4_1 : base
            default: return base
            }
        case .attentionOutput:
            if expertCount == 8 {
                let bumped: [RecipeName] = [.q2_K, .iq3_xs, .iq3_xxs, .q3_K_S, .q3_K_M, .iq4_nl, .q4_K_S, .q4_K_M, .iq3_s, .iq3_m, .iq4_xs]
                return bumped.contains(recipe) ? .q5_K : base
            }
            switch recipe {
            case .q2_K: return .q3_K
            case .iq3_xxs: return .iq3_s
            case .q3_K_M, .iq3_m: return .q4_K
            case .q3_K_L: return .q5_K
            default: return base
            }
        case .gate, .up:
            let n = layerCount
            return recipe == .iq3_xs && layer >= n / 8 && layer < 7 * n / 8 ? .iq3_xxs : base
        default:
            return base
        }
    }

    /// llama-quantize's `tensor_requires_imatrix`: very-low-bit targets (and Q2_K inside a Q2_K_S file) other than
    /// token_embd / output refuse to quantize without importance data.
    public func requiresImportance(_ plan: GGUFTensorPlan, type: QuantType) -> Bool {
        if plan.role == .outputHead || plan.role == .embedding || !plan.quantizable { return false }
        switch type {
        case .iq3_xxs, .iq2_xxs, .iq2_xs, .iq2_s, .iq1_m, .iq1_s: return true
        case .q2_K: return recipe == .q2_K_S
        default: return false
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
        case .iq4_xs, .iq3_s, .iq3_xxs, .iq2_s, .iq2_xs, .iq2_xxs, .iq1_m, .iq1_s: replacement = .iq4_nl
        default: replacement = type
        }
        return width % replacement.blockSize == 0 ? replacement : .f16
    }
}
