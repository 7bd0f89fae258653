// Small files (config.json, index.json, manifests, journals, parts) written whole under a temp name, fsynced and renamed,
// then the directory fsynced: the name holds either the old content or all of the new, durably.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum AtomicFile {
    /// Writes `bytes` to `path` so that `path` either keeps its old content or has all of the new.
    /// The temporary is created exclusively under a hidden, unique name beside `path` (`.NAME.PID-RANDOM.partial`): a
    /// file or symlink someone left at any name is never written through, a leftover never matches `NAME*` globs, and
    /// two writers never share one.
    public static func write(_ bytes: [UInt8], to path: String) throws(FileIOError) {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { String(path[...$0]) } ?? ""
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let temporary = directory + ".\(name).\(getpid())-\(UInt32.random(in: 0...UInt32.max)).partial"
        do throws(FileIOError) {
            let file = try PositionalFile(path: temporary, access: .writeOnly, create: true, exclusive: true)
            try file.write(bytes, at: 0)
            try file.sync()
            file.close()
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let code = errno
            unlink(temporary)
            throw FileIOError(file: path, operation: "rename from \(temporary)", code: code)
        }
        syncDirectory(of: path)
    }

    /// Writes text as UTF-8.
    public static func write(_ text: String, to path: String) throws(FileIOError) {
        try write(Array(text.utf8), to: path)
    }

    /// fsyncs the directory holding `path`, so a rename into it is durable.
    public static func syncDirectory(of path: String) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let fd = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); close(fd) }
    }
}
