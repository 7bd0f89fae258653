// llama-quantize's tensor categories (llama.cpp src/llama-quant.cpp `tensor_get_category`), which its per-tensor
// rules switch on. They come from GGUF name substrings, not from roles: MLA's attn_q_a / attn_q_b / attn_k_b /
// attn_v_b are "other", and "ffn_down" covers ffn_down, ffn_down_exps and ffn_down_shexp (as "ffn_gate" covers the
// router, which is never quantized). The names live here with the other GGUF names.

public enum LlamaQuantizeCategory: Sendable, Equatable {
    case output, tokenEmbedding, attentionQKV, attentionKVB, attentionV, attentionK, attentionQ, attentionOutput
    case up, gate, down, other

    /// Substring → category, in `tensor_get_category`'s order (the first match wins).
    private static let patterns: [(String, LlamaQuantizeCategory)] = [
        ("attn_qkv.weight", .attentionQKV), ("attn_kv_b.weight", .attentionKVB), ("attn_v.weight", .attentionV),
        ("attn_k.weight", .attentionK), ("attn_q.weight", .attentionQ), ("attn_output.weight", .attentionOutput),
        ("ffn_up", .up), ("ffn_gate", .gate), ("ffn_down", .down),
    ]

    public init(_ plan: GGUFTensorPlan) {
        if plan.role == .outputHead {
            self = .output
        } else if plan.role == .embedding {
            self = .tokenEmbedding
        } else {
            self = Self.patterns.first { plan.name.contains($0.0) }?.1 ?? .other
        }
    }
}
