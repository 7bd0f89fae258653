// Lane-parallel searches of the K-quants with 16-value sub-blocks (Q2_K, Q6_K): a super-block in two passes of 8
// lanes, lane j holding sub-block j of the pass; flagged lanes (flat, all-zero or subnormal sub-blocks) are redone
// by the scalar port, which reproduces ggml there.

/// Q6_K's lane-parallel search: two passes of 8 lanes, lane j holding sub-block j (16 values).
enum Q6Lanes {
    static func transpose(_ source: UnsafePointer<Float>, into x: UnsafeMutablePointer<SIMD8<Float>>) {
        for i in 0..<16 {
            x[i] = SIMD8(
                source[i], source[16 + i], source[32 + i], source[48 + i], source[64 + i], source[80 + i], source[96 + i], source[112 + i])
        }
    }

    static func search(
        _ xb: UnsafePointer<Float>, _ importance: UnsafePointer<Float>?, scales: UnsafeMutablePointer<Float>,
        codes: UnsafeMutablePointer<Int8>
    ) {
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 48) { lanes in
            let x = lanes.baseAddress!, w = x + 16, l = w + 16
            for half in 0..<2 {
                transpose(xb + 128 * half, into: x)
                // rmse type 1 without an imatrix weights by x²: precomputed once, the same value ggml recomputes.
                if let importance { transpose(importance + 128 * half, into: w) } else { for i in 0..<16 { w[i] = x[i] * x[i] } }
                let result = LaneSearch.symmetric(32, x, weights: UnsafePointer(w), l)
                for j in 0..<8 {
                    let sub = 8 * half + j
                    if result.unsafe[j] {  // all-zero or subnormal sub-block: the scalar port reproduces ggml there
                        scales[sub] = ScaleSearch.symmetric(
                            16, 32, xb + 16 * sub, codes + 16 * sub, rmseType: 1,
                            weights: importance.map { $0 + 16 * sub })
                        continue
                    }
                    scales[sub] = result.scale[j]
                    for i in 0..<16 { codes[16 * sub + i] = Int8(l[i][j]) }
                }
            }
        }
    }
}

/// Imatrix weights qw·√(σ² + x²) of 8 sub-blocks of 16 (lanes as `x`), and each sub-block's sum in ggml's order.
@inline(__always)
private func importanceWeights(
    _ qw: UnsafePointer<Float>, _ x: UnsafePointer<SIMD8<Float>>, sigma2: Float, q: UnsafeMutablePointer<SIMD8<Float>>,
    into w: UnsafeMutablePointer<SIMD8<Float>>, sums: UnsafeMutablePointer<Float>
) {
    Q6Lanes.transpose(qw, into: q)
    var sumW = SIMD8<Float>(repeating: 0)
    for i in 0..<16 {
        w[i] = q[i] * (sigma2 + x[i] * x[i]).squareRoot()
        sumW += w[i]
    }
    for j in 0..<8 { sums[j] = sumW[j] }
}

/// Q2_K's search: make_qkx3 on imatrix weights qw·√(σ² + x²) (their sums go to `sw`), else make_qkx2 with absolute
/// errors on weights |x|, 3 levels above the min.
enum Q2Lanes {
    static func search(
        _ xb: UnsafePointer<Float>, _ qw: UnsafePointer<Float>?, sigma2: Float, scales: UnsafeMutablePointer<Float>,
        mins: UnsafeMutablePointer<Float>, sw: UnsafeMutablePointer<Float>, codes: UnsafeMutablePointer<UInt8>,
        redo: (Int) -> Void
    ) {
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 80) { lanes in
            let x = lanes.baseAddress!, w = x + 16, l = w + 16, scratch = l + 16, q = scratch + 16
            for half in 0..<2 {
                Q6Lanes.transpose(xb + 128 * half, into: x)
                let result: (scale: SIMD8<Float>, theMin: SIMD8<Float>, unsafe: LaneSearch.Mask)
                if let qw {
                    importanceWeights(qw + 128 * half, x, sigma2: sigma2, q: q, into: w, sums: sw + 8 * half)
                    result = LaneSearch.asymmetric(16, 3, x, w, l, scratch: scratch, grid: .importance, qkx3: true)
                } else {
                    for i in 0..<16 { w[i] = LaneSearch.magnitude(x[i]) }
                    result = LaneSearch.asymmetric(16, 3, x, w, l, scratch: scratch, grid: .q2K, qkx3: false, useMAD: true)
                }
                for j in 0..<8 {
                    let sub = 8 * half + j
                    if result.unsafe[j] {
                        redo(sub)
                        continue
                    }
                    scales[sub] = result.scale[j]
                    mins[sub] = result.theMin[j]
                    for i in 0..<16 { codes[16 * sub + i] = UInt8(l[i][j]) }
                }
            }
        }
    }
}

/// Q3_K's search: make_qx_quants (rmse type 1) on imatrix weights qw·√(σ² + x²) (their sums go to `sw`), else
/// make_q3_quants; 4 levels each side, codes offset by 4.
enum Q3Lanes {
    static func search(
        _ xb: UnsafePointer<Float>, _ qw: UnsafePointer<Float>?, sigma2: Float, scales: UnsafeMutablePointer<Float>,
        sw: UnsafeMutablePointer<Float>, codes: UnsafeMutablePointer<Int8>, redo: (Int) -> Void
    ) {
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 64) { lanes in
            let x = lanes.baseAddress!, w = x + 16, l = w + 16, q = l + 16
            for half in 0..<2 {
                Q6Lanes.transpose(xb + 128 * half, into: x)
                let result: (scale: SIMD8<Float>, unsafe: LaneSearch.Mask)
                if let qw {
                    importanceWeights(qw + 128 * half, x, sigma2: sigma2, q: q, into: w, sums: sw + 8 * half)
                    result = LaneSearch.symmetric(4, x, weights: UnsafePointer(w), l)
                } else {
                    result = LaneSearch.symmetricQ3(4, x, l)
                }
                for j in 0..<8 {
                    let sub = 8 * half + j
                    if result.unsafe[j] {
                        redo(sub)
                        continue
                    }
                    scales[sub] = result.scale[j]
                    for i in 0..<16 { codes[16 * sub + i] = Int8(l[i][j]) }
                }
            }
        }
    }
}
