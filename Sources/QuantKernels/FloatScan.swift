// Finds NaN and infinity in stored F32 / F16 / BF16 bytes without converting them: a value is not finite exactly when
// its exponent bits are all ones. Used where bytes are copied unchanged, so a damaged checkpoint is refused there too.

public enum FloatScan {
    /// The element index of the first NaN or infinity in little-endian `bytes` of `type` (F32, F16 or BF16), or nil.
    public static func firstNonFinite(_ bytes: UnsafeRawBufferPointer, type: QuantType) -> Int? {
        switch type {
        case .f32: return scan(bytes, UInt32.self, exponent: 0x7F80_0000)
        case .f16: return scan(bytes, UInt16.self, exponent: 0x7C00)
        case .bf16: return scan(bytes, UInt16.self, exponent: 0x7F80)
        default: return nil
        }
    }

    /// The index of the first NaN or infinity among `count` f32 values, or nil. The fast test is arithmetic: x·0 is
    /// NaN exactly when x is not finite, and NaN survives a sum, so a row costs one multiply-add per value.
    public static func firstNonFinite(_ x: UnsafePointer<Float>, count: Int) -> Int? {
        let raw = UnsafeRawPointer(x)
        var sum = SIMD8<Float>(repeating: 0), i = 0
        while i + 8 <= count {
            sum += raw.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self) * 0
            i += 8
        }
        var tail: Float = 0
        while i < count { tail += x[i] * 0; i += 1 }
        guard (sum.sum() + tail).isNaN else { return nil }
        return (0..<count).first { !x[$0].isFinite }
    }

    /// The value at element `index` (for messages).
    public static func value(_ bytes: UnsafeRawBufferPointer, type: QuantType, at index: Int) -> Float {
        switch type {
        case .f32: return Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * index, as: UInt32.self)))
        case .f16: return Half.toFloat(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self)))
        case .bf16: return BFloat16.toFloat(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * index, as: UInt16.self)))
        default: return 0
        }
    }

    /// Eight elements at a time: any lane whose exponent field is all ones stops the scan. (Inlined into each
    /// concrete caller: unspecialized, the generic loop ran at a tenth of memory speed.)
    @inline(__always)
    private static func scan<T: FixedWidthInteger & UnsignedInteger & SIMDScalar>(
        _ bytes: UnsafeRawBufferPointer, _: T.Type, exponent: T
    ) -> Int? {
        let count = bytes.count / MemoryLayout<T>.size
        let mask = SIMD8<T>(repeating: exponent)
        var i = 0
        while i + 8 <= count {
            let lanes = bytes.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: SIMD8<T>.self)
            if any((lanes & mask) .== mask) { break }
            i += 8
        }
        while i < count {
            let value = T(littleEndian: bytes.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
            if value & exponent == exponent { return i }
            i += 1
        }
        return nil
    }
}
