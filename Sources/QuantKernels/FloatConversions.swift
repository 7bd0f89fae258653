// Scalar conversions between f32 and the storage floats checkpoints use: BF16, F16, FP8 (E4M3fn, E5M2), E8M0.

// MARK: - BF16

/// Brain float 16 ↔ f32. BF16 is the top half of an IEEE f32, so decoding is exact.
public enum BFloat16 {
    /// Decodes a BF16 bit pattern: the bits become the high half of an f32.
    @inlinable public static func toFloat(_ bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }

    /// Encodes with round-to-nearest-even, as PyTorch's `tensor.to(torch.bfloat16)` does.
    /// NaN stays a (quiet) NaN with its sign.
    @inlinable public static func fromFloat(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x0040) }
        let lsb = (bits >> 16) & 1
        let rounded = bits &+ 0x7FFF &+ lsb
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }
}

// MARK: - F16

/// IEEE half precision ↔ f32 through Swift's `Float16` (round-to-nearest-even, exact decode).
public enum Half {
    @inlinable public static func toFloat(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }
    @inlinable public static func fromFloat(_ value: Float) -> UInt16 { Float16(value).bitPattern }
}

// MARK: - FP8 E4M3 ("fn": no infinities, one NaN pattern per sign)

/// OCP FP8 E4M3 as stored by DeepSeek-V3 and Kimi K2 (`torch.float8_e4m3fn`, safetensors `F8_E4M3`).
/// Sign bit 7, exponent bits 6…3 with bias 7, mantissa bits 2…0; 0x7F/0xFF are NaN; largest finite 448.
public enum FloatE4M3 {
    /// Largest finite magnitude.
    public static let maxFinite: Float = 448

    /// All 256 codes decoded, computed once from the bit layout.
    public static let table: [Float] = (0..<256).map { decodeSlow(UInt8($0)) }

    @inlinable public static func toFloat(_ code: UInt8) -> Float { table[Int(code)] }

    /// Decodes one code from its fields (reference path; `table` is built from it).
    public static func decodeSlow(_ code: UInt8) -> Float {
        let sign: Float = (code & 0x80) != 0 ? -1 : 1
        let exponent = Int((code >> 3) & 0x0F)
        let mantissa = Float(code & 0x07)
        if exponent == 15 && (code & 0x07) == 7 { return .nan }
        if exponent == 0 { return sign * mantissa / 8 * Float(sign: .plus, exponent: -6, significand: 1) }
        return sign * (1 + mantissa / 8) * Float(sign: .plus, exponent: exponent - 7, significand: 1)
    }

    /// Non-negative finite codes 0x00…0x7E in increasing value order (the encoding is monotone).
    private static let positiveValues: [Float] = (0..<0x7F).map { table[$0] }

    /// Encodes with round-to-nearest (ties to the even code) and saturation to ±448, like
    /// `torch.clamp(x, -448, 448).to(torch.float8_e4m3fn)`. NaN encodes as 0x7F.
    public static func fromFloat(_ value: Float) -> UInt8 {
        if value.isNaN { return 0x7F }
        let signBit: UInt8 = value.sign == .minus ? 0x80 : 0
        let magnitude = min(abs(value), maxFinite)
        var low = 0, high = positiveValues.count - 1
        while high - low > 1 {
            let mid = (low + high) / 2
            if positiveValues[mid] <= magnitude { low = mid } else { high = mid }
        }
        let lowGap = magnitude - positiveValues[low], highGap = positiveValues[high] - magnitude
        let code: Int
        if lowGap < highGap { code = low } else if highGap < lowGap { code = high } else { code = low % 2 == 0 ? low : high }
        return signBit | UInt8(code)
    }
}

// MARK: - FP8 E5M2 (IEEE-like: infinities and NaNs)

/// FP8 E5M2 (`torch.float8_e5m2`, safetensors `F8_E5M2`): the top byte of an IEEE F16.
public enum FloatE5M2 {
    @inlinable public static func toFloat(_ code: UInt8) -> Float { Half.toFloat(UInt16(code) << 8) }
}

// MARK: - E8M0 (power-of-two scales, MXFP4 / OCP MX)

/// Unsigned 8-bit exponent scale: value 2^(code − 127); 0xFF is NaN.
public enum FloatE8M0 {
    @inlinable public static func toFloat(_ code: UInt8) -> Float {
        code == 0xFF ? .nan : Float(sign: .plus, exponent: Int(code) - 127, significand: 1)
    }
}
