// The planner's sizes come from the conversion's own plan: from a checkpoint they equal the written GGUF to the
// byte; from config.json alone they equal its tensor data section.
import Foundation
import Testing
import ConversionPipeline
import OutputPlanning
import HardwarePlanner
import ModelCatalog
import TensorFormats

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

@Test(arguments: ["deepseek_v3-f32", "qwen3_moe-bf16-sharded", "mixtral-f32", "trained-qwen3_moe_wide"])
func planEqualsConvertDryRunAndTheWrittenFile(fixture: String) throws {
    let directory = fixtures.appendingPathComponent(fixture).path
    for recipe in [RecipeName.q8_0, .q4_K_M, .q6_K] {
        let footprint = try Footprint.of(checkpoint: directory, recipe: recipe)
        let plan = try GGUFConversion.plan(path: directory, recipe: recipe)
        #expect(footprint.fileBytes == plan.layout.fileSize)
        let fromConfig = try Footprint.of(spec: plan.spec, recipe: recipe, tiedEmbeddings: !plan.checkpoint.contains("lm_head.weight"))
        #expect(fromConfig.fileBytes == plan.layout.fileSize - plan.layout.dataStart, "\(fixture) \(recipe.rawValue)")
        #expect(fromConfig.bytesByGroup == footprint.bytesByGroup)
        #expect(footprint.routedExpertBytes > 0 && footprint.alwaysOnBytes > 0)
        #expect(footprint.activeBytesPerToken < footprint.alwaysOnBytes + footprint.routedExpertBytes)
        if recipe == .q4_K_M {
            let output = NSTemporaryDirectory() + "moeq-plan-\(UUID().uuidString).gguf"
            defer {
                try? FileManager.default.removeItem(atPath: output); try? FileManager.default.removeItem(atPath: output + ".manifest.json")
            }
            _ = try GGUFConversion.run(plan, output: output, threads: 2)
            #expect(try FileManager.default.attributesOfItem(atPath: output)[.size] as? Int == footprint.fileBytes)
            // The written GGUF planned from its header alone: same spec, same bytes by group, same bytes per token.
            let file = try GGUFFile(path: output)
            let fromGGUF = try ModelSpec(gguf: file)
            #expect(fromGGUF.architecture == plan.spec.architecture && fromGGUF.layerCount == plan.spec.layerCount)
            #expect(fromGGUF.routedExpertCount == plan.spec.routedExpertCount && fromGGUF.expertsPerToken == plan.spec.expertsPerToken)
            #expect(fromGGUF.denseLayers == plan.spec.denseLayers && fromGGUF.expertIntermediateSize == plan.spec.expertIntermediateSize)
            #expect(KVCache.bytesPerToken(fromGGUF) == KVCache.bytesPerToken(plan.spec))
            let ggufFootprint = Footprint.of(gguf: file, spec: fromGGUF)
            #expect(ggufFootprint.label == "Q4_K_M" && ggufFootprint.fileBytes == footprint.fileBytes)
            #expect(ggufFootprint.bytesByGroup == footprint.bytesByGroup)
            #expect(ggufFootprint.activeBytesPerToken == footprint.activeBytesPerToken)
            // The split layout's pair, planned from its first file, holds the same tensors (two headers instead of one).
            let split = NSTemporaryDirectory() + "moeq-plan-split-\(UUID().uuidString).gguf"
            let pair = try OffloadLayouts.runSplit(plan, output: split, threads: 2)
            defer {
                for file in pair {
                    try? FileManager.default.removeItem(atPath: file.path);
                    try? FileManager.default.removeItem(atPath: file.path + ".manifest.json")
                }
            }
            let splitFootprint = Footprint.of(gguf: try Footprint.ggufFiles(first: pair[0].path), spec: fromGGUF)
            #expect(splitFootprint.bytesByGroup == footprint.bytesByGroup && splitFootprint.fileBytes == pair[0].bytes + pair[1].bytes)
            #expect(throws: CatalogError.self) { try Footprint.ggufFiles(first: pair[1].path) }
        }
    }
}

/// Active bytes per token on DeepSeek-V3's real shapes at Q4_K_M: all always-on tensors but the embedding table
/// plus 8 of 256 routed experts — about 20 GB; the routed part alone about 12 GB (reference: ≈ 11.5 GB at 4.5 bpw).
@Test func activeBytesOfDeepseekV3() throws {
    let spec = try ModelSpec(config: try #require(ModelPresets.named("deepseek-v3", architecture: .deepseekV3)).config)
    let footprint = try Footprint.of(spec: spec, recipe: .q4_K_M)
    let routedActive = Double(footprint.routedExpertBytes) * 8 / 256
    #expect(routedActive > 11e9 && routedActive < 13.5e9)
    #expect(Double(footprint.fileBytes) > 380e9 && Double(footprint.fileBytes) < 420e9, "\(footprint.fileBytes)")
    #expect(footprint.kvBytesPerToken == 70_272)
}

/// INT4-NATIVE from a spec alone: the experts of a compressed-tensors INT4 g32 checkpoint are Q4_0, so the plan of a
/// config equals the plan `convert` makes from the checkpoint's headers and scales; the bundled Kimi K2.5 spec
/// carries its release's quantization, so its plan equals the plan of the config the synthesizer writes for an INT4
/// checkpoint of the same shapes — about 4.5 bits per routed weight, not Q8_0's 8.5.
@Test func int4NativePlanFromASpecEqualsTheCheckpointPlan() throws {
    let preset = try #require(ModelPresets.named("tiny", architecture: .deepseekV3))
    let directory = NSTemporaryDirectory() + "moeq-int4-plan-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    _ = try SyntheticCheckpoint.write(SyntheticOptions(preset: preset, dtype: .int4), to: directory)
    let spec = try ModelSpec(configFile: directory + "/config.json")
    let fromHeaders = try Footprint.of(checkpoint: directory, recipe: .int4Native)
    let fromSpec = try Footprint.of(spec: spec, recipe: .int4Native)
    #expect(fromSpec.bytesByGroup == fromHeaders.bytesByGroup && fromSpec.activeBytesPerToken == fromHeaders.activeBytesPerToken)
    // Q4_0 experts: 18 bytes per 32 weights.
    let routed = Double(spec.routedExpertCount * spec.moeLayerCount * 3 * spec.hiddenSize * spec.expertIntermediateSize)
    #expect(fromSpec.bytesByGroup[.routedExperts] == Int(routed * 18 / 32))

    let kimi = try #require(ModelPresets.named("kimi-k2.5"))
    var options = SyntheticOptions(preset: kimi, dtype: .int4)
    options.sparse = true
    let synthesized = try ModelSpec(config: SyntheticCheckpoint.config(for: options))
    let bundled = try Footprint.of(spec: try ModelSpec(config: kimi.config), recipe: .int4Native)
    let checkpointShaped = try Footprint.of(spec: synthesized, recipe: .int4Native)
    #expect(bundled.bytesByGroup == checkpointShaped.bytesByGroup && bundled.fileBytes == checkpointShaped.fileBytes)
    let q8 = try Footprint.of(spec: try ModelSpec(config: kimi.config), recipe: .q8_0)
    #expect(Double(bundled.fileBytes) < 0.56 * Double(q8.fileBytes))
}
