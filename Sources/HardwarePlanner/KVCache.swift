// KV-cache bytes as llama.cpp allocates them: MLA keeps only the compressed latent, GQA keeps keys and values for
// every KV head, and sliding-window layers (gpt-oss) keep a bounded ring instead of the whole context
// (formats.md §8).
import ModelCatalog

import QuantKernels

public enum KVCache {
    /// llama.cpp's default physical batch (`-ub`), which the sliding-window cache adds to the window.
    public static let defaultMicroBatch = 512

    /// Bytes per token of context at a llama.cpp cache type (`-ctk/-ctv`): F16/BF16 2 bytes per value, F32 4, block
    /// types their block bytes per value (q8_0: 34/32, q4_0: 18/32). MLA at q8_0: 61 × 576 × 34/32 = 37,332 B,
    /// i.e. 612 B per layer as ik_llama.cpp logs. Sliding-window layers are not counted: they do not grow with
    /// the context (see `bytes(_:context:cacheType:)`).
    public static func bytesPerToken(_ spec: ModelSpec, cacheType: QuantType) -> Int {
        let values = valuesPerToken(spec, layers: fullAttentionLayers(spec))
        let layout = cacheType.layout
        return values * layout.bytesPerBlock / layout.blockSize
    }

    /// Bytes of cache one token adds across the full-attention layers at `bytesPerElement` (2 for F16).
    /// MLA (DeepSeek-V3 / Kimi): one `kv_lora_rank + qk_rope_head_dim` latent per layer, no V cache; DeepSeek-V3.2
    /// adds its indexer's `index_head_dim` key per layer (61 × (576 + 128) × 2 = 85,888 B at F16).
    /// GQA: K and V of `num_key_value_heads × head_dim` per layer.
    public static func bytesPerToken(_ spec: ModelSpec, bytesPerElement: Int = 2) -> Int {
        valuesPerToken(spec, layers: fullAttentionLayers(spec)) * bytesPerElement
    }

    /// The whole cache at `context` tokens: full-attention layers hold every token; sliding-window layers hold
    /// `slidingCells` of them.
    public static func bytes(_ spec: ModelSpec, context: Int, cacheType: QuantType = .f16, microBatch: Int = defaultMicroBatch) -> Int {
        let layout = cacheType.layout
        let full = valuesPerToken(spec, layers: fullAttentionLayers(spec)) * context
        let sliding =
            valuesPerToken(spec, layers: spec.slidingWindowLayers.count) * slidingCells(spec, context: context, microBatch: microBatch)
        return (full + sliding) * layout.bytesPerBlock / layout.blockSize + recurrentStateBytes(spec)
    }

    /// Kimi-Linear's KDA layers keep a fixed state per sequence instead of a cache per token: per layer the last
    /// `convKernel − 1` inputs of the q, k and v convolutions and a headDim × headDim delta-rule state per head, in F32
    /// (llama.cpp's recurrent cache, LCPP src/llama-memory-recurrent.cpp; one sequence). Kimi-Linear-48B-A3B:
    /// 20 × (3 × 3 × 4096 + 32 × 128 × 128) × 4 B = 44.9 MB (42.8 MiB) whatever the context.
    public static func recurrentStateBytes(_ spec: ModelSpec) -> Int {
        guard let linear = spec.linearAttention else { return 0 }
        let width = linear.heads * linear.headDim
        return linear.layers.count * ((linear.convKernel - 1) * 3 * width + linear.heads * linear.headDim * linear.headDim) * 4
    }

    /// Cells a sliding-window layer keeps without `--swa-full`: the window plus one micro-batch (at most the
    /// context), padded to 256 — llama.cpp's iSWA cache (src/llama-kv-cache-iswa.cpp, one sequence). gpt-oss at
    /// the default `-ub 512`: 128 + 512 → 768 cells.
    public static func slidingCells(_ spec: ModelSpec, context: Int, microBatch: Int = defaultMicroBatch) -> Int {
        guard let window = spec.slidingWindow, !spec.slidingWindowLayers.isEmpty else { return 0 }
        return (min(context, window + microBatch) + 255) / 256 * 256
    }

    /// Layers whose cache grows with the context. MTP layers get none (llama.cpp skips them), nor do KDA layers.
    public static func fullAttentionLayers(_ spec: ModelSpec) -> Int {
        spec.layerCount - spec.slidingWindowLayers.count - (spec.linearAttention?.layers.count ?? 0)
    }

    static func valuesPerToken(_ spec: ModelSpec, layers: Int) -> Int {
        // DSA (DeepSeek-V3.2): the indexer's keys, one head of its width per layer, in a second cache of the K type
        // (LCPP src/llama-kv-cache-dsa.cpp).
        let indexerKeys = spec.indexer?.headDim ?? 0
        if let mla = spec.latentAttention { return layers * (mla.keyValueRank + mla.ropeHeadDim + indexerKeys) }
        return 2 * layers * spec.keyValueHeadCount * spec.headDim
    }
}

/// llama.cpp's compute buffer on a device that runs the graph, at micro-batch `ubatch` (formats/hardware/README.md,
/// "Compute buffer"): the logits of the micro-batch (4 bytes × vocabulary per token, the largest tensor of the
/// worst-case graph) plus activations, fitted as 45 F32 values of the hidden width per token.
public enum ComputeBuffer {
    public static let activationWidths = 45
    /// Copies llama.cpp keeps with several GPUs (pipeline parallelism, GGML_SCHED_MAX_COPIES = 4).
    public static let pipelineCopies = 4

    public static func bytes(_ spec: ModelSpec, ubatch: Int = KVCache.defaultMicroBatch) -> Int {
        ubatch * 4 * (spec.vocabularySize + activationWidths * spec.hiddenSize)
    }
}
