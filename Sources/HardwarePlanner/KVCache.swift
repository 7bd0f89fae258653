// KV-cache bytes per token as llama.cpp allocates them: MLA keeps only the compressed latent, GQA keeps
// keys and values for every KV head (formats.md §8).
import ModelCatalog

import QuantKernels

public enum KVCache {
    /// Bytes per token at a llama.cpp cache type (`-ctk/-ctv`): F16/BF16 2 bytes per value, F32 4, block types
    /// their block bytes per value (q8_0: 34/32, q4_0: 18/32). MLA at q8_0: 61 × 576 × 34/32 = 37,332 B, i.e.
    /// 612 B per layer as ik_llama.cpp logs.
    public static func bytesPerToken(_ spec: ModelSpec, cacheType: QuantType) -> Int {
        let values = bytesPerToken(spec, bytesPerElement: 1)
        let layout = cacheType.layout
        return values * layout.bytesPerBlock / layout.blockSize
    }

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
