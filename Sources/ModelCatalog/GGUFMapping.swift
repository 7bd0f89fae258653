// HF → GGUF, declared as data per role: llama.cpp's architecture name, tensor names, ggml shapes, how each
// GGUF tensor is assembled from HF tensors (stacked experts, MLA kv_b split, rope permutation), and the
// hyper-parameter keys (formats.md §5.4–5.5; checked against llama.cpp's converter output in tests).
import TensorFormats

/// How one GGUF tensor's rows come from HF weights. Rows are ggml rows (ne0 values each).
public enum GGUFSource: Sendable, Equatable {
    /// One HF weight, rows in order.
    case weight(String)
    /// One HF weight with llama's rope row permutation for `heads` heads (Mixtral q/k).
    case ropePermuted(String, heads: Int)
    /// Experts stacked along ne2, expert e from `names[e]`.
    case stacked([String])
    /// MLA `attn_k_b`: per head, the transposed first `noPosition` rows of kv_b_proj.
    case keyFromKVB(String, heads: Int, noPosition: Int, value: Int)
    /// MLA `attn_v_b`: per head, the last `value` rows of kv_b_proj.
    case valueFromKVB(String, heads: Int, noPosition: Int, value: Int)
}

/// llama-quantize's tensor categories, which its mixture rules switch on.
public enum GGUFTensorCategory: String, Sendable, Equatable {
    case tokenEmbedding, output, attentionV, attentionK, attentionQ, attentionOutput, attentionQKV
    case feedForwardDown, feedForwardGate, feedForwardUp, other
}

/// One tensor of the GGUF file.
public struct GGUFTensorPlan: Sendable, Equatable {
    public let name: String
    /// ggml dimensions, ne0 first.
    public let dimensions: [Int]
    public let source: GGUFSource
    public let category: GGUFTensorCategory
    /// Layer index for per-layer tensors.
    public let layer: Int?
    /// llama-quantize quantizes only ≥2-D `*.weight` tensors that are not norms or routers.
    public let quantizable: Bool

    public init(name: String, dimensions: [Int], source: GGUFSource, category: GGUFTensorCategory, layer: Int?, quantizable: Bool) {
        self.name = name
        self.dimensions = dimensions
        self.source = source
        self.category = category
        self.layer = layer
        self.quantizable = quantizable
    }

    public var rowWidth: Int { dimensions[0] }
    public var rowCount: Int { dimensions.dropFirst().reduce(1, *) }
}

extension ModelSpec {
    /// llama.cpp's architecture string.
    public var ggufArchitecture: String {
        switch architecture {
        case .deepseekV3: "deepseek2"
        case .qwen3Moe: "qwen3moe"
        case .mixtral: "llama"
        case .gptOss: "gpt-oss"
        case .glm4Moe: "glm4moe"
        }
    }

    /// Every GGUF tensor, in HF layer order. `has` tells which HF tensors exist (lm_head may be absent).
    public func ggufTensors(has: (String) -> Bool) -> [GGUFTensorPlan] {
        var plans: [GGUFTensorPlan] = []
        func add(_ name: String, _ dims: [Int], _ source: GGUFSource, _ category: GGUFTensorCategory = .other, layer: Int? = nil) {
            let quantizable = dims.count >= 2 && name.hasSuffix("weight") && !name.hasSuffix("_norm.weight") && !name.contains("ffn_gate_inp")
            plans.append(GGUFTensorPlan(name: name, dimensions: dims, source: source, category: category, layer: layer, quantizable: quantizable))
        }
        let h = hiddenSize
        add("token_embd.weight", [h, vocabularySize], .weight("model.embed_tokens.weight"), .tokenEmbedding)
        // llama.cpp's GLM-4.5 converter keeps the MTP layer as one more block; the others drop it.
        let blocks = layerCount + (architecture == .glm4Moe ? nextTokenPredictionLayers : 0)
        let postAttentionNorm = architecture == .gptOss || architecture == .glm4Moe ? "post_attention_norm.weight" : "ffn_norm.weight"
        for l in 0..<blocks {
            let hf = "model.layers.\(l)."
            let blk = "blk.\(l)."
            add(blk + "attn_norm.weight", [h], .weight(hf + "input_layernorm.weight"), layer: l)
            attentionPlans(hf: hf + "self_attn.", blk: blk, layer: l, add: add)
            add(blk + postAttentionNorm, [h], .weight(hf + "post_attention_layernorm.weight"), layer: l)
            feedForwardPlans(hf: hf, blk: blk, layer: l, add: add)
            if l >= layerCount {
                add(blk + "nextn.eh_proj.weight", [2 * h, h], .weight(hf + "eh_proj.weight"), layer: l)
                add(blk + "nextn.enorm.weight", [h], .weight(hf + "enorm.weight"), layer: l)
                add(blk + "nextn.hnorm.weight", [h], .weight(hf + "hnorm.weight"), layer: l)
                add(blk + "nextn.shared_head_norm.weight", [h], .weight(hf + "shared_head.norm.weight"), layer: l)
            }
        }
        add("output_norm.weight", [h], .weight("model.norm.weight"))
        if has("lm_head.weight") { add("output.weight", [h, vocabularySize], .weight("lm_head.weight"), .output) }
        return plans
    }

    private func attentionPlans(hf: String, blk: String, layer l: Int,
                                add: (String, [Int], GGUFSource, GGUFTensorCategory, Int?) -> Void) {
        let h = hiddenSize
        if let mla = latentAttention {
            let queryWidth = headCount * (mla.noPositionHeadDim + mla.ropeHeadDim)
            if let rank = mla.queryRank {
                add(blk + "attn_q_a.weight", [h, rank], .weight(hf + "q_a_proj.weight"), .other, l)
                add(blk + "attn_q_a_norm.weight", [rank], .weight(hf + "q_a_layernorm.weight"), .other, l)
                add(blk + "attn_q_b.weight", [rank, queryWidth], .weight(hf + "q_b_proj.weight"), .other, l)
            } else {
                add(blk + "attn_q.weight", [h, queryWidth], .weight(hf + "q_proj.weight"), .attentionQ, l)
            }
            add(blk + "attn_kv_a_mqa.weight", [h, mla.keyValueRank + mla.ropeHeadDim], .weight(hf + "kv_a_proj_with_mqa.weight"), .other, l)
            add(blk + "attn_kv_a_norm.weight", [mla.keyValueRank], .weight(hf + "kv_a_layernorm.weight"), .other, l)
            let kvb = hf + "kv_b_proj.weight"
            add(blk + "attn_k_b.weight", [mla.noPositionHeadDim, mla.keyValueRank, headCount],
                .keyFromKVB(kvb, heads: headCount, noPosition: mla.noPositionHeadDim, value: mla.valueHeadDim), .other, l)
            add(blk + "attn_v_b.weight", [mla.keyValueRank, mla.valueHeadDim, headCount],
                .valueFromKVB(kvb, heads: headCount, noPosition: mla.noPositionHeadDim, value: mla.valueHeadDim), .other, l)
            add(blk + "attn_output.weight", [headCount * mla.valueHeadDim, h], .weight(hf + "o_proj.weight"), .attentionOutput, l)
            return
        }
        let permute = architecture == .mixtral
        add(blk + "attn_q.weight", [h, headCount * headDim],
            permute ? .ropePermuted(hf + "q_proj.weight", heads: headCount) : .weight(hf + "q_proj.weight"), .attentionQ, l)
        add(blk + "attn_k.weight", [h, keyValueHeadCount * headDim],
            permute ? .ropePermuted(hf + "k_proj.weight", heads: keyValueHeadCount) : .weight(hf + "k_proj.weight"), .attentionK, l)
        add(blk + "attn_v.weight", [h, keyValueHeadCount * headDim], .weight(hf + "v_proj.weight"), .attentionV, l)
        if attentionBias {
            add(blk + "attn_q.bias", [headCount * headDim], .weight(hf + "q_proj.bias"), .other, l)
            add(blk + "attn_k.bias", [keyValueHeadCount * headDim], .weight(hf + "k_proj.bias"), .other, l)
            add(blk + "attn_v.bias", [keyValueHeadCount * headDim], .weight(hf + "v_proj.bias"), .other, l)
        }
        add(blk + "attn_output.weight", [headCount * headDim, h], .weight(hf + "o_proj.weight"), .attentionOutput, l)
        if architecture == .gptOss {
            add(blk + "attn_output.bias", [h], .weight(hf + "o_proj.bias"), .other, l)
            add(blk + "attn_sinks.weight", [headCount], .weight(hf + "sinks"), .other, l)
        }
        if queryKeyNorm {
            add(blk + "attn_q_norm.weight", [headDim], .weight(hf + "q_norm.weight"), .other, l)
            add(blk + "attn_k_norm.weight", [headDim], .weight(hf + "k_norm.weight"), .other, l)
        }
    }

    private func feedForwardPlans(hf: String, blk: String, layer l: Int,
                                  add: (String, [Int], GGUFSource, GGUFTensorCategory, Int?) -> Void) {
        let h = hiddenSize
        if l < layerCount && !isMoELayer(l) {
            add(blk + "ffn_gate.weight", [h, intermediateSize], .weight(hf + "mlp.gate_proj.weight"), .feedForwardGate, l)
            add(blk + "ffn_up.weight", [h, intermediateSize], .weight(hf + "mlp.up_proj.weight"), .feedForwardUp, l)
            add(blk + "ffn_down.weight", [intermediateSize, h], .weight(hf + "mlp.down_proj.weight"), .feedForwardDown, l)
            return
        }
        let ff = expertIntermediateSize, experts = routedExpertCount
        let mixtral = architecture == .mixtral
        let moe = hf + (mixtral ? "block_sparse_moe." : "mlp.")
        func expertNames(_ projection: String) -> [String] { (0..<experts).map { moe + "experts.\($0)." + projection + ".weight" } }
        if architecture == .gptOss {
            // Planned only (conversion refuses gpt-oss): the fused HF gate_up tensor is named as the source.
            add(blk + "ffn_gate_inp.weight", [h, experts], .weight(moe + "router.weight"), .other, l)
            add(blk + "ffn_gate_inp.bias", [experts], .weight(moe + "router.bias"), .other, l)
            for (name, dims, hfName, category) in [("gate", [h, ff, experts], "gate_up_proj", GGUFTensorCategory.feedForwardGate),
                                                   ("up", [h, ff, experts], "gate_up_proj", .feedForwardUp),
                                                   ("down", [ff, h, experts], "down_proj", .feedForwardDown)] {
                add(blk + "ffn_\(name)_exps.weight", dims, .weight(moe + "experts." + hfName), category, l)
                add(blk + "ffn_\(name)_exps.bias", [dims[1], experts], .weight(moe + "experts." + hfName + "_bias"), .other, l)
            }
            return
        }
        add(blk + "ffn_gate_inp.weight", [h, experts], .weight(moe + "gate.weight"), .other, l)
        if hasRouterCorrectionBias {
            add(blk + "exp_probs_b.bias", [experts], .weight(moe + "gate.e_score_correction_bias"), .other, l)
        }
        add(blk + "ffn_gate_exps.weight", [h, ff, experts], .stacked(expertNames(mixtral ? "w1" : "gate_proj")), .feedForwardGate, l)
        add(blk + "ffn_up_exps.weight", [h, ff, experts], .stacked(expertNames(mixtral ? "w3" : "up_proj")), .feedForwardUp, l)
        add(blk + "ffn_down_exps.weight", [ff, h, experts], .stacked(expertNames(mixtral ? "w2" : "down_proj")), .feedForwardDown, l)
        if sharedExpertCount > 0 {
            let shared = ff * sharedExpertCount
            add(blk + "ffn_gate_shexp.weight", [h, shared], .weight(moe + "shared_experts.gate_proj.weight"), .feedForwardGate, l)
            add(blk + "ffn_up_shexp.weight", [h, shared], .weight(moe + "shared_experts.up_proj.weight"), .feedForwardUp, l)
            add(blk + "ffn_down_shexp.weight", [shared, h], .weight(moe + "shared_experts.down_proj.weight"), .feedForwardDown, l)
        }
    }

    /// The architecture hyper-parameter keys llama.cpp reads (values as its converter writes them).
    public func ggufHyperParameters() -> [(String, GGUFValue)] {
        let a = ggufArchitecture
        var kv: [(String, GGUFValue)] = [
            // GLM-4.5's converter counts its MTP layer as a block (llama.cpp conversion/glm.py).
            ("\(a).block_count", .uint32(UInt32(layerCount + (architecture == .glm4Moe ? nextTokenPredictionLayers : 0)))),
            ("\(a).context_length", .uint32(UInt32(maxPositionEmbeddings))),
            ("\(a).embedding_length", .uint32(UInt32(hiddenSize))),
            ("\(a).feed_forward_length", .uint32(UInt32(architecture == .mixtral ? expertIntermediateSize : intermediateSize))),
            ("\(a).attention.head_count", .uint32(UInt32(headCount))),
            ("\(a).attention.head_count_kv", .uint32(UInt32(latentAttention == nil ? keyValueHeadCount : 1))),
            ("\(a).rope.freq_base", .float32(Float(ropeTheta))),
            ("\(a).attention.layer_norm_rms_epsilon", .float32(Float(rmsNormEpsilon))),
            ("\(a).expert_count", .uint32(UInt32(routedExpertCount))),
            ("\(a).expert_used_count", .uint32(UInt32(expertsPerToken))),
        ]
        // llama.cpp's converter writes vocab_size for deepseek2 and llama, not for qwen3moe.
        if architecture != .qwen3Moe { kv.append(("\(a).vocab_size", .uint32(UInt32(vocabularySize)))) }
        if let scaling = ropeScaling, scaling.type == "yarn" {
            kv += [("\(a).rope.scaling.type", .string("yarn")), ("\(a).rope.scaling.factor", .float32(Float(scaling.factor)))]
            if let original = scaling.originalMaxPositionEmbeddings { kv.append(("\(a).rope.scaling.original_context_length", .uint32(UInt32(original)))) }
            if let fast = scaling.betaFast { kv.append(("\(a).rope.scaling.yarn_beta_fast", .float32(Float(fast)))) }
            if let slow = scaling.betaSlow { kv.append(("\(a).rope.scaling.yarn_beta_slow", .float32(Float(slow)))) }
        }
        switch architecture {
        case .deepseekV3:
            guard let mla = latentAttention else { return kv }
            kv += [
                ("\(a).expert_group_count", .uint32(UInt32(expertGroupCount))),
                ("\(a).expert_group_used_count", .uint32(UInt32(expertGroupsUsed))),
                ("\(a).attention.key_length", .uint32(UInt32(mla.keyValueRank + mla.ropeHeadDim))),
                ("\(a).attention.value_length", .uint32(UInt32(mla.keyValueRank))),
                ("\(a).leading_dense_block_count", .uint32(UInt32((0..<layerCount).prefix { !isMoELayer($0) }.count))),
            ]
            if let rank = mla.queryRank { kv.append(("\(a).attention.q_lora_rank", .uint32(UInt32(rank)))) }
            kv += [
                ("\(a).attention.kv_lora_rank", .uint32(UInt32(mla.keyValueRank))),
                ("\(a).attention.key_length_mla", .uint32(UInt32(mla.noPositionHeadDim + mla.ropeHeadDim))),
                ("\(a).attention.value_length_mla", .uint32(UInt32(mla.valueHeadDim))),
                ("\(a).expert_feed_forward_length", .uint32(UInt32(expertIntermediateSize))),
                ("\(a).expert_shared_count", .uint32(UInt32(sharedExpertCount))),
                ("\(a).expert_weights_scale", .float32(Float(routedScalingFactor))),
            ]
            if normalizeTopKProbabilities { kv.append(("\(a).expert_weights_norm", .bool(true))) }
            // 1 softmax, 2 sigmoid: written always, since the loader's default (softmax) is wrong for V3/Kimi.
            kv.append(("\(a).expert_gating_func", .uint32(routerScoring == .sigmoid ? 2 : 1)))
            kv.append(("\(a).rope.dimension_count", .uint32(UInt32(mla.ropeHeadDim))))
            if let scaling = ropeScaling, scaling.type == "yarn" {
                kv.append(("\(a).rope.scaling.yarn_log_multiplier", .float32(Float(0.1 * (scaling.mscaleAllDim ?? 1)))))
            }
        case .qwen3Moe:
            kv += [
                ("\(a).attention.key_length", .uint32(UInt32(headDim))),
                ("\(a).attention.value_length", .uint32(UInt32(headDim))),
                ("\(a).expert_feed_forward_length", .uint32(UInt32(expertIntermediateSize))),
            ]
        case .gptOss:
            kv += [
                ("\(a).attention.key_length", .uint32(UInt32(headDim))),
                ("\(a).attention.value_length", .uint32(UInt32(headDim))),
                ("\(a).expert_feed_forward_length", .uint32(UInt32(expertIntermediateSize))),
            ]
            if let window = slidingWindow { kv.append(("\(a).attention.sliding_window", .uint32(UInt32(window)))) }
        case .glm4Moe:
            kv += [
                ("\(a).attention.key_length", .uint32(UInt32(headDim))),
                ("\(a).attention.value_length", .uint32(UInt32(headDim))),
                ("\(a).rope.dimension_count", .uint32(UInt32(Double(headDim) * partialRotaryFactor))),
                ("\(a).expert_feed_forward_length", .uint32(UInt32(expertIntermediateSize))),
                ("\(a).expert_shared_count", .uint32(UInt32(sharedExpertCount))),
                ("\(a).leading_dense_block_count", .uint32(UInt32(denseLayers.count))),
                ("\(a).expert_gating_func", .uint32(2)),
                ("\(a).expert_weights_scale", .float32(Float(routedScalingFactor))),
                ("\(a).expert_weights_norm", .bool(normalizeTopKProbabilities)),
                ("\(a).nextn_predict_layers", .uint32(UInt32(nextTokenPredictionLayers))),
            ]
        case .mixtral:
            kv.append(("\(a).rope.dimension_count", .uint32(UInt32(headDim))))
            if headDimGiven {
                kv += [("\(a).attention.key_length", .uint32(UInt32(headDim))), ("\(a).attention.value_length", .uint32(UInt32(headDim)))]
            }
        }
        return kv
    }
}
