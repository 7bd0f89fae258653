// Weights read back from a GGUF that moeq (or llama.cpp) wrote for a model: the architecture table's GGUF → checkpoint
// assembly in reverse (stacked experts split, rope permutation and kv_b split undone), checked against the spec first.
import Foundation
import ModelCatalog
import QuantKernels
import TensorFormats

/// Weights dequantized from a GGUF of the model `spec` describes (names and layouts from the architecture table).
public final class GGUFWeights: WeightProvider {
    public let spec: ModelSpec
    let file: GGUFFile
    /// Checkpoint role → the GGUF tensor holding it, and which expert / part of it.
    private var sources: [TensorRole: (plan: GGUFTensorPlan, index: Int)] = [:]
    /// GGUF role → its plan (for the MLA value half).
    private var plans: [TensorRole: GGUFTensorPlan] = [:]
    /// Role → the GGUF tensor holding the bias added after its product, and which expert's row of it.
    private var biases: [TensorRole: (plan: GGUFTensorPlan, index: Int)] = [:]

    /// Round every matmul input as llama.cpp's CPU backend does for the stored weight type (Q8_0 activations for
    /// Q8_0/Q4_0/Q5_0, Q8_K for k-quants, F16 for F16 …), so logits and KLD predict what llama-perplexity reports.
    /// MLA's kv_b_proj is left exact: llama.cpp runs it as the absorbed attn_k_b / attn_v_b products instead.
    public var llamaCPUArithmetic = false

    /// Opens `path` and checks that it is a GGUF of `spec`'s model: the same hyper-parameters, and every tensor the
    /// table gives the spec present with its shape (`allowMissingExperts`: the routed experts live elsewhere, as in
    /// an expert-major layout's dense file).
    public init(path: String, spec: ModelSpec, llamaCPUArithmetic: Bool = false, allowMissingExperts: Bool = false) throws {
        self.spec = spec
        self.llamaCPUArithmetic = llamaCPUArithmetic
        file = try GGUFFile(path: path)
        try GGUFWeights.checkSameModel(file, spec: spec)
        let layout = spec.tensorLayout
        for plan in layout.ggufTensors(includeOutputHead: true) where plan.part == .bias && plan.layer.map({ $0 < spec.layerCount }) ?? true
        {
            guard let info = file.tensor(named: plan.name) else { throw EngineError.missingTensor(file: path, tensor: plan.name) }
            guard GGUFWeights.sameShape(info.dimensions, plan) else {
                throw EngineError.tensorShape(
                    file: path, tensor: plan.name, byteOffset: file.dataStart + info.offset, found: info.dimensions,
                    expected: plan.dimensions)
            }
            switch plan.source {
            case .weight: biases[plan.role] = (plan, 0)
            case .fusedExperts:
                guard case .routedExperts(let l, let projection) = plan.role else { continue }
                for e in 0..<spec.routedExpertCount { biases[.routedExpert(layer: l, expert: e, projection: projection)] = (plan, e) }
            default: continue
            }
        }
        for plan in layout.ggufTensors(includeOutputHead: true) where plan.part == layout.storedFilePart(of: plan.role) {
            guard let info = file.tensor(named: plan.name) else {
                if plan.role == .outputHead && spec.tieWordEmbeddings { continue }
                if allowMissingExperts && plan.role.category == .routedExperts { continue }
                if plan.role.category == .routedExperts {
                    throw EngineError.missingTensor(
                        file: path,
                        tensor: plan.name + " (an expert-major GGUF runs with its pack \(ExpertPackFile.path(forDense: path)) beside it)")
                }
                throw EngineError.missingTensor(file: path, tensor: plan.name)
            }
            guard GGUFWeights.sameShape(info.dimensions, plan) else {
                throw EngineError.tensorShape(
                    file: path, tensor: plan.name, byteOffset: file.dataStart + info.offset, found: info.dimensions,
                    expected: plan.dimensions)
            }
            plans[plan.role] = plan
            switch plan.source {
            case .weight, .ropePermuted:
                sources[plan.role] = (plan, 0)
            case .stacked, .fusedExperts:
                guard case .routedExperts(let l, let projection) = plan.role else { continue }
                for e in 0..<spec.routedExpertCount { sources[.routedExpert(layer: l, expert: e, projection: projection)] = (plan, e) }
            case .keyFromKVB:
                if let layer = plan.layer { sources[.attention(layer: layer, part: .keyValueB)] = (plan, 0) }
            case .negatedExponential:
                sources[plan.role] = (plan, 0)
            case .valueFromKVB:
                break
            }
        }
    }

    /// A tensor's stored dimensions are the plan's, or the plan's without trailing 1s (as llama-quantize writes them).
    static func sameShape(_ stored: [Int], _ plan: GGUFTensorPlan) -> Bool {
        stored == plan.dimensions || stored == plan.trimmedDimensions
    }

    /// Refuses a GGUF of another model than `spec` (a wrong `--base`), naming what differs.
    static func checkSameModel(_ file: GGUFFile, spec: ModelSpec) throws {
        let own: ModelSpec
        do { own = try ModelSpec(gguf: file) } catch {
            throw EngineError.notThisModel(file: file.path, reason: "its header does not describe a model moeq runs: \(error)")
        }
        let pairs: [(String, Int, Int)] = [
            (
                "architecture", Architecture.allCases.firstIndex(of: own.architecture) ?? -1,
                Architecture.allCases.firstIndex(of: spec.architecture) ?? -1
            ),
            ("layers", own.layerCount, spec.layerCount), ("hidden size", own.hiddenSize, spec.hiddenSize),
            ("vocabulary", own.vocabularySize, spec.vocabularySize), ("attention heads", own.headCount, spec.headCount),
            ("routed experts", own.routedExpertCount, spec.routedExpertCount),
            ("experts per token", own.expertsPerToken, spec.expertsPerToken),
            ("expert width", own.expertIntermediateSize, spec.expertIntermediateSize),
        ]
        for (what, a, b) in pairs where a != b {
            throw EngineError.notThisModel(
                file: file.path, reason: "its \(what) is \(a), the base's config.json says \(b): pass the --base this GGUF was made from")
        }
    }

    public func has(_ role: TensorRole) -> Bool { sources[role] != nil }

    public func rowDecoder(_ role: TensorRole) -> WeightRows? { rowDecoder(role, minimumBytes: WeightRows.minimumBytes) }

    func rowDecoder(_ role: TensorRole, minimumBytes: Int) -> WeightRows? {
        guard let (plan, index) = sources[role], let info = file.tensor(named: plan.name),
            let rowBytes = info.type.rowBytes(width: plan.rowWidth)
        else { return nil }
        let matrices: Int
        switch plan.source {
        case .weight: matrices = 1
        case .stacked, .fusedExperts: matrices = plan.dimensions[2]
        default: return nil  // permuted or split on the way back: decoded whole
        }
        let rows = plan.rowCount / matrices, columns = plan.rowWidth, type = info.type, mapping = file.mapping
        guard 4 * rows * columns >= minimumBytes else { return nil }
        let start = file.byteRange(of: info).lowerBound + index * rows * rowBytes
        return WeightRows(rows: rows, columns: columns, file: file.path, tensor: plan.name) { range, buffer in
            let bytes = (start + range.lowerBound * rowBytes)..<(start + range.upperBound * rowBytes)
            try QuantCodec.dequantize(type, mapping.bytes(in: bytes), count: range.count * columns, into: buffer)
            mapping.releasePages(in: bytes)
        }
    }

    public func weightRows(_ role: TensorRole, _ rows: Range<Int>) throws -> [Float] {
        guard let (plan, _) = sources[role], case .weight = plan.source, let info = file.tensor(named: plan.name),
            let rowBytes = info.type.rowBytes(width: plan.rowWidth)
        else { return try Array(weight(role)[(rows.lowerBound * spec.hiddenSize)..<(rows.upperBound * spec.hiddenSize)]) }
        let start = file.byteRange(of: info).lowerBound
        let range = (start + rows.lowerBound * rowBytes)..<(start + rows.upperBound * rowBytes)
        // Decoded on all cores (a head slice is tens of millions of values), then its pages released.
        let values = try ParallelDecode.dequantize(info.type, file.mapping.bytes(in: range), count: rows.count * plan.rowWidth)
        file.mapping.releasePages(in: range)
        try checkFinite(values, file: file.path, tensor: plan.name)
        return values
    }

    public func doneWithLayer(_ layer: Int?) { cache.leftLayer() }

    public func regions(layer: Int?) -> [(file: MappedFile, bytes: Range<Int>)] {
        Set(plans.values.filter { $0.layer == layer }.map(\.name)).sorted().compactMap { name in
            file.tensor(named: name).map { (file.mapping, file.byteRange(of: $0)) }
        }
    }

    public func dotInput(_ role: TensorRole) -> GGMLDotInput? {
        guard llamaCPUArithmetic, let (plan, _) = sources[role], let info = file.tensor(named: plan.name) else { return nil }
        if case .keyFromKVB = plan.source { return nil }
        return GGMLDotInput(weight: info.type)
    }

    /// Every checkpoint role this GGUF provides, in a stable order.
    public var roles: [TensorRole] { sources.keys.sorted { "\($0)" < "\($1)" } }

    private func values(_ plan: GGUFTensorPlan) throws -> [Float] {
        guard let info = file.tensor(named: plan.name) else { throw EngineError.missingTensor(file: file.path, tensor: plan.name) }
        return try dequantized(info, file.byteRange(of: info), count: info.elementCount)
    }

    /// `count` values of `info`'s type from the file's `range`, decoded on all cores; the mapped pages are released
    /// afterwards (the values are a copy), so a pass over a model larger than memory keeps one tensor's pages resident.
    private func dequantized(_ info: GGUFTensorInfo, _ range: Range<Int>, count: Int) throws -> [Float] {
        defer { file.mapping.releasePages(in: range) }
        return try ParallelDecode.dequantize(info.type, file.mapping.bytes(in: range), count: count)
    }

    let cache = DecodedWeightCache(budget: decodedWeightBudget)

    public func bias(_ role: TensorRole) throws -> [Float]? {
        guard let (plan, index) = biases[role] else { return nil }
        var values = try values(plan)
        if case .fusedExperts = plan.source {
            // One row [out] per expert of the stacked bias.
            let width = plan.dimensions[0]
            values = Array(values[(index * width)..<((index + 1) * width)])
        }
        try checkFinite(values, file: file.path, tensor: plan.name)
        return values
    }

    public func weight(_ role: TensorRole) throws -> [Float] {
        try cache.value(role) {
            let values = try decode(role)
            try checkFinite(values, file: file.path, tensor: sources[role]?.plan.name ?? "\(role)")
            return values
        }
    }

    private func decode(_ role: TensorRole) throws -> [Float] {
        guard let (plan, index) = sources[role] else { throw EngineError.missingTensor(file: file.path, tensor: "\(role)") }
        switch plan.source {
        case .stacked, .fusedExperts:
            let matrices = plan.dimensions[2]
            guard let info = file.tensor(named: plan.name) else { throw EngineError.missingTensor(file: file.path, tensor: plan.name) }
            let range = file.byteRange(of: info), bytes = info.byteCount / matrices
            return try dequantized(
                info, (range.lowerBound + index * bytes)..<(range.lowerBound + (index + 1) * bytes), count: info.elementCount / matrices)
        default: break
        }
        let all = try values(plan)
        switch plan.source {
        case .weight, .stacked, .fusedExperts:
            return all
        case .negatedExponential:
            // Kimi-Linear's stored decay is −exp(A_log): the engine reads A_log.
            return all.map { Foundation.log(-$0) }
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
            guard let layer = plan.layer, let valuePlan = plans[.attention(layer: layer, part: .valueB)] else {
                throw EngineError.missingTensor(file: file.path, tensor: "the attn_v_b of \(plan.name)")
            }
            let keys = all, values = try self.values(valuePlan)
            let rank = plan.dimensions[1]
            var out = [Float](repeating: 0, count: heads * (noPosition + value) * rank)
            for h in 0..<heads {
                for c in 0..<noPosition {
                    for r in 0..<rank { out[(h * (noPosition + value) + c) * rank + r] = keys[(h * rank + r) * noPosition + c] }
                }
                for v in 0..<value {
                    for r in 0..<rank { out[(h * (noPosition + value) + noPosition + v) * rank + r] = values[(h * value + v) * rank + r] }
                }
            }
            return out
        case .valueFromKVB:
            throw EngineError.unsupported("attn_v_b alone")
        }
    }
}
