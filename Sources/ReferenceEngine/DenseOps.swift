// The leaf operations of the reference forward pass, on row-major f32 activations [tokens × width].
import CRowGEMM
import Foundation
import ModelCatalog
import QuantKernels

enum DenseOps {
    /// y = x · W (W stored [out, in], PyTorch order): [tokens × out], each row independent of the others (row_gemm.h).
    static func linear(_ x: [Float], tokens: Int, inputs: Int, _ weight: [Float], outputs: Int) -> [Float] {
        // The product writes every element (each an FMA chain from zero), so the output is not zeroed first.
        [Float](unsafeUninitializedCapacity: tokens * outputs) { c, count in
            x.withUnsafeBufferPointer { a in
                weight.withUnsafeBufferPointer { b in
                    Matrix.multiplyTransposedRowExact(a, rows: tokens, inner: inputs, b, columns: outputs, into: c)
                }
            }
            count = tokens * outputs
        }
    }

    /// `x` [rows × width] rounded as llama.cpp's CPU backend rounds a matmul input (rows are independent, so they are
    /// rounded in parallel runs of rows).
    static func rounded(_ x: [Float], rows: Int, width: Int, _ rounding: GGMLDotInput) -> [Float] {
        var out = x
        out.withUnsafeMutableBufferPointer { out in
            Parallel.rows(rows, minimum: 64) { run in
                var part = Array(out[(run.lowerBound * width)..<(run.upperBound * width)])
                rounding.round(&part)
                for i in part.indices { out[run.lowerBound * width + i] = part[i] }
            }
        }
        return out
    }

    /// RMSNorm over each `width`-wide group: x / √(mean x² + ε) · w.
    static func rmsNorm(_ x: inout [Float], width: Int, weight: [Float], epsilon: Float) {
        x.withUnsafeMutableBufferPointer { x in
            Parallel.rows(x.count / max(width, 1)) { rows in
                for row in rows {
                    let start = row * width
                    var sum: Float = 0
                    for i in start..<(start + width) { sum += x[i] * x[i] }
                    let scale = 1 / (sum / Float(width) + epsilon).squareRoot()
                    for i in 0..<width { x[start + i] = weight[i] * (x[start + i] * scale) }
                }
            }
        }
    }

    /// A copy of `x` with RMSNorm applied (rows in parallel).
    static func normed(_ x: [Float], width: Int, weight: [Float], epsilon: Float) -> [Float] {
        var y = x
        rmsNorm(&y, width: width, weight: weight, epsilon: epsilon)
        return y
    }

    /// x += y, element-wise, on all cores (the residual stream).
    static func add(_ x: inout [Float], _ y: [Float]) {
        x.withUnsafeMutableBufferPointer { x in
            y.withUnsafeBufferPointer { y in Parallel.rows(x.count, minimum: 1 << 16) { run in for i in run { x[i] += y[i] } } }
        }
    }

    static func mscale(_ scale: Double, _ m: Double) -> Double { scale <= 1 ? 1 : 0.1 * m * log(scale) + 1 }

    /// Inverse frequencies of `dim` rotated dims and the cos/sin scale: plain RoPE, or YaRN's blend of interpolated
    /// and extrapolated frequencies with its attention factor (transformers' `_compute_yarn_parameters`; the
    /// correction range's bounds rounded out unless `truncate` is false, as gpt-oss sets).
    static func ropeFrequencies(dim: Int, theta base: Double, scaling: RopeScaling?) -> (inverse: [Float], attentionScale: Float) {
        let plain = (0..<(dim / 2)).map { Float(1 / pow(base, Double(2 * $0) / Double(dim))) }
        guard let yarn = scaling, yarn.type == "yarn", let original = yarn.originalMaxPositionEmbeddings else { return (plain, 1) }
        let factor = yarn.factor
        var attention = mscale(factor, 1)
        if let m = yarn.mscale, let all = yarn.mscaleAllDim, m != 0, all != 0 { attention = mscale(factor, m) / mscale(factor, all) }
        let fast = yarn.betaFast ?? 32, slow = yarn.betaSlow ?? 1
        func correction(_ rotations: Double) -> Double {
            Double(dim) * log(Double(original) / (rotations * 2 * Double.pi)) / (2 * log(base))
        }
        var low = correction(fast), high = correction(slow)
        if yarn.truncate { (low, high) = (floor(low), ceil(high)) }
        (low, high) = (max(low, 0), min(high, Double(dim - 1)))
        let span = low == high ? 0.001 : high - low
        let inverse = (0..<(dim / 2)).map { i -> Float in
            let position = pow(base, Double(2 * i) / Double(dim))
            let ramp = min(max((Double(i) - low) / span, 0), 1)
            let extrapolation = 1 - ramp
            return Float((1 / (factor * position)) * (1 - extrapolation) + (1 / position) * extrapolation)
        }
        return (inverse, Float(attention))
    }

    /// Each token's position within its window (`windows`: token counts of the consecutive windows).
    static func positions(_ windows: [Int]) -> [Int] { windows.flatMap { 0..<$0 } }

    /// cos and sin of position · inverse[i] for positions 0..<count: [count × inverse.count] each.
    static func rotations(count: Int, inverse: [Float], scale: Float = 1) -> (cos: [Float], sin: [Float]) {
        var c = [Float](repeating: 0, count: count * inverse.count), s = c
        for t in 0..<count {
            for (i, f) in inverse.enumerated() {
                let angle = Float(t) * f
                c[t * inverse.count + i] = cos(angle) * scale
                s[t * inverse.count + i] = sin(angle) * scale
            }
        }
        return (c, s)
    }

    /// HF "rotate_half" RoPE on `heads` heads of `dim` per token row; positions restart at 0 in each window of
    /// `windows` (token counts of the consecutive windows in `x`).
    /// LayerNorm over each row of `width` values (mean and variance in f32), then weight and bias.
    static func layerNorm(_ x: inout [Float], width: Int, weight: [Float], bias: [Float]?, epsilon: Float) {
        x.withUnsafeMutableBufferPointer { x in
            for row in 0..<(x.count / max(width, 1)) {
                let base = row * width
                var mean: Float = 0
                for c in 0..<width { mean += x[base + c] }
                mean /= Float(width)
                var variance: Float = 0
                for c in 0..<width { variance += (x[base + c] - mean) * (x[base + c] - mean) }
                let inverse = 1 / (variance / Float(width) + epsilon).squareRoot()
                for c in 0..<width { x[base + c] = (x[base + c] - mean) * inverse * weight[c] + (bias?[c] ?? 0) }
            }
        }
    }

    /// Adds `bias` [width] to every row of `x` [rows × width].
    static func addRows(_ x: inout [Float], _ bias: [Float]) {
        let width = bias.count
        guard width > 0 else { return }
        x.withUnsafeMutableBufferPointer { x in
            for row in 0..<(x.count / width) { for c in 0..<width { x[row * width + c] += bias[c] } }
        }
    }

    /// `rotary`: rotate only the first `rotary` dims of each head (GLM's partial rotary; the rest pass through).
    /// `scaling`: YaRN's frequencies and cos/sin scale (gpt-oss).
    static func rope(
        _ x: inout [Float], windows: [Int], heads: Int, dim: Int, theta: Double, rotary: Int? = nil, scaling: RopeScaling? = nil
    ) {
        let rotated = rotary ?? dim, half = rotated / 2
        let (inverse, scale) = ropeFrequencies(dim: rotated, theta: theta, scaling: scaling)
        let positions = positions(windows), (cosines, sines) = rotations(count: windows.max() ?? 0, inverse: inverse, scale: scale)
        x.withUnsafeMutableBufferPointer { x in
            Parallel.rows(positions.count) { tokens in
                for row in tokens {
                    let t = positions[row]
                    for i in 0..<half {
                        let c = cosines[t * half + i], s = sines[t * half + i]
                        for h in 0..<heads {
                            let base = (row * heads + h) * dim
                            let a = x[base + i], b = x[base + i + half]
                            x[base + i] = a * c - b * s
                            x[base + i + half] = b * c + a * s
                        }
                    }
                }
            }
        }
    }

    /// Query rows per causal block of `attention` (keys beyond a block's last row are not multiplied).
    static let attentionBlock = 64

    /// Causal grouped-query attention within each window of `windows` (token counts of the consecutive windows):
    /// q [T × H·d], k [T × Hkv·d], v [T × Hkv·dv] → [T × H·dv]; `scale` defaults to 1/√d. Per window and head:
    /// per block of `attentionBlock` query rows, scores = Q·Kᵀ and output = P·V as two row-exact products over the keys
    /// up to the block's last row, softmax over s ≤ t in between (`moeq_softmax`); (window, head) pairs in parallel.
    /// `sinks`: a logit per head that joins each softmax without a value (gpt-oss); `slidingWindow`: keys at most
    /// `slidingWindow − 1` positions back (sliding-window layers); `visible`: per window, which keys each query may
    /// see (`[query · count + key]`; DeepSeek-V3.2's indexer), nil for all earlier ones.
    static func attention(
        q: [Float], k: [Float], v: [Float], windows: [Int], heads: Int, kvHeads: Int, dim: Int,
        valueDim: Int? = nil, scale: Float? = nil, sinks: [Float]? = nil, slidingWindow: Int? = nil, visible: [[Bool]?]? = nil
    ) -> [Float] {
        let dv = valueDim ?? dim, total = windows.reduce(0, +)
        var out = [Float](repeating: 0, count: total * heads * dv)
        let scale = scale ?? 1 / Float(dim).squareRoot()
        var starts: [Int] = [], row = 0
        for count in windows { starts.append(row); row += count }
        out.withUnsafeMutableBufferPointer { out in
            Parallel.forEach(windows.count * heads) { pair in
                let w = pair / heads, h = pair % heads, t = windows[w], first = starts[w]
                guard t > 0 else { return }
                let g = h / (heads / kvHeads)
                var qh = [Float](repeating: 0, count: t * dim), kh = qh, vt = [Float](repeating: 0, count: dv * t)
                for i in 0..<t {
                    let r = first + i
                    for j in 0..<dim {
                        qh[i * dim + j] = q[(r * heads + h) * dim + j]
                        kh[i * dim + j] = k[(r * kvHeads + g) * dim + j]
                    }
                    for j in 0..<dv { vt[j * t + i] = v[(r * kvHeads + g) * dv + j] }
                }
                // Causal: a block of query rows sees keys up to its last row only, so each block's scores and P·V run
                // over that prefix (every computed element is the same FMA chain; the skipped ones are masked zeros).
                var scores = [Float](repeating: 0, count: attentionBlock * t), block = [Float](repeating: 0, count: dv * t)
                var o = [Float](repeating: 0, count: attentionBlock * dv)
                for r0 in stride(from: 0, to: t, by: attentionBlock) {
                    let r1 = min(t, r0 + attentionBlock), rows = r1 - r0
                    qh.withUnsafeBufferPointer { qh in
                        kh.withUnsafeBufferPointer { kh in
                            scores.withUnsafeMutableBufferPointer { c in
                                Matrix.multiplyTransposedRowExact(
                                    UnsafeBufferPointer(rebasing: qh[(r0 * dim)..<(r1 * dim)]), rows: rows, inner: dim,
                                    UnsafeBufferPointer(rebasing: kh[0..<(r1 * dim)]), columns: r1, into: c)
                            }
                        }
                    }
                    scores.withUnsafeMutableBufferPointer { row in
                        for i in r0..<r1 {
                            let base = (i - r0) * r1
                            // A sliding window sees the last `window` positions (gpt-oss: i − s < window).
                            let first = slidingWindow.map { max(0, i - $0 + 1) } ?? 0
                            // DeepSeek-V3.2: keys the indexer did not select are out of the softmax.
                            let selected = visible?[w]
                            if let selected { for s in first...i where !selected[i * t + s] { row[base + s] = -.infinity } }
                            // A sink (gpt-oss) is one more logit in the softmax with no value behind it.
                            moeq_softmax(row.baseAddress! + base + first, i - first + 1, scale, sinks?[h] ?? -.infinity)
                            for s in 0..<first { row[base + s] = 0 }
                            for s in (i + 1)..<r1 where i + 1 < r1 { row[base + s] = 0 }
                        }
                    }
                    // Vᵀ over the block's key prefix, rows r1 wide.
                    for j in 0..<dv { for s in 0..<r1 { block[j * r1 + s] = vt[j * t + s] } }
                    scores.withUnsafeBufferPointer { p in
                        block.withUnsafeBufferPointer { vb in
                            o.withUnsafeMutableBufferPointer { c in
                                Matrix.multiplyTransposedRowExact(
                                    UnsafeBufferPointer(rebasing: p[0..<(rows * r1)]), rows: rows, inner: r1,
                                    UnsafeBufferPointer(rebasing: vb[0..<(dv * r1)]), columns: dv, into: c)
                            }
                        }
                    }
                    for i in r0..<r1 { for j in 0..<dv { out[((first + i) * heads + h) * dv + j] = o[(i - r0) * dv + j] } }
                }
            }
        }
        return out
    }

    static func silu(_ x: Float) -> Float { x / (1 + exp(-x)) }

    /// Routed-expert dispatch: for each expert that received tokens, in index order, gathers its rows, runs
    /// `expert(index, rows, count)` (whose products use every core) and adds the output back weighted by the router
    /// weight, so each token's sum runs in expert order whatever the threads do. `x` is tokens × width.
    static func dispatch(
        _ x: [Float], tokens: Int, width h: Int, experts: Int, chosen: [[(expert: Int, weight: Float)]],
        expert: (Int, [Float], Int) throws -> [Float]
    ) throws -> [Float] {
        var output = [Float](repeating: 0, count: tokens * h)
        var routed = [[(row: Int, weight: Float)]](repeating: [], count: experts)
        for i in 0..<tokens {
            for pick in chosen[i] where (0..<experts).contains(pick.expert) { routed[pick.expert].append((i, pick.weight)) }
        }
        for e in 0..<experts where !routed[e].isEmpty {
            let list = routed[e]
            var rows = [Float](repeating: 0, count: list.count * h)
            rows.withUnsafeMutableBufferPointer { rows in
                x.withUnsafeBufferPointer { x in
                    Parallel.rows(list.count) { run in
                        for r in run { for j in 0..<h { rows[r * h + j] = x[list[r].row * h + j] } }
                    }
                }
            }
            let down = try expert(e, rows, list.count)
            // A token appears at most once in an expert's list, so its rows are added without overlap.
            output.withUnsafeMutableBufferPointer { output in
                down.withUnsafeBufferPointer { down in
                    Parallel.rows(list.count) { run in
                        for r in run {
                            let (i, w) = list[r]
                            for j in 0..<h { output[i * h + j] += w * down[r * h + j] }
                        }
                    }
                }
            }
        }
        return output
    }

    /// SwiGLU's activation: silu(gate) · up, element-wise, on all cores; or gpt-oss's clamped form.
    static func swiGLU(_ gate: [Float], _ up: [Float], clamped: ClampedSwiGLU? = nil) -> [Float] {
        var act = [Float](repeating: 0, count: gate.count)
        act.withUnsafeMutableBufferPointer { act in
            Parallel.rows(gate.count, minimum: 1 << 14) { run in
                guard let clamped else {
                    gate.withUnsafeBufferPointer { gate in
                        up.withUnsafeBufferPointer { up in
                            moeq_silu_product(
                                gate.baseAddress! + run.lowerBound, up.baseAddress! + run.lowerBound, act.baseAddress! + run.lowerBound,
                                run.count)
                        }
                    }
                    return
                }
                let alpha = Float(clamped.alpha), limit = Float(clamped.limit)
                for i in run {
                    let g = min(gate[i], limit), u = min(max(up[i], -limit), limit)
                    act[i] = (u + 1) * (g / (1 + exp(-alpha * g)))
                }
            }
        }
        return act
    }
}

/// Work spread over the machine's cores (one level: a task that starts parallel work runs it in line).
public enum Parallel {
    /// Worker count: MOEQ_THREADS when set (1…1024), otherwise the active processor count.
    public static let threads: Int = {
        if let text = ProcessInfo.processInfo.environment["MOEQ_THREADS"], let n = Int(text), (1...1024).contains(n) { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    private static let nestedKey = "moeq.parallel.worker"
    private struct Task: @unchecked Sendable { let run: (Int) -> Void }

    /// Runs `body` over `count` rows split into runs (several per thread), in parallel when there are at least
    /// `minimum` rows; the body must touch only its own rows.
    static func rows(_ count: Int, minimum: Int = 256, _ body: (Range<Int>) -> Void) {
        let runs = count >= minimum ? min(threads * 4, count) : 1, step = (count + max(runs, 1) - 1) / max(runs, 1)
        forEach(runs) { r in
            let start = r * step, end = min(count, start + step)
            if start < end { body(start..<end) }
        }
    }

    /// Runs `body(0..<count)`, concurrently when `enabled`, there is more than one task and more than one worker.
    static func forEach(_ count: Int, enabled: Bool = true, _ body: (Int) -> Void) {
        guard enabled, count > 1, threads > 1, Thread.current.threadDictionary[nestedKey] == nil else {
            for i in 0..<count { body(i) }
            return
        }
        let workers = min(threads, count)
        withoutActuallyEscaping(body) { body in
            // Each task writes only its own slots (the callers' contract), so the closure may run concurrently.
            let task = Task(run: body)
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                let dictionary = Thread.current.threadDictionary
                dictionary[nestedKey] = true
                defer { dictionary.removeObject(forKey: nestedKey) }
                var i = worker
                while i < count {
                    task.run(i)
                    i += workers
                }
            }
        }
    }
}
