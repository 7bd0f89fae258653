// Offload layouts beyond llama.cpp's stacked file (formats/expert-pack.md):
//   split        — llama.cpp's multi-file GGUF convention: file 1 holds the metadata and every tensor but the routed
//                  experts (what the GPU tier loads), file 2 the routed experts (what stays in RAM / mmap);
//                  llama.cpp opens file 1 and finds file 2 by name.
//   expert-major — a GGUF of the non-expert tensors plus an expert pack: each expert's gate/up/down blocks
//                  contiguous and page-aligned, experts of a layer ordered hot → cold by routing counts, with an
//                  index; the reference engine runs from it with a bounded expert cache.
// Both reuse the stacked plan's types and fill the same units, so every tensor's bytes equal the stacked file's.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

public enum OutputLayout: String, Sendable, CaseIterable {
    case stacked, split, expertMajor = "expert-major"
}

public enum OffloadLayouts {
    static func routed(_ plan: ConversionPlan) -> [Bool] { plan.tensors.map { TensorGroup(gguf: $0.name) == .routedExperts } }

    // MARK: split

    /// llama.cpp's split names: OUT-00001-of-00002.gguf, OUT-00002-of-00002.gguf.
    public static func splitPaths(output: String) -> [String] {
        let stem = output.hasSuffix(".gguf") ? String(output.dropLast(5)) : output
        return (1...2).map { stem + String(format: "-%05d-of-%05d.gguf", $0, 2) }
    }

    /// The two layouts of a split conversion: (tensor indices, layout) per file.
    public static func splitLayouts(_ plan: ConversionPlan) throws -> [(indices: [Int], layout: GGUFLayout)] {
        let isRouted = routed(plan)
        let groups = [plan.tensors.indices.filter { !isRouted[$0] }, plan.tensors.indices.filter { isRouted[$0] }]
        return try groups.enumerated().map { number, indices in
            let keys: [(String, GGUFValue)] = [("split.no", .uint16(UInt16(number))), ("split.count", .uint16(2)),
                                              ("split.tensors.count", .int32(Int32(plan.tensors.count)))]
            let specs = indices.map { GGUFTensorSpec(name: plan.tensors[$0].name, dimensions: plan.tensors[$0].dimensions, type: plan.types[$0]) }
            return (indices, try GGUFLayout(metadata: (number == 0 ? plan.metadata : []) + keys, tensors: specs))
        }
    }

    /// Writes both files (each staged, journaled, fsynced and renamed; the expert file first, so the file llama.cpp
    /// opens appears last) with a manifest each. With `resume`, a file already finished (its manifest verifies)
    /// is kept and a file cut short continues from its journal, as a stacked conversion does.
    /// `progress(bytesDone, bytesTotal)` counts tensor bytes over both files.
    public static func runSplit(_ plan: ConversionPlan, output: String, threads: Int, resume: Bool = false,
                                progress: (Int, Int) -> Void = { _, _ in }) throws -> [(path: String, bytes: Int)] {
        let paths = splitPaths(output: output)
        let parts = try splitLayouts(plan)
        let total = parts.reduce(0) { $0 + $1.layout.fileSize }
        var base = 0
        var written: [(String, Int)] = []
        for ((indices, layout), path) in zip(parts, paths).reversed() {
            // Kept only if it is this plan's file: same header (metadata, names, types, offsets) and intact bytes.
            if resume, FileManager.default.fileExists(atPath: path), let manifest = try? OutputManifest(reading: path),
               manifest.fileBytes == layout.fileSize, manifest.headerXXH3 == GGUFConversion.headerHash(layout),
               (try? manifest.verify())?.isEmpty == true {
                base += layout.fileSize
                progress(base, total)
                written.insert((path, layout.fileSize), at: 0)
                continue
            }
            let offset = base
            _ = try GGUFConversion.run(plan, output: path, threads: threads, resume: resume, part: (indices, layout),
                                       progress: { done, _ in progress(offset + done, total) })
            base += layout.fileSize
            written.insert((path, layout.fileSize), at: 0)
        }
        return written
    }

    // MARK: expert-major

    /// OUT.gguf → OUT.expert-pack.
    public static func packPath(output: String) -> String {
        (output.hasSuffix(".gguf") ? String(output.dropLast(5)) : output) + ".expert-pack"
    }

    /// Where everything goes in an expert pack, computed before any byte is written.
    public struct PackLayout: Sendable {
        public struct Part: Sendable {
            public let projection: String, tensor: String, type: QuantType, dimensions: [Int], offset: Int, bytes: Int
        }
        public struct Record: Sendable {
            public let layer: Int, expert: Int, hits: Int, offset: Int, bytes: Int
            public let parts: [Part]
        }
        public let alignment: Int
        public let records: [Record]
        public let header: [UInt8]
        public let fileSize: Int
    }

    /// Records per layer, hottest first when `hits[layer][expert]` (routing counts) are given, else by index;
    /// each record starts on an `alignment` boundary.
    public static func packLayout(_ plan: ConversionPlan, alignment: Int, hits: [Int: [Int]], denseFile: String) throws -> PackLayout {
        var byLayer: [Int: [(index: Int, projection: String)]] = [:]
        for (i, tensor) in plan.tensors.enumerated() where TensorGroup(gguf: tensor.name) == .routedExperts {
            guard let layer = tensor.layer else { continue }
            byLayer[layer, default: []].append((i, RecipeRule.projection(of: tensor.name) ?? tensor.name))
        }
        struct Draft { let layer: Int, expert: Int, hits: Int, parts: [(String, Int)] }
        var drafts: [Draft] = []
        for layer in byLayer.keys.sorted() {
            let tensors = byLayer[layer] ?? []
            guard let experts = tensors.first.map({ plan.tensors[$0.index].dimensions.count == 3 ? plan.tensors[$0.index].dimensions[2] : 1 }) else { continue }
            let counts = hits[layer] ?? []
            let order = (0..<experts).sorted { (counts.count > $0 ? counts[$0] : 0, $1) > (counts.count > $1 ? counts[$1] : 0, $0) }
            for e in order { drafts.append(Draft(layer: layer, expert: e, hits: counts.count > e ? counts[e] : 0, parts: tensors.map { ($0.projection, $0.index) })) }
        }
        func pad(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }
        func index(_ records: [PackLayout.Record]) -> [UInt8] {
            let document: JSONValue = [
                "format": "moeq expert pack 1", "alignment": .integer(Int64(alignment)), "dense_file": .string(denseFile),
                "model_type": .string(plan.spec.modelType), "recipe": .string(plan.recipe.rawValue),
                "records": .array(records.map { r in
                    ["layer": .integer(Int64(r.layer)), "expert": .integer(Int64(r.expert)), "hits": .integer(Int64(r.hits)),
                     "offset": .integer(Int64(r.offset)), "bytes": .integer(Int64(r.bytes)),
                     "parts": .array(r.parts.map { p in
                         ["projection": .string(p.projection), "tensor": .string(p.tensor), "type": .string(p.type.rawValue),
                          "ne": .array(p.dimensions.map { .integer(Int64($0)) }), "offset": .integer(Int64(p.offset)), "bytes": .integer(Int64(p.bytes))]
                     })]
                }),
            ]
            return Array(document.prettyPrinted().utf8)
        }
        // Offsets depend on the index length and the index lists the offsets: lay out with a guess, grow until stable.
        var start = alignment
        while true {
            var records: [PackLayout.Record] = []
            var cursor = start
            for d in drafts {
                var parts: [PackLayout.Part] = []
                var within = 0
                for (projection, i) in d.parts {
                    let tensor = plan.tensors[i], type = plan.types[i]
                    guard let rowBytes = type.rowBytes(width: tensor.rowWidth) else { throw ConversionError.shape(tensor: tensor.name, reason: "width does not fit \(type.rawValue)") }
                    let bytes = rowBytes * tensor.dimensions[1]
                    parts.append(.init(projection: projection, tensor: tensor.name, type: type, dimensions: Array(tensor.dimensions.prefix(2)), offset: within, bytes: bytes))
                    within += bytes
                }
                records.append(.init(layer: d.layer, expert: d.expert, hits: d.hits, offset: cursor, bytes: within, parts: parts))
                cursor = pad(cursor + within)
            }
            var header = Array("MOEQXPK1".utf8)
            let json = index(records)
            withUnsafeBytes(of: UInt64(json.count).littleEndian) { header.append(contentsOf: $0) }
            header += json
            if pad(header.count) <= start {
                header += [UInt8](repeating: 0, count: start - header.count)
                return PackLayout(alignment: alignment, records: records, header: header, fileSize: cursor)
            }
            start = pad(header.count)
        }
    }

    /// Writes OUT.gguf (every tensor but the routed experts) and the expert pack, each with a manifest; the pack's
    /// manifest has one unit per expert record.
    public static func runExpertMajor(_ plan: ConversionPlan, output: String, threads: Int, alignment: Int, hits: [Int: [Int]]) throws -> (dense: Int, pack: Int, records: Int) {
        let isRouted = routed(plan)
        let denseIndices = plan.tensors.indices.filter { !isRouted[$0] }
        let denseLayout = try GGUFLayout(metadata: plan.metadata, tensors: denseIndices.map {
            GGUFTensorSpec(name: plan.tensors[$0].name, dimensions: plan.tensors[$0].dimensions, type: plan.types[$0])
        })
        let path = packPath(output: output)
        let layout = try packLayout(plan, alignment: alignment, hits: hits, denseFile: (output as NSString).lastPathComponent)
        let file = try StagedFile(path: path, size: layout.fileSize)
        var entries: [OutputManifest.Entry] = []
        do {
            try file.write(layout.header, at: 0)
            let sink = PackSink(file: file, layout: layout, plan: plan)
            for i in plan.tensors.indices where isRouted[i] {
                try GGUFConversion.fill(plan.tensors[i], type: plan.types[i], plan: plan, writer: sink, threads: threads, hasher: ContentHasher()) { _ in }
            }
            for record in layout.records {
                entries.append(.init(name: "blk.\(record.layer).expert.\(record.expert)", offset: record.offset, bytes: record.bytes,
                                     xxh3: try file.hash(record.offset..<(record.offset + record.bytes))))
            }
            try file.finish()
        } catch {
            file.abandon()
            throw error
        }
        try OutputManifest(file: path, fileBytes: layout.fileSize, headerXXH3: ContentHash.xxh3(layout.header), tensors: entries).write()
        _ = try GGUFConversion.run(plan, output: output, threads: threads, part: (denseIndices, denseLayout))
        return (denseLayout.fileSize, layout.fileSize, layout.records.count)
    }
}

/// Routes a stacked expert tensor's bytes (tensor name, offset within the tensor) to its expert's record.
final class PackSink: TensorSink {
    let file: StagedFile
    /// tensor name → (bytes per expert, record part offset by expert)
    var targets: [String: (expertBytes: Int, offsets: [Int: Int])] = [:]

    init(file: StagedFile, layout: OffloadLayouts.PackLayout, plan: ConversionPlan) {
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
