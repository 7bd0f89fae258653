// A read-only memory map of a whole file: tensor data is read through it without copies. A mapped input that
// another program truncates while moeq reads it is reported by name: `checkIntact()` before each unit, and a
// SIGBUS handler for the race inside one unit (MappedFile+Fault.swift).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file mapped read-only. Pages are only read from disk when touched, so mapping a 10 GB shard to read
/// its header costs one page. The mapping lives as long as this object.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    private let base: UnsafeRawPointer?
    /// Kept open so `checkIntact()` can ask the mapped file itself (not whatever the path names now) for its size.
    private let file: PositionalFile

    /// Maps `path`; throws naming the failing call and the system's reason.
    public init(path: String) throws(FileIOError) {
        self.path = path
        file = try PositionalFile(path: path)
        var status = stat()
        guard fstat(file.rawDescriptor, &status) == 0 else { throw FileIOError(file: path, operation: "fstat", code: errno) }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw FileIOError(
                file: path, operation: "open", code: (status.st_mode & S_IFMT) == S_IFDIR ? EISDIR : 0, detail: "not a regular file")
        }
        size = Int(status.st_size)
        if size == 0 {
            base = nil
            return
        }
        let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, file.rawDescriptor, 0)
        guard let mapped, mapped != MAP_FAILED else { throw FileIOError(file: path, operation: "mmap", code: errno) }
        base = UnsafeRawPointer(mapped)
        MappedRegions.register(base: base!, size: size, path: path)
    }

    deinit {
        if let base {
            MappedRegions.unregister(base: base)
            munmap(UnsafeMutableRawPointer(mutating: base), size)
        }
    }

    /// Throws when the file is now shorter than when it was mapped (another program truncated or is rewriting
    /// it): reading its mapped pages would fault.
    public func checkIntact() throws(FileIOError) {
        let now = try file.size()
        guard now >= size else {
            throw FileIOError(
                file: path, operation: "read", code: 0,
                detail: "the file shrank from \(size) to \(now) bytes while moeq was reading it (another program truncated or "
                    + "is rewriting it); let that finish, then run the command again")
        }
    }

    /// The whole file as bytes (valid while this object is alive).
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: size) }

    /// Drops the pages touching `range` from this process's resident set (they stay in the page cache and are
    /// re-read transparently if touched again). Streaming readers call this after each unit so RSS stays flat.
    /// The window is widened to the kernel's fault-around unit (64 KiB): touching one byte maps the cached pages
    /// around it too, and those count as resident. Pages shared with a neighbouring tensor are dropped as well:
    /// the mapping is private and never written, so a reader still using one just faults it back in from the page
    /// cache (a small tensor — a scale, a `weight_shape` — would otherwise keep its 64 KiB mapped for good).
    public func releasePages(in range: Range<Int>) {
        guard let base, size > 0, !range.isEmpty else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let unit = max(page, MappedFile.faultAroundBytes)
        let start = max(range.lowerBound, 0) / unit * unit
        let end = min((range.upperBound + unit - 1) / unit * unit, (size + page - 1) / page * page)
        guard end > start else { return }
        madvise(UnsafeMutableRawPointer(mutating: base) + start, end - start, MADV_DONTNEED)
    }

    /// Drops every page of the file from this process's resident set. Reading one tensor maps cached pages around
    /// it (fault-around, whole large folios) that belong to neighbours already consumed and released; a pass over the
    /// whole mapping once a unit is done leaves nothing behind whatever the kernel mapped. Cheap where little is
    /// mapped: the kernel skips empty page tables.
    public func releaseAll() {
        guard let base, size > 0 else { return }
        madvise(UnsafeMutableRawPointer(mutating: base), size, MADV_DONTNEED)
    }

    /// Linux maps up to this many bytes of already-cached pages around a faulting address (`fault_around_bytes`).
    static let faultAroundBytes = 1 << 16

    /// Asks the kernel to start reading `range` now (MADV_WILLNEED), so a streaming reader's next chunk arrives
    /// while it is still writing the current one. Asked in pieces of 2 MiB: Linux reads at most the device's
    /// read-ahead window (read_ahead_kb, 8 MiB here) per call and drops the rest, so one call for a 4 GB layer read
    /// 0.2 % of it. Once the device's queue is full a call waits for room (about 0.4 s per GB here): callers that must
    /// not wait ask from a thread of their own.
    public func prefetch(in range: Range<Int>) {
        guard let base, size > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = max(range.lowerBound, 0) / page * page
        let end = min(range.upperBound, size)
        guard end > start else { return }
        for piece in stride(from: start, to: end, by: Self.prefetchPiece) {
            madvise(UnsafeMutableRawPointer(mutating: base) + piece, min(Self.prefetchPiece, end - piece), MADV_WILLNEED)
        }
    }

    static let prefetchPiece = 2 << 20

    /// Drops the cached pages wholly inside `range` from the page cache (POSIX_FADV_DONTNEED; pages still mapped by
    /// this or another process, and the partial pages at either end, stay). For a reader streaming a file larger than
    /// RAM once: the kernel's reclaim keeps pages that were mapped and used (an active list) and evicts those read
    /// ahead but not yet touched, so without this the next layer's read-ahead is thrown away and read again.
    public func dropCached(in range: Range<Int>) {
        let start = max(range.lowerBound, 0), end = min(range.upperBound, size)
        guard end > start else { return }
        _ = posix_fadvise(file.rawDescriptor, off_t(start), off_t(end - start), POSIX_FADV_DONTNEED)
    }

    /// Bytes of the pages touching `range` that are in the page cache now (mincore), whether or not this process has
    /// them mapped.
    public func cachedBytes(in range: Range<Int>) -> Int {
        guard let base, size > 0 else { return 0 }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = max(range.lowerBound, 0) / page * page, end = min(range.upperBound, size)
        guard end > start else { return 0 }
        var resident = [UInt8](repeating: 0, count: (end - start + page - 1) / page)
        guard mincore(UnsafeMutableRawPointer(mutating: base) + start, end - start, &resident) == 0 else { return 0 }
        return resident.reduce(0) { $0 + Int($1 & 1) } * page
    }

    /// A copy of a few bytes read with `pread`, not through the mapping: touching a mapped page makes the kernel read
    /// around it (up to the device's read-ahead, often megabytes) and keep those pages mapped, which for a 16-byte
    /// companion tensor read once per expert is all cost and no use.
    public func copyBytes(in range: Range<Int>) throws(FileIOError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: range.count)
        let result: Result<Void, FileIOError> = out.withUnsafeMutableBytes { buffer in
            do throws(FileIOError) { try file.readExactly(into: buffer, at: range.lowerBound); return .success(()) } catch {
                return .failure(error)
            }
        }
        try result.get()
        return out
    }

    /// A sub-range of the file; the caller guarantees `range` lies inside the file.
    public func bytes(in range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[range])
    }
}
