// The leaf operations of the reference forward pass, on row-major f32 activations [tokens × width].
import Foundation

enum DenseOps {
    /// y = x · W (W stored [out, in], PyTorch order): [tokens × out].
    static func linear(_ x: [Float], tokens: Int, inputs: Int, _ weight: [Float], outputs: Int) -> [Float] {
        var y = [Float](repeating: 0, count: tokens * outputs)
        x.withUnsafeBufferPointer { a in
            weight.withUnsafeBufferPointer { b in
                y.withUnsafeMutableBufferPointer { c in
                    Matrix.multiplyTransposed(a, rows: tokens, inner: inputs, b, columns: outputs, into: c)
                }
            }
        }
        return y
    }

    /// RMSNorm over each `width`-wide group: x / √(mean x² + ε) · w.
    static func rmsNorm(_ x: inout [Float], width: Int, weight: [Float], epsilon: Float) {
        for start in stride(from: 0, to: x.count, by: width) {
            var sum: Float = 0
            for i in start..<(start + width) { sum += x[i] * x[i] }
            let scale = 1 / (sum / Float(width) + epsilon).squareRoot()
            for i in 0..<width { x[start + i] = weight[i] * (x[start + i] * scale) }
        }
    }

    /// HF "rotate_half" RoPE on `heads` heads of `dim` per token row, positions 0…tokens−1.
    static func rope(_ x: inout [Float], tokens: Int, heads: Int, dim: Int, theta: Double) {
        let half = dim / 2
        let inverse = (0..<half).map { Float(1 / pow(theta, Double(2 * $0) / Double(dim))) }
        for t in 0..<tokens {
            for i in 0..<half {
                let angle = Float(t) * inverse[i]
                let c = cos(angle), s = sin(angle)
                for h in 0..<heads {
                    let base = (t * heads + h) * dim
                    let a = x[base + i], b = x[base + i + half]
                    x[base + i] = a * c - b * s
                    x[base + i + half] = b * c + a * s
                }
            }
        }
    }

    /// Causal grouped-query attention: q [T × H·d], k [T × Hkv·d], v [T × Hkv·dv] → [T × H·dv]; `scale`
    /// defaults to 1/√d. Per head: scores = Q·Kᵀ and output = P·V as two sgemms, softmax over s ≤ t in between.
    static func attention(
        q: [Float], k: [Float], v: [Float], tokens: Int, heads: Int, kvHeads: Int, dim: Int,
        valueDim: Int? = nil, scale: Float? = nil
    ) -> [Float] {
        let dv = valueDim ?? dim, t = tokens
        var out = [Float](repeating: 0, count: t * heads * dv)
        let scale = scale ?? 1 / Float(dim).squareRoot()
        var qh = [Float](repeating: 0, count: t * dim), kh = qh, vt = [Float](repeating: 0, count: dv * t)
        for h in 0..<heads {
            let g = h / (heads / kvHeads)
            for i in 0..<t {
                for j in 0..<dim {
                    qh[i * dim + j] = q[(i * heads + h) * dim + j]
                    kh[i * dim + j] = k[(i * kvHeads + g) * dim + j]
                }
                for j in 0..<dv { vt[j * t + i] = v[(i * kvHeads + g) * dv + j] }
            }
            var p = linear(qh, tokens: t, inputs: dim, kh, outputs: t)
            p.withUnsafeMutableBufferPointer { row in
                for i in 0..<t {
                    let base = i * t
                    var maximum = -Float.infinity
                    for s in 0...i { row[base + s] *= scale; maximum = max(maximum, row[base + s]) }
                    var total: Float = 0
                    for s in 0...i { row[base + s] = exp(row[base + s] - maximum); total += row[base + s] }
                    for s in 0...i { row[base + s] /= total }
                    for s in (i + 1)..<t where i + 1 < t { row[base + s] = 0 }
                }
            }
            let o = linear(p, tokens: t, inputs: t, vt, outputs: dv)
            for i in 0..<t { for j in 0..<dv { out[(i * heads + h) * dv + j] = o[i * dv + j] } }
        }
        return out
    }

    static func silu(_ x: Float) -> Float { x / (1 + exp(-x)) }

    /// Routed-expert dispatch: gathers the rows routed to each expert, runs `expert(index, rows, count)` once per
    /// expert that received tokens, and sums the outputs back weighted by the router weights. `x` is tokens × width.
    static func dispatch(
        _ x: [Float], tokens: Int, width h: Int, experts: Int, chosen: [[(expert: Int, weight: Float)]],
        expert: (Int, [Float], Int) throws -> [Float]
    ) rethrows -> [Float] {
        var output = [Float](repeating: 0, count: tokens * h)
        for e in 0..<experts {
            let routed = (0..<tokens).compactMap { i in chosen[i].first { $0.expert == e }.map { (i, $0.weight) } }
            if routed.isEmpty { continue }
            var rows = [Float](repeating: 0, count: routed.count * h)
            for (r, (i, _)) in routed.enumerated() { for j in 0..<h { rows[r * h + j] = x[i * h + j] } }
            let down = try expert(e, rows, routed.count)
            for (r, (i, w)) in routed.enumerated() { for j in 0..<h { output[i * h + j] += w * down[r * h + j] } }
        }
        return output
    }
}
