// Byte equality with ggml itself: validation/quant/vectors were made by ggml_quantize_chunk (libggml-base from
// llama-cpp-python 0.3.36, ggml 0.25.3) on seven input kinds, with and without an importance matrix, plus
// ggml's own dequantization of each result (validation/quant/make_vectors.py).
import Foundation
import Testing
import CRowGEMM
@testable import QuantKernels

private let vectors = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/quant/vectors")
private let kinds = ["normal", "heavy", "zero", "constant", "outlier", "denormal", "mixed"]
private let rows = 8, width = 512

private func floats(_ path: String) throws -> [Float] {
    let data = try Data(contentsOf: vectors.appendingPathComponent(path))
    return data.withUnsafeBytes { raw in
        (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
    }
}

private func bytes(_ path: String) throws -> [UInt8]? {
    let url = vectors.appendingPathComponent(path)
    guard FileManager.default.fileExists(atPath: url.path) else { return nil }
    return [UInt8](try Data(contentsOf: url))
}

private func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String {
    guard let i = zip(a, b).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset else {
        return "lengths \(a.count) vs \(b.count)"
    }
    return "byte \(i): ours \(a[i]), ggml \(b[i])"
}

private let types: [QuantType] = [
    .f16, .bf16, .q8_0, .q4_0, .q4_1, .q5_0, .q5_1, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .mxfp4, .iq4_nl, .iq4_xs,
    .iq3_xxs, .iq3_s, .iq2_xxs, .iq2_xs, .iq2_s, .iq1_s, .iq1_m,
]

@Test(arguments: types)
func quantizationEqualsGGML(type: QuantType) throws {
    var compared = 0
    for kind in kinds {
        let input = try floats("inputs/\(kind).f32")
        let importance = try floats("inputs/\(kind).imatrix.f32")
        #expect(input.count == rows * width && importance.count == width)
        if type.layout.requiresImportance {
            // ggml aborts without an imatrix for these types; we refuse with an error naming the type.
            #expect(throws: QuantError.importanceRequired(type: type)) { try QuantCodec.quantize(type, input, rows: rows, width: width) }
            #expect(try bytes("\(type.rawValue)/\(kind).bin") == nil)
            let expectedWeighted = try #require(try bytes("\(type.rawValue)/\(kind).imatrix.bin"))
            for threads in [1, 2] {
                let weighted = try QuantCodec.quantize(type, input, rows: rows, width: width, importance: importance, threads: threads)
                #expect(
                    weighted == expectedWeighted,
                    "\(type.rawValue) \(kind) imatrix threads \(threads): \(firstDifference(weighted, expectedWeighted))")
            }
            compared += 1
            continue
        }
        let expected = try #require(try bytes("\(type.rawValue)/\(kind).bin"), "missing \(type.rawValue)/\(kind).bin")
        for threads in [1, 2] {
            let ours = try QuantCodec.quantize(type, input, rows: rows, width: width, threads: threads)
            #expect(ours == expected, "\(type.rawValue) \(kind) threads \(threads): \(firstDifference(ours, expected))")
        }
        let reference = try QuantCodec.quantize(type, input, rows: rows, width: width, reference: true)
        #expect(reference == expected, "\(type.rawValue) \(kind) scalar reference: \(firstDifference(reference, expected))")
        compared += 1
        // With the importance matrix: ggml's bytes where its quantizer uses it, the plain bytes where it does not.
        let weighted = try QuantCodec.quantize(type, input, rows: rows, width: width, importance: importance)
        if let expectedWeighted = try bytes("\(type.rawValue)/\(kind).imatrix.bin") {
            #expect(type.layout.usesImportance)
            #expect(weighted == expectedWeighted, "\(type.rawValue) \(kind) imatrix: \(firstDifference(weighted, expectedWeighted))")
            let weightedReference = try QuantCodec.quantize(type, input, rows: rows, width: width, importance: importance, reference: true)
            #expect(weightedReference == expectedWeighted, "\(type.rawValue) \(kind) imatrix reference")
        } else {
            #expect(!type.layout.usesImportance)
            #expect(weighted == expected)
        }
    }
    #expect(compared == kinds.count)
}

@Test(arguments: types)
func dequantizationEqualsGGML(type: QuantType) throws {
    for kind in kinds {
        let stem = type.layout.requiresImportance ? "\(kind).imatrix.bin" : "\(kind).bin"
        let quantized = try #require(try bytes("\(type.rawValue)/\(stem)"))
        let expected = try floats("\(type.rawValue)/\(kind).dequant.f32")
        let ours = try QuantCodec.dequantize(type, quantized, count: rows * width)
        let same = zip(ours, expected).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
        #expect(same && ours.count == expected.count, "\(type.rawValue) \(kind)")
    }
}

/// The i-quant lattices: blocks naming every grid point and sign pattern with scale 1, plus random blocks, dequantized
/// by ggml (validation/quant/make_grids.py) and by us, bit for bit. A wrong entry in IQuantGrids.swift fails here.
@Test(arguments: [QuantType.iq2_xxs, .iq2_xs, .iq2_s, .iq3_xxs, .iq3_s, .iq1_s, .iq1_m])
func latticeTablesEqualGGML(type: QuantType) throws {
    let quantized = try #require(try bytes("grids/\(type.rawValue).bin"))
    let expected = try floats("grids/\(type.rawValue).dequant.f32")
    #expect(quantized.count % type.bytesPerBlock == 0 && expected.count == quantized.count / type.bytesPerBlock * 256)
    let ours = try QuantCodec.dequantize(type, quantized, count: expected.count)
    let first = zip(ours, expected).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
    #expect(first == nil, "\(type.rawValue): value \(first?.offset ?? -1) ours \(first?.element.0 ?? 0), ggml \(first?.element.1 ?? 0)")
}

/// The AVX2 decoders of Q4_K and Q6_K (CRowGEMM/dequantize.c) against the Swift ones, value for value, on random blocks
/// (every scale and quant byte random, the f16 scales random finite values).
@Test(arguments: [QuantType.q4_K, .q6_K])
func vectorizedKQuantDecodersEqualTheSwiftOnes(type: QuantType) throws {
    var generator = SystemRandomNumberGenerator()
    let blocks = 997
    var quantized = (0..<(blocks * type.bytesPerBlock)).map { _ in UInt8.random(in: 0...255, using: &generator) }
    let halves = type == .q4_K ? [0, 2] : [208]
    for b in 0..<blocks {
        for at in halves {
            let bits = Float16(Float.random(in: -4...4, using: &generator) * pow(2, Float.random(in: -20...4))).bitPattern
            quantized[b * type.bytesPerBlock + at] = UInt8(bits & 0xFF)
            quantized[b * type.bytesPerBlock + at + 1] = UInt8(bits >> 8)
        }
    }
    let vectorized = try QuantCodec.dequantize(type, quantized, count: blocks * 256)
    let previous = moeq_row_gemm_force_portable(1)
    defer { _ = moeq_row_gemm_force_portable(previous) }
    let swift = try QuantCodec.dequantize(type, quantized, count: blocks * 256)
    let first = zip(vectorized, swift).enumerated().first { $0.element.0.bitPattern != $0.element.1.bitPattern }
    #expect(
        first == nil, "\(type.rawValue): value \(first?.offset ?? -1) vectorized \(first?.element.0 ?? 0), Swift \(first?.element.1 ?? 0)")
}
