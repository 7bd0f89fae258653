// Routing statistics move disk reads onto the cold experts: RAM (the page cache) keeps the hot ones.
import Foundation
import Testing
import ConversionPipeline
import OutputPlanning
import HardwarePlanner
import ModelCatalog
import TensorFormats

private let imatrix = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/gguf/imatrix/qwen3_moe.imatrix.gguf").path

@Test func routingProfileFromLlamaImatrix() throws {
    // llama-imatrix's own file (validation/gguf/imatrix): per-expert counts of the qwen3_moe fixture.
    let fixture = URL(fileURLWithPath: imatrix).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("fixtures/qwen3_moe-f32/config.json").path
    let counts = try ModelSpec(configFile: fixture).tensorLayout.routingCounts(try ImportanceMatrix(path: imatrix))
    #expect(counts.count == 3)  // every MoE layer of the fixture
    let profile = try #require(RoutingProfile(counts: counts))
    #expect(profile.cumulative.first == 0 && abs(profile.cumulative.last! - 1) < 1e-9)
    #expect(zip(profile.cumulative, profile.cumulative.dropFirst()).allSatisfy { $0 <= $1 })
    // Hottest first: the top half of the experts gets at least half of the tokens.
    #expect(profile.mass(ofHottest: 0.5) >= 0.5 && profile.mass(ofHottest: 0) == 0 && profile.mass(ofHottest: 1) == 1)
}

@Test func hotExpertsInRAMCutDiskReads() throws {
    let catalog = try HardwareCatalog.bundled()
    let spec = try ModelSpec(config: try #require(ModelPresets.named("kimi-k2")).config)
    let footprint = try Footprint.of(spec: spec, recipe: .q4_K_M)
    let target = try catalog.target("rtx4090+256gb+nvme-gen5")
    let uniform = Planner.plan(footprint, spec: spec, target: target, context: 4096)
    #expect(uniform.verdict == .fitsWithDiskStreaming && uniform.diskBytes > 0)
    // Equal counts reproduce the uniform estimate (to rounding).
    let flat = try #require(RoutingProfile(counts: [3: Array(repeating: 10, count: 384)]))
    #expect(
        abs(Planner.plan(footprint, spec: spec, target: target, context: 4096, routing: flat).tokensPerSecond / uniform.tokensPerSecond - 1)
            < 1e-9)
    // Zipf-like routing (expert rank r gets 1/(r+1) of the weight): the RAM-resident hot experts serve most reads.
    let skewed = try #require(RoutingProfile(counts: [3: (0..<384).map { 100_000 / ($0 + 1) }]))
    let hot = Planner.plan(footprint, spec: spec, target: target, context: 4096, routing: skewed)
    #expect(hot.diskBytes == uniform.diskBytes && hot.tokensPerSecond > 1.5 * uniform.tokensPerSecond)
}

@Test func inlineHardwareEqualsTheCatalogEntry() throws {
    // `gpu:24:1008+ram:256:89.6` is the bundled rtx4090 + 256 GB dual-channel DDR5 given by its numbers (the catalog
    // entry adds FLOP/s, a PCIe link and a measured RAM efficiency, so only capacities and placement must agree).
    let catalog = try HardwareCatalog.bundled()
    let inline = try catalog.target("gpu:24:1008+ram:256:89.6")
    let named = try catalog.target("rtx4090+256gb")
    #expect(inline.gpus.map(\.memory) == named.gpus.map(\.memory) && inline.memory?.capacity == named.memory?.capacity)
    #expect(inline.gpus.first?.bandwidth == named.gpus.first?.bandwidth && inline.memory?.bandwidth == named.memory?.bandwidth)
    let spec = try ModelSpec(config: try #require(ModelPresets.named("qwen3-235b-a22b")).config)
    let footprint = try Footprint.of(spec: spec, recipe: .q4_K_M)
    let a = Planner.plan(footprint, spec: spec, target: inline, context: 8192),
        b = Planner.plan(footprint, spec: spec, target: named, context: 8192)
    #expect(a.cpuMoeLayers == b.cpuMoeLayers && a.verdict == b.verdict && a.fastBytes == b.fastBytes)
    #expect(try catalog.target("2xgpu:24:936").gpus.count == 2)
    #expect(throws: TargetError.self) { try catalog.target("gpu:24") }
    #expect(throws: TargetError.self) { try catalog.target("tpu:16:100") }
}
