// KV cache per token: MLA latent only (DeepSeek-V3 / Kimi: 70,272 B at F16), GQA K+V.
import Foundation
import Testing
import HardwarePlanner
import ModelCatalog
import QuantKernels

@Test func mlaCacheForKimiAndDeepseek() throws {
    for name in ["kimi-k2", "deepseek-v3"] {
        let spec = try ModelSpec(config: try #require(ModelPresets.named(name, architecture: .deepseekV3)).config)
        #expect(KVCache.bytesPerToken(spec) == 70_272)  // 61 layers × 576 × 2 B
    }
}

@Test func gqaCacheForQwenAndMixtral() throws {
    let qwen = try ModelSpec(config: try #require(ModelPresets.named("qwen3-30b-a3b", architecture: .qwen3Moe)).config)
    #expect(KVCache.bytesPerToken(qwen) == 96 * 1024)  // 2 × 48 × 4 × 128 × 2 B
    let mixtral = try ModelSpec(config: try #require(ModelPresets.named("mixtral-8x7b", architecture: .mixtral)).config)
    #expect(KVCache.bytesPerToken(mixtral) == 128 * 1024)  // 2 × 32 × 8 × 128 × 2 B
}

/// Quantized cache types cost their block bytes per value: DeepSeek-V3's MLA latent at q8_0 is 612 B per layer
/// and token, the figure ik_llama.cpp logs (1166.6 MiB at 32K context for 61 layers).
@Test func quantizedCacheTypes() throws {
    let deepseek = try ModelSpec(config: try #require(ModelPresets.named("deepseek-v3", architecture: .deepseekV3)).config)
    #expect(KVCache.bytesPerToken(deepseek, cacheType: .q8_0) == 61 * 612)
    #expect(abs(Double(KVCache.bytesPerToken(deepseek, cacheType: .q8_0) * 32768) / 1_048_576 - 1166.6) < 0.1)
    #expect(KVCache.bytesPerToken(deepseek, cacheType: .f16) == KVCache.bytesPerToken(deepseek))
    let qwen = try ModelSpec(config: try #require(ModelPresets.named("qwen3-30b-a3b", architecture: .qwen3Moe)).config)
    #expect(KVCache.bytesPerToken(qwen, cacheType: .q4_0) == 2 * 48 * 4 * 128 * 18 / 32)
}

/// gpt-oss: even layers slide over 128 tokens (layer_types), so only the 18 (120b) / 12 (20b) full layers grow with
/// the context; each sliding layer keeps window + one 512-token micro-batch padded to 256 = 768 cells, as
/// llama.cpp's iSWA cache allocates without --swa-full. GLM-4.5-Air: 46 GQA layers, the MTP layer gets no cache.
@Test func slidingWindowAndMTPLayers() throws {
    for (name, full) in [("gpt-oss-120b", 18), ("gpt-oss-20b", 12)] {
        let spec = try ModelSpec(config: try #require(ModelPresets.named(name)).config)
        #expect(
            spec.slidingWindow == 128 && spec.slidingWindowLayers.count == full && spec.slidingWindowLayers.contains(0)
                && !spec.slidingWindowLayers.contains(1))
        let perLayer = 2 * 8 * 64 * 2
        #expect(KVCache.bytesPerToken(spec) == full * perLayer)
        #expect(KVCache.slidingCells(spec, context: 32768) == 768)
        #expect(KVCache.slidingCells(spec, context: 300) == 512)  // min(300, 640) padded to 256
        #expect(KVCache.bytes(spec, context: 32768) == full * perLayer * 32768 + full * perLayer * 768)
        // A naive all-layers estimate would be almost twice as large.
        #expect(Double(KVCache.bytes(spec, context: 131072)) < 0.51 * Double(2 * spec.layerCount * 8 * 64 * 2 * 131072))
    }
    let glm = try ModelSpec(config: try #require(ModelPresets.named("glm-4.5-air")).config)
    #expect(glm.nextTokenPredictionLayers == 1 && KVCache.bytesPerToken(glm) == 2 * 46 * 8 * 128 * 2)
    #expect(KVCache.bytes(glm, context: 1000, cacheType: .q8_0) == 46 * 2 * 8 * 128 * 1000 * 34 / 32)
}

/// Kimi-Linear: only the MLA layers cache per token; the KDA layers keep a fixed recurrent state per sequence. On the
/// Kimi-Linear fixture (3 layers, MLA on one) llama.cpp (llama-cpp-python 0.3.36, our F32 GGUF, -ctk f16, 65,536
/// cells) logs `llama_kv_cache: size = 3.00 MiB (65536 cells, 1 layers …) K (f16): 3.00 MiB, V (f16): 0.00 MiB` and
/// `llama_memory_recurrent: size = 0.01 MiB (… 3 layers …)`.
@Test func kdaLayersKeepAStateNotACache() throws {
    let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("validation/fixtures/kimi_linear-bf16-sharded/config.json")
    let spec = try ModelSpec(configFile: directory.path)
    #expect(KVCache.fullAttentionLayers(spec) == 1)
    #expect(KVCache.bytesPerToken(spec) * 65_536 == 3 << 20)
    let state = KVCache.recurrentStateBytes(spec)
    #expect(state > 0 && Double(state) / Double(1 << 20) >= 0.005 && Double(state) / Double(1 << 20) < 0.015)
    #expect(KVCache.bytes(spec, context: 65_536) == (3 << 20) + state)
}
