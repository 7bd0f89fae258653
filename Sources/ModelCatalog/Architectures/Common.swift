// Templates several architectures share: the embedding / final norm / output head, llama-style GQA attention,
// SwiGLU FFNs (dense, per-expert, shared) and the hyper-parameter keys every llama.cpp MoE architecture writes.
import TensorFormats

/// Hugging Face checkpoint names shared by the llama-derived families.
enum HFNames {
    static let embedding = "model.embed_tokens.weight"
    static let finalNorm = "model.norm.weight"
    static let outputHead = "lm_head.weight"
    static let layer = "model.layers.{layer}."
    static let attention = layer + "self_attn."
    static let mlp = layer + "mlp."
    /// Multimodal wrappers (Kimi K2.5) put the language model under these prefixes.
    static let wrappers: [(wrapped: String, plain: String)] = [
        ("language_model.model.", "model."), ("model.language_model.", "model."), ("language_model.", ""),
    ]
}

/// GGUF names shared by every llama.cpp architecture.
enum GGUFNames {
    static let embedding = "token_embd.weight"
    static let finalNorm = "output_norm.weight"
    static let outputHead = "output.weight"
    static let block = "blk.{layer}."
}

/// Reading a GGUF tensor name back: its block, and its kind (the name without the block prefix).
public enum GGUFTensorName {
    /// `blk.3.ffn_down_exps.weight` → (3, `ffn_down_exps.weight`); a name outside the blocks → (nil, the name).
    public static func split(_ name: String) -> (layer: Int?, kind: String) {
        let parts = GGUFNames.block.components(separatedBy: "{layer}")
        guard parts.count == 2, name.hasPrefix(parts[0]) else { return (nil, name) }
        let rest = name.dropFirst(parts[0].count)
        guard let end = rest.range(of: parts[1]), let layer = Int(rest[..<end.lowerBound]) else { return (nil, name) }
        return (layer, String(rest[end.upperBound...]))
    }

    /// llama.cpp's `-ot` / `--override-tensor` pattern (a regex searched in each tensor name) for the routed experts of
    /// `layers`: every layer when nil (`exps`, what `-ot exps=CPU` matches).
    public static func routedExpertsPattern(layers: [Int]? = nil) -> String {
        guard let layers else { return "exps" }
        let prefix = GGUFNames.block.components(separatedBy: "{layer}")
        let escaped = prefix.map { $0.replacingOccurrences(of: ".", with: "\\.") }
        return escaped[0] + "(" + layers.map(String.init).joined(separator: "|") + ")" + escaped[1] + "ffn_.*_exps"
    }
}

extension CheckpointTensor {
    /// embed_tokens first.
    static func leading(_ s: ModelSpec) -> [CheckpointTensor] {
        [CheckpointTensor(.embedding, HFNames.embedding) { [$0.vocabularySize, $0.hiddenSize] }]
    }

    /// The final norm and lm_head (recognised but not expected when the embeddings are tied).
    static func trailing(_ s: ModelSpec) -> [CheckpointTensor] {
        [
            CheckpointTensor(.finalNorm, HFNames.finalNorm) { [$0.hiddenSize] },
            CheckpointTensor(.outputHead, HFNames.outputHead, presence: s.tieWordEmbeddings ? .recognised : .expected) {
                [$0.vocabularySize, $0.hiddenSize]
            },
        ]
    }

    static func attentionNorm(_ kinds: LayerKinds) -> CheckpointTensor {
        CheckpointTensor(.attentionNorm, HFNames.layer + "input_layernorm.weight", .layer(kinds)) { [$0.hiddenSize] }
    }

    static func feedForwardNorm(_ kinds: LayerKinds) -> CheckpointTensor {
        CheckpointTensor(.feedForwardNorm, HFNames.layer + "post_attention_layernorm.weight", .layer(kinds)) { [$0.hiddenSize] }
    }

    /// GQA q/k/v/o with optional biases, in checkpoint order (each bias after its weight).
    static func groupedQueryAttention(_ s: ModelSpec, _ kinds: LayerKinds) -> [CheckpointTensor] {
        let a = HFNames.attention
        var tensors: [CheckpointTensor] = []
        let projections: [(AttentionPart, String, @Sendable (ModelSpec) -> Int)] = [
            (.query, "q_proj", { $0.headCount * $0.headDim }), (.key, "k_proj", { $0.keyValueHeadCount * $0.headDim }),
            (.value, "v_proj", { $0.keyValueHeadCount * $0.headDim }),
        ]
        for (part, projection, width) in projections {
            tensors.append(
                CheckpointTensor(.attention(part), a + projection + ".weight", .layer(kinds), linear: true) { [width($0), $0.hiddenSize] })
            if s.attentionBias {
                tensors.append(CheckpointTensor(.attention(part), a + projection + ".bias", .layer(kinds), part: .bias) { [width($0)] })
            }
        }
        tensors.append(
            CheckpointTensor(.attention(.output), a + "o_proj.weight", .layer(kinds), linear: true) {
                [$0.hiddenSize, $0.headCount * $0.headDim]
            })
        return tensors
    }

    static func queryKeyNorms(_ kinds: LayerKinds) -> [CheckpointTensor] {
        [
            CheckpointTensor(.attention(.queryNorm), HFNames.attention + "q_norm.weight", .layer(kinds)) { [$0.headDim] },
            CheckpointTensor(.attention(.keyNorm), HFNames.attention + "k_norm.weight", .layer(kinds)) { [$0.headDim] },
        ]
    }

    /// A SwiGLU MLP's gate/up/down at `prefix` (dense FFN, shared experts, or one expert), in checkpoint order.
    static func swiGLU(
        _ kind: (Projection) -> RoleKind, _ prefix: String, _ scope: TemplateScope,
        names: [(Projection, String)] = [(.gate, "gate_proj"), (.up, "up_proj"), (.down, "down_proj")],
        width: @escaping @Sendable (ModelSpec) -> Int
    ) -> [CheckpointTensor] {
        names.map { projection, name in
            CheckpointTensor(kind(projection), prefix + name + ".weight", scope, linear: true) { s in
                projection == .down ? [s.hiddenSize, width(s)] : [width(s), s.hiddenSize]
            }
        }
    }

    /// DeepSeek-V3's feed-forward, which GLM-4.5 shares: SwiGLU in the leading dense layers; in MoE and MTP layers a
    /// router with a selection-bias correction, per-expert SwiGLU experts, optional shared experts.
    static func sigmoidRoutedFeedForward(_ s: ModelSpec) -> [CheckpointTensor] {
        let mlp = HFNames.mlp
        var t = CheckpointTensor.swiGLU({ .denseFeedForward($0) }, mlp, .layer(.dense)) { $0.intermediateSize }
        t += [
            CheckpointTensor(.router, mlp + "gate.weight", .layer([.moe, .mtp])) { [$0.routedExpertCount, $0.hiddenSize] },
            CheckpointTensor(.routerBias, mlp + "gate.e_score_correction_bias", .layer([.moe, .mtp]), part: .bias) {
                [$0.routedExpertCount]
            },
        ]
        t += CheckpointTensor.swiGLU({ .routedExpert($0) }, mlp + "experts.{expert}.", .expert([.moe, .mtp])) { $0.expertIntermediateSize }
        if s.sharedExpertCount > 0 {
            t += CheckpointTensor.swiGLU({ .sharedExpert($0) }, mlp + "shared_experts.", .layer([.moe, .mtp])) {
                $0.expertIntermediateSize * $0.sharedExpertCount
            }
        }
        return t + CheckpointTensor.fusedExperts(mlp, [.moe, .mtp])
    }

    /// transformers v5 stores every expert of a layer in two fused tensors; recognised, not expected.
    static func fusedExperts(_ prefix: String, _ kinds: LayerKinds) -> [CheckpointTensor] {
        [
            CheckpointTensor(.routedExperts(.gateUp), prefix + "experts.gate_up_proj", .layer(kinds), linear: true, presence: .recognised) {
                [$0.routedExpertCount, 2 * $0.expertIntermediateSize, $0.hiddenSize]
            },
            CheckpointTensor(.routedExperts(.down), prefix + "experts.down_proj", .layer(kinds), linear: true, presence: .recognised) {
                [$0.routedExpertCount, $0.hiddenSize, $0.expertIntermediateSize]
            },
        ]
    }
}

extension FileTensor {
    static func leading() -> [FileTensor] { [FileTensor(.embedding, GGUFNames.embedding) { [$0.hiddenSize, $0.vocabularySize] }] }

    static func trailing() -> [FileTensor] {
        [
            FileTensor(.finalNorm, GGUFNames.finalNorm) { [$0.hiddenSize] },
            FileTensor(.outputHead, GGUFNames.outputHead) { [$0.hiddenSize, $0.vocabularySize] },
        ]
    }

    static func attentionNorm(_ kinds: LayerKinds) -> FileTensor {
        FileTensor(.attentionNorm, GGUFNames.block + "attn_norm.weight", .layer(kinds)) { [$0.hiddenSize] }
    }

    /// The norm before the FFN: `ffn_norm` for most, `post_attention_norm` for gpt-oss and GLM.
    static func feedForwardNorm(_ kinds: LayerKinds, name: String = "ffn_norm.weight") -> FileTensor {
        FileTensor(.feedForwardNorm, GGUFNames.block + name, .layer(kinds)) { [$0.hiddenSize] }
    }

    /// GQA q/k/v (biases after all three, as llama.cpp orders them) and the output projection.
    static func groupedQueryAttention(_ s: ModelSpec, _ kinds: LayerKinds, ropePermuted: Bool = false) -> [FileTensor] {
        let b = GGUFNames.block
        let q: @Sendable (ModelSpec) -> Int = { $0.headCount * $0.headDim },
            kv: @Sendable (ModelSpec) -> Int = { $0.keyValueHeadCount * $0.headDim }
        var tensors = [
            FileTensor(.attention(.query), b + "attn_q.weight", .layer(kinds), from: ropePermuted ? .ropePermuted(.attention(.query)) : nil)
            { [$0.hiddenSize, q($0)] },
            FileTensor(.attention(.key), b + "attn_k.weight", .layer(kinds), from: ropePermuted ? .ropePermuted(.attention(.key)) : nil) {
                [$0.hiddenSize, kv($0)]
            },
            FileTensor(.attention(.value), b + "attn_v.weight", .layer(kinds)) { [$0.hiddenSize, kv($0)] },
        ]
        if s.attentionBias {
            tensors += [
                FileTensor(.attention(.query), b + "attn_q.bias", .layer(kinds), part: .bias) { [q($0)] },
                FileTensor(.attention(.key), b + "attn_k.bias", .layer(kinds), part: .bias) { [kv($0)] },
                FileTensor(.attention(.value), b + "attn_v.bias", .layer(kinds), part: .bias) { [kv($0)] },
            ]
        }
        tensors.append(FileTensor(.attention(.output), b + "attn_output.weight", .layer(kinds)) { [q($0), $0.hiddenSize] })
        return tensors
    }

    static func queryKeyNorms(_ kinds: LayerKinds) -> [FileTensor] {
        [
            FileTensor(.attention(.queryNorm), GGUFNames.block + "attn_q_norm.weight", .layer(kinds)) { [$0.headDim] },
            FileTensor(.attention(.keyNorm), GGUFNames.block + "attn_k_norm.weight", .layer(kinds)) { [$0.headDim] },
        ]
    }

    /// A dense SwiGLU FFN (`ffn_gate`/`ffn_up`/`ffn_down`, from the layer's mlp).
    static func denseFeedForward(_ kinds: LayerKinds) -> [FileTensor] {
        swiGLU({ .denseFeedForward($0) }, suffix: "", kinds) { [$0.intermediateSize] }
    }

    /// Shared experts (`ffn_*_shexp`), as one SwiGLU of `shared × expert width`.
    static func sharedExperts(_ kinds: LayerKinds) -> [FileTensor] {
        swiGLU({ .sharedExpert($0) }, suffix: "_shexp", kinds) { [$0.expertIntermediateSize * $0.sharedExpertCount] }
    }

    /// Routed experts stacked per layer and projection (`ffn_*_exps`, ne2 = experts).
    static func stackedExperts(_ kinds: LayerKinds) -> [FileTensor] {
        swiGLU({ .routedExperts($0) }, suffix: "_exps", kinds, stacked: true) { [$0.expertIntermediateSize, $0.routedExpertCount] }
    }

    private static func swiGLU(
        _ kind: @escaping (Projection) -> RoleKind, suffix: String, _ kinds: LayerKinds, stacked: Bool = false,
        inner: @escaping @Sendable (ModelSpec) -> [Int]
    ) -> [FileTensor] {
        [Projection.gate, .up, .down].map { projection in
            let assembly: Assembly = stacked ? .stackedExperts(.routedExpert(projection)) : .copy(kind(projection))
            return FileTensor(
                kind(projection), GGUFNames.block + "ffn_\(projection.rawValue)\(suffix).weight", .layer(kinds), from: assembly
            ) { s in
                let dims = inner(s)
                return projection == .down ? [dims[0], s.hiddenSize] + dims.dropFirst() : [s.hiddenSize] + dims
            }
        }
    }

    /// The router (`ffn_gate_inp`).
    static func router(_ kinds: LayerKinds) -> FileTensor {
        FileTensor(.router, GGUFNames.block + "ffn_gate_inp.weight", .layer(kinds)) { [$0.hiddenSize, $0.routedExpertCount] }
    }

    /// DeepSeek / GLM router selection bias (`exp_probs_b.bias`).
    static func routerBias(_ kinds: LayerKinds) -> FileTensor {
        FileTensor(.routerBias, GGUFNames.block + "exp_probs_b.bias", .layer(kinds), part: .bias) { [$0.routedExpertCount] }
    }
}

extension ArchitectureTable {
    /// The keys every llama.cpp MoE architecture gets, in its converter's order (formats.md §5.4).
    static func commonHyperParameters(_ s: ModelSpec, blocks: Int, feedForward: Int, writesVocabularySize: Bool) -> [(ModelKey, GGUFValue)]
    {
        var kv: [(ModelKey, GGUFValue)] = [
            (.blockCount, .uint32(UInt32(blocks))),
            (.contextLength, .uint32(UInt32(s.maxPositionEmbeddings))),
            (.embeddingLength, .uint32(UInt32(s.hiddenSize))),
            (.feedForwardLength, .uint32(UInt32(feedForward))),
            (.headCount, .uint32(UInt32(s.headCount))),
            (.headCountKeyValue, .uint32(UInt32(s.latentAttention == nil ? s.keyValueHeadCount : 1))),
            (.ropeFrequencyBase, .float32(Float(s.ropeTheta))),
            (.layerNormRMSEpsilon, .float32(Float(s.rmsNormEpsilon))),
            (.expertCount, .uint32(UInt32(s.routedExpertCount))),
            (.expertUsedCount, .uint32(UInt32(s.expertsPerToken))),
        ]
        if writesVocabularySize { kv.append((.vocabularySize, .uint32(UInt32(s.vocabularySize)))) }
        if let scaling = s.ropeScaling, scaling.type == "yarn" {
            kv += [(.ropeScalingType, .string("yarn")), (.ropeScalingFactor, .float32(Float(scaling.factor)))]
            if let original = scaling.originalMaxPositionEmbeddings { kv.append((.ropeScalingOriginalContext, .uint32(UInt32(original)))) }
            if let fast = scaling.betaFast { kv.append((.yarnBetaFast, .float32(Float(fast)))) }
            if let slow = scaling.betaSlow { kv.append((.yarnBetaSlow, .float32(Float(slow)))) }
        }
        return kv
    }

    /// DeepSeek-style routing fields (experts, shared experts, leading dense layers, groups, scaling) read back.
    static func deepseekStyleRouting(_ h: GGUFHeaderReader) -> [(String, JSONValue)] {
        var config: [(String, JSONValue)] = []
        func add(_ key: String, _ value: Int?) { if let value { config.append((key, .integer(Int64(value)))) } }
        add("intermediate_size", h.int(.feedForwardLength))
        add("moe_intermediate_size", h.int(.expertFeedForwardLength))
        add("n_routed_experts", h.int(.expertCount))
        add("n_shared_experts", h.int(.expertSharedCount))
        add("first_k_dense_replace", h.int(.leadingDenseBlockCount))
        add("n_group", h.int(.expertGroupCount))
        add("topk_group", h.int(.expertGroupUsedCount))
        if let scale = h.double(.expertWeightsScale) { config.append(("routed_scaling_factor", .double(scale))) }
        if let norm = h.bool(.expertWeightsNorm) { config.append(("norm_topk_prob", .bool(norm))) }
        return config
    }
}
