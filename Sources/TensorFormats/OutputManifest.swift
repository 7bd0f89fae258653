// The manifest written beside every converted file: each tensor's offset, size and XXH3, so `moeq verify` can
// recheck the file later (formats/manifest.md). Read strictly: a hand-edited manifest is an error naming the key and
// entry, never a crash.
import Foundation

/// A manifest that cannot be read or does not describe its file.
public enum ManifestError: Error, Sendable, Equatable, CustomStringConvertible {
    case missing(manifest: String, file: String)
    case invalid(manifest: String, reason: String)
    case fileSize(file: String, found: Int, recorded: Int)

    public var description: String {
        switch self {
        case let .missing(manifest, file): "\(manifest): no manifest beside \(file) (only files moeq wrote have one)"
        case let .invalid(manifest, reason): "\(manifest): \(reason)"
        case let .fileSize(file, found, recorded):
            "\(file): \(found) bytes, but its manifest records \(recorded): the file was cut short, extended or replaced"
        }
    }
}

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

    /// Removes the manifest of `output` (when the file it describes did not come to be).
    public static func remove(for output: String) { unlink(path(for: output)) }

    public var json: JSONValue {
        [
            "format": "moeq-manifest 1", "file": .string((file as NSString).lastPathComponent), "bytes": .integer(Int64(fileBytes)),
            "header_xxh3": .string(ContentHash.hex(headerXXH3)),
            "tensors": .array(
                tensors.map {
                    [
                        "name": .string($0.name), "offset": .integer(Int64($0.offset)), "bytes": .integer(Int64($0.bytes)),
                        "xxh3": .string(ContentHash.hex($0.xxh3)),
                    ]
                }),
        ]
    }

    /// Writes the manifest durably (atomic rename, directory fsynced).
    public func write() throws(FileIOError) { try AtomicFile.write(json.prettyPrinted(), to: OutputManifest.path(for: file)) }

    /// The document as written.
    private struct Document: Decodable {
        let format: String, file: String, bytes: Int
        let headerXXH3: String
        let tensors: [JSONValue]
        enum CodingKeys: String, CodingKey, CaseIterable { case format, file, bytes, tensors, headerXXH3 = "header_xxh3" }
        struct Tensor: Decodable {
            let name: String, offset: Int, bytes: Int, xxh3: String
            enum CodingKeys: String, CodingKey, CaseIterable { case name, offset, bytes, xxh3 }
        }
    }

    /// Reads the manifest beside `output`.
    public init(reading output: String) throws {
        let path = OutputManifest.path(for: output)
        _ = try PositionalFile.identity(output)  // the file itself first: "No such file or directory" names it
        guard PositionalFile.exists(path) else { throw ManifestError.missing(manifest: path, file: output) }
        let document: Document
        do { document = try StrictJSON.decode(Document.self, file: path) } catch let error as JSONDecodingError {
            throw ManifestError.invalid(manifest: path, reason: "\(error.path): \(error.reason)")
        } catch let error as JSONError {
            throw ManifestError.invalid(manifest: path, reason: "not JSON: \(error.reason) (byte \(error.offset))")
        }
        func hash(_ text: String, _ key: String) throws -> UInt64 {
            guard text.count == 16, let value = UInt64(text, radix: 16) else {
                throw ManifestError.invalid(manifest: path, reason: "\(key): \"\(text)\" is not a 16-digit hex XXH3")
            }
            return value
        }
        guard document.format == "moeq-manifest 1" else {
            throw ManifestError.invalid(manifest: path, reason: "format: not \"moeq-manifest 1\"")
        }
        guard document.bytes >= 0 else { throw ManifestError.invalid(manifest: path, reason: "bytes: \(document.bytes) is negative") }
        file = output
        fileBytes = document.bytes
        headerXXH3 = try hash(document.headerXXH3, "header_xxh3")
        tensors = try document.tensors.enumerated().map { i, value in
            let entry: Document.Tensor
            do throws(JSONDecodingError) { entry = try StrictJSON.decode(Document.Tensor.self, from: value, file: path) } catch {
                throw ManifestError.invalid(
                    manifest: path, reason: "tensors[\(i)] (\(value["name"]?.stringValue ?? "unnamed")): \(error.path): \(error.reason)")
            }
            guard entry.offset >= 0, entry.bytes >= 0, entry.offset <= document.bytes - entry.bytes else {
                throw ManifestError.invalid(
                    manifest: path,
                    reason: "tensors[\(i)] (\(entry.name)): offset \(entry.offset) + \(entry.bytes) bytes "
                        + "lies outside the \(document.bytes)-byte file")
            }
            return Entry(name: entry.name, offset: entry.offset, bytes: entry.bytes, xxh3: try hash(entry.xxh3, "tensors[\(i)].xxh3"))
        }
    }

    /// Rechecks `file` against the manifest: the names of tensors whose bytes changed (header as "<header>").
    public func verify() throws -> [String] {
        let mapped = try MappedFile(path: file)
        guard mapped.size == fileBytes else { throw ManifestError.fileSize(file: file, found: mapped.size, recorded: fileBytes) }
        var bad: [String] = []
        let headerEnd = tensors.map(\.offset).min() ?? fileBytes
        if ContentHash.xxh3(mapped.bytes(in: 0..<headerEnd)) != headerXXH3 { bad.append("<header>") }
        // Hashed 64 MiB at a time, each released once hashed: one stacked expert tensor of a 1 T model is gigabytes.
        let chunk = 64 << 20
        for tensor in tensors {
            let hasher = ContentHasher()
            var start = tensor.offset
            while start < tensor.offset + tensor.bytes {
                let end = min(start + chunk, tensor.offset + tensor.bytes)
                hasher.update(mapped.bytes(in: start..<end))
                mapped.releasePages(in: start..<end)
                start = end
            }
            if hasher.digest != tensor.xxh3 { bad.append(tensor.name) }
        }
        return bad
    }
}
