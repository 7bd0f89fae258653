// Source decoders to f32 by row range: FP8 with 128×128 block scales, compressed-tensors INT4 (library-made
// fixtures), and plain floats.
import Foundation
import Testing
@testable import TensorFormats
import QuantKernels

/// Writes a one-file checkpoint with the given tensors and raw bytes.
private func writeCheckpoint(_ tensors: [(TensorSpec, [UInt8])], in directory: String) throws -> Checkpoint {
    let path = directory + "/model.safetensors"
    let writer = try SafetensorsWriter(path: path, tensors: tensors.map(\.0))
    for (spec, bytes) in tensors { try writer.write(spec.name, bytes: bytes) }
    try writer.finish()
    return try Checkpoint(path: directory)
}

private func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } }
}

@Test func fp8BlockScalesApplyPerBlockIncludingRaggedEdges() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    // 130 × 260: scale grid 2 × 3 with ragged last row/column blocks.
    let rows = 130, columns = 260
    let codes = (0..<(rows * columns)).map { i -> UInt8 in UInt8((i * 7) % 0x7E) }
    let scales: [Float] = [0.5, 2, 4, 8, 16, 0.25]
    let checkpoint = try writeCheckpoint(
        [
            (TensorSpec(name: "w.weight", dtype: .f8e4m3, shape: [rows, columns]), codes),
            (TensorSpec(name: "w.weight_scale_inv", dtype: .f32, shape: [2, 3]), littleEndianBytes(scales)),
        ], in: directory)
    let weights = try WeightResolver(checkpoint: checkpoint, quantization: .fp8Block(blockRows: 128, blockColumns: 128)).allWeights()
    #expect(weights.count == 1)
    let weight = try #require(weights.first)
    let all = try weight.decodeAll()
    for r in [0, 127, 128, 129] {
        for c in [0, 127, 128, 255, 256, 259] {
            let expected = FloatE4M3.decodeSlow(codes[r * columns + c]) * scales[(r / 128) * 3 + c / 128]
            #expect(all[r * columns + c] == expected, "(\(r), \(c))")
        }
    }
    // A row range decodes exactly the same values as the whole tensor.
    var slice = [Float](repeating: 0, count: 3 * columns)
    try slice.withUnsafeMutableBufferPointer { try weight.decodeRows(127..<130, into: $0) }
    #expect(slice == Array(all[(127 * columns)..<(130 * columns)]))
}

@Test func fp8ScaleWithWrongShapeIsATypedError() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let checkpoint = try writeCheckpoint(
        [
            (TensorSpec(name: "w.weight", dtype: .f8e4m3, shape: [256, 128]), [UInt8](repeating: 0x38, count: 256 * 128)),
            (TensorSpec(name: "w.weight_scale_inv", dtype: .f32, shape: [1, 1]), littleEndianBytes([1])),
        ], in: directory)
    #expect(throws: FormatError.self) {
        try WeightResolver(checkpoint: checkpoint, quantization: .fp8Block(blockRows: 128, blockColumns: 128)).allWeights()
    }
}

/// The compressed-tensors library's own output (validation/fixtures/int4/make_int4.py).
private func checkLibraryFixture(_ folder: String) throws {
    let directory = fixtures.appendingPathComponent(folder).path
    let checkpoint = try Checkpoint(path: directory + "/int4.safetensors")
    let config = try JSONParser.parse([UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/config.json"))))
    let quantization = try SourceQuantization.parse(config["quantization_config"])
    let weight = try WeightResolver(checkpoint: checkpoint, quantization: quantization).weight(named: "M.weight")
    #expect(weight.shape == [16, 64])
    let expected = try #require(
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: directory + "/expected.json"))) as? [String: Any])
    let dequantized = try #require((expected["dequantized_f32"] as? [String: Any])?["values"] as? [NSNumber])
    let ours = try weight.decodeAll()
    #expect(ours.count == dequantized.count)
    for (i, (mine, theirs)) in zip(ours, dequantized).enumerated() {
        #expect(mine == theirs.floatValue, "element \(i)")
    }
}

@Test func int4SymmetricMatchesCompressedTensors() throws { try checkLibraryFixture("int4") }

@Test func int4AsymmetricMatchesCompressedTensors() throws { try checkLibraryFixture("int4/asym") }

@Test func int4NibbleOrderAndSignByHand() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    // One row, 32 columns, group 32, scale 1: word k holds columns 8k…8k+7, column 8k+i in bits 4i…4i+3,
    // stored as q + 8. Word 0 = 0x76543210 → columns 0…7 = -8…-1; word 1 = 0xFEDCBA98 → 0…7.
    let words: [UInt32] = [0x7654_3210, 0xFEDC_BA98, 0x0000_0008, 0xF000_0000]
    let packed = words.flatMap { withUnsafeBytes(of: $0.littleEndian) { Array($0) } }
    let scale = withUnsafeBytes(of: BFloat16.fromFloat(0.5).littleEndian) { Array($0) }
    let checkpoint = try writeCheckpoint(
        [
            (TensorSpec(name: "m.weight_packed", dtype: .i32, shape: [1, 4]), packed),
            (TensorSpec(name: "m.weight_scale", dtype: .bf16, shape: [1, 1]), scale),
            (TensorSpec(name: "m.weight_shape", dtype: .i64, shape: [2]), [1, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0]),
        ], in: directory)
    let config: JSONValue = [
        "quant_method": "compressed-tensors", "format": "pack-quantized",
        "config_groups": [
            "g": ["targets": ["Linear"], "weights": ["num_bits": 4, "symmetric": true, "group_size": 32, "strategy": "group"]]
        ],
    ]
    let weight = try WeightResolver(checkpoint: checkpoint, quantization: try SourceQuantization.parse(config)).weight(named: "m.weight")
    let values = try weight.decodeAll()
    let expectedCodes: [Float] = Array(-8...7).map(Float.init) + [0, -8, -8, -8, -8, -8, -8, -8] + [-8, -8, -8, -8, -8, -8, -8, 7]
    #expect(values == expectedCodes.map { $0 * 0.5 })
}

@Test func ignoreListAndTextConfigLookups() throws {
    let config: JSONValue = [
        "quant_method": "compressed-tensors", "format": "pack-quantized",
        "config_groups": [
            "group_0": ["targets": ["Linear"], "weights": ["num_bits": 4, "symmetric": true, "group_size": 32, "strategy": "group"]]
        ],
        "ignore": ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"],
    ]
    guard case .compressedTensors(let ct) = try SourceQuantization.parse(config) else { Issue.record("not compressed-tensors"); return }
    #expect(ct.isIgnored("lm_head"))
    #expect(ct.isIgnored("model.layers.0.self_attn.q_a_proj"))
    #expect(ct.isIgnored("model.layers.0.mlp.down_proj"))
    #expect(ct.isIgnored("model.layers.3.mlp.shared_experts.up_proj"))
    #expect(!ct.isIgnored("model.layers.3.mlp.experts.17.down_proj"))
    #expect(ct.group(for: "model.layers.3.mlp.experts.17.down_proj")?.groupSize == 32)
}
