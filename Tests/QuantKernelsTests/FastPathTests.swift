// Every fast path produces the reference kernel's bytes, with and without importance, on hostile data too.
import Testing
@testable import QuantKernels

/// Deterministic test rows: Gaussian-ish, heavy-tailed, constant, zero, outlier and tiny-magnitude blocks, and blocks
/// whose extremes tie in magnitude with both signs, mixed with +0 and −0 (order-dependent choices in ggml's scans).
func fastPathInput(rows: Int, width: Int) -> [Float] {
    var state: UInt64 = 0xFEED
    func uniform() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(state >> 40) / Float(1 << 24)
    }
    var values: [Float] = []
    for r in 0..<rows {
        for c in 0..<width {
            let g = (uniform() + uniform() + uniform() + uniform() - 2) * 0.03
            switch r % 7 {
            case 0: values.append(g)
            case 1: values.append(g * g * g * 400)  // heavy tails
            case 2: values.append(c % 256 < 128 ? 0.37 : -1.25)  // constant sub-blocks
            case 3: values.append(c % 512 < 256 ? 0 : g)  // an all-zero super-block
            case 4: values.append(c == 77 ? 1e4 : g)  // one huge outlier
            case 5: values.append(g * 1e-30)  // near-denormal magnitudes
            default: values.append(c % 7 == 0 ? -0.0 : c % 5 == 0 ? 0 : c % 3 == 0 ? 0.5 : c % 3 == 1 ? -0.5 : g)
            }
        }
    }
    return values
}

@Test(arguments: [QuantType.q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .mxfp4, .f16, .bf16])
func fastPathBytesEqualReference(type: QuantType) throws {
    let rows = 14, width = 512
    let input = fastPathInput(rows: rows, width: width)
    let importance = (0..<width).map { Float(0.05 + Double(($0 * 37) % 100) / 25) }
    for weights in [nil, importance] {
        let fast = try QuantCodec.quantize(type, input, rows: rows, width: width, importance: weights)
        let reference = try QuantCodec.quantize(type, input, rows: rows, width: width, importance: weights, reference: true)
        let rowBytes = type.rowBytes(width: width)!
        for r in 0..<rows {
            let a = Array(fast[(r * rowBytes)..<((r + 1) * rowBytes)]), b = Array(reference[(r * rowBytes)..<((r + 1) * rowBytes)])
            #expect(
                a == b,
                """
                \(type.rawValue) row \(r) (kind \(r % 7)) importance \(weights != nil): first difference at byte \
                \(zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)
                """
            )
        }
    }
}

/// The lane-wise F16 encoder and the scalar one of block scales round like Swift's Float16 (IEEE nearest-even) on a
/// sweep of finite bit patterns that covers every exponent, the subnormal range, the overflow boundary (65504 / 65520)
/// and ties.
@Test func laneHalfEncodingEqualsFloat16() {
    var patterns: [UInt32] = [0x477F_E000, 0x477F_EFFF, 0x477F_F000, 0x477F_F001, 0x3880_0000, 0x387F_FFFF, 0x3380_0000, 0x3300_0000]
    var bits: UInt32 = 0
    while bits < 0x7F80_0000 {
        patterns.append(bits)
        patterns.append(bits | 0x8000_0000)
        bits &+= 4099
    }
    let values = patterns.map { Float(bitPattern: $0) }.filter(\.isFinite)
    var encoded = [UInt16](repeating: 0, count: values.count)
    values.withUnsafeBufferPointer { x in
        encoded.withUnsafeMutableBytes { RowEncoding.f16(x.baseAddress!, count: values.count, into: $0.baseAddress!) }
    }
    let wrong = zip(values, encoded).filter {
        Float16($0.0).bitPattern != UInt16(littleEndian: $0.1) || GGMLRounding.half($0.0) != Float16($0.0).bitPattern
    }
    #expect(values.count > 1_000_000 && wrong.isEmpty, "\(wrong.count) differ, first \(wrong.first.map { "\($0.0)" } ?? "")")
}
