// Bulk conversions of contiguous little-endian storage to f32, the inner loops of every source decoder.

/// Storage element kinds a row of weights can be decoded from.
public enum StorageFloat: Sendable {
    case f32, f16, bf16, f64, e4m3, e5m2

    /// Bytes per stored element.
    public var byteWidth: Int {
        switch self {
        case .f64: 8
        case .f32: 4
        case .f16, .bf16: 2
        case .e4m3, .e5m2: 1
        }
    }
}

public enum RowConversion {
    /// Converts `count` elements of `kind` starting at `source` (little-endian, any alignment) into `destination`.
    public static func decode(
        _ kind: StorageFloat, from source: UnsafeRawPointer, count: Int,
        into destination: UnsafeMutablePointer<Float>
    ) {
        switch kind {
        case .f32:
            for i in 0..<count {
                destination[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        case .f64:
            for i in 0..<count {
                destination[i] = Float(
                    Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        case .bf16:
            for i in 0..<count {
                destination[i] = BFloat16.toFloat(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .f16:
            for i in 0..<count {
                destination[i] = Half.toFloat(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .e4m3:
            let bytes = source.assumingMemoryBound(to: UInt8.self)
            FloatE4M3.table.withUnsafeBufferPointer { table in
                for i in 0..<count { destination[i] = table[Int(bytes[i])] }
            }
        case .e5m2:
            let bytes = source.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { destination[i] = FloatE5M2.toFloat(bytes[i]) }
        }
    }
}

/// f32 rows to F16 / BF16 storage, eight values per step: the same roundings as `Half.fromFloat` (IEEE
/// round-to-nearest-even, overflow to ±∞, subnormals exact) and `BFloat16.fromFloat` (ggml's round-half-to-even),
/// in integer and float lanes (baseline x86-64 has no half-precision conversion instruction). Finite inputs only:
/// callers have refused NaN and infinity before.
public enum RowEncoding {
    public static func f16(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutableRawPointer) {
        var i = 0
        while i + 8 <= count {
            let w = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<UInt32>.self)
            (out + 2 * i).storeBytes(of: half(w), as: SIMD8<UInt16>.self)
            i += 8
        }
        while i < count {
            out.storeBytes(of: Half.fromFloat(x[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            i += 1
        }
    }

    public static func bf16(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutableRawPointer) {
        var i = 0
        while i + 8 <= count {
            let b = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<UInt32>.self)
            let rounded = (b &+ 0x7FFF &+ ((b &>> 16) & 1)) &>> 16
            (out + 2 * i).storeBytes(of: SIMD8<UInt16>(truncatingIfNeeded: rounded), as: SIMD8<UInt16>.self)
            i += 8
        }
        while i < count {
            out.storeBytes(of: BFloat16.fromFloat(x[i]).littleEndian, toByteOffset: 2 * i, as: UInt16.self)
            i += 1
        }
    }

    /// Finite f32 bit patterns to F16, round to nearest even (F. Giesen's float_to_half_fast3_rtne, lane-wise):
    /// magnitudes from 65520 up become ∞, below 2⁻¹⁴ the float add of 0.5 rounds the subnormal mantissa, otherwise
    /// the exponent is rebiased and the 13 dropped bits rounded with the tie going to the even mantissa.
    @inline(__always)
    static func half(_ w: SIMD8<UInt32>) -> SIMD8<UInt16> {
        let sign = w & 0x8000_0000
        let f = w ^ sign
        // Compared as floats: Swift vectorizes f32 lane comparisons with a scalar, not integer ones.
        let magnitude = unsafeBitCast(f, to: SIMD8<Float>.self)
        let subnormal = unsafeBitCast(magnitude + 0.5, to: SIMD8<UInt32>.self) &- 0x3F00_0000
        let normal = (f &+ 0xC800_0FFF &+ ((f &>> 13) & 1)) &>> 13
        var o = normal
        o.replace(with: subnormal, where: magnitude .< 0x1p-14)
        o.replace(with: 0x7C00, where: magnitude .>= 65536)
        return SIMD8<UInt16>(truncatingIfNeeded: o | (sign &>> 16))
    }
}
