// The one bounds-checked little-endian reader every binary format goes through (GGUF headers, shard parts, expert packs,
// base-logits records, legacy imatrix files, SentencePiece models, numpy headers): every length is checked against what
// is left before anything is read or allocated, and a failure says where.

/// A read past the end, or a length that cannot fit: the byte offset where it happened and how many bytes were needed.
public struct BinaryReadError: Error, Sendable, Equatable {
    public let offset: Int
    public let needed: Int
    public let available: Int
}

public struct BinaryReader {
    public let bytes: UnsafeRawBufferPointer
    public var position: Int

    public init(_ bytes: UnsafeRawBufferPointer, at position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    /// Bytes left after `position`.
    public var remaining: Int { max(0, bytes.count - position) }

    /// Advances over `count` bytes and returns where they start.
    public mutating func take(_ count: Int) throws(BinaryReadError) -> Int {
        guard count >= 0, count <= remaining else { throw BinaryReadError(offset: position, needed: count, available: remaining) }
        defer { position += count }
        return position
    }

    /// A length field that must fit what is left (as `Int`), checked before it is used to read or allocate.
    public mutating func length<T: FixedWidthInteger>(_: T.Type, elementSize: Int = 1) throws(BinaryReadError) -> Int {
        let at = position
        let raw = try integer(T.self)
        guard raw >= 0, let count = Int(exactly: raw), count <= remaining / max(elementSize, 1) else {
            throw BinaryReadError(offset: at, needed: Int(clamping: raw) &* max(elementSize, 1), available: remaining)
        }
        return count
    }

    public mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(BinaryReadError) -> T {
        T(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(MemoryLayout<T>.size), as: T.self))
    }

    public mutating func u8() throws(BinaryReadError) -> UInt8 { try integer(UInt8.self) }
    public mutating func u32() throws(BinaryReadError) -> UInt32 { try integer(UInt32.self) }
    public mutating func u64() throws(BinaryReadError) -> UInt64 { try integer(UInt64.self) }
    public mutating func i32() throws(BinaryReadError) -> Int32 { try integer(Int32.self) }
    public mutating func f32() throws(BinaryReadError) -> Float { Float(bitPattern: try u32()) }

    /// The next `count` bytes (a view, valid while `bytes` is).
    public mutating func slice(_ count: Int) throws(BinaryReadError) -> UnsafeRawBufferPointer {
        let start = try take(count)
        return UnsafeRawBufferPointer(rebasing: bytes[start..<(start + count)])
    }

    /// True when the next bytes are `magic`; advances over them only then.
    public mutating func expect(_ magic: [UInt8]) -> Bool {
        guard remaining >= magic.count, Array(bytes[position..<(position + magic.count)]) == magic else { return false }
        position += magic.count
        return true
    }
}
