// The resume journal beside a conversion's temp file: one line per finished unit (a whole tensor) with the XXH3 of its
// bytes and a fingerprint of the source files it was made from (size, modification time, header hash), appended only
// after the data is durable. `--resume` keeps a unit only when its bytes still hash to the recorded value and its
// sources are unchanged; a journal written for another layout is ignored.
import Foundation
import OutputPlanning
import TensorFormats

final class ConversionJournal {
    let path: String
    private let layoutHash: String
    private var file: PositionalFile?
    private var end = 0

    /// One recorded unit.
    struct Unit: Equatable { let hash: UInt64; let sources: UInt64 }

    static func path(for output: String) -> String { output + ".journal" }

    init(output: String, layout: GGUFLayout, recipe: RecipeName) {
        path = ConversionJournal.path(for: output)
        layoutHash = ContentHash.hex(ConversionPlan.layoutHash(layout, recipe: recipe))
    }

    private var header: String { "moeq-journal 2 \(layoutHash)\n" }

    /// Units recorded by an earlier run of the same layout: name → hash and source fingerprint.
    func recorded() -> [String: Unit] {
        guard let bytes = try? PositionalFile.readAll(path) else { return [:] }
        var lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.first.map({ $0 + "\n" }) == Substring(header) else { return [:] }
        lines.removeFirst()
        var units: [String: Unit] = [:]
        for line in lines {
            let parts = line.split(separator: " ", maxSplits: 2)
            // A torn last line (killed mid-append) fails to parse and is simply not trusted.
            guard parts.count == 3, parts[0].count == 16, parts[1].count == 16, let hash = UInt64(parts[0], radix: 16),
                let sources = UInt64(parts[1], radix: 16), !parts[2].isEmpty
            else { continue }
            units[String(parts[2])] = Unit(hash: hash, sources: sources)
        }
        return units
    }

    /// Starts a fresh journal, or continues the existing one when `keep`.
    func open(keep: Bool) throws {
        if !keep || !PositionalFile.exists(path) { try AtomicFile.write(header, to: path) }
        let file = try PositionalFile(path: path, access: .writeOnly)
        end = try file.size()
        self.file = file
    }

    /// Records a finished unit (the caller has made its data durable first); durable when this returns.
    func record(_ name: String, _ unit: Unit) throws {
        guard let file else { return }
        let line = Array("\(ContentHash.hex(unit.hash)) \(ContentHash.hex(unit.sources)) \(name)\n".utf8)
        try file.write(line, at: end)
        end += line.count
        try file.sync(metadata: false)
    }

    func remove() {
        close()
        unlink(path)
    }

    func close() {
        file?.close()
        file = nil
    }
}

/// Which source files a unit was made from, as they are now: a change in any (size, mtime, header) changes it.
final class SourceFingerprints {
    private var identities: [String: UInt64] = [:]

    /// The fingerprint of the files holding `weights`' stored tensors.
    func fingerprint(_ weights: [SourceWeight]) throws -> UInt64 {
        var paths: [String] = []
        for weight in weights {
            for stored in weight.storedTensors where !paths.contains(stored.file.path) { paths.append(stored.file.path) }
        }
        let hasher = ContentHasher()
        for path in paths.sorted() {
            var value = try identity(of: path, file: weights.lazy.flatMap(\.storedTensors).first { $0.file.path == path }?.file)
            withUnsafeBytes(of: &value) { hasher.update($0) }
        }
        return hasher.digest
    }

    private func identity(of path: String, file: SafetensorsFile?) throws -> UInt64 {
        if let known = identities[path] { return known }
        let status = try PositionalFile.identity(path)
        let hasher = ContentHasher()
        Array(path.utf8).withUnsafeBytes { hasher.update($0) }
        [Int64(status.size), status.modifiedNanoseconds].withUnsafeBytes { hasher.update($0) }
        if let file { hasher.update(file.mapping.bytes(in: 0..<min(file.header.dataStart, file.mapping.size))) }
        identities[path] = hasher.digest
        return hasher.digest
    }
}
