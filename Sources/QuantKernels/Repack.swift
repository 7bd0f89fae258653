// Lossless re-layouts between source quantizations and ggml blocks: compressed-tensors INT4 group-32
// symmetric → Q4_0 (formats.md §4.5), and gpt-oss MXFP4 blocks → ggml MXFP4 (§5.6). Only nibbles move.

public enum RepackError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A group scale that F16 cannot hold exactly (outside its range, or with bits F16 lacks).
    case scaleNotRepresentable(row: Int, group: Int, scale: Float)
    case shape(reason: String)

    public var description: String {
        switch self {
        case let .scaleNotRepresentable(row, group, scale):
            "scale \(scale) of row \(row), group \(group) is not exactly representable as F16; Q4_0 would round it"
        case let .shape(reason): reason
        }
    }
}

/// How a compressed-tensors INT4 tensor can be carried into ggml without changing a single value.
public enum Int4Carrier: Sendable, Equatable {
    /// Every scale is F16-exact: nibble repack into Q4_0.
    case q4_0
    /// Some scale is not (its row, group and value named): Q4_0 would round it, so the faithful path is to
    /// dequantize exactly into F32 (code × scale is exact there; BF16 and F16 are not wide enough).
    case f32(row: Int, group: Int, scale: Float)
}

public enum Repack {
    /// True when `scale` survives F32 → F16 → F32 unchanged.
    public static func isHalfExact(_ scale: Float) -> Bool {
        // From the bits (a Float16 round trip is a soft-float library call per value on x86-64 without F16C, and a 1 T
        // INT4 model has half a billion scales per layer): ±0 and ±∞ are exact; a normal F16 exponent (−14…15) needs
        // the low 13 mantissa bits clear; an F16-subnormal one (−24…−15) needs the significand's bits below 2^−24 clear.
        let bits = scale.bitPattern & 0x7FFF_FFFF
        if bits == 0 || bits == 0x7F80_0000 { return true }
        let exponent = Int(bits >> 23) - 127
        let significand = (bits & 0x7F_FFFF) | 0x80_0000
        switch exponent {
        case -14...15: return bits & 0x1FFF == 0
        case -24 ... -15: return significand & ((1 << UInt32(-1 - exponent)) - 1) == 0
        default: return false
        }
    }

    /// The lossless carrier for INT4 group-32 symmetric weights with these scales (`rows × groups`).
    public static func int4Carrier(scales: UnsafeBufferPointer<Float>, groups: Int) -> Int4Carrier {
        guard groups > 0 else { return .q4_0 }
        if let bad = scales.firstIndex(where: { !isHalfExact($0) }) {
            return .f32(row: bad / groups, group: bad % groups, scale: scales[bad])
        }
        return .q4_0
    }

    /// Repacks rows of symmetric INT4 group-32 codes (dense packed words, `wordsPerRow` each) with their scales
    /// (`rows × width/32`, as decoded floats) into Q4_0 blocks. Dequantizing the output gives exactly
    /// (code) × scale, as the source does. Throws, naming the first row and group, if a scale is not F16-exact.
    public static func int4ToQ4_0(
        packed: UnsafeRawPointer, wordsPerRow: Int, scales: UnsafeBufferPointer<Float>,
        rows: Int, width: Int, into output: UnsafeMutableRawPointer
    ) throws(RepackError) {
        guard width % 32 == 0, wordsPerRow * 8 >= width, scales.count == rows * (width / 32) else {
            throw .shape(
                reason: "INT4 → Q4_0 needs group 32, whole groups and one scale per group (width \(width), \(scales.count) scales)")
        }
        let groups = width / 32
        for row in 0..<rows {
            for g in 0..<groups where !isHalfExact(scales[row * groups + g]) {
                throw .scaleNotRepresentable(row: row, group: g, scale: scales[row * groups + g])
            }
        }
        for row in 0..<rows {
            let words = packed + row * wordsPerRow * 4
            for g in 0..<groups {
                let block = output + (row * groups + g) * 18
                block.storeBytes(of: Float16(scales[row * groups + g]).bitPattern.littleEndian, toByteOffset: 0, as: UInt16.self)
                for j in 0..<16 {
                    // Q4_0 stores code + 8 (its dequantizer subtracts 8), value j low, value j + 16 high.
                    let low = UInt8(GroupwiseInteger.code(words, index: 32 * g + j, bits: 4) + 8)
                    let high = UInt8(GroupwiseInteger.code(words, index: 32 * g + 16 + j, bits: 4) + 8)
                    block.storeBytes(of: low | high << 4, toByteOffset: 2 + j, as: UInt8.self)
                }
            }
        }
    }

    /// Repacks gpt-oss MXFP4 (`*_blocks` 16 bytes per 32 values, element 2j low / 2j+1 high nibble, plus an
    /// E8M0 `*_scales` byte) into ggml MXFP4 blocks (e, then element j low / j+16 high).
    public static func mxfp4ToGGML(
        blocks: UnsafeRawPointer, scales: UnsafeRawPointer, blockCount: Int,
        into output: UnsafeMutableRawPointer
    ) {
        for b in 0..<blockCount {
            let source = blocks + 16 * b, block = output + 17 * b
            block.storeBytes(of: scales.load(fromByteOffset: b, as: UInt8.self), toByteOffset: 0, as: UInt8.self)
            @inline(__always) func nibble(_ element: Int) -> UInt8 {
                let byte = source.load(fromByteOffset: element / 2, as: UInt8.self)
                return element % 2 == 0 ? byte & 0x0F : byte >> 4
            }
            for j in 0..<16 {
                block.storeBytes(of: nibble(j) | nibble(j + 16) << 4, toByteOffset: 1 + j, as: UInt8.self)
            }
        }
    }
}
