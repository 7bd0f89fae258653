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

    static func attentionPart(_ name: Substring) -> AttentionPart? {
        switch name {
        case "q_proj": .query
        case "k_proj": .key
        case "v_proj": .value
        case "o_proj": .output
        case "q_a_proj": .queryA
        case "q_a_layernorm": .queryANorm
        case "q_b_proj": .queryB
        case "kv_a_proj_with_mqa": .keyValueA
        case "kv_a_layernorm": .keyValueANorm
        case "kv_b_proj": .keyValueB
        case "q_norm": .queryNorm
        case "k_norm": .keyNorm
        default: nil
        }
    }

    static func projection(_ name: Substring) -> Projection? {
        switch name {
        case "gate_proj", "w1": .gate
        case "up_proj", "w3": .up
        case "down_proj", "w2": .down
        default: nil
        }
    }

    /// Classifies one name; unrecognised names get `.unknown` (callers report them, never drop them).
    public func classify(_ name: String) -> ClassifiedTensor {
        let utf8 = name.utf8
        var start = utf8.startIndex
        for prefix in TensorClassifier.prefixes where utf8.starts(with: prefix.utf8) {
            start = utf8.index(start, offsetBy: prefix.utf8.count)
            break
        }
        // Split on "." by hand: this runs once per tensor of 100k-tensor checkpoints.
        var components: [Substring] = []
        components.reserveCapacity(8)
        var segment = start
        var i = start
        while i != utf8.endIndex {
            if utf8[i] == UInt8(ascii: ".") {
                components.append(name[segment..<i])
                segment = utf8.index(after: i)
            }
            i = utf8.index(after: i)
        }
        components.append(name[segment..<utf8.endIndex])
        var part = TensorPart.other
        if let last = components.last, let match = TensorClassifier.partSuffixes.first(where: { last == $0.0 }) {
            part = match.1
            components.removeLast()
        }
        return ClassifiedTensor(name: name, role: role(of: components, part: &part), part: part)
    }

    private func role(of c: [Substring], part: inout TensorPart) -> TensorRole {
        switch c.count {
        case 1 where c[0] == "embed_tokens": return .embedding
        case 1 where c[0] == "norm": return .finalNorm
        case 1 where c[0] == "lm_head": return .outputHead
        default: break
        }
        guard c.count >= 3, c[0] == "layers", let layer = Int(c[1]), layer >= 0 else { return .unknown }
        if layer >= spec.layerCount { return .nextTokenPrediction(layer: layer) }
        // c = ["layers", N, rest…]; rest(i) = c[2 + i], ffn(i) = c[3 + i].
        let restCount = c.count - 2
        switch restCount {
        case 1 where c[2] == "input_layernorm": return .attentionNorm(layer: layer)
        case 1 where c[2] == "post_attention_layernorm": return .feedForwardNorm(layer: layer)
        default: break
        }
        if c[2] == "self_attn", restCount == 2, let attention = TensorClassifier.attentionPart(c[3]) {
            return .attention(layer: layer, part: attention)
        }
        if c[2] == "self_attn", restCount == 2, part == .other, c[3] == "sinks" {
            return .attention(layer: layer, part: .sinks)
        }
        guard c[2] == "mlp" || c[2] == "block_sparse_moe", restCount >= 2 else { return .unknown }
        switch restCount - 1 {
        case 1 where c[3] == "gate" || c[3] == "router":
            return .router(layer: layer)
        case 2 where c[3] == "gate" && c[4] == "e_score_correction_bias":
            part = .bias
            return .routerBias(layer: layer)
        case 1:
            if let projection = TensorClassifier.projection(c[3]) { return .denseFeedForward(layer: layer, projection: projection) }
        case 2 where c[3] == "experts":
            // transformers v5 fused layout: mlp.experts.gate_up_proj / mlp.experts.down_proj (no `.weight` suffix).
            if c[4] == "gate_up_proj" { return .routedExpertsFused(layer: layer, part: .gateUp) }
            if c[4] == "down_proj" { return .routedExpertsFused(layer: layer, part: .down) }
            // gpt-oss: per-expert biases and the MXFP4 blocks / scales of the fused tensors.
            for (suffix, stored) in [("_bias", TensorPart.bias), ("_blocks", .packed), ("_scales", .scale)] where c[4].hasSuffix(suffix) {
                let base = c[4].dropLast(suffix.count)
                if base == "gate_up_proj" || base == "down_proj" {
                    part = stored
                    return .routedExpertsFused(layer: layer, part: base == "down_proj" ? .down : .gateUp)
                }
            }
        case 2 where c[3] == "shared_experts" || c[3] == "shared_expert":
            if let projection = TensorClassifier.projection(c[4]) { return .sharedExpert(layer: layer, projection: projection) }
        case 3 where c[3] == "experts":
            if let expert = Int(c[4]), expert >= 0, let projection = TensorClassifier.projection(c[5]) {
                return .routedExpert(layer: layer, expert: expert, projection: projection)
            }
        default: break
        }
        return .unknown
    }
}
