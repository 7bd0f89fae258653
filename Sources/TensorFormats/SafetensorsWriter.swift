// Streams a safetensors file: layout and header first, then tensor bytes by positioned writes into a temp
// file that becomes the final name only after fsync + rename.
/// A tensor to be written: its name, element type and shape (PyTorch order).
public struct TensorSpec: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]

    public init(name: String, dtype: SafetensorsDType, shape: [Int]) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
    }

    public var elementCount: Int { shape.reduce(1, *) }
    /// Byte size; nil for shapes whose size overflows or leaves a partial byte.
    public var byteCount: Int? {
        var count = 1
        for dim in shape {
            let (p, o) = count.multipliedReportingOverflow(by: dim)
            guard !o, dim >= 0 else { return nil }
            count = p
        }
        return dtype.byteCount(elements: count)
    }
}

/// Writes one safetensors file. Create it with every tensor's spec (the layout is fixed up front), fill each
/// tensor with `write`, then `finish()`. Tensors never written read back as zeros (the file is pre-sized, and
/// sparse where the filesystem allows). Until `finish()` the data lives under a temporary name.
public final class SafetensorsWriter {
    public let path: String
    public let header: SafetensorsHeader
    private let file: StagedFile
    private let slots: [String: (begin: Int, end: Int)]

    public var temporaryPath: String { file.temporaryPath }

    /// Computes the layout, writes the header and sizes the temp file.
    public init(path: String, tensors: [TensorSpec], metadata: [String: String] = [:]) throws(SafetensorsError) {
        self.path = path

        var object = JSONObject()
        if !metadata.isEmpty {
            var meta = JSONObject()
            for key in metadata.keys.sorted() { meta[key] = .string(metadata[key] ?? "") }
            object["__metadata__"] = .object(meta)
        }
        var cursor = 0
        var infos: [TensorInfo] = []
        var slots: [String: (Int, Int)] = [:]
        for spec in tensors {
            guard let size = spec.byteCount else {
                throw .writeFailed(
                    file: path, reason: "tensor \"\(spec.name)\" has an invalid shape \(spec.shape) for \(spec.dtype.rawValue)")
            }
            guard slots[spec.name] == nil, spec.name != "__metadata__" else {
                throw .duplicateTensor(file: path, tensor: spec.name, byteOffset: 0)
            }
            object[spec.name] = .object(
                JSONObject([
                    ("dtype", .string(spec.dtype.rawValue)),
                    ("shape", .array(spec.shape.map { .integer(Int64($0)) })),
                    ("data_offsets", .array([.integer(Int64(cursor)), .integer(Int64(cursor + size))])),
                ]))
            slots[spec.name] = (cursor, cursor + size)
            infos.append(TensorInfo(name: spec.name, dtype: spec.dtype, shape: spec.shape, dataBegin: cursor, dataEnd: cursor + size))
            cursor += size
        }
        var json = Array(JSONValue.object(object).serialized().utf8)
        while json.count % 8 != 0 { json.append(0x20) }  // pad with spaces so data starts 8-byte aligned
        header = SafetensorsHeader(tensors: infos, metadata: metadata, headerLength: json.count)
        self.slots = slots

        do throws(FileIOError) { file = try StagedFile(path: path, size: 8 + json.count + cursor) } catch { throw .io(error) }
        let prefix = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) }
        do throws(FileIOError) { try file.write(prefix + json, at: 0) } catch {
            file.abandon()
            throw .io(error)
        }
    }

    /// Absolute file offset of the first byte of `name`'s data.
    public func fileOffset(of name: String) -> Int? { slots[name].map { header.dataStart + $0.begin } }

    /// Writes `bytes` into tensor `name` starting `offset` bytes into its data.
    public func write(_ name: String, bytes: UnsafeRawBufferPointer, at offset: Int = 0) throws(SafetensorsError) {
        guard let slot = slots[name] else { throw .tensorNotFound(file: path, tensor: name) }
        guard offset >= 0, offset + bytes.count <= slot.end - slot.begin else {
            throw .writeFailed(file: path, reason: "write of \(bytes.count) bytes at \(offset) overruns tensor \"\(name)\"")
        }
        do throws(FileIOError) { try file.write(bytes, at: header.dataStart + slot.begin + offset) } catch { throw .io(error) }
    }

    /// Convenience for byte arrays.
    public func write(_ name: String, bytes: [UInt8], at offset: Int = 0) throws(SafetensorsError) {
        let result: Result<Void, SafetensorsError> = bytes.withUnsafeBytes { buffer in
            do throws(SafetensorsError) { try write(name, bytes: buffer, at: offset); return .success(()) } catch { return .failure(error) }
        }
        try result.get()
    }

    /// fsyncs the data, renames the temp file to `path`, and fsyncs the directory.
    public func finish() throws(SafetensorsError) {
        do throws(FileIOError) { try file.finish() } catch { throw .io(error) }
    }

    /// Removes the temp file; the final name is never created.
    public func abandon() { file.abandon() }
}
