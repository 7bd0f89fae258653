// The tensors a checkpoint of this spec holds in the Hugging Face hub layout (per-expert names), with shapes.

/// One tensor the HF layout of a spec contains.
public struct ExpectedTensor: Sendable, Equatable {
    public let name: String
    /// PyTorch order `[out, in]`.
    public let shape: [Int]
    /// True for `nn.Linear` weights: the ones FP8 / INT4 checkpoints quantize.
    public let isLinear: Bool
}

extension ModelSpec {
    /// DeepSeek-V3 / Kimi and GLM-4.5 keep a selection-only bias beside the sigmoid router.
    public var hasRouterCorrectionBias: Bool { architecture == .deepseekV3 || architecture == .glm4Moe }

    /// Every tensor of the checkpoint in the order HF checkpoints list them: embeddings, then layer by layer
    /// (MTP layers after the main ones), then the final norm and the output head.
    public func expectedTensors() -> [ExpectedTensor] {
        var tensors: [ExpectedTensor] = []
        func add(_ name: String, _ shape: [Int], linear: Bool = false) {
            tensors.append(ExpectedTensor(name: name, shape: shape, isLinear: linear))
        }
        let h = hiddenSize
        add("model.embed_tokens.weight", [vocabularySize, h])
        for layer in 0..<(layerCount + nextTokenPredictionLayers) {
            let p = "model.layers.\(layer)."
            if layer >= layerCount {
                add(p + "enorm.weight", [h])
                add(p + "hnorm.weight", [h])
                add(p + "eh_proj.weight", [h, 2 * h], linear: true)
                add(p + "shared_head.norm.weight", [h])
                add(p + "shared_head.head.weight", [vocabularySize, h])
                add(p + "embed_tokens.weight", [vocabularySize, h])
            }
            add(p + "input_layernorm.weight", [h])
            attentionTensors(prefix: p + "self_attn.", add: add)
            add(p + "post_attention_layernorm.weight", [h])
            feedForwardTensors(layer: layer, prefix: p, add: add)
        }
        add("model.norm.weight", [h])
        if !tieWordEmbeddings { add("lm_head.weight", [vocabularySize, h]) }
        return tensors
    }

    private func attentionTensors(prefix p: String, add: (String, [Int], Bool) -> Void) {
        let h = hiddenSize
        if let mla = latentAttention {
            let queryWidth = headCount * (mla.noPositionHeadDim + mla.ropeHeadDim)
            if let rank = mla.queryRank {
                add(p + "q_a_proj.weight", [rank, h], true)
                add(p + "q_a_layernorm.weight", [rank], false)
                add(p + "q_b_proj.weight", [queryWidth, rank], true)
            } else {
                add(p + "q_proj.weight", [queryWidth, h], true)
            }
            add(p + "kv_a_proj_with_mqa.weight", [mla.keyValueRank + mla.ropeHeadDim, h], true)
            add(p + "kv_a_layernorm.weight", [mla.keyValueRank], false)
            add(p + "kv_b_proj.weight", [headCount * (mla.noPositionHeadDim + mla.valueHeadDim), mla.keyValueRank], true)
            add(p + "o_proj.weight", [h, headCount * mla.valueHeadDim], true)
            return
        }
        let q = headCount * headDim, kv = keyValueHeadCount * headDim
        add(p + "q_proj.weight", [q, h], true)
        if attentionBias { add(p + "q_proj.bias", [q], false) }
        add(p + "k_proj.weight", [kv, h], true)
        if attentionBias { add(p + "k_proj.bias", [kv], false) }
        add(p + "v_proj.weight", [kv, h], true)
        if attentionBias { add(p + "v_proj.bias", [kv], false) }
        add(p + "o_proj.weight", [h, q], true)
        if architecture == .gptOss {
            add(p + "o_proj.bias", [h], false)
            add(p + "sinks", [headCount], false)
        }
        if queryKeyNorm {
            add(p + "q_norm.weight", [headDim], false)
            add(p + "k_norm.weight", [headDim], false)
        }
    }

    private func feedForwardTensors(layer: Int, prefix p: String, add: (String, [Int], Bool) -> Void) {
        let h = hiddenSize
        let moe = layer >= layerCount ? true : isMoELayer(layer)
        if !moe {
            add(p + "mlp.gate_proj.weight", [intermediateSize, h], true)
            add(p + "mlp.up_proj.weight", [intermediateSize, h], true)
            add(p + "mlp.down_proj.weight", [h, intermediateSize], true)
            return
        }
        let ff = expertIntermediateSize
        if architecture == .mixtral {
            add(p + "block_sparse_moe.gate.weight", [routedExpertCount, h], false)
            for e in 0..<routedExpertCount {
                let q = p + "block_sparse_moe.experts.\(e)."
                add(q + "w1.weight", [ff, h], true)
                add(q + "w2.weight", [h, ff], true)
                add(q + "w3.weight", [ff, h], true)
            }
            return
        }
        if architecture == .gptOss {
            // Logical shapes of the fused expert tensors (stored as MXFP4 `_blocks` / `_scales` in the release).
            let e = routedExpertCount
            add(p + "mlp.router.weight", [e, h], false)
            add(p + "mlp.router.bias", [e], false)
            add(p + "mlp.experts.gate_up_proj", [e, 2 * ff, h], true)
            add(p + "mlp.experts.gate_up_proj_bias", [e, 2 * ff], false)
            add(p + "mlp.experts.down_proj", [e, h, ff], true)
            add(p + "mlp.experts.down_proj_bias", [e, h], false)
            return
        }
        add(p + "mlp.gate.weight", [routedExpertCount, h], false)
        if hasRouterCorrectionBias { add(p + "mlp.gate.e_score_correction_bias", [routedExpertCount], false) }
        for e in 0..<routedExpertCount {
            let q = p + "mlp.experts.\(e)."
            add(q + "gate_proj.weight", [ff, h], true)
            add(q + "up_proj.weight", [ff, h], true)
            add(q + "down_proj.weight", [h, ff], true)
        }
        if sharedExpertCount > 0 {
            let shared = ff * sharedExpertCount
            add(p + "mlp.shared_experts.gate_proj.weight", [shared, h], true)
            add(p + "mlp.shared_experts.up_proj.weight", [shared, h], true)
            add(p + "mlp.shared_experts.down_proj.weight", [h, shared], true)
        }
    }
}
