// Filling one GGUF tensor: its rows come in segments (one source weight each: a plain weight, one expert of a stacked
// tensor, one MLA head of kv_b), decoded and quantized by the unit transforms in row chunks on every thread, or — where
// the stored floats are already the output type — copied as they are (checked for NaN / Inf on the way).
import Foundation
import ModelCatalog
import OutputPlanning
import QuantKernels
import TensorFormats

extension GGUFConversion {
    /// Fills one GGUF tensor chunk by chunk, in byte order, feeding `hasher` the bytes as they are written. `wrote` follows
    /// every chunk (and may throw to stop the run).
    static func fill(
        _ tensor: GGUFTensorPlan, type: QuantType, plan: ConversionPlan, writer: TensorSink, threads: Int,
        hasher: ContentHasher, transforms: UnitTransforms = .standard, wrote: (Int) throws -> Void
    ) throws {
        // Whatever the reads mapped of the files this tensor came from is dropped once it is written (RSS flat in layers).
        defer {
            let files = Set(tensor.source.names.flatMap { (try? plan.resolver.weight(named: $0))?.storedTensors.map(\.file.path) ?? [] })
            for file in plan.checkpoint.files where files.contains(file.path) { file.mapping.releaseAll() }
        }
        if plan.recipe == .int4Native, type == .q4_0, case .stacked(let names) = tensor.source {
            try Int4Native.repack(tensor, names: names, resolver: plan.resolver, writer: writer, hasher: hasher, wrote: wrote)
            return
        }
        if type == .mxfp4, case let .fusedExperts(name, view) = tensor.source, !view.isBias, !view.transposed,
            case let .mxfp4(blocks, scales) = try plan.resolver.weight(named: name).encoding
        {
            // gpt-oss's released MXFP4 experts: the same codes and exponents in ggml's block layout, not one value touched.
            try carryMXFP4(tensor, view: view, blocks: blocks, scales: scales, writer: writer, hasher: hasher, wrote: wrote)
            return
        }
        let width = tensor.rowWidth
        guard let rowBytes = type.rowBytes(width: width) else {
            throw ConversionError.shape(tensor: tensor.name, reason: "width \(width) does not fit \(type.rawValue)")
        }
        // Each segment is a run of output rows produced from one source weight.
        let allSegments = try segments(tensor, plan: plan, decoder: transforms.decoder)
        let files = SourceFiles()
        let copies = transforms.copiesStoredFloats
        if copies, allSegments.allSatisfy({ $0.raw?.rowBytes == rowBytes && $0.rawType == type }) {
            // Every row is copied unchanged: one pipelined pass over the whole tensor.
            var chunks: [RawChunk] = []
            let rowsPerChunk = rawChunkRows(rowBytes: rowBytes)
            for segment in allSegments {
                guard let raw = segment.raw, let source = segment.source else { continue }
                let file = try files.file(raw.path)
                var first = 0
                while first < segment.count {
                    let count = min(rowsPerChunk, segment.count - first)
                    chunks.append(
                        RawChunk(
                            file: file, source: raw.offset + first * rowBytes, length: count * rowBytes,
                            destination: (segment.firstRow + first) * rowBytes, weight: source.name, firstRow: first, rowBytes: rowBytes))
                    first += count
                }
            }
            try copyPipelined(chunks, tensor: tensor.name, type: type, writer: writer, hasher: hasher, wrote: wrote)
            return
        }
        var rows = [Float](repeating: 0, count: chunkRows * width)
        var bytes = [UInt8](repeating: 0, count: chunkRows * rowBytes)
        for segment in allSegments {
            let weights = plan.importance?.importance(for: tensor.name, width: width, matrix: segment.matrix)
            var first = 0
            while first < segment.count {
                let count = min(chunkRows, segment.count - first)
                try rows.withUnsafeMutableBufferPointer { source in
                    try bytes.withUnsafeMutableBytes { destination in
                        // Decode and quantize run together on every thread, each on its own rows of the chunk.
                        let job = ChunkJob(
                            produce: segment.produce, first: first, count: count, width: width, rowBytes: rowBytes, type: type,
                            source: source.baseAddress!, destination: destination.baseAddress!, weights: weights,
                            quantizer: transforms.quantizer)
                        do { try job.run(threads: threads) } catch QuantError.nonFinite(let index, let value) {
                            throw ConversionError.nonFinite(
                                tensor: tensor.name, source: segment.source?.name ?? tensor.source.names.first ?? "",
                                file: segment.source?.storedTensors.first?.file.path ?? plan.checkpoint.directory,
                                row: segment.sourceRow(first + index / width), column: index % width, value: value)
                        }
                        let written = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(destination)[0..<(count * rowBytes)])
                        try writer.write(tensor.name, bytes: written, at: (segment.firstRow + first) * rowBytes)
                        hasher.update(written)
                    }
                }
                if segment.releasesRowPages { segment.source?.releasePages(rows: first..<(first + count)) }
                first += count
                try wrote(count * rowBytes)
            }
            if segment.releasesPages { segment.source?.releasePages() }
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
        /// The source row an output row of the run comes from (for messages).
        var sourceRow: (Int) -> Int = { $0 }
        /// Rows map one to one onto the source's rows, whose pages are dropped once written.
        var releasesRowPages = true
        /// The source's pages are dropped when the segment is done (not for kv_b, which every MLA head reads again).
        var releasesPages = true
        let produce: (Range<Int>, UnsafeMutableBufferPointer<Float>) throws -> Void
        /// The stored type when the rows are plain F32 / F16 / BF16 in output row order: then an output of that
        /// type is the source bytes themselves, copied without decoding.
        var rawType: QuantType? = nil
        /// Where those bytes are: file, absolute offset of the segment's first row, bytes per row.
        var raw: (path: String, offset: Int, rowBytes: Int)? = nil

        init(
            firstRow: Int, count: Int, source: SourceWeight? = nil, matrix: Int = 0, rowsReordered: Bool = false,
            produce: @escaping (Range<Int>, UnsafeMutableBufferPointer<Float>) throws -> Void
        ) {
            self.firstRow = firstRow
            self.count = count
            self.source = source
            self.matrix = matrix
            self.produce = produce
            releasesRowPages = !rowsReordered
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

    static func segments(_ tensor: GGUFTensorPlan, plan: ConversionPlan, decoder: any RowDecoder) throws -> [Segment] {
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
            guard w.elementCount == tensor.dimensions.reduce(1, *) else {
                throw ConversionError.shape(tensor: tensor.name, reason: "\(name) has \(w.elementCount) values")
            }
            return [Segment(firstRow: 0, count: w.rows, source: w) { range, out in try decoder.decodeRows(w, range, into: out) }]
        case .stacked(let names):
            let perExpert = tensor.dimensions[1]
            return try names.enumerated().map { e, name in
                let w = try weight(name)
                guard w.rows == perExpert, w.columns == width else {
                    throw ConversionError.shape(tensor: tensor.name, reason: "\(name) has shape \(w.shape)")
                }
                return Segment(firstRow: e * perExpert, count: perExpert, source: w, matrix: e) { range, out in
                    try decoder.decodeRows(w, range, into: out)
                }
            }
        case .ropePermuted(let name, let heads):
            // Output row h·d + 2i + j comes from input row h·d + j·(d/2) + i (llama.cpp's `permute`).
            let w = try weight(name)
            let headRows = w.rows / heads
            func sourceRow(_ row: Int) -> Int {
                let h = row / headRows, within = row % headRows
                return h * headRows + (within % 2) * (headRows / 2) + within / 2
            }
            var segment = Segment(firstRow: 0, count: w.rows, source: w, rowsReordered: true) { range, out in
                for (k, row) in range.enumerated() {
                    let source = sourceRow(row)
                    try decoder.decodeRows(
                        w, source..<(source + 1), into: UnsafeMutableBufferPointer(rebasing: out[(k * width)..<((k + 1) * width)]))
                }
            }
            segment.sourceRow = sourceRow
            return [segment]
        case let .keyFromKVB(name, heads, noPosition, value):
            // attn_k_b row (h, r) holds column r of head h's first `noPosition` kv_b rows.
            let w = try plan.resolver.weight(named: name)
            let rank = w.columns
            return (0..<heads).map { h in
                var segment = Segment(firstRow: h * rank, count: rank, source: w, matrix: h, rowsReordered: true) { range, out in
                    var block = [Float](repeating: 0, count: noPosition * rank)
                    try block.withUnsafeMutableBufferPointer {
                        try decoder.decodeRows(w, (h * (noPosition + value))..<(h * (noPosition + value) + noPosition), into: $0)
                    }
                    for (k, r) in range.enumerated() { for c in 0..<noPosition { out[k * noPosition + c] = block[c * rank + r] } }
                }
                segment.sourceRow = { _ in h * (noPosition + value) }
                segment.releasesPages = false
                return segment
            }
        case let .valueFromKVB(name, heads, noPosition, value):
            let w = try plan.resolver.weight(named: name)
            return (0..<heads).map { h in
                let base = h * (noPosition + value) + noPosition
                var segment = Segment(firstRow: h * value, count: value, source: w, matrix: h, rowsReordered: true) { range, out in
                    try decoder.decodeRows(w, (base + range.lowerBound)..<(base + range.upperBound), into: out)
                }
                segment.sourceRow = { base + $0 }
                segment.releasesPages = false
                return segment
            }
        case let .fusedExperts(name, view):
            return try fusedExpertSegments(tensor, source: try plan.resolver.weight(named: name), view: view, decoder: decoder)
        case .negatedExponential(let name):
            // A few values (one per KDA head): decoded whole, each x written as −exp(x).
            let w = try plan.resolver.weight(named: name)
            guard w.elementCount == tensor.dimensions.reduce(1, *) else {
                throw ConversionError.shape(tensor: tensor.name, reason: "\(name) has \(w.elementCount) values")
            }
            let values = try w.decodeAll().map { -Foundation.exp($0) }
            var segment = Segment(firstRow: 0, count: tensor.rowCount, source: w, rowsReordered: true) { range, out in
                for (k, row) in range.enumerated() {
                    for c in 0..<width { out[k * width + c] = values[row * width + c] }
                }
            }
            segment.releasesRowPages = false
            return [segment]
        }
    }
}
