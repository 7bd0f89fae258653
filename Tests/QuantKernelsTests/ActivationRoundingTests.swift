// llama.cpp's CPU matmul input rounding against ggml itself: validation/quant/activations holds what
// libggml-cpu's from_float wrote for each vec_dot_type on eight input kinds (make_activation_vectors.py), and the
// vec_dot_type ggml pairs with every weight type.
import Foundation
import Testing
import TensorFormats
@testable import QuantKernels

private let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/quant")

private func floats(_ path: String) throws -> [Float] {
    let data = try Data(contentsOf: root.appendingPathComponent(path))
    return data.withUnsafeBytes { raw in
        (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
    }
}

private func manifest() throws -> JSONValue {
    try JSONParser.parse([UInt8](try Data(contentsOf: root.appendingPathComponent("activations/manifest.json"))))
}

@Test func dotInputTypeOfEveryWeightTypeEqualsGGML() throws {
    let table = try #require(try manifest()["vec_dot_type"])
    for type in QuantType.allCases {
        let expected = try #require(table[type.rawValue]?.stringValue, "ggml's table lacks \(type.rawValue)")
        #expect(GGMLDotInput(weight: type).rawValue == expected, "\(type.rawValue)")
    }
}

@Test(arguments: [GGMLDotInput.q8_0, .q8_1, .q8_K, .f16, .bf16])
func roundingEqualsGGMLFromFloat(type: GGMLDotInput) throws {
    let inputs = try #require(try manifest()["inputs"]?.objectValue)
    #expect(inputs.pairs.count == 8)
    for (kind, path) in inputs.pairs {
        let relative = try #require(path.stringValue).replacingOccurrences(of: "validation/quant/", with: "")
        let x = try floats(relative)
        let blocks = [UInt8](try Data(contentsOf: root.appendingPathComponent("activations/\(type.rawValue)/\(kind).bin")))
        let expected = type.decode(blocks, count: x.count)
        var ours = x
        type.round(&ours)
        let differing = zip(ours, expected).enumerated().filter { $0.element.0.bitPattern != $0.element.1.bitPattern }
        #expect(
            differing.count == 0,
            """
            \(type.rawValue) \(kind): \(differing.count) values differ, first at \(differing.first?.offset ?? -1): ours \
            \(differing.first?.element.0 ?? 0), ggml \(differing.first?.element.1 ?? 0)
            """
        )
        if kind != "zero" && type != .f16 && type != .bf16 {
            #expect(ours != x, "\(type.rawValue) \(kind): rounding changed nothing")
        }
    }
}
