// `moeq convert … -o OUT.gguf`: one pass from any source encoding to GGUF. The layout is computed from headers first
// (so --dry-run knows the exact size), then each tensor is filled in row chunks — experts one at a time — decoded to
// f32, quantized and written at its offset (GGUFConversion+Fill.swift), journaled once durable, and renamed into place
// only after its manifest is durable. Peak memory is one chunk per thread.
import Foundation
import Dispatch
import ModelCatalog
import OutputPlanning
import QuantKernels
import TensorFormats

public struct ConversionSummary: Sendable {
    public let outputBytes: Int
    public let sourceBytes: Int
    public let seconds: Double
    public let typeCounts: [QuantType: Int]
    public let parameters: Int
    /// Tensors kept from an earlier run by --resume.
    public var keptTensors = 0
    public var bitsPerWeight: Double { parameters > 0 ? Double(outputBytes) * 8 / Double(parameters) : 0 }
}

public enum ConversionError: Error, Sendable, CustomStringConvertible {
    case shape(tensor: String, reason: String)
    case verification(file: String, tensors: [String])
    /// A NaN or infinity in a source weight: where it is.
    case nonFinite(tensor: String, source: String, file: String, row: Int, column: Int, value: Float)
    /// Stopped by SIGINT / SIGTERM; the finished tensors are durable for --resume.
    case interrupted(output: String, staged: String, kept: Int, total: Int)

    public var description: String {
        switch self {
        case let .verification(file, tensors):
            "\(file): \(tensors.count) tensors differ from the manifest: \(tensors.prefix(10).joined(separator: ", "))"
        case let .shape(tensor, reason): "GGUF tensor \(tensor): \(reason)"
        case let .nonFinite(tensor, source, file, row, column, value):
            "\(file): tensor \"\(source)\" row \(row) column \(column) holds \(value), which is not finite (making GGUF tensor \(tensor)); "
                + "the checkpoint is damaged or was saved with overflowed weights: re-download it, or fix that tensor"
        case let .interrupted(output, staged, kept, total):
            "interrupted: \(kept) of \(total) tensors of \(output) are durable in \(staged); run the same command with --resume to continue"
        }
    }
}

public enum GGUFConversion {
    /// Plans a conversion of the checkpoint at `path` (OutputPlanning's ConversionPlan).
    public static func plan(
        path: String, recipe: RecipeName, name: String? = nil, importance: ImportanceMatrix? = nil,
        rules: RecipeFile? = nil, skipUnknown: Bool = false, readsScales: Bool = true
    ) throws -> ConversionPlan {
        try ConversionPlan(
            path: path, recipe: recipe, name: name, importance: importance, rules: rules, skipUnknown: skipUnknown,
            readsScales: readsScales)
    }

    /// Rows per chunk: bounded memory, and a unit of parallel quantization.
    static let chunkRows = 256

    /// Rows per copy when bytes pass through unchanged: about 8 MiB.
    static func rawChunkRows(rowBytes: Int) -> Int { max(1, (8 << 20) / max(rowBytes, 1)) }

    /// Written bytes between fsyncs: the journal records tensors only after their data is durable, in batches…
    static let syncEveryBytes = Int(ProcessInfo.processInfo.environment["MOEQ_SYNC_MB"] ?? "512").map { $0 << 20 } ?? (512 << 20)
    /// …and at least this often, so an interruption loses at most a few seconds of finished tensors.
    static let syncEverySeconds = Double(ProcessInfo.processInfo.environment["MOEQ_SYNC_SECONDS"] ?? "2") ?? 2

    /// Writes the GGUF. `progress(bytesDone, bytesTotal)` follows each chunk. With `resume`, a previous run's temp file
    /// and journal are reused: tensors whose bytes still match the journal and whose source files are unchanged are not
    /// redone; an output already complete (its manifest verifies) is left as it is. The manifest is made durable first,
    /// then the final name appears (fsync + rename); then the journal goes. `tensorDone(name, type, bytes, kept)`
    /// follows each finished tensor. `part` writes only those tensors of the plan, laid out by its own layout (one
    /// file of a split pair). `cancelled` is polled between chunks: when it turns true the finished tensors are made
    /// durable and the run stops with `.interrupted`.
    public static func run(
        _ plan: ConversionPlan, output: String, threads: Int, resume: Bool = false,
        part: (indices: [Int], layout: GGUFLayout)? = nil, transforms: UnitTransforms = .standard,
        cancelled: @escaping () -> Bool = { false },
        beforeRename: () -> Void = {}, tensorDone: (String, QuantType, Int, Bool) -> Void = { _, _, _, _ in },
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> ConversionSummary {
        let start = Date()
        let layout = part?.layout ?? plan.layout
        let tensors = part.map { $0.indices.map { plan.tensors[$0] } } ?? plan.tensors
        func summary(kept: Int) -> ConversionSummary {
            var counts: [QuantType: Int] = [:]
            for info in layout.tensors { counts[info.type, default: 0] += 1 }
            return ConversionSummary(
                outputBytes: layout.fileSize, sourceBytes: plan.sourceBytes, seconds: Date().timeIntervalSince(start),
                typeCounts: counts, parameters: tensors.reduce(0) { $0 + $1.dimensions.reduce(1, *) }, keptTensors: kept)
        }
        if resume, !PositionalFile.exists(StagedFile.temporaryPath(for: output)), isComplete(output, layout: layout) {
            for (tensor, info) in zip(tensors, layout.tensors) { tensorDone(tensor.name, info.type, info.byteCount, true) }
            progress(layout.fileSize, layout.fileSize)
            return summary(kept: tensors.count)
        }
        let journal = ConversionJournal(output: output, layout: layout, recipe: plan.recipe)
        let writer = try GGUFWriter(path: output, layout: layout, resume: resume)
        let recorded = writer.reused ? journal.recorded() : [:]
        let fingerprints = SourceFingerprints()
        var done = 0, kept = 0, durable = 0
        var entries: [OutputManifest.Entry] = []
        // Finished tensors not yet in the journal: recorded after one fsync covers them all.
        var pending: [(String, ConversionJournal.Unit)] = []
        var pendingBytes = 0
        var lastSync = Date()
        func flush() throws {
            lastSync = Date()
            guard !pending.isEmpty else { return }
            try writer.syncData()
            for (name, unit) in pending { try journal.record(name, unit) }
            durable += pending.count
            pending.removeAll()
            pendingBytes = 0
        }
        func stopIfCancelled() throws {
            guard cancelled() else { return }
            try flush()
            throw ConversionError.interrupted(output: output, staged: writer.temporaryPath, kept: durable, total: tensors.count)
        }
        do {
            try journal.open(keep: writer.reused)
            for (tensor, info) in zip(tensors, layout.tensors) {
                let offset = layout.dataStart + info.offset
                let sources = try fingerprints.fingerprint(tensor.source.names.map { try plan.resolver.weight(named: $0) })
                if let unit = recorded[tensor.name], unit.sources == sources, try writer.storedHash(of: tensor.name) == unit.hash {
                    entries.append(.init(name: tensor.name, offset: offset, bytes: info.byteCount, xxh3: unit.hash))
                    pending.append((tensor.name, unit))
                    done += info.byteCount
                    kept += 1
                    progress(done, layout.fileSize)
                    tensorDone(tensor.name, info.type, info.byteCount, true)
                    continue
                }
                let hasher = ContentHasher()
                try fill(tensor, type: info.type, plan: plan, writer: writer, threads: threads, hasher: hasher, transforms: transforms) {
                    bytes in
                    done += bytes
                    progress(done, layout.fileSize)
                    try stopIfCancelled()
                }
                pending.append((tensor.name, ConversionJournal.Unit(hash: hasher.digest, sources: sources)))
                pendingBytes += info.byteCount
                if pendingBytes >= syncEveryBytes || Date().timeIntervalSince(lastSync) >= syncEverySeconds { try flush() }
                entries.append(.init(name: tensor.name, offset: offset, bytes: info.byteCount, xxh3: hasher.digest))
                tensorDone(tensor.name, info.type, info.byteCount, false)
                try stopIfCancelled()
            }
            try flush()
            // The manifest is durable before the final name exists, so a final name always has its manifest.
            let manifest = OutputManifest(
                file: output, fileBytes: layout.fileSize, headerXXH3: ConversionPlan.headerHash(layout), tensors: entries)
            try manifest.write()
            beforeRename()
            do { try writer.finish() } catch {
                OutputManifest.remove(for: output)
                throw error
            }
        } catch let error as ConversionError {
            journal.close()
            if case .interrupted = error { writer.keep() } else if resume { writer.keep() } else { writer.abandon(); journal.remove() }
            throw error
        } catch {
            journal.close()
            // A resumable run keeps its work for the next --resume; otherwise nothing is left behind.
            if resume { writer.keep() } else { writer.abandon(); journal.remove() }
            throw error
        }
        journal.remove()
        return summary(kept: kept)
    }

    /// True when `output` exists, was written for `layout` (its manifest's size and header hash) and still verifies.
    static func isComplete(_ output: String, layout: GGUFLayout) -> Bool {
        guard PositionalFile.exists(output), let manifest = try? OutputManifest(reading: output),
            manifest.fileBytes == layout.fileSize, manifest.headerXXH3 == ConversionPlan.headerHash(layout)
        else { return false }
        return (try? manifest.verify())?.isEmpty == true
    }
}
