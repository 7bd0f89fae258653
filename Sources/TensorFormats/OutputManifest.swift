// The manifest written beside every converted file: each tensor's offset, size and XXH3, so `moeq verify`
// can recheck the file later (formats/manifest.md).
import Foundation

public struct OutputManifest: Sendable {
    public struct Entry: Sendable, Equatable {
        public let name: String
        public let offset: Int
        public let bytes: Int
        public let xxh3: UInt64

        public init(name: String, offset: Int, bytes: Int, xxh3: UInt64) {
            self.name = name
            self.offset = offset
            self.bytes = bytes
            self.xxh3 = xxh3
        }
    }

    public let file: String
    public let fileBytes: Int
    public let headerXXH3: UInt64
    public let tensors: [Entry]

    public init(file: String, fileBytes: Int, headerXXH3: UInt64, tensors: [Entry]) {
        self.file = file
        self.fileBytes = fileBytes
        self.headerXXH3 = headerXXH3
        self.tensors = tensors
    }

    /// `OUT.manifest.json` beside `OUT`.
    public static func path(for output: String) -> String { output + ".manifest.json" }

    public var json: JSONValue {
        ["format": "moeq-manifest 1", "file": .string((file as NSString).lastPathComponent), "bytes": .integer(Int64(fileBytes)),
         "header_xxh3": .string(ContentHash.hex(headerXXH3)),
         "tensors": .array(tensors.map { ["name": .string($0.name), "offset": .integer(Int64($0.offset)), "bytes": .integer(Int64($0.bytes)),
                                          "xxh3": .string(ContentHash.hex($0.xxh3))] })]
    }

    public func write() throws { try AtomicFile.write(json.prettyPrinted(), to: OutputManifest.path(for: file)) }

    public init(reading output: String) throws {
        let path = OutputManifest.path(for: output)
        guard let data = FileManager.default.contents(atPath: path) else { throw PackError.invalid(file: path, reason: "no manifest beside \(output)") }
        let root = try JSONParser.parse([UInt8](data))
        func hash(_ value: JSONValue?) throws -> UInt64 {
            guard let text = value?.stringValue, let v = UInt64(text, radix: 16) else { throw PackError.invalid(file: path, reason: "bad xxh3 value") }
            return v
        }
        guard root["format"]?.stringValue == "moeq-manifest 1", let bytes = root["bytes"]?.intValue, let list = root["tensors"]?.arrayValue else {
            throw PackError.invalid(file: path, reason: "not a moeq-manifest 1 document")
        }
        file = output
        fileBytes = bytes
        headerXXH3 = try hash(root["header_xxh3"])
        tensors = try list.map { entry in
            guard let name = entry["name"]?.stringValue, let offset = entry["offset"]?.intValue, let size = entry["bytes"]?.intValue else {
                throw PackError.invalid(file: path, reason: "bad tensor entry")
            }
            return Entry(name: name, offset: offset, bytes: size, xxh3: try hash(entry["xxh3"]))
        }
    }

    /// Rechecks `file` against the manifest: the names of tensors whose bytes changed (header as "<header>").
    public func verify() throws -> [String] {
        let mapped = try MappedFile(path: file)
        guard mapped.size == fileBytes else { throw PackError.invalid(file: file, reason: "\(mapped.size) bytes, the manifest records \(fileBytes)") }
        var bad: [String] = []
        let headerEnd = tensors.map(\.offset).min() ?? fileBytes
        if ContentHash.xxh3(mapped.bytes(in: 0..<headerEnd)) != headerXXH3 { bad.append("<header>") }
        for tensor in tensors {
            guard tensor.offset >= 0, tensor.bytes >= 0, tensor.offset <= fileBytes - tensor.bytes else { bad.append(tensor.name); continue }
            if ContentHash.xxh3(mapped.bytes(in: tensor.offset..<(tensor.offset + tensor.bytes))) != tensor.xxh3 { bad.append(tensor.name) }
            mapped.releasePages(in: tensor.offset..<(tensor.offset + tensor.bytes))
        }
        return bad
    }
}
