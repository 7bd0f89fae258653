// Writing the offload layouts OutputPlanning lays out (OutputLayouts.swift): llama.cpp's split GGUF pair and the
// expert-major GGUF + expert pack. Both fill the same units with the stacked plan's types, so every tensor's bytes
// equal the stacked file's.
import Foundation
import ModelCatalog
import OutputPlanning
import QuantKernels
import TensorFormats

public enum OffloadLayouts {
    // MARK: split

    /// Writes both files (each staged, journaled, fsynced and renamed; the expert file first, so the file llama.cpp
    /// opens appears last) with a manifest each. With `resume`, a file already finished (its manifest verifies)
    /// is kept and a file cut short continues from its journal, as a stacked conversion does.
    /// `progress(bytesDone, bytesTotal)` counts tensor bytes over both files.
    public static func runSplit(
        _ plan: ConversionPlan, output: String, threads: Int, resume: Bool = false, transforms: UnitTransforms = .standard,
        cancelled: @escaping () -> Bool = { false },
        progress: (Int, Int) -> Void = { _, _ in }
    ) throws -> [(path: String, bytes: Int)] {
        let paths = ConversionPlan.splitPaths(output: output)
        let parts = try plan.splitLayouts()
        let total = parts.reduce(0) { $0 + $1.layout.fileSize }
        var base = 0
        var written: [(String, Int)] = []
        for ((indices, layout), path) in zip(parts, paths).reversed() {
            let offset = base
            _ = try GGUFConversion.run(
                plan, output: path, threads: threads, resume: resume, part: (indices, layout), transforms: transforms,
                cancelled: cancelled, progress: { done, _ in progress(offset + done, total) })
            base += layout.fileSize
            written.insert((path, layout.fileSize), at: 0)
        }
        return written
    }

    // MARK: expert-major

    /// Writes OUT.gguf (every tensor but the routed experts) and the expert pack, each with a manifest; the pack's
    /// manifest has one unit per expert record.
    public static func runExpertMajor(
        _ plan: ConversionPlan, output: String, threads: Int, alignment: Int, hits: [Int: [Int]],
        transforms: UnitTransforms = .standard
    ) throws -> (dense: Int, pack: Int, records: Int) {
        let dense = try plan.denseLayout()
        let path = ConversionPlan.packPath(output: output)
        let layout = try plan.packLayout(alignment: alignment, hits: hits, denseFile: (output as NSString).lastPathComponent)
        let file = try StagedFile(path: path, size: layout.fileSize)
        var entries: [OutputManifest.Entry] = []
        do {
            try file.write(layout.header, at: 0)
            let sink = PackSink(file: file, layout: layout)
            let isRouted = plan.routedExpertMask
            for i in plan.tensors.indices where isRouted[i] {
                try GGUFConversion.fill(
                    plan.tensors[i], type: plan.types[i], plan: plan, writer: sink, threads: threads, hasher: ContentHasher(),
                    transforms: transforms
                ) { _ in }
            }
            for record in layout.records {
                entries.append(
                    .init(
                        name: "blk.\(record.layer).expert.\(record.expert)", offset: record.offset, bytes: record.bytes,
                        xxh3: try file.hash(record.offset..<(record.offset + record.bytes))))
            }
            try OutputManifest(file: path, fileBytes: layout.fileSize, headerXXH3: ContentHash.xxh3(layout.header), tensors: entries)
                .write()
            try file.finish()
        } catch {
            file.abandon()
            throw error
        }
        _ = try GGUFConversion.run(plan, output: output, threads: threads, part: dense, transforms: transforms)
        return (dense.layout.fileSize, layout.fileSize, layout.records.count)
    }
}

/// Routes a stacked expert tensor's bytes (tensor name, offset within the tensor) to its expert's record.
final class PackSink: TensorSink {
    let file: StagedFile
    /// tensor name → (bytes per expert, record part offset by expert)
    var targets: [String: (expertBytes: Int, offsets: [Int: Int])] = [:]

    init(file: StagedFile, layout: ExpertPackLayout) {
        self.file = file
        for record in layout.records {
            for part in record.parts {
                targets[part.tensor, default: (part.bytes, [:])].offsets[record.expert] = record.offset + part.offset
            }
        }
    }

    func write(_ name: String, bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        guard let target = targets[name] else { throw ShardError.inconsistent("tensor \(name) has no place in the expert pack") }
        let expert = offset / target.expertBytes, within = offset % target.expertBytes
        guard within + bytes.count <= target.expertBytes, let start = target.offsets[expert] else {
            throw ShardError.inconsistent("a write to \(name) at \(offset) crosses an expert boundary")
        }
        try file.write(bytes, at: start + within)
    }
}
