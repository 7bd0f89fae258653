// The rounding primitives ggml's reference quantizers use, reproduced bit for bit (formats.md §6.3).

enum GGMLRounding {
    /// ggml's `nearest_int`: add 1.5·2²³ in f32 and read the low mantissa bits. Round-half-even inside
    /// ±4194303; outside that range ggml gets a wrapped value and so do we (same bits, same garbage).
    @inline(__always)
    static func nearestInt(_ value: Float) -> Int32 {
        let bits = Int32(bitPattern: (value + 12_582_912).bitPattern)
        return (bits & 0x007F_FFFF) - 0x0040_0000
    }

    /// ggml's F32 → F16 (round-to-nearest-even; overflow to infinity), as stored in block scales. Finite values take
    /// the integer route of `RowEncoding.half` (baseline x86-64 has no conversion instruction, and the library call
    /// behind `Float16(_:)` costs more than a whole block's arithmetic); NaN and ±∞ keep Swift's conversion.
    @inline(__always)
    static func half(_ value: Float) -> UInt16 {
        guard value.isFinite else { return Float16(value).bitPattern }
        let w = value.bitPattern, sign = w & 0x8000_0000, f = w ^ sign
        let o: UInt32
        if f >= 0x4780_0000 {
            o = 0x7C00
        } else if f < 0x3880_0000 {
            o = (Float(bitPattern: f) + 0.5).bitPattern &- 0x3F00_0000
        } else {
            o = (f &+ 0xC800_0FFF &+ ((f >> 13) & 1)) >> 13
        }
        return UInt16(truncatingIfNeeded: o | (sign >> 16))
    }

    /// ggml's F16 → F32 (exact).
    @inline(__always)
    static func float(_ half: UInt16) -> Float { Float(Float16(bitPattern: half)) }

    /// C's `(int)f` / `(int8_t)f` / `(uint8_t)f` on x86: truncate to a 32-bit integer, keep the low bits.
    @inline(__always)
    static func truncatingInt32(_ value: Float) -> Int32 {
        guard value.isFinite, value > -2_147_483_648, value < 2_147_483_648 else { return Int32.min }
        return Int32(value)
    }
}

// MARK: - Little-endian block field access

extension UnsafeMutableRawPointer {
    @inline(__always) func storeHalf(_ value: UInt16, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: UInt16.self)
    }
    @inline(__always) func storeByte(_ value: UInt8, at offset: Int) { storeBytes(of: value, toByteOffset: offset, as: UInt8.self) }
    @inline(__always) func loadHalf(at offset: Int) -> UInt16 { UnsafeRawPointer(self).loadHalf(at: offset) }
    @inline(__always) func loadByte(at offset: Int) -> UInt8 { load(fromByteOffset: offset, as: UInt8.self) }
}

extension UnsafeRawPointer {
    @inline(__always) func loadHalf(at offset: Int) -> UInt16 {
        UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
    @inline(__always) func loadByte(at offset: Int) -> UInt8 { load(fromByteOffset: offset, as: UInt8.self) }
}
