// Layer-major evaluation (all windows advance one layer at a time) gives the window-at-a-time logits bit for bit.
import Foundation
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
