// ggml's own quantizer, loaded at run time from a llama.cpp build (never linked): the baseline the
// quantization benchmark measures against in the same run, and a byte-for-byte oracle.
import QuantKernels
#if canImport(Glibc)
import Glibc
#endif

/// `ggml_quantize_chunk` from a `libggml-base.so`.
public final class GGMLPeer: @unchecked Sendable {
    private typealias QuantizeChunk =
        @convention(c) (
            Int32, UnsafePointer<Float>?, UnsafeMutableRawPointer?, Int64, Int64, Int64,
            UnsafePointer<Float>?
        ) -> Int
    private let handle: UnsafeMutableRawPointer
    private let quantizeChunk: QuantizeChunk
    public let path: String

    /// Loads `path` (a libggml-base.so); nil with a reason when it cannot.
    public init(path: String) throws(GGMLPeerError) {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw .unavailable(path: path, reason: dlerror().map { String(cString: $0) } ?? "dlopen failed")
        }
        guard let symbol = dlsym(handle, "ggml_quantize_chunk") else {
            dlclose(handle)
            throw .unavailable(path: path, reason: "no ggml_quantize_chunk symbol")
        }
        self.handle = handle
        self.path = path
        quantizeChunk = unsafeBitCast(symbol, to: QuantizeChunk.self)
    }

    deinit { dlclose(handle) }

    /// ggml's bytes for `rows × width` floats (single-threaded, as ggml_quantize_chunk is).
    public func quantize(
        _ type: QuantType, _ input: UnsafeBufferPointer<Float>, rows: Int, width: Int,
        importance: UnsafeBufferPointer<Float>?, into output: UnsafeMutableRawBufferPointer
    ) -> Int {
        quantizeChunk(Int32(type.ggmlTypeID), input.baseAddress, output.baseAddress, 0, Int64(rows), Int64(width), importance?.baseAddress)
    }
}

public enum GGMLPeerError: Error, Sendable, CustomStringConvertible {
    case unavailable(path: String, reason: String)
    public var description: String {
        switch self {
        case let .unavailable(path, reason): "ggml peer \(path) unavailable: \(reason)"
        }
    }
}
