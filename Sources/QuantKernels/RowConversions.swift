// Bulk conversions of contiguous little-endian storage to f32, the inner loops of every source decoder.

/// Storage element kinds a row of weights can be decoded from.
public enum StorageFloat: Sendable {
    case f32, f16, bf16, f64, e4m3, e5m2

    /// Bytes per stored element.
    public var byteWidth: Int {
        switch self {
        case .f64: 8
        case .f32: 4
        case .f16, .bf16: 2
        case .e4m3, .e5m2: 1
        }
    }
}

public enum RowConversion {
    /// Converts `count` elements of `kind` starting at `source` (little-endian, any alignment) into `destination`.
    public static func decode(
        _ kind: StorageFloat, from source: UnsafeRawPointer, count: Int,
        into destination: UnsafeMutablePointer<Float>
    ) {
        switch kind {
        case .f32:
            for i in 0..<count {
                destination[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        case .f64:
            for i in 0..<count {
                destination[i] = Float(
                    Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        case .bf16:
            for i in 0..<count {
                destination[i] = BFloat16.toFloat(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .f16:
            for i in 0..<count {
                destination[i] = Half.toFloat(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            }
        case .e4m3:
            let bytes = source.assumingMemoryBound(to: UInt8.self)
            FloatE4M3.table.withUnsafeBufferPointer { table in
                for i in 0..<count { destination[i] = table[Int(bytes[i])] }
            }
        case .e5m2:
            let bytes = source.assumingMemoryBound(to: UInt8.self)
            for i in 0..<count { destination[i] = FloatE5M2.toFloat(bytes[i]) }
        }
    }
}
