// Turns HF tensor names into roles, once, for every supported architecture's on-disk naming.

/// Classifies tensor names of one model. Names may carry a language-model prefix (`language_model.`).
public struct TensorClassifier: Sendable {
    public let spec: ModelSpec

    public init(spec: ModelSpec) { self.spec = spec }

    /// Prefixes stripped before classification, longest first.
    static let prefixes = ["language_model.model.", "model.language_model.", "language_model.", "model."]

    static let partSuffixes: [(String, TensorPart)] = [
        ("weight_scale_inv", .fp8ScaleInverse), ("weight_packed", .packed), ("weight_scale", .scale),
        ("weight_zero_point", .zeroPoint), ("weight_shape", .shape), ("weight_g_idx", .groupIndex),
        ("weight", .weight), ("bias", .bias),
    ]

    static let attentionParts: [String: AttentionPart] = [
        "q_proj": .query, "k_proj": .key, "v_proj": .value, "o_proj": .output,
        "q_a_proj": .queryA, "q_a_layernorm": .queryANorm, "q_b_proj": .queryB,
        "kv_a_proj_with_mqa": .keyValueA, "kv_a_layernorm": .keyValueANorm, "kv_b_proj": .keyValueB,
        "q_norm": .queryNorm, "k_norm": .keyNorm,
    ]

    static let projections: [String: Projection] = [
        "gate_proj": .gate, "up_proj": .up, "down_proj": .down, "w1": .gate, "w3": .up, "w2": .down,
    ]

    /// Classifies one name; unrecognised names get `.unknown` (callers report them, never drop them).
    public func classify(_ name: String) -> ClassifiedTensor {
        var body = Substring(name)
        for prefix in TensorClassifier.prefixes where body.hasPrefix(prefix) {
            body = body.dropFirst(prefix.count)
            break
        }
        var components = body.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        var part = TensorPart.other
        if let last = components.last, let match = TensorClassifier.partSuffixes.first(where: { $0.0 == last }) {
            part = match.1
            components.removeLast()
        }
        return ClassifiedTensor(name: name, role: role(of: components, part: &part), part: part)
    }

    private func role(of c: [String], part: inout TensorPart) -> TensorRole {
        switch c.count {
        case 1 where c[0] == "embed_tokens": return .embedding
        case 1 where c[0] == "norm": return .finalNorm
        case 1 where c[0] == "lm_head": return .outputHead
        default: break
        }
        guard c.count >= 3, c[0] == "layers", let layer = Int(c[1]), layer >= 0 else { return .unknown }
        if layer >= spec.layerCount { return .nextTokenPrediction(layer: layer) }
        let rest = Array(c[2...])
        switch rest.count {
        case 1 where rest[0] == "input_layernorm": return .attentionNorm(layer: layer)
        case 1 where rest[0] == "post_attention_layernorm": return .feedForwardNorm(layer: layer)
        default: break
        }
        if rest[0] == "self_attn", rest.count == 2, let attention = TensorClassifier.attentionParts[rest[1]] {
            return .attention(layer: layer, part: attention)
        }
        guard rest[0] == "mlp" || rest[0] == "block_sparse_moe", rest.count >= 2 else { return .unknown }
        let ffn = Array(rest[1...])
        switch ffn.count {
        case 1 where ffn[0] == "gate":
            return .router(layer: layer)
        case 2 where ffn[0] == "gate" && ffn[1] == "e_score_correction_bias":
            part = .bias
            return .routerBias(layer: layer)
        case 1:
            if let projection = TensorClassifier.projections[ffn[0]] { return .denseFeedForward(layer: layer, projection: projection) }
        case 2 where ffn[0] == "experts":
            // transformers v5 fused layout: mlp.experts.gate_up_proj / mlp.experts.down_proj (no `.weight` suffix).
            if ffn[1] == "gate_up_proj" { return .routedExpertsFused(layer: layer, part: .gateUp) }
            if ffn[1] == "down_proj" { return .routedExpertsFused(layer: layer, part: .down) }
        case 2 where ffn[0] == "shared_experts" || ffn[0] == "shared_expert":
            if let projection = TensorClassifier.projections[ffn[1]] { return .sharedExpert(layer: layer, projection: projection) }
        case 3 where ffn[0] == "experts":
            if let expert = Int(ffn[1]), expert >= 0, let projection = TensorClassifier.projections[ffn[2]] {
                return .routedExpert(layer: layer, expert: expert, projection: projection)
            }
        default: break
        }
        return .unknown
    }
}
