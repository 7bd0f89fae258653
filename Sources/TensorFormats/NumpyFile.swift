// Writes .npy (NumPy format 1.0) arrays: the interchange for logits and dumped tensors.

public enum NumpyFile {
    /// The little-endian NumPy type string for a safetensors dtype, when NumPy has one (BF16/FP8 are written
    /// as their raw unsigned bit patterns: `<u2` / `|u1`).
    public static func descriptor(for dtype: SafetensorsDType) -> String? {
        switch dtype {
        case .bool: "|b1"
        case .u8, .f8e4m3, .f8e5m2, .f8e8m0: "|u1"
        case .i8: "|i1"
        case .i16: "<i2"
        case .u16, .bf16: "<u2"
        case .f16: "<f2"
        case .i32: "<i4"
        case .u32: "<u4"
        case .f32: "<f4"
        case .i64: "<i8"
        case .u64: "<u8"
        case .f64: "<f8"
        case .c64: "<c8"
        case .f4, .f6e2m3, .f6e3m2: nil
        }
    }

    /// The `'shape': (…)` tuple of a .npy header dict; nil when it is missing or not a tuple of non-negative integers.
    public static func shape(inHeader header: String) -> [Int]? {
        guard let key = header.range(of: "'shape':"), let open = header[key.upperBound...].firstIndex(of: "("),
            let close = header[open...].firstIndex(of: ")")
        else { return nil }
        let inside = header[header.index(after: open)..<close]
        var dims: [Int] = []
        for part in inside.split(separator: ",") {
            let text = String(part.filter { !$0.isWhitespace })
            if text.isEmpty { continue }
            guard let value = Int(text), value >= 0 else { return nil }
            dims.append(value)
        }
        return dims
    }

    /// The header (magic, version, padded dict) for an array of `shape` with type string `descriptor`.
    public static func header(descriptor: String, shape: [Int]) -> [UInt8] {
        let dims = shape.count == 1 ? "\(shape[0])," : shape.map(String.init).joined(separator: ", ")
        var dict = "{'descr': '\(descriptor)', 'fortran_order': False, 'shape': (\(dims)), }"
        let fixed = 10  // magic (6) + version (2) + header length (2)
        while (fixed + dict.utf8.count + 1) % 64 != 0 { dict += " " }
        dict += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let length = UInt16(dict.utf8.count)
        bytes += [UInt8(length & 0xFF), UInt8(length >> 8)]
        return bytes + Array(dict.utf8)
    }

    /// Writes a float32 array.
    public static func write(_ values: [Float], shape: [Int], to path: String) throws(FileIOError) {
        var bytes = header(descriptor: "<f4", shape: shape)
        bytes.reserveCapacity(bytes.count + values.count * 4)
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        try AtomicFile.write(bytes, to: path)
    }

    /// Writes raw little-endian element bytes under a type string.
    public static func write(raw: UnsafeRawBufferPointer, descriptor: String, shape: [Int], to path: String) throws(FileIOError) {
        try AtomicFile.write(header(descriptor: descriptor, shape: shape) + Array(raw), to: path)
    }
}
