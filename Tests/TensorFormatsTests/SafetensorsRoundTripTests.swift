// Writer → reader round trips for every dtype, the Python-written interop file, and sharded checkpoints.
import Foundation
import Testing
@testable import TensorFormats
import QuantKernels

@Test(arguments: SafetensorsDType.allCases)
func roundTripEveryDType(dtype: SafetensorsDType) throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/rt.safetensors"
    let shape = dtype.bitsPerElement < 8 ? [4, 8] : [3, 5]
    let count = try #require(dtype.byteCount(elements: shape.reduce(1, *)))
    let payload = (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
    let writer = try SafetensorsWriter(
        path: path,
        tensors: [
            TensorSpec(name: "first", dtype: dtype, shape: shape),
            TensorSpec(name: "scalar", dtype: .f32, shape: []),
            TensorSpec(name: "empty", dtype: dtype, shape: [0, 7]),
        ], metadata: ["format": "pt", "note": "round trip"])
    #expect(!FileManager.default.fileExists(atPath: path), "final name must not exist before finish()")
    try writer.write("first", bytes: payload)
    try writer.write("scalar", bytes: withUnsafeBytes(of: Float(2.5).bitPattern.littleEndian) { Array($0) })
    try writer.finish()
    #expect(!FileManager.default.fileExists(atPath: writer.temporaryPath))

    let file = try SafetensorsFile(path: path)
    #expect(file.metadata == ["format": "pt", "note": "round trip"])
    #expect(file.header.dataStart % 8 == 0)
    let first = try #require(file.info(named: "first"))
    #expect(first.dtype == dtype && first.shape == shape)
    #expect(Array(try file.data(named: "first")) == payload)
    #expect(Array(try file.data(named: "scalar")) == withUnsafeBytes(of: Float(2.5).bitPattern.littleEndian) { Array($0) })
    #expect(try file.data(named: "empty").isEmpty)
}

@Test func abandonedWriterLeavesNoFile() throws {
    let directory = try temporaryDirectory()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let path = directory + "/never.safetensors"
    let writer = try SafetensorsWriter(path: path, tensors: [TensorSpec(name: "a", dtype: .u8, shape: [4])])
    #expect(throws: SafetensorsError.self) { try writer.write("a", bytes: [1, 2, 3, 4, 5]) }
    #expect(throws: SafetensorsError.self) { try writer.write("missing", bytes: [1]) }
    writer.abandon()
    #expect(!FileManager.default.fileExists(atPath: path))
    #expect(!FileManager.default.fileExists(atPath: writer.temporaryPath))
}

/// Decodes an interop tensor to Double values our way.
private func decodeValues(_ file: SafetensorsFile, _ info: TensorInfo) -> [Double?] {
    let data = file.data(of: info)
    let n = info.elementCount
    func load<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> T {
        T(littleEndian: data.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
    }
    return (0..<n).map { i -> Double? in
        switch info.dtype {
        case .f64: return Double(bitPattern: load(UInt64.self, i))
        case .f32: return Double(Float(bitPattern: load(UInt32.self, i)))
        case .f16: return Double(Half.toFloat(load(UInt16.self, i)))
        case .bf16: return Double(BFloat16.toFloat(load(UInt16.self, i)))
        case .f8e4m3: return Double(FloatE4M3.toFloat(data[i]))
        case .f8e5m2: return Double(FloatE5M2.toFloat(data[i]))
        case .i64: return Double(load(Int64.self, i))
        case .i32: return Double(load(Int32.self, i))
        case .i16: return Double(load(Int16.self, i))
        case .i8: return Double(Int8(bitPattern: data[i]))
        case .u64: return Double(load(UInt64.self, i))
        case .u32: return Double(load(UInt32.self, i))
        case .u16: return Double(load(UInt16.self, i))
        case .u8: return Double(data[i])
        case .bool: return data[i] == 0 ? 0 : 1
        default: return nil
        }
    }
}

@Test func readsWhatPythonSafetensorsWrote() throws {
    let file = try SafetensorsFile(path: fixtures.appendingPathComponent("interop/torch_dtypes.safetensors").path)
    // Parsed with our JSON parser: Foundation's JSONSerialization on Linux rounds some doubles inexactly.
    let expected = try JSONParser.parse([UInt8](try Data(contentsOf: fixtures.appendingPathComponent("interop/expected.json"))))
    #expect(file.metadata["format"] == "pt")
    var checked = 0
    for (name, spec) in try #require(expected.objectValue).pairs where !name.hasPrefix("__") {
        let info = try #require(file.info(named: name), "missing \(name)")
        #expect(info.dtype.rawValue == spec["dtype"]?.stringValue, "\(name)")
        #expect(info.shape == spec["shape"]?.arrayValue?.compactMap(\.intValue), "\(name)")
        // The stored bytes, exactly as Python wrote them.
        let hex = file.data(of: info).map { String(format: "%02x", $0) }.joined()
        #expect(hex == spec["bytes_hex"]?.stringValue, "\(name)")
        let values = try #require(spec["values"]?.arrayValue)
        let ours = decodeValues(file, info)
        #expect(ours.count == values.count, "\(name)")
        for (mine, theirs) in zip(ours, values) {
            switch theirs {
            case .string(let text): #expect(mine == (text == "inf" ? .infinity : -.infinity), "\(name)")
            case .null: #expect(mine?.isNaN == true, "\(name): expected NaN")
            default: #expect(mine == theirs.doubleValue, "\(name): \(String(describing: mine)) vs \(theirs)")
            }
        }
        checked += 1
    }
    #expect(checked >= 15)
}

@Test func shardedCheckpointFromTransformers() throws {
    let checkpoint = try Checkpoint(path: fixtures.appendingPathComponent("deepseek_v3-bf16-sharded").path)
    #expect(checkpoint.files.count == 5)
    #expect(checkpoint.indexPath != nil)
    #expect(checkpoint.tensors.count == 91)
    #expect(checkpoint.location(of: "model.layers.1.mlp.experts.7.down_proj.weight")?.info.shape == [64, 32])
}

@Test func indexEntryMissingFromItsShard() throws {
    let directory = try copyOfShardedFixture()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try editIndex(directory) { map in map["model.layers.9.bogus.weight"] = "model-00001-of-00005.safetensors" }
    #expect(
        throws: SafetensorsError.tensorMissingFromShard(
            file: directory + "/model.safetensors.index.json",
            tensor: "model.layers.9.bogus.weight", shard: "model-00001-of-00005.safetensors")
    ) {
        try Checkpoint(path: directory)
    }
}

@Test func indexEntryNamingTheWrongShard() throws {
    let directory = try copyOfShardedFixture()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var moved = ""
    try editIndex(directory) { map in
        let name = map.first { $0.value != "model-00005-of-00005.safetensors" }!.key
        moved = name
        map[name] = "model-00005-of-00005.safetensors"
    }
    #expect(
        throws: SafetensorsError.tensorMissingFromShard(
            file: directory + "/model.safetensors.index.json", tensor: moved, shard: "model-00005-of-00005.safetensors")
    ) {
        try Checkpoint(path: directory)
    }
}

@Test func shardTensorNotListedInTheIndex() throws {
    let directory = try copyOfShardedFixture()
    defer { try? FileManager.default.removeItem(atPath: directory) }
    try editIndex(directory) { map in map["model.norm.weight"] = nil }
    #expect(throws: SafetensorsError.self) { try Checkpoint(path: directory) }
}

private func copyOfShardedFixture() throws -> String {
    let directory = try temporaryDirectory() + "/ckpt"
    try FileManager.default.copyItem(atPath: fixtures.appendingPathComponent("deepseek_v3-bf16-sharded").path, toPath: directory)
    return directory
}

private func editIndex(_ directory: String, _ edit: (inout [String: String]) -> Void) throws {
    let path = directory + "/model.safetensors.index.json"
    var root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    var map = try #require(root["weight_map"] as? [String: String])
    edit(&map)
    root["weight_map"] = map
    try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: path))
}
