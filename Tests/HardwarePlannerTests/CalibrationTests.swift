// Decode-speed estimates against published measurements (formats/hardware/README.md lists them with sources):
// each within ±35 %. Targets are built from the bundled catalog by name, as `moeq plan --target` does.
import Foundation
import Testing
import ConversionPipeline
import OutputPlanning
import HardwarePlanner
import ModelCatalog

private struct Anchor: Sendable {
    let model: String, recipe: RecipeName, target: String, engine: Engine
    let measured: Double
    var context = 2048
    let source: String
}

/// The fitting set: the measurements the efficiency factors and the per-layer overhead were chosen on
/// (formats/hardware/README.md, "Calibration").
private let anchors: [Anchor] = [
    Anchor(
        model: "gpt-oss-20b", recipe: .mxfp4Moe, target: "rx7900xt+64gb", engine: .llamaCpp, measured: 101.92,
        source:
            "llama-bench tg128, RX 7900 XT 20 GB, ROCm, gpt-oss-20b; sets this device's decode_efficiency (ggml-org/llama.cpp discussion #15396)"
    ),
    Anchor(
        model: "deepseek-v3", recipe: .q4_K_M, target: "rtx4090+1000gb-8ch-ddr5-4800", engine: .ktransformers,
        measured: 8.73,
        source:
            """
            KTransformers v0.2, 1x Xeon Gold 6454S 8ch DDR5-4800 + RTX 4090D, DeepSeek-R1 Q4_K_M, 8 experts (ktransformers \
            doc/en/DeepseekR1_V3_tutorial.md)
            """
    ),
    Anchor(
        model: "deepseek-v3", recipe: .q4_K_M, target: "rtx4090+1000gb-2x8ch-ddr5-4800", engine: .ktransformers,
        measured: 12.2, source: "KTransformers v0.2, 2x Xeon Gold 6454S + RTX 4090D, R1 Q4_K_M, 8 experts (same)"),
    Anchor(
        model: "deepseek-v3", recipe: .q4_K_M, target: "1000gb-2x8ch-ddr5-4800", engine: .llamaCpp,
        measured: 4.51, source: "llama.cpp (early 2025) on the same dual-socket box, R1 Q4_K_M (same tutorial's comparison)"),
    Anchor(
        model: "deepseek-v3", recipe: .q4_K_S, target: "384gb-12ch-ddr5-4800", engine: .llamaCpp,
        measured: 6.25,
        source: "llama.cpp CPU-only, EPYC 9374F, 384 GB 12-channel, R1/V3 Q4_K_S: 4.6-7.9 tok/s, midpoint (llama.cpp issue #10981)"),
    Anchor(
        model: "kimi-k2", recipe: .q4_K_M, target: "rtx4090+1000gb-8ch-ddr5-4800", engine: .ktransformers,
        measured: 10,
        source:
            """
            KTransformers, Kimi K2 Q4_K_M, 1 socket + 1 consumer GPU: ~10 tok/s (ktransformers doc/en/Kimi-K2.md; socket memory \
            assumed 8ch DDR5-4800)
            """
    ),
    Anchor(
        model: "kimi-k2", recipe: .q4_K_M, target: "rtx4090+2000gb-2x8ch-ddr5-4800", engine: .ktransformers,
        measured: 14, source: "KTransformers, Kimi K2 Q4_K_M, 2 sockets, NUMA on: ~14 tok/s (same)"),
    Anchor(
        model: "gpt-oss-20b", recipe: .mxfp4Moe, target: "dgx-spark-128gb", engine: .llamaCpp,
        measured: 84.1, source: "llama-bench tg32, DGX Spark, gpt-oss-20b MXFP4, -ngl 99 -fa 1 (ggml-org/llama.cpp benches/dgx-spark.md)"),
    Anchor(
        model: "gpt-oss-120b", recipe: .mxfp4Moe, target: "dgx-spark-128gb", engine: .llamaCpp,
        measured: 59.0, source: "llama-bench tg32, DGX Spark, gpt-oss-120b MXFP4 (same file)"),
    Anchor(
        model: "gpt-oss-20b", recipe: .mxfp4Moe, target: "rtx5090+64gb", engine: .llamaCpp,
        measured: 362.6,
        source: "llama-bench tg128, RTX 5090, gpt-oss-20b MXFP4, all layers on the GPU (workload reproduction log in eunomia-bpf/schedcp)"),
    Anchor(
        model: "gpt-oss-120b", recipe: .mxfp4Moe, target: "2x5090+128gb", engine: .llamaCpp,
        measured: 108, source: "2x RTX 5090, gpt-oss-120b, --n-cpu-moe 3 (the planner picks 3 too): 108 tok/s (llama.cpp PR #15077 comment)"
    ),
    Anchor(
        model: "gpt-oss-120b", recipe: .mxfp4Moe, target: "rtx3090+128gb", engine: .llamaCpp,
        measured: 31.5,
        source:
            """
            RTX 3090, gpt-oss-120b, --n-cpu-moe 25-28 (the planner picks 25): 30-33 tok/s, midpoint (ai-maestro.online; RAM assumed \
            dual-channel DDR5)
            """
    ),
    Anchor(
        model: "gpt-oss-120b", recipe: .mxfp4Moe, target: "384gb-12ch-ddr5-4800", engine: .llamaCpp,
        measured: 49.3, source: "llama-bench tg128, CPU only, EPYC 9B14 12-channel DDR5-4800, gpt-oss-120b (r/LocalLLaMA post)"),
    Anchor(
        model: "qwen3-30b-a3b", recipe: .q4_K_M, target: "strix-halo-128gb", engine: .llamaCpp,
        measured: 86.1,
        source:
            """
            llama-bench tg128, Ryzen AI Max+ 395 (GMKtec EVO-X2, Vulkan RADV), Qwen3-30B-A3B Q4_K_M (visorcraft/strix-halo-llm-perf \
            BENCHMARKS.md)
            """
    ),
]

/// The checking set: measurements not used to choose any factor; the estimates must hold on them too.
private let checkingAnchors: [Anchor] = [
    Anchor(
        model: "qwen3-30b-a3b", recipe: .q8_0, target: "m2-ultra-192gb", engine: .llamaCpp, measured: 76.31,
        source: "llama-bench tg128, M2 Ultra, Metal, Qwen3-30B-A3B Q8_0 (ggml-org/llama.cpp PR #15616)"),
    Anchor(
        model: "mixtral-8x7b", recipe: .q4_K_M, target: "m2-max-96gb", engine: .llamaCpp, measured: 34.72,
        source: "llama-bench tg128, M2 Max 38-core GPU, Mixtral 8x7B Q4_K_M (ggml-org/llama.cpp PR #4406)"),
    Anchor(
        model: "gpt-oss-20b", recipe: .mxfp4Moe, target: "rtx4080+64gb", engine: .llamaCpp, measured: 186.1,
        source: "llama-sweep-bench TG at context 0, RTX 4080 in a Ryzen 7950X host, gpt-oss-20b MXFP4 (ik_llama.cpp discussion #758)"),
    Anchor(
        model: "gpt-oss-120b", recipe: .mxfp4Moe, target: "strix-halo-128gb", engine: .llamaCpp, measured: 50.20,
        source: "llama-bench tg128, Framework Desktop (Ryzen AI Max+ 395, 128 GB), ROCm 7, -ngl 99 --mmap 0 (quozul.dev post)"),
    Anchor(
        model: "gpt-oss-20b", recipe: .mxfp4Moe, target: "strix-halo-128gb", engine: .llamaCpp, measured: 70, context: 8192,
        source:
            "Ryzen AI Max+ 395, Vulkan, gpt-oss-20b \"Q8_0\" (its experts stay MXFP4: MXFP4_MOE) summarising a 7.6k-token "
            + "prompt (fromthematrix.dev Strix Halo benchmark)"
    ),
    Anchor(
        model: "qwen3-30b-a3b", recipe: .q4_0, target: "rtx4090+64gb", engine: .llamaCpp, measured: 205.9,
        source: "llama-bench -ub 1 pp4096 (token by token, context 0-4k), RTX 4090, Qwen3-30B-A3B Q4_0 (ggml-org/llama.cpp PR #15631)"),
    Anchor(
        model: "qwen3-30b-a3b", recipe: .q4_K_M, target: "rtx2080+64gb-4ch-ddr4-3200", engine: .llamaCpp, measured: 36.7,
        source: "RTX 2080 8 GB + i9-10900X quad-channel DDR4, Qwen3-30B-A3B-2507 Q4_K_M, --n-cpu-moe 36 (AlexsJones/llmfit PR #755)"),
    Anchor(
        model: "gpt-oss-20b", recipe: .mxfp4Moe, target: "rtx2080+64gb-4ch-ddr4-3200", engine: .llamaCpp, measured: 36.4,
        source: "RTX 2080 8 GB + quad-channel DDR4, gpt-oss-20b, --n-cpu-moe 12 (AlexsJones/llmfit PR #775)"),
    Anchor(
        model: "gpt-oss-20b", recipe: .mxfp4Moe, target: "64gb", engine: .llamaCpp, measured: 21.7,
        source: "Ryzen 7950X CPU only, -t 16, gpt-oss-20b MXFP4 (ik_llama.cpp discussion #758; RAM assumed dual-channel DDR5-5600)"),
]

/// Prompt-processing measurements (llama.cpp) for the prefill estimate; its factors are assumptions fitted to these.
private let prefillAnchors: [Anchor] = [
    Anchor(
        model: "gpt-oss-20b", recipe: .mxfp4Moe, target: "dgx-spark-128gb", engine: .llamaCpp,
        measured: 3782.8, source: "llama-bench pp2048 (-ub 2048), DGX Spark, gpt-oss-20b MXFP4 (ggml-org/llama.cpp benches/dgx-spark.md)"),
    Anchor(
        model: "gpt-oss-120b", recipe: .mxfp4Moe, target: "dgx-spark-128gb", engine: .llamaCpp,
        measured: 1937.5, source: "llama-bench pp2048 (-ub 2048), DGX Spark, gpt-oss-120b MXFP4 (same)"),
    Anchor(
        model: "gpt-oss-20b", recipe: .mxfp4Moe, target: "rtx5090+64gb", engine: .llamaCpp,
        measured: 9898, source: "llama-bench pp512, RTX 5090, gpt-oss-20b MXFP4 (schedcp workload log)"),
    Anchor(
        model: "gpt-oss-120b", recipe: .mxfp4Moe, target: "rtx3090+128gb", engine: .llamaCpp,
        measured: 380, source: "RTX 3090 --n-cpu-moe 25-28, gpt-oss-120b, default -ub 512: 380 tok/s (ai-maestro.online)"),
    Anchor(
        model: "gpt-oss-120b", recipe: .mxfp4Moe, target: "384gb-12ch-ddr5-4800", engine: .llamaCpp,
        measured: 205.9, source: "llama-bench pp512, CPU only, EPYC 9B14 12-channel, gpt-oss-120b (r/LocalLLaMA post)"),
    Anchor(
        model: "qwen3-30b-a3b", recipe: .q4_K_M, target: "strix-halo-128gb", engine: .llamaCpp,
        measured: 1141.8, source: "llama-bench pp512, Ryzen AI Max+ 395 Vulkan, Qwen3-30B-A3B Q4_K_M (visorcraft/strix-halo-llm-perf)"),
    Anchor(
        model: "deepseek-v3", recipe: .q4_K_M, target: "1000gb-2x8ch-ddr5-4800", engine: .llamaCpp,
        measured: 10.3,
        source: "llama.cpp (early 2025), 2x Xeon Gold 6454S CPU, R1 Q4_K_M prompt processing (ktransformers DeepseekR1_V3_tutorial.md)"),
]

private func estimate(_ anchor: Anchor, catalog: HardwareCatalog) throws -> Plan {
    let spec = try ModelSpec(config: try #require(ModelPresets.named(anchor.model)).config)
    let footprint = try Footprint.of(spec: spec, recipe: anchor.recipe)
    return Planner.plan(footprint, spec: spec, target: try catalog.target(anchor.target), context: anchor.context, engine: anchor.engine)
}

@Test func decodeEstimatesAreWithin35PercentOfPublishedMeasurements() throws {
    let catalog = try HardwareCatalog.bundled()
    var worst = 0.0
    for anchor in anchors {
        let plan = try estimate(anchor, catalog: catalog)
        let error = plan.tokensPerSecond / anchor.measured - 1
        print(
            String(
                format: "decode %@ %@ %@: estimate %.1f, measured %.1f, %+.0f %%", anchor.model, anchor.recipe.rawValue, anchor.target,
                plan.tokensPerSecond, anchor.measured, error * 100))
        worst = max(worst, abs(error))
        #expect(plan.verdict != .doesNotFit)
        #expect(abs(error) <= 0.35, "\(anchor.source): estimate \(plan.tokensPerSecond) tok/s vs measured \(anchor.measured)")
    }
    #expect(Set(anchors.map(\.model)).count >= 4 && Set(anchors.map(\.target)).count >= 8)
    #expect(worst > 0)  // the estimates are not the measurements themselves
}

/// Out of sample: every measurement of the checking set within ±35 %.
@Test func decodeEstimatesHoldOnTheCheckingSet() throws {
    let catalog = try HardwareCatalog.bundled()
    for anchor in checkingAnchors {
        let plan = try estimate(anchor, catalog: catalog)
        let error = plan.tokensPerSecond / anchor.measured - 1
        print(
            String(
                format: "checking %@ %@ %@: estimate %.1f, measured %.1f, %+.0f %%", anchor.model, anchor.recipe.rawValue, anchor.target,
                plan.tokensPerSecond, anchor.measured, error * 100))
        #expect(plan.verdict != .doesNotFit)
        #expect(abs(error) <= 0.35, "\(anchor.source): estimate \(plan.tokensPerSecond) tok/s vs measured \(anchor.measured)")
    }
    // Not one of them is a fitting measurement (same model, recipe and target).
    let fitting = Set(anchors.map { "\($0.model) \($0.recipe) \($0.target)" })
    #expect(checkingAnchors.allSatisfy { !fitting.contains("\($0.model) \($0.recipe) \($0.target)") })
    #expect(checkingAnchors.count >= 8 && Set(checkingAnchors.map(\.target)).count >= 6)
}

/// Prefill is an estimate from FLOPs with fitted factors; it must land within a factor of 2 of each measurement.
@Test func prefillEstimatesAreWithinAFactorOfTwo() throws {
    let catalog = try HardwareCatalog.bundled()
    for anchor in prefillAnchors {
        let plan = try estimate(anchor, catalog: catalog)
        let ratio = plan.prefillTokensPerSecond / anchor.measured
        print(
            String(
                format: "prefill %@ %@ %@: estimate %.1f, measured %.1f, %+.0f %%", anchor.model, anchor.recipe.rawValue, anchor.target,
                plan.prefillTokensPerSecond, anchor.measured, (ratio - 1) * 100))
        #expect(ratio > 0.5 && ratio < 2, "\(anchor.source): estimate \(plan.prefillTokensPerSecond) tok/s vs measured \(anchor.measured)")
    }
}

@Test func placementFollowsCapacity() throws {
    let catalog = try HardwareCatalog.bundled()
    let spec = try ModelSpec(config: try #require(ModelPresets.named("qwen3-30b-a3b", architecture: .qwen3Moe)).config)
    let q4 = try Footprint.of(spec: spec, recipe: .q4_K_M)
    // 18.6 GB of Q4_K_M fits a 24 GB GPU whole; with 8 GB of VRAM the experts of most layers go to RAM.
    let big = Planner.plan(q4, spec: spec, target: try catalog.target("rtx4090+64gb"), context: 4096)
    #expect(big.verdict == .fits && big.ramBytes == 0 && big.cpuMoeLayers == 0 && !big.command.contains("n-cpu-moe"))
    let small = Planner.plan(q4, spec: spec, target: try catalog.target("rtx3090+64gb"), context: 4096)
    #expect(small.tokensPerSecond > 0)
    let unified = Planner.plan(q4, spec: spec, target: try catalog.target("m4-max-128gb"), context: 4096)
    #expect(unified.verdict == .fits && unified.diskBytes == 0)
    // Kimi K2 Q4_K_M (578 GiB) on a 24 GB GPU + 64 GB RAM streams from disk; nothing fits in 32 GB of RAM alone.
    let kimi = try ModelSpec(config: try #require(ModelPresets.named("kimi-k2", architecture: .deepseekV3)).config)
    let k = try Footprint.of(spec: kimi, recipe: .q4_K_M)
    let streamed = Planner.plan(k, spec: kimi, target: try catalog.target("rtx4090+64gb+nvme-gen5"), context: 4096)
    #expect(streamed.verdict == .fitsWithDiskStreaming && streamed.diskBytes > 400e9 && streamed.tokensPerSecond < 2)
    #expect(streamed.command.contains("-ot exps=CPU") || streamed.command.contains("--n-cpu-moe"))
    #expect(throws: TargetError.self) { try catalog.target("rtx9090") }
}

@Test func chartHasOneCellPerRecipeAndTarget() throws {
    let catalog = try HardwareCatalog.bundled()
    let spec = try ModelSpec(config: try #require(ModelPresets.named("mixtral-8x7b", architecture: .mixtral)).config)
    let footprints = try Footprint.of(spec: spec, recipes: [.q8_0, .q4_K_M, .q4_0])
    let targets = try ["rtx4090+64gb", "8xh200", "strix-halo-128gb", "rtx3090"].map { try catalog.target($0) }
    let plans = footprints.map { f in targets.map { Planner.plan(f, spec: spec, target: $0, context: 4096) } }
    let svg = PlanChart.svg(plans, sizes: footprints.map(\.fileBytes), title: "mixtral <test>")
    // One marker per recipe and target; a line per target that runs the model at two sizes or more.
    #expect(svg.components(separatedBy: "class=\"point\"").count - 1 == 12)
    let running = targets.indices.filter { t in plans.filter { $0[t].verdict != .doesNotFit }.count > 1 }.count
    #expect(svg.components(separatedBy: "<polyline ").count - 1 == running && running >= 2)
    #expect(svg.contains("mixtral &lt;test&gt;") && svg.hasPrefix("<svg ") && svg.hasSuffix("</svg>\n"))
    // Faster plans sit higher (smaller y) on the chart: Q4_0 above Q8_0 on the same target when both fit.
    let html = PlanChart.html(plans, svg: svg, title: "t", header: ["recipe", "x"], rows: [["Q8_0", "a<b"]], lines: ["one & two"])
    #expect(html.components(separatedBy: "<tr>").count - 1 == 2 + 1 + 12)
    #expect(html.contains("<td>a&lt;b</td>") && html.contains("<li>one &amp; two</li>") && html.contains("llama-cli -m"))
}

@Test func userTargetsFileAddsAndReplacesHardware() throws {
    let path = NSTemporaryDirectory() + "moeq-hw-\(UUID().uuidString).json"
    defer { try? FileManager.default.removeItem(atPath: path) }
    try #"""
    {"format": "moeq hardware targets 1", "devices": [{"name": "rtx4090", "kind": "gpu", "memory": 48e9, "bandwidth": 1008e9, \#
    "source": "modded"}, {"name": "lab-gpu", "kind": "gpu", "memory": 16e9, "bandwidth": 500e9, "source": "ours"}], \#
    "system_memory": [{"name": "quad", "sockets": 1, "bandwidth": 120e9, "source": "ours"}]}
    """#
    .write(toFile: path, atomically: true, encoding: .utf8)
    let catalog = try HardwareCatalog.bundled().adding(file: path)
    let target = try catalog.target("rtx4090+lab-gpu+256gb-quad")
    #expect(target.gpus.map(\.memory) == [48e9, 16e9] && target.memory?.bandwidth == 120e9 && target.memory?.capacity == 256e9)
    #expect(try HardwareCatalog.bundled().target("rtx4090").gpus.first?.memory == 24e9)
    try "{}".write(toFile: path, atomically: true, encoding: .utf8)
    #expect(throws: TargetError.self) { _ = try HardwareCatalog.bundled().adding(file: path) }
}
