// The resume journal beside a conversion's temp file: one line per finished unit (a whole tensor) with the
// XXH3 of its bytes, appended only after the data is durable. `--resume` skips units whose bytes still hash
// to the recorded value; a journal written for another layout is ignored.
import Foundation
import TensorFormats

final class ConversionJournal {
    let path: String
    private let layoutHash: String
    private var handle: FileHandle?

    static func path(for output: String) -> String { output + ".journal" }

    init(output: String, layout: GGUFLayout, recipe: RecipeName) {
        path = ConversionJournal.path(for: output)
        layoutHash = ContentHash.hex(ContentHash.xxh3(layout.header + Array(recipe.rawValue.utf8)))
    }

    /// Units recorded by an earlier run of the same layout: name → XXH3.
    func recorded() -> [String: UInt64] {
        guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else { return [:] }
        var lines = text.split(separator: "\n")
        guard lines.first == Substring("moeq-journal 1 \(layoutHash)") else { return [:] }
        lines.removeFirst()
        var units: [String: UInt64] = [:]
        for line in lines {
            let parts = line.split(separator: " ", maxSplits: 1)
            // A torn last line (killed mid-append) fails to parse and is simply not trusted.
            guard parts.count == 2, parts[0].count == 16, let hash = UInt64(parts[0], radix: 16) else { continue }
            units[String(parts[1])] = hash
        }
        return units
    }

    /// Starts a fresh journal, or continues the existing one when `keep`.
    func open(keep: Bool) throws {
        if !keep || !FileManager.default.fileExists(atPath: path) {
            try AtomicFile.write("moeq-journal 1 \(layoutHash)\n", to: path)
        }
        handle = FileHandle(forWritingAtPath: path)
        try handle?.seekToEnd()
    }

    /// Records a finished unit (the caller has made its data durable first).
    func record(_ name: String, hash: UInt64) throws {
        try handle?.write(contentsOf: Data("\(ContentHash.hex(hash)) \(name)\n".utf8))
        try handle?.synchronize()
    }

    func remove() {
        try? handle?.close()
        handle = nil
        try? FileManager.default.removeItem(atPath: path)
    }

    func close() {
        try? handle?.close()
        handle = nil
    }
}
