// Every fast path produces the reference kernel's bytes, with and without importance, on hostile data too.
import Testing
@testable import QuantKernels

/// Deterministic test rows: Gaussian-ish, heavy-tailed, constant, zero, outlier and tiny-magnitude blocks.
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
            switch r % 6 {
            case 0: values.append(g)
            case 1: values.append(g * g * g * 400)  // heavy tails
            case 2: values.append(c % 256 < 128 ? 0.37 : -1.25)  // constant sub-blocks
            case 3: values.append(c % 512 < 256 ? 0 : g)  // an all-zero super-block
            case 4: values.append(c == 77 ? 1e4 : g)  // one huge outlier
            default: values.append(g * 1e-30)  // near-denormal magnitudes
            }
        }
    }
    return values
}

@Test(arguments: [QuantType.q4_K, .q5_K, .q6_K])
func fastPathBytesEqualReference(type: QuantType) throws {
    let rows = 12, width = 512
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
                \(type.rawValue) row \(r) (kind \(r % 6)) importance \(weights != nil): first difference at byte \
                \(zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)
                """
            )
        }
    }
}
