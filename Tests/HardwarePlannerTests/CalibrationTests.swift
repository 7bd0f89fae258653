// Decode-speed estimates against published measurements (formats/hardware/README.md lists them with sources):
// each within ±35 %. Targets are built from the bundled catalog by name, as `moeq plan --target` does.
import Foundation
import Testing
import ConversionPipeline
import HardwarePlanner
import ModelCatalog

private struct Anchor: Sendable {
    let model: String, architecture: Architecture, recipe: RecipeName, target: String, engine: Engine
    let measured: Double
    let source: String
}

private let anchors: [Anchor] = [
    Anchor(model: "deepseek-v3", architecture: .deepseekV3, recipe: .q4_K_M, target: "rtx4090+1000gb-8ch-ddr5-4800", engine: .ktransformers,
           measured: 8.73, source: "KTransformers v0.2, 1x Xeon Gold 6454S 8ch DDR5-4800 + RTX 4090D, DeepSeek-R1 Q4_K_M, 8 experts (ktransformers doc/en/DeepseekR1_V3_tutorial.md)"),
    Anchor(model: "deepseek-v3", architecture: .deepseekV3, recipe: .q4_K_M, target: "rtx4090+1000gb-2x8ch-ddr5-4800", engine: .ktransformers,
           measured: 12.2, source: "KTransformers v0.2, 2x Xeon Gold 6454S + RTX 4090D, R1 Q4_K_M, 8 experts (same)"),
    Anchor(model: "deepseek-v3", architecture: .deepseekV3, recipe: .q4_K_M, target: "1000gb-2x8ch-ddr5-4800", engine: .llamaCpp,
           measured: 4.51, source: "llama.cpp (early 2025) on the same dual-socket box, R1 Q4_K_M (same tutorial's comparison)"),
    Anchor(model: "deepseek-v3", architecture: .deepseekV3, recipe: .q4_K_S, target: "384gb-12ch-ddr5-4800", engine: .llamaCpp,
           measured: 6.25, source: "llama.cpp CPU-only, EPYC 9374F, 384 GB 12-channel, R1/V3 Q4_K_S: 4.6-7.9 tok/s, midpoint (llama.cpp issue #10981)"),
    Anchor(model: "kimi-k2", architecture: .deepseekV3, recipe: .q4_K_M, target: "rtx4090+1000gb-8ch-ddr5-4800", engine: .ktransformers,
           measured: 10, source: "KTransformers, Kimi K2 Q4_K_M, 1 socket + 1 consumer GPU: ~10 tok/s (ktransformers doc/en/Kimi-K2.md; socket memory assumed 8ch DDR5-4800)"),
    Anchor(model: "kimi-k2", architecture: .deepseekV3, recipe: .q4_K_M, target: "rtx4090+2000gb-2x8ch-ddr5-4800", engine: .ktransformers,
           measured: 14, source: "KTransformers, Kimi K2 Q4_K_M, 2 sockets, NUMA on: ~14 tok/s (same)"),
]

@Test func decodeEstimatesAreWithin35PercentOfPublishedMeasurements() throws {
    let catalog = try HardwareCatalog.bundled()
    var worst = 0.0
    for anchor in anchors {
        let spec = try ModelSpec(config: try #require(ModelPresets.named(anchor.model, architecture: anchor.architecture)).config)
        let footprint = try Footprint.of(spec: spec, recipe: anchor.recipe)
        let plan = Planner.plan(footprint, spec: spec, target: try catalog.target(anchor.target), context: 2048, engine: anchor.engine)
        let error = plan.tokensPerSecond / anchor.measured - 1
        worst = max(worst, abs(error))
        #expect(plan.verdict != .doesNotFit)
        #expect(abs(error) <= 0.35, "\(anchor.source): estimate \(plan.tokensPerSecond) tok/s vs measured \(anchor.measured)")
    }
    #expect(Set(anchors.map(\.model)).count >= 2 && Set(anchors.map(\.target)).count >= 5)
    #expect(worst > 0)   // the estimates are not the measurements themselves
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
    let svg = PlanChart.svg(plans, title: "mixtral <test>")
    #expect(svg.components(separatedBy: "<rect ").count - 1 == 12)
    #expect(svg.contains("mixtral &lt;test&gt;") && svg.hasPrefix("<svg ") && svg.hasSuffix("</svg>\n"))
    let html = PlanChart.html(plans, svg: svg, title: "t")
    #expect(html.components(separatedBy: "<tr>").count - 1 == 13 && html.contains("llama-cli -m"))
}

@Test func userTargetsFileAddsAndReplacesHardware() throws {
    let path = NSTemporaryDirectory() + "moeq-hw-\(UUID().uuidString).json"
    defer { try? FileManager.default.removeItem(atPath: path) }
    try #"{"format": "moeq hardware targets 1", "devices": [{"name": "rtx4090", "kind": "gpu", "memory": 48e9, "bandwidth": 1008e9, "source": "modded"}, {"name": "lab-gpu", "kind": "gpu", "memory": 16e9, "bandwidth": 500e9, "source": "ours"}], "system_memory": [{"name": "quad", "sockets": 1, "bandwidth": 120e9, "source": "ours"}]}"#
        .write(toFile: path, atomically: true, encoding: .utf8)
    let catalog = try HardwareCatalog.bundled().adding(file: path)
    let target = try catalog.target("rtx4090+lab-gpu+256gb-quad")
    #expect(target.gpus.map(\.memory) == [48e9, 16e9] && target.memory?.bandwidth == 120e9 && target.memory?.capacity == 256e9)
    #expect(try HardwareCatalog.bundled().target("rtx4090").gpus.first?.memory == 24e9)
    try "{}".write(toFile: path, atomically: true, encoding: .utf8)
    #expect(throws: TargetError.self) { _ = try HardwareCatalog.bundled().adding(file: path) }
}
