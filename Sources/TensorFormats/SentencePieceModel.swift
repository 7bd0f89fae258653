// SentencePiece `tokenizer.model` (a protobuf ModelProto): the pieces with scores and types, read with a
// minimal bounds-checked protobuf walker (field 1 = repeated SentencePiece {1 piece, 2 score, 3 type}).

public struct SentencePieceModel: Sendable {
    /// SentencePiece piece types (their values equal llama.cpp's token types).
    public enum PieceType: Int32, Sendable { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    public struct Piece: Sendable, Equatable {
        public let text: String
        public let score: Float
        public let type: PieceType
    }

    public let pieces: [Piece]

    public init(path: String) throws {
        let mapped = try MappedFile(path: path)
        var pieces: [Piece] = []
        try ProtobufWalker.fields(mapped.bytes, file: path) { field, wireType, value, offset in
            guard field == 1, wireType == 2, case .bytes(let message) = value else { return }
            var text = "", score: Float = 0, type = PieceType.normal
            try ProtobufWalker.fields(message, file: path, base: offset) { f, w, v, at in
                switch (f, w, v) {
                case (1, 2, .bytes(let raw)):
                    guard let s = String(validating: raw.bindMemory(to: UInt8.self), as: UTF8.self) else {
                        throw TokenizerFileError.invalid(file: path, byteOffset: at, reason: "piece is not valid UTF-8")
                    }
                    text = s
                case (2, 5, .fixed32(let bits)): score = Float(bitPattern: bits)
                case (3, 0, .varint(let raw)): type = PieceType(rawValue: Int32(truncatingIfNeeded: raw)) ?? .normal
                default: break
                }
            }
            pieces.append(Piece(text: text, score: score, type: type))
        }
        guard !pieces.isEmpty else { throw TokenizerFileError.invalid(file: path, byteOffset: 0, reason: "no SentencePiece pieces") }
        self.pieces = pieces
    }
}

/// Walks protobuf fields: varint (0), fixed64 (1), length-delimited (2), fixed32 (5).
enum ProtobufWalker {
    enum Value { case varint(UInt64), fixed64(UInt64), bytes(UnsafeRawBufferPointer), fixed32(UInt32) }

    static func fields(
        _ bytes: UnsafeRawBufferPointer, file: String, base: Int = 0,
        _ body: (Int, Int, Value, Int) throws -> Void
    ) throws {
        var reader = BinaryReader(bytes)
        func fail(_ reason: String, at offset: Int? = nil) -> TokenizerFileError {
            .invalid(file: file, byteOffset: base + (offset ?? reader.position), reason: reason)
        }
        func read<T>(_ what: String, _ step: (inout BinaryReader) throws -> T) throws -> T {
            do { return try step(&reader) } catch let error as BinaryReadError { throw fail("truncated \(what)", at: error.offset) }
        }
        func varint() throws -> UInt64 {
            var result: UInt64 = 0
            for shift in stride(from: 0, to: 64, by: 7) {
                let byte = try read("varint") { try $0.u8() }
                result |= UInt64(byte & 0x7F) << UInt64(shift)
                if byte & 0x80 == 0 { return result }
            }
            throw fail("varint longer than 10 bytes")
        }
        while reader.remaining > 0 {
            let at = reader.position
            let key = try varint()
            let field = Int(key >> 3), wire = Int(key & 7)
            switch wire {
            case 0: try body(field, wire, .varint(try varint()), base + at)
            case 1: try body(field, wire, .fixed64(try read("fixed64") { try $0.u64() }), base + at)
            case 2:
                let length = try varint()
                guard length <= UInt64(reader.remaining) else { throw fail("length \(length) beyond the message") }
                let start = reader.position
                try body(field, wire, .bytes(try read("bytes") { try $0.slice(Int(length)) }), base + start)
            case 5: try body(field, wire, .fixed32(try read("fixed32") { try $0.u32() }), base + at)
            default: throw fail("unsupported wire type \(wire)")
            }
        }
    }
}
