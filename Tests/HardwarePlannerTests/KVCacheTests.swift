// KV cache per token: MLA latent only (DeepSeek-V3 / Kimi: 70,272 B at F16), GQA K+V.
import Testing
import HardwarePlanner
import ModelCatalog
import QuantKernels

@Test func mlaCacheForKimiAndDeepseek() throws {
    for name in ["kimi-k2", "deepseek-v3"] {
        let spec = try ModelSpec(config: try #require(ModelPresets.named(name, architecture: .deepseekV3)).config)
        #expect(KVCache.bytesPerToken(spec) == 70_272)   // 61 layers × 576 × 2 B
    }
}

@Test func gqaCacheForQwenAndMixtral() throws {
    let qwen = try ModelSpec(config: try #require(ModelPresets.named("qwen3-30b-a3b", architecture: .qwen3Moe)).config)
    #expect(KVCache.bytesPerToken(qwen) == 96 * 1024)     // 2 × 48 × 4 × 128 × 2 B
    let mixtral = try ModelSpec(config: try #require(ModelPresets.named("mixtral-8x7b", architecture: .mixtral)).config)
    #expect(KVCache.bytesPerToken(mixtral) == 128 * 1024) // 2 × 32 × 8 × 128 × 2 B
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
