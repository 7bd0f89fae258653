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
    /// Inputs of a per-head weight (MLA's attn_k_b / attn_v_b as llama.cpp multiplies them): [heads][tokens][width].
    func observeHeads(_ role: TensorRole, input: [Float], heads: Int, tokens: Int, width: Int)
    /// A finished product: `input` [rows × width], the f32 `weight` [outputs × width] it met and the `output` [rows × outputs].
    func observeProduct(_ role: TensorRole, input: [Float], rows: Int, width: Int, weight: [Float], output: [Float])
}

extension ActivationObserver {
    public func observeHeads(_ role: TensorRole, input: [Float], heads: Int, tokens: Int, width: Int) {}
    public func observeProduct(_ role: TensorRole, input: [Float], rows: Int, width: Int, weight: [Float], output: [Float]) {}
}

public final class ImportanceCollector: ActivationObserver {
    /// `matrices` slices of `width` values; a per-head tensor keeps one count for all heads (llama-imatrix's dense 3-D case).
    /// (llama-imatrix also skips plain matmuls of micro-batches under 16 tokens; with its batching of several chunks
    /// per batch that happens only for odd chunk sizes such as 1030, whose last 6 tokens it drops — moeq counts them.)
    struct Target { let gguf: String; let matrix: Int; let matrices: Int; let width: Int; let routed: Bool }

    private var targets: [TensorRole: Target] = [:]
    /// GGUF tensors holding routed down projections (their counts are the routing statistics).
    private var routedDown: Set<String> = []
    private var sums: [String: [Double]] = [:]
    private var counts: [String: [Int]] = [:]

    /// Maps each weight of `spec` to the GGUF tensor (and expert or head slice) it becomes: every matrix of a layer that
    /// llama.cpp multiplies, routers included, and MLA's attn_k_b / attn_v_b with the activations llama.cpp's absorbed
    /// attention gives them (per head: the non-rope query part, and the attention-weighted normed latent).
    public init(spec: ModelSpec) {
        // Like llama-imatrix by default: the per-layer matmuls only (not token_embd / output).
        for plan in spec.tensorLayout.ggufTensors(includeOutputHead: true)
        where plan.dimensions.count >= 2 && plan.part == .weight && plan.layer != nil {
            switch plan.source {
            case .weight, .ropePermuted:
                targets[plan.role] = Target(gguf: plan.name, matrix: 0, matrices: 1, width: plan.rowWidth, routed: false)
            case .stacked, .fusedExperts:
                guard case .routedExperts(let layer, let projection) = plan.role else { continue }
                if projection == .down { routedDown.insert(plan.name) }
                for e in 0..<spec.routedExpertCount {
                    targets[.routedExpert(layer: layer, expert: e, projection: projection)] = Target(
                        gguf: plan.name, matrix: e, matrices: spec.routedExpertCount, width: plan.rowWidth, routed: true)
                }
            case .negatedExponential:
                continue
            case .keyFromKVB(_, let heads, _, _), .valueFromKVB(_, let heads, _, _):
                targets[plan.role] = Target(gguf: plan.name, matrix: 0, matrices: heads, width: plan.rowWidth, routed: false)
            }
        }
    }

    public func observe(_ role: TensorRole, input: [Float], rows: Int, width: Int) {
        guard let target = targets[role], target.width == width, target.matrices == 1 || target.routed else { return }
        start(target, counts: target.matrices)
        accumulate(&sums[target.gguf, default: []], at: target.matrix * width, input, rows: 0..<rows, width: width)
        counts[target.gguf, default: [0]][target.matrix] += rows
    }

    public func observeHeads(_ role: TensorRole, input: [Float], heads: Int, tokens: Int, width: Int) {
        guard let target = targets[role], target.width == width, target.matrices == heads, !target.routed else { return }
        start(target, counts: 1)
        for head in 0..<heads {
            accumulate(
                &sums[target.gguf, default: []], at: head * width, input, rows: (head * tokens)..<((head + 1) * tokens), width: width)
        }
        counts[target.gguf, default: [0]][0] += tokens
    }

    private func start(_ target: Target, counts n: Int) {
        guard sums[target.gguf] == nil else { return }
        sums[target.gguf] = [Double](repeating: 0, count: target.width * target.matrices)
        counts[target.gguf] = [Int](repeating: 0, count: n)
    }

    private func accumulate(_ sum: inout [Double], at base: Int, _ input: [Float], rows: Range<Int>, width: Int) {
        for r in rows { for c in 0..<width { let v = Double(input[r * width + c]); sum[base + c] += v * v } }
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
            specs.append(GGUFTensorSpec(name: name + ImportanceMatrix.sumSuffix, dimensions: [width, matrices], type: .f32))
            specs.append(GGUFTensorSpec(name: name + ImportanceMatrix.countSuffix, dimensions: [1, matrices], type: .f32))
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
