// The two inner loops of a conversion: rows decoded and quantized on every thread (ChunkJob), and bytes copied
// unchanged with source reads, hashing and output writes overlapped (copyPipelined).
import Foundation
import Dispatch
import QuantKernels
import TensorFormats

extension GGUFConversion {
    /// One chunk of decoded-then-quantized rows. With several threads each takes a contiguous share of the rows
    /// and runs both steps on it, so decoding (FP8 / INT4 / BF16 → f32) is as parallel as quantization. Every
    /// thread writes only its own rows of `source` and `destination`.
    struct ChunkJob: @unchecked Sendable {
        let produce: (Range<Int>, UnsafeMutableBufferPointer<Float>) throws -> Void
        let first: Int, count: Int, width: Int, rowBytes: Int
        let type: QuantType
        let source: UnsafeMutablePointer<Float>
        let destination: UnsafeMutableRawPointer
        let weights: [Float]?
        let quantizer: any RowQuantizer

        func rows(_ range: Range<Int>) throws {
            guard !range.isEmpty else { return }
            do { try quantizeRows(range) } catch QuantError.nonFinite(let index, let value) {
                // Report the position within the whole chunk, as a single-threaded pass would.
                throw QuantError.nonFinite(index: index + range.lowerBound * width, value: value)
            }
        }

        private func quantizeRows(_ range: Range<Int>) throws {
            let input = UnsafeMutableBufferPointer(start: source + range.lowerBound * width, count: range.count * width)
            try produce((first + range.lowerBound)..<(first + range.upperBound), input)
            // A row of zeros quantizes to the same bytes as every bit-identical row of this chunk (same type, same
            // importance slice): the first is quantized, the others copy it. Padding, pruned experts and sparse
            // rehearsal checkpoints then cost a scan instead of a search. (Decoded zeros may be −0, so the rows are
            // compared bit for bit, never assumed equal.)
            var zero: (input: UnsafeMutablePointer<Float>, output: UnsafeMutableRawPointer)? = nil
            let base = input.baseAddress!
            var row = 0
            while row < range.count {
                if let zero, isZero(base + row * width), memcmp(zero.input, base + row * width, width * 4) == 0 {
                    (destination + (range.lowerBound + row) * rowBytes).copyMemory(from: zero.output, byteCount: rowBytes)
                    row += 1
                    continue
                }
                // A run of rows up to (and including) the next zero row is quantized in one call.
                var end = row + 1
                while end < range.count, !isZero(base + (end - 1) * width) { end += 1 }
                do { try quantize(input, rows: row..<end, at: range.lowerBound) } catch QuantError.nonFinite(let index, let value) {
                    throw QuantError.nonFinite(index: index + row * width, value: value)
                }
                if zero == nil, isZero(base + (end - 1) * width) {
                    zero = (base + (end - 1) * width, destination + (range.lowerBound + end - 1) * rowBytes)
                }
                row = end
            }
        }

        /// Every value ±0.
        private func isZero(_ row: UnsafeMutablePointer<Float>) -> Bool {
            let bits = UnsafeRawPointer(row).assumingMemoryBound(to: UInt32.self)
            var any: UInt32 = 0
            for i in 0..<width { any |= bits[i] & 0x7fff_ffff }
            return any == 0
        }

        private func quantize(_ input: UnsafeMutableBufferPointer<Float>, rows: Range<Int>, at offset: Int) throws {
            let values = UnsafeBufferPointer(start: input.baseAddress! + rows.lowerBound * width, count: rows.count * width)
            let output = UnsafeMutableRawBufferPointer(
                start: destination + (offset + rows.lowerBound) * rowBytes, count: rows.count * rowBytes)
            if let weights {
                try weights.withUnsafeBufferPointer {
                    try quantizer.quantize(type, values, rows: rows.count, width: width, importance: $0, into: output)
                }
            } else {
                try quantizer.quantize(type, values, rows: rows.count, width: width, importance: nil, into: output)
            }
        }

        func run(threads: Int) throws {
            let shares = RowPartition(rows: count, threads: threads)
            guard shares.count > 1 else { return try rows(0..<count) }
            let failures = FailureBox()
            DispatchQueue.concurrentPerform(iterations: shares.count) { part in
                do { try rows(shares[part]) } catch { failures.record(error, at: shares[part].lowerBound) }
            }
            if let error = failures.first { throw error }
        }
    }

    /// The error of the lowest failing share among several threads (what a single-threaded pass would have hit first).
    final class FailureBox: @unchecked Sendable {
        private let lock = NSLock()
        private var error: (Error, Int)?
        func record(_ error: Error, at position: Int) {
            lock.lock()
            if self.error.map({ position < $0.1 }) ?? true { self.error = (error, position) }
            lock.unlock()
        }
        var first: Error? { lock.lock(); defer { lock.unlock() }; return error?.0 }
    }

    /// A run of bytes copied unchanged from a source file to the output.
    struct RawChunk {
        let file: PositionalFile
        let source: Int, length: Int, destination: Int
        /// The weight these rows belong to and its first row in this chunk (for messages).
        let weight: String, firstRow: Int, rowBytes: Int
    }

    /// One chunk read on the reader queue; its outcome is looked at only after the group is waited on.
    private final class ChunkRead: @unchecked Sendable {
        let chunk: RawChunk, buffer: UnsafeMutableRawPointer
        var failure: FileIOError?
        init(chunk: RawChunk, buffer: UnsafeMutableRawPointer) { self.chunk = chunk; self.buffer = buffer }
        func run() {
            do throws(FileIOError) {
                try chunk.file.readExactly(into: UnsafeMutableRawBufferPointer(start: buffer, count: chunk.length), at: chunk.source)
            } catch { failure = error }
        }
    }

    /// Copies chunks in order with the next chunk's read running on a background queue while this one is checked, hashed
    /// and written (the writer in turn hands full buffers to its own background writer): source reads, hashing and
    /// output writes overlap, as `cat` and `dd` would on their own. A NaN or infinity is refused, naming where it is.
    static func copyPipelined(
        _ chunks: [RawChunk], tensor: String, type: QuantType, writer: TensorSink, hasher: ContentHasher,
        wrote: (Int) throws -> Void
    ) throws {
        guard let largest = chunks.map(\.length).max() else { return }
        let buffers = [
            UnsafeMutableRawPointer.allocate(byteCount: largest, alignment: 4096),
            UnsafeMutableRawPointer.allocate(byteCount: largest, alignment: 4096),
        ]
        let queue = DispatchQueue(label: "moeq.raw-reader")
        let group = DispatchGroup()
        defer {
            group.wait()
            buffers.forEach { $0.deallocate() }
        }
        var reads: [ChunkRead?] = [nil, nil]
        func submit(_ k: Int) {
            let read = ChunkRead(chunk: chunks[k], buffer: buffers[k % 2])
            reads[k % 2] = read
            queue.async(group: group) { read.run() }
        }
        func advise(_ k: Int, _ advice: Int32) {
            guard k < chunks.count else { return }
            _ = posix_fadvise(chunks[k].file.rawDescriptor, off_t(chunks[k].source), off_t(chunks[k].length), advice)
        }
        // Keep the device busy while a write or an fsync holds this thread up: the kernel reads ahead
        // `readAheadChunks` chunks into the page cache on its own.
        let readAheadChunks = 6
        for k in 0..<readAheadChunks { advise(k, POSIX_FADV_WILLNEED) }
        submit(0)
        for k in chunks.indices {
            group.wait()
            guard let read = reads[k % 2] else { break }
            if let failure = read.failure { throw failure }
            if k + 1 < chunks.count { submit(k + 1) }
            advise(k + readAheadChunks, POSIX_FADV_WILLNEED)
            let bytes = UnsafeRawBufferPointer(start: read.buffer, count: read.chunk.length)
            if let index = FloatScan.firstNonFinite(bytes, type: type) {
                let chunk = read.chunk, elementBytes = type == .f32 ? 4 : 2
                let row = chunk.firstRow + index * elementBytes / chunk.rowBytes
                throw ConversionError.nonFinite(
                    tensor: tensor, source: chunk.weight, file: chunk.file.path, row: row,
                    column: (index * elementBytes % chunk.rowBytes) / elementBytes,
                    value: FloatScan.value(bytes, type: type, at: index))
            }
            try writer.write(tensor, bytes: bytes, at: read.chunk.destination)
            hasher.update(bytes)
            try wrote(read.chunk.length)
            advise(k, POSIX_FADV_DONTNEED)
        }
    }

    /// Source files opened once per tensor (not once per expert), closed with it.
    final class SourceFiles {
        private var open: [String: PositionalFile] = [:]
        func file(_ path: String) throws -> PositionalFile {
            if let file = open[path] { return file }
            let file = try PositionalFile(path: path)
            open[path] = file
            return file
        }
    }
}
