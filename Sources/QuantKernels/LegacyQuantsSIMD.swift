// Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 without an importance vector, eight values per SIMD lane group: the same f32
// operations as the scalar ports in LegacyQuants (which stay the reference), so the bytes are identical. Rounding
// and truncation use the 1.5·2²³ trick (exact for |v| < 2²²; the values here stay within ±32): SSE2 has no
// round-to-integer instruction and Swift's per-lane Float → Int conversions are not vectorized. A block whose scaled
// values leave that range (subnormal or huge blocks, where 1/d overflows) goes through the scalar port, which
// reproduces ggml's integer conversions of out-of-range values.

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
    /// C's (int) cast of a non-negative value: truncation = floor.
    @inline(__always) static func truncateNonNegative(_ v: V) -> V {
        var t = nearestEven(v)
        t.replace(with: t - 1, where: t .> v)
        return t
    }
    /// The low 8 bits of integer-valued lanes (two's complement).
    @inline(__always) static func bytes(_ r: V) -> SIMD8<UInt8> {
        SIMD8<UInt8>(truncatingIfNeeded: unsafeBitCast(r + magic, to: SIMD8<UInt32>.self))
    }
    /// Lanes the trick can round exactly (NaN fails too).
    @inline(__always) static func inRange(_ v: V) -> Bool { all(magnitude(v) .< 4_194_303) }
    @inline(__always) static func inRange(_ v: (V, V, V, V)) -> Bool { inRange(v.0) && inRange(v.1) && inRange(v.2) && inRange(v.3) }
    @inline(__always) static func maximum(_ a: V, _ b: V) -> V { a.replacing(with: b, where: b .> a) }
    @inline(__always) static func minimum(_ a: V, _ b: V) -> V { a.replacing(with: b, where: b .< a) }
    /// Largest / smallest lane by halving (the stdlib's reductions are scalar loops). Order-independent for finite
    /// lanes except for the sign of a zero result, which callers that store it settle themselves.
    @inline(__always) static func largest(_ v: V) -> Float {
        let h = v.lowHalf.replacing(with: v.highHalf, where: v.highHalf .> v.lowHalf)
        let q = h.lowHalf.replacing(with: h.highHalf, where: h.highHalf .> h.lowHalf)
        return q[1] > q[0] ? q[1] : q[0]
    }
    @inline(__always) static func smallest(_ v: V) -> Float {
        let h = v.lowHalf.replacing(with: v.highHalf, where: v.highHalf .< v.lowHalf)
        let q = h.lowHalf.replacing(with: h.highHalf, where: h.highHalf .< h.lowHalf)
        return q[1] < q[0] ? q[1] : q[0]
    }
    @inline(__always) static func largestMagnitude(_ v: (V, V, V, V)) -> Float {
        largest(maximum(maximum(magnitude(v.0), magnitude(v.1)), maximum(magnitude(v.2), magnitude(v.3))))
    }
    /// The value of the first of the 32 lanes whose magnitude is `amax` (> 0), which ggml's strict-< scan keeps: ±amax,
    /// and only when both signs occur does the order matter (then the scalar scan decides).
    @inline(__always) static func firstOfMagnitude(_ v: (V, V, V, V), _ xb: UnsafePointer<Float>, _ amax: Float) -> Float {
        let positive = any((v.0 .== amax) .| (v.1 .== amax) .| (v.2 .== amax) .| (v.3 .== amax))
        let negative = any((v.0 .== -amax) .| (v.1 .== -amax) .| (v.2 .== -amax) .| (v.3 .== -amax))
        guard positive && negative else { return positive ? amax : -amax }
        for j in 0..<32 where abs(xb[j]) == amax { return xb[j] }
        return 0
    }

    static let powers = SIMD8<UInt32>(1, 2, 4, 8, 16, 32, 64, 128)

    /// Bit 4 of each code to bit `shift + lane` (Q5's qh).
    @inline(__always) static func fifthBits(_ codes: SIMD8<UInt8>, shift: UInt32) -> UInt32 {
        let bits = SIMD8<UInt32>(truncatingIfNeeded: codes & 0x10) &>> 4
        return (bits &* powers).wrappedSum() &<< shift
    }

    static func quantizeQ8_0(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer) {
        for block in 0..<(width / 32) {
            let xb = x + 32 * block, y = out + 34 * block
            let v = (load(xb), load(xb + 8), load(xb + 16), load(xb + 24))
            let amax = largestMagnitude(v)
            let d = amax / 127
            let id: Float = d != 0 ? 1 / d : 0
            let s = (v.0 * id, v.1 * id, v.2 * id, v.3 * id)
            guard inRange(s) else {
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
    static func quantizeSymmetric(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer, fiveBit: Bool) {
        let nmax: Float = fiveBit ? 16 : 8, top: Float = fiveBit ? 31 : 15, blockBytes = fiveBit ? 22 : 18
        for block in 0..<(width / 32) {
            let xb = x + 32 * block, y = out + blockBytes * block
            let v = (load(xb), load(xb + 8), load(xb + 16), load(xb + 24))
            let amax = largestMagnitude(v)
            let max: Float = amax > 0 ? firstOfMagnitude(v, xb, amax) : 0
            let d = max / -nmax
            let id: Float = d != 0 ? 1 / d : 0
            let offset = nmax + 0.5
            let s = (v.0 * id + offset, v.1 * id + offset, v.2 * id + offset, v.3 * id + offset)
            guard inRange(s) else {
                fiveBit ? LegacyQuants.quantizeQ5_0(xb, 32, y) : LegacyQuants.quantizeQ4_0(xb, 32, y)
                continue
            }
            y.storeHalf(GGMLRounding.half(d), at: 0)
            func codes(_ w: V) -> SIMD8<UInt8> {
                var q = truncateNonNegative(w)
                q.replace(with: top, where: q .> top)
                return bytes(q)
            }
            let c = (codes(s.0), codes(s.1), codes(s.2), codes(s.3))
            storeNibbles(c, y + (fiveBit ? 6 : 2))
            if fiveBit { storeFifthBits(c, y + 2) }
        }
    }

    /// Q4_1 (15 steps) and Q5_1 (31): d = (max − min) / steps, codes from the minimum.
    static func quantizeAsymmetric(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer, fiveBit: Bool) {
        let steps: Float = fiveBit ? 31 : 15, blockBytes = fiveBit ? 24 : 20
        for block in 0..<(width / 32) {
            let xb = x + 32 * block, y = out + blockBytes * block
            let v = (load(xb), load(xb + 8), load(xb + 16), load(xb + 24))
            let min = smallest(minimum(minimum(v.0, v.1), minimum(v.2, v.3)))
            let max = largest(maximum(maximum(v.0, v.1), maximum(v.2, v.3)))
            // A zero extreme's sign is the first zero's in ggml's scan (it is stored): the scalar port settles it.
            guard min != 0, max != 0 else {
                fiveBit ? LegacyQuants.quantizeQ5_1(xb, 32, y) : LegacyQuants.quantizeQ4_1(xb, 32, y)
                continue
            }
            let d = (max - min) / steps
            let id: Float = d != 0 ? 1 / d : 0
            let s = ((v.0 - min) * id + 0.5, (v.1 - min) * id + 0.5, (v.2 - min) * id + 0.5, (v.3 - min) * id + 0.5)
            guard inRange(s) else {
                fiveBit ? LegacyQuants.quantizeQ5_1(xb, 32, y) : LegacyQuants.quantizeQ4_1(xb, 32, y)
                continue
            }
            y.storeHalf(GGMLRounding.half(d), at: 0)
            y.storeHalf(GGMLRounding.half(min), at: 2)
            func codes(_ w: V) -> SIMD8<UInt8> {
                var q = truncateNonNegative(w)
                if !fiveBit { q.replace(with: 15, where: q .> 15) }
                return bytes(q)
            }
            let c = (codes(s.0), codes(s.1), codes(s.2), codes(s.3))
            storeNibbles(c, y + (fiveBit ? 8 : 4))
            if fiveBit { storeFifthBits(c, y + 4) }
        }
    }

    /// Byte j = code j | code j+16 << 4 (low nibbles).
    @inline(__always) static func storeNibbles(_ c: (SIMD8<UInt8>, SIMD8<UInt8>, SIMD8<UInt8>, SIMD8<UInt8>), _ qs: UnsafeMutableRawPointer)
    {
        qs.storeBytes(of: (c.0 & 0x0F) | (c.2 & 0x0F) &<< 4, as: SIMD8<UInt8>.self)
        (qs + 8).storeBytes(of: (c.1 & 0x0F) | (c.3 & 0x0F) &<< 4, as: SIMD8<UInt8>.self)
    }

    @inline(__always) static func storeFifthBits(
        _ c: (SIMD8<UInt8>, SIMD8<UInt8>, SIMD8<UInt8>, SIMD8<UInt8>), _ qh: UnsafeMutableRawPointer
    ) {
        let bits = fifthBits(c.0, shift: 0) | fifthBits(c.1, shift: 8) | fifthBits(c.2, shift: 16) | fifthBits(c.3, shift: 24)
        qh.storeBytes(of: bits.littleEndian, as: UInt32.self)
    }
}
