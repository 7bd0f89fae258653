// Weights decoded on all cores: a quantized byte range split into runs of whole blocks, a safetensors weight into runs
// of rows (FP8 blocks and packed INT4 groups decode any row range). Each run writes only its own values, so the result
// is the single-threaded decode's, value for value.
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
