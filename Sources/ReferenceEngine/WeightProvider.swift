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
    /// How a matmul input is rounded before it meets `name` (llama.cpp CPU arithmetic), or nil for exact f32.
    func dotInput(_ name: String) -> GGMLDotInput?
}

extension WeightProvider {
    public func dotInput(_ name: String) -> GGMLDotInput? { nil }

    /// x · Wᵀ for the HF weight `name` ([tokens × inputs] → [tokens × outputs]); the observer sees the input as
    /// it is, the product uses it rounded as llama.cpp's CPU backend would when `dotInput` says so.
    func project(_ x: [Float], tokens: Int, inputs: Int, _ name: String, outputs: Int, observer: ActivationObserver?) throws -> [Float] {
        observer?.observe(weight: name, input: x, rows: tokens, width: inputs)
        let w = try weight(name)
        guard let rounding = dotInput(name), rounding != .f32, inputs % rounding.blockSize == 0 else {
            return DenseOps.linear(x, tokens: tokens, inputs: inputs, w, outputs: outputs)
        }
        var rounded = x
        rounding.round(&rounded)
        return DenseOps.linear(rounded, tokens: tokens, inputs: inputs, w, outputs: outputs)
    }
}

/// Decoded weights kept between windows up to a byte budget (oldest dropped first), so that a validate run over
/// many chunks decodes each weight once when the model fits the budget, and memory stays bounded when it does not.
final class DecodedWeightCache {
    let budget: Int
    private var values: [String: [Float]] = [:]
    private var order: [String] = []
    private var bytes = 0

    init(budget: Int) { self.budget = budget }

    func value(_ name: String, _ decode: () throws -> [Float]) rethrows -> [Float] {
        if let hit = values[name] { return hit }
        let decoded = try decode()
        let size = decoded.count * 4
        guard size <= budget else { return decoded }
        while bytes + size > budget, !order.isEmpty {
            let oldest = order.removeFirst()
            bytes -= (values.removeValue(forKey: oldest)?.count ?? 0) * 4
        }
        values[name] = decoded
        order.append(name)
        bytes += size
        return decoded
    }
}

/// Bytes of decoded f32 weights each model keeps between windows (MOEQ_WEIGHT_CACHE_MB overrides; 0 disables).
let decodedWeightBudget: Int = {
    if let text = ProcessInfo.processInfo.environment["MOEQ_WEIGHT_CACHE_MB"], let mb = Int(text), mb >= 0 { return mb << 20 }
    return 1 << 30
}()

/// Weights decoded from a safetensors checkpoint (BF16/F16/F32, FP8 blocks, packed INT4).
public struct CheckpointWeights: WeightProvider {
    public let spec: ModelSpec
    let resolver: WeightResolver
    let cache = DecodedWeightCache(budget: decodedWeightBudget)

    public init(path: String) throws {
        let checkpoint = try Checkpoint(path: path)
        spec = try ModelSpec(configFile: (checkpoint.directory as NSString).appendingPathComponent("config.json"))
        resolver = WeightResolver(checkpoint: checkpoint, quantization: spec.quantization)
    }

    public func has(_ name: String) -> Bool { resolver.checkpoint.contains(name) }
    public func weight(_ name: String) throws -> [Float] { try cache.value(name) { try resolver.weight(named: name).decodeAll() } }
}

/// Weights dequantized from a GGUF of the model `spec` describes (names and layouts from `ggufTensors`).
public final class GGUFWeights: WeightProvider {
    public let spec: ModelSpec
    let file: GGUFFile
    /// HF name → (GGUF plan, which expert/part).
    private var sources: [String: (plan: GGUFTensorPlan, index: Int)] = [:]

    /// Round every matmul input as llama.cpp's CPU backend does for the stored weight type (Q8_0 activations for
    /// Q8_0/Q4_0/Q5_0, Q8_K for k-quants, F16 for F16 …), so logits and KLD predict what llama-perplexity reports.
    /// MLA's kv_b_proj is left exact: llama.cpp runs it as the absorbed attn_k_b / attn_v_b products instead.
    public var llamaCPUArithmetic = false

    public init(path: String, spec: ModelSpec, llamaCPUArithmetic: Bool = false) throws {
        self.spec = spec
        self.llamaCPUArithmetic = llamaCPUArithmetic
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

    public func dotInput(_ name: String) -> GGMLDotInput? {
        guard llamaCPUArithmetic, let (plan, _) = sources[name], let info = file.tensor(named: plan.name) else { return nil }
        if case .keyFromKVB = plan.source { return nil }
        return GGMLDotInput(weight: info.type)
    }

    /// Every HF weight this GGUF provides, in a stable order.
    public var names: [String] { sources.keys.sorted() }

    private func values(_ name: String) throws -> [Float] {
        guard let info = file.tensor(named: name) else { throw EngineError.unsupported("a GGUF without \(name)") }
        return try file.dequantized(info)
    }

    let cache = DecodedWeightCache(budget: decodedWeightBudget)

    public func weight(_ name: String) throws -> [Float] { try cache.value(name) { try decode(name) } }

    private func decode(_ name: String) throws -> [Float] {
        guard let (plan, index) = sources[name] else { throw EngineError.unsupported("weight \(name) in \(file.path)") }
        if case .stacked(let names) = plan.source {
            guard let info = file.tensor(named: plan.name) else { throw EngineError.unsupported("a GGUF without \(plan.name)") }
            return try file.dequantized(info, matrix: index, of: names.count)
        }
        let all = try values(plan.name)
        switch plan.source {
        case .weight, .stacked:
            return all
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
