// Mapped pages are released after use: after converting a checkpoint and validating the result, with every input
// still mapped, almost none of their pages stay resident in this process (/proc/self/smaps). Without the release,
// resident bytes would approach the files' sizes; at a 1 T model's scale that is what made `top` show tens of GB.
import ConversionPipeline
import Foundation
import ModelCatalog
import OutputPlanning
import TensorFormats
import Testing
@testable import ReferenceEngine

/// Mapped size and resident bytes of this process's mappings of files under `directory`.
private func mappedPages(under directory: String) throws -> (mapped: Int, resident: Int) {
    // /proc files report size 0: read to the end rather than by size.
    let handle = try #require(FileHandle(forReadingAtPath: "/proc/self/smaps"))
    let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
    handle.closeFile()
    var mapped = 0, resident = 0, inside = false
    for line in text.split(separator: "\n") {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        if let first = fields.first, first.contains("-"), fields.count >= 5, first.allSatisfy({ $0.isHexDigit || $0 == "-" }) {
            inside = fields.count >= 6 && fields[5].hasPrefix(directory)
        } else if inside, fields.count >= 2, let kb = Int(fields[1]) {
            if fields[0] == "Size:" { mapped += kb * 1024 }
            if fields[0] == "Rss:" { resident += kb * 1024 }
        }
    }
    return (mapped, resident)
}

@Test(arguments: [
    (Architecture.deepseekV3, SyntheticDType.int4, RecipeName.int4Native), (.deepseekV3, .fp8, .q8_0), (.qwen3Moe, .bf16, .q8_0),
])
func inputPagesAreReleasedAfterConvertingAndValidating(architecture: Architecture, dtype: SyntheticDType, recipe: RecipeName) throws {
    let directory = NSTemporaryDirectory() + "moeq-resident-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var options = SyntheticOptions(preset: try #require(ModelPresets.named("tiny", architecture: architecture)), dtype: dtype)
    options.seed = 3
    _ = try SyntheticCheckpoint.write(options, to: directory + "/src")
    let plan = try GGUFConversion.plan(path: directory + "/src", recipe: recipe)
    _ = try GGUFConversion.run(plan, output: directory + "/out.gguf", threads: 2)
    let files = try FileManager.default.contentsOfDirectory(atPath: directory + "/src").filter { $0.hasSuffix(".safetensors") }
    // Each mapping may keep its header and one fault-around window at the edges of what was read last.
    let allowance = files.count * (128 << 10)
    let source = try mappedPages(under: directory + "/src")
    #expect(source.mapped > 3 << 20, "the checkpoint's files are mapped while the plan lives")
    #expect(source.resident <= allowance, "\(source.resident) bytes of the checkpoint resident after converting")

    let quant = try ReferenceModel.weights(path: directory + "/out.gguf", configDirectory: directory + "/src")
    let base = try CheckpointWeights(path: directory + "/src")
    let tokens = (0..<96).map { ($0 * 37 + 11) % 200 }
    let (report, _) = try QuantValidation.run(
        quant: quant, base: .model(base), configDirectory: directory + "/src",
        windows: QuantValidation.windows(tokens: tokens, context: 32, maxChunks: nil, beginningOfSequence: nil))
    #expect(report.positions > 0 && report.meanKLD.isFinite)
    let output = try mappedPages(under: directory + "/out.gguf")
    let afterValidation = try mappedPages(under: directory + "/src")
    #expect(output.mapped > 1 << 20, "the converted file is mapped while the engine lives")
    #expect(output.resident <= 128 << 10, "\(output.resident) bytes of the converted file resident after validating")
    #expect(afterValidation.resident <= allowance, "\(afterValidation.resident) bytes of the checkpoint resident after validating")
    withExtendedLifetime((plan, quant, base)) {}
}

/// A layer-major pass never comes back to a layer it left, so the decoded-weight cache drops each layer's weights
/// when the pass leaves it: what it holds peaks at about one layer's weights, not the model's, however roomy the budget
/// (it used to keep everything up to 256 MiB, which made validate's memory grow with the layers of a large model).
/// Logits do not change.
@Test func decodedWeightsOfALayerAreDroppedWhenThePassLeavesIt() throws {
    let directory = NSTemporaryDirectory() + "moeq-cache-" + UUID().uuidString
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var options = SyntheticOptions(preset: try #require(ModelPresets.named("tiny", architecture: .qwen3Moe)), dtype: .bf16)
    options.seed = 5
    _ = try SyntheticCheckpoint.write(options, to: directory)
    let windows = [(0..<24).map { ($0 * 13 + 7) % 200 }, (0..<24).map { ($0 * 29 + 3) % 200 }]
    let weights = try CheckpointWeights(path: directory, cacheBytes: 256 << 20)
    var all: [Float] = []
    try LayerMajor.forEachLogits(weights: weights, windows: windows) { _, logits in all += logits }
    #expect(weights.cache.heldBytes == 0, "\(weights.cache.heldBytes) bytes of finished layers still held")
    // The largest layer's decoded weights (every tensor of that layer in f32), and the whole model's.
    let layout = weights.spec.tensorLayout
    var perLayer: [Int?: Int] = [:]
    for tensor in layout.expectedTensors() { perLayer[tensor.role.layer, default: 0] += 4 * tensor.shape.reduce(1, *) }
    let largestLayer = perLayer.filter { $0.key != nil }.values.max() ?? 0, model = perLayer.values.reduce(0, +)
    #expect(weights.cache.peakBytes > 0 && weights.cache.peakBytes <= largestLayer + (perLayer[nil] ?? 0))
    #expect(weights.cache.peakBytes < model / 2, "peak \(weights.cache.peakBytes) of a \(model)-byte model")
    // Without a cache (each weight decoded where used) the logits are the same.
    let uncached = try CheckpointWeights(path: directory, cacheBytes: 0)
    var again: [Float] = []
    try LayerMajor.forEachLogits(weights: uncached, windows: windows) { _, logits in again += logits }
    #expect(again == all)
}
