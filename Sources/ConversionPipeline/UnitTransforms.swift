// The per-unit transforms the conversion runner executes: the decode stage's row decoder and the quantize stage's row
// quantizer. Stages install them into the pipeline context; `write` calls them for every unit, one row chunk at a time,
// so a stage swapped in a recipe file (`quantize-reference`, a test's recording quantizer) really does the work.
import ModelCatalog
import QuantKernels
import TensorFormats

/// Decodes rows of a checkpoint weight to f32 (BF16/F16/F32, FP8 with block scales, packed INT4).
public protocol RowDecoder: Sendable {
    var name: String { get }
    func decodeRows(_ weight: SourceWeight, _ rows: Range<Int>, into output: UnsafeMutableBufferPointer<Float>) throws
}

/// Quantizes f32 rows into a type's blocks (`rows × rowBytes(width)` bytes).
public protocol RowQuantizer: Sendable {
    var name: String { get }
    func quantize(
        _ type: QuantType, _ input: UnsafeBufferPointer<Float>, rows: Int, width: Int, importance: UnsafeBufferPointer<Float>?,
        into output: UnsafeMutableRawBufferPointer) throws
}

/// The source encodings' own decoders (TensorFormats' SourceWeight).
public struct SourceDecoder: RowDecoder {
    public let name = "source-encodings"
    public init() {}
    public func decodeRows(_ weight: SourceWeight, _ rows: Range<Int>, into output: UnsafeMutableBufferPointer<Float>) throws {
        try weight.decodeRows(rows, into: output)
    }
}

/// QuantKernels' codecs: the lane-parallel fast paths, or (`reference`) the plain scalar ports of ggml they are tested
/// against byte for byte.
public struct KernelQuantizer: RowQuantizer {
    public let reference: Bool
    public var name: String { reference ? "reference-kernels" : "fast-kernels" }
    public init(reference: Bool = false) { self.reference = reference }
    public func quantize(
        _ type: QuantType, _ input: UnsafeBufferPointer<Float>, rows: Int, width: Int, importance: UnsafeBufferPointer<Float>?,
        into output: UnsafeMutableRawBufferPointer
    ) throws {
        try QuantCodec.quantize(
            type, input, rows: rows, width: width, importance: importance, into: output, threads: 1, reference: reference)
    }
}

/// The transforms one conversion runs with.
public struct UnitTransforms: Sendable {
    public var decoder: any RowDecoder
    public var quantizer: any RowQuantizer

    public init(decoder: any RowDecoder = SourceDecoder(), quantizer: any RowQuantizer = KernelQuantizer()) {
        self.decoder = decoder
        self.quantizer = quantizer
    }

    public static let standard = UnitTransforms()

    /// Plain F32 / F16 / BF16 rows may be copied without decoding when they are stored in the output type: true only
    /// for the built-in transforms, whose decode-then-quantize of such rows is the identity.
    var copiesStoredFloats: Bool { decoder is SourceDecoder && quantizer is KernelQuantizer }
}
