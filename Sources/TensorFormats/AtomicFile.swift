// Small files (config.json, index.json) written whole under a temp name, fsynced and renamed.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum AtomicFile {
    /// Writes `bytes` to `path` so that `path` either keeps its old content or has all of the new.
    public static func write(_ bytes: [UInt8], to path: String) throws(SafetensorsError) {
        let temporary = path + ".partial"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(file: temporary, operation: "open", errno: errno) }
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { buffer in buffer.baseAddress.map { Glibc.write(fd, $0 + done, bytes.count - done) } ?? 0 }
            if n < 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd); unlink(temporary)
                throw .io(file: temporary, operation: "write", errno: code)
            }
            done += n
        }
        guard fsync(fd) == 0 else { let code = errno; close(fd); unlink(temporary); throw .io(file: temporary, operation: "fsync", errno: code) }
        close(fd)
        guard rename(temporary, path) == 0 else { let code = errno; unlink(temporary); throw .io(file: path, operation: "rename", errno: code) }
    }

    /// Writes text as UTF-8.
    public static func write(_ text: String, to path: String) throws(SafetensorsError) {
        try write(Array(text.utf8), to: path)
    }
}
