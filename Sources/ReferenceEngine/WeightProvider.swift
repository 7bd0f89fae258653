// Where the engine's weights come from: a safetensors checkpoint in any source encoding, or a GGUF that moeq
// (or llama.cpp) wrote for the same model, read back through the HF → GGUF mapping in reverse.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

/// HF-named f32 weights for the forward pass.
public protocol WeightProvider {
    var spec: ModelSpec { get }
    func has(_ name: String) -> Bool
    func weight(_ name: String) throws -> [Float]
}

/// Weights decoded from a safetensors checkpoint (BF16/F16/F32, FP8 blocks, packed INT4).
public struct CheckpointWeights: WeightProvider {
    public let spec: ModelSpec
    let resolver: WeightResolver

    public init(path: String) throws {
        let checkpoint = try Checkpoint(path: path)
        spec = try ModelSpec(configFile: (checkpoint.directory as NSString).appendingPathComponent("config.json"))
        resolver = WeightResolver(checkpoint: checkpoint, quantization: spec.quantization)
    }

    public func has(_ name: String) -> Bool { resolver.checkpoint.contains(name) }
    public func weight(_ name: String) throws -> [Float] { try resolver.weight(named: name).decodeAll() }
}

/// Weights dequantized from a GGUF of the model `spec` describes (names and layouts from `ggufTensors`).
public final class GGUFWeights: WeightProvider {
    public let spec: ModelSpec
    let file: GGUFFile
    /// HF name → (GGUF plan, which expert/part).
    private var sources: [String: (plan: GGUFTensorPlan, index: Int)] = [:]

    public init(path: String, spec: ModelSpec) throws {
        self.spec = spec
        file = try GGUFFile(path: path)
        for plan in spec.ggufTensors(has: { _ in true }) where file.tensor(named: plan.name) != nil {
            switch plan.source {
            case .weight(let n), .ropePermuted(let n, _): sources[n] = (plan, 0)
            case .stacked(let names): for (e, n) in names.enumerated() { sources[n] = (plan, e) }
            case .keyFromKVB(let n, _, _, _): sources[n] = (plan, 0)
            case .valueFromKVB: break
            }
        }
    }

    public func has(_ name: String) -> Bool { sources[name] != nil }

    /// Every HF weight this GGUF provides, in a stable order.
    public var names: [String] { sources.keys.sorted() }

    private func values(_ name: String) throws -> [Float] {
        guard let info = file.tensor(named: name) else { throw EngineError.unsupported("a GGUF without \(name)") }
        return try file.dequantized(info)
    }

    public func weight(_ name: String) throws -> [Float] {
        guard let (plan, index) = sources[name] else { throw EngineError.unsupported("weight \(name) in \(file.path)") }
        let all = try values(plan.name)
        switch plan.source {
        case .weight:
            return all
        case .stacked:
            let size = plan.rowWidth * plan.dimensions[1]
            return Array(all[(index * size)..<((index + 1) * size)])
        case .ropePermuted(_, let heads):
            // Undo llama.cpp's permute: GGUF row h·d + 2i + j holds HF row h·d + j·(d/2) + i.
            let width = plan.rowWidth, rows = plan.rowCount, headRows = rows / heads
            var out = [Float](repeating: 0, count: all.count)
            for row in 0..<rows {
                let h = row / headRows, within = row % headRows
                let source = h * headRows + (within % 2) * (headRows / 2) + within / 2
                for c in 0..<width { out[source * width + c] = all[row * width + c] }
            }
            return out
        case let .keyFromKVB(_, heads, noPosition, value):
            // kv_b_proj rows per head: the transposed attn_k_b block, then the attn_v_b rows.
            let keys = all, values = try self.values(plan.name.replacingOccurrences(of: "attn_k_b", with: "attn_v_b"))
            let rank = plan.dimensions[1]
            var out = [Float](repeating: 0, count: heads * (noPosition + value) * rank)
            for h in 0..<heads {
                for c in 0..<noPosition { for r in 0..<rank { out[(h * (noPosition + value) + c) * rank + r] = keys[(h * rank + r) * noPosition + c] } }
                for v in 0..<value { for r in 0..<rank { out[(h * (noPosition + value) + noPosition + v) * rank + r] = values[(h * value + v) * rank + r] } }
            }
            return out
        case .valueFromKVB:
            throw EngineError.unsupported("attn_v_b alone")
        }
    }
}
