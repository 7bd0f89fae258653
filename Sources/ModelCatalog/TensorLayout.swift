// A spec's tensors, expanded from its architecture's table: the checkpoint layout (expected tensors, the
// classifier), the GGUF layout (the HF → GGUF plan), and the lookups between roles and names both ways.
import TensorFormats

/// One tensor a checkpoint of the spec holds, with its role.
public struct ExpectedTensor: Sendable, Equatable {
    public let name: String
    /// PyTorch order `[out, in]`.
    public let shape: [Int]
    /// True for `nn.Linear` weights: the ones FP8 / INT4 checkpoints quantize.
    public let isLinear: Bool
    public let role: TensorRole
    public let part: TensorPart
}

/// The tensor layouts of one spec.
public struct TensorLayout: Sendable {
    public let spec: ModelSpec
    public let table: ArchitectureTable
    let checkpointTemplates: [CheckpointTensor]
    let fileTemplates: [FileTensor]
    private let checkpointIndex: [String: [Int]]
    private let fileIndex: [String: [Int]]
    private let checkpointByKind: [TemplateKey: Int]
    private let fileByKind: [TemplateKey: Int]

    struct TemplateKey: Hashable { let kind: RoleKind; let part: TensorPart }

    public init(spec: ModelSpec) {
        self.spec = spec
        table = spec.architecture.table
        checkpointTemplates = table.checkpointTensors(spec)
        fileTemplates = table.fileTensors(spec)
        var index: [String: [Int]] = [:], byKind: [TemplateKey: Int] = [:]
        for (i, template) in checkpointTemplates.enumerated() {
            index[NamePattern.key(template.pattern), default: []].append(i)
            if byKind[TemplateKey(kind: template.kind, part: template.part)] == nil {
                byKind[TemplateKey(kind: template.kind, part: template.part)] = i
            }
        }
        checkpointIndex = index
        checkpointByKind = byKind
        index = [:]
        byKind = [:]
        for (i, template) in fileTemplates.enumerated() {
            index[NamePattern.key(template.pattern), default: []].append(i)
            byKind[TemplateKey(kind: template.kind, part: template.part)] = i
        }
        fileIndex = index
        fileByKind = byKind
    }

    // MARK: Checkpoint names

    /// The role of a checkpoint tensor name (an FP8 scale, a packed INT4 word array or an MXFP4 block is classified as
    /// the weight it belongs to, with its part). Names the spec does not have — another layout, a layer or expert
    /// beyond the config's counts — are `.unknown`: callers report them, never drop them silently.
    public func classify(_ name: String) -> ClassifiedTensor {
        guard let match = match(name) else { return ClassifiedTensor(name: name, role: .unknown, part: .weight) }
        return ClassifiedTensor(name: name, role: match.role, part: match.part)
    }

    /// A checkpoint name matched against the table: its template, indices, role and part.
    struct Match {
        let template: CheckpointTensor
        let role: TensorRole
        let part: TensorPart
    }

    func match(_ name: String) -> Match? {
        var plain = Substring(name)
        for (wrapped, replacement) in table.namePrefixes where name.hasPrefix(wrapped) {
            plain = Substring(replacement + name.dropFirst(wrapped.count))
            break
        }
        if let found = lookupCheckpoint(plain) { return found }
        if let (companion, logical) = CompanionSuffix.match(String(plain)), let found = lookupCheckpoint(Substring(logical)),
            found.part == .weight
        {
            return Match(template: found.template, role: found.role, part: TensorPart(companion))
        }
        return nil
    }

    private func lookupCheckpoint(_ name: Substring) -> Match? {
        guard let (key, numbers) = NamePattern.split(name), let candidates = checkpointIndex[key] else { return nil }
        for i in candidates {
            let template = checkpointTemplates[i]
            guard let (layer, expert) = indices(numbers, scope: template.scope) else { continue }
            guard let role = template.kind.role(layer: layer, expert: expert) else { continue }
            if let layer, layer >= spec.layerCount {
                if case .nextTokenPrediction = role { return Match(template: template, role: role, part: template.part) }
                return Match(template: template, role: .nextTokenPrediction(layer: layer, part: .block), part: template.part)
            }
            return Match(template: template, role: role, part: template.part)
        }
        return nil
    }

    /// The logical shape (PyTorch order) the spec gives the checkpoint tensor `name`, when the table knows it.
    public func expectedShape(of name: String) -> [Int]? { match(name).map { $0.template.shape(spec) } }

    /// Layer and expert from a name's numbers, when they fit the scope and the spec.
    private func indices(_ numbers: [Int], scope: TemplateScope) -> (layer: Int?, expert: Int?)? {
        switch scope {
        case .model:
            return numbers.isEmpty ? (nil, nil) : nil
        case .layer(let kinds):
            guard numbers.count == 1, let kind = spec.layerKind(numbers[0]), kinds.covers(kind) else { return nil }
            return (numbers[0], nil)
        case .expert(let kinds):
            guard numbers.count == 2, let kind = spec.layerKind(numbers[0]), kinds.covers(kind), numbers[1] < spec.routedExpertCount
            else { return nil }
            return (numbers[0], numbers[1])
        }
    }

    /// The checkpoint name of `role`'s `part` (the query projection's weight of layer 3 for `.attention(3, .query)`).
    public func checkpointName(_ role: TensorRole, part: TensorPart = .weight) -> String? {
        guard let kind = role.kind, let i = checkpointByKind[TemplateKey(kind: kind, part: part)] else { return nil }
        return NamePattern.format(checkpointTemplates[i].pattern, layer: role.layer, expert: role.expert)
    }

    /// The shape (PyTorch order) a checkpoint tensor of this role and part must have.
    public func checkpointShape(_ role: TensorRole, part: TensorPart = .weight) -> [Int]? {
        guard let kind = role.kind, let i = checkpointByKind[TemplateKey(kind: kind, part: part)] else { return nil }
        return checkpointTemplates[i].shape(spec)
    }

    /// True when the role's checkpoint tensor is an nn.Linear weight.
    public func isLinear(_ role: TensorRole) -> Bool {
        guard let kind = role.kind, let i = checkpointByKind[TemplateKey(kind: kind, part: .weight)] else { return false }
        return checkpointTemplates[i].isLinear
    }

    /// Every tensor the canonical checkpoint layout holds, in the order checkpoints list them.
    public func expectedTensors() -> [ExpectedTensor] {
        var tensors: [ExpectedTensor] = []
        expand(checkpointTemplates.filter { $0.presence == .expected }, scope: \.scope) { template, layer, expert in
            let name = NamePattern.format(template.pattern, layer: layer, expert: expert)
            tensors.append(
                ExpectedTensor(
                    name: name, shape: template.shape(spec), isLinear: template.isLinear,
                    role: classify(name).role, part: template.part))
        }
        return tensors
    }

    /// `expectedTensors()` with the routed experts of a layer folded: each expert-scoped tensor appears once, named for
    /// expert 0, with `count` the experts it stands for (1 elsewhere). For sizes, without naming every expert.
    public func expectedTensorGroups() -> [(tensor: ExpectedTensor, count: Int)] {
        var groups: [(tensor: ExpectedTensor, count: Int)] = []
        expand(checkpointTemplates.filter { $0.presence == .expected }, scope: \.scope) { template, layer, expert in
            guard (expert ?? 0) == 0 else { return }
            let name = NamePattern.format(template.pattern, layer: layer, expert: expert)
            let tensor = ExpectedTensor(
                name: name, shape: template.shape(spec), isLinear: template.isLinear, role: classify(name).role, part: template.part)
            groups.append((tensor, expert == nil ? 1 : spec.routedExpertCount))
        }
        return groups
    }

    /// How many tensors `expectedTensors()` holds, counted without listing them.
    public var expectedTensorCount: Int {
        checkpointTemplates.filter { $0.presence == .expected }.reduce(0) { total, template in
            switch template.scope {
            case .model: total + 1
            case .layer(let kinds): total + spec.layerCount(of: kinds)
            case .expert(let kinds): total + spec.layerCount(of: kinds) * spec.routedExpertCount
            }
        }
    }

    // MARK: GGUF names

    /// The role and part of a GGUF tensor name (GGUF blocks of MTP layers keep their inner roles, as llama.cpp does).
    public func classifyFileTensor(_ name: String) -> (role: TensorRole, part: TensorPart)? {
        guard let (key, numbers) = NamePattern.split(Substring(name)), let candidates = fileIndex[key] else { return nil }
        for i in candidates {
            let template = fileTemplates[i]
            switch template.scope {
            case .model where numbers.isEmpty:
                if let role = template.kind.role(layer: nil) { return (role, template.part) }
            case .layer(let kinds) where numbers.count == 1:
                if let kind = spec.layerKind(numbers[0]), kinds.covers(kind), let role = template.kind.role(layer: numbers[0]) {
                    return (role, template.part)
                }
            default: continue
            }
        }
        return nil
    }

    /// The GGUF name of `role`'s `part` (layer 3's stacked routed down projections for `.routedExperts(3, .down)`).
    public func fileName(_ role: TensorRole, part: TensorPart = .weight) -> String? {
        guard let kind = role.kind, let i = fileByKind[TemplateKey(kind: kind, part: part)] else { return nil }
        return NamePattern.format(fileTemplates[i].pattern, layer: role.layer, expert: nil)
    }

    /// Every GGUF tensor, in llama.cpp's file order. `includeOutputHead`: false for a tied model without lm_head.
    public func ggufTensors(includeOutputHead: Bool) -> [GGUFTensorPlan] {
        var plans: [GGUFTensorPlan] = []
        expand(fileTemplates, scope: \.scope) { template, layer, _ in
            guard let role = template.kind.role(layer: layer) else { return }
            if role == .outputHead && !includeOutputHead { return }
            let name = NamePattern.format(template.pattern, layer: layer, expert: nil)
            plans.append(
                GGUFTensorPlan(
                    name: name, dimensions: template.dimensions(spec), source: source(template, layer: layer),
                    role: role, part: template.part))
        }
        return plans
    }

    /// The checkpoint tensors a GGUF tensor is made from.
    private func source(_ template: FileTensor, layer: Int?) -> GGUFSource {
        let kind = template.assembly.source
        func name(_ expert: Int? = nil) -> String {
            let role = kind.role(layer: layer, expert: expert) ?? .unknown
            return checkpointName(role, part: template.part) ?? "(\(table.architecture.rawValue) has no checkpoint tensor for \(kind))"
        }
        switch template.assembly {
        case .copy:
            return .weight(name())
        case .ropePermuted:
            let heads = kind == .attention(.key) ? spec.keyValueHeadCount : spec.headCount
            return .ropePermuted(name(), heads: heads)
        case .stackedExperts:
            let pattern = checkpointByKind[TemplateKey(kind: kind, part: template.part)].map { checkpointTemplates[$0].pattern } ?? ""
            return .stacked(ExpertNames(pattern: pattern, layer: layer ?? 0, count: spec.routedExpertCount))
        case .keyFromKVB, .valueFromKVB:
            let mla =
                spec.latentAttention
                ?? LatentAttention(queryRank: nil, keyValueRank: 0, noPositionHeadDim: 0, ropeHeadDim: 0, valueHeadDim: 0)
            if case .keyFromKVB = template.assembly {
                return .keyFromKVB(name(), heads: spec.headCount, noPosition: mla.noPositionHeadDim, value: mla.valueHeadDim)
            }
            return .valueFromKVB(name(), heads: spec.headCount, noPosition: mla.noPositionHeadDim, value: mla.valueHeadDim)
        case .negatedExponential:
            return .negatedExponential(name())
        case .fusedExperts(_, let stride, let phase):
            // Weights ne {in, out, E}; biases ne {out, E}. The MXFP4 release stores outputs first, transformers'
            // float parameters inputs first.
            let dimensions = template.dimensions(spec), bias = template.part == .bias
            let view = FusedExpertView(
                rows: bias ? 1 : dimensions[1], columns: dimensions[0], transposed: !bias && spec.quantization != .mxfp4, stride: stride,
                phase: phase, isBias: bias)
            return .fusedExperts(name(), view)
        }
    }

    /// Walks templates in order: model-scope templates once; each run of per-layer templates layer by layer (skipping
    /// layers whose kind a template does not cover); each run of per-expert templates expert by expert within a layer.
    private func expand<T>(_ templates: [T], scope: (T) -> TemplateScope, _ body: (T, Int?, Int?) -> Void) {
        var i = 0
        let layers = spec.layerCount + spec.nextTokenPredictionLayers
        while i < templates.count {
            guard scope(templates[i]) != .model else {
                body(templates[i], nil, nil)
                i += 1
                continue
            }
            var end = i
            while end < templates.count, scope(templates[end]) != .model { end += 1 }
            for layer in 0..<layers {
                guard let kind = spec.layerKind(layer) else { continue }
                var j = i
                while j < end {
                    if case .expert = scope(templates[j]) {
                        var run = j
                        while run < end, case .expert = scope(templates[run]) { run += 1 }
                        for expert in 0..<spec.routedExpertCount {
                            for t in templates[j..<run] where scope(t).layerKinds?.covers(kind) == true { body(t, layer, expert) }
                        }
                        j = run
                    } else {
                        if scope(templates[j]).layerKinds?.covers(kind) == true { body(templates[j], layer, nil) }
                        j += 1
                    }
                }
            }
            i = end
        }
    }
}

/// Name patterns with `{layer}` / `{expert}`, matched by replacing every all-digit dotted component with `#`.
enum NamePattern {
    static func key(_ pattern: String) -> String {
        pattern.replacingOccurrences(of: "{layer}", with: "#").replacingOccurrences(of: "{expert}", with: "#")
    }

    static func format(_ pattern: String, layer: Int?, expert: Int?) -> String {
        var name = pattern
        if let layer { name = name.replacingOccurrences(of: "{layer}", with: String(layer)) }
        if let expert { name = name.replacingOccurrences(of: "{expert}", with: String(expert)) }
        return name
    }

    /// The pattern key of a concrete name and its numbers in order; nil when a number is too long to be an index.
    static func split(_ name: Substring) -> (key: String, numbers: [Int])? {
        var parts: [Substring] = []
        var numbers: [Int] = []
        for component in name.split(separator: ".", omittingEmptySubsequences: false) {
            if !component.isEmpty, component.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                guard component.utf8.count <= 9, let value = Int(component) else { return nil }
                numbers.append(value)
                parts.append("#")
            } else {
                parts.append(component)
            }
        }
        return (parts.joined(separator: "."), numbers)
    }
}

/// The per-expert checkpoint names of a stacked GGUF tensor, made on demand (Kimi K2: 384 per tensor).
public struct ExpertNames: Sendable, Equatable, RandomAccessCollection {
    let pattern: String
    public let layer: Int
    public let count: Int
    public var startIndex: Int { 0 }
    public var endIndex: Int { count }
    public subscript(expert: Int) -> String { NamePattern.format(pattern, layer: layer, expert: expert) }
}

extension ModelSpec {
    /// This spec's tensor layouts (builds the lookups; keep it when classifying many names).
    public var tensorLayout: TensorLayout { TensorLayout(spec: self) }

    /// Every tensor of the canonical checkpoint layout.
    public func expectedTensors() -> [ExpectedTensor] { tensorLayout.expectedTensors() }

    /// llama.cpp's architecture string.
    public var ggufArchitecture: String { architecture.table.ggufArchitecture }

    /// The architecture hyper-parameter keys llama.cpp reads (values as its converter writes them).
    public func ggufHyperParameters() -> [(GGUFKey, GGUFValue)] {
        architecture.table.hyperParameters(self).map { ($0.0.key(ggufArchitecture), $0.1) }
    }
}

/// Classifies checkpoint tensor names of one model.
public struct TensorClassifier: Sendable {
    public let layout: TensorLayout
    public init(spec: ModelSpec) { layout = TensorLayout(spec: spec) }
    public func classify(_ name: String) -> ClassifiedTensor { layout.classify(name) }
}

extension TensorLayout {
    /// Tokens routed to each expert of every layer, from an importance matrix's per-expert counts on the routed down
    /// projections (empty for a legacy `.dat` file, which has no counts).
    public func routingCounts(_ imatrix: ImportanceMatrix) -> [Int: [Int]] {
        var hits: [Int: [Int]] = [:]
        for layer in 0..<(spec.layerCount + spec.nextTokenPredictionLayers) {
            guard let name = fileName(.routedExperts(layer: layer, projection: .down)), let counts = imatrix.matrixCounts[name] else {
                continue
            }
            hits[layer] = counts.map { $0.isFinite && $0 >= 0 && $0 < 1e15 ? Int($0) : 0 }
        }
        return hits
    }
}

extension TensorLayout {
    /// The part a role's own parameters are stored as: `.weight`, or `.bias` for roles that are a bias alone (DeepSeek's
    /// router selection bias).
    public func storedPart(of role: TensorRole) -> TensorPart {
        guard let kind = role.kind else { return .weight }
        return checkpointByKind[TemplateKey(kind: kind, part: .weight)] != nil ? .weight : .bias
    }

    /// The same for a GGUF tensor's role.
    public func storedFilePart(of role: TensorRole) -> TensorPart {
        guard let kind = role.kind else { return .weight }
        return fileByKind[TemplateKey(kind: kind, part: .weight)] != nil ? .weight : .bias
    }
}
