// Layer-major evaluation (all windows advance one layer at a time) gives the window-at-a-time logits bit for bit, and
// counts the weight bytes it reads.
import ConversionPipeline
import Foundation
import TensorFormats
import Testing
@testable import ReferenceEngine

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

@Test(arguments: ["deepseek_v3-f32", "qwen3_moe-f32", "mixtral-f32", "trained-deepseek_v3_wide"])
func layerMajorLogitsEqualWindowAtATime(fixture: String) throws {
    let weights = try CheckpointWeights(path: fixtures.appendingPathComponent(fixture).path)
    let windows = (0..<3).map { w in (0..<12).map { (w * 97 + $0 * 31 + 2) % 390 + 3 } }
    // All in memory, one window resident and two spilled to the scratch file, everything spilled.
    let oneWindow = 4 * 12 * weights.spec.hiddenSize
    for budget in [LayerMajor.defaultBudget, oneWindow, 0] {
        var seen = 0
        try LayerMajor.forEachLogits(weights: weights, windows: windows, budget: budget) { w, logits in
            #expect(w == seen)
            seen += 1
            let expected = try ReferenceModel.logits(weights: weights, tokens: windows[w])
            #expect(logits.count == 12 * weights.spec.vocabularySize && logits == expected, "\(fixture) window \(w) budget \(budget)")
        }
        #expect(seen == 3)
    }
    let store = try HiddenStates(sizes: [10, 20, 30], budget: 4 * 25)
    #expect(store.residentCount == 1 && store.spilledBytes == 4 * 50)
}

/// A pass reports every stored weight byte once: on a GGUF, the sum of its tensors' sizes (the read-ahead covers the
/// file), with one step per layer in order.
@Test func layerMajorPassCountsEveryWeightByteOnce() throws {
    let directory = fixtures.appendingPathComponent("qwen3_moe-f32").path
    let output = NSTemporaryDirectory() + "moeq-bytes-read-\(UUID().uuidString).gguf"
    defer { try? FileManager.default.removeItem(atPath: output); try? FileManager.default.removeItem(atPath: output + ".manifest.json") }
    _ = try GGUFConversion.run(try GGUFConversion.plan(path: directory, recipe: .q8_0), output: output, threads: 2)
    let weights = try ReferenceModel.weights(path: output, configDirectory: directory)
    let engine = try ReferenceModel.engine(weights: weights)
    var steps: [LayerMajor.Step] = []
    _ = try LayerMajor.hiddenStates(engine, windows: [[3, 4, 5, 6], [7, 8, 9]], progress: { steps.append($0) })
    let file = try GGUFFile(path: output)
    #expect(steps.map(\.layer) == Array(0..<weights.spec.layerCount))
    #expect(steps.last?.bytesRead == file.tensors.reduce(0) { $0 + $1.byteCount })
    #expect(zip(steps, steps.dropFirst()).allSatisfy { $0.bytesRead <= $1.bytesRead && $0.seconds <= $1.seconds })
}

/// A vocabulary too large to decode whole: the embedding read row by row and the head a slice at a time give the
/// whole-matrix numbers bit for bit, from a checkpoint and from a quantized GGUF (llama.cpp rounding included).
@Test func slicedEmbeddingAndHeadEqualTheWholeMatrices() throws {
    let directory = fixtures.appendingPathComponent("trained-qwen3_moe_wide").path
    let output = NSTemporaryDirectory() + "moeq-sliced-head-\(UUID().uuidString).gguf"
    defer { try? FileManager.default.removeItem(atPath: output); try? FileManager.default.removeItem(atPath: output + ".manifest.json") }
    _ = try GGUFConversion.run(try GGUFConversion.plan(path: directory, recipe: .q4_K_M), output: output, threads: 2)
    let ids = (0..<40).map { ($0 * 577 + 11) % 3000 + 3 }
    for weights in [
        try ReferenceModel.weights(path: directory),
        try ReferenceModel.weights(path: output, configDirectory: directory, llamaCPUArithmetic: true),
    ] {
        let engine = try ReferenceModel.engine(weights: weights)
        let small = 4 * weights.spec.hiddenSize * 700  // slices of 700 vocabulary rows
        let whole = try engine.embed(ids), sliced = try engine.embed(ids, largeWeightBytes: small)
        #expect(whole == sliced)
        var x = whole
        try engine.layer(0, &x, tokens: ids.count)
        #expect(try engine.head(x, tokens: ids.count) == engine.head(x, tokens: ids.count, largeWeightBytes: small))
    }
}
