// `synth`: deterministic checkpoints of every architecture and dtype that our reader, the role classifier
// and the decoders accept, and header-scale sparse presets.
import Foundation
import Testing
@testable import ConversionPipeline
import OutputPlanning
import ModelCatalog
import TensorFormats

private func temporaryDirectory() throws -> String {
    let path = NSTemporaryDirectory() + "moeq-synth-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

private func synth(
    _ architecture: Architecture, _ dtype: SyntheticDType, seed: UInt64 = 7, preset: String = "tiny",
    sparse: Bool = false, layers: Int? = nil, into directory: String
) throws -> SyntheticSummary {
    var options = SyntheticOptions(preset: try #require(ModelPresets.named(preset, architecture: architecture)), dtype: dtype)
    options.seed = seed
    options.sparse = sparse
    options.layers = layers
    return try SyntheticCheckpoint.write(options, to: directory)
}

private let combinations: [(Architecture, SyntheticDType)] = Architecture.allCases.filter(\.isConvertible).flatMap { arch in
    SyntheticDType.allCases.map { (arch, $0) }
}

@Test(arguments: combinations)
func tinyCheckpointsReadBackWithExpectedParameters(architecture: Architecture, dtype: SyntheticDType) throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let summary = try synth(architecture, dtype, into: directory)
    let inspection = try CheckpointInspection(path: directory)
    let spec = try #require(inspection.spec)
    let report = try #require(inspection.report)
    #expect(report.unknownTensors.isEmpty)
    #expect(inspection.checkpoint.tensors.count == summary.tensorCount)
    // Every stored byte is attributed to exactly one role.
    #expect(report.totalBytes == inspection.checkpoint.tensors.reduce(0) { $0 + $1.info.byteCount })
    #expect(report.bytesByCategory.values.reduce(0, +) == report.totalBytes)
    // PyTorch's count of the main layers: no router bias buffer, no MTP layer (tiny-glm4-moe has one).
    let expected = spec.expectedTensors().filter { tensor in
        let role = TensorClassifier(spec: spec).classify(tensor.name).role
        if case .routerBias = role { return false }
        if case .nextTokenPrediction = role { return false }
        return (role.layer ?? 0) < spec.layerCount
    }.reduce(0) { $0 + $1.shape.reduce(1, *) }
    #expect(report.totalParameters == expected)
    switch dtype {
    case .fp8: #expect(spec.quantization == .fp8Block(blockRows: 128, blockColumns: 128))
    case .int4: if case .compressedTensors = spec.quantization {} else { Issue.record("int4 config not compressed-tensors") }
    default: #expect(spec.quantization == .none)
    }
    #expect(FileManager.default.fileExists(atPath: directory + "/tokenizer.json"))
    #expect(try FileManager.default.contentsOfDirectory(atPath: directory).allSatisfy { !$0.hasSuffix(".partial") })
}

@Test func sameSeedSameBytesOtherSeedOtherBytes() throws {
    let a = try temporaryDirectory(), b = try temporaryDirectory(), c = try temporaryDirectory()
    defer { for d in [a, b, c] { try? FileManager.default.removeItem(atPath: d) } }
    let files = try synth(.qwen3Moe, .bf16, seed: 1, into: a).shardFiles
    _ = try synth(.qwen3Moe, .bf16, seed: 1, into: b)
    _ = try synth(.qwen3Moe, .bf16, seed: 2, into: c)
    for name in files {
        let first = try Data(contentsOf: URL(fileURLWithPath: a + "/" + name))
        #expect(first == (try Data(contentsOf: URL(fileURLWithPath: b + "/" + name))))
        #expect(first != (try Data(contentsOf: URL(fileURLWithPath: c + "/" + name))))
    }
}

/// Quantized storage decodes close to the f32 weights drawn from the same seed.
@Test(arguments: [SyntheticDType.fp8, .int4])
func quantizedStorageDecodesNearTheFloatWeights(dtype: SyntheticDType) throws {
    let reference = try temporaryDirectory(), quantized = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: reference); try? FileManager.default.removeItem(atPath: quantized) }
    _ = try synth(.deepseekV3, .f32, into: reference)
    _ = try synth(.deepseekV3, dtype, into: quantized)
    let name = "model.layers.1.mlp.experts.5.down_proj.weight"
    let exact = try WeightResolver(checkpoint: try Checkpoint(path: reference), quantization: .none).weight(named: name).decodeAll()
    let spec = try ModelSpec(configFile: quantized + "/config.json")
    let weight = try WeightResolver(checkpoint: try Checkpoint(path: quantized), quantization: spec.quantization).weight(named: name)
    let approximate = try weight.decodeAll()
    #expect(approximate.count == exact.count)
    var error: Float = 0, energy: Float = 0
    for (x, y) in zip(exact, approximate) { error += (x - y) * (x - y); energy += x * x }
    let relative = (error / energy).squareRoot()
    // E4M3 keeps 3 mantissa bits (~3 % RMS), INT4 g32 ~10 %; both far from 100 % (garbage or wrong layout).
    #expect(relative < (dtype == .fp8 ? 0.05 : 0.15), "relative RMS error \(relative)")
    #expect(relative > 0.001, "quantization should lose something")
}

@Test func sparseKimiK2HasRealShapesAndCounts() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let summary = try synth(.deepseekV3, .fp8, preset: "kimi-k2", sparse: true, into: directory)
    #expect(summary.shardFiles.count >= 60)
    let report = try #require(try CheckpointInspection(path: directory).report)
    #expect(abs(Double(report.totalParameters) - 1026.4e9) / 1026.4e9 < 0.005)
    #expect(report.activeParameters > 32_000_000_000 && report.activeParameters < 33_000_000_000)
    #expect(report.routedExpertsPerLayer.values.allSatisfy { $0 == 384 })
    #expect(report.bytesByDType[.f8e4m3, default: 0] > 1_000_000_000_000)
}

@Test func layersFlagKeepsWidthsAndDropsLayers() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    _ = try synth(.mixtral, .bf16, preset: "mixtral-8x7b", sparse: true, layers: 1, into: directory)
    let inspection = try CheckpointInspection(path: directory)
    let spec = try #require(inspection.spec)
    #expect(spec.layerCount == 1 && spec.hiddenSize == 4096)
    #expect(inspection.checkpoint.location(of: "model.layers.0.block_sparse_moe.experts.7.w2.weight")?.info.shape == [4096, 14336])
    #expect(inspection.checkpoint.location(of: "model.layers.1.input_layernorm.weight") == nil)
}

/// `--layers N` slices every preset, including multimodal wrappers whose language model sits in text_config (Kimi K2.5).
@Test(arguments: ["kimi-k2.5", "kimi-k2", "deepseek-v3", "qwen3-235b-a22b"])
func layerSlicesKeepNLayers(preset: String) throws {
    var options = SyntheticOptions(preset: try #require(ModelPresets.named(preset)), dtype: .int4)
    options.layers = 3
    let spec = try ModelSpec(config: SyntheticCheckpoint.config(for: options))
    #expect(spec.layerCount == 3)
    let full = try ModelSpec(config: try #require(ModelPresets.named(preset)).config)
    #expect(full.layerCount > 3 && spec.hiddenSize == full.hiddenSize)
}
