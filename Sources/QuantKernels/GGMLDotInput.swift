// How llama.cpp's CPU backend rounds a matmul's input before the dot product (ggml-cpu `type_traits_cpu`):
// each input row is converted to the weight type's `vec_dot_type` with that type's `from_float`, so a Q8_0
// model's output carries the weight's 8-bit rounding and the activation's. Checked against ggml's own output in
// ActivationRoundingTests (validation/quant/activations, made by make_activation_vectors.py).

/// The block type ggml's CPU matmul converts activations to for a weight of a given type.
public enum GGMLDotInput: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", q8_0 = "Q8_0", q8_1 = "Q8_1", q8_K = "Q8_K"

    /// `ggml_get_type_traits_cpu(weight)->vec_dot_type` (ggml 0.25).
    public init(weight: QuantType) {
        switch weight {
        case .f32: self = .f32
        case .f16: self = .f16
        case .bf16: self = .bf16
        case .q4_0, .q5_0, .q8_0, .mxfp4, .iq4_nl: self = .q8_0
        case .q4_1, .q5_1: self = .q8_1
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_xs, .iq3_xxs, .iq3_s, .iq2_xxs, .iq2_xs, .iq2_s, .iq1_s, .iq1_m: self = .q8_K
        }
    }

    /// Values per block of the conversion.
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: 1
        case .q8_0, .q8_1: 32
        case .q8_K: 256
        }
    }

    /// Replaces every value of `x` by what the dot product sees after the conversion. `x.count` must be a multiple
    /// of the block size (ggml requires the same of the rows it multiplies).
    public func round(_ x: inout [Float]) {
        precondition(x.count % blockSize == 0, "\(rawValue) rounding needs a multiple of \(blockSize) values")
        switch self {
        case .f32: return
        case .f16: for i in x.indices { x[i] = Half.toFloat(Half.fromFloat(x[i])) }
        case .bf16: for i in x.indices { x[i] = BFloat16.toFloat(BFloat16.fromFloat(x[i])) }
        case .q8_0, .q8_1:
            // ggml-cpu's x86 quantize_row_q8_0/_1: d = amax/127 stored as f16, q = round-half-even(x · 127/amax)
            // converted like cvtps_epi32 + saturating packs (an infinite product becomes −128).
            for start in stride(from: 0, to: x.count, by: 32) {
                var amax: Float = 0
                for i in start..<(start + 32) { amax = max(amax, abs(x[i])) }
                let d = Half.toFloat(Half.fromFloat(amax / 127))
                let inverse: Float = amax != 0 ? 127 / amax : 0
                for i in start..<(start + 32) {
                    x[i] = d * Float(Int8(clamping: GGMLRounding.truncatingInt32((x[i] * inverse).rounded(.toNearestOrEven))))
                }
            }
        case .q8_K:
            // quantize_row_q8_K: the signed value of largest magnitude sets iscale = −127/max; q = min(127,
            // nearest_int(iscale · x)) stored as int8; d = 1/iscale in f32.
            for start in stride(from: 0, to: x.count, by: 256) {
                var amax: Float = 0, signed: Float = 0
                for i in start..<(start + 256) where abs(x[i]) > amax { amax = abs(x[i]); signed = x[i] }
                if amax == 0 { for i in start..<(start + 256) { x[i] = 0 }; continue }
                let scale = -127 / signed, d = 1 / scale
                for i in start..<(start + 256) {
                    x[i] = d * Float(Int8(truncatingIfNeeded: min(127, GGMLRounding.nearestInt(scale * x[i]))))
                }
            }
        }
    }

    /// Decodes ggml blocks of this type (row-major, `count` values) to the values a dot product uses.
    public func decode(_ bytes: [UInt8], count: Int) -> [Float] {
        func u16(_ o: Int) -> UInt16 { UInt16(bytes[o]) | UInt16(bytes[o + 1]) << 8 }
        switch self {
        case .f32: return (0..<count).map { i in Float(bitPattern: UInt32(u16(4 * i)) | UInt32(u16(4 * i + 2)) << 16) }
        case .f16: return (0..<count).map { Half.toFloat(u16(2 * $0)) }
        case .bf16: return (0..<count).map { BFloat16.toFloat(u16(2 * $0)) }
        case .q8_0, .q8_1:
            let header = self == .q8_0 ? 2 : 4, blockBytes = header + 32
            return (0..<count).map { i in
                let block = (i / 32) * blockBytes
                return Half.toFloat(u16(block)) * Float(Int8(bitPattern: bytes[block + header + i % 32]))
            }
        case .q8_K:
            return (0..<count).map { i in
                let block = (i / 256) * 292
                let d = Float(bitPattern: UInt32(u16(block)) | UInt32(u16(block + 2)) << 16)
                return d * Float(Int8(bitPattern: bytes[block + 4 + i % 256]))
            }
        }
    }
}
