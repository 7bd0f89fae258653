// Parses and validates a safetensors header: the 8-byte length, the JSON table, and every tensor's extent.

/// One tensor's entry in a safetensors header.
public struct TensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    /// Shape, outermost first (PyTorch order).
    public let shape: [Int]
    /// Byte range within the data section (which starts right after the header).
    public let dataBegin: Int
    public let dataEnd: Int

    public init(name: String, dtype: SafetensorsDType, shape: [Int], dataBegin: Int, dataEnd: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.dataBegin = dataBegin
        self.dataEnd = dataEnd
    }

    /// Number of elements (checked at parse time not to overflow).
    public var elementCount: Int { shape.reduce(1, *) }
    public var byteCount: Int { dataEnd - dataBegin }
}

/// A validated safetensors header.
public struct SafetensorsHeader: Sendable {
    /// The largest header we accept, as the reference implementation does.
    public static let maximumHeaderLength = 100_000_000

    /// Tensors in data order (ascending `dataBegin`).
    public let tensors: [TensorInfo]
    /// `__metadata__` string pairs (empty when absent).
    public let metadata: [String: String]
    /// Byte length of the JSON header (excluding the 8-byte length prefix).
    public let headerLength: Int
    /// Absolute file offset where tensor data begins (8 + headerLength).
    public var dataStart: Int { 8 + headerLength }

    /// Parses the header at the start of `bytes` (at least the whole header must be present) for a file of
    /// `fileSize` bytes. Every violation throws a `SafetensorsError` naming `file`, the tensor and a byte offset.
    public static func parse(_ bytes: UnsafeRawBufferPointer, fileSize: Int, file: String) throws(SafetensorsError) -> SafetensorsHeader {
        var reader = BinaryReader(bytes)
        guard fileSize >= 8, let declared = try? reader.u64() else { throw .fileTooSmall(file: file, size: fileSize) }
        guard declared <= UInt64(maximumHeaderLength) else {
            throw .headerTooLarge(file: file, length: declared, limit: maximumHeaderLength)
        }
        let length = Int(declared)
        guard length <= fileSize - 8, let json = try? reader.slice(length) else {
            throw .headerBeyondFile(file: file, length: declared, fileSize: fileSize)
        }
        let root: JSONValue
        do throws(JSONError) {
            root = try JSONParser.parse(json)
        } catch {
            if let name = error.duplicateKey { throw .duplicateTensor(file: file, tensor: name, byteOffset: 8 + error.offset) }
            throw .headerNotJSON(file: file, byteOffset: 8 + error.offset, reason: error.reason)
        }
        guard let object = root.objectValue else { throw .headerNotObject(file: file) }
        let locate = { (name: String) in 8 + offsetOfKey(name, in: json) }

        var metadata: [String: String] = [:]
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(object.count)
        for (name, entry) in object.pairs {
            if name == "__metadata__" {
                guard let pairs = entry.objectValue else {
                    throw .invalidMetadata(file: file, byteOffset: locate(name), reason: "is not an object")
                }
                for (key, value) in pairs.pairs {
                    guard let text = value.stringValue else {
                        throw .invalidMetadata(
                            file: file, byteOffset: locate(name), reason: "value of \"\(key)\" is a \(value.kindName), not a string")
                    }
                    metadata[key] = text
                }
                continue
            }
            tensors.append(try parseEntry(name: name, entry: entry, file: file, at: { locate(name) }))
        }
        tensors.sort { ($0.dataBegin, $0.dataEnd) < ($1.dataBegin, $1.dataEnd) }
        try checkCoverage(tensors, dataSize: fileSize - 8 - length, dataStart: 8 + length, file: file)
        return SafetensorsHeader(tensors: tensors, metadata: metadata, headerLength: length)
    }

    // MARK: - Entries

    private static func parseEntry(
        name: String, entry: JSONValue, file: String, at locate: () -> Int
    ) throws(SafetensorsError) -> TensorInfo {
        // The entry's byte offset is searched for only when there is an error to report.
        var offset: Int { locate() }
        guard let fields = entry.objectValue else {
            throw .invalidEntry(file: file, tensor: name, byteOffset: offset, reason: "entry is a \(entry.kindName), not an object")
        }
        for key in fields.keys where key != "dtype" && key != "shape" && key != "data_offsets" {
            throw .invalidEntry(file: file, tensor: name, byteOffset: offset, reason: "unknown field \"\(key)\"")
        }
        guard let dtypeName = fields["dtype"]?.stringValue else {
            throw .invalidEntry(file: file, tensor: name, byteOffset: offset, reason: "missing or non-string \"dtype\"")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw .unknownDType(file: file, tensor: name, byteOffset: offset, dtype: dtypeName)
        }
        guard let dims = fields["shape"]?.arrayValue else {
            throw .invalidShape(file: file, tensor: name, byteOffset: offset, reason: "missing or not an array")
        }
        var shape: [Int] = []
        var count = 1
        for dim in dims {
            guard case .integer(let raw) = dim, let value = Int(exactly: raw) else {
                throw .invalidShape(file: file, tensor: name, byteOffset: offset, reason: "dimension \(dim.serialized()) is not an integer")
            }
            guard value >= 0 else {
                throw .invalidShape(file: file, tensor: name, byteOffset: offset, reason: "negative dimension \(value)")
            }
            let (product, overflow) = count.multipliedReportingOverflow(by: value)
            guard !overflow else {
                throw .invalidShape(file: file, tensor: name, byteOffset: offset, reason: "element count overflows")
            }
            count = product
            shape.append(value)
        }
        guard let expected = dtype.byteCount(elements: count) else {
            throw .invalidShape(
                file: file, tensor: name, byteOffset: offset,
                reason: "\(count) elements of \(dtype.rawValue) is not a whole number of bytes")
        }
        guard let offsets = fields["data_offsets"]?.arrayValue, offsets.count == 2,
            case .integer(let rawBegin) = offsets[0], case .integer(let rawEnd) = offsets[1],
            let begin = Int(exactly: rawBegin), let end = Int(exactly: rawEnd), begin >= 0, end >= begin
        else {
            throw .invalidEntry(
                file: file, tensor: name, byteOffset: offset,
                reason: "data_offsets must be two non-negative integers [begin, end] with begin ≤ end")
        }
        guard end - begin == expected else {
            throw .sizeMismatch(file: file, tensor: name, byteOffset: offset, expected: expected, found: end - begin)
        }
        return TensorInfo(name: name, dtype: dtype, shape: shape, dataBegin: begin, dataEnd: end)
    }

    // MARK: - Coverage: inside, no overlap, no holes

    private static func checkCoverage(_ sorted: [TensorInfo], dataSize: Int, dataStart: Int, file: String) throws(SafetensorsError) {
        var cursor = 0
        var previous: String? = nil
        for tensor in sorted {
            let absolute = dataStart + tensor.dataBegin
            guard tensor.dataEnd <= dataSize else {
                throw .outOfBounds(file: file, tensor: tensor.name, byteOffset: absolute, end: tensor.dataEnd, dataSize: dataSize)
            }
            if tensor.dataBegin < cursor, let previous {
                throw .overlap(file: file, tensor: tensor.name, byteOffset: absolute, previous: previous)
            }
            if tensor.dataBegin > cursor {
                throw .hole(file: file, tensor: tensor.name, byteOffset: absolute, gapBytes: tensor.dataBegin - cursor)
            }
            cursor = tensor.dataEnd
            if tensor.byteCount > 0 || previous == nil { previous = tensor.name }
        }
        if cursor != dataSize {
            throw .trailingData(file: file, byteOffset: dataStart + cursor, bytes: dataSize - cursor)
        }
    }

    /// Finds where `"name"` first appears in the header JSON (error path only; 0 if not found verbatim).
    static func offsetOfKey(_ name: String, in json: UnsafeRawBufferPointer) -> Int {
        let needle = Array(("\"" + name + "\"").utf8)
        guard !needle.isEmpty, json.count >= needle.count else { return 0 }
        var i = 0
        while i + needle.count <= json.count {
            if json[i] == needle[0] {
                var match = true
                for j in 1..<needle.count where json[i + j] != needle[j] { match = false; break }
                if match { return i }
            }
            i += 1
        }
        return 0
    }
}
