// `moeq pack`: a lossless archive of a checkpoint directory. Safetensors tensor data is split into byte planes
// (byte k of every element together: BF16's sign+exponent byte compresses far better alone) and each plane of
// each chunk becomes one zstd frame; every other file is stored as zstd frames of its bytes. Unpacking rebuilds
// every file bit for bit and checks its XXH3. Format: formats/moeq-pack.md.
import Foundation

public enum PackError: Error, Sendable, CustomStringConvertible {
    case invalid(file: String, reason: String)
    case hashMismatch(file: String, expected: String, found: String)
    public var description: String {
        switch self {
        case let .invalid(file, reason): "\(file): \(reason)"
        case let .hashMismatch(file, expected, found): "\(file): XXH3 \(found) after unpacking, \(expected) recorded: the archive is damaged"
        }
    }
}

public struct PackSummary: Sendable {
    public let files: Int
    public let originalBytes: Int
    public let packedBytes: Int
    public var ratio: Double { packedBytes > 0 ? Double(originalBytes) / Double(packedBytes) : 0 }
}

public enum BytePlanePack {
    public static let manifestName = "manifest.json"
    public static let dataName = "frames.zst"
    /// Raw bytes per chunk (before plane splitting): bounds memory to a few chunks.
    public static let chunkBytes = 8 << 20

    /// One compressed frame: where it sits in frames.zst, and how many raw bytes it holds.
    struct Frame { let offset: Int; let size: Int; let raw: Int }

    // MARK: - Pack

    /// Packs every regular file of `directory` into the archive directory `output`.
    public static func pack(directory: String, output: String, level: Int32 = 3) throws -> PackSummary {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted().filter { name in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: directory + "/" + name, isDirectory: &isDirectory) && !isDirectory.boolValue
        }
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        let dataPath = output + "/" + dataName
        try? FileManager.default.removeItem(atPath: dataPath)
        try? FileManager.default.removeItem(atPath: output + "/" + manifestName)
        FileManager.default.createFile(atPath: dataPath + ".partial", contents: nil)
        guard let data = FileHandle(forWritingAtPath: dataPath + ".partial") else { throw PackError.invalid(file: dataPath, reason: "cannot create") }
        var cursor = 0, original = 0
        func emit(_ raw: [UInt8]) throws -> JSONValue {
            let frame = try Zstd.compress(raw, level: level)
            data.write(Data(frame))
            defer { cursor += frame.count }
            return .array([.integer(Int64(cursor)), .integer(Int64(frame.count)), .integer(Int64(raw.count))])
        }
        var files: [JSONValue] = []
        for name in names {
            let path = directory + "/" + name
            let mapped = try MappedFile(path: path)
            original += mapped.size
            var entry = JSONObject([("name", .string(name)), ("bytes", .integer(Int64(mapped.size))),
                                    ("xxh3", .string(ContentHash.hex(ContentHash.xxh3(mapped.bytes))))])
            if name.hasSuffix(".safetensors"), let file = try? SafetensorsFile(path: path) {
                entry["header"] = try emit(Array(mapped.bytes(in: 0..<file.header.dataStart)))
                var tensors: [JSONValue] = []
                for tensor in file.tensors {
                    let width = tensor.dtype.bitsPerElement % 8 == 0 ? tensor.dtype.bitsPerElement / 8 : 1
                    let bytes = file.data(of: tensor)
                    var frames: [JSONValue] = []
                    var start = 0
                    while start < bytes.count {
                        let end = min(bytes.count, start + chunkBytes / width * width)
                        let chunk = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
                        for plane in 0..<width { frames.append(try emit(extractPlane(chunk, plane: plane, width: width))) }
                        start = end
                    }
                    tensors.append(["name": .string(tensor.name), "planes": .integer(Int64(width)), "frames": .array(frames)])
                    file.mapping.releasePages(in: file.fileOffset(of: tensor)..<(file.fileOffset(of: tensor) + tensor.byteCount))
                }
                entry["tensors"] = .array(tensors)
            } else {
                var frames: [JSONValue] = []
                var start = 0
                while start < mapped.size {
                    let end = min(mapped.size, start + chunkBytes)
                    frames.append(try emit(Array(mapped.bytes(in: start..<end))))
                    start = end
                }
                entry["frames"] = .array(frames)
            }
            files.append(.object(entry))
        }
        try data.synchronize()
        try data.close()
        try FileManager.default.moveItem(atPath: dataPath + ".partial", toPath: dataPath)
        let manifest: JSONValue = ["format": "moeq-pack 1", "chunk_bytes": .integer(Int64(chunkBytes)), "files": .array(files)]
        try AtomicFile.write(manifest.prettyPrinted(), to: output + "/" + manifestName)
        return PackSummary(files: files.count, originalBytes: original, packedBytes: cursor)
    }

    /// Byte `plane` of every `width`-byte element of `chunk`.
    static func extractPlane(_ chunk: UnsafeRawBufferPointer, plane: Int, width: Int) -> [UInt8] {
        guard width > 1 else { return Array(chunk) }
        let count = chunk.count / width
        return [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = chunk[i * width + plane] }
            initialized = count
        }
    }

    // MARK: - Unpack

    /// Rebuilds every file of the archive `input` into `directory`, verifying each file's XXH3.
    public static func unpack(input: String, directory: String) throws -> PackSummary {
        let manifestPath = input + "/" + manifestName
        guard let manifestData = FileManager.default.contents(atPath: manifestPath) else { throw PackError.invalid(file: manifestPath, reason: "missing") }
        let manifest = try JSONParser.parse([UInt8](manifestData))
        guard manifest["format"]?.stringValue == "moeq-pack 1", let files = manifest["files"]?.arrayValue else {
            throw PackError.invalid(file: manifestPath, reason: "not a moeq-pack 1 manifest")
        }
        let frames = try MappedFile(path: input + "/" + dataName)
        func frame(_ value: JSONValue?) throws -> [UInt8] {
            guard let parts = value?.arrayValue?.compactMap(\.intValue), parts.count == 3, parts[0] >= 0, parts[1] >= 0,
                  parts[0] <= frames.size - parts[1] else {
                throw PackError.invalid(file: input + "/" + dataName, reason: "frame reference \(value?.serialized() ?? "nil") is outside the data")
            }
            let raw = try Zstd.decompress(Array(frames.bytes(in: parts[0]..<(parts[0] + parts[1]))), limit: chunkBytes + 1)
            guard raw.count == parts[2] else { throw PackError.invalid(file: input + "/" + dataName, reason: "frame at \(parts[0]) holds \(raw.count) bytes, \(parts[2]) recorded") }
            return raw
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var total = 0
        for entry in files {
            guard let name = entry["name"]?.stringValue, !name.contains("/"), name != "..", let size = entry["bytes"]?.intValue,
                  let hash = entry["xxh3"]?.stringValue else { throw PackError.invalid(file: manifestPath, reason: "bad file entry") }
            let staged = try StagedFile(path: directory + "/" + name, size: size)
            var position = 0
            func put(_ bytes: [UInt8]) throws {
                guard position + bytes.count <= size else { throw PackError.invalid(file: name, reason: "frames exceed the recorded size") }
                try staged.write(bytes, at: position)
                position += bytes.count
            }
            do {
                if let header = entry["header"] {
                    try put(try frame(header))
                    for tensor in entry["tensors"]?.arrayValue ?? [] {
                        let width = tensor["planes"]?.intValue ?? 1
                        let list = tensor["frames"]?.arrayValue ?? []
                        guard width >= 1, list.count % width == 0 else { throw PackError.invalid(file: name, reason: "plane count mismatch") }
                        for chunkStart in stride(from: 0, to: list.count, by: width) {
                            let planes = try (0..<width).map { try frame(list[chunkStart + $0]) }
                            let count = planes[0].count
                            guard planes.allSatisfy({ $0.count == count }) else { throw PackError.invalid(file: name, reason: "planes of unequal length") }
                            var interleaved = [UInt8](repeating: 0, count: count * width)
                            for (p, plane) in planes.enumerated() { for i in 0..<count { interleaved[i * width + p] = plane[i] } }
                            try put(interleaved)
                        }
                    }
                } else {
                    for f in entry["frames"]?.arrayValue ?? [] { try put(try frame(f)) }
                }
                guard position == size else { throw PackError.invalid(file: name, reason: "rebuilt \(position) of \(size) bytes") }
                try staged.finish()
            } catch {
                staged.abandon()
                throw error
            }
            let rebuilt = try MappedFile(path: directory + "/" + name)
            let found = ContentHash.hex(ContentHash.xxh3(rebuilt.bytes))
            guard found == hash else {
                try? FileManager.default.removeItem(atPath: directory + "/" + name)
                throw PackError.hashMismatch(file: name, expected: hash, found: found)
            }
            total += size
        }
        return PackSummary(files: files.count, originalBytes: total, packedBytes: frames.size)
    }
}
