// One output policy for every command that writes: an output is never a file the command reads (paths resolved,
// symlinks and hard links followed), an existing file moeq did not write is replaced only with --force, and a
// directory is written only when it is new, empty, or written before by moeq (its marker file).
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

public enum OutputPolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    case isInput(output: String, input: String)
    case exists(output: String, what: String)
    case directoryInUse(output: String, reason: String)

    public var description: String {
        switch self {
        case let .isInput(output, input):
            "\(output): this output is an input of the same command (\(input)); choose another output path"
        case let .exists(output, what):
            "\(output): \(what); pass --force to replace it, or choose another path"
        case let .directoryInUse(output, reason): "\(output): \(reason)"
        }
    }
}

public struct OutputPolicy {
    /// The marker file moeq leaves in every directory it writes (so a later run may replace it).
    public static let marker = ".moeq-output"

    /// Identities of every file the command reads (a directory input counts with every regular file in it).
    private var inputs: [(path: String, identity: FileIdentity)] = []
    private var inputDirectories: [(path: String, identity: FileIdentity)] = []
    public let force: Bool

    /// `inputs`: files and directories the command reads (missing ones are ignored: their readers report them).
    public init(inputs: [String], force: Bool) {
        self.force = force
        for input in inputs where !input.isEmpty {
            guard let identity = try? PositionalFile.identity(input) else { continue }
            if OutputPolicy.isDirectory(input) {
                inputDirectories.append((input, identity))
                for name in (try? FileManager.default.contentsOfDirectory(atPath: input)) ?? [] {
                    let path = (input as NSString).appendingPathComponent(name)
                    if !OutputPolicy.isDirectory(path), let file = try? PositionalFile.identity(path) { self.inputs.append((path, file)) }
                }
            } else {
                self.inputs.append((input, identity))
            }
        }
    }

    static func isDirectory(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    /// Refuses `output` when it is an input (or a link to one).
    public func checkNotInput(_ output: String) throws(OutputPolicyError) {
        guard let identity = try? PositionalFile.identity(output) else { return }
        if let input = (inputs + inputDirectories).first(where: { $0.identity.isSameFile(as: identity) }) {
            throw .isInput(output: output, input: input.path)
        }
    }

    /// Checks a file output and the files written beside it: none is an input; an existing one is replaced only when
    /// `writtenByMoeq` says moeq wrote it, or with --force.
    public func checkFile(
        _ output: String, companions: [String] = [], writtenByMoeq: (String) -> Bool = { _ in false }
    ) throws(OutputPolicyError) {
        for path in [output] + companions { try checkNotInput(path) }
        if OutputPolicy.isDirectory(output) {
            throw .directoryInUse(output: output, reason: "is a directory; name a file")
        }
        var status = stat()
        if stat(output, &status) == 0, (status.st_mode & S_IFMT) != S_IFREG {
            // Replacing a device, FIFO or socket with a regular file is never meant, --force or not.
            throw .directoryInUse(output: output, reason: "is not a regular file (a device, pipe or socket); name a regular file")
        }
        if !force, PositionalFile.exists(output), !writtenByMoeq(output) {
            throw .exists(
                output: output,
                what: OutputPolicy.hasManifest(output)
                    ? "moeq wrote this file as another kind of output (a model where an importance matrix goes, or the reverse)"
                    : "a file already exists and moeq did not write it")
        }
    }

    /// Checks a directory output: not an input directory, not holding an input, and new, empty or moeq's own.
    public func checkDirectory(_ output: String) throws(OutputPolicyError) {
        try checkNotInput(output)
        guard PositionalFile.exists(output) else { return }
        guard OutputPolicy.isDirectory(output) else { throw .directoryInUse(output: output, reason: "exists and is not a directory") }
        let directory = try? PositionalFile.identity(output)
        for input in inputs {
            let parent = (input.path as NSString).deletingLastPathComponent
            if let directory, let parentIdentity = try? PositionalFile.identity(parent.isEmpty ? "." : parent),
                parentIdentity.isSameFile(as: directory)
            {
                throw .isInput(output: output, input: input.path)
            }
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: output)) ?? []
        if force || names.isEmpty || names.contains(OutputPolicy.marker) { return }
        throw .exists(
            output: output,
            what: "a directory with \(names.count) file\(names.count == 1 ? "" : "s") already exists and moeq did not write it")
    }

    // MARK: Recognizers for files moeq writes

    /// A file with moeq's manifest beside it (converted and merged GGUFs, imatrix files, expert packs).
    public static func hasManifest(_ path: String) -> Bool { PositionalFile.exists(OutputManifest.path(for: path)) }

    /// A file moeq wrote as the same kind of output: its manifest beside it and, for a GGUF, `general.type` equal to
    /// `ggufType` ("model", "imatrix"), so an imatrix run does not silently replace a converted model or the reverse.
    public static func hasManifest(_ path: String, ggufType: String) -> Bool {
        guard hasManifest(path) else { return false }
        guard starts(path, with: Array("GGUF".utf8)) else { return true }
        guard let file = try? GGUFFile(path: path) else { return false }
        // The later files of a split model carry only the split keys, no general.type.
        let type = file[GGUFKey.type]?.stringValue
        return type == ggufType || (type == nil && ggufType == "model" && file[GGUFKey.splitCount] != nil)
    }

    /// A file that starts with one of moeq's magics.
    public static func starts(_ path: String, with magic: [UInt8]) -> Bool {
        guard let file = try? PositionalFile(path: path) else { return false }
        var head = [UInt8](repeating: 0, count: magic.count)
        let got = head.withUnsafeMutableBytes { (try? file.read(into: $0, at: 0)) ?? 0 }
        return got == magic.count && head == magic
    }
}

/// A directory built under a temporary name (`.NAME.partial` beside it), locked while being written, and moved into
/// place whole: the final name is either the old directory or the complete new one.
public final class StagedDirectory {
    public let path: String
    public let temporaryPath: String
    private var lock: Int32 = -1

    public init(path: String) throws(FileIOError) {
        let trimmed = path.hasSuffix("/") && path.count > 1 ? String(path.dropLast()) : path
        self.path = trimmed
        temporaryPath = StagedFile.temporaryPath(for: trimmed)
        if mkdir(temporaryPath, 0o755) != 0 && errno != EEXIST { throw FileIOError(file: temporaryPath, operation: "mkdir", code: errno) }
        lock = open(temporaryPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard lock >= 0 else { throw FileIOError(file: temporaryPath, operation: "open", code: errno) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            close(lock)
            lock = -1
            throw FileIOError(
                file: trimmed, operation: "lock", code: 0,
                detail:
                    """
                    another moeq process is writing this directory (its staging directory \(temporaryPath) is locked); wait for it or \
                    choose another output
                    """
            )
        }
        // Whatever an interrupted earlier run left in the staging directory is not ours to keep.
        for name in (try? FileManager.default.contentsOfDirectory(atPath: temporaryPath)) ?? [] {
            try? FileManager.default.removeItem(atPath: (temporaryPath as NSString).appendingPathComponent(name))
        }
    }

    deinit { if lock >= 0 { abandon() } }

    /// Where a file named `name` is written while staging.
    public func file(_ name: String) -> String { (temporaryPath as NSString).appendingPathComponent(name) }

    /// Marks the directory as moeq's, makes it durable, and moves it into place (replacing an earlier moeq directory).
    public func finish() throws(FileIOError) {
        try AtomicFile.write("written by moeq\n", to: file(OutputPolicy.marker))
        AtomicFile.syncDirectory(of: file(OutputPolicy.marker))
        var replaced: String?
        if PositionalFile.exists(path) {
            let old = StagedFile.temporaryPath(for: path) + ".old"
            try? FileManager.default.removeItem(atPath: old)
            guard rename(path, old) == 0 else { throw FileIOError(file: path, operation: "rename to \(old)", code: errno) }
            replaced = old
        }
        guard rename(temporaryPath, path) == 0 else {
            let code = errno
            if let replaced { _ = rename(replaced, path) }
            throw FileIOError(file: path, operation: "rename from \(temporaryPath)", code: code)
        }
        AtomicFile.syncDirectory(of: path)
        if let replaced { try? FileManager.default.removeItem(atPath: replaced) }
        close(lock)
        lock = -1
    }

    /// Removes the staging directory; the final name is untouched.
    public func abandon() {
        try? FileManager.default.removeItem(atPath: temporaryPath)
        if lock >= 0 { close(lock) }
        lock = -1
    }
}
