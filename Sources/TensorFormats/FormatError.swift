// Errors from decoding tensors and reading format configs (beyond the safetensors container itself).

public enum FormatError: Error, Sendable, Equatable {
    case invalidConfig(field: String, reason: String)
    case unsupportedDType(file: String, tensor: String, byteOffset: Int, dtype: String)
    case companionShape(file: String, tensor: String, byteOffset: Int, expected: [Int], found: [Int])
    case missingCompanion(file: String, tensor: String, companion: String)
    case rowsOutOfRange(tensor: String, rows: Range<Int>, rowCount: Int)
    case bufferTooSmall(tensor: String, needed: Int, available: Int)
    case notQuantizedByConfig(file: String, tensor: String)
    case container(SafetensorsError)
    /// A source file that changed while it was read.
    case io(FileIOError)
}

extension FormatError: CustomStringConvertible {
    public var description: String {
        switch self {
        case let .invalidConfig(field, reason): return "config.json: \(field): \(reason)"
        case let .unsupportedDType(file, tensor, offset, dtype):
            return "\(file): tensor \"\(tensor)\" at byte \(offset): dtype \(dtype) cannot be decoded to f32 here"
        case let .companionShape(file, tensor, offset, expected, found):
            return "\(file): tensor \"\(tensor)\" at byte \(offset): shape \(found), expected \(expected)"
        case let .missingCompanion(file, tensor, companion):
            return "\(file): tensor \"\(tensor)\" needs its companion \"\(companion)\", which the checkpoint lacks"
        case let .rowsOutOfRange(tensor, rows, count):
            return "tensor \"\(tensor)\": rows \(rows) outside 0..<\(count)"
        case let .bufferTooSmall(tensor, needed, available):
            return "tensor \"\(tensor)\": output buffer holds \(available) floats, \(needed) needed"
        case let .notQuantizedByConfig(file, tensor):
            return "\(file): \"\(tensor)\" is packed, but quantization_config's ignore list excludes it"
        case let .container(error): return error.description
        case let .io(error): return error.description
        }
    }
}
