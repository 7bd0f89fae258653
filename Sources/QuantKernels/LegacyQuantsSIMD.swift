// Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 without an importance vector, vectorized: block extremes in SIMD lanes, codes in
// plain loops the compiler vectorizes, with the same f32 operations as the scalar ports in LegacyQuants (which stay
// the reference), so the bytes are identical. Rounding and truncation use the 1.5·2²³ trick (exact for |v| < 2²²;
// the values here stay within ±32): SSE2 has no round-to-integer instruction and Swift's Float → Int conversions
// check every lane. A block whose scaled values could leave that range (subnormal or huge blocks, where 1/d
// overflows) goes through the scalar port, which reproduces ggml's integer conversions of out-of-range values.

enum LegacyQuantsSIMD {
    typealias V = SIMD8<Float>
    static let magic: Float = 12_582_912

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V { UnsafeRawPointer(p).loadUnaligned(as: V.self) }
    @inline(__always) static func magnitude(_ v: V) -> V { LaneSearch.magnitude(v) }
    /// Round half to even (ggml's nearest_int on these ranges).
    @inline(__always) static func nearestEven(_ v: V) -> V { (v + magic) - magic }
    /// C's roundf: half away from zero.
    @inline(__always) static func roundAway(_ v: V) -> V {
        var r = nearestEven(v)
        let half = unsafeBitCast((unsafeBitCast(v, to: SIMD8<UInt32>.self) & 0x8000_0000) | 0x3F00_0000, to: V.self)
        r.replace(with: v + half, where: magnitude(v - r) .== 0.5)
        return r
    }
    /// The low 8 bits of integer-valued lanes (two's complement).
    @inline(__always) static func bytes(_ r: V) -> SIMD8<UInt8> {
        SIMD8<UInt8>(truncatingIfNeeded: unsafeBitCast(r + magic, to: SIMD8<UInt32>.self))
    }
    // Lane-wise selects written per element: the compiler turns them into maxps / minps, where `replacing(with:where:)`
    // round-trips the mask through its storage type (a third of the block's time in Q4_1).
    @inline(__always) static func maximum(_ a: V, _ b: V) -> V {
        var r = a
        for l in 0..<8 { r[l] = b[l] > a[l] ? b[l] : a[l] }
        return r
    }
    @inline(__always) static func minimum(_ a: V, _ b: V) -> V {
        var r = a
        for l in 0..<8 { r[l] = b[l] < a[l] ? b[l] : a[l] }
        return r
    }
    /// Largest / smallest lane (the stdlib's reductions are scalar loops with NaN rules). Order-independent for finite
    /// lanes except for the sign of a zero result, which callers that store it settle themselves.
    @inline(__always) static func largest(_ v: V) -> Float {
        var h = v.lowHalf
        for l in 0..<4 { h[l] = v[l + 4] > h[l] ? v[l + 4] : h[l] }
        let a = h[2] > h[0] ? h[2] : h[0], b = h[3] > h[1] ? h[3] : h[1]
        return b > a ? b : a
    }
    @inline(__always) static func smallest(_ v: V) -> Float {
        var h = v.lowHalf
        for l in 0..<4 { h[l] = v[l + 4] < h[l] ? v[l + 4] : h[l] }
        let a = h[2] < h[0] ? h[2] : h[0], b = h[3] < h[1] ? h[3] : h[1]
        return b < a ? b : a
    }
    @inline(__always) static func largestMagnitude(_ v: (V, V, V, V)) -> Float {
        largest(maximum(maximum(magnitude(v.0), magnitude(v.1)), maximum(magnitude(v.2), magnitude(v.3))))
    }
    /// The first of 32 values whose magnitude is `amax` (> 0), as ggml's strict-< scan keeps it.
    static func firstOfMagnitude(_ xb: UnsafePointer<Float>, _ amax: Float) -> Float {
        for j in 0..<32 where abs(xb[j]) == amax { return xb[j] }
        return 0
    }

    static func quantizeQ8_0(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer) {
        for block in 0..<(width / 32) {
            let xb = x + 32 * block, y = out + 34 * block
            let v = (load(xb), load(xb + 8), load(xb + 16), load(xb + 24))
            let amax = largestMagnitude(v)
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            let s = (v.0 * id, v.1 * id, v.2 * id, v.3 * id)
            guard amax * id < 1_000_000 else {  // bounds every lane; NaN or ∞ from a subnormal d fails
                LegacyQuants.quantizeQ8_0(xb, 32, y)
                continue
            }
            y.storeHalf(GGMLRounding.half(d), at: 0)
            let q = y + 2
            q.storeBytes(of: bytes(roundAway(s.0)), as: SIMD8<UInt8>.self)
            (q + 8).storeBytes(of: bytes(roundAway(s.1)), as: SIMD8<UInt8>.self)
            (q + 16).storeBytes(of: bytes(roundAway(s.2)), as: SIMD8<UInt8>.self)
            (q + 24).storeBytes(of: bytes(roundAway(s.3)), as: SIMD8<UInt8>.self)
        }
    }

    /// Q4_0 (nmax 8) and Q5_0 (nmax 16): d = (the value of largest magnitude, first one) / −nmax.
    static func quantizeQ4_0(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer) {
        quantizeSymmetric(x, width, out, fiveBit: false)
    }
    static func quantizeQ5_0(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer) {
        quantizeSymmetric(x, width, out, fiveBit: true)
    }
    /// Q4_1 (15 steps) and Q5_1 (31): d = (max − min) / steps, codes from the minimum.
    static func quantizeQ4_1(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer) {
        quantizeAsymmetric(x, width, out, fiveBit: false)
    }
    static func quantizeQ5_1(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer) {
        quantizeAsymmetric(x, width, out, fiveBit: true)
    }

    @inline(__always)
    static func quantizeSymmetric(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer, fiveBit: Bool) {
        let nmax: Float = fiveBit ? 16 : 8, top: Float = fiveBit ? 31 : 15, blockBytes = fiveBit ? 22 : 18
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { codes in
            let q = codes.baseAddress!
            for block in 0..<(width / 32) {
                let xb = x + 32 * block, y = out + blockBytes * block
                let v = (load(xb), load(xb + 8), load(xb + 16), load(xb + 24))
                // ggml keeps the first value of largest magnitude: the largest or the smallest value, and only when
                // they tie in magnitude with opposite signs does the order matter (then a scan decides).
                let highest = largest(maximum(maximum(v.0, v.1), maximum(v.2, v.3)))
                let lowest = smallest(minimum(minimum(v.0, v.1), minimum(v.2, v.3)))
                var max: Float = highest > -lowest ? highest : lowest
                if highest == -lowest { max = highest == 0 ? 0 : firstOfMagnitude(xb, highest) }
                let d = max / -nmax
                let id: Float = d != 0 ? 1 / d : 0
                // |x·id| ≤ |max·id|: one test bounds every lane (NaN or ∞ from a subnormal d fails it).
                guard abs(max * id) < 1_000_000 else {
                    fiveBit ? LegacyQuants.quantizeQ5_0(xb, 32, y) : LegacyQuants.quantizeQ4_0(xb, 32, y)
                    continue
                }
                y.storeHalf(GGMLRounding.half(d), at: 0)
                truncatedCodes(xb, scale: id, subtract: 0, add: nmax + 0.5, cap: top + 0.5, into: q)
                pack(q, y, qs: fiveBit ? 6 : 2, qh: fiveBit ? 2 : nil)
            }
        }
    }

    @inline(__always)
    static func quantizeAsymmetric(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer, fiveBit: Bool) {
        let steps: Float = fiveBit ? 31 : 15, blockBytes = fiveBit ? 24 : 20
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { codes in
            let q = codes.baseAddress!
            for block in 0..<(width / 32) {
                let xb = x + 32 * block, y = out + blockBytes * block
                let v = (load(xb), load(xb + 8), load(xb + 16), load(xb + 24))
                let min = smallest(minimum(minimum(v.0, v.1), minimum(v.2, v.3)))
                let max = largest(maximum(maximum(v.0, v.1), maximum(v.2, v.3)))
                let d = (max - min) / steps
                let id: Float = d != 0 ? 1 / d : 0
                // A zero extreme's sign is the first zero's in ggml's scan (it is stored), and 0 ≤ x − min ≤ max − min
                // bounds every lane: otherwise the scalar port settles the block.
                // (max − min)·id is steps within a few ulp, so no code passes `steps` and no cap is needed.
                guard min != 0, max != 0, (max - min) * id + 0.5 < steps + 1 else {
                    fiveBit ? LegacyQuants.quantizeQ5_1(xb, 32, y) : LegacyQuants.quantizeQ4_1(xb, 32, y)
                    continue
                }
                y.storeHalf(GGMLRounding.half(d), at: 0)
                y.storeHalf(GGMLRounding.half(min), at: 2)
                truncatedCodes(xb, scale: id, subtract: min, add: 0.5, cap: .infinity, into: q)
                pack(q, y, qs: fiveBit ? 8 : 4, qh: fiveBit ? 4 : nil)
            }
        }
    }

    /// Code j = C's (int) of min((x[j] − subtract)·scale + add, cap) for a non-negative argument, written as a plain
    /// loop the compiler vectorizes: adding 1.5·2²³ rounds to nearest-even into the low bits, and where that went up
    /// past the argument the integer takes 1 back.
    @inline(__always)
    static func truncatedCodes(
        _ x: UnsafePointer<Float>, scale: Float, subtract: Float, add: Float, cap: Float, into q: UnsafeMutablePointer<UInt8>
    ) {
        for j in 0..<32 {
            var w = (x[j] - subtract) * scale + add
            if w > cap { w = cap }
            let u = w + magic
            q[j] = UInt8(truncatingIfNeeded: u.bitPattern &+ (u - magic > w ? UInt32.max : 0))
        }
    }

    /// Low nibbles: byte j = code j | code j+16 << 4; with `qh`, bit 4 of code j to bit j of a u32 there.
    @inline(__always)
    static func pack(_ q: UnsafePointer<UInt8>, _ y: UnsafeMutableRawPointer, qs: Int, qh: Int?) {
        for j in 0..<16 { y.storeByte((q[j] & 0x0F) | (q[j + 16] & 0x0F) &<< 4, at: qs + j) }
        guard let qh else { return }
        var bits: UInt32 = 0
        for j in 0..<32 { bits |= UInt32((q[j] >> 4) & 1) << UInt32(j) }
        y.storeBytes(of: bits.littleEndian, toByteOffset: qh, as: UInt32.self)
    }
}

/// Q4_0 / Q5_0 with an importance vector, eight blocks at a time (lane j = block j): weights qw·√(σ² + x²) and
/// make_qx_quants (rmse type 1) as `LegacyQuants.symmetricImportance` runs them; flagged lanes (all-zero or
/// subnormal blocks) go through the scalar search.
enum LegacyLanes {
    static func symmetricImportance(
        _ x: UnsafePointer<Float>, _ qw: UnsafePointer<Float>, sigma2: Float, nmax: Int32, codes: UnsafeMutablePointer<Int8>,
        store: (Int, Float) -> Void
    ) {
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 128) { lanes in
            let v = lanes.baseAddress!, w = v + 32, q = w + 32, l = q + 32
            LaneStage.transpose(x, into: v)
            LaneStage.transpose(qw, into: q)
            for i in 0..<32 { w[i] = q[i] * (sigma2 + v[i] * v[i]).squareRoot() }
            let result = LaneSearch.symmetric(nmax, v, weights: UnsafePointer(w), l, count: 32)
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 32) { weight in
                for j in 0..<8 {
                    if result.unsafe[j] {
                        let xb = x + 32 * j
                        for i in 0..<32 { weight[i] = qw[32 * j + i] * (sigma2 + xb[i] * xb[i]).squareRoot() }
                        let d = ScaleSearch.symmetric(
                            32, nmax, xb, codes + 32 * j, rmseType: 1, weights: UnsafePointer(weight.baseAddress!))
                        store(j, d)
                        continue
                    }
                    for i in 0..<32 { codes[32 * j + i] = Int8(l[i][j]) }
                    store(j, result.scale[j])
                }
            }
        }
    }
}
