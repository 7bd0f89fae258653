// One safetensors file: header parsed eagerly, tensor data as zero-copy views into the mapping.

/// A validated, memory-mapped safetensors file.
public final class SafetensorsFile: Sendable {
    public let path: String
    public let header: SafetensorsHeader
    public let mapping: MappedFile
    private let indexByName: [String: Int]

    /// Opens and validates `path`. Only the header is read; tensor bytes stay on disk until viewed.
    public init(path: String) throws(SafetensorsError) {
        self.path = path
        do throws(FileIOError) { mapping = try MappedFile(path: path) } catch { throw .io(error) }
        header = try SafetensorsHeader.parse(mapping.bytes, fileSize: mapping.size, file: path)
        var index: [String: Int] = [:]
        index.reserveCapacity(header.tensors.count)
        for (i, tensor) in header.tensors.enumerated() { index[tensor.name] = i }
        indexByName = index
    }

    public var tensors: [TensorInfo] { header.tensors }
    public var metadata: [String: String] { header.metadata }

    public func info(named name: String) -> TensorInfo? { indexByName[name].map { header.tensors[$0] } }

    /// The raw little-endian bytes of `tensor` (a view into the mapping; valid while `self` lives).
    public func data(of tensor: TensorInfo) -> UnsafeRawBufferPointer {
        mapping.bytes(in: (header.dataStart + tensor.dataBegin)..<(header.dataStart + tensor.dataEnd))
    }

    /// The bytes of the tensor called `name`.
    public func data(named name: String) throws(SafetensorsError) -> UnsafeRawBufferPointer {
        guard let tensor = info(named: name) else { throw .tensorNotFound(file: path, tensor: name) }
        return data(of: tensor)
    }

    /// The absolute file offset of a tensor's first byte (for error messages).
    public func fileOffset(of tensor: TensorInfo) -> Int { header.dataStart + tensor.dataBegin }
}
