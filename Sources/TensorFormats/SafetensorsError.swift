// Every way a safetensors file or sharded checkpoint can be wrong, each naming file, tensor and byte offset.

/// A typed safetensors failure. `byteOffset` is absolute within `file` (the header starts at byte 8).
public enum SafetensorsError: Error, Sendable, Equatable {
    case io(FileIOError)
    case fileTooSmall(file: String, size: Int)
    case headerTooLarge(file: String, length: UInt64, limit: Int)
    case headerBeyondFile(file: String, length: UInt64, fileSize: Int)
    case headerNotJSON(file: String, byteOffset: Int, reason: String)
    case headerNotObject(file: String)
    case invalidMetadata(file: String, byteOffset: Int, reason: String)
    case invalidEntry(file: String, tensor: String, byteOffset: Int, reason: String)
    case unknownDType(file: String, tensor: String, byteOffset: Int, dtype: String)
    case invalidShape(file: String, tensor: String, byteOffset: Int, reason: String)
    case sizeMismatch(file: String, tensor: String, byteOffset: Int, expected: Int, found: Int)
    case outOfBounds(file: String, tensor: String, byteOffset: Int, end: Int, dataSize: Int)
    case overlap(file: String, tensor: String, byteOffset: Int, previous: String)
    case hole(file: String, tensor: String, byteOffset: Int, gapBytes: Int)
    case trailingData(file: String, byteOffset: Int, bytes: Int)
    case duplicateTensor(file: String, tensor: String, byteOffset: Int)
    case invalidIndex(file: String, byteOffset: Int, reason: String)
    case tensorMissingFromShard(file: String, tensor: String, shard: String)
    case tensorNotIndexed(file: String, tensor: String, shard: String)
    case tensorNotFound(file: String, tensor: String)
    case writeFailed(file: String, reason: String)
}

extension SafetensorsError: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .io(error):
            return error.description
        case let .fileTooSmall(file, size):
            return "\(file): \(size) bytes is too small for a safetensors file (need at least the 8-byte header length)"
        case let .headerTooLarge(file, length, limit):
            return "\(file): byte 0: header length \(length) exceeds the \(limit)-byte limit"
        case let .headerBeyondFile(file, length, fileSize):
            return "\(file): byte 0: header length \(length) exceeds the file size \(fileSize) minus 8"
        case let .headerNotJSON(file, offset, reason):
            return "\(file): byte \(offset): header is not valid JSON: \(reason)"
        case let .headerNotObject(file):
            return "\(file): byte 8: header is not a JSON object"
        case let .invalidMetadata(file, offset, reason):
            return "\(file): byte \(offset): __metadata__ \(reason)"
        case let .invalidEntry(file, tensor, offset, reason):
            return "\(file): tensor \"\(tensor)\" at byte \(offset): \(reason)"
        case let .unknownDType(file, tensor, offset, dtype):
            return "\(file): tensor \"\(tensor)\" at byte \(offset): unknown dtype \"\(dtype)\""
        case let .invalidShape(file, tensor, offset, reason):
            return "\(file): tensor \"\(tensor)\" at byte \(offset): invalid shape: \(reason)"
        case let .sizeMismatch(file, tensor, offset, expected, found):
            return "\(file): tensor \"\(tensor)\" at byte \(offset): data_offsets span \(found) bytes, shape × dtype needs \(expected)"
        case let .outOfBounds(file, tensor, offset, end, dataSize):
            return "\(file): tensor \"\(tensor)\" at byte \(offset): data ends at \(end), beyond the \(dataSize)-byte data section"
        case let .overlap(file, tensor, offset, previous):
            return "\(file): tensor \"\(tensor)\" at byte \(offset): data overlaps tensor \"\(previous)\""
        case let .hole(file, tensor, offset, gap):
            return "\(file): tensor \"\(tensor)\" at byte \(offset): \(gap) unused bytes before this tensor's data"
        case let .trailingData(file, offset, bytes):
            return "\(file): byte \(offset): \(bytes) bytes after the last tensor belong to no tensor"
        case let .duplicateTensor(file, tensor, offset):
            return "\(file): byte \(offset): tensor \"\(tensor)\" is named twice"
        case let .invalidIndex(file, offset, reason):
            return "\(file): byte \(offset): \(reason)"
        case let .tensorMissingFromShard(file, tensor, shard):
            return "\(file): weight_map names \"\(tensor)\" in \(shard), which has no such tensor"
        case let .tensorNotIndexed(file, tensor, shard):
            return "\(file): \(shard) holds \"\(tensor)\", which weight_map does not list"
        case let .tensorNotFound(file, tensor):
            return "\(file): no tensor named \"\(tensor)\""
        case let .writeFailed(file, reason):
            return "\(file): write failed: \(reason)"
        }
    }
}
