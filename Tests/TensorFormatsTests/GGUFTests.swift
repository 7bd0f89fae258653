// GGUF writer → reader round trips, ggml's placement rules, and a seeded mutation fuzz of the reader.
import Foundation
import Testing
@testable import TensorFormats
import QuantKernels

private let sampleMetadata: [(GGUFKey, GGUFValue)] = [
    ("general.architecture", .string("llama")), ("general.name", .string("tiny ünïcode")),
    ("llama.block_count", .uint32(2)), ("llama.rope.freq_base", .float32(10000)),
    ("llama.expert_weights_norm", .bool(true)), ("general.size", .uint64(1 << 40)), ("x.i8", .int8(-3)),
    ("tokenizer.ggml.tokens", .strings(["<s>", "a", "bc"])), ("tokenizer.ggml.token_type", .int32s([3, 1, 1])),
    ("nested", .array(.array, [.int32s([1, 2]), .int32s([])])), ("x.f64", .float64(-0.25)), ("x.i64", .int64(-7)),
]

private let sampleTensors = [
    GGUFTensorSpec(name: "token_embd.weight", dimensions: [64, 10], type: .f32),
    GGUFTensorSpec(name: "blk.0.ffn_gate_exps.weight", dimensions: [256, 8, 4], type: .q4_K),
    GGUFTensorSpec(name: "blk.0.attn_norm.weight", dimensions: [64], type: .f32),
    GGUFTensorSpec(name: "output.weight", dimensions: [64, 10], type: .q8_0),
]

private func writeSample(_ path: String, alignment: Int = 32) throws -> GGUFLayout {
    let layout = try GGUFLayout(metadata: sampleMetadata, tensors: sampleTensors, alignment: alignment)
    let writer = try GGUFWriter(path: path, layout: layout)
    for tensor in layout.tensors {
        let bytes = (0..<tensor.byteCount).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ tensor.name.count) }
        // Fill back to front in two halves: order of writes does not matter.
        let half = bytes.count / 2
        try bytes.withUnsafeBytes { raw in
            try writer.write(tensor.name, bytes: UnsafeRawBufferPointer(rebasing: raw[half...]), at: half)
            try writer.write(tensor.name, bytes: UnsafeRawBufferPointer(rebasing: raw[..<half]), at: 0)
        }
    }
    #expect(!FileManager.default.fileExists(atPath: path))
    try writer.finish()
    return layout
}

@Test(arguments: [32, 64])
func ggufRoundTrip(alignment: Int) throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/t.gguf"
    let layout = try writeSample(path, alignment: alignment)
    let file = try GGUFFile(path: path)
    #expect(file.version == 3)
    #expect(file.alignment == alignment)
    #expect(file.tensors == layout.tensors)
    #expect(file.dataStart == layout.dataStart && file.dataStart % alignment == 0)
    #expect(file.mapping.size == layout.fileSize)
    for (key, value) in sampleMetadata { #expect(file[key] == value, "\(key)") }
    #expect((file["general.alignment"] != nil) == (alignment != 32))
    for tensor in file.tensors {
        #expect(tensor.offset % alignment == 0)
        let expected = (0..<tensor.byteCount).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ tensor.name.count) }
        #expect(Array(file.data(of: tensor)) == expected, "\(tensor.name)")
    }
    #expect(file.tensor(named: "blk.0.ffn_gate_exps.weight")?.byteCount == 8 * 4 * 144)
}

@Test func writerRefusesWhatGGMLRejects() {
    #expect(throws: GGUFError.self) {
        try GGUFLayout(metadata: [], tensors: [GGUFTensorSpec(name: String(repeating: "n", count: 64), dimensions: [32], type: .f32)])
    }
    #expect(throws: GGUFError.self) {
        try GGUFLayout(metadata: [], tensors: [GGUFTensorSpec(name: "a", dimensions: [100, 2], type: .q4_K)])
    }
    #expect(throws: GGUFError.self) {
        try GGUFLayout(metadata: [], tensors: [GGUFTensorSpec(name: "a", dimensions: [1, 1, 1, 1, 1], type: .f32)])
    }
    #expect(throws: GGUFError.self) { try GGUFLayout(metadata: [("k", .uint8(1)), ("k", .uint8(2))], tensors: []) }
    #expect(throws: GGUFError.self) {
        try GGUFLayout(
            metadata: [],
            tensors: [GGUFTensorSpec(name: "a", dimensions: [32], type: .f32), GGUFTensorSpec(name: "a", dimensions: [32], type: .f32)])
    }
    #expect(throws: GGUFError.invalidAlignment(file: "output.gguf", value: "48")) {
        try GGUFLayout(metadata: [], tensors: [], alignment: 48)
    }
}

/// Parses in-memory bytes.
private func parse(_ bytes: [UInt8]) throws(GGUFError) -> GGUFFile.Parsed {
    let result: Result<GGUFFile.Parsed, GGUFError> = bytes.withUnsafeBytes { raw in
        do throws(GGUFError) { return .success(try GGUFFile.parse(raw, file: "fuzz.gguf")) } catch { return .failure(error) }
    }
    return try result.get()
}

@Test func readerRejectsMisplacedData() throws {
    let layout = try GGUFLayout(
        metadata: [],
        tensors: [GGUFTensorSpec(name: "a", dimensions: [32], type: .f32), GGUFTensorSpec(name: "b", dimensions: [32], type: .f32)])
    var bytes = layout.header + [UInt8](repeating: 0, count: layout.fileSize - layout.header.count)
    #expect(throws: Never.self) { _ = try parse(bytes) }
    // Point the second tensor's offset (128: 32 floats) one alignment further, leaving a gap ggml refuses.
    var patched = false
    for i in stride(from: layout.dataStart - 8, through: 0, by: -1) where !patched {
        if bytes[i..<(i + 8)].elementsEqual(withUnsafeBytes(of: UInt64(128).littleEndian, Array.init)) {
            bytes.replaceSubrange(i..<(i + 8), with: withUnsafeBytes(of: UInt64(160).littleEndian, Array.init))
            patched = true
        }
    }
    #expect(patched)
    #expect(throws: GGUFError.self) { _ = try parse(bytes) }
}

@Test func readerRejectsTruncationBadMagicAndVersion() throws {
    let layout = try GGUFLayout(metadata: sampleMetadata, tensors: sampleTensors)
    let bytes = layout.header + [UInt8](repeating: 0, count: layout.fileSize - layout.header.count)
    #expect(throws: GGUFError.badMagic(file: "fuzz.gguf")) { _ = try parse(Array("GGML".utf8) + bytes.dropFirst(4)) }
    var version = bytes
    version[4] = 9
    #expect(throws: GGUFError.unsupportedVersion(file: "fuzz.gguf", version: 9)) { _ = try parse(version) }
    #expect(throws: GGUFError.self) { _ = try parse(Array(bytes.prefix(40))) }
    #expect(throws: GGUFError.self) { _ = try parse(Array(bytes.dropLast(80))) }  // into the last tensor's data
}

@Test func tenThousandMutatedGGUFHeadersEndInTypedErrorsOrValidParses() throws {
    let layout = try GGUFLayout(metadata: sampleMetadata, tensors: sampleTensors)
    let original = layout.header + [UInt8](repeating: 7, count: layout.fileSize - layout.header.count)
    var state: UInt64 = 0x6767_7566
    func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
    var valid = 0, rejected = 0
    var kinds: Set<String> = []
    for _ in 0..<12_000 {
        var bytes = original
        for _ in 0...Int(next() % 3) {
            guard !bytes.isEmpty else { break }
            let at = Int(next() % UInt64(min(layout.header.count, bytes.count)))
            switch next() % 6 {
            case 0: bytes[at] = UInt8(truncatingIfNeeded: next())
            case 1: bytes[at] ^= UInt8(1 << (next() % 8))
            case 2: bytes.remove(at: at)
            case 3: bytes.insert(UInt8(truncatingIfNeeded: next()), at: at)
            case 4:  // a huge or zero length/count
                let value: UInt64 = [0, 1, 63, 64, UInt64(Int.max), UInt64.max, 0x8000_0000][Int(next() % 7)]
                let end = min(bytes.count, at + 8)
                bytes.replaceSubrange(at..<end, with: withUnsafeBytes(of: value.littleEndian, Array.init).prefix(end - at))
            default: bytes = Array(bytes.prefix(at))
            }
        }
        do {
            let parsed = try parse(bytes)
            for tensor in parsed.tensors { #expect(parsed.dataStart + tensor.offset + tensor.byteCount <= bytes.count) }
            valid += 1
        } catch {
            rejected += 1
            kinds.insert(String(describing: error).components(separatedBy: "(").first ?? "")
        }
    }
    #expect(valid + rejected == 12_000 && rejected > 5_000)
    #expect(kinds.count >= 7, "reached \(kinds.sorted())")
}
