// One-shot zstd compression (system libzstd) for lossless packs and compact logit stores.
import CZstd

public enum ZstdError: Error, Sendable, Equatable, CustomStringConvertible {
    case failed(operation: String, reason: String)
    public var description: String {
        switch self {
        case let .failed(operation, reason): "zstd \(operation) failed: \(reason)"
        }
    }
}

public enum Zstd {
    /// Compresses `bytes` at `level` (1…19; 3 is zstd's default).
    public static func compress(_ bytes: [UInt8], level: Int32 = 3) throws(ZstdError) -> [UInt8] {
        let bound = ZSTD_compressBound(bytes.count)
        var output = [UInt8](repeating: 0, count: bound)
        let written = output.withUnsafeMutableBytes { out in
            bytes.withUnsafeBytes { input in ZSTD_compress(out.baseAddress, bound, input.baseAddress, bytes.count, level) }
        }
        if ZSTD_isError(written) != 0 { throw .failed(operation: "compress", reason: String(cString: ZSTD_getErrorName(written))) }
        output.removeSubrange(written...)
        return output
    }

    /// Decompresses a frame whose content size is recorded in its header, refusing frames larger than `limit`.
    public static func decompress(_ frame: [UInt8], limit: Int) throws(ZstdError) -> [UInt8] {
        let size = frame.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, frame.count) }
        guard size != ZSTD_CONTENTSIZE_ERROR, size != ZSTD_CONTENTSIZE_UNKNOWN else {
            throw .failed(operation: "decompress", reason: "frame has no readable content size")
        }
        guard size <= UInt64(limit) else {
            throw .failed(operation: "decompress", reason: "content size \(size) exceeds the \(limit)-byte limit")
        }
        var output = [UInt8](repeating: 0, count: Int(size))
        let written = output.withUnsafeMutableBytes { out in
            frame.withUnsafeBytes { input in ZSTD_decompress(out.baseAddress, Int(size), input.baseAddress, frame.count) }
        }
        if ZSTD_isError(written) != 0 { throw .failed(operation: "decompress", reason: String(cString: ZSTD_getErrorName(written))) }
        guard written == Int(size) else { throw .failed(operation: "decompress", reason: "wrote \(written) of \(size) bytes") }
        return output
    }
}
