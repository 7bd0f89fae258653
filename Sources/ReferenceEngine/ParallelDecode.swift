// Weights decoded on all cores: a quantized byte range split into runs of whole blocks, a safetensors weight into runs
// of rows (FP8 blocks and packed INT4 groups decode any row range). Each run writes only its own values, so the result
// is the single-threaded decode's, value for value.
import CRowGEMM
import Foundation
import QuantKernels
import TensorFormats

enum ParallelDecode {
    /// `count` values of `type` from `bytes` (a whole number of blocks).
    static func dequantize(_ type: QuantType, _ bytes: UnsafeRawBufferPointer, count: Int) throws -> [Float] {
        let blockSize = type.blockSize, blockBytes = type.bytesPerBlock
        guard count % blockSize == 0, bytes.count >= count / blockSize * blockBytes else {
            return try QuantCodec.dequantize(type, Array(bytes), count: count)  // its own error names what is wrong
        }
        var values = [Float](repeating: 0, count: count)
        let failures = Failures()
        values.withUnsafeMutableBufferPointer { out in
            Parallel.rows(count / blockSize, minimum: 4096) { blocks in
                do {
                    try QuantCodec.dequantize(
                        type, UnsafeRawBufferPointer(rebasing: bytes[(blocks.lowerBound * blockBytes)..<(blocks.upperBound * blockBytes)]),
                        count: blocks.count * blockSize,
                        into: UnsafeMutableBufferPointer(rebasing: out[(blocks.lowerBound * blockSize)..<(blocks.upperBound * blockSize)]))
                } catch { failures.record(blocks.lowerBound, error) }
            }
        }
        try failures.throwFirst()
        return values
    }

    /// The whole safetensors weight, rows spread over the cores.
    static func decodeAll(_ weight: SourceWeight) throws -> [Float] {
        let columns = weight.columns
        var values = [Float](repeating: 0, count: weight.elementCount)
        let failures = Failures()
        values.withUnsafeMutableBufferPointer { out in
            Parallel.rows(weight.rows, minimum: 64) { rows in
                do {
                    try weight.decodeRows(
                        rows, into: UnsafeMutableBufferPointer(rebasing: out[(rows.lowerBound * columns)..<(rows.upperBound * columns)]))
                } catch { failures.record(rows.lowerBound, error) }
            }
        }
        try failures.throwFirst()
        return values
    }

    /// The error of the earliest failing run (the one a single-threaded decode would have met first).
    final class Failures: @unchecked Sendable {
        private var first: (at: Int, error: Error)?
        private let lock = NSLock()
        func record(_ at: Int, _ error: Error) { lock.withLock { if first.map({ at < $0.at }) ?? true { first = (at, error) } } }
        func throwFirst() throws { if let first { throw first.error } }
    }
}

/// Rows of one stored weight ([rows × columns], PyTorch's [out, in]) decoded on demand, and the product that uses it:
/// output columns in slices of about 1 MiB of decoded rows, each slice decoded, checked for NaN / ∞ and multiplied on
/// one core while the others do the next slices. The f32 weight is never materialised whole, and since every element
/// of the row-exact product is one chain, the numbers are the whole-matrix product's, bit for bit.
public struct WeightRows: Sendable {
    /// Weights smaller than this in f32 are decoded whole (and cached between batches); larger ones stream.
    public static let minimumBytes = 16 << 20

    public let rows: Int, columns: Int
    /// For errors: where the weight comes from.
    let file: String, tensor: String
    let decode: @Sendable (Range<Int>, UnsafeMutableBufferPointer<Float>) throws -> Void

    /// x · Wᵀ: [tokens × columns] → [tokens × rows]. `sliceRows` overrides the slice height (tests).
    public func product(_ x: [Float], tokens: Int, sliceRows: Int? = nil) throws -> [Float] {
        let k = columns, n = rows
        var y = [Float](repeating: 0, count: tokens * n)
        guard tokens > 0, n > 0 else { return y }
        let slice = sliceRows ?? max(16, (1 << 20) / (4 * max(k, 1)) / 16 * 16)
        let failures = ParallelDecode.Failures()
        y.withUnsafeMutableBufferPointer { out in
            x.withUnsafeBufferPointer { a in
                Parallel.forEach((n + slice - 1) / slice) { s in
                    let first = s * slice, last = min(n, first + slice)
                    var w = [Float](repeating: 0, count: (last - first) * k)
                    do {
                        try w.withUnsafeMutableBufferPointer { try decode(first..<last, $0) }
                        do { try checkFinite(w, file: file, tensor: tensor) } catch EngineError.nonFinite(let f, let t, let i, let v) {
                            throw EngineError.nonFinite(file: f, tensor: t, index: first * k + i, value: v)
                        }
                        // Columns first…last of C: the slice's rows as B, C offset to its first column, row stride n.
                        w.withUnsafeBufferPointer { b in
                            moeq_row_gemm(a.baseAddress, tokens, k, b.baseAddress, n, out.baseAddress! + first, 0, last - first)
                        }
                    } catch { failures.record(first, error) }
                }
            }
        }
        try failures.throwFirst()
        return y
    }
}
