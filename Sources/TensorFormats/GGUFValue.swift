import QuantKernels
// GGUF metadata values, declared once with their on-disk type codes (formats.md §5.1; ggml docs/gguf.md).

/// GGUF metadata value types, by their format code.
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Byte size of a scalar of this type (nil for string and array).
    public var scalarSize: Int? {
        switch self {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64: 8
        case .string, .array: nil
        }
    }
}

/// One metadata value.
public indirect enum GGUFValue: Sendable, Equatable {
    case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32), float32(Float)
    case bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
    /// A homogeneous array: element type and elements.
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .float32: .float32
        case .bool: .bool
        case .string: .string
        case .uint64: .uint64
        case .int64: .int64
        case .float64: .float64
        case .array: .array
        }
    }

    /// Convenience arrays.
    public static func strings(_ values: [String]) -> GGUFValue { .array(.string, values.map { .string($0) }) }
    public static func int32s(_ values: [Int32]) -> GGUFValue { .array(.int32, values.map { .int32($0) }) }
    public static func float32s(_ values: [Float]) -> GGUFValue { .array(.float32, values.map { .float32($0) }) }

    /// Integer value of any integer-typed scalar.
    public var integerValue: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        default: nil
        }
    }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }

    /// Appends the little-endian encoding (without the type code) to `out`.
    func encode(into out: inout [UInt8]) {
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
        switch self {
        case .uint8(let v): out.append(v)
        case .int8(let v): out.append(UInt8(bitPattern: v))
        case .uint16(let v): append(v)
        case .int16(let v): append(v)
        case .uint32(let v): append(v)
        case .int32(let v): append(v)
        case .float32(let v): append(v.bitPattern)
        case .bool(let v): out.append(v ? 1 : 0)
        case .string(let s): GGUFValue.encodeString(s, into: &out)
        case .uint64(let v): append(v)
        case .int64(let v): append(v)
        case .float64(let v): append(v.bitPattern)
        case .array(let elementType, let elements):
            append(elementType.rawValue)
            append(UInt64(elements.count))
            for element in elements { element.encode(into: &out) }
        }
    }

    static func encodeString(_ s: String, into out: inout [UInt8]) {
        let utf8 = Array(s.utf8)
        withUnsafeBytes(of: UInt64(utf8.count).littleEndian) { out += $0 }
        out += utf8
    }
}

/// A tensor's entry in a GGUF file.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// ggml dimensions, ne0 (contiguous) first.
    public let dimensions: [Int]
    public let type: QuantType
    /// Offset from the start of the data section.
    public let offset: Int

    public init(name: String, dimensions: [Int], type: QuantType, offset: Int) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.offset = offset
    }

    public var elementCount: Int { dimensions.reduce(1, *) }
    /// Bytes of the tensor's data (rows of ne0 values times the other dimensions).
    public var byteCount: Int { (type.rowBytes(width: dimensions.first ?? 1) ?? 0) * dimensions.dropFirst().reduce(1, *) }
}
