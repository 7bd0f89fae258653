// GGUF v3 out: the whole layout (header, tensor infos, aligned offsets) is computed first, then tensor data is
// filled by positioned writes in any order (one expert slice at a time if wanted) into a staged file.
import QuantKernels

/// A tensor to be written: name (< 64 bytes), ggml dimensions (ne0 first), type.
public struct GGUFTensorSpec: Sendable, Equatable {
    public let name: String
    public let dimensions: [Int]
    public let type: QuantType

    public init(name: String, dimensions: [Int], type: QuantType) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
    }
}

/// The complete byte layout of a GGUF file, known before any tensor data exists.
public struct GGUFLayout: Sendable {
    public let header: [UInt8]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute offset of the data section (the header padded to `alignment`).
    public let dataStart: Int
    public let fileSize: Int

    public static let defaultAlignment = 32
    /// ggml rejects tensor names of 64 bytes or more (GGML_MAX_NAME includes the terminator).
    public static let maximumNameBytes = 63

    /// Lays out `metadata` and `tensors`. `general.alignment` is added when `alignment` is not the default.
    public init(
        metadata: [(GGUFKey, GGUFValue)], tensors: [GGUFTensorSpec], alignment: Int = defaultAlignment,
        file: String = "output.gguf"
    ) throws(GGUFError) {
        guard alignment > 0, alignment & (alignment - 1) == 0, alignment % 8 == 0 else {
            throw .invalidAlignment(file: file, value: String(alignment))
        }
        var pairs = metadata.filter { $0.0 != .alignment }
        if alignment != GGUFLayout.defaultAlignment { pairs.append((.alignment, .uint32(UInt32(alignment)))) }
        var keys: Set<GGUFKey> = []
        for (key, _) in pairs where !keys.insert(key).inserted { throw .duplicateKey(file: file, key: key.rawValue, byteOffset: 0) }

        var out: [UInt8] = Array("GGUF".utf8)
        func append<T: FixedWidthInteger>(_ value: T) { withUnsafeBytes(of: value.littleEndian) { out += $0 } }
        append(UInt32(3))
        append(UInt64(tensors.count))
        append(UInt64(pairs.count))
        for (key, value) in pairs {
            GGUFValue.encodeString(key.rawValue, into: &out)
            append(value.type.rawValue)
            value.encode(into: &out)
        }
        var names: Set<String> = []
        var infos: [GGUFTensorInfo] = []
        var cursor = 0
        for spec in tensors {
            guard spec.name.utf8.count <= GGUFLayout.maximumNameBytes else {
                throw .invalidTensor(
                    file: file, tensor: spec.name, byteOffset: 0, reason: "name is \(spec.name.utf8.count) bytes; ggml allows at most 63")
            }
            guard names.insert(spec.name).inserted else { throw .duplicateTensor(file: file, tensor: spec.name, byteOffset: 0) }
            guard (1...4).contains(spec.dimensions.count), spec.dimensions.allSatisfy({ $0 > 0 }),
                let rowBytes = spec.type.rowBytes(width: spec.dimensions[0])
            else {
                throw .invalidTensor(
                    file: file, tensor: spec.name, byteOffset: 0,
                    reason:
                        """
                        dimensions \(spec.dimensions) do not fit \(spec.type.rawValue) (1–4 dims, ne0 a multiple of \
                        \(spec.type.blockSize))
                        """
                )
            }
            let info = GGUFTensorInfo(name: spec.name, dimensions: spec.dimensions, type: spec.type, offset: cursor)
            infos.append(info)
            GGUFValue.encodeString(spec.name, into: &out)
            append(UInt32(spec.dimensions.count))
            for dimension in spec.dimensions { append(UInt64(dimension)) }
            append(spec.type.ggmlTypeID)
            append(UInt64(cursor))
            let size = rowBytes * spec.dimensions.dropFirst().reduce(1, *)
            cursor += (size + alignment - 1) / alignment * alignment
        }
        while out.count % alignment != 0 { out.append(0) }
        header = out
        self.tensors = infos
        self.alignment = alignment
        dataStart = out.count
        // The last tensor is padded too, as ggml's writer does.
        fileSize = out.count + cursor
    }
}

/// Writes one GGUF file from a `GGUFLayout`.
public final class GGUFWriter {
    public let layout: GGUFLayout
    private let file: StagedFile
    private let indexByName: [String: Int]

    /// With `resume`, an existing temp file of the same size is reopened and kept (see `reused`).
    public init(path: String, layout: GGUFLayout, resume: Bool = false) throws(GGUFError) {
        self.layout = layout
        do throws(FileIOError) {
            file = try StagedFile(path: path, size: layout.fileSize, reuse: resume)
            try file.write(layout.header, at: 0)
            // A fresh file is filled front to back: let whole blocks bypass the page cache.
            if !file.reused { file.enableDirectWrites() }
        } catch { throw .io(error) }
        var index: [String: Int] = [:]
        for (i, tensor) in layout.tensors.enumerated() { index[tensor.name] = i }
        indexByName = index
    }

    public var temporaryPath: String { file.temporaryPath }
    /// True when a previous run's temp file was reopened.
    public var reused: Bool { file.reused }

    /// XXH3 of tensor `name`'s bytes as they are in the temp file now.
    public func storedHash(of name: String) throws(GGUFError) -> UInt64 {
        guard let i = indexByName[name] else { throw .writeFailed(file: file.path, reason: "no tensor \"\(name)\"") }
        let start = layout.dataStart + layout.tensors[i].offset
        do throws(FileIOError) { return try file.hash(start..<(start + layout.tensors[i].byteCount)) } catch { throw .io(error) }
    }

    public func syncData() throws(GGUFError) {
        do throws(FileIOError) { try file.syncData() } catch { throw .io(error) }
    }

    /// Leaves the temp file in place for a later resume.
    public func keep() { file.keep() }

    /// Absolute file offset of tensor `name`'s first byte.
    public func fileOffset(of name: String) -> Int? { indexByName[name].map { layout.dataStart + layout.tensors[$0].offset } }

    /// Writes `bytes` into tensor `name` at `offset` bytes from its start (e.g. one expert's slice).
    public func write(_ name: String, bytes: UnsafeRawBufferPointer, at offset: Int = 0) throws(GGUFError) {
        guard let i = indexByName[name] else { throw .writeFailed(file: file.path, reason: "no tensor \"\(name)\" in the layout") }
        let tensor = layout.tensors[i]
        guard offset >= 0, offset + bytes.count <= tensor.byteCount else {
            throw .writeFailed(
                file: file.path,
                reason: "write of \(bytes.count) bytes at \(offset) overruns tensor \"\(name)\" (\(tensor.byteCount) bytes)")
        }
        do throws(FileIOError) { try file.write(bytes, at: layout.dataStart + tensor.offset + offset) } catch { throw .io(error) }
    }

    public func finish() throws(GGUFError) {
        do throws(FileIOError) { try file.finish() } catch { throw .io(error) }
    }

    public func abandon() { file.abandon() }
}
