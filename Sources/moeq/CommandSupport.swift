// Shared CLI plumbing: library errors become one `error:` line on stderr and a non-zero exit (1; 130 when interrupted),
// the output policy every writing command applies before it writes, SIGINT/SIGTERM turned into a clean stop, and
// number formatting.
import ArgumentParser
import ConversionPipeline
import Dispatch
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

/// Runs `body`; any thrown library error is printed as `error: …` and ends the process with status 1 (128 + the signal
/// after an interruption, as a shell reports it: 130 for SIGINT, 143 for SIGTERM).
func reportingErrors(_ body: () throws -> Void) throws {
    ResourceUsage.shared.start()
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        printError("error: \(error.message)")
        throw ExitCode(1)
    } catch let error as ConversionError {
        printError("error: \(error)")
        if case .interrupted = error { throw ExitCode(Interruption.exitStatus) }
        throw ExitCode(1)
    } catch {
        printError("error: \(error)")
        throw ExitCode(1)
    }
}

func printError(_ text: String) {
    var standardError = StandardError()
    print(text, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { FileHandle.standardError.write(Data(string.utf8)) }
}

// MARK: - Output policy

/// `--force`, shared by every command that writes.
struct OutputOptions: ParsableArguments {
    @Flag(help: "Replace an existing output that moeq did not write (an output that is an input is refused even so).")
    var force = false
}

/// One output a command is about to write.
enum PlannedOutput {
    /// A file, the files written beside it, and whether an existing one was written by moeq (then replaced freely).
    case file(String, companions: [String] = [], writtenByMoeq: (String) -> Bool = { _ in false })
    case directory(String)
}

/// Applies the output policy before anything is written: no output is an input (after resolving links), an existing
/// file or directory moeq did not write needs --force. Throws with the path and what to do.
func checkOutputs(_ outputs: [PlannedOutput], inputs: [String?], force: Bool) throws {
    let policy = OutputPolicy(inputs: inputs.compactMap { $0 }, force: force)
    for output in outputs {
        switch output {
        case let .file(path, companions, writtenByMoeq):
            try policy.checkFile(path, companions: companions, writtenByMoeq: writtenByMoeq)
            try checkWritableDirectory(of: path)
        case let .directory(path): try policy.checkDirectory(path)
        }
    }
}

/// A file output's directory exists and is writable, checked before any work (not hours later at the rename).
func checkWritableDirectory(of path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    let target = directory.isEmpty ? "." : directory
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: target, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw FileIOError(file: path, operation: "check the output's directory", code: ENOENT, detail: "\(target) is not a directory")
    }
    guard access(target, W_OK) == 0 else { throw FileIOError(file: path, operation: "check the output's directory", code: errno) }
}

/// A model file moeq wrote (its manifest beside it; a GGUF of `general.type` model) may be replaced by a new
/// conversion without --force.
func isMoeqModel(_ path: String) -> Bool { OutputPolicy.hasManifest(path, ggufType: "model") }

/// An importance matrix moeq wrote may be replaced by a new one without --force.
func isMoeqImatrix(_ path: String) -> Bool { OutputPolicy.hasManifest(path, ggufType: GGUFKey.imatrixType) }

// MARK: - Interruption

/// SIGINT and SIGTERM stop long commands cleanly: the flag is polled between chunks, the finished work is made durable
/// and the command exits 130 naming how to continue. A second signal ends the process at once.
enum Interruption {
    nonisolated(unsafe) private static var stopped = false
    nonisolated(unsafe) private static var signalNumber: Int32 = SIGINT
    nonisolated(unsafe) private static var sources: [DispatchSourceSignal] = []
    private static let lock = NSLock()

    static var requested: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopped
    }

    /// What a shell reports for the signal that stopped the run: 128 + its number (130 for SIGINT, 143 for SIGTERM).
    static var exitStatus: Int32 {
        lock.lock()
        defer { lock.unlock() }
        return 128 + signalNumber
    }

    /// Installs the handlers (once per process).
    static func install() {
        lock.lock()
        defer { lock.unlock() }
        guard sources.isEmpty else { return }
        for number in [SIGINT, SIGTERM] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler {
                lock.lock()
                let again = stopped
                stopped = true
                signalNumber = number
                lock.unlock()
                if again { exit(128 + number) }
                FileHandle.standardError.write(
                    Data("\nmoeq: stopping after the current chunk (the finished tensors are kept for --resume)…\n".utf8))
            }
            source.resume()
            sources.append(source)
        }
    }
}

// MARK: - Numbers

/// 1234567 → "1,234,567".
func grouped(_ value: Int) -> String {
    let digits = String(value.magnitude)
    var out = ""
    for (i, ch) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return (value < 0 ? "-" : "") + out
}

/// Bytes with a binary unit: "1.50 GiB".
func humanBytes(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.2f %@", value, units[unit])
}

/// Parameters with a decimal unit: "1.03 T", "32.9 B".
func humanCount(_ count: Int) -> String {
    let value = Double(count)
    if value >= 1e12 { return String(format: "%.3f T", value / 1e12) }
    if value >= 1e9 { return String(format: "%.2f B", value / 1e9) }
    if value >= 1e6 { return String(format: "%.2f M", value / 1e6) }
    if value >= 1e3 { return String(format: "%.1f K", value / 1e3) }
    return String(count)
}

/// Warns when a window is longer than the context the model was trained for (llama.cpp warns the same way): the
/// numbers are computed, but positions past it are outside what the model has seen.
func warnBeyondTrainedContext(_ length: Int, spec: ModelSpec, what: String) {
    guard spec.maxPositionEmbeddings > 0, length > spec.maxPositionEmbeddings else { return }
    printError(
        "warning: \(what) of \(length) tokens is longer than the model's trained context (max_position_embeddings "
            + "\(spec.maxPositionEmbeddings)); scores past it say little about the model")
}

// MARK: - Sizes and memory

/// A byte count on the command line: a number with an optional unit — B; KB, MB, GB, TB (powers of 1000); K, M, G, T
/// or KiB, MiB, GiB, TiB (powers of 1024); case-insensitive, a space allowed ("1.5 GiB").
struct ByteSize: ExpressibleByArgument {
    /// For help texts (ArgumentParser prints an option's help with a value it refuses).
    static let units = "a number with a unit: B; KB, MB, GB, TB, PB (1000ⁿ); K, M, G, T, P or KiB, MiB, GiB, TiB, PiB (1024ⁿ)"
    let bytes: Int
    init?(argument: String) {
        let text = argument.trimmingCharacters(in: .whitespaces).lowercased()
        let split = text.firstIndex(where: { !($0.isNumber || $0 == ".") }) ?? text.endIndex
        let unit = text[split...].trimmingCharacters(in: .whitespaces)
        let scales: [String: Double] = [
            "": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "pb": 1e15,
            "k": 0x1p10, "kib": 0x1p10, "m": 0x1p20, "mib": 0x1p20, "g": 0x1p30, "gib": 0x1p30, "t": 0x1p40, "tib": 0x1p40,
            "p": 0x1p50, "pib": 0x1p50,
        ]
        guard let number = Double(text[..<split]), number.isFinite, number >= 0, let scale = scales[unit],
            number * scale < 9e18
        else { return nil }
        bytes = Int(number * scale)
    }
}

/// Peak resident set size of this process so far, in bytes (getrusage; Linux reports KiB).
func peakResidentBytes() -> Int {
    var usage = rusage()
    guard getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage) == 0 else { return 0 }
    return Int(usage.ru_maxrss) * 1024
}

/// What a command used, for its `--json` summary: peak resident memory, split into anonymous and file-backed pages
/// (mapped checkpoint pages count: `top` shows them), and bytes read and written. The split peaks are sampled from
/// /proc/self/status every 20 ms from the command's start (`ru_maxrss` gives the exact peak of the sum); the byte
/// counts come from /proc/self/io: `read_bytes`/`written_bytes` through system calls, `storage_read_bytes` /
/// `storage_written_bytes` what reached the storage layer (mapped pages faulted in from disk included).
final class ResourceUsage: @unchecked Sendable {
    static let shared = ResourceUsage()
    private let lock = NSLock()
    private var peakAnon = 0, peakFile = 0
    private var started = false

    func start() {
        lock.lock()
        defer { lock.unlock() }
        guard !started else { return }
        started = true
        let thread = Thread { [self] in
            while true {
                sample()
                usleep(20_000)
            }
        }
        thread.stackSize = 1 << 16
        thread.start()
    }

    private static func fields(_ path: String) -> [String: Int] {
        // /proc files report size 0: read to the end rather than by size.
        guard let handle = FileHandle(forReadingAtPath: path) else { return [:] }
        defer { handle.closeFile() }
        let text = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        var out: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let value = line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { Int($0) }
            if let value { out[String(line[..<colon])] = value }
        }
        return out
    }

    private func sample() {
        let status = Self.fields("/proc/self/status")
        lock.lock()
        peakAnon = max(peakAnon, (status["RssAnon"] ?? 0) * 1024)
        peakFile = max(peakFile, (status["RssFile"] ?? 0) * 1024)
        lock.unlock()
    }

    /// The summary fields, as of now.
    var json: [(String, JSONValue)] {
        sample()
        let io = Self.fields("/proc/self/io")
        lock.lock()
        defer { lock.unlock() }
        return [
            ("peak_rss_bytes", .integer(Int64(peakResidentBytes()))), ("peak_rss_anon_bytes", .integer(Int64(peakAnon))),
            ("peak_rss_file_bytes", .integer(Int64(peakFile))), ("read_bytes", .integer(Int64(io["rchar"] ?? 0))),
            ("written_bytes", .integer(Int64(io["wchar"] ?? 0))), ("storage_read_bytes", .integer(Int64(io["read_bytes"] ?? 0))),
            ("storage_written_bytes", .integer(Int64(io["write_bytes"] ?? 0))),
        ]
    }

    /// `json` as an object, for summaries built as dictionaries.
    var object: JSONValue { .object(JSONObject(json)) }
}

/// `--cache-type`: the KV cache types llama.cpp's `-ctk` / `-ctv` accept, as GGUF names or llama.cpp's lowercase.
struct CacheType: ExpressibleByArgument {
    static let accepted: [QuantType] = [.f16, .bf16, .f32, .q8_0, .q4_0, .q4_1, .iq4_nl, .q5_0, .q5_1]
    let type: QuantType

    init(_ type: QuantType) { self.type = type }

    init?(argument: String) {
        guard let type = QuantType(argument: argument), CacheType.accepted.contains(type) else { return nil }
        self.type = type
    }

    static var allValueStrings: [String] { accepted.map(\.rawValue) }
    var defaultValueDescription: String { type.rawValue }
}

/// A JSON document with the run's `resources` (peak RSS anon/file, bytes read and written) added as its last key.
func withResources(_ document: JSONValue) -> JSONValue {
    guard case .object(var object) = document else { return document }
    object["resources"] = ResourceUsage.shared.object
    return .object(object)
}
