// The one place moeq talks to files: positioned reads and writes over swift-system (EINTR retried, short
// transfers completed), and one error type that names the file, the operation and the system's reason in words,
// with what to do about it.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemPackage

/// A failed file operation: which file, what was done, and the system's error (`Errno`, with its strerror text).
public struct FileIOError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    public let operation: String
    /// The errno value; 0 for conditions the system did not report (a file shorter than its header says).
    public let code: Int32
    /// Extra detail for conditions without an errno.
    public var detail: String? = nil

    public init(file: String, operation: String, code: Int32, detail: String? = nil) {
        self.file = file
        self.operation = operation
        self.code = code
        self.detail = detail
    }

    init(file: String, operation: String, _ errno: Errno) { self.init(file: file, operation: operation, code: errno.rawValue) }

    /// The system's text for `code` ("No space left on device").
    public var systemReason: String { code == 0 ? (detail ?? "failed") : Errno(rawValue: code).description }

    /// What to do about it, when there is something obvious.
    public var advice: String? {
        switch code {
        case ENOSPC, EDQUOT: "free space on that file system or write the output elsewhere"
        case EROFS: "the file system is read-only: write the output elsewhere"
        case EACCES, EPERM: "check the permissions of the file and its directory"
        case ENOENT: "check the path"
        case EISDIR: "a directory is in the way: name a file"
        case ENOTDIR: "a part of the path is not a directory"
        case EMFILE, ENFILE: "too many open files: raise `ulimit -n`"
        case EIO: "the device reported an I/O error: check the disk (dmesg)"
        default: nil
        }
    }

    /// The message without the file name: "write failed: No space left on device; free space on …".
    public var reasonWithoutFile: String {
        var text = "\(operation) failed: \(systemReason)"
        if code != 0, let detail { text += " (\(detail))" }
        if let advice { text += "; \(advice)" }
        return text
    }

    public var description: String { "\(file): \(reasonWithoutFile)" }
}

/// An open file read and written at absolute offsets. Closed when released.
public final class PositionalFile: @unchecked Sendable {
    public let path: String
    public let descriptor: FileDescriptor
    private var isOpen = true

    public enum Access: Sendable { case readOnly, readWrite, writeOnly }

    /// Opens `path`. `create` makes it if missing (mode 0644); `truncate` empties it; `exclusive` fails when it exists.
    public init(
        path: String, access: Access = .readOnly, create: Bool = false, truncate: Bool = false, exclusive: Bool = false,
        extraFlags: Int32 = 0
    ) throws(FileIOError) {
        self.path = path
        var options: FileDescriptor.OpenOptions = [.closeOnExec]
        if create { options.insert(.create) }
        if truncate { options.insert(.truncate) }
        if exclusive { options.insert(.exclusiveCreate) }
        options.insert(FileDescriptor.OpenOptions(rawValue: extraFlags))
        let mode: FileDescriptor.AccessMode =
            switch access {
            case .readOnly: .readOnly
            case .readWrite: .readWrite
            case .writeOnly: .writeOnly
            }
        // Read-only opens do not wait: a FIFO without a writer would otherwise block the open forever. Reads then
        // block as usual (a pipe with no writer reads as end of file).
        if access == .readOnly { options.insert(.nonBlocking) }
        do {
            descriptor = try FileDescriptor.open(
                FilePath(path), mode, options: options, permissions: create ? [.ownerReadWrite, .groupRead, .otherRead] : nil)
        } catch let error as Errno {
            throw FileIOError(file: path, operation: "open", error)
        } catch {
            throw FileIOError(file: path, operation: "open", code: EIO, detail: "\(error)")
        }
        if access == .readOnly {
            let flags = fcntl(descriptor.rawValue, F_GETFL)
            if flags >= 0 { _ = fcntl(descriptor.rawValue, F_SETFL, flags & ~O_NONBLOCK) }
        }
    }

    deinit { if isOpen { try? descriptor.close() } }

    public func close() {
        guard isOpen else { return }
        isOpen = false
        try? descriptor.close()
    }

    public var rawDescriptor: Int32 { descriptor.rawValue }

    /// The file's size in bytes.
    public func size() throws(FileIOError) -> Int {
        do { return Int(try descriptor.stat().size) } catch { throw FileIOError(file: path, operation: "fstat", error) }
    }

    /// Reads up to `buffer.count` bytes at `offset`, fewer only at end of file; returns how many.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(FileIOError) -> Int {
        var done = 0
        while done < buffer.count {
            let n: Int
            do {
                n = try descriptor.read(
                    fromAbsoluteOffset: Int64(offset + done), into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            } catch let error as Errno {
                throw FileIOError(file: path, operation: "read at byte \(offset + done)", error)
            } catch {
                throw FileIOError(file: path, operation: "read at byte \(offset + done)", code: EIO)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads exactly `buffer.count` bytes at `offset`; a file that ends first is an error naming where.
    public func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws(FileIOError) {
        let got = try read(into: buffer, at: offset)
        guard got == buffer.count else {
            throw FileIOError(
                file: path, operation: "read at byte \(offset + got)", code: 0,
                detail: "the file ends there, \(buffer.count - got) bytes short (shorter than its header says)")
        }
    }

    /// Writes all of `bytes` at `offset`.
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(FileIOError) {
        var done = 0
        while done < bytes.count {
            do {
                done += try descriptor.write(toAbsoluteOffset: Int64(offset + done), UnsafeRawBufferPointer(rebasing: bytes[done...]))
            } catch let error as Errno {
                throw FileIOError(file: path, operation: "write at byte \(offset + done)", error)
            } catch {
                throw FileIOError(file: path, operation: "write at byte \(offset + done)", code: EIO)
            }
        }
    }

    public func write(_ bytes: [UInt8], at offset: Int) throws(FileIOError) {
        let result: Result<Void, FileIOError> = bytes.withUnsafeBytes { buffer in
            do throws(FileIOError) { try write(buffer, at: offset); return .success(()) } catch { return .failure(error) }
        }
        try result.get()
    }

    /// Sets the file's size (sparse where the file system allows).
    public func resize(to size: Int) throws(FileIOError) {
        do { try descriptor.resize(to: Int64(size)) } catch let error as Errno {
            throw FileIOError(file: path, operation: "resize to \(size) bytes", error)
        } catch { throw FileIOError(file: path, operation: "resize", code: EIO) }
    }

    /// Makes written data durable (`fdatasync`); `metadata` also syncs size and times (`fsync`).
    public func sync(metadata: Bool = true) throws(FileIOError) {
        while (metadata ? fsync(descriptor.rawValue) : fdatasync(descriptor.rawValue)) != 0 {
            if errno == EINTR { continue }
            throw FileIOError(file: path, operation: metadata ? "fsync" : "fdatasync", code: errno)
        }
    }

    /// Takes an exclusive advisory lock without waiting; false when another process holds it.
    public func tryLockExclusive() throws(FileIOError) -> Bool {
        while flock(descriptor.rawValue, LOCK_EX | LOCK_NB) != 0 {
            if errno == EINTR { continue }
            if errno == EWOULDBLOCK { return false }
            throw FileIOError(file: path, operation: "lock", code: errno)
        }
        return true
    }

    // MARK: Whole small files

    /// Reads a whole (small) file: config, index, tokenizer, recipe, manifest, text. Files over `limit` bytes are
    /// refused. Pipes (`<(…)`, `/dev/stdin`) and files whose size the system does not know (`/proc`) are read to
    /// their end; devices and directories are refused.
    public static func readAll(_ path: String, limit: Int = 1 << 31) throws(FileIOError) -> [UInt8] {
        let file = try PositionalFile(path: path)
        let status: Stat
        do { status = try file.descriptor.stat() } catch { throw FileIOError(file: path, operation: "fstat", error) }
        switch status.type {
        case .regular where status.size > 0: break
        case .regular, .fifo, .socket: return try file.readStream(limit: limit)
        case .directory: throw FileIOError(file: path, operation: "read", code: EISDIR)
        default: throw FileIOError(file: path, operation: "read", code: 0, detail: "not a regular file or a pipe (a device?)")
        }
        let size = Int(status.size)
        guard size <= limit else {
            throw FileIOError(file: path, operation: "read", code: EFBIG, detail: "\(size) bytes; at most \(limit) expected for this file")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        let result: Result<Int, FileIOError> = bytes.withUnsafeMutableBytes { buffer in
            do throws(FileIOError) { return .success(try file.read(into: buffer, at: 0)) } catch { return .failure(error) }
        }
        return Array(bytes[0..<(try result.get())])
    }

    /// Reads from the current position to the end (a pipe, or a file of unknown size), at most `limit` bytes.
    private func readStream(limit: Int) throws(FileIOError) -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let result: Result<Int, FileIOError> = chunk.withUnsafeMutableBytes { buffer in
                do { return .success(try descriptor.read(into: buffer, retryOnInterrupt: true)) } catch let error as Errno {
                    return .failure(FileIOError(file: path, operation: "read at byte \(bytes.count)", error))
                } catch { return .failure(FileIOError(file: path, operation: "read", code: EIO)) }
            }
            let n = try result.get()
            if n == 0 { return bytes }
            guard bytes.count + n <= limit else {
                throw FileIOError(file: path, operation: "read", code: EFBIG, detail: "more than \(limit) bytes; at most \(limit) expected")
            }
            bytes += chunk[0..<n]
        }
    }

    /// Reads a whole text file as UTF-8; invalid UTF-8 is an error naming the first bad byte.
    public static func readText(_ path: String, limit: Int = 1 << 31) throws(FileIOError) -> String {
        let bytes = try readAll(path, limit: limit)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            var valid = 0
            for end in stride(from: bytes.count, through: 0, by: -1) where String(validating: bytes[0..<end], as: UTF8.self) != nil {
                valid = end
                break
            }
            throw FileIOError(file: path, operation: "read text", code: 0, detail: "byte \(valid) is not valid UTF-8")
        }
        return text
    }

    /// True when something exists at `path` (following symlinks).
    public static func exists(_ path: String) -> Bool { (try? FilePath(path).stat()) != nil }

    /// Size and modification time of `path` (following symlinks), for telling whether a file changed.
    public static func identity(_ path: String) throws(FileIOError) -> FileIdentity {
        do {
            let status = try FilePath(path).stat()
            return FileIdentity(
                size: Int(status.size), modifiedNanoseconds: Int64(status.st_mtim.tv_sec) * 1_000_000_000 + Int64(status.st_mtim.tv_nsec),
                device: UInt64(status.deviceID.rawValue), inode: UInt64(status.inode.rawValue))
        } catch {
            throw FileIOError(file: path, operation: "stat", error)
        }
    }
}

/// Which file a path names right now, and its size and modification time.
public struct FileIdentity: Sendable, Equatable, Hashable {
    public let size: Int
    public let modifiedNanoseconds: Int64
    public let device: UInt64
    public let inode: UInt64

    /// Same underlying file (device and inode), whatever path reached it.
    public func isSameFile(as other: FileIdentity) -> Bool { device == other.device && inode == other.inode }
}
