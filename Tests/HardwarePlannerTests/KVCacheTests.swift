// KV cache per token: MLA latent only (DeepSeek-V3 / Kimi: 70,272 B at F16), GQA K+V.
import Testing
import HardwarePlanner
import ModelCatalog

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
