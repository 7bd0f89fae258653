// The leaf operations of the reference forward pass, on row-major f32 activations [tokens × width].
import Foundation

enum DenseOps {
    /// y = x · W (W stored [out, in], PyTorch order): [tokens × out], each row independent of the others (row_gemm.h).
    static func linear(_ x: [Float], tokens: Int, inputs: Int, _ weight: [Float], outputs: Int) -> [Float] {
        var y = [Float](repeating: 0, count: tokens * outputs)
        x.withUnsafeBufferPointer { a in
            weight.withUnsafeBufferPointer { b in
                y.withUnsafeMutableBufferPointer { c in
                    Matrix.multiplyTransposedRowExact(a, rows: tokens, inner: inputs, b, columns: outputs, into: c)
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

    /// HF "rotate_half" RoPE on `heads` heads of `dim` per token row; positions restart at 0 in each window of
    /// `windows` (token counts of the consecutive windows in `x`).
    static func rope(_ x: inout [Float], windows: [Int], heads: Int, dim: Int, theta: Double) {
        let half = dim / 2
        let inverse = (0..<half).map { Float(1 / pow(theta, Double(2 * $0) / Double(dim))) }
        var row = 0
        for count in windows {
            for t in 0..<count {
                for i in 0..<half {
                    let angle = Float(t) * inverse[i]
                    let c = cos(angle), s = sin(angle)
                    for h in 0..<heads {
                        let base = ((row + t) * heads + h) * dim
                        let a = x[base + i], b = x[base + i + half]
                        x[base + i] = a * c - b * s
                        x[base + i + half] = b * c + a * s
                    }
                }
            }
            row += count
        }
    }

    /// Causal grouped-query attention within each window of `windows` (token counts of the consecutive windows):
    /// q [T × H·d], k [T × Hkv·d], v [T × Hkv·dv] → [T × H·dv]; `scale` defaults to 1/√d. Per window and head:
    /// scores = Q·Kᵀ and output = P·V as two sgemms, softmax over s ≤ t in between; (window, head) pairs in parallel.
    static func attention(
        q: [Float], k: [Float], v: [Float], windows: [Int], heads: Int, kvHeads: Int, dim: Int,
        valueDim: Int? = nil, scale: Float? = nil
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
                for i in 0..<t { for j in 0..<dv { out[((first + i) * heads + h) * dv + j] = o[i * dv + j] } }
            }
        }
        return out
    }

    static func silu(_ x: Float) -> Float { x / (1 + exp(-x)) }

    /// Routed-expert dispatch: gathers the rows routed to each expert, runs `expert(index, rows, count)` once per
    /// expert that received tokens, and sums the outputs back weighted by the router weights, expert by expert in
    /// index order (so the sums do not depend on scheduling). `x` is tokens × width. With `parallel`, as many experts
    /// as there are cores run at once (the closure must then be safe to call concurrently).
    static func dispatch(
        _ x: [Float], tokens: Int, width h: Int, experts: Int, chosen: [[(expert: Int, weight: Float)]], parallel: Bool = false,
        expert: (Int, [Float], Int) throws -> [Float]
    ) throws -> [Float] {
        var output = [Float](repeating: 0, count: tokens * h)
        var routed = [[(row: Int, weight: Float)]](repeating: [], count: experts)
        for i in 0..<tokens {
            for pick in chosen[i] where (0..<experts).contains(pick.expert) { routed[pick.expert].append((i, pick.weight)) }
        }
        let used = (0..<experts).filter { !routed[$0].isEmpty }
        let group = parallel ? Parallel.threads : 1
        for start in stride(from: 0, to: used.count, by: group) {
            let batch = Array(used[start..<min(start + group, used.count)])
            var results = [Result<[Float], Error>](repeating: .success([]), count: batch.count)
            results.withUnsafeMutableBufferPointer { results in
                Parallel.forEach(batch.count, enabled: parallel) { slot in
                    let e = batch[slot], list = routed[e]
                    var rows = [Float](repeating: 0, count: list.count * h)
                    for (r, (i, _)) in list.enumerated() { for j in 0..<h { rows[r * h + j] = x[i * h + j] } }
                    results[slot] = Result { try expert(e, rows, list.count) }
                }
            }
            for (slot, e) in batch.enumerated() {
                let down = try results[slot].get()
                for (r, (i, w)) in routed[e].enumerated() { for j in 0..<h { output[i * h + j] += w * down[r * h + j] } }
            }
        }
        return output
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
