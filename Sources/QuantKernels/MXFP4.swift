// MXFP4 (gpt-oss): 32 values sharing an E8M0 exponent, 4-bit E2M1 codes. ggml's block is e, qs[16] with
// value j in the low nibble of qs[j] and value j+16 in the high nibble (formats.md §2.4, §5.6).

enum MXFP4 {
    /// E2M1 values doubled, as ggml tables them (`kvalues_mxfp4`); the block scale is halved to match.
    static let doubledValues: [Int8] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12]

    /// 0.5 · 2^(e − 127) as an f32 bit pattern (ggml `ggml_e8m0_to_fp32_half`).
    @inline(__always)
    static func halfScale(_ e: UInt8) -> Float {
        let bits: UInt32 = e < 2 ? 0x0020_0000 << UInt32(e) : UInt32(e - 1) << 23
        return Float(bitPattern: bits)
    }

    static func quantize(_ x: UnsafePointer<Float>, _ width: Int, _ out: UnsafeMutableRawPointer, reference: Bool = false) {
        for block in 0..<(width / 32) {
            let xb = x + 32 * block, y = out + 17 * block
            var amax: Float = 0
            for j in 0..<32 where amax < abs(xb[j]) { amax = abs(xb[j]) }
            let e: UInt8 = amax > 0 ? UInt8(truncatingIfNeeded: GGMLRounding.truncatingInt32(log2f(amax).rounded(.down) - 2 + 127)) : 0
            let d = halfScale(e)
            y.storeByte(e, at: 0)
            if reference {
                for j in 0..<16 { y.storeByte(bestIndex(xb[j], d) | (bestIndex(xb[j + 16], d) << 4), at: 1 + j) }
                continue
            }
            // Eight values per lane group, the same f32 errors as bestIndex. Only the codes of x's sign can beat code 0
            // (the others' errors exceed |x|; code 8, −0, only ties it), and |−k·e − x| = |k·e − |x|| exactly, so the
            // scan runs over the eight non-negative values for |x| and maps index i > 0 to i + 8 for negative x.
            let values = SIMD8<Float>(0, 1, 2, 3, 4, 6, 8, 12) * d
            func codes(_ x: SIMD8<Float>) -> SIMD8<UInt8> {
                let a = LaneSearch.magnitude(x)
                var best = SIMD8<Float>(repeating: 0)
                var bestError = LaneSearch.magnitude(SIMD8(repeating: values[0]) - a)
                for i in 1..<8 {
                    let error = LaneSearch.magnitude(SIMD8(repeating: values[i]) - a)
                    let better = error .< bestError
                    bestError.replace(with: error, where: better)
                    best.replace(with: Float(i), where: better)
                }
                best.replace(with: best + 8, where: (x .< 0) .& (best .> 0))
                return SIMD8<UInt8>(truncatingIfNeeded: unsafeBitCast(best + 12_582_912, to: SIMD8<UInt32>.self))
            }
            let load = { (o: Int) in UnsafeRawPointer(xb + o).loadUnaligned(as: SIMD8<Float>.self) }
            (y + 1).storeBytes(of: codes(load(0)) | codes(load(16)) &<< 4, as: SIMD8<UInt8>.self)
            (y + 9).storeBytes(of: codes(load(8)) | codes(load(24)) &<< 4, as: SIMD8<UInt8>.self)
        }
    }

    /// The first code whose value is nearest to x (ties keep the earlier code).
    @inline(__always)
    private static func bestIndex(_ x: Float, _ e: Float) -> UInt8 {
        var best: UInt8 = 0
        var bestError = abs(Float(doubledValues[0]) * e - x)
        for i in 1..<16 {
            let error = abs(Float(doubledValues[i]) * e - x)
            if error < bestError { best = UInt8(i); bestError = error }
        }
        return best
    }

    static func dequantize(_ block: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>) {
        let d = halfScale(block.loadByte(at: 0))
        for j in 0..<16 {
            let q = block.loadByte(at: 1 + j)
            y[j] = Float(doubledValues[Int(q & 0x0F)]) * d
            y[j + 16] = Float(doubledValues[Int(q >> 4)]) * d
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
