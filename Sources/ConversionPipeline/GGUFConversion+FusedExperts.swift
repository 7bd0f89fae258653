// gpt-oss's fused expert tensors: each GGUF stacked expert tensor (the gate, up and down projections of every expert, and
// their biases) is cut from one checkpoint tensor per layer where FusedExpertView says — decoded and quantized like
// any rows, or, for MXFP4 experts into an MXFP4 tensor, their blocks carried over byte for byte.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

extension GGUFConversion {
    /// One segment per expert: expert e's rows of the GGUF tensor from its block of the fused source.
    static func fusedExpertSegments(
        _ tensor: GGUFTensorPlan, source w: SourceWeight, view: FusedExpertView, decoder: any RowDecoder
    )
        throws -> [Segment]
    {
        let experts = tensor.dimensions.last ?? 1
        let (firstBlock, storedWidth) = view.storedRows(expert: 0)
        guard w.columns == storedWidth, w.rows == experts * firstBlock.count else {
            throw ConversionError.shape(
                tensor: tensor.name,
                reason: "\(w.name) has shape \(w.shape); expected \(experts) experts of \(firstBlock.count) rows of \(storedWidth)")
        }
        return (0..<experts).map { e in
            let stored = view.storedRows(expert: e).rows
            // Threads of one chunk ask for rows of the same expert: its stored block is decoded once (outputs-first
            // sources with stride 1 are read row for row instead).
            let block = ExpertBlock()
            var segment = Segment(firstRow: e * view.rows, count: view.rows, source: w, matrix: e, rowsReordered: true) { range, out in
                if !view.isBias, !view.transposed, view.stride == 1 {
                    try decoder.decodeRows(w, (stored.lowerBound + range.lowerBound)..<(stored.lowerBound + range.upperBound), into: out)
                    return
                }
                let values = try block.values(count: stored.count * storedWidth) { try decoder.decodeRows(w, stored, into: $0) }
                values.withUnsafeBufferPointer { view.extract($0, rows: range, into: out) }
                block.produced(range.count, of: view.rows)
            }
            segment.sourceRow = { row in
                view.isBias ? stored.lowerBound : view.transposed ? stored.lowerBound : stored.lowerBound + row * view.stride + view.phase
            }
            segment.releasesPages = e == experts - 1
            return segment
        }
    }

    /// Copies MXFP4 expert rows into ggml MXFP4 blocks: per row, each 32-value group's E8M0 byte and its 16 code bytes
    /// with the nibbles reordered (source: element 2j low / 2j+1 high; ggml: element j low / j+16 high).
    static func carryMXFP4(
        _ tensor: GGUFTensorPlan, view: FusedExpertView, blocks: TensorLocation, scales: TensorLocation, writer: TensorSink,
        hasher: ContentHasher, wrote: (Int) throws -> Void
    ) throws {
        let groups = view.columns / 32, rowBytes = groups * 17, experts = tensor.dimensions.last ?? 1
        guard let blockBase = blocks.data.baseAddress, let scaleBase = scales.data.baseAddress else { return }
        var output = [UInt8](repeating: 0, count: view.rows * rowBytes)
        for e in 0..<experts {
            let first = view.storedRows(expert: e).rows.lowerBound
            output.withUnsafeMutableBytes { out in
                for r in 0..<view.rows {
                    let row = first + r * view.stride + view.phase
                    Repack.mxfp4ToGGML(
                        blocks: blockBase + row * groups * 16, scales: scaleBase + row * groups, blockCount: groups,
                        into: out.baseAddress! + r * rowBytes)
                }
            }
            try output.withUnsafeBytes {
                try writer.write(tensor.name, bytes: $0, at: e * view.rows * rowBytes)
                hasher.update($0)
            }
            try wrote(view.rows * rowBytes)
        }
        for tensor in [blocks, scales] {
            let start = tensor.file.fileOffset(of: tensor.info)
            tensor.file.mapping.releasePages(in: start..<(start + tensor.info.byteCount))
        }
    }
}

/// One expert's decoded block, shared by the threads filling its rows and dropped once every row is produced.
final class ExpertBlock: @unchecked Sendable {
    private let lock = NSLock()
    private var decoded: [Float]? = nil
    private var rowsProduced = 0

    func values(count: Int, _ decode: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws -> [Float] {
        lock.lock()
        defer { lock.unlock() }
        if let decoded { return decoded }
        var values = [Float](repeating: 0, count: count)
        try values.withUnsafeMutableBufferPointer { try decode($0) }
        decoded = values
        return values
    }

    func produced(_ rows: Int, of total: Int) {
        lock.withLock {
            rowsProduced += rows
            if rowsProduced >= total { decoded = nil }
        }
    }
}
