// `moeq imatrix`: importance matrices in llama.cpp's GGUF format, counted per expert, plus routing statistics.
// Σ x² per input column of every matmul, keyed by the GGUF tensor the weight becomes (experts of a stacked
// tensor each get their own slice and token count).
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

/// Receives the input rows of each projection.
public protocol ActivationObserver: AnyObject {
    func observe(weight: String, input: [Float], rows: Int, width: Int)
}

public final class ImportanceCollector: ActivationObserver {
    struct Target { let gguf: String; let matrix: Int; let matrices: Int; let width: Int }

    private var targets: [String: Target] = [:]
    private var sums: [String: [Double]] = [:]
    private var counts: [String: [Int]] = [:]

    /// Maps each HF weight of `spec` to the GGUF tensor (and expert slice) it becomes. MLA's kv_b is left out:
    /// llama.cpp multiplies attn_k_b / attn_v_b by different activations than transformers' kv_b_proj.
    public init(spec: ModelSpec) {
        // Like llama-imatrix by default: the blk.* matmuls only (not token_embd / output).
        for plan in spec.ggufTensors(has: { _ in true }) where plan.quantizable && plan.name.hasPrefix("blk.") {
            switch plan.source {
            case .weight(let name), .ropePermuted(let name, _):
                targets[name] = Target(gguf: plan.name, matrix: 0, matrices: 1, width: plan.rowWidth)
            case .stacked(let names):
                for (e, name) in names.enumerated() { targets[name] = Target(gguf: plan.name, matrix: e, matrices: names.count, width: plan.rowWidth) }
            case .keyFromKVB, .valueFromKVB:
                break
            }
        }
    }

    public func observe(weight: String, input: [Float], rows: Int, width: Int) {
        guard let target = targets[weight], target.width == width else { return }
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
        counts.sorted { $0.key < $1.key }.flatMap { name, c in c.count > 1 ? c.enumerated().filter { $0.element == 0 }.map { (name, $0.offset) } : [] }
    }

    /// Tokens routed to each expert per layer (from the down projections' counts).
    public var routing: [(tensor: String, tokens: [Int])] {
        counts.filter { $0.key.contains("ffn_down_exps") }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
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
        let layout = try GGUFLayout(metadata: [("general.type", .string("imatrix")), ("imatrix.datasets", .strings([dataset])),
                                               ("imatrix.chunk_count", .uint32(UInt32(chunks))), ("imatrix.chunk_size", .uint32(UInt32(chunkSize)))],
                                    tensors: specs, file: path)
        let writer = try GGUFWriter(path: path, layout: layout)
        func floats(_ values: [Float]) -> [UInt8] { values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }
        for name in names {
            try floats((sums[name] ?? []).map { Float($0) }).withUnsafeBytes { try writer.write(name + ".in_sum2", bytes: $0) }
            try floats((counts[name] ?? []).map { Float($0) }).withUnsafeBytes { try writer.write(name + ".counts", bytes: $0) }
        }
        try writer.finish()
    }
}
