// The download size a bundled spec implies, what plan recommends per target, and the placement advice per kind of
// machine (several GPUs, unified memory, several sockets).
import Foundation
import Testing
import ConversionPipeline
import HardwarePlanner
import ModelCatalog
import OutputPlanning
import TensorFormats

/// The source size from config.json alone equals the tensor bytes the synthesizer writes for the same shapes and
/// storage (compressed-tensors INT4, FP8 blocks, BF16) — two independent derivations of each tensor's storage.
@Test(arguments: [("kimi-k2.5", SyntheticDType.int4), ("kimi-k2", .fp8), ("deepseek-v3", .fp8), ("qwen3-30b-a3b", .bf16)])
func releasedCheckpointBytesEqualTheSynthesizedCheckpoint(model: String, dtype: SyntheticDType) throws {
    let preset = try #require(ModelPresets.named(model))
    var options = SyntheticOptions(preset: preset, dtype: dtype)
    options.sparse = true
    options.layers = 4
    let directory = NSTemporaryDirectory() + "moeq-released-\(UUID().uuidString)"
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let summary = try SyntheticCheckpoint.write(options, to: directory)
    let spec = try ModelSpec(config: SyntheticCheckpoint.config(for: options))
    let stored = try Checkpoint(path: directory).tensors.reduce(0) { $0 + $1.info.byteCount }
    #expect(stored == summary.totalBytes)
    #expect(ReleasedCheckpoint.bytes(spec: spec) == stored)
    // The plan of that checkpoint reports its files as the source: the data plus headers of < 300 bytes per tensor.
    let (_, files) = try Footprint.withSource(checkpoint: directory, recipes: [.q8_0])
    #expect(files > stored && files < stored + 300 * summary.tensorCount)
}

/// Kimi K2.5's release is 595 GB with its ~0.4 B-parameter vision tower, which the bundled (language-model) spec leaves out.
@Test func kimiK25SourceSizeMatchesTheRelease() throws {
    let spec = try ModelSpec(config: try #require(ModelPresets.named("kimi-k2.5")).config)
    let bytes = Double(ReleasedCheckpoint.bytes(spec: spec))
    #expect(bytes < 595e9 && bytes > 595e9 - 2e9, "\(bytes)")
    // Kimi K2 Thinking is the same language model with the same INT4 experts; Kimi K2 ships FP8 (about 1.03 TB).
    let thinking = try ModelSpec(config: try #require(ModelPresets.named("kimi-k2-thinking")).config)
    #expect(ReleasedCheckpoint.bytes(spec: thinking) == Int(bytes))
    let k2 = try ModelSpec(config: try #require(ModelPresets.named("kimi-k2")).config)
    #expect(Double(ReleasedCheckpoint.bytes(spec: k2)) > 1.7 * bytes)
    // INT4-NATIVE from the Thinking spec keeps its experts at Q4_0, as from K2.5's.
    let fromThinking = try Footprint.of(spec: thinking, recipe: .int4Native)
    #expect(fromThinking.fileBytes == (try Footprint.of(spec: spec, recipe: .int4Native)).fileBytes)
}

@Test func everyTargetGetsTheLargestRecipeThatFits() throws {
    let catalog = try HardwareCatalog.bundled()
    let spec = try ModelSpec(config: try #require(ModelPresets.named("kimi-k2.5")).config)
    let recipes = RecipeName.allCases.filter { $0 != .f32 }
    let footprints = try Footprint.of(spec: spec, recipes: recipes)
    let targets = try ["rtx4090+256gb", "m3-ultra-512gb", "rtx3090+64gb"].map { try catalog.target($0) }
    let plans = footprints.map { f in targets.map { Planner.plan(f, spec: spec, target: $0, context: 32768) } }
    let picks = Recommendation.picks(plans, sizes: footprints.map(\.fileBytes))
    #expect(picks.map(\.target) == targets.map(\.name))
    // A 24 GB GPU + 256 GB: some low-bit recipe runs without disk streaming, and it is the largest that does.
    let desktop = try #require(picks[0].withRAM)
    #expect(desktop.verdict == .fits && desktop.diskBytes == 0 && picks[0].inFastMemory == nil)
    let fitting = zip(footprints, plans).filter { $0.1[0].verdict == .fits }.map(\.0)
    #expect(fitting.map(\.fileBytes).max() == footprints.first { $0.label == desktop.recipe }?.fileBytes)
    #expect(desktop.command.contains("-ngl 99"))
    // 512 GB unified: the largest in unified memory alone is the same as without disk streaming (one pool).
    #expect(picks[1].inFastMemory?.recipe == picks[1].withRAM?.recipe && picks[1].inFastMemory != nil)
    // 24 GB + 64 GB holds no Kimi: the smallest recipe's command is shown.
    #expect(picks[2].withRAM == nil && picks[2].shown.recipe == "IQ1_S")
}

@Test func severalGPUsGetLayerRangesAndExplicitExpertRules() throws {
    let catalog = try HardwareCatalog.bundled()
    for (model, recipe, target) in [
        ("gpt-oss-120b", RecipeName.mxfp4Moe, "2x5090+128gb"), ("qwen3-235b-a22b", .q4_K_M, "2x3090+128gb-ddr4"),
    ] {
        let spec = try ModelSpec(config: try #require(ModelPresets.named(model)).config)
        let plan = Planner.plan(try Footprint.of(spec: spec, recipe: recipe), spec: spec, target: try catalog.target(target), context: 4096)
        #expect(plan.devices.count == 2 && !plan.command.contains("--n-cpu-moe"), "\(plan.command)")
        // Each card within its memory less the reserve (four compute buffers when every expert is on the cards and
        // llama.cpp pipelines them, one when -ot overrides switch that off), and together the fast tier.
        let gpus = try catalog.target(target).gpus
        let reserve = Efficiency.deviceReserve(spec, devices: plan.cpuMoeLayers > 0 ? 1 : 2)
        for (device, gpu) in zip(plan.devices, gpus) { #expect(device.bytes <= gpu.memory - reserve && device.bytes > 0) }
        #expect(abs(plan.devices.reduce(0) { $0 + $1.bytes } - plan.fastBytes) < 1e6)
        // -ts counts every layer once plus the output layer; -ot names exactly the MoE layers left on the CPU.
        let split = try #require(plan.command.firstMatch(of: /-ts (\d+),(\d+)/))
        #expect(Int(split.1)! + Int(split.2)! == spec.layerCount + 1)
        if plan.cpuMoeLayers > 0 {
            let rule = try #require(plan.command.firstMatch(of: /-ot "([^"]+)=CPU"/))
            let layers = try #require(String(rule.1).firstMatch(of: /\(([0-9|]+)\)/)).1.split(separator: "|").compactMap { Int($0) }
            #expect(layers.count == plan.cpuMoeLayers && layers == layers.sorted())
            #expect(String(rule.1) == GGUFTensorName.routedExpertsPattern(layers: layers))
        } else {
            #expect(!plan.command.contains("-ot"))
        }
    }
}

@Test func unifiedMemoryIsOnePoolAndSocketsGetNUMAAdvice() throws {
    let catalog = try HardwareCatalog.bundled()
    let kimi = try ModelSpec(config: try #require(ModelPresets.named("kimi-k2")).config)
    let qwen = try ModelSpec(config: try #require(ModelPresets.named("qwen3-30b-a3b")).config)
    for target in ["m3-ultra-512gb", "strix-halo-128gb", "dgx-spark-128gb"] {
        for (spec, recipe) in [(kimi, RecipeName.iq2_xxs), (qwen, .q4_K_M)] {
            let plan = Planner.plan(
                try Footprint.of(spec: spec, recipe: recipe), spec: spec, target: try catalog.target(target), context: 4096)
            #expect(!plan.command.contains("--n-cpu-moe") && !plan.command.contains("-ot "), "\(target): \(plan.command)")
            // Over the GPU's share of the pool: how to raise it on that platform (macOS: the wired limit), never a CPU split.
            #expect(plan.advice.contains { $0.contains("share of memory") } == (plan.diskBytes > 0 || plan.ramBytes > 0), "\(plan.advice)")
            #expect(plan.advice.contains { $0.contains("iogpu.wired_limit_mb") } == (plan.diskBytes > 0 && target.hasPrefix("m3")))
            #expect(plan.cpuMoeLayers == 0)
            #expect(plan.command.contains("--no-mmap") == (plan.diskBytes == 0 && plan.ramBytes == 0), "\(plan.command)")
        }
    }
    let footprint = try Footprint.of(spec: kimi, recipe: .q4_K_M)
    let dual = Planner.plan(footprint, spec: kimi, target: try catalog.target("1000gb-2x8ch-ddr5-4800"), context: 4096)
    #expect(dual.command.contains("--numa distribute") && dual.advice.contains { $0.contains("numa_balancing") })
    let single = Planner.plan(footprint, spec: kimi, target: try catalog.target("1000gb-8ch-ddr5-4800"), context: 4096)
    #expect(!single.command.contains("--numa") && single.advice.isEmpty)
    let kt = Planner.plan(
        footprint, spec: kimi, target: try catalog.target("1000gb-2x8ch-ddr5-4800"), context: 4096, engine: .ktransformers)
    #expect(!kt.command.contains("--numa"))
}

/// The compute buffer: llama.cpp's gpt-oss guide reports 2.7 GB for both gpt-oss-20b and -120b at -ub 2048 (the
/// activation term was fitted to it); the logits term alone is 0.947 MiB per micro-batch token for a 248,320-token
/// vocabulary as measured in a llama.cpp fork (4 bytes per vocabulary entry). Neither grows with the layer count.
@Test func computeBufferFollowsVocabularyAndMicroBatch() throws {
    let small = try ModelSpec(config: try #require(ModelPresets.named("gpt-oss-20b")).config)
    let large = try ModelSpec(config: try #require(ModelPresets.named("gpt-oss-120b")).config)
    #expect(ComputeBuffer.bytes(small, ubatch: 2048) == ComputeBuffer.bytes(large, ubatch: 2048))
    #expect(abs(Double(ComputeBuffer.bytes(small, ubatch: 2048)) / 2.7e9 - 1) < 0.05)
    #expect(ComputeBuffer.bytes(small, ubatch: 2048) == 4 * ComputeBuffer.bytes(small, ubatch: 512))
    var vocabulary = small
    vocabulary.vocabularySize += 248_320
    let perToken = Double(ComputeBuffer.bytes(vocabulary, ubatch: 512) - ComputeBuffer.bytes(small, ubatch: 512)) / 512
    #expect(abs(perToken / 1_048_576 - 0.947) < 0.001)
}

/// GPUs that cannot hold even the always-on tensors get whole blocks (`-ngl N`) and no experts; a file holding an MTP
/// block (GLM-4.5) splits n_layer + 1 blocks as llama.cpp counts them; targets no machine is are refused.
@Test func partialOffloadMTPBlocksAndImpossibleTargets() throws {
    let catalog = try HardwareCatalog.bundled()
    let deepseek = try ModelSpec(config: try #require(ModelPresets.named("deepseek-r1")).config)
    let small = Planner.plan(
        try Footprint.of(spec: deepseek, recipe: .q4_K_M), spec: deepseek, target: try catalog.target("rtx2080+512gb"), context: 32768)
    let layers = try #require(small.command.firstMatch(of: /-ngl (\d+) -ot exps=CPU/))
    #expect(Int(layers.1)! > 0 && Int(layers.1)! < deepseek.layerCount && small.verdict == .fits)
    #expect(small.fastBytes <= 8e9 - Efficiency.deviceReserve(deepseek) && small.advice.contains { $0.contains("exceed GPU memory") })
    let glm = try ModelSpec(config: try #require(ModelPresets.named("glm-4.5-air")).config)
    for (target, cards) in [("2x3090+128gb", 2), ("3x3090+128gb", 3)] {
        let plan = Planner.plan(try Footprint.of(spec: glm, recipe: .q4_K_M), spec: glm, target: try catalog.target(target), context: 8192)
        let split = try #require(plan.command.firstMatch(of: /-ts ([0-9,]+)/))
        let counts = split.1.split(separator: ",").compactMap { Int($0) }
        // 46 layers + the MTP block + the output layer.
        #expect(counts.count == cards && counts.reduce(0, +) == glm.layerCount + glm.nextTokenPredictionLayers + 1, "\(plan.command)")
    }
    for bad in ["m3-ultra-256gb+512gb", "m3-ultra-256gb+rtx5090", "17xh100", "1000xgpu:10000000:100", "4096x10000000gb"] {
        #expect(throws: TargetError.self) { try catalog.target(bad) }
    }
    // A card too small to hold anything gets no blocks; the output layer goes to the last card that has some.
    let qwen = try ModelSpec(config: try #require(ModelPresets.named("qwen3-30b-a3b")).config)
    let odd = Planner.plan(
        try Footprint.of(spec: qwen, recipe: .q4_K_M), spec: qwen, target: try catalog.target("rtx3090+gpu:1:100+64gb"), context: 4096)
    #expect(odd.command.contains("-ts \(qwen.layerCount + 1),0"), "\(odd.command)")
}
