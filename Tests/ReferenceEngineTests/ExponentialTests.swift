// The engine's vectorized exponentials (Sources/CRowGEMM/exponentials.c): log-softmax of a row of logits, the attention
// softmax (with a masked key and a sink) and SwiGLU's SiLU are within a few 1e-7 of the same formulas in f64, at the
// extremes too, and give the same bits on the AVX2 path and the portable one.
import CRowGEMM
import Foundation
import Testing

/// Values spread over [low, high] by a fixed generator, with a length that leaves a tail after the eight-wide lanes.
private func spread(_ count: Int, _ low: Double, _ high: Double, seed: UInt64) -> [Float] {
    var state = seed
    return (0..<count).map { _ in
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(low + (high - low) * Double(state >> 11) / Double(1 << 53))
    }
}

private func bits(_ values: [Float]) -> [UInt32] { values.map(\.bitPattern) }

@Test func vectorizedExponentialsAreCloseToF64AndTheSameOnBothPaths() {
    let logits = spread(3077, -60, 25, seed: 1)
    var masked = spread(203, -8, 8, seed: 2)
    for i in stride(from: 3, to: masked.count, by: 7) { masked[i] = -.infinity }
    var gate = spread(2053, -30, 30, seed: 3)
    gate += [-200, -88.9, -88.5, -87.5, -1e-30, 0, 1e-30, 87.5, 88.5, 88.9, 200]
    let up = spread(gate.count, -3, 3, seed: 4)

    func run(portable: Bool) -> (logP: [Double], p: [Float], sunk: [Float], silu: [Float]) {
        let previous = moeq_row_gemm_force_portable(portable ? 1 : 0)
        defer { _ = moeq_row_gemm_force_portable(previous) }
        var logP = [Double](repeating: .nan, count: logits.count)
        moeq_log_softmax(logits, logits.count, &logP)
        var p = masked, sunk = masked
        moeq_softmax(&p, p.count, 0.125, -.infinity)
        moeq_softmax(&sunk, sunk.count, 0.125, 1.5)
        var silu = [Float](repeating: .nan, count: gate.count)
        moeq_silu_product(gate, up, &silu, gate.count)
        return (logP, p, sunk, silu)
    }
    let vector = run(portable: false), portable = run(portable: true)
    let sameLogP = vector.logP.map(\.bitPattern) == portable.logP.map(\.bitPattern)
    let sameSoftmax = bits(vector.p) == bits(portable.p) && bits(vector.sunk) == bits(portable.sunk)
    let sameSiLU = bits(vector.silu) == bits(portable.silu)
    #expect(sameLogP, "log-softmax differs between the AVX2 and the portable path")
    #expect(sameSoftmax, "softmax differs between the AVX2 and the portable path")
    #expect(sameSiLU, "SiLU differs between the AVX2 and the portable path")

    // log p against f64.
    let top = Double(logits.max()!)
    let logSum = top + log(logits.reduce(0.0) { $0 + exp(Double($1) - top) })
    for (x, y) in zip(logits, vector.logP) { #expect(abs(y - (Double(x) - logSum)) <= 1e-6) }
    // Softmax: masked keys get 0, the rest sum to 1 (less the sink's share) and match f64.
    for sink in [nil, 1.5] as [Double?] {
        let out = sink == nil ? vector.p : vector.sunk
        let scaled = masked.map { Double($0) * 0.125 }
        let m = max(scaled.max()!, sink ?? -.infinity)
        let total = scaled.reduce(0.0) { $0 + exp($1 - m) } + (sink.map { exp($0 - m) } ?? 0)
        for (x, y) in zip(scaled, out) {
            if x == -.infinity {
                #expect(y == 0)
            } else {
                #expect(abs(Double(y) - exp(x - m) / total) <= 1e-6 * exp(x - m) / total + 1e-12)
            }
        }
        #expect(abs(out.reduce(0.0) { $0 + Double($1) } - (1 - (sink.map { exp($0 - m) } ?? 0) / total)) <= 1e-5)
    }
    // SiLU · up, including arguments whose exponential under- or overflows.
    for ((g, u), y) in zip(zip(gate, up), vector.silu) {
        let reference = Double(g) / (1 + exp(-Double(g))) * Double(u)
        #expect(y.isFinite && abs(Double(y) - reference) <= 1e-6 * abs(reference) + 1e-30, "silu(\(g)) · \(u)")
    }
}
