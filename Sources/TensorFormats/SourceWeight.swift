// A logical weight of a checkpoint, however it is stored, decoded to f32 one row range at a time.
import QuantKernels

/// How a logical weight is stored on disk.
public enum WeightEncoding: Sendable {
    /// Floats stored directly (F32, F16, BF16, F64, or FP8 without scales).
    case plain(TensorLocation)
    /// FP8 E4M3 with F32 `weight_scale_inv` block scales: w = fp8 × scale_inv[r / blockRows][c / blockColumns].
    case fp8Block(weight: TensorLocation, scaleInverse: TensorLocation, blockRows: Int, blockColumns: Int)
    /// compressed-tensors pack-quantized integers: w = (q − zp) × scale[r][c / groupSize].
    case packedInteger(packed: TensorLocation, scale: TensorLocation, zeroPoint: TensorLocation?, bits: Int, groupSize: Int)
    /// gpt-oss MXFP4: `_blocks` [..., rows, columns/32, 16] u8 (element 2j in the low nibble of byte j, 2j+1 in the
    /// high one) and `_scales` [..., rows, columns/32] E8M0: w = E2M1(code) × 2^(scale − 127).
    case mxfp4(blocks: TensorLocation, scales: TensorLocation)
}

/// A logical weight (`….weight`, or a plain tensor) with its logical shape `[rows, columns]`
/// (rows = product of leading dimensions; 1-D tensors are one row).
public struct SourceWeight: Sendable {
    public let name: String
    public let shape: [Int]
    public let encoding: WeightEncoding
    /// Stored tensors that belong to this weight but are not read to decode it (`weight_shape`, `weight_g_idx`).
    public let metadataTensors: [TensorLocation]

    public init(name: String, shape: [Int], encoding: WeightEncoding, metadataTensors: [TensorLocation] = []) {
        self.name = name
        self.shape = shape
        self.encoding = encoding
        self.metadataTensors = metadataTensors
    }

    public var rows: Int { shape.count <= 1 ? 1 : shape.dropLast().reduce(1, *) }
    public var columns: Int { shape.last ?? 1 }
    public var elementCount: Int { shape.reduce(1, *) }

    /// Every on-disk tensor of this weight: the ones decoding reads, then metadata companions.
    public var storedTensors: [TensorLocation] {
        switch encoding {
        case .plain(let t): [t]
        case let .fp8Block(w, s, _, _): [w, s]
        case let .packedInteger(p, s, z, _, _): [p, s] + (z.map { [$0] } ?? []) + metadataTensors
        case let .mxfp4(b, s): [b, s]
        }
    }

    /// The mapped file regions holding this weight's stored tensors.
    public var regions: [(file: MappedFile, bytes: Range<Int>)] {
        storedTensors.map { tensor in
            let start = tensor.file.fileOffset(of: tensor.info)
            return (tensor.file.mapping, start..<(start + tensor.info.byteCount))
        }
    }

    /// Releases the mapped pages of every stored tensor of this weight (after it has been consumed).
    public func releasePages() {
        for tensor in storedTensors {
            let start = tensor.file.fileOffset(of: tensor.info)
            tensor.file.mapping.releasePages(in: start..<(start + tensor.info.byteCount))
        }
    }

    /// Starts reading `rows` of the main stored tensor ahead of use (see MappedFile.prefetch).
    public func prefetch(rows: Range<Int>) {
        guard case .plain(let tensor) = encoding, self.rows > 0 else { return }
        let rowBytes = tensor.info.byteCount / self.rows
        let start = tensor.file.fileOffset(of: tensor.info)
        tensor.file.mapping.prefetch(in: (start + rows.lowerBound * rowBytes)..<(start + min(rows.upperBound, self.rows) * rowBytes))
    }

    /// Releases the mapped pages of `rows` of the main stored tensor (scales and companions stay until
    /// `releasePages()`), so a streaming reader's RSS stays near one chunk even for one huge tensor.
    public func releasePages(rows: Range<Int>) {
        let tensor: TensorLocation
        switch encoding {
        case .plain(let t): tensor = t
        case .fp8Block(let w, _, _, _): tensor = w
        case .packedInteger(let p, _, _, _, _): tensor = p
        case .mxfp4(let b, _): tensor = b
        }
        guard self.rows > 0 else { return }
        let rowBytes = tensor.info.byteCount / self.rows
        let start = tensor.file.fileOffset(of: tensor.info)
        tensor.file.mapping.releasePages(in: (start + rows.lowerBound * rowBytes)..<(start + rows.upperBound * rowBytes))
    }

    /// The files this weight's bytes (and companions) come from.
    private var files: [SafetensorsFile] {
        switch encoding {
        case .plain(let t): [t.file]
        case let .fp8Block(w, s, _, _): [w.file, s.file]
        case let .packedInteger(p, s, z, _, _): [p.file, s.file] + (z.map { [$0.file] } ?? [])
        case let .mxfp4(b, s): [b.file, s.file]
        }
    }

    /// Decodes `rows` into `output` (row-major, `rows.count × columns` floats). Reads only those rows' bytes.
    public func decodeRows(_ rows: Range<Int>, into output: UnsafeMutableBufferPointer<Float>) throws(FormatError) {
        guard rows.lowerBound >= 0, rows.upperBound <= self.rows else {
            throw .rowsOutOfRange(tensor: name, rows: rows, rowCount: self.rows)
        }
        let needed = rows.count * columns
        guard output.count >= needed, let out = output.baseAddress else {
            if needed == 0 { return }
            throw .bufferTooSmall(tensor: name, needed: needed, available: output.count)
        }
        do throws(FileIOError) { for file in files { try file.mapping.checkIntact() } } catch { throw .io(error) }
        switch encoding {
        case .plain(let tensor):
            guard let kind = tensor.info.dtype.storageFloat, let base = tensor.data.baseAddress else {
                throw .unsupportedDType(
                    file: tensor.file.path, tensor: tensor.name, byteOffset: tensor.file.fileOffset(of: tensor.info),
                    dtype: tensor.info.dtype.rawValue)
            }
            RowConversion.decode(kind, from: base + rows.lowerBound * columns * kind.byteWidth, count: needed, into: out)
        case let .fp8Block(weight, scale, blockRows, blockColumns):
            try FP8BlockDecoder(weight: weight, scaleInverse: scale, blockRows: blockRows, blockColumns: blockColumns, columns: columns)
                .decode(rows, into: out)
        case let .packedInteger(packed, scale, zeroPoint, bits, groupSize):
            try PackedIntegerDecoder(packed: packed, scale: scale, zeroPoint: zeroPoint, bits: bits, groupSize: groupSize, columns: columns)
                .decode(rows, into: out)
        case let .mxfp4(blocks, scales):
            guard let blockBase = blocks.data.baseAddress, let scaleBase = scales.data.baseAddress else { return }
            let groups = columns / 32
            for (i, r) in rows.enumerated() {
                let row = out + i * columns
                for g in 0..<groups {
                    let scale = Float(
                        sign: .plus, exponent: Int(scaleBase.load(fromByteOffset: r * groups + g, as: UInt8.self)) - 127, significand: 1)
                    let bytes = blockBase + (r * groups + g) * 16
                    for j in 0..<16 {
                        let byte = bytes.load(fromByteOffset: j, as: UInt8.self)
                        row[32 * g + 2 * j] = E2M1.values[Int(byte & 0x0F)] * scale
                        row[32 * g + 2 * j + 1] = E2M1.values[Int(byte >> 4)] * scale
                    }
                }
            }
        }
    }

    /// Decodes the whole weight (for small tensors and tests).
    public func decodeAll() throws(FormatError) -> [Float] {
        var values = [Float](repeating: 0, count: elementCount)
        let result: Result<Void, FormatError> = values.withUnsafeMutableBufferPointer { buffer in
            do throws(FormatError) { try decodeRows(0..<rows, into: buffer); return .success(()) } catch { return .failure(error) }
        }
        try result.get()
        return values
    }
}

/// The 4-bit E2M1 values MXFP4 codes stand for (sign in bit 3).
enum E2M1 {
    static let values: [Float] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6]
}

// MARK: - FP8 block scales

struct FP8BlockDecoder {
    let weight: TensorLocation
    let scaleInverse: TensorLocation
    let blockRows: Int
    let blockColumns: Int
    let columns: Int

    func decode(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws(FormatError) {
        let scaleColumns = (columns + blockColumns - 1) / blockColumns
        guard let scaleKind = scaleInverse.info.dtype.storageFloat, scaleKind != .e4m3, scaleKind != .e5m2,
            let scaleBase = scaleInverse.data.baseAddress, let weightBase = weight.data.baseAddress
        else {
            throw .unsupportedDType(
                file: scaleInverse.file.path, tensor: scaleInverse.name, byteOffset: scaleInverse.file.fileOffset(of: scaleInverse.info),
                dtype: scaleInverse.info.dtype.rawValue)
        }
        var scales = [Float](repeating: 0, count: scaleColumns)
        for (i, r) in rows.enumerated() {
            let row = out + i * columns
            RowConversion.decode(.e4m3, from: weightBase + r * columns, count: columns, into: row)
            RowConversion.decode(
                scaleKind, from: scaleBase + (r / blockRows) * scaleColumns * scaleKind.byteWidth, count: scaleColumns, into: &scales)
            for block in 0..<scaleColumns {
                let s = scales[block]
                for c in (block * blockColumns)..<min(columns, (block + 1) * blockColumns) { row[c] *= s }
            }
        }
    }
}

// MARK: - compressed-tensors packed integers

struct PackedIntegerDecoder {
    let packed: TensorLocation
    let scale: TensorLocation
    let zeroPoint: TensorLocation?
    let bits: Int
    let groupSize: Int
    let columns: Int

    func decode(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws(FormatError) {
        let wordsPerRow = packed.info.shape.last ?? 0
        let groups = scale.info.shape.last ?? 0
        let offset = Int32(1 << (bits - 1))
        guard let scaleKind = scale.info.dtype.storageFloat, let scaleBase = scale.data.baseAddress,
            let packedBase = packed.data.baseAddress
        else {
            throw .unsupportedDType(
                file: scale.file.path, tensor: scale.name, byteOffset: scale.file.fileOffset(of: scale.info),
                dtype: scale.info.dtype.rawValue)
        }
        var scales = [Float](repeating: 0, count: groups)
        for (i, r) in rows.enumerated() {
            let row = out + i * columns
            RowConversion.decode(scaleKind, from: scaleBase + r * groups * scaleKind.byteWidth, count: groups, into: &scales)
            let words = packedBase + r * wordsPerRow * 4
            for c in 0..<columns {
                let q = GroupwiseInteger.code(words, index: c, bits: bits)
                let g = c / groupSize
                var zp: Int32 = 0
                if let zeroPoint, let zpBase = zeroPoint.data.baseAddress {
                    // Zero points are packed along dim 0: element (r, g) is code r of column g.
                    let zpColumns = zeroPoint.info.shape.last ?? 1
                    let bit = r * bits
                    let word = (bit >> 5) * zpColumns + g
                    let shift = bit & 31
                    let raw = UInt32(littleEndian: zpBase.loadUnaligned(fromByteOffset: word * 4, as: UInt32.self)) >> shift
                    zp = Int32(raw & ((1 << bits) - 1)) - offset
                }
                row[c] = Float(q - zp) * scales[g]
            }
        }
    }
}
