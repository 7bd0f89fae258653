// `moeq convert … -o OUT.gguf`: one pass from any source encoding to GGUF. The layout is computed from
// headers first (so --dry-run knows the exact size), then each tensor is filled in row chunks — experts one
// at a time — decoded to f32, quantized and written at its offset. Peak memory is one chunk per thread.
import Foundation
import Dispatch
import ModelCatalog
import QuantKernels
import TensorFormats

/// Everything decided before a byte of tensor data is read.
public struct ConversionPlan: Sendable {
    public let spec: ModelSpec
    public let checkpoint: Checkpoint
    public let recipe: RecipeName
    public let tensors: [GGUFTensorPlan]
    public let types: [QuantType]
    public let layout: GGUFLayout
    /// The GGUF key-value pairs of `layout` (other layouts re-use them).
    public let metadata: [(String, GGUFValue)]
    public let warnings: [String]
    /// llama.cpp importance matrix (`--imatrix`), applied per tensor and per expert.
    public let importance: ImportanceMatrix?
    let resolver: WeightResolver

    /// Source bytes this conversion reads (all stored tensors its weights use).
    public var sourceBytes: Int { checkpoint.tensors.reduce(0) { $0 + $1.info.byteCount } }
}

public struct ConversionSummary: Sendable {
    public let outputBytes: Int
    public let sourceBytes: Int
    public let seconds: Double
    public let typeCounts: [QuantType: Int]
    public let parameters: Int
    public var bitsPerWeight: Double { parameters > 0 ? Double(outputBytes) * 8 / Double(parameters) : 0 }
}

public enum ConversionError: Error, Sendable, CustomStringConvertible {
    case missingSource(tensor: String, source: String)
    case shape(tensor: String, reason: String)
    case verification(file: String, tensors: [String])
    case io(file: String, operation: String, errno: Int32)
    case unsupportedArchitecture(file: String, modelType: String)
    public var description: String {
        switch self {
        case let .unsupportedArchitecture(file, type): "\(file): converting \(type) checkpoints is not supported yet (`moeq plan` and `moeq inspect` read them); convertible: deepseek_v3, kimi_k2, kimi_k25, qwen3_moe, mixtral"
        case let .io(file, operation, code): "\(file): \(operation) failed: \(String(cString: strerror(code)))"
        case let .verification(file, tensors): "\(file): \(tensors.count) tensors differ from the manifest: \(tensors.prefix(10).joined(separator: ", "))"
        case let .missingSource(tensor, source): "GGUF tensor \(tensor) needs \(source), which the checkpoint lacks"
        case let .shape(tensor, reason): "GGUF tensor \(tensor): \(reason)"
        }
    }
}

public enum GGUFConversion {
    /// Plans a conversion of the checkpoint at `path` (a directory with config.json).
    /// `rules`: a recipe file whose rules adjust the named recipe's types (its `base` must be `recipe`).
    public static func plan(path: String, recipe: RecipeName, name: String? = nil, importance: ImportanceMatrix? = nil,
                            rules: RecipeFile? = nil) throws -> ConversionPlan {
        let checkpoint = try Checkpoint(path: path)
        let configPath = (checkpoint.directory as NSString).appendingPathComponent("config.json")
        guard let configData = FileManager.default.contents(atPath: configPath) else {
            throw CatalogError.unreadable(file: configPath, reason: "cannot read config.json (needed to convert)")
        }
        let config = try JSONParser.parse([UInt8](configData))
        let spec = try ModelSpec(config: config, file: configPath)
        guard spec.architecture.isConvertible else { throw ConversionError.unsupportedArchitecture(file: configPath, modelType: spec.modelType) }
        let resolver = WeightResolver(checkpoint: checkpoint, quantization: spec.quantization)
        let plans = spec.ggufTensors { name in checkpoint.contains(name) }
        var types = RecipeRules(recipe: recipe, spec: spec, hasImportance: importance != nil).types(for: plans)
        if let rules { types = rules.types(plans, base: types) }
        var warnings: [String] = []
        if recipe == .int4Native {
            types = try Int4Native.types(plans: plans, types: types, resolver: resolver, warnings: &warnings)
        }
        var metadata: [(String, GGUFValue)] = [
            ("general.architecture", .string(spec.ggufArchitecture)),
            ("general.type", .string("model")),
            ("general.name", .string(name ?? ((checkpoint.directory as NSString).lastPathComponent))),
            ("general.file_type", .uint32(recipe.fileType)),
            ("general.quantization_version", .uint32(2)),
        ]
        metadata += spec.ggufHyperParameters()
        metadata += try TokenizerMetadata.keys(directory: checkpoint.directory, spec: spec, config: config, warnings: &warnings)
        if let importance {
            metadata += [("quantize.imatrix.file", .string(importance.path)),
                         ("quantize.imatrix.dataset", .string(importance.datasets.first ?? "")),
                         ("quantize.imatrix.entries_count", .uint32(UInt32(importance.entries.count))),
                         ("quantize.imatrix.chunks_count", .uint32(UInt32(importance.chunkCount)))]
            let missing = plans.filter { $0.quantizable && importance.entries[$0.name] == nil }.map(\.name)
            if !missing.isEmpty { warnings.append("imatrix has no entry for \(missing.joined(separator: ", ")); quantized without one (as llama-quantize does)") }
        }
        let specs = zip(plans, types).map { GGUFTensorSpec(name: $0.name, dimensions: $0.dimensions, type: $1) }
        let layout = try GGUFLayout(metadata: metadata, tensors: specs)
        // Every source must exist with the shape the plan expects.
        for plan in plans {
            for source in sourceNames(plan.source) where !(checkpoint.contains(source) || checkpoint.contains(source.replacingOccurrences(of: ".weight", with: ".weight_packed"))) {
                throw ConversionError.missingSource(tensor: plan.name, source: source)
            }
        }
        return ConversionPlan(spec: spec, checkpoint: checkpoint, recipe: recipe, tensors: plans, types: types, layout: layout,
                              metadata: metadata, warnings: warnings, importance: importance, resolver: resolver)
    }

    static func sourceNames(_ source: GGUFSource) -> [String] {
        switch source {
        case .weight(let n), .ropePermuted(let n, _), .keyFromKVB(let n, _, _, _), .valueFromKVB(let n, _, _, _): [n]
        case .stacked(let names): names
        }
    }

    /// Rows per chunk: bounded memory, and a unit of parallel quantization.
    static let chunkRows = 256

    /// Rows per copy when bytes pass through unchanged: about 8 MiB.
    static func rawChunkRows(rowBytes: Int) -> Int { max(1, (8 << 20) / max(rowBytes, 1)) }

    /// Written bytes between fsyncs: the journal records tensors only after their data is durable, in batches.
    static let syncEvery = Int(ProcessInfo.processInfo.environment["MOEQ_SYNC_MB"] ?? "512").map { $0 << 20 } ?? (512 << 20)

    /// Writes the GGUF. `progress(bytesDone, bytesTotal)` is called after each chunk. With `resume`, a previous
    /// run's temp file and journal are reused: tensors whose bytes still match the journal are not redone.
    /// The final name appears only after fsync + rename; then the manifest is written and the journal removed.
    /// `tensorDone(name, type, bytes, kept)` follows each finished tensor (`kept`: verified from an earlier run).
    /// `part` writes only those tensors of the plan, laid out by its own layout (one file of a split pair).
    public static func run(_ plan: ConversionPlan, output: String, threads: Int, resume: Bool = false,
                           part: (indices: [Int], layout: GGUFLayout)? = nil,
                           beforeRename: () -> Void = {}, tensorDone: (String, QuantType, Int, Bool) -> Void = { _, _, _, _ in },
                           progress: (Int, Int) -> Void = { _, _ in }) throws -> ConversionSummary {
        let start = Date()
        let layout = part?.layout ?? plan.layout
        let tensors = part.map { $0.indices.map { plan.tensors[$0] } } ?? plan.tensors
        let journal = ConversionJournal(output: output, layout: layout, recipe: plan.recipe)
        let writer = try GGUFWriter(path: output, layout: layout, resume: resume)
        let recorded = writer.reused ? journal.recorded() : [:]
        var done = 0
        var entries: [OutputManifest.Entry] = []
        // Finished tensors not yet in the journal: recorded after one fsync covers them all.
        var pending: [(String, UInt64)] = []
        var pendingBytes = 0
        func flush() throws {
            guard !pending.isEmpty else { return }
            try writer.syncData()
            for (name, hash) in pending { try journal.record(name, hash: hash) }
            pending.removeAll()
            pendingBytes = 0
        }
        do {
            try journal.open(keep: writer.reused)
            for (tensor, info) in zip(tensors, layout.tensors) {
                let offset = layout.dataStart + info.offset
                if let hash = recorded[tensor.name], try writer.storedHash(of: tensor.name) == hash {
                    entries.append(.init(name: tensor.name, offset: offset, bytes: info.byteCount, xxh3: hash))
                    done += info.byteCount
                    progress(done, layout.fileSize)
                    tensorDone(tensor.name, info.type, info.byteCount, true)
                    continue
                }
                let hasher = ContentHasher()
                try fill(tensor, type: info.type, plan: plan, writer: writer, threads: threads, hasher: hasher) { bytes in
                    done += bytes
                    progress(done, layout.fileSize)
                }
                pending.append((tensor.name, hasher.digest))
                pendingBytes += info.byteCount
                if pendingBytes >= syncEvery { try flush() }
                entries.append(.init(name: tensor.name, offset: offset, bytes: info.byteCount, xxh3: hasher.digest))
                tensorDone(tensor.name, info.type, info.byteCount, false)
            }
            try flush()
            beforeRename()
            try writer.finish()
        } catch {
            journal.close()
            // A resumable run keeps its work for the next --resume; otherwise nothing is left behind.
            if resume { writer.keep() } else { writer.abandon(); journal.remove() }
            throw error
        }
        try OutputManifest(file: output, fileBytes: layout.fileSize, headerXXH3: headerHash(layout), tensors: entries).write()
        journal.remove()
        var counts: [QuantType: Int] = [:]
        for info in layout.tensors { counts[info.type, default: 0] += 1 }
        return ConversionSummary(outputBytes: layout.fileSize, sourceBytes: plan.sourceBytes, seconds: Date().timeIntervalSince(start),
                                 typeCounts: counts, parameters: tensors.reduce(0) { $0 + $1.dimensions.reduce(1, *) })
    }

    /// The manifest's header hash: the bytes before the first tensor's data.
    static func headerHash(_ layout: GGUFLayout) -> UInt64 {
        layout.header.withUnsafeBytes { ContentHash.xxh3(UnsafeRawBufferPointer(rebasing: $0[0..<min(layout.tensors.first.map { layout.dataStart + $0.offset } ?? layout.header.count, layout.header.count)])) }
    }

    /// Fills one GGUF tensor chunk by chunk, in byte order, feeding `hasher` the bytes as they are written.
    static func fill(_ tensor: GGUFTensorPlan, type: QuantType, plan: ConversionPlan, writer: TensorSink, threads: Int,
                     hasher: ContentHasher, wrote: (Int) -> Void) throws {
        if plan.recipe == .int4Native, type == .q4_0, case .stacked(let names) = tensor.source {
            try Int4Native.repack(tensor, names: names, resolver: plan.resolver, writer: writer, hasher: hasher, wrote: wrote)
            return
        }
        let width = tensor.rowWidth
        guard let rowBytes = type.rowBytes(width: width) else { throw ConversionError.shape(tensor: tensor.name, reason: "width \(width) does not fit \(type.rawValue)") }
        var rows = [Float](repeating: 0, count: chunkRows * width)
        var bytes = [UInt8](repeating: 0, count: chunkRows * rowBytes)
        // Each segment is a run of output rows produced from one source weight.
        let allSegments = try segments(tensor, plan: plan)
        let files = SourceFiles()
        if allSegments.allSatisfy({ $0.raw?.rowBytes == rowBytes && $0.rawType == type }) {
            // Every row is copied unchanged: one pipelined pass over the whole tensor.
            var chunks: [RawChunk] = []
            let rowsPerChunk = rawChunkRows(rowBytes: rowBytes)
            for segment in allSegments {
                guard let raw = segment.raw else { continue }
                let descriptor = try files.descriptor(raw.path)
                var first = 0
                while first < segment.count {
                    let count = min(rowsPerChunk, segment.count - first)
                    chunks.append(RawChunk(descriptor: descriptor, path: raw.path, source: raw.offset + first * rowBytes,
                                           length: count * rowBytes, destination: (segment.firstRow + first) * rowBytes))
                    first += count
                }
            }
            try copyPipelined(chunks, tensor: tensor.name, writer: writer, hasher: hasher, wrote: wrote)
            return
        }
        for (index, segment) in allSegments.enumerated() {
            let weights = plan.importance?.importance(for: tensor.name, width: width, matrix: segment.matrix)
            var first = 0
            if let raw = segment.raw, segment.rawType == type, raw.rowBytes == rowBytes {
                // Same storage type in and out: the bytes are the output. Read them with pread (kernel readahead,
                // like cat) into one reused buffer, hash and write; no decode, no page faults on the mapping.
                let descriptor = try files.descriptor(raw.path)
                _ = posix_fadvise(descriptor, off_t(raw.offset), off_t(segment.count * rowBytes), POSIX_FADV_SEQUENTIAL)
                // Segments are often one expert's few MB: ask for the next one now, so the device is never idle
                // between them (a fresh read would start with a small readahead window).
                if index + 1 < allSegments.count, let next = allSegments[index + 1].raw, allSegments[index + 1].rawType == type {
                    _ = posix_fadvise(try files.descriptor(next.path), off_t(next.offset),
                                      off_t(min(allSegments[index + 1].count * next.rowBytes, 32 << 20)), POSIX_FADV_WILLNEED)
                }
                let rowsPerChunk = rawChunkRows(rowBytes: rowBytes)
                var buffer = [UInt8](repeating: 0, count: rowsPerChunk * rowBytes)
                while first < segment.count {
                    let count = min(rowsPerChunk, segment.count - first)
                    let length = count * rowBytes
                    // Ask for the next two chunks now, so the device reads them while this one is written.
                    let ahead = min(2 * rowsPerChunk, segment.count - first - count) * rowBytes
                    if ahead > 0 { _ = posix_fadvise(descriptor, off_t(raw.offset + (first + count) * rowBytes), off_t(ahead), POSIX_FADV_WILLNEED) }
                    try buffer.withUnsafeMutableBytes { chunk in
                        var got = 0
                        while got < length {
                            let n = pread(descriptor, chunk.baseAddress! + got, length - got, off_t(raw.offset + first * rowBytes + got))
                            guard n > 0 else { throw ConversionError.io(file: raw.path, operation: n == 0 ? "read (file shorter than its header says)" : "read", errno: n == 0 ? 0 : errno) }
                            got += n
                        }
                        let bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(chunk)[0..<length])
                        try writer.write(tensor.name, bytes: bytes, at: (segment.firstRow + first) * rowBytes)
                        hasher.update(bytes)
                    }
                    wrote(length)
                    first += count
                }
                _ = posix_fadvise(descriptor, off_t(raw.offset), off_t(segment.count * rowBytes), POSIX_FADV_DONTNEED)
                continue
            }
            while first < segment.count {
                let count = min(chunkRows, segment.count - first)
                try rows.withUnsafeMutableBufferPointer { source in
                    try bytes.withUnsafeMutableBytes { destination in
                        // Decode and quantize run together on every thread, each on its own rows of the chunk.
                        let job = ChunkJob(produce: segment.produce, first: first, count: count, width: width, rowBytes: rowBytes, type: type,
                                           source: source.baseAddress!, destination: destination.baseAddress!, weights: weights)
                        try job.run(threads: threads)
                        let written = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(destination)[0..<(count * rowBytes)])
                        try writer.write(tensor.name, bytes: written, at: (segment.firstRow + first) * rowBytes)
                        hasher.update(written)
                    }
                }
                wrote(count * rowBytes)
                if case .weight = tensor.source { segment.source?.releasePages(rows: first..<(first + count)) }
                if case .stacked = tensor.source { segment.source?.releasePages(rows: first..<(first + count)) }
                first += count
            }
            segment.source?.releasePages()
        }
    }

    /// A run of `count` output rows starting at `firstRow`, produced by `produce(range within the run, into)`.
    struct Segment {
        let firstRow: Int
        let count: Int
        /// The source weight, whose pages are released once the segment is written.
        var source: SourceWeight? = nil
        /// Which matrix (expert, MLA head) of the tensor these rows belong to, for the importance slice.
        var matrix = 0
        let produce: (Range<Int>, UnsafeMutableBufferPointer<Float>) throws -> Void
        /// The stored type when the rows are plain F32 / F16 / BF16 in output row order: then an output of that
        /// type is the source bytes themselves, copied without decoding.
        var rawType: QuantType? = nil
        /// Where those bytes are: file, absolute offset of the segment's first row, bytes per row.
        var raw: (path: String, offset: Int, rowBytes: Int)? = nil

        init(firstRow: Int, count: Int, source: SourceWeight? = nil, matrix: Int = 0, rowsReordered: Bool = false,
             produce: @escaping (Range<Int>, UnsafeMutableBufferPointer<Float>) throws -> Void) {
            self.firstRow = firstRow
            self.count = count
            self.source = source
            self.matrix = matrix
            self.produce = produce
            if !rowsReordered, let source, case .plain(let location) = source.encoding {
                let types: [SafetensorsDType: QuantType] = [.f32: .f32, .f16: .f16, .bf16: .bf16]
                if let type = types[location.info.dtype], source.rows > 0 {
                    let rowBytes = location.info.byteCount / source.rows
                    rawType = type
                    raw = (location.file.path, location.file.fileOffset(of: location.info), rowBytes)
                }
            }
        }
    }

    static func segments(_ tensor: GGUFTensorPlan, plan: ConversionPlan) throws -> [Segment] {
        let width = tensor.rowWidth
        func weight(_ name: String) throws -> SourceWeight {
            let w = try plan.resolver.weight(named: name)
            guard w.columns == width || (w.shape.count <= 1 && w.elementCount == width) || tensor.dimensions.count == 3 else {
                throw ConversionError.shape(tensor: tensor.name, reason: "\(name) has shape \(w.shape), expected rows of \(width)")
            }
            return w
        }
        switch tensor.source {
        case .weight(let name):
            let w = try weight(name)
            guard w.elementCount == tensor.dimensions.reduce(1, *) else { throw ConversionError.shape(tensor: tensor.name, reason: "\(name) has \(w.elementCount) values") }
            return [Segment(firstRow: 0, count: w.rows, source: w) { range, out in try w.decodeRows(range, into: out) }]
        case .stacked(let names):
            let perExpert = tensor.dimensions[1]
            return try names.enumerated().map { e, name in
                let w = try weight(name)
                guard w.rows == perExpert, w.columns == width else { throw ConversionError.shape(tensor: tensor.name, reason: "\(name) has shape \(w.shape)") }
                return Segment(firstRow: e * perExpert, count: perExpert, source: w, matrix: e) { range, out in try w.decodeRows(range, into: out) }
            }
        case .ropePermuted(let name, let heads):
            // Output row h·d + 2i + j comes from input row h·d + j·(d/2) + i (llama.cpp's `permute`).
            let w = try weight(name)
            let headRows = w.rows / heads
            return [Segment(firstRow: 0, count: w.rows, source: w, rowsReordered: true) { range, out in
                for (k, row) in range.enumerated() {
                    let h = row / headRows, within = row % headRows
                    let source = h * headRows + (within % 2) * (headRows / 2) + within / 2
                    try w.decodeRows(source..<(source + 1), into: UnsafeMutableBufferPointer(rebasing: out[(k * width)..<((k + 1) * width)]))
                }
            }]
        case let .keyFromKVB(name, heads, noPosition, value):
            // attn_k_b row (h, r) holds column r of head h's first `noPosition` kv_b rows.
            let w = try plan.resolver.weight(named: name)
            let rank = w.columns
            return (0..<heads).map { h in
                Segment(firstRow: h * rank, count: rank, matrix: h) { range, out in
                    var block = [Float](repeating: 0, count: noPosition * rank)
                    try block.withUnsafeMutableBufferPointer { try w.decodeRows((h * (noPosition + value))..<(h * (noPosition + value) + noPosition), into: $0) }
                    for (k, r) in range.enumerated() { for c in 0..<noPosition { out[k * noPosition + c] = block[c * rank + r] } }
                }
            }
        case let .valueFromKVB(name, heads, noPosition, value):
            let w = try plan.resolver.weight(named: name)
            return (0..<heads).map { h in
                Segment(firstRow: h * value, count: value, matrix: h) { range, out in
                    let base = h * (noPosition + value) + noPosition
                    try w.decodeRows((base + range.lowerBound)..<(base + range.upperBound), into: out)
                }
            }
        }
    }
}

