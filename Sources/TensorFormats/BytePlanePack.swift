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
        case let .hashMismatch(file, expected, found):
            "\(file): XXH3 \(found) after unpacking, \(expected) recorded: the archive is damaged"
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

    /// Packs every regular file of `directory` into the archive directory `output` (staged, then moved into place).
    public static func pack(directory: String, output: String, level: Int32 = 3) throws -> PackSummary {
        guard OutputPolicy.isDirectory(directory) else {
            _ = try PositionalFile.identity(directory)
            throw FileIOError(file: directory, operation: "read directory", code: ENOTDIR)
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted().filter { $0 != OutputPolicy.marker }
        // Only regular files (symlinks to them, as in a Hugging Face cache, count): a subdirectory would be left out
        // silently and a FIFO would block, so both are refused by name.
        for name in names {
            let path = directory + "/" + name
            if OutputPolicy.isDirectory(path) {
                throw PackError.invalid(
                    file: path, reason: "a subdirectory: moeq pack archives the files of one directory; pack it separately")
            }
            var status = stat()
            guard stat(path, &status) == 0 else { throw FileIOError(file: path, operation: "stat", code: errno) }
            guard (status.st_mode & S_IFMT) == S_IFREG else {
                throw PackError.invalid(file: path, reason: "not a regular file (a pipe, socket or device); move it out of the directory")
            }
        }
        guard !names.isEmpty else { throw PackError.invalid(file: directory, reason: "no files to pack: the directory is empty") }
        let staging = try StagedDirectory(path: output)
        do {
            let summary = try pack(names: names, from: directory, into: staging, level: level)
            try staging.finish()
            return summary
        } catch {
            staging.abandon()
            throw error
        }
    }

    private static func pack(names: [String], from directory: String, into staging: StagedDirectory, level: Int32) throws -> PackSummary {
        var cursor = 0, original = 0
        let data = try StagedFile(path: staging.file(dataName), size: 0)
        data.enableDirectWrites()
        func emit(_ raw: [UInt8]) throws -> JSONValue {
            let frame = try Zstd.compress(raw, level: level)
            try data.write(frame, at: cursor)
            defer { cursor += frame.count }
            return .array([.integer(Int64(cursor)), .integer(Int64(frame.count)), .integer(Int64(raw.count))])
        }
        var files: [JSONValue] = []
        do {
            for name in names {
                let path = directory + "/" + name
                let mapped = try MappedFile(path: path)
                original += mapped.size
                // Hashed 64 MiB at a time, each piece released once read: a checkpoint shard is gigabytes.
                let hasher = ContentHasher()
                var at = 0
                while at < mapped.size {
                    let end = min(mapped.size, at + (64 << 20))
                    hasher.update(mapped.bytes(in: at..<end))
                    mapped.releasePages(in: at..<end)
                    at = end
                }
                var entry = JSONObject([
                    ("name", .string(name)), ("bytes", .integer(Int64(mapped.size))), ("xxh3", .string(ContentHash.hex(hasher.digest))),
                ])
                if name.hasSuffix(".safetensors"), let file = try? SafetensorsFile(path: path) {
                    entry["header"] = try emit(Array(mapped.bytes(in: 0..<file.header.dataStart)))
                    var tensors: [JSONValue] = []
                    for tensor in file.tensors {
                        let width = tensor.dtype.bitsPerElement % 8 == 0 ? tensor.dtype.bitsPerElement / 8 : 1
                        let bytes = file.data(of: tensor)
                        var list: [JSONValue] = []
                        var start = 0
                        while start < bytes.count {
                            let end = min(bytes.count, start + chunkBytes / width * width)
                            let chunk = UnsafeRawBufferPointer(rebasing: bytes[start..<end])
                            for plane in 0..<width { list.append(try emit(extractPlane(chunk, plane: plane, width: width))) }
                            let offset = file.fileOffset(of: tensor)
                            file.mapping.releasePages(in: (offset + start)..<(offset + end))
                            start = end
                        }
                        tensors.append(["name": .string(tensor.name), "planes": .integer(Int64(width)), "frames": .array(list)])
                    }
                    entry["tensors"] = .array(tensors)
                } else {
                    var list: [JSONValue] = []
                    var start = 0
                    while start < mapped.size {
                        let end = min(mapped.size, start + chunkBytes)
                        list.append(try emit(Array(mapped.bytes(in: start..<end))))
                        mapped.releasePages(in: start..<end)
                        start = end
                    }
                    entry["frames"] = .array(list)
                }
                files.append(.object(entry))
            }
            try data.finish()
        } catch {
            data.abandon()
            throw error
        }
        let manifest: JSONValue = ["format": "moeq-pack 1", "chunk_bytes": .integer(Int64(chunkBytes)), "files": .array(files)]
        try AtomicFile.write(manifest.prettyPrinted(), to: staging.file(manifestName))
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

    /// The archive manifest as written (formats/moeq-pack.md).
    struct Manifest: Decodable {
        let format: String
        let chunkBytes: Int
        let files: [File]
        enum CodingKeys: String, CodingKey, CaseIterable { case format, files, chunkBytes = "chunk_bytes" }
        struct File: Decodable {
            let name: String, bytes: Int, xxh3: String
            let header: [Int]?, frames: [[Int]]?, tensors: [Tensor]?
            enum CodingKeys: String, CodingKey, CaseIterable { case name, bytes, xxh3, header, frames, tensors }
        }
        struct Tensor: Decodable {
            let name: String, planes: Int, frames: [[Int]]
            enum CodingKeys: String, CodingKey, CaseIterable { case name, planes, frames }
        }
    }

    /// Rebuilds every file of the archive `input` into `directory` (staged, then moved into place), verifying each
    /// file's XXH3; a damaged archive leaves nothing behind.
    public static func unpack(input: String, directory: String) throws -> PackSummary {
        let manifestPath = input + "/" + manifestName
        _ = try PositionalFile.identity(input)
        guard PositionalFile.exists(manifestPath) else {
            throw PackError.invalid(file: manifestPath, reason: "no manifest.json: \(input) is not a moeq pack archive")
        }
        let manifest: Manifest
        do { manifest = try StrictJSON.decode(Manifest.self, file: manifestPath) } catch let error as JSONDecodingError {
            throw PackError.invalid(file: manifestPath, reason: "\(error.path): \(error.reason)")
        } catch let error as JSONError {
            throw PackError.invalid(file: manifestPath, reason: "not JSON: \(error.reason) (byte \(error.offset))")
        }
        guard manifest.format == "moeq-pack 1" else { throw PackError.invalid(file: manifestPath, reason: "format: not \"moeq-pack 1\"") }
        let framesPath = input + "/" + dataName
        let frames = try MappedFile(path: framesPath)
        func frame(_ parts: [Int]) throws -> [UInt8] {
            guard parts.count == 3, parts[0] >= 0, parts[1] >= 0, parts[2] >= 0, parts[2] <= chunkBytes, parts[0] <= frames.size - parts[1]
            else {
                throw PackError.invalid(file: framesPath, reason: "frame reference \(parts) is outside the data or larger than a chunk")
            }
            let raw: [UInt8]
            do { raw = try Zstd.decompress(Array(frames.bytes(in: parts[0]..<(parts[0] + parts[1]))), limit: chunkBytes + 1) } catch {
                throw PackError.invalid(file: framesPath, reason: "frame at byte \(parts[0]): \(error)")
            }
            guard raw.count == parts[2] else {
                throw PackError.invalid(
                    file: framesPath, reason: "frame at byte \(parts[0]) holds \(raw.count) bytes, \(parts[2]) recorded")
            }
            return raw
        }
        let staging = try StagedDirectory(path: directory)
        var total = 0
        do {
            var seen = Set<String>()
            for entry in manifest.files {
                let name = entry.name
                guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", name != OutputPolicy.marker, seen.insert(name).inserted
                else {
                    throw PackError.invalid(file: manifestPath, reason: "file name \"\(name)\" is empty, a path, reserved or repeated")
                }
                guard entry.bytes >= 0, entry.bytes <= 1 << 50 else {
                    throw PackError.invalid(file: manifestPath, reason: "\(name): size \(entry.bytes) is implausible")
                }
                try restore(entry, into: staging.file(name), frame: frame)
                total += entry.bytes
            }
            try staging.finish()
        } catch {
            staging.abandon()
            throw error
        }
        return PackSummary(files: manifest.files.count, originalBytes: total, packedBytes: frames.size)
    }

    /// One file: frames in order (planes re-interleaved), size and XXH3 checked before it counts.
    private static func restore(_ entry: Manifest.File, into path: String, frame: ([Int]) throws -> [UInt8]) throws {
        let name = entry.name, size = entry.bytes
        let staged = try StagedFile(path: path, size: size)
        let hasher = ContentHasher()
        var position = 0
        func put(_ bytes: [UInt8]) throws {
            guard bytes.count <= size - position else {
                throw PackError.invalid(file: name, reason: "frames exceed the recorded size \(size)")
            }
            try staged.write(bytes, at: position)
            bytes.withUnsafeBytes { hasher.update($0) }
            position += bytes.count
        }
        do {
            if let header = entry.header {
                try put(try frame(header))
                for tensor in entry.tensors ?? [] {
                    let width = tensor.planes
                    guard (1...16).contains(width), tensor.frames.count % width == 0 else {
                        throw PackError.invalid(
                            file: name, reason: "tensor \(tensor.name): \(width) planes do not divide its \(tensor.frames.count) frames")
                    }
                    for chunkStart in stride(from: 0, to: tensor.frames.count, by: width) {
                        let planes = try (0..<width).map { try frame(tensor.frames[chunkStart + $0]) }
                        let count = planes[0].count
                        guard planes.allSatisfy({ $0.count == count }) else {
                            throw PackError.invalid(file: name, reason: "tensor \(tensor.name): planes of unequal length")
                        }
                        var interleaved = [UInt8](repeating: 0, count: count * width)
                        for (p, plane) in planes.enumerated() { for i in 0..<count { interleaved[i * width + p] = plane[i] } }
                        try put(interleaved)
                    }
                }
            } else {
                for f in entry.frames ?? [] { try put(try frame(f)) }
            }
            guard position == size else { throw PackError.invalid(file: name, reason: "rebuilt \(position) of \(size) bytes") }
            let found = ContentHash.hex(hasher.digest)
            guard found == entry.xxh3 else { throw PackError.hashMismatch(file: name, expected: entry.xxh3, found: found) }
            try staged.finish()
        } catch {
            staged.abandon()
            throw error
        }
    }
}
