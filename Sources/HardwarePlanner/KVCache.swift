// KV-cache bytes per token as llama.cpp allocates them: MLA keeps only the compressed latent, GQA keeps
// keys and values for every KV head (formats.md §8).
import ModelCatalog

public enum KVCache {
    /// Bytes of cache one token adds across all layers at `bytesPerElement` (2 for F16).
    /// MLA (DeepSeek-V3 / Kimi): one `kv_lora_rank + qk_rope_head_dim` latent per layer, no V cache.
    /// GQA: K and V of `num_key_value_heads × head_dim` per layer.
    public static func bytesPerToken(_ spec: ModelSpec, bytesPerElement: Int = 2) -> Int {
        if let mla = spec.latentAttention {
            return spec.layerCount * (mla.keyValueRank + mla.ropeHeadDim) * bytesPerElement
        }
        return 2 * spec.layerCount * spec.keyValueHeadCount * spec.headDim * bytesPerElement
    }
}
