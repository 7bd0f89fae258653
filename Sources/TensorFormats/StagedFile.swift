// A file built under a temporary name by positioned writes, then fsynced and renamed into place: the final name never
// holds a partial file, and the temp file is locked so a second writer of the same output fails at once. Shared by the
// safetensors, GGUF, shard-part and expert-pack writers.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// One O_DIRECT write handed to the background writer; its outcome is read only after the group is waited on.
private final class PendingWrite: @unchecked Sendable {
    let file: PositionalFile, buffer: UnsafeMutableRawPointer, count: Int, offset: Int
    var failure: FileIOError?
    init(file: PositionalFile, buffer: UnsafeMutableRawPointer, count: Int, offset: Int) {
        self.file = file; self.buffer = buffer; self.count = count; self.offset = offset
    }
    func run() {
        do throws(FileIOError) { try SparseWrite.write(file, buffer, count: count, at: offset) } catch { failure = error }
    }
}

/// Aligned direct writes leave all-zero 64 KiB stretches as holes: the staged file was created at its full size
/// and never held other bytes there (direct writes are only used on a fresh file, front to back), so a hole reads
/// as the zeros it replaces. Real checkpoints rarely have such stretches; synthetic sparse ones are nothing but,
/// and their converted slices then take little disk.
enum SparseWrite {
    static let chunk = 1 << 16

    static func write(_ file: PositionalFile, _ buffer: UnsafeRawPointer, count: Int, at offset: Int) throws(FileIOError) {
        var start = 0
        while start < count {
            while start < count, isZero(buffer + start, min(chunk, count - start)) { start += chunk }
            guard start < count else { return }
            var end = start
            while end < count, !isZero(buffer + end, min(chunk, count - end)) { end += chunk }
            end = min(end, count)
            try file.write(UnsafeRawBufferPointer(start: buffer + start, count: end - start), at: offset + start)
            start = end
        }
    }

    /// True when `count` bytes at `pointer` (8-byte aligned) are all zero; stops at the first non-zero 4 KiB.
    static func isZero(_ pointer: UnsafeRawPointer, _ count: Int) -> Bool {
        let words = pointer.assumingMemoryBound(to: UInt64.self)
        var page = 0
        while page < count / 8 {
            let end = min(page + 512, count / 8)
            var any: UInt64 = 0
            for i in page..<end { any |= words[i] }
            if any != 0 { return false }
            page = end
        }
        for i in (count / 8 * 8)..<count where pointer.load(fromByteOffset: i, as: UInt8.self) != 0 { return false }
        return true
    }
}

public final class StagedFile {
    public let path: String
    public let temporaryPath: String
    private var file: PositionalFile?

    /// Sequential writes bypass the page cache (O_DIRECT) when enabled: where a writer fills the file front to
    /// back, whole aligned blocks go straight to the device from `direct.buffer` and only the unaligned edges
    /// (the first partial block of a run, the tail before a sync) take the buffered path. No page is ever written
    /// both ways. Writes that do not continue the current run flush it and go buffered.
    /// Two aligned buffers: while the background writer sends one to the device, the caller fills the other, so
    /// reading the source and writing the output overlap.
    private var direct: (file: PositionalFile, buffer: UnsafeMutableRawPointer, spare: UnsafeMutableRawPointer, capacity: Int)?
    private let writer = DispatchQueue(label: "moeq.staged-file.writer")
    private let inFlight = DispatchGroup()
    private var pending: PendingWrite?
    /// File offset of `direct.buffer`'s first byte (block-aligned) and how many bytes it holds.
    private var runStart = 0, runLength = 0
    /// True while writes continue a sequential run (also when the buffer has just been handed off and is empty).
    private var runActive = false
    /// The end of the furthest write: a file that grows by writes and ends in a skipped zero stretch is extended to it.
    private var extent = 0
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

    /// The temp name of `path`: `.NAME.partial` beside it.
    public static func temporaryPath(for path: String) -> String {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        return directory + "." + base + ".partial"
    }

    /// True when an existing temp file of the right size was reopened (`reuse`) instead of created.
    public private(set) var reused = false

    /// Creates `.NAME.partial` beside `path`, sized to `size` bytes (sparse where the filesystem allows), and locks it:
    /// another process writing the same output makes this fail at once (nothing of its work is touched). With `reuse`,
    /// an existing temp file of exactly `size` bytes is kept with its contents (for resuming).
    public init(path: String, size: Int, reuse: Bool = false) throws(FileIOError) {
        self.path = path
        temporaryPath = StagedFile.temporaryPath(for: path)
        let file = try PositionalFile(path: temporaryPath, access: .readWrite, create: true)
        guard try file.tryLockExclusive() else {
            throw FileIOError(
                file: path, operation: "lock", code: 0,
                detail:
                    """
                    another moeq process is writing this output (its staging file \(temporaryPath) is locked); wait for it or choose \
                    another output
                    """
            )
        }
        self.file = file
        if reuse, try file.size() == size {
            reused = true
            return
        }
        do throws(FileIOError) {
            try file.resize(to: 0)
            try file.resize(to: size)
        } catch {
            abandon()
            throw error
        }
    }

    deinit { if file != nil { abandon() } }

    private func open() throws(FileIOError) -> PositionalFile {
        guard let file else {
            throw FileIOError(file: path, operation: "write", code: 0, detail: "the file is already finished or abandoned")
        }
        return file
    }

    /// Turns on O_DIRECT for sequential runs (ignored where the filesystem refuses O_DIRECT).
    public func enableDirectWrites(bufferBytes: Int = 32 << 20) {
        guard direct == nil, file != nil, let flag = StagedFile.directFlag,
            let directFile = try? PositionalFile(path: temporaryPath, access: .writeOnly, extraFlags: flag)
        else { return }
        var memory: UnsafeMutableRawPointer?, spare: UnsafeMutableRawPointer?
        guard posix_memalign(&memory, StagedFile.block, bufferBytes) == 0, let memory else { return }
        guard posix_memalign(&spare, StagedFile.block, bufferBytes) == 0, let spare else { free(memory); return }
        direct = (directFile, memory, spare, bufferBytes)
        runStart = 0
        runLength = 0
    }

    /// Waits for the background write (if any) and reports its failure.
    private func settle() throws(FileIOError) {
        guard let write = pending else { return }
        inFlight.wait()
        pending = nil
        if let failure = write.failure { throw failure }
    }

    /// Writes the held bytes: whole blocks directly (with `all` false the partial tail stays held, and the whole blocks
    /// go to the background writer), the partial tail buffered when `all`.
    private func drain(all: Bool) throws(FileIOError) {
        try settle()
        guard let direct, runLength > 0 else { return }
        let whole = runLength / StagedFile.block * StagedFile.block
        if !all {
            // Full buffer: the whole blocks go to the background writer, the partial tail moves to the spare buffer,
            // and the two swap.
            let rest = runLength - whole
            if rest > 0 { direct.spare.copyMemory(from: direct.buffer + whole, byteCount: rest) }
            if whole > 0 {
                let write = PendingWrite(file: direct.file, buffer: direct.buffer, count: whole, offset: runStart)
                pending = write
                writer.async(group: inFlight) { write.run() }
            }
            self.direct = (direct.file, direct.spare, direct.buffer, direct.capacity)
            runStart += whole
            runLength = rest
            return
        }
        try SparseWrite.write(direct.file, direct.buffer, count: whole, at: runStart)
        let rest = runLength - whole
        if rest > 0 { try open().write(UnsafeRawBufferPointer(start: direct.buffer + whole, count: rest), at: runStart + whole) }
        runStart += runLength
        runLength = 0
        runActive = false
        // The next run continues at an unaligned offset: its bytes up to the next block go buffered.
    }

    /// Writes all of `bytes` at absolute `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(FileIOError) {
        let file = try open()
        extent = max(extent, offset + bytes.count)
        guard direct != nil, bytes.count > 0 else { return try file.write(bytes, at: offset) }
        var bytes = bytes, offset = offset
        if !runActive || offset != runStart + runLength {
            try drain(all: true)
            // A new run starts at the next block boundary; the bytes before it go buffered.
            let aligned = (offset + StagedFile.block - 1) / StagedFile.block * StagedFile.block
            let lead = min(aligned - offset, bytes.count)
            if lead > 0 {
                try file.write(UnsafeRawBufferPointer(rebasing: bytes[0..<lead]), at: offset)
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

    public func write(_ bytes: [UInt8], at offset: Int) throws(FileIOError) {
        let result: Result<Void, FileIOError> = bytes.withUnsafeBytes { buffer in
            do throws(FileIOError) { try write(buffer, at: offset); return .success(()) } catch { return .failure(error) }
        }
        try result.get()
    }

    private func releaseDirect() {
        if pending != nil { inFlight.wait(); pending = nil }
        guard let direct else { return }
        direct.file.close()
        free(direct.buffer)
        free(direct.spare)
        self.direct = nil
    }

    /// XXH3 of the bytes already in the file at `range` (read back in chunks).
    public func hash(_ range: Range<Int>) throws(FileIOError) -> UInt64 {
        try drain(all: true)
        let file = try open()
        let hasher = ContentHasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position = range.lowerBound
        while position < range.upperBound {
            let want = min(buffer.count, range.upperBound - position)
            let result: Result<Void, FileIOError> = buffer.withUnsafeMutableBytes { chunk in
                do throws(FileIOError) {
                    try file.readExactly(into: UnsafeMutableRawBufferPointer(rebasing: chunk[0..<want]), at: position)
                    hasher.update(UnsafeRawBufferPointer(rebasing: chunk[0..<want]))
                    return .success(())
                } catch { return .failure(error) }
            }
            try result.get()
            position += want
        }
        return hasher.digest
    }

    /// Makes the data written so far durable (before a journal records it).
    public func syncData() throws(FileIOError) {
        try drain(all: true)
        try open().sync(metadata: false)
    }

    /// Closes without removing the temp file (a resumable run that failed keeps its work).
    public func keep() {
        try? drain(all: true)
        releaseDirect()
        if let file, (try? file.size()).map({ $0 < extent }) == true { try? file.resize(to: extent) }
        file?.close()
        file = nil
    }

    /// fsyncs, renames to `path`, fsyncs the directory.
    public func finish() throws(FileIOError) {
        let file = try open()
        try drain(all: true)
        releaseDirect()
        if try file.size() < extent { try file.resize(to: extent) }
        try file.sync()
        guard rename(temporaryPath, path) == 0 else {
            let code = errno
            abandon()
            throw FileIOError(file: path, operation: "rename from \(temporaryPath)", code: code)
        }
        self.file = nil
        file.close()
        AtomicFile.syncDirectory(of: path)
    }

    /// Removes the temp file; the final name is never created.
    public func abandon() {
        releaseDirect()
        if file != nil { unlink(temporaryPath) }
        file?.close()
        file = nil
    }
}
