// Kimi Delta Attention (Kimi-Linear; transformers `KimiLinearDeltaAttention` through its PyTorch reference path), per
// window, token by token: q, k and v each pass a causal depthwise convolution and SiLU; a per-channel forget gate
// g = −exp(A_log)·softplus(f_b(f_a(x)) + dt_bias) decays each head's d×d state before the delta-rule update with
// β = σ(b(x)); q and k are L2-normalised (q also by d^-½); the read-out is RMS-normed per head, gated by σ(g_b(g_a(x)))
// and projected back.
import Foundation
import ModelCatalog

extension DeepseekV3Forward {
    /// The attention block's output [tokens × hidden] for the normed input `a` of consecutive causal `windows`.
    func kimiDeltaAttention(layer: Int, normed a: [Float], windows: [Int], _ linear: LinearAttention) throws -> [Float] {
        func role(_ part: AttentionPart) -> TensorRole { .attention(layer: layer, part: part) }
        let t = windows.reduce(0, +), h = spec.hiddenSize, n = linear.heads, d = linear.headDim, width = n * d
        let taps = linear.convKernel, eps = Float(spec.rmsNormEpsilon)
        let qkv = try weights.project(
            a, tokens: t, inputs: h, [(role(.query), width), (role(.key), width), (role(.value), width)], observer: observer)
        let convolved = try zip([AttentionPart.convQuery, .convKey, .convValue], qkv).map { part, x in
            try causalConvolution(x, weight: try weight(role(part)), windows: windows, channels: width, taps: taps)
        }
        let forget = try project(
            try project(a, tokens: t, inputs: h, role(.forgetA), outputs: d), tokens: t, inputs: d, role(.forgetB), outputs: width)
        let decayBias = try weights.bias(role(.decayBias)) ?? [Float](repeating: 0, count: width)
        let logDecay = try weight(role(.decayLog))
        let beta = try project(a, tokens: t, inputs: h, role(.beta), outputs: n)
        let gate = try project(
            try project(a, tokens: t, inputs: h, role(.gateA), outputs: d), tokens: t, inputs: d, role(.gateB), outputs: width)
        let normWeight = try weight(role(.outputNorm))
        guard logDecay.count == n, decayBias.count == width, normWeight.count == d else {
            throw EngineError.shape(what: "layer \(layer) KDA decay / norm", expected: [n, width, d], found: logDecay.count)
        }
        var gated = [Float](repeating: 0, count: t * width)
        var first = 0
        for count in windows {
            defer { first += count }
            gated.withUnsafeMutableBufferPointer { out in
                Parallel.forEach(n) { head in
                    var state = [Float](repeating: 0, count: d * d)  // [key channel i][value channel j]
                    var q = [Float](repeating: 0, count: d), k = q, v = q, decay = q, read = q, update = q
                    let rate = exp(logDecay[head])
                    for step in 0..<count {
                        let row = first + step, base = row * width + head * d
                        for i in 0..<d {
                            q[i] = convolved[0][base + i]
                            k[i] = convolved[1][base + i]
                            v[i] = convolved[2][base + i]
                            let z = forget[base + i] + decayBias[head * d + i]
                            decay[i] = exp(-rate * (z > 20 ? z : log1p(exp(z))))
                        }
                        let qNorm = 1 / ((q.reduce(0) { $0 + $1 * $1 } + 1e-6).squareRoot() * Float(d).squareRoot())
                        let kNorm = 1 / (k.reduce(0) { $0 + $1 * $1 } + 1e-6).squareRoot()
                        for i in 0..<d { q[i] *= qNorm; k[i] *= kNorm }
                        let b = 1 / (1 + exp(-beta[row * n + head]))
                        // Decay, then read the state at k, then write β(v − read) along k.
                        for i in 0..<d { for j in 0..<d { state[i * d + j] *= decay[i] } }
                        for j in 0..<d { read[j] = 0 }
                        for i in 0..<d { for j in 0..<d { read[j] += state[i * d + j] * k[i] } }
                        for j in 0..<d { update[j] = b * (v[j] - read[j]) }
                        for i in 0..<d { for j in 0..<d { state[i * d + j] += k[i] * update[j] } }
                        var o = [Float](repeating: 0, count: d)
                        for i in 0..<d { for j in 0..<d { o[j] += state[i * d + j] * q[i] } }
                        let rms = 1 / (o.reduce(0) { $0 + $1 * $1 } / Float(d) + eps).squareRoot()
                        for j in 0..<d { out[base + j] = normWeight[j] * o[j] * rms / (1 + exp(-gate[base + j])) }
                    }
                }
            }
        }
        return try project(gated, tokens: t, inputs: width, role(.output), outputs: h)
    }

    /// SiLU of a causal depthwise convolution over each window: channel c of token s is Σ_j w[c, j] · x[s − taps + 1 + j, c]
    /// (zero before the window starts); `weight` is [channels, 1, taps].
    func causalConvolution(_ x: [Float], weight: [Float], windows: [Int], channels: Int, taps: Int) throws -> [Float] {
        guard weight.count == channels * taps else {
            throw EngineError.shape(what: "KDA convolution", expected: [channels, 1, taps], found: weight.count)
        }
        var y = [Float](repeating: 0, count: x.count)
        var first = 0
        for count in windows {
            for step in 0..<count {
                let row = first + step
                for c in 0..<channels {
                    var total: Float = 0
                    for j in 0..<taps {
                        let source = step - taps + 1 + j
                        if source >= 0 { total += weight[c * taps + j] * x[(first + source) * channels + c] }
                    }
                    y[row * channels + c] = DenseOps.silu(total)
                }
            }
            first += count
        }
        return y
    }
}
