// A file built under a temporary name by positioned writes, then fsynced and renamed into place: the final
// name never holds a partial file. Shared by the safetensors and GGUF writers.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// One O_DIRECT write handed to the background writer; its outcome is read only after the group is waited on.
private final class PendingWrite: @unchecked Sendable {
    let descriptor: Int32, buffer: UnsafeMutableRawPointer, count: Int, offset: Int
    var failure: Int32 = 0
    init(descriptor: Int32, buffer: UnsafeMutableRawPointer, count: Int, offset: Int) {
        self.descriptor = descriptor; self.buffer = buffer; self.count = count; self.offset = offset
    }
    func run() {
        var done = 0
        while done < count {
            let n = pwrite(descriptor, buffer + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                failure = errno
                return
            }
            done += n
        }
    }
}

public final class StagedFile {
    public let path: String
    public let temporaryPath: String
    private var descriptor: Int32

    /// Sequential writes bypass the page cache (O_DIRECT) when enabled: where a writer fills the file front to
    /// back, whole aligned blocks go straight to the device from `direct.buffer` and only the unaligned edges
    /// (the first partial block of a run, the tail before a sync) take the buffered path. No page is ever written
    /// both ways. Writes that do not continue the current run flush it and go buffered.
    /// Two aligned buffers: while the background writer sends one to the device, the caller fills the other, so
    /// reading the source and writing the output overlap.
    private var direct: (descriptor: Int32, buffer: UnsafeMutableRawPointer, spare: UnsafeMutableRawPointer, capacity: Int)?
    private let writer = DispatchQueue(label: "moeq.staged-file.writer")
    private let inFlight = DispatchGroup()
    private var pending: PendingWrite?
    /// File offset of `direct.buffer`'s first byte (block-aligned) and how many bytes it holds.
    private var runStart = 0, runLength = 0
    /// True while writes continue a sequential run (also when the buffer has just been handed off and is empty).
    private var runActive = false
    private static let block = 4096
    /// Linux's O_DIRECT (not exported to Swift by Glibc): 0o40000 on x86-64, 0o200000 on arm64.
    static var directFlag: Int32? {
        #if os(Linux) && arch(x86_64)
        return 0o40000
        #elseif os(Linux) && arch(arm64)
        return 0o200000
        #else
        return nil
        #endif
    }

    /// Turns on O_DIRECT for sequential runs (ignored where the filesystem refuses O_DIRECT).
    public func enableDirectWrites(bufferBytes: Int = 32 << 20) {
        guard direct == nil, descriptor >= 0 else { return }
        guard let flag = StagedFile.directFlag else { return }
        let fd = open(temporaryPath, O_WRONLY | O_CLOEXEC | flag)
        guard fd >= 0 else { return }
        var memory: UnsafeMutableRawPointer?, spare: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, StagedFile.block, bufferBytes) == 0, let memory else { close(fd); return }
        guard posix_memalign(&spare, StagedFile.block, bufferBytes) == 0, let spare else { free(memory); close(fd); return }
        direct = (fd, memory, spare, bufferBytes)
        runStart = 0
        runLength = 0
    }

    /// Writes the held bytes: whole blocks directly (all of them when `all` is false leaves the partial tail held),
    /// the partial tail buffered when `all`.
    /// Waits for the background write (if any) and reports its failure.
    private func settle() throws(SafetensorsError) {
        guard let write = pending else { return }
        inFlight.wait()
        pending = nil
        if write.failure != 0 { throw .io(file: temporaryPath, operation: "pwrite (O_DIRECT)", errno: write.failure) }
    }

    private func drain(all: Bool) throws(SafetensorsError) {
        try settle()
        guard let direct, runLength > 0 else { return }
        let whole = runLength / StagedFile.block * StagedFile.block
        if !all {
            // Full buffer: the whole blocks go to the background writer, the partial tail moves to the spare buffer,
            // and the two swap.
            let rest = runLength - whole
            if rest > 0 { direct.spare.copyMemory(from: direct.buffer + whole, byteCount: rest) }
            if whole > 0 {
                let write = PendingWrite(descriptor: direct.descriptor, buffer: direct.buffer, count: whole, offset: runStart)
                pending = write
                writer.async(group: inFlight) { write.run() }
            }
            self.direct = (direct.descriptor, direct.spare, direct.buffer, direct.capacity)
            runStart += whole
            runLength = rest
            return
        }
        var done = 0
        while done < whole {
            let n = pwrite(direct.descriptor, direct.buffer + done, whole - done, off_t(runStart + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(file: temporaryPath, operation: "pwrite (O_DIRECT)", errno: errno)
            }
            done += n
        }
        let rest = runLength - whole
        if rest > 0 { try bufferedWrite(UnsafeRawBufferPointer(start: direct.buffer + whole, count: rest), at: runStart + whole) }
        runStart += runLength
        runLength = 0
        runActive = false
        // The next run continues at an unaligned offset: its bytes up to the next block go buffered.
    }

    /// True when an existing temp file of the right size was reopened (`reuse`) instead of created.
    public private(set) var reused = false

    /// Creates `.NAME.partial` beside `path`, sized to `size` bytes (sparse where the filesystem allows). With
    /// `reuse`, an existing temp file of exactly `size` bytes is reopened with its contents (for resuming).
    public init(path: String, size: Int, reuse: Bool = false) throws(SafetensorsError) {
        self.path = path
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        temporaryPath = directory + "." + base + ".partial"
        var existing = stat()
        if reuse, stat(temporaryPath, &existing) == 0, Int(existing.st_size) == size {
            descriptor = open(temporaryPath, O_RDWR | O_CLOEXEC)
            guard descriptor >= 0 else { throw .io(file: temporaryPath, operation: "open", errno: errno) }
            reused = true
            return
        }
        descriptor = open(temporaryPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw .io(file: temporaryPath, operation: "open", errno: errno) }
        guard ftruncate(descriptor, off_t(size)) == 0 else {
            let code = errno
            abandon()
            throw .io(file: temporaryPath, operation: "ftruncate", errno: code)
        }
    }

    deinit { if descriptor >= 0 { abandon() } }

    /// Writes all of `bytes` at absolute `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SafetensorsError) {
        guard descriptor >= 0 else { throw .writeFailed(file: path, reason: "file already finished or abandoned") }
        guard direct != nil, bytes.count > 0 else { return try bufferedWrite(bytes, at: offset) }
        var bytes = bytes, offset = offset
        if !runActive || offset != runStart + runLength {
            try drain(all: true)
            // A new run starts at the next block boundary; the bytes before it go buffered.
            let aligned = (offset + StagedFile.block - 1) / StagedFile.block * StagedFile.block
            let lead = min(aligned - offset, bytes.count)
            if lead > 0 {
                try bufferedWrite(UnsafeRawBufferPointer(rebasing: bytes[0..<lead]), at: offset)
                bytes = UnsafeRawBufferPointer(rebasing: bytes[lead...])
                offset += lead
            }
            runStart = offset
            runLength = 0
            // A write that ended inside the lead block has not reached an aligned start: no run yet.
            if bytes.isEmpty { return }
            runActive = true
        }
        while !bytes.isEmpty, let direct = self.direct {
            // Re-read each round: a drain swaps the buffers.
            let take = min(direct.capacity - runLength, bytes.count)
            (direct.buffer + runLength).copyMemory(from: bytes.baseAddress!, byteCount: take)
            runLength += take
            bytes = UnsafeRawBufferPointer(rebasing: bytes[take...])
            if runLength == direct.capacity { try drain(all: false) }
        }
    }

    private func bufferedWrite(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(SafetensorsError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, bytes.baseAddress.map { $0 + done }, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(file: temporaryPath, operation: "pwrite", errno: errno)
            }
            done += n
        }
    }

    public func write(_ bytes: [UInt8], at offset: Int) throws(SafetensorsError) {
        let result: Result<Void, SafetensorsError> = bytes.withUnsafeBytes { buffer in
            do throws(SafetensorsError) { try write(buffer, at: offset); return .success(()) } catch { return .failure(error) }
        }
        try result.get()
    }

    private func releaseDirect() {
        if pending != nil { inFlight.wait(); pending = nil }
        guard let direct else { return }
        close(direct.descriptor)
        free(direct.buffer)
        free(direct.spare)
        self.direct = nil
    }

    /// XXH3 of the bytes already in the file at `range` (read back in chunks).
    public func hash(_ range: Range<Int>) throws(SafetensorsError) -> UInt64 {
        try drain(all: true)
        let hasher = ContentHasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position = range.lowerBound
        while position < range.upperBound {
            let want = min(buffer.count, range.upperBound - position)
            let n = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, want, off_t(position)) }
            guard n > 0 else { throw .io(file: temporaryPath, operation: "pread", errno: n < 0 ? errno : EIO) }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            position += n
        }
        return hasher.digest
    }

    /// Makes the data written so far durable (before a journal records it).
    public func syncData() throws(SafetensorsError) {
        try drain(all: true)
        guard fdatasync(descriptor) == 0 else { throw .io(file: temporaryPath, operation: "fdatasync", errno: errno) }
    }

    /// Closes without removing the temp file (a resumable run that failed keeps its work).
    public func keep() {
        try? drain(all: true)
        releaseDirect()
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    /// fsyncs, renames to `path`, fsyncs the directory.
    public func finish() throws(SafetensorsError) {
        guard descriptor >= 0 else { throw .writeFailed(file: path, reason: "already finished") }
        try drain(all: true)
        releaseDirect()
        guard fsync(descriptor) == 0 else { throw .io(file: temporaryPath, operation: "fsync", errno: errno) }
        close(descriptor)
        descriptor = -1
        guard rename(temporaryPath, path) == 0 else {
            let code = errno
            unlink(temporaryPath)
            throw .io(file: path, operation: "rename", errno: code)
        }
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let fd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY)
        if fd >= 0 { fsync(fd); close(fd) }
    }

    /// Removes the temp file; the final name is never created.
    public func abandon() {
        releaseDirect()
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        unlink(temporaryPath)
    }
}
