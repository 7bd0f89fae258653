// DeepSeek-V3.2's lightning indexer (transformers `DeepseekV32Indexer`): which earlier keys each query of a window
// attends to. Queries come from the compressed query (after q_a_layernorm), keys from the layer's normed input
// through a LayerNorm; both rotate their first `ropeHeadDim` dims with the model's rope. The score of key s for query
// t is Σ_h w[t,h]·heads^-½ · relu(q[t,h]·k[s]·dim^-½) over s ≤ t, and t keeps the `topK` best.
import Foundation
import ModelCatalog

extension DeepseekV3Forward {
    /// Per window, `visible[i·count + s]` for its queries i and keys s (nil: every earlier key, as dense attention).
    func indexerSelection(
        layer: Int, compressed: [Float], normed a: [Float], windows: [Int], inverse: [Float], scale ropeScale: Float
    ) throws -> [[Bool]?] {
        guard let index = spec.indexer, let qRank = mla.queryRank else { return windows.map { _ in nil } }
        func role(_ part: AttentionPart) -> TensorRole { .attention(layer: layer, part: part) }
        let t = windows.reduce(0, +), h = spec.hiddenSize, heads = index.heads, dim = index.headDim
        // Every window fits in top-k: the selection is every earlier key.
        guard windows.contains(where: { $0 > index.topK }) else { return windows.map { _ in nil } }
        var q = try project(compressed, tokens: t, inputs: qRank, role(.indexerQueryB), outputs: heads * dim)
        var k = try project(a, tokens: t, inputs: h, role(.indexerKey), outputs: dim)
        DenseOps.layerNorm(
            &k, width: dim, weight: try weight(role(.indexerKeyNorm)), bias: try weights.bias(role(.indexerKeyNorm)), epsilon: 1e-6)
        let w = try project(a, tokens: t, inputs: h, role(.indexerWeights), outputs: heads)
        // The rotated dims lead each indexer head (the main attention's trail the no-position dims).
        applyRope(
            &q, windows: windows, heads: heads, stride: dim, offset: 0, inverse: inverse, scale: ropeScale,
            interleaved: index.interleavedRope)
        applyRope(
            &k, windows: windows, heads: 1, stride: dim, offset: 0, inverse: inverse, scale: ropeScale, interleaved: index.interleavedRope)
        let headScale = 1 / Float(heads).squareRoot(), dotScale = 1 / Float(dim).squareRoot()
        var selections: [[Bool]?] = []
        var first = 0
        for count in windows {
            defer { first += count }
            guard count > index.topK else {
                selections.append(nil)
                continue
            }
            var visible = [Bool](repeating: false, count: count * count)
            visible.withUnsafeMutableBufferPointer { visible in
                Parallel.rows(count, minimum: 8) { queries in
                    var scores = [Float](repeating: 0, count: count)
                    for i in queries {
                        let row = first + i
                        for s in 0...i {
                            var total: Float = 0
                            for head in 0..<heads {
                                var dot: Float = 0
                                for j in 0..<dim { dot += q[(row * heads + head) * dim + j] * k[(first + s) * dim + j] }
                                total += w[row * heads + head] * headScale * max(dot * dotScale, 0)
                            }
                            scores[s] = total
                        }
                        // The best min(topK, i + 1) keys; equal scores keep the earlier key.
                        let kept = (0...i).sorted { scores[$0] > scores[$1] || (scores[$0] == scores[$1] && $0 < $1) }.prefix(index.topK)
                        for s in kept { visible[i * count + s] = true }
                    }
                }
            }
            selections.append(visible)
        }
        return selections
    }
}
