// `moeq imatrix`: importance matrices in llama.cpp's GGUF format, counted per expert, plus routing statistics.
// Σ x² per input column of every matmul, keyed by the GGUF tensor the weight becomes (experts of a stacked
// tensor each get their own slice and token count).
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

/// Receives the input rows of each projection, by the weight's role.
public protocol ActivationObserver: AnyObject {
    func observe(_ role: TensorRole, input: [Float], rows: Int, width: Int)
}

public final class ImportanceCollector: ActivationObserver {
    struct Target { let gguf: String; let matrix: Int; let matrices: Int; let width: Int }

    private var targets: [TensorRole: Target] = [:]
    /// GGUF tensors holding routed down projections (their counts are the routing statistics).
    private var routedDown: Set<String> = []
    private var sums: [String: [Double]] = [:]
    private var counts: [String: [Int]] = [:]

    /// Maps each weight of `spec` to the GGUF tensor (and expert slice) it becomes. MLA's kv_b is left out:
    /// llama.cpp multiplies attn_k_b / attn_v_b by different activations than transformers' kv_b_proj.
    public init(spec: ModelSpec) {
        // Like llama-imatrix by default: the per-layer matmuls only (not token_embd / output).
        for plan in spec.tensorLayout.ggufTensors(includeOutputHead: true) where plan.quantizable && plan.layer != nil {
            switch plan.source {
            case .weight, .ropePermuted:
                targets[plan.role] = Target(gguf: plan.name, matrix: 0, matrices: 1, width: plan.rowWidth)
            case .stacked:
                guard case .routedExperts(let layer, let projection) = plan.role else { continue }
                if projection == .down { routedDown.insert(plan.name) }
                for e in 0..<spec.routedExpertCount {
                    targets[.routedExpert(layer: layer, expert: e, projection: projection)] = Target(
                        gguf: plan.name, matrix: e, matrices: spec.routedExpertCount, width: plan.rowWidth)
                }
            case .keyFromKVB, .valueFromKVB, .fusedHalf:
                break
            }
        }
    }

    public func observe(_ role: TensorRole, input: [Float], rows: Int, width: Int) {
        guard let target = targets[role], target.width == width else { return }
        var sum = sums[target.gguf] ?? [Double](repeating: 0, count: target.width * target.matrices)
        var count = counts[target.gguf] ?? [Int](repeating: 0, count: target.matrices)
        let base = target.matrix * width
        for r in 0..<rows { for c in 0..<width { let v = Double(input[r * width + c]); sum[base + c] += v * v } }
        count[target.matrix] += rows
        sums[target.gguf] = sum
        counts[target.gguf] = count
    }

    /// Experts (tensor, index) that never received a token.
    public var idleExperts: [(tensor: String, expert: Int)] {
        counts.sorted { $0.key < $1.key }.flatMap { name, c in
            c.count > 1 ? c.enumerated().filter { $0.element == 0 }.map { (name, $0.offset) } : []
        }
    }

    /// Tokens routed to each expert per layer (from the down projections' counts).
    public var routing: [(tensor: String, tokens: [Int])] {
        counts.filter { routedDown.contains($0.key) }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
    }

    /// Writes llama.cpp's GGUF imatrix: `W.in_sum2` (raw Σx², ne {width, matrices}) and `W.counts` (ne {1, matrices}).
    public func write(to path: String, dataset: String, chunks: Int, chunkSize: Int) throws {
        var specs: [GGUFTensorSpec] = []
        let names = sums.keys.sorted()
        for name in names {
            let matrices = counts[name]?.count ?? 1, width = (sums[name]?.count ?? 0) / max(matrices, 1)
            specs.append(GGUFTensorSpec(name: name + ".in_sum2", dimensions: [width, matrices], type: .f32))
            specs.append(GGUFTensorSpec(name: name + ".counts", dimensions: [1, matrices], type: .f32))
        }
        let layout = try GGUFLayout(
            metadata: [
                (.type, .string(GGUFKey.imatrixType)), (.imatrixDatasets, .strings([dataset])),
                (.imatrixChunkCount, .uint32(UInt32(clamping: chunks))), (.imatrixChunkSize, .uint32(UInt32(clamping: chunkSize))),
            ],
            tensors: specs, file: path)
        let writer = try GGUFWriter(path: path, layout: layout)
        func floats(_ values: [Float]) -> [UInt8] { values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }
        var entries: [OutputManifest.Entry] = []
        do {
            for name in names {
                for (tensor, bytes) in [
                    (name + ImportanceMatrix.sumSuffix, floats((sums[name] ?? []).map { Float($0) })),
                    (name + ImportanceMatrix.countSuffix, floats((counts[name] ?? []).map { Float($0) })),
                ] {
                    try bytes.withUnsafeBytes { try writer.write(tensor, bytes: $0) }
                    entries.append(
                        .init(name: tensor, offset: writer.fileOffset(of: tensor) ?? 0, bytes: bytes.count, xxh3: ContentHash.xxh3(bytes)))
                }
            }
            // Like a converted GGUF, the file carries a manifest (moeq verify; a later run may replace it).
            try OutputManifest(
                file: path, fileBytes: layout.fileSize, headerXXH3: ContentHash.xxh3(Array(layout.header.prefix(layout.dataStart))),
                tensors: entries
            ).write()
            try writer.finish()
        } catch {
            writer.abandon()
            OutputManifest.remove(for: path)
            throw error
        }
    }
}
