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
            let output = UnsafeMutableRawBufferPointer(start: destination + range.lowerBound * rowBytes, count: range.count * rowBytes)
            if let weights {
                try weights.withUnsafeBufferPointer {
                    try QuantCodec.quantize(type, UnsafeBufferPointer(input), rows: range.count, width: width, importance: $0, into: output, threads: 1)
                }
            } else {
                try QuantCodec.quantize(type, UnsafeBufferPointer(input), rows: range.count, width: width, into: output, threads: 1)
            }
        }

        func run(threads: Int) throws {
            guard threads > 1, count > 1 else { return try rows(0..<count) }
            let share = (count + min(threads, count) - 1) / min(threads, count)
            // Parts of `share` rows; the last may be shorter, none is empty (e.g. 256 rows on 48 threads: 43 × 6 rows).
            let parts = (count + share - 1) / share
            let failures = FailureBox()
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                do { try rows(min(count, part * share)..<min(count, (part + 1) * share)) } catch { failures.record(error) }
            }
            if let error = failures.first { throw error }
        }
    }

    /// The first error thrown by any of several threads.
    final class FailureBox: @unchecked Sendable {
        private let lock = NSLock()
        private var error: Error?
        func record(_ error: Error) { lock.lock(); if self.error == nil { self.error = error }; lock.unlock() }
        var first: Error? { lock.lock(); defer { lock.unlock() }; return error }
    }

    /// A run of bytes copied unchanged from a source file to the output.
    struct RawChunk {
        let descriptor: Int32, path: String, source: Int, length: Int, destination: Int
    }

    /// One chunk read on the reader queue; its outcome is looked at only after the group is waited on.
    private final class ChunkRead: @unchecked Sendable {
        let chunk: RawChunk, buffer: UnsafeMutableRawPointer
        var failure: Int32 = 0, short = false
        init(chunk: RawChunk, buffer: UnsafeMutableRawPointer) { self.chunk = chunk; self.buffer = buffer }
        func run() {
            var got = 0
            while got < chunk.length {
                let n = pread(chunk.descriptor, buffer + got, chunk.length - got, off_t(chunk.source + got))
                if n < 0 && errno == EINTR { continue }
                if n < 0 { failure = errno; return }
                if n == 0 { short = true; return }
                got += n
            }
        }
    }

    /// Copies chunks in order with the next chunk's read running on a background queue while this one is hashed and
    /// written (the writer in turn hands full buffers to its own background writer): source reads, hashing and output
    /// writes overlap, as `cat` and `dd` would on their own.
    static func copyPipelined(_ chunks: [RawChunk], tensor: String, writer: TensorSink, hasher: ContentHasher, wrote: (Int) -> Void) throws {
        guard let largest = chunks.map(\.length).max() else { return }
        let buffers = [UnsafeMutableRawPointer.allocate(byteCount: largest, alignment: 4096), UnsafeMutableRawPointer.allocate(byteCount: largest, alignment: 4096)]
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
            _ = posix_fadvise(chunks[k].descriptor, off_t(chunks[k].source), off_t(chunks[k].length), advice)
        }
        // Keep the device busy while a write or an fsync holds this thread up: the kernel reads ahead
        // `readAheadChunks` chunks into the page cache on its own.
        let readAheadChunks = 6
        for k in 0..<readAheadChunks { advise(k, POSIX_FADV_WILLNEED) }
        submit(0)
        for k in chunks.indices {
            group.wait()
            guard let read = reads[k % 2] else { break }
            if read.failure != 0 || read.short {
                throw ConversionError.io(file: read.chunk.path, operation: read.short ? "read (file shorter than its header says)" : "read", errno: read.failure)
            }
            if k + 1 < chunks.count { submit(k + 1) }
            advise(k + readAheadChunks, POSIX_FADV_WILLNEED)
            let bytes = UnsafeRawBufferPointer(start: read.buffer, count: read.chunk.length)
            try writer.write(tensor, bytes: bytes, at: read.chunk.destination)
            hasher.update(bytes)
            wrote(read.chunk.length)
            advise(k, POSIX_FADV_DONTNEED)
        }
    }

    /// Source files opened once per tensor (not once per expert), closed with it.
    final class SourceFiles {
        private var open_: [String: Int32] = [:]
        func descriptor(_ path: String) throws -> Int32 {
            if let fd = open_[path] { return fd }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw ConversionError.io(file: path, operation: "open", errno: errno) }
            open_[path] = fd
            return fd
        }
        deinit { for fd in open_.values { close(fd) } }
    }
}
