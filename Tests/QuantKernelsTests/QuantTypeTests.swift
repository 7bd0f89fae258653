// The QuantType table against each block's field formula (ggml-common.h), and codec input checks.
import Foundation
import Testing
@testable import QuantKernels

/// Bytes of each block computed from its fields, independently of the table.
private func blockFormula(_ type: QuantType) -> Int {
    let half = 2, k = 256
    switch type {
    case .f32: return 4
    case .f16, .bf16: return 2
    case .q4_0: return half + 32 / 2  // d, qs[16]
    case .q4_1: return 2 * half + 32 / 2  // d, m, qs[16]
    case .q5_0: return half + 4 + 32 / 2  // d, qh[4], qs[16]
    case .q5_1: return 2 * half + 4 + 32 / 2  // d, m, qh[4], qs[16]
    case .q8_0: return half + 32  // d, qs[32]
    case .q2_K: return 2 * half + k / 16 + k / 4  // d, dmin, scales[16], qs[64]
    case .q3_K: return half + k / 4 + k / 8 + 12  // d, qs[64], hmask[32], scales[12]
    case .q4_K: return 2 * half + 12 + k / 2  // d, dmin, scales[12], qs[128]
    case .q5_K: return 2 * half + 12 + k / 8 + k / 2  // d, dmin, scales[12], qh[32], qs[128]
    case .q6_K: return half + k / 16 + 3 * k / 4  // d, scales[16], ql[128] + qh[64]
    case .iq4_nl: return half + 32 / 2  // d, qs[16]
    case .iq4_xs: return half + 2 + k / 64 + k / 2  // d, scales_h, scales_l[4], qs[128]
    case .iq3_xxs: return half + 3 * k / 8  // d, qs[64] + scales_and_signs[32]
    case .iq3_s: return half + k / 4 + k / 32 + k / 8 + k / 64  // d, qs[64], qh[8], signs[32], scales[4]
    case .iq2_xxs: return half + k / 4  // d, qs[32] (uint16)
    case .iq2_xs: return half + k / 4 + k / 32  // d, qs[32] (uint16), scales[8]
    case .iq2_s: return half + k / 4 + k / 32 + k / 32  // d, qs[64], qh[8], scales[8]
    case .iq1_s: return half + k / 8 + k / 16  // d, qs[32], qh[8] (uint16)
    case .iq1_m: return k / 8 + k / 16 + k / 32  // qs[32], qh[16], scales[8] (the f16 scale inside)
    case .mxfp4: return 1 + 32 / 2  // e, qs[16]
    }
}

@Test(arguments: QuantType.allCases)
func blockBytesMatchTheirFormula(type: QuantType) {
    #expect(type.bytesPerBlock == blockFormula(type))
    #expect(QuantType(ggmlTypeID: type.ggmlTypeID) == type)
}

@Test func bitsPerWeightOfTheCommonTypes() {
    #expect(QuantType.q4_K.bitsPerWeight == 4.5)
    #expect(QuantType.q5_K.bitsPerWeight == 5.5)
    #expect(QuantType.q6_K.bitsPerWeight == 6.5625)
    #expect(QuantType.q8_0.bitsPerWeight == 8.5)
    #expect(QuantType.q2_K.bitsPerWeight == 2.625)
    #expect(QuantType.mxfp4.bitsPerWeight == 4.25)
    #expect(QuantType.q4_K.rowBytes(width: 7168) == 28 * 144)
    #expect(QuantType.q4_K.rowBytes(width: 2880) == nil)
}

@Test func nonFiniteInputNamesTheFirstBadIndex() {
    var values = [Float](repeating: 0.5, count: 512)
    values[300] = .nan
    values[400] = .infinity
    for type in [QuantType.q4_K, .q8_0, .f16] {
        do {
            _ = try QuantCodec.quantize(type, values, rows: 2, width: 256)
            Issue.record("\(type.rawValue) accepted a NaN")
        } catch {
            guard case .nonFinite(let index, let value) = error else { Issue.record("wrong error \(error)"); continue }
            #expect(index == 300 && value.isNaN)
        }
    }
    values[300] = 1
    #expect(throws: QuantError.self) { _ = try QuantCodec.quantize(.q6_K, values, rows: 2, width: 256) }
}

@Test func widthThatIsNotAWholeNumberOfBlocks() {
    let values = [Float](repeating: 1, count: 2880)
    #expect(throws: QuantError.widthNotMultipleOfBlock(type: .q4_K, width: 2880, blockSize: 256)) {
        _ = try QuantCodec.quantize(.q4_K, values, rows: 1, width: 2880)
    }
    #expect(throws: Never.self) { _ = try QuantCodec.quantize(.q8_0, values, rows: 1, width: 2880) }
}

@Test func importanceVectorMustMatchTheRow() {
    let values = [Float](repeating: 1, count: 256)
    #expect(throws: QuantError.importanceLength(expected: 256, found: 32)) {
        _ = try QuantCodec.quantize(.q4_K, values, rows: 1, width: 256, importance: [Float](repeating: 1, count: 32))
    }
    var importance = [Float](repeating: 1, count: 256)
    importance[7] = .nan
    #expect(throws: QuantError.nonFiniteImportance(index: 7)) {
        _ = try QuantCodec.quantize(.q4_K, values, rows: 1, width: 256, importance: importance)
    }
}

/// Quantize → dequantize stays within each type's expected error on Gaussian data.
@Test(arguments: QuantType.allCases)
func roundTripErrorIsWithinTheTypesPrecision(type: QuantType) throws {
    var state: UInt64 = 0x1234_5678
    func next() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Float(state >> 40) / Float(1 << 24)
    }
    let values = (0..<(4 * 512)).map { _ in (next() + next() + next() + next() - 2) * 0.05 }
    let importance: [Float]? = type.layout.requiresImportance ? [Float](repeating: 1, count: 512) : nil
    let bytes = try QuantCodec.quantize(type, values, rows: 4, width: 512, importance: importance)
    let decoded = try QuantCodec.dequantize(type, bytes, count: values.count)
    var error: Float = 0, energy: Float = 0
    for (a, b) in zip(values, decoded) { error += (a - b) * (a - b); energy += a * a }
    let relative = (error / energy).squareRoot()
    let bound: Float =
        switch type {
        case .f32: 0
        case .f16, .bf16: 0.005
        case .q8_0: 0.01
        case .q6_K: 0.03
        case .q5_0, .q5_1, .q5_K: 0.06
        case .q4_0, .q4_1, .q4_K, .mxfp4, .iq4_nl, .iq4_xs: 0.15
        case .q3_K, .iq3_s: 0.25
        case .iq3_xxs: 0.3
        case .q2_K, .iq2_s: 0.5
        case .iq2_xxs, .iq2_xs: 0.55
        case .iq1_s, .iq1_m: 0.8
        }
    #expect(relative <= bound, "\(type.rawValue): relative RMS error \(relative)")
}

@Test func threadsDoNotChangeTheBytes() throws {
    let values: [Float] = (0..<(16 * 512)).map { (i: Int) -> Float in Float(sin(Double(i) * 0.37)) * 0.1 }
    let importance = (0..<512).map { Float(1 + ($0 % 7)) }
    for type in [QuantType.q4_K, .q6_K, .q5_0, .q3_K] {
        let one = try QuantCodec.quantize(type, values, rows: 16, width: 512, importance: importance, threads: 1)
        let many = try QuantCodec.quantize(type, values, rows: 16, width: 512, importance: importance, threads: 4)
        #expect(one == many, "\(type.rawValue)")
    }
}

/// Few rows on many threads (Mixtral's 8-row router with --threads 6; any call on a 48- or 96-core machine): every
/// share is a non-empty, in-order run of rows, and the bytes equal one thread's.
@Test(arguments: [1, 2, 7, 48, 96])
func fewRowsOnManyThreads(threads: Int) throws {
    for rows in [1, 2, 3, 7, 8, 13, 64] {
        let partition = RowPartition(rows: rows, threads: threads)
        #expect(partition.count <= min(threads, rows) && partition.allSatisfy { !$0.isEmpty })
        #expect(partition.flatMap { Array($0) } == Array(0..<rows), "\(rows) rows on \(threads) threads: \(Array(partition))")
        let values: [Float] = (0..<(rows * 256)).map { Float(sin(Double($0) * 0.61)) }
        for type in [QuantType.q8_0, .q4_K] {
            let one = try QuantCodec.quantize(type, values, rows: rows, width: 256, threads: 1)
            let many = try QuantCodec.quantize(type, values, rows: rows, width: 256, threads: threads)
            #expect(one == many, "\(type.rawValue), \(rows) rows on \(threads) threads")
        }
    }
}
