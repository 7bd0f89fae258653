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
/// Which GGUF tensor (and which matrix of it) each forward-pass weight is, for the quantizable tensors of the stored file:
/// plain (same rows), one expert of a stacked tensor, or MLA's kv_b split into attn_k_b (per head, transposed: rows over
/// the no-rope dims) and attn_v_b (rows over the rank).
public struct QuantTargets: Sendable {
    public enum Target: Sendable {
        case plain(name: String, matrix: Int)
        case latentKeyValue(key: String, value: String, heads: Int, noPosition: Int, valueDim: Int)

        /// The forward-pass `weight` (rows of `width`) as the GGUF would hold it with each tensor quantized to
        /// `type(name)` (nil: kept as it is) with its importance row, decoded back into the forward pass's layout.
        public func reconstruct(
            _ weight: [Float], width: Int, importance: ImportanceMatrix?, type: (String) -> QuantType?
        ) throws -> [Float] {
            func roundTrip(_ w: [Float], rows: Int, width: Int, tensor: String, matrix: Int) throws -> [Float] {
                guard let t = type(tensor), t != .f32 else { return w }
                let row = t.layout.usesImportance ? importance?.importance(for: tensor, width: width, matrix: matrix) : nil
                let bytes = try QuantCodec.quantize(t, w, rows: rows, width: width, importance: row)
                return try QuantCodec.dequantize(t, bytes, count: w.count)
            }
            switch self {
            case .plain(let name, let matrix):
                return try roundTrip(weight, rows: weight.count / max(width, 1), width: width, tensor: name, matrix: matrix)
            case .latentKeyValue(let key, let value, let heads, let nope, let valueDim):
                // kv_b rows per head: nope key rows, then valueDim value rows, each `width` (= the latent rank) wide.
                let rank = width, perHead = nope + valueDim
                var approximate = weight
                for h in 0..<heads {
                    var transposed = [Float](repeating: 0, count: rank * nope)
                    for c in 0..<nope { for r in 0..<rank { transposed[r * nope + c] = weight[(h * perHead + c) * rank + r] } }
                    let keys = try roundTrip(transposed, rows: rank, width: nope, tensor: key, matrix: 0)
                    for c in 0..<nope { for r in 0..<rank { approximate[(h * perHead + c) * rank + r] = keys[r * nope + c] } }
                    let start = (h * perHead + nope) * rank
                    let values = try roundTrip(
                        Array(weight[start..<(start + valueDim * rank)]), rows: valueDim, width: rank, tensor: value, matrix: 0)
                    approximate.replaceSubrange(start..<(start + valueDim * rank), with: values)
                }
                return approximate
            }
        }
    }

    public let roles: [TensorRole: Target]
    /// The quantizable GGUF tensors these weights land in (the stored file's part of each role), in layout order.
    public let tensors: [GGUFTensorPlan]

    /// `includeOutputHead`: whether the file has output.weight (false for a tied model without lm_head: the head then
    /// runs on token_embd, which the forward pass calls the embedding).
    public init(spec: ModelSpec, includeOutputHead: Bool? = nil) {
        var roles: [TensorRole: Target] = [:], tensors: [GGUFTensorPlan] = []
        var latent: [Int: (key: GGUFTensorPlan?, value: GGUFTensorPlan?)] = [:]
        let layout = spec.tensorLayout
        for plan in layout.ggufTensors(includeOutputHead: includeOutputHead ?? !spec.tieWordEmbeddings) where plan.quantizable {
            if plan.part != layout.storedFilePart(of: plan.role) { continue }
            switch plan.source {
            case .weight, .ropePermuted:
                roles[plan.role] = .plain(name: plan.name, matrix: 0)
            case .stacked, .fusedExperts:
                guard case .routedExperts(let layer, let projection) = plan.role else { continue }
                for e in 0..<spec.routedExpertCount {
                    roles[.routedExpert(layer: layer, expert: e, projection: projection)] = .plain(name: plan.name, matrix: e)
                }
            case .negatedExponential:
                continue
            case .keyFromKVB:
                if let layer = plan.layer { latent[layer, default: (nil, nil)].key = plan }
            case .valueFromKVB:
                if let layer = plan.layer { latent[layer, default: (nil, nil)].value = plan }
            }
            tensors.append(plan)
        }
        for (layer, pair) in latent {
            guard let key = pair.key, let value = pair.value, case .keyFromKVB(_, let heads, let nope, let v) = key.source else { continue }
            roles[.attention(layer: layer, part: .keyValueB)] = .latentKeyValue(
                key: key.name, value: value.name, heads: heads, noPosition: nope, valueDim: v)
        }
        self.roles = roles
        self.tensors = tensors
    }
}

public final class SensitivityCollector: ActivationObserver {
    public let candidates: [QuantType]
    let importance: ImportanceMatrix?

    let targets: QuantTargets
    private var entries: [String: TensorSensitivity] = [:]

    /// Measure each candidate as llama.cpp's CPU backend computes it (the input rounded to the type's vec_dot_type).
    let llamaCPUArithmetic: Bool

    public init(
        spec: ModelSpec, candidates: [QuantType], importance: ImportanceMatrix? = nil, includeOutputHead: Bool? = nil,
        llamaCPUArithmetic: Bool = false
    ) {
        self.candidates = candidates
        self.importance = importance
        self.llamaCPUArithmetic = llamaCPUArithmetic
        targets = QuantTargets(spec: spec, includeOutputHead: includeOutputHead)
        for tensor in targets.tensors {
            entries[tensor.name] = TensorSensitivity(
                name: tensor.name, layer: tensor.layer, elements: tensor.dimensions.reduce(1, *), rowWidth: tensor.rowWidth)
        }
    }

    /// Every measured tensor, in name order.
    public var results: [TensorSensitivity] { entries.values.filter { $0.rows > 0 }.sorted { $0.name < $1.name } }

    public func observe(_ role: TensorRole, input: [Float], rows: Int, width: Int) {}

    public func observeProduct(_ role: TensorRole, input: [Float], rows: Int, width: Int, weight: [Float], output: [Float]) {
        guard let target = targets.roles[role], rows > 0 else { return }
        let outputs = weight.count / max(width, 1)
        // With llama.cpp's arithmetic each candidate meets the input as its dot product would (rounded to the type's
        // vec_dot_type), so the error is the weight's rounding and the activation's together, against the exact product.
        var rounded: [GGMLDotInput: [Float]] = [:]
        if llamaCPUArithmetic, case .plain = target {
            for kind in Set(candidates.map(GGMLDotInput.init(weight:))) where kind != .f32 && width % kind.blockSize == 0 {
                rounded[kind] = DenseOps.rounded(input, rows: rows, width: width, kind)
            }
        }
        let errors = measure(rows: rows, width: width, outputs: outputs) { type in
            (
                rounded[GGMLDotInput(weight: type)] ?? input,
                try target.reconstruct(weight, width: width, importance: self.importance) { _ in type }
            )
        }
        switch target {
        case .plain(let name, _):
            record(name, rows: rows, output: output, columns: nil, outputs: outputs, errors: errors)
        case .latentKeyValue(let key, let value, let heads, let nope, let valueDim):
            let perHead = nope + valueDim
            let keyColumns = Set((0..<heads).flatMap { h in (h * perHead)..<(h * perHead + nope) })
            record(key, rows: rows, output: output, columns: keyColumns, outputs: outputs, errors: errors)
            let valueColumns = Set((0..<outputs).filter { !keyColumns.contains($0) })
            record(value, rows: rows, output: output, columns: valueColumns, outputs: outputs, errors: errors)
        }
    }

    /// The embedding lookup is no product: its error is that of the looked-up rows, each counted as often as its
    /// token occurs in `windows` (token_embd is quantized row by row, without importance: llama-imatrix collects none
    /// for it).
    public func observeLookups(weights: WeightProvider, windows: [[Int]]) throws {
        guard case .plain(let name, _)? = targets.roles[.embedding], var entry = entries[name] else { return }
        var counts: [Int: Int] = [:]
        for window in windows { for id in window { counts[id, default: 0] += 1 } }
        let all = counts.keys.sorted(), h = weights.spec.hiddenSize
        entry.rows += counts.values.reduce(0, +)
        // A bounded number of rows at a time (a vocabulary of 160 k × 7168 would not fit whole).
        for start in stride(from: 0, to: all.count, by: 1024) {
            let ids = Array(all[start..<min(all.count, start + 1024)])
            var rows = [Float](repeating: 0, count: ids.count * h)
            for (i, id) in ids.enumerated() {
                rows.replaceSubrange((i * h)..<((i + 1) * h), with: try weights.weightRows(.embedding, id..<(id + 1)))
            }
            let occurrences = ids.map { Double(counts[$0]!) }
            var errors = [Result<Double, Error>](repeating: .success(0), count: candidates.count)
            errors.withUnsafeMutableBufferPointer { slots in
                Parallel.forEach(candidates.count) { c in
                    slots[c] = Result {
                        let type = candidates[c]
                        let bytes = try QuantCodec.quantize(type, rows, rows: ids.count, width: h, importance: nil)
                        let approximate = try QuantCodec.dequantize(type, bytes, count: rows.count)
                        var sum = 0.0
                        for i in ids.indices {
                            var row = 0.0
                            for j in 0..<h { let d = Double(approximate[i * h + j]) - Double(rows[i * h + j]); row += d * d }
                            sum += row * occurrences[i]
                        }
                        return sum
                    }
                }
            }
            for i in ids.indices {
                var energy = 0.0
                for j in 0..<h { energy += Double(rows[i * h + j]) * Double(rows[i * h + j]) }
                entry.outputEnergy += energy * occurrences[i]
            }
            for (type, result) in zip(candidates, errors) {
                switch result {
                case .success(let sum): entry.squaredError[type, default: 0] += sum
                case .failure(let error): entry.unavailable[type] = "\(error)"
                }
            }
        }
        entries[name] = entry
    }

    /// Per candidate: the output of the reconstructed weight on the input it meets, or why there is none.
    private func measure(
        rows: Int, width: Int, outputs: Int, reconstruct: (QuantType) throws -> (input: [Float], weight: [Float])
    ) -> [Result<[Float], Error>] {
        var results = [Result<[Float], Error>](repeating: .success([]), count: candidates.count)
        results.withUnsafeMutableBufferPointer { slots in
            Parallel.forEach(candidates.count) { c in
                slots[c] = Result {
                    let (x, w) = try reconstruct(candidates[c])
                    return DenseOps.linear(x, tokens: rows, inputs: width, w, outputs: outputs)
                }
            }
        }
        return results
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
        llamaCPUArithmetic: Bool = false, budget: Int = LayerMajor.defaultBudget, progress: LayerMajor.Progress? = nil
    ) throws -> [TensorSensitivity] {
        guard !windows.isEmpty, windows.allSatisfy({ !$0.isEmpty }) else { throw EngineError.noWork("no calibration tokens") }
        let collector = SensitivityCollector(
            spec: weights.spec, candidates: candidates, importance: importance, includeOutputHead: weights.has(.outputHead),
            llamaCPUArithmetic: llamaCPUArithmetic)
        try collector.observeLookups(weights: weights, windows: windows)
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
        LayerMajor.releaseMapped(weights, layer: nil)
        return collector.results
    }
}
