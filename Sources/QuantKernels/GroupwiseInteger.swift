// INT4 / INT8 group-wise quantization as compressed-tensors computes it (formats.md §4.3), and its dense
// little-endian int32 packing (§4.2): the layout vLLM and the compressed-tensors library read.

/// A group-wise integer scheme: `bits` 4 or 8, one scale (and zero point when asymmetric) per `groupSize` inputs.
public struct GroupwiseScheme: Sendable, Equatable {
    public var bits: Int
    public var groupSize: Int
    public var symmetric: Bool

    public init(bits: Int, groupSize: Int, symmetric: Bool) {
        self.bits = bits
        self.groupSize = groupSize
        self.symmetric = symmetric
    }

    public var minimumCode: Int32 { -Int32(1 << (bits - 1)) }
    public var maximumCode: Int32 { Int32(1 << (bits - 1)) - 1 }
}

/// The arithmetic the scales are computed in. compressed-tensors computes in the weight's dtype, so a
/// BF16 checkpoint's scales are rounded to BF16 after every operation.
public enum ScaleArithmetic: Sendable {
    case float32, bfloat16

    @inline(__always) func round(_ value: Float) -> Float {
        switch self {
        case .float32: value
        case .bfloat16: BFloat16.toFloat(BFloat16.fromFloat(value))
        }
    }
}

/// One quantized row: signed codes, per-group scales and (asymmetric) signed zero points.
public struct GroupwiseRow: Sendable, Equatable {
    public var codes: [Int8]
    public var scales: [Float]
    public var zeroPoints: [Int8]
}

public enum GroupwiseInteger {
    /// Quantizes one row as compressed-tensors' min-max observer and `quantize` do:
    /// symmetric s = max(|min|, |max|) / ((qmax − qmin) / 2); asymmetric s = (max − min) / (qmax − qmin),
    /// zp = clamp(round(qmin − min / s)); zero scales become the dtype's epsilon; q = clamp(round(x / s + zp)).
    /// Rounding is half-to-even (torch.round). Throws on non-finite input or a width that is not whole groups.
    public static func quantizeRow(
        _ row: UnsafeBufferPointer<Float>, scheme: GroupwiseScheme,
        arithmetic: ScaleArithmetic = .bfloat16
    ) throws(QuantError) -> GroupwiseRow {
        guard scheme.groupSize > 0, row.count % scheme.groupSize == 0 else {
            throw .widthNotMultipleOfBlock(type: .q4_0, width: row.count, blockSize: scheme.groupSize)
        }
        if let bad = row.firstIndex(where: { !$0.isFinite }) { throw .nonFinite(index: bad, value: row[bad]) }
        let groups = row.count / scheme.groupSize
        let qmin = Float(scheme.minimumCode), qmax = Float(scheme.maximumCode), range = qmax - qmin
        let epsilon: Float = arithmetic == .bfloat16 ? 0.0078125 : Float.ulpOfOne
        var result = GroupwiseRow(codes: [Int8](repeating: 0, count: row.count), scales: [], zeroPoints: [])
        for g in 0..<groups {
            var low: Float = 0, high: Float = 0  // min clamped ≤ 0, max ≥ 0
            for c in (g * scheme.groupSize)..<((g + 1) * scheme.groupSize) { low = min(low, row[c]); high = max(high, row[c]) }
            var scale: Float
            var zeroPoint: Float = 0
            if scheme.symmetric {
                scale = arithmetic.round(max(abs(low), abs(high)) / arithmetic.round(range / 2))
            } else {
                scale = arithmetic.round(arithmetic.round(high - low) / range)
            }
            if scale == 0 { scale = epsilon }
            if !scheme.symmetric {
                zeroPoint = arithmetic.round(qmin - arithmetic.round(low / scale))
                zeroPoint = min(max(zeroPoint, qmin), qmax).rounded(.toNearestOrEven)
            }
            result.scales.append(scale)
            if !scheme.symmetric { result.zeroPoints.append(Int8(zeroPoint)) }
            for c in (g * scheme.groupSize)..<((g + 1) * scheme.groupSize) {
                var scaled = arithmetic.round(row[c] / scale)
                if !scheme.symmetric { scaled = arithmetic.round(scaled + zeroPoint) }
                let q = min(max(scaled, qmin), qmax).rounded(.toNearestOrEven)
                result.codes[c] = Int8(q)
            }
        }
        return result
    }

    // MARK: - Packing (dense little-endian bits in int32 words; stored value = code + 2^(bits−1))

    /// Words for `count` codes.
    public static func wordCount(_ count: Int, bits: Int) -> Int { (count * bits + 31) / 32 }

    /// Packs signed codes densely: code c's offset value occupies bits [c·bits, c·bits + bits).
    public static func pack(_ codes: [Int8], bits: Int) -> [UInt32] {
        var words = [UInt32](repeating: 0, count: wordCount(codes.count, bits: bits))
        let offset = Int32(1 << (bits - 1)), mask = UInt32((1 << bits) - 1)
        for (c, code) in codes.enumerated() {
            let u = UInt32(Int32(code) + offset) & mask
            let bit = c * bits, word = bit >> 5, shift = bit & 31
            words[word] |= u << shift
            if shift + bits > 32 { words[word + 1] |= u >> (32 - shift) }
        }
        return words
    }

    /// The signed code at `index` of densely packed words.
    @inline(__always)
    public static func code(_ words: UnsafeRawPointer, index: Int, bits: Int) -> Int32 {
        let bit = index * bits, word = bit >> 5, shift = bit & 31
        var value = UInt32(littleEndian: words.loadUnaligned(fromByteOffset: word * 4, as: UInt32.self)) >> shift
        if shift + bits > 32 {
            value |= UInt32(littleEndian: words.loadUnaligned(fromByteOffset: (word + 1) * 4, as: UInt32.self)) << (32 - shift)
        }
        return Int32(value & ((1 << bits) - 1)) - Int32(1 << (bits - 1))
    }
}
