// One architecture as data: the tensors of its Hugging Face checkpoints and of the GGUF llama.cpp makes of them
// (role, name pattern, shape, how each GGUF tensor is assembled), its GGUF hyper-parameter keys, and how its
// config.json reads. Expected and unknown tensors, the classifier, the HF → GGUF plan, the GGUF → HF reverse map
// and the engine's weight lookups are all derived from these tables (TensorLayout.swift); no tensor name is
// written anywhere else.
import TensorFormats

/// Kinds of decoder layers a per-layer template appears in.
public struct LayerKinds: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let dense = LayerKinds(rawValue: 1)
    public static let moe = LayerKinds(rawValue: 2)
    /// Multi-token-prediction layers, stored after the main layers.
    public static let mtp = LayerKinds(rawValue: 4)
    public static let main: LayerKinds = [.dense, .moe]
    public static let all: LayerKinds = [.dense, .moe, .mtp]
    /// Hybrid models (Kimi-Linear): a layer's attention kind, linear (KDA) or full (MLA). A template without either bit
    /// applies to both.
    public static let linearAttention = LayerKinds(rawValue: 8)
    public static let fullAttention = LayerKinds(rawValue: 16)
    static let attentionKinds: LayerKinds = [.linearAttention, .fullAttention]

    /// True when a template of these kinds applies to a layer of kind `layer` (`ModelSpec.layerKind`): its FFN kind
    /// (dense, MoE, MTP) is among the template's, and so is its attention kind when the template names one.
    public func covers(_ layer: LayerKinds) -> Bool {
        let attention = intersection(LayerKinds.attentionKinds)
        return contains(layer.subtracting(LayerKinds.attentionKinds))
            && (attention.isEmpty || !attention.intersection(layer).isEmpty)
    }
}

/// Where a template repeats: once, once per layer of some kinds (`{layer}` in its name), or once per routed
/// expert of each such layer (`{layer}` and `{expert}`).
public enum TemplateScope: Sendable, Equatable {
    case model
    case layer(LayerKinds)
    case expert(LayerKinds)

    var layerKinds: LayerKinds? {
        switch self {
        case .model: nil
        case .layer(let kinds), .expert(let kinds): kinds
        }
    }
}

/// One tensor of the architecture's Hugging Face checkpoints.
public struct CheckpointTensor: Sendable {
    /// Whether a checkpoint of the spec holds it.
    public enum Presence: Sendable {
        /// Part of the canonical layout (`synth` writes it; conversion may need it).
        case expected
        /// Recognised, not part of the canonical layout (transformers v5 fused experts; lm_head of a tied model).
        case recognised
    }

    public let kind: RoleKind
    public let part: TensorPart
    /// The name, with `{layer}` and `{expert}` where the scope puts them.
    public let pattern: String
    public let scope: TemplateScope
    /// nn.Linear weights: what FP8 and INT4 checkpoints quantize.
    public let isLinear: Bool
    public let presence: Presence
    /// PyTorch order ([out, in] for linears).
    public let shape: @Sendable (ModelSpec) -> [Int]

    public init(
        _ kind: RoleKind, _ pattern: String, _ scope: TemplateScope = .model, part: TensorPart = .weight, linear: Bool = false,
        presence: Presence = .expected, shape: @escaping @Sendable (ModelSpec) -> [Int]
    ) {
        self.kind = kind
        self.part = part
        self.pattern = pattern
        self.scope = scope
        isLinear = linear
        self.presence = presence
        self.shape = shape
    }
}

/// How one GGUF tensor's rows come from checkpoint tensors (of the same layer, and of `part` unless stated).
public enum Assembly: Sendable, Equatable {
    /// One checkpoint tensor, rows in order.
    case copy(RoleKind)
    /// One checkpoint tensor with llama's rope row permutation (Mixtral q/k): heads of the q or k projection.
    case ropePermuted(RoleKind)
    /// The layer's per-expert tensors of this kind stacked along ne2, expert e from expert e's tensor.
    case stackedExperts(RoleKind)
    /// MLA `attn_k_b`: per head, the transposed no-position rows of kv_b.
    case keyFromKVB(RoleKind)
    /// MLA `attn_v_b`: per head, the value rows of kv_b.
    case valueFromKVB(RoleKind)
    /// Experts fused in one checkpoint tensor per layer (gpt-oss): outputs every `stride` rows from `phase` (gate_up
    /// interleaves gate and up: stride 2), expert e's block, in the orientation the source stores.
    case fusedExperts(RoleKind, stride: Int, phase: Int)
    /// One checkpoint tensor's values as −exp(value) (Kimi-Linear: `ssm_a` = −exp(A_log)).
    case negatedExponential(RoleKind)

    /// The checkpoint role kind the rows come from.
    public var source: RoleKind {
        switch self {
        case .copy(let k), .ropePermuted(let k), .stackedExperts(let k), .keyFromKVB(let k), .valueFromKVB(let k),
            .fusedExperts(let k, _, _), .negatedExponential(let k):
            k
        }
    }
}

/// One tensor of the GGUF llama.cpp's converter writes for the architecture.
public struct FileTensor: Sendable {
    public let kind: RoleKind
    public let part: TensorPart
    public let pattern: String
    /// `.model` or `.layer(kinds)` (GGUF blocks): experts are stacked, never one tensor each.
    public let scope: TemplateScope
    public let assembly: Assembly
    /// ggml dimensions, ne0 first.
    public let dimensions: @Sendable (ModelSpec) -> [Int]

    public init(
        _ kind: RoleKind, _ pattern: String, _ scope: TemplateScope = .model, part: TensorPart = .weight,
        from assembly: Assembly? = nil, dimensions: @escaping @Sendable (ModelSpec) -> [Int]
    ) {
        self.kind = kind
        self.part = part
        self.pattern = pattern
        self.scope = scope
        self.assembly = assembly ?? .copy(kind)
        self.dimensions = dimensions
    }
}

/// Everything moeq knows about one architecture family, as data.
public struct ArchitectureTable: Sendable {
    public let architecture: Architecture
    /// config.json `model_type` values of the family.
    public let modelTypes: [String]
    /// llama.cpp's `general.architecture`.
    public let ggufArchitecture: String
    /// True when conversion and the reference engine run it.
    public let isConvertible: Bool
    /// Prefixes a multimodal wrapper puts before the language model's names, and what they stand for
    /// (Kimi K2.5: `language_model.model.layers…` is `model.layers…`).
    public let namePrefixes: [(wrapped: String, plain: String)]
    /// Checkpoint tensors of a spec, in the order checkpoints list them (per-layer runs repeat layer by layer).
    public let checkpointTensors: @Sendable (ModelSpec) -> [CheckpointTensor]
    /// GGUF tensors of a spec, in llama.cpp's file order.
    public let fileTensors: @Sendable (ModelSpec) -> [FileTensor]
    /// The architecture's hyper-parameter keys, as llama.cpp's converter writes them.
    public let hyperParameters: @Sendable (ModelSpec) -> [(ModelKey, GGUFValue)]
    /// Reads the architecture's own config.json fields into the spec (common ones are read before).
    public let readConfig: @Sendable (inout ModelSpec, ConfigReader) throws(CatalogError) -> Void
    /// The config.json fields a GGUF header of this architecture stands for (beyond the common ones).
    public let configFromGGUF: @Sendable (GGUFHeaderReader) throws(CatalogError) -> [(String, JSONValue)]
    /// Special tokens llama.cpp's converter sets by the token's text for this family (GLM's `<|user|>` as end of
    /// turn …), each written when the tokenizer has that token and the key is not set already.
    public var namedSpecialTokens: [(key: GGUFKey, token: String)] = []
}
