// Storage-float decoders against torch's own tables and hand-computed specials.
import Foundation
import Testing
@testable import QuantKernels

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

/// torch's decode of every FP8 code (validation/fixtures/make_fp8_tables.py): Float, nil = NaN.
private func torchTable(_ key: String) throws -> [Float?] {
    let data = try Data(contentsOf: fixtures.appendingPathComponent("fp8_tables.json"))
    let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    let values = try #require(root[key] as? [Any])
    return values.map { value in
        if let text = value as? String { return text == "inf" ? Float.infinity : -Float.infinity }
        if let number = value as? NSNumber { return number.floatValue }
        return nil
    }
}

@Test func e4m3MatchesTorchForAll256Codes() throws {
    let table = try torchTable("e4m3fn")
    #expect(table.count == 256)
    for code in 0..<256 {
        let ours = FloatE4M3.toFloat(UInt8(code))
        if let expected = table[code] {
            #expect(ours.bitPattern == expected.bitPattern, "code 0x\(String(code, radix: 16))")
        } else {
            #expect(ours.isNaN, "code 0x\(String(code, radix: 16)) should be NaN")
        }
    }
}

@Test func e4m3HandComputedValues() {
    #expect(FloatE4M3.toFloat(0x7E) == 448)  // largest finite: 2^8 × 1.75
    #expect(FloatE4M3.toFloat(0x01) == 1.0 / 512)  // smallest subnormal: 2^-6 × 1/8
    #expect(FloatE4M3.toFloat(0x38) == 1)  // exponent 7 = bias
    #expect(FloatE4M3.toFloat(0xB8) == -1)
    #expect(FloatE4M3.toFloat(0x80).sign == .minus && FloatE4M3.toFloat(0x80) == 0)
    #expect(FloatE4M3.toFloat(0x7F).isNaN && FloatE4M3.toFloat(0xFF).isNaN)
}

@Test func e4m3EncodeRoundTripsAndSaturates() {
    for code in 0..<256 where code & 0x7F != 0x7F {
        let value = FloatE4M3.toFloat(UInt8(code))
        #expect(FloatE4M3.fromFloat(value) == UInt8(code) || (value == 0 && code == 0x80))
    }
    #expect(FloatE4M3.fromFloat(1000) == 0x7E)
    #expect(FloatE4M3.fromFloat(-1e9) == 0xFE)
    // 1.0625 lies halfway between 1 (0x38, even) and 1.125 (0x39): ties go to the even code.
    #expect(FloatE4M3.fromFloat(1.0625) == 0x38)
    #expect(FloatE4M3.fromFloat(1.1875) == 0x3A)  // halfway 1.125/1.25 → 0x3A (even)
}

@Test func e5m2MatchesTorchForAll256Codes() throws {
    let table = try torchTable("e5m2")
    for code in 0..<256 {
        let ours = FloatE5M2.toFloat(UInt8(code))
        if let expected = table[code] {
            #expect(ours == expected || (ours.isInfinite && expected.isInfinite && ours.sign == expected.sign), "code \(code)")
        } else {
            #expect(ours.isNaN, "code \(code)")
        }
    }
}

@Test func bfloat16Specials() {
    #expect(BFloat16.toFloat(0x3F80) == 1)
    #expect(BFloat16.toFloat(0x7F80) == .infinity)
    #expect(BFloat16.toFloat(0xFF80) == -.infinity)
    #expect(BFloat16.toFloat(0x7FC0).isNaN)
    #expect(BFloat16.toFloat(0x8000) == 0 && BFloat16.toFloat(0x8000).sign == .minus)
    #expect(BFloat16.toFloat(0x0001) == Float(bitPattern: 0x0001_0000))  // smallest subnormal
    // Round to nearest even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 → 1 (even mantissa).
    #expect(BFloat16.fromFloat(1 + 1.0 / 256) == 0x3F80)
    #expect(BFloat16.fromFloat(1 + 3.0 / 256) == 0x3F82)
    #expect(BFloat16.fromFloat(.infinity) == 0x7F80)
    #expect(BFloat16.toFloat(BFloat16.fromFloat(.nan)).isNaN)
    #expect(BFloat16.fromFloat(Float(bitPattern: 0x7F7F_FFFF)) == 0x7F80)  // max f32 rounds up to inf
}

@Test func float16Specials() {
    #expect(Half.toFloat(0x3C00) == 1)
    #expect(Half.toFloat(0x7BFF) == 65504)
    #expect(Half.toFloat(0x0001) == Float(sign: .plus, exponent: -24, significand: 1))
    #expect(Half.toFloat(0x7C00) == .infinity)
    #expect(Half.toFloat(0x7E00).isNaN)
    #expect(Half.fromFloat(65520) == 0x7C00)  // halfway to the next binade rounds to infinity
}

@Test func e8m0Scales() {
    #expect(FloatE8M0.toFloat(127) == 1)
    #expect(FloatE8M0.toFloat(130) == 8)
    #expect(FloatE8M0.toFloat(0) == Float(sign: .plus, exponent: -127, significand: 1))
    #expect(FloatE8M0.toFloat(255).isNaN)
}

@Test func rowConversionReadsUnalignedLittleEndian() {
    let bytes: [UInt8] = [0xFF, 0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0]  // f32 1.0 at offset 1, -2.0 at 5
    var out = [Float](repeating: 0, count: 2)
    bytes.withUnsafeBytes { raw in RowConversion.decode(.f32, from: raw.baseAddress! + 1, count: 2, into: &out) }
    #expect(out == [1, -2])
}
