// The rounding primitives ggml's reference quantizers use, reproduced bit for bit (formats.md §6.3).

enum GGMLRounding {
    /// ggml's `nearest_int`: add 1.5·2²³ in f32 and read the low mantissa bits. Round-half-even inside
    /// ±4194303; outside that range ggml gets a wrapped value and so do we (same bits, same garbage).
    @inline(__always)
    static func nearestInt(_ value: Float) -> Int32 {
        let bits = Int32(bitPattern: (value + 12_582_912).bitPattern)
        return (bits & 0x007F_FFFF) - 0x0040_0000
    }

    /// ggml's F32 → F16 (round-to-nearest-even; overflow to infinity), as stored in block scales.
    @inline(__always)
    static func half(_ value: Float) -> UInt16 { Float16(value).bitPattern }

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
