// Per-tensor sensitivity, the measurement `moeq fit` solves over: for every quantizable GGUF tensor and every candidate
// type, the squared error that quantizing that tensor alone adds to its own output, on the base model's activations
// over the calibration windows (the layer-major pass: each weight met once per batch of windows, stacked experts summed
// over the tokens routed to each expert, so busy experts weigh more). The input each weight meets is what the observer
// protocol hands out; here it is multiplied by the candidate's dequantized weight and compared with the f32 product.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

/// One GGUF tensor's measured sensitivity.
public struct TensorSensitivity: Sendable, Equatable {
    /// GGUF tensor name (a stacked expert tensor once, for all its experts).
    public let name: String
    public let layer: Int?
    /// Weight elements and row width as the GGUF stores the tensor.
    public let elements: Int
    public let rowWidth: Int
    /// Input rows seen (tokens; for stacked experts, token-expert pairs).
    public var rows = 0
    /// Σ y² of the f32 output over those rows (to make errors relative).
    public var outputEnergy = 0.0
    /// Σ (y_type − y)² per candidate type.
    public var squaredError: [QuantType: Double] = [:]
    /// Candidates that could not be measured on this tensor, and why (row width, importance matrix required).
    public var unavailable: [QuantType: String] = [:]

    /// Error relative to the output's energy (0 when nothing was seen).
    public func relativeError(_ type: QuantType) -> Double? {
        squaredError[type].map { outputEnergy > 0 ? $0 / outputEnergy : 0 }
    }
}

/// Measures `TensorSensitivity` for every quantizable tensor the forward pass multiplies by (an observer of the base
/// model's pass). Candidates are measured concurrently; the order of accumulation is fixed, so results are deterministic.
public final class SensitivityCollector: ActivationObserver {
    public let candidates: [QuantType]
    let importance: ImportanceMatrix?

    /// How a forward-pass weight maps onto a GGUF tensor: plain (same rows), one expert of a stacked tensor, or MLA's
    /// kv_b split into attn_k_b (per head, transposed: rows over the no-rope dims) and attn_v_b (rows over the rank).
    enum Target {
        case plain(name: String, matrix: Int)
        case latentKeyValue(key: String, value: String, heads: Int, noPosition: Int, valueDim: Int)
    }
    private var targets: [TensorRole: Target] = [:]
    private var entries: [String: TensorSensitivity] = [:]

    public init(spec: ModelSpec, candidates: [QuantType], importance: ImportanceMatrix? = nil) {
        self.candidates = candidates
        self.importance = importance
        var latent: [Int: (key: GGUFTensorPlan?, value: GGUFTensorPlan?)] = [:]
        let layout = spec.tensorLayout
        for plan in layout.ggufTensors(includeOutputHead: true) where plan.quantizable {
            if plan.part != layout.storedFilePart(of: plan.role) { continue }
            switch plan.source {
            case .weight, .ropePermuted:
                targets[plan.role] = .plain(name: plan.name, matrix: 0)
            case .stacked:
                guard case .routedExperts(let layer, let projection) = plan.role else { continue }
                for e in 0..<spec.routedExpertCount {
                    targets[.routedExpert(layer: layer, expert: e, projection: projection)] = .plain(name: plan.name, matrix: e)
                }
            case .keyFromKVB:
                if let layer = plan.layer { latent[layer, default: (nil, nil)].key = plan }
            case .valueFromKVB:
                if let layer = plan.layer { latent[layer, default: (nil, nil)].value = plan }
            case .fusedHalf:
                continue
            }
            entries[plan.name] = TensorSensitivity(
                name: plan.name, layer: plan.layer, elements: plan.dimensions.reduce(1, *), rowWidth: plan.rowWidth)
        }
        for (layer, pair) in latent {
            guard let key = pair.key, let value = pair.value, case .keyFromKVB(_, let heads, let nope, let v) = key.source else { continue }
            targets[.attention(layer: layer, part: .keyValueB)] = .latentKeyValue(
                key: key.name, value: value.name, heads: heads, noPosition: nope, valueDim: v)
        }
    }

    /// Every measured tensor, in name order.
    public var results: [TensorSensitivity] { entries.values.filter { $0.rows > 0 }.sorted { $0.name < $1.name } }

    public func observe(_ role: TensorRole, input: [Float], rows: Int, width: Int) {}

    public func observeProduct(_ role: TensorRole, input: [Float], rows: Int, width: Int, weight: [Float], output: [Float]) {
        guard let target = targets[role], rows > 0 else { return }
        let outputs = weight.count / max(width, 1)
        switch target {
        case .plain(let name, let matrix):
            let errors = measure(input, rows: rows, width: width, outputs: outputs) { type in
                try self.reconstruct(weight, rows: outputs, width: width, type: type, tensor: name, matrix: matrix)
            }
            record(name, rows: rows, output: output, columns: nil, outputs: outputs, errors: errors)
        case .latentKeyValue(let key, let value, let heads, let nope, let valueDim):
            // kv_b rows per head: nope key rows, then valueDim value rows, each `width` (= the latent rank) wide.
            let rank = width, perHead = nope + valueDim
            let errors = measure(input, rows: rows, width: width, outputs: outputs) { type in
                var approximate = weight
                for h in 0..<heads {
                    // attn_k_b: the head's key block transposed, rows of `nope` values, one per latent dim.
                    var transposed = [Float](repeating: 0, count: rank * nope)
                    for c in 0..<nope { for r in 0..<rank { transposed[r * nope + c] = weight[(h * perHead + c) * rank + r] } }
                    let keys = try self.reconstruct(transposed, rows: rank, width: nope, type: type, tensor: key, matrix: 0)
                    for c in 0..<nope { for r in 0..<rank { approximate[(h * perHead + c) * rank + r] = keys[r * nope + c] } }
                    let start = (h * perHead + nope) * rank
                    let values = try self.reconstruct(
                        Array(weight[start..<(start + valueDim * rank)]), rows: valueDim, width: rank, type: type, tensor: value, matrix: 0)
                    approximate.replaceSubrange(start..<(start + valueDim * rank), with: values)
                }
                return approximate
            }
            let keyColumns = Set((0..<heads).flatMap { h in (h * perHead)..<(h * perHead + nope) })
            record(key, rows: rows, output: output, columns: keyColumns, outputs: outputs, errors: errors)
            let valueColumns = Set((0..<outputs).filter { !keyColumns.contains($0) })
            record(value, rows: rows, output: output, columns: valueColumns, outputs: outputs, errors: errors)
        }
    }

    /// Per candidate: the output of the reconstructed weight, or why there is none.
    private func measure(
        _ x: [Float], rows: Int, width: Int, outputs: Int, reconstruct: (QuantType) throws -> [Float]
    ) -> [Result<[Float], Error>] {
        var results = [Result<[Float], Error>](repeating: .success([]), count: candidates.count)
        results.withUnsafeMutableBufferPointer { slots in
            Parallel.forEach(candidates.count) { c in
                slots[c] = Result {
                    let w = try reconstruct(candidates[c])
                    return DenseOps.linear(x, tokens: rows, inputs: width, w, outputs: outputs)
                }
            }
        }
        return results
    }

    /// `weight` quantized to `type` as llama-quantize would store `tensor` (with its importance row) and decoded.
    private func reconstruct(_ weight: [Float], rows: Int, width: Int, type: QuantType, tensor: String, matrix: Int) throws -> [Float] {
        let row = importance?.importance(for: tensor, width: width, matrix: matrix)
        let bytes = try QuantCodec.quantize(type, weight, rows: rows, width: width, importance: type.layout.usesImportance ? row : nil)
        return try QuantCodec.dequantize(type, bytes, count: weight.count)
    }

    private func record(
        _ name: String, rows: Int, output: [Float], columns: Set<Int>?, outputs: Int, errors: [Result<[Float], Error>]
    ) {
        guard var entry = entries[name] else { return }
        func included(_ i: Int) -> Bool { columns?.contains(i % outputs) ?? true }
        entry.rows += rows
        entry.outputEnergy += output.indices.reduce(0.0) { included($1) ? $0 + Double(output[$1]) * Double(output[$1]) : $0 }
        for (type, result) in zip(candidates, errors) {
            switch result {
            case .success(let approximate):
                var sum = 0.0
                for i in output.indices where included(i) {
                    let d = Double(approximate[i]) - Double(output[i])
                    sum += d * d
                }
                entry.squaredError[type, default: 0] += sum
            case .failure(let error):
                entry.unavailable[type] = "\(error)"
            }
        }
        entries[name] = entry
    }
}

/// The sensitivity pass: the base model over `windows`, layer-major within `budget`, with a collector watching every
/// product (the output head included, over the final hidden states of every window).
public enum Sensitivity {
    public static func measure(
        weights: WeightProvider, windows: [[Int]], candidates: [QuantType], importance: ImportanceMatrix? = nil,
        budget: Int = LayerMajor.defaultBudget, progress: LayerMajor.Progress? = nil
    ) throws -> [TensorSensitivity] {
        guard !windows.isEmpty, windows.allSatisfy({ !$0.isEmpty }) else { throw EngineError.noWork("no calibration tokens") }
        let collector = SensitivityCollector(spec: weights.spec, candidates: candidates, importance: importance)
        var engine = try ReferenceModel.engine(weights: weights)
        engine.observer = collector
        let states = try LayerMajor.hiddenStates(engine, windows: windows, budget: budget, progress: progress)
        // The head over batches of windows (its product is tokens × vocabulary wide).
        let counts = windows.map(\.count), h = weights.spec.hiddenSize
        let perToken = 12 * weights.spec.vocabularySize + 4 * h
        for group in LayerMajor.batches(counts, perToken: perToken, workingBytes: max(budget / 4, 64 << 20)) {
            var x: [Float] = []
            for w in group { x += try states.read(w) }
            _ = try engine.head(x, tokens: counts[group].reduce(0, +))
        }
        return collector.results
    }
}
