// Reading an expert pack (formats/expert-pack.md): magic, index length, a strict JSON index, then each expert's
// gate/up/down blocks contiguous and aligned. Every record and part is checked to lie inside the file before use.

public enum ExpertPackError: Error, Sendable, CustomStringConvertible {
    case invalid(file: String, offset: Int, String)
    public var description: String {
        switch self {
        case let .invalid(file, offset, what): "\(file): byte \(offset): \(what)"
        }
    }
}

public final class ExpertPackFile: @unchecked Sendable {
    public static let magic = Array("MOEQXPK1".utf8)

    /// OUT.gguf → OUT.expert-pack.
    public static func path(forDense gguf: String) -> String { GGUFSplitName.stem(gguf) + ".expert-pack" }

    public struct Index: Decodable, Sendable {
        public let format: String, alignment: Int, denseFile: String, modelType: String, recipe: String
        public let records: [Record]
        enum CodingKeys: String, CodingKey, CaseIterable {
            case format, alignment, records, recipe, denseFile = "dense_file", modelType = "model_type"
        }
        public struct Record: Decodable, Sendable {
            public let layer: Int, expert: Int, hits: Int, offset: Int, bytes: Int
            public let parts: [Part]
            enum CodingKeys: String, CodingKey, CaseIterable { case layer, expert, hits, offset, bytes, parts }
        }
        public struct Part: Decodable, Sendable {
            public let projection: String, tensor: String, type: String, ne: [Int], offset: Int, bytes: Int
            enum CodingKeys: String, CodingKey, CaseIterable { case projection, tensor, type, ne, offset, bytes }
        }
    }

    public let path: String
    public let map: MappedFile
    public let index: Index

    public init(path: String) throws {
        self.path = path
        map = try MappedFile(path: path)
        var reader = BinaryReader(map.bytes)
        guard reader.expect(ExpertPackFile.magic) else {
            throw ExpertPackError.invalid(file: path, offset: 0, "not an expert pack (magic MOEQXPK1)")
        }
        let json: UnsafeRawBufferPointer
        do throws(BinaryReadError) { json = try reader.slice(try reader.length(UInt64.self)) } catch {
            throw ExpertPackError.invalid(file: path, offset: error.offset, "index length exceeds the file")
        }
        do {
            index = try StrictJSON.decode(Index.self, from: try JSONParser.parse(json), file: path)
        } catch let error as JSONError {
            throw ExpertPackError.invalid(file: path, offset: 16 + error.offset, "index: \(error.reason)")
        } catch let error as JSONDecodingError {
            throw ExpertPackError.invalid(file: path, offset: 16, "index: \(error.path): \(error.reason)")
        }
        for record in index.records {
            guard record.offset >= reader.position, record.bytes >= 0, record.offset <= map.size - record.bytes else {
                throw ExpertPackError.invalid(
                    file: path, offset: 16, "layer \(record.layer) expert \(record.expert): record lies outside the file")
            }
            for part in record.parts
            where !(part.offset >= 0 && part.bytes >= 0 && part.offset <= record.bytes - part.bytes && part.ne.count == 2) {
                throw ExpertPackError.invalid(
                    file: path, offset: record.offset,
                    "layer \(record.layer) expert \(record.expert): part \(part.tensor) lies outside its record")
            }
        }
    }
}
