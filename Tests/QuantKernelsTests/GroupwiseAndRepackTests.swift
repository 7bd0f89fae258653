// INT4 group-wise quantization against the compressed-tensors library's own codes, scales and zero points;
// the lossless INT4 → Q4_0 and MXFP4 repacks; error metrics.
import Foundation
import Testing
@testable import QuantKernels

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

private struct LibraryFixture {
    let weights: [Float], codes: [Int8], scales: [Float], zeroPoints: [Int8], dequantized: [Float], packed: [UInt32]
    let rows = 16, width = 64

    init(_ folder: String) throws {
        let data = try Data(contentsOf: fixtures.appendingPathComponent(folder + "/expected.json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        func values(_ key: String) throws -> [NSNumber] {
            try #require((root[key] as? [String: Any])?["values"] as? [NSNumber], "missing \(key)")
        }
        weights = try values("original_weight_bf16").map(\.floatValue)
        codes = try values("codes_signed").map { Int8($0.intValue) }
        scales = try values("weight_scale").map(\.floatValue)
        zeroPoints = root["zero_point_signed"] == nil ? [] : try values("zero_point_signed").map { Int8($0.intValue) }
        dequantized = try values("dequantized_f32").map(\.floatValue)
        packed = try values("weight_packed_int32").map { UInt32(bitPattern: Int32($0.intValue)) }
    }
}

@Test(arguments: [("int4", true), ("int4/asym", false)])
func groupwiseQuantizationMatchesCompressedTensors(folder: String, symmetric: Bool) throws {
    let fixture = try LibraryFixture(folder)
    let scheme = GroupwiseScheme(bits: 4, groupSize: 32, symmetric: symmetric)
    var codes: [Int8] = [], scales: [Float] = [], zeroPoints: [Int8] = []
    for r in 0..<fixture.rows {
        let row = try fixture.weights.withUnsafeBufferPointer { all in
            try GroupwiseInteger.quantizeRow(UnsafeBufferPointer(rebasing: all[(r * 64)..<((r + 1) * 64)]), scheme: scheme)
        }
        codes += row.codes; scales += row.scales; zeroPoints += row.zeroPoints
    }
    #expect(scales == fixture.scales)
    #expect(codes == fixture.codes)
    #expect(zeroPoints == fixture.zeroPoints)
    // Our packing of the library's codes equals the library's packed words.
    let words = (0..<fixture.rows).flatMap { r in GroupwiseInteger.pack(Array(fixture.codes[(r * 64)..<((r + 1) * 64)]), bits: 4) }
    #expect(words == fixture.packed)
}

@Test func int4ToQ4_0RepackIsExactOnTheLibrarysTensor() throws {
    let fixture = try LibraryFixture("int4")
    var q4 = [UInt8](repeating: 0, count: fixture.rows * 2 * 18)
    try fixture.packed.withUnsafeBytes { packed in
        try fixture.scales.withUnsafeBufferPointer { scales in
            try q4.withUnsafeMutableBytes { out in
                try Repack.int4ToQ4_0(
                    packed: packed.baseAddress!, wordsPerRow: 8, scales: scales, rows: fixture.rows, width: 64, into: out.baseAddress!)
            }
        }
    }
    let decoded = try QuantCodec.dequantize(.q4_0, q4, count: fixture.rows * 64)
    #expect(decoded == fixture.dequantized)  // bit for bit: the QAT grid survives
}

@Test func repackRefusesScalesF16CannotHold() {
    let packed = [UInt32](repeating: 0x8888_8888, count: 4)
    for scale: Float in [1e-9, 70000, BFloat16.toFloat(0x3F81) * 1e-5] where !Repack.isHalfExact(scale) {
        var out = [UInt8](repeating: 0, count: 18)
        #expect(throws: RepackError.scaleNotRepresentable(row: 0, group: 0, scale: scale)) {
            try packed.withUnsafeBytes { p in
                try [scale].withUnsafeBufferPointer { s in
                    try out.withUnsafeMutableBytes {
                        try Repack.int4ToQ4_0(packed: p.baseAddress!, wordsPerRow: 4, scales: s, rows: 1, width: 32, into: $0.baseAddress!)
                    }
                }
            }
        }
    }
}

@Test func mxfp4RepackKeepsEveryValue() throws {
    // gpt-oss layout: element 2j in the low nibble of byte j, element 2j+1 in the high nibble; value = LUT · 2^(e−127).
    let lut: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6]
    var blocks: [UInt8] = [], scales: [UInt8] = [], expected: [Float] = []
    for b in 0..<8 {
        let e = UInt8(120 + b)
        scales.append(e)
        for j in 0..<16 {
            let low = UInt8((j + 3 * b) % 16), high = UInt8((7 * j + b) % 16)
            blocks.append(low | high << 4)
        }
        for element in 0..<32 {
            let byte = blocks[16 * b + element / 2]
            let nibble = element % 2 == 0 ? byte & 0x0F : byte >> 4
            expected.append(lut[Int(nibble)] * Float(sign: .plus, exponent: Int(e) - 127, significand: 1))
        }
    }
    var ggml = [UInt8](repeating: 0, count: 8 * 17)
    blocks.withUnsafeBytes { b in
        scales.withUnsafeBytes { s in
            ggml.withUnsafeMutableBytes {
                Repack.mxfp4ToGGML(blocks: b.baseAddress!, scales: s.baseAddress!, blockCount: 8, into: $0.baseAddress!)
            }
        }
    }
    #expect(try QuantCodec.dequantize(.mxfp4, ggml, count: 256) == expected)
}

@Test func errorMetrics() {
    let reference: [Float] = [1, -2, 3, 4]
    let same = ErrorMetrics(reference: reference, approximation: reference, width: 2)
    #expect(same.rmse == 0 && same.maxAbsoluteError == 0 && abs(same.cosineSimilarity - 1) < 1e-12)
    let off = ErrorMetrics(reference: reference, approximation: [1, -2, 3, 6], width: 2, importance: [1, 3])
    #expect(off.rmse == 1)  // √(4 / 4)
    #expect(off.maxAbsoluteError == 2)
    #expect(off.weightedRMSE == (12.0 / 8).squareRoot())  // error 2 sits in column 1 (weight 3)
    #expect(off.cosineSimilarity < 1 && off.cosineSimilarity > 0.9)
}

@Test func carrierChoiceNamesTheFirstScaleF16CannotHold() {
    let good: [Float] = [0.5, 0.0113525390625, 3]
    #expect(good.withUnsafeBufferPointer { Repack.int4Carrier(scales: $0, groups: 3) } == .q4_0)
    let bad: [Float] = [0.5, 0.25, 1e-9, 2, 80000, 1]
    #expect(bad.withUnsafeBufferPointer { Repack.int4Carrier(scales: $0, groups: 3) } == .f32(row: 0, group: 2, scale: 1e-9))
}

@Test(arguments: [(4, 32), (4, 64), (4, 128), (8, 32), (8, 128)])
func groupwiseRoundTripsThroughPacking(bits: Int, groupSize: Int) throws {
    for symmetric in [true, false] {
        let width = 256
        let row: [Float] = (0..<width).map { Float(sin(Double($0) * 0.7) * 0.05 + (symmetric ? 0 : 0.02)) }
        let scheme = GroupwiseScheme(bits: bits, groupSize: groupSize, symmetric: symmetric)
        let quantized = try row.withUnsafeBufferPointer { try GroupwiseInteger.quantizeRow($0, scheme: scheme, arithmetic: .float32) }
        #expect(quantized.scales.count == width / groupSize)
        #expect(quantized.zeroPoints.count == (symmetric ? 0 : width / groupSize))
        #expect(quantized.codes.allSatisfy { Int32($0) >= scheme.minimumCode && Int32($0) <= scheme.maximumCode })
        let words = GroupwiseInteger.pack(quantized.codes, bits: bits)
        #expect(words.count == width * bits / 32)
        let unpacked = words.withUnsafeBytes { raw in
            (0..<width).map { Int8(GroupwiseInteger.code(raw.baseAddress!, index: $0, bits: bits)) }
        }
        #expect(unpacked == quantized.codes)
        // Dequantized error is within half a step of each group's scale.
        for c in 0..<width {
            let g = c / groupSize
            let zp = symmetric ? 0 : Float(quantized.zeroPoints[g])
            let value = (Float(quantized.codes[c]) - zp) * quantized.scales[g]
            #expect(abs(value - row[c]) <= quantized.scales[g] * 0.5 + 1e-7, "bits \(bits) g\(groupSize) sym \(symmetric) c \(c)")
        }
    }
}

/// The bit test equals the Float16 round trip it replaces, for every BF16 value (INT4 scales are BF16) and for a
/// million other floats across the whole range.
@Test func halfExactnessFromTheBitsEqualsTheRoundTrip() {
    var mismatches: [UInt32] = []
    for pattern in 0..<UInt32(1 << 16) {
        let x = Float(bitPattern: pattern << 16)
        if Repack.isHalfExact(x) != (Float(Float16(x)) == x) { mismatches.append(pattern << 16) }
    }
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    for _ in 0..<1_000_000 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        let bits = UInt32(truncatingIfNeeded: state >> 32)
        // Half the draws with low mantissa bits cleared, so exact values are common.
        let x = Float(bitPattern: state & 1 == 0 ? bits & ~0x1FFF : bits)
        if Repack.isHalfExact(x) != (Float(Float16(x)) == x) { mismatches.append(x.bitPattern) }
    }
    #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(5).map { String($0, radix: 16) })")
}
