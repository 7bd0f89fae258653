// GGUF in: a bounds-checked header parser over the mapped file (every count, length and offset checked,
// ggml's stricter placement rules enforced), metadata in order, tensors as zero-copy views.
import QuantKernels

/// A validated GGUF file.
public final class GGUFFile: Sendable {
    public let path: String
    public let mapping: MappedFile
    public let version: UInt32
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    public let dataStart: Int
    private let tensorIndex: [String: Int]
    private let metadataIndex: [String: Int]

    public init(path: String) throws(GGUFError) {
        self.path = path
        do throws(FileIOError) { mapping = try MappedFile(path: path) } catch { throw .io(error) }
        let parsed = try GGUFFile.parse(mapping.bytes, file: path)
        version = parsed.version
        metadata = parsed.metadata
        tensors = parsed.tensors
        alignment = parsed.alignment
        dataStart = parsed.dataStart
        var t: [String: Int] = [:], m: [String: Int] = [:]
        for (i, tensor) in tensors.enumerated() { t[tensor.name] = i }
        for (i, pair) in metadata.enumerated() { m[pair.key] = i }
        tensorIndex = t
        metadataIndex = m
    }

    public subscript(key: String) -> GGUFValue? { metadataIndex[key].map { metadata[$0].value } }
    public subscript(key: GGUFKey) -> GGUFValue? { self[key.rawValue] }
    /// An architecture-scoped hyper-parameter (`deepseek2.block_count`).
    public subscript(key: ModelKey, architecture architecture: String) -> GGUFValue? { self[key.key(architecture)] }
    public func tensor(named name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// The bytes of a tensor (a view into the mapping).
    public func data(of tensor: GGUFTensorInfo) -> UnsafeRawBufferPointer { mapping.bytes(in: byteRange(of: tensor)) }

    /// Where `tensor`'s data lies in the file.
    public func byteRange(of tensor: GGUFTensorInfo) -> Range<Int> {
        (dataStart + tensor.offset)..<(dataStart + tensor.offset + tensor.byteCount)
    }

    struct Parsed {
        var version: UInt32 = 0
        var metadata: [(key: String, value: GGUFValue)] = []
        var tensors: [GGUFTensorInfo] = []
        var alignment = GGUFLayout.defaultAlignment
        var dataStart = 0
    }

    /// Parses a whole file image. Public for fuzzing; `GGUFFile(path:)` is the usual entry.
    static func parse(_ bytes: UnsafeRawBufferPointer, file: String) throws(GGUFError) -> Parsed {
        var reader = GGUFByteReader(bytes: bytes, file: file)
        var result = Parsed()
        guard bytes.count >= 4, Array(bytes[0..<4]) == Array("GGUF".utf8) else { throw .badMagic(file: file) }
        reader.position = 4
        result.version = try reader.u32()
        guard result.version == 2 || result.version == 3 else { throw .unsupportedVersion(file: file, version: result.version) }
        let tensorCount = try reader.u64(), keyCount = try reader.u64()
        // Each tensor info needs ≥ 24 bytes and each key/value ≥ 13: larger counts cannot fit the file.
        guard tensorCount <= UInt64(bytes.count / 24) else {
            throw .countTooLarge(file: file, byteOffset: 8, what: "tensor", count: tensorCount)
        }
        guard keyCount <= UInt64(bytes.count / 13) else {
            throw .countTooLarge(file: file, byteOffset: 16, what: "key/value", count: keyCount)
        }
        var keys: Set<String> = []
        for _ in 0..<Int(keyCount) {
            let at = reader.position
            let key = try reader.string()
            guard !key.isEmpty, key.utf8.count <= 65_535 else {
                throw .invalidKey(file: file, byteOffset: at, reason: "empty or longer than 65535 bytes")
            }
            guard keys.insert(key).inserted else { throw .duplicateKey(file: file, key: key, byteOffset: at) }
            let typeAt = reader.position
            let rawType = try reader.u32()
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw .invalidValueType(file: file, key: key, byteOffset: typeAt, type: rawType)
            }
            let value = try reader.value(type, key: key, depth: 0)
            if key == GGUFKey.alignment.rawValue {
                guard case .uint32(let a) = value, a > 0, a & (a - 1) == 0 else { throw .invalidAlignment(file: file, value: "\(value)") }
                result.alignment = Int(a)
            }
            result.metadata.append((key, value))
        }
        var names: Set<String> = []
        for _ in 0..<Int(tensorCount) {
            let at = reader.position
            let name = try reader.string()
            guard name.utf8.count <= GGUFLayout.maximumNameBytes else {
                throw .invalidTensor(file: file, tensor: name, byteOffset: at, reason: "name of \(name.utf8.count) bytes (ggml allows 63)")
            }
            guard names.insert(name).inserted else { throw .duplicateTensor(file: file, tensor: name, byteOffset: at) }
            let dimensionCount = try reader.u32()
            guard (1...4).contains(dimensionCount) else {
                throw .invalidTensor(file: file, tensor: name, byteOffset: at, reason: "\(dimensionCount) dimensions (1–4 allowed)")
            }
            var dimensions: [Int] = []
            var elements = 1
            for _ in 0..<dimensionCount {
                let raw = try reader.u64()
                guard raw > 0, raw < UInt64(Int.max), case (let product, false) = elements.multipliedReportingOverflow(by: Int(raw)) else {
                    throw .invalidTensor(file: file, tensor: name, byteOffset: at, reason: "dimension \(raw) is zero or overflows")
                }
                elements = product
                dimensions.append(Int(raw))
            }
            let rawType = try reader.u32()
            guard let type = QuantType(ggmlTypeID: rawType) else {
                throw .unsupportedTensorType(file: file, tensor: name, byteOffset: at, type: rawType)
            }
            guard let rowBytes = type.rowBytes(width: dimensions[0]),
                case (let size, false) = rowBytes.multipliedReportingOverflow(by: elements / dimensions[0]), size < Int.max / 2
            else {
                throw .invalidTensor(
                    file: file, tensor: name, byteOffset: at,
                    reason: "ne0 \(dimensions[0]) is not a multiple of \(type.rawValue)'s block size \(type.blockSize)")
            }
            let offset = try reader.u64()
            guard offset < UInt64(Int.max / 2) else {
                throw .invalidTensor(file: file, tensor: name, byteOffset: at, reason: "offset \(offset) overflows")
            }
            result.tensors.append(GGUFTensorInfo(name: name, dimensions: dimensions, type: type, offset: Int(offset)))
            _ = size
        }
        let alignment = result.alignment
        result.dataStart = (reader.position + alignment - 1) / alignment * alignment
        var expected = 0
        for tensor in result.tensors {
            guard tensor.offset == expected else {
                throw .misplacedData(
                    file: file, tensor: tensor.name, byteOffset: result.dataStart + tensor.offset, expected: expected, found: tensor.offset)
            }
            let end = result.dataStart + tensor.offset + tensor.byteCount
            guard end <= bytes.count else { throw .dataBeyondFile(file: file, tensor: tensor.name, end: end, fileSize: bytes.count) }
            expected += (tensor.byteCount + alignment - 1) / alignment * alignment
        }
        return result
    }
}

// MARK: - Bounds-checked little-endian reading

struct GGUFByteReader {
    var reader: BinaryReader
    let file: String

    init(bytes: UnsafeRawBufferPointer, file: String) {
        reader = BinaryReader(bytes)
        self.file = file
    }

    var bytes: UnsafeRawBufferPointer { reader.bytes }
    var position: Int {
        get { reader.position }
        set { reader.position = newValue }
    }

    /// A BinaryReader step, its failure as GGUF's truncation error.
    private mutating func read<T>(_ body: (inout BinaryReader) throws(BinaryReadError) -> T) throws(GGUFError) -> T {
        do throws(BinaryReadError) { return try body(&reader) } catch {
            throw .truncated(file: file, byteOffset: error.offset, needed: error.needed - error.available)
        }
    }

    mutating func take(_ count: Int) throws(GGUFError) -> Int { try read { r throws(BinaryReadError) in try r.take(count) } }
    mutating func u32() throws(GGUFError) -> UInt32 { try read { r throws(BinaryReadError) in try r.u32() } }
    mutating func u64() throws(GGUFError) -> UInt64 { try read { r throws(BinaryReadError) in try r.u64() } }

    mutating func string() throws(GGUFError) -> String {
        let at = position
        let raw = try read { r throws(BinaryReadError) in try r.slice(try r.length(UInt64.self)) }
        guard let text = String(validating: raw.bindMemory(to: UInt8.self), as: UTF8.self) else {
            throw .invalidString(file: file, byteOffset: at, reason: "not valid UTF-8")
        }
        return text
    }

    mutating func value(_ type: GGUFValueType, key: String, depth: Int) throws(GGUFError) -> GGUFValue {
        func load<T: FixedWidthInteger>(_: T.Type) throws(GGUFError) -> T {
            try read { r throws(BinaryReadError) in try r.integer(T.self) }
        }
        switch type {
        case .uint8: return .uint8(try load(UInt8.self))
        case .int8: return .int8(try load(Int8.self))
        case .uint16: return .uint16(try load(UInt16.self))
        case .int16: return .int16(try load(Int16.self))
        case .uint32: return .uint32(try load(UInt32.self))
        case .int32: return .int32(try load(Int32.self))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self)))
        case .bool:
            let at = position
            let raw = try load(UInt8.self)
            guard raw <= 1 else { throw .invalidKey(file: file, byteOffset: at, reason: "\"\(key)\": bool value \(raw)") }
            return .bool(raw == 1)
        case .string: return .string(try string())
        case .uint64: return .uint64(try load(UInt64.self))
        case .int64: return .int64(try load(Int64.self))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self)))
        case .array:
            let at = position
            guard depth < 4 else { throw .invalidKey(file: file, byteOffset: at, reason: "\"\(key)\": arrays nested too deeply") }
            let rawType = try u32()
            guard let elementType = GGUFValueType(rawValue: rawType) else {
                throw .invalidValueType(file: file, key: key, byteOffset: at, type: rawType)
            }
            let count = try u64()
            let minimumSize = UInt64(elementType.scalarSize ?? 8)
            guard count <= UInt64(bytes.count - position) / minimumSize else {
                throw .countTooLarge(file: file, byteOffset: at, what: "array \"\(key)\"", count: count)
            }
            var elements: [GGUFValue] = []
            elements.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { elements.append(try value(elementType, key: key, depth: depth + 1)) }
            return .array(elementType, elements)
        }
    }
}
