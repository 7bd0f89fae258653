// The element types of the safetensors format, declared once: name, width, and how f32 decoders read them.
import QuantKernels

/// A safetensors element type (`"dtype"` in the header), by its format-native name.
public enum SafetensorsDType: String, Sendable, CaseIterable, Codable {
    case bool = "BOOL"
    case f4 = "F4"  // float4_e2m1, two per byte
    case f6e2m3 = "F6_E2M3"  // 6-bit floats, packed
    case f6e3m2 = "F6_E3M2"
    case u8 = "U8"
    case i8 = "I8"
    case f8e5m2 = "F8_E5M2"
    case f8e4m3 = "F8_E4M3"
    case f8e8m0 = "F8_E8M0"
    case i16 = "I16"
    case u16 = "U16"
    case f16 = "F16"
    case bf16 = "BF16"
    case i32 = "I32"
    case u32 = "U32"
    case f32 = "F32"
    case c64 = "C64"
    case f64 = "F64"
    case i64 = "I64"
    case u64 = "U64"

    /// Storage bits per element.
    public var bitsPerElement: Int {
        switch self {
        case .f4: 4
        case .f6e2m3, .f6e3m2: 6
        case .bool, .u8, .i8, .f8e5m2, .f8e4m3, .f8e8m0: 8
        case .i16, .u16, .f16, .bf16: 16
        case .i32, .u32, .f32: 32
        case .c64, .f64, .i64, .u64: 64
        }
    }

    /// Exact byte size of `count` elements, or nil when sub-byte packing leaves a partial byte or on overflow.
    public func byteCount(elements count: Int) -> Int? {
        let (bits, overflow) = count.multipliedReportingOverflow(by: bitsPerElement)
        guard !overflow, bits % 8 == 0 else { return nil }
        return bits / 8
    }

    /// The float storage kind f32 decoders use, when the type holds real numbers we decode directly.
    public var storageFloat: StorageFloat? {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        case .f64: .f64
        case .f8e4m3: .e4m3
        case .f8e5m2: .e5m2
        default: nil
        }
    }

    /// True for floating-point element types.
    public var isFloatingPoint: Bool {
        switch self {
        case .f4, .f6e2m3, .f6e3m2, .f8e5m2, .f8e4m3, .f8e8m0, .f16, .bf16, .f32, .f64, .c64: true
        default: false
        }
    }
}
