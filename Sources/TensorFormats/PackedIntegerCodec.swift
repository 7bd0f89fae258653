// compressed-tensors pack-quantized encoding of one row: quantize with a given scale and pack densely
// into little-endian int32 words (formats.md §4.2–4.3).

public enum PackedIntegerCodec {
    /// Words needed for `columns` values of `bits` bits (zero-padded to whole words).
    public static func wordCount(columns: Int, bits: Int) -> Int { (columns * bits + 31) / 32 }

    /// Symmetric group scales for one row: absmax / ((qmax − qmin) / 2), e.g. absmax / 7.5 for 4 bits,
    /// with zero replaced by the smallest positive normal (compressed-tensors replaces it by the dtype's eps).
    public static func symmetricScales(_ row: UnsafeBufferPointer<Float>, groupSize: Int, bits: Int) -> [Float] {
        let halfRange = Float((1 << bits) - 1) / 2
        return stride(from: 0, to: row.count, by: groupSize).map { start in
            var absmax: Float = 0
            for c in start..<min(row.count, start + groupSize) { absmax = max(absmax, abs(row[c])) }
            let scale = absmax / halfRange
            return scale == 0 ? Float.leastNormalMagnitude : scale
        }
    }

    /// Quantizes `row` symmetrically with the given per-group `scales` (q = clamp(round-half-even(w / s))),
    /// offsets to unsigned and packs value c into bits [c·bits, c·bits + bits) of the word array.
    public static func packSymmetric(_ row: UnsafeBufferPointer<Float>, scales: [Float], groupSize: Int, bits: Int,
                                     into words: UnsafeMutableBufferPointer<UInt32>) {
        let qmin = -Float(1 << (bits - 1)), qmax = Float((1 << (bits - 1)) - 1)
        let offset = UInt32(1 << (bits - 1))
        for i in words.indices { words[i] = 0 }
        for c in 0..<row.count {
            let q = min(max((row[c] / scales[c / groupSize]).rounded(.toNearestOrEven), qmin), qmax)
            let u = UInt32(Int32(q) + Int32(offset)) & ((1 << bits) - 1)
            let bit = c * bits, word = bit >> 5, shift = bit & 31
            words[word] |= u << shift
            if shift + bits > 32 { words[word + 1] |= u >> (32 - shift) }
        }
    }
}
