// A file built under a temporary name by positioned writes, then fsynced and renamed into place: the final
// name never holds a partial file. Shared by the safetensors and GGUF writers.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public final class StagedFile {
    public let path: String
    public let temporaryPath: String
    private var descriptor: Int32

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

    /// XXH3 of the bytes already in the file at `range` (read back in chunks).
    public func hash(_ range: Range<Int>) throws(SafetensorsError) -> UInt64 {
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
        guard fdatasync(descriptor) == 0 else { throw .io(file: temporaryPath, operation: "fdatasync", errno: errno) }
    }

    /// Closes without removing the temp file (a resumable run that failed keeps its work).
    public func keep() {
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
    }

    /// fsyncs, renames to `path`, fsyncs the directory.
    public func finish() throws(SafetensorsError) {
        guard descriptor >= 0 else { throw .writeFailed(file: path, reason: "already finished") }
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
        if descriptor >= 0 { close(descriptor) }
        descriptor = -1
        unlink(temporaryPath)
    }
}
