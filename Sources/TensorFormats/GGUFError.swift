// Everything that can be wrong with a GGUF file, each naming file, tensor or key, and byte offset.

public enum GGUFError: Error, Sendable, Equatable {
    case io(FileIOError)
    case truncated(file: String, byteOffset: Int, needed: Int)
    case badMagic(file: String)
    case unsupportedVersion(file: String, version: UInt32)
    case countTooLarge(file: String, byteOffset: Int, what: String, count: UInt64)
    case invalidKey(file: String, byteOffset: Int, reason: String)
    case duplicateKey(file: String, key: String, byteOffset: Int)
    case invalidValueType(file: String, key: String, byteOffset: Int, type: UInt32)
    case invalidString(file: String, byteOffset: Int, reason: String)
    case invalidAlignment(file: String, value: String)
    case invalidTensor(file: String, tensor: String, byteOffset: Int, reason: String)
    case duplicateTensor(file: String, tensor: String, byteOffset: Int)
    case unsupportedTensorType(file: String, tensor: String, byteOffset: Int, type: UInt32)
    case misplacedData(file: String, tensor: String, byteOffset: Int, expected: Int, found: Int)
    case dataBeyondFile(file: String, tensor: String, end: Int, fileSize: Int)
    case writeFailed(file: String, reason: String)
}

extension GGUFError: CustomStringConvertible {
    public var description: String {
        switch self {
        case .io(let error): return error.description
        case let .truncated(file, offset, needed): return "\(file): byte \(offset): file ends, \(needed) more bytes needed"
        case let .badMagic(file): return "\(file): byte 0: not a GGUF file (magic is not \"GGUF\")"
        case let .unsupportedVersion(file, version): return "\(file): byte 4: GGUF version \(version) is not supported (2 or 3)"
        case let .countTooLarge(file, offset, what, count):
            return "\(file): byte \(offset): \(what) count \(count) is implausible for this file"
        case let .invalidKey(file, offset, reason): return "\(file): byte \(offset): invalid key: \(reason)"
        case let .duplicateKey(file, key, offset): return "\(file): byte \(offset): key \"\(key)\" appears twice"
        case let .invalidValueType(file, key, offset, type): return "\(file): byte \(offset): key \"\(key)\" has unknown value type \(type)"
        case let .invalidString(file, offset, reason): return "\(file): byte \(offset): invalid string: \(reason)"
        case let .invalidAlignment(file, value): return "\(file): general.alignment \(value) must be a UINT32 power of two"
        case let .invalidTensor(file, tensor, offset, reason): return "\(file): tensor \"\(tensor)\" at byte \(offset): \(reason)"
        case let .duplicateTensor(file, tensor, offset): return "\(file): byte \(offset): tensor \"\(tensor)\" is named twice"
        case let .unsupportedTensorType(file, tensor, offset, type):
            return "\(file): tensor \"\(tensor)\" at byte \(offset): ggml type \(type) is not supported"
        case let .misplacedData(file, tensor, offset, expected, found):
            return
                """
                \(file): tensor \"\(tensor)\" at byte \(offset): data offset \(found), ggml requires \(expected) (tensor-info order, \
                aligned, no gaps)
                """
        case let .dataBeyondFile(file, tensor, end, size):
            return "\(file): tensor \"\(tensor)\": data ends at byte \(end), beyond the \(size)-byte file"
        case let .writeFailed(file, reason): return "\(file): \(reason)"
        }
    }
}
