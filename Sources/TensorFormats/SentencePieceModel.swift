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

    static func fields(_ bytes: UnsafeRawBufferPointer, file: String, base: Int = 0,
                       _ body: (Int, Int, Value, Int) throws -> Void) throws {
        var position = 0
        func fail(_ reason: String) -> TokenizerFileError { .invalid(file: file, byteOffset: base + position, reason: reason) }
        func varint() throws -> UInt64 {
            var result: UInt64 = 0
            for shift in stride(from: 0, to: 64, by: 7) {
                guard position < bytes.count else { throw fail("truncated varint") }
                let byte = bytes[position]
                position += 1
                result |= UInt64(byte & 0x7F) << UInt64(shift)
                if byte & 0x80 == 0 { return result }
            }
            throw fail("varint longer than 10 bytes")
        }
        while position < bytes.count {
            let at = position
            let key = try varint()
            let field = Int(key >> 3), wire = Int(key & 7)
            switch wire {
            case 0: try body(field, wire, .varint(try varint()), base + at)
            case 1:
                guard bytes.count - position >= 8 else { throw fail("truncated fixed64") }
                let v = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt64.self))
                position += 8
                try body(field, wire, .fixed64(v), base + at)
            case 2:
                let length = try varint()
                guard length <= UInt64(bytes.count - position) else { throw fail("length \(length) beyond the message") }
                let start = position
                position += Int(length)
                try body(field, wire, .bytes(UnsafeRawBufferPointer(rebasing: bytes[start..<position])), base + start)
            case 5:
                guard bytes.count - position >= 4 else { throw fail("truncated fixed32") }
                let v = UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: UInt32.self))
                position += 4
                try body(field, wire, .fixed32(v), base + at)
            default: throw fail("unsupported wire type \(wire)")
            }
        }
    }
}
