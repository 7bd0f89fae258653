// Kimi-Linear (`kimi_linear`, Kimi-Linear-48B-A3B): Kimi Delta Attention on most layers, MLA without positions (no
// rope; plain q_proj) on the others (`linear_attn_config.kda_layers` / `full_attn_layers`, 1-based), a leading dense
// layer, then DeepSeek's MoE (sigmoid router with a selection bias, shared experts) under Moonshot's names:
// `block_sparse_moe.gate`, experts w1 (gate) / w3 (up) / w2 (down). Config keys are Moonshot's (`num_experts`,
// `num_experts_per_token`, `num_shared_experts`, `num_expert_group`, `moe_renormalize`, `model_max_length`).
// GGUF: llama.cpp's `kimi-linear` (LCPP conversion/kimi_linear.py): KDA tensors as `ssm_*` (A_log stored as
// −exp(A_log) in `ssm_a`), kv_b split as deepseek2's, `attention.head_count_kv` per layer (0 on KDA layers).
import TensorFormats

extension ArchitectureTable {
    public static let kimiLinear = ArchitectureTable(
        architecture: .kimiLinear, modelTypes: ["kimi_linear"], ggufArchitecture: "kimi-linear", isConvertible: true,
        namePrefixes: [], checkpointTensors: KimiLinear.checkpointTensors, fileTensors: KimiLinear.fileTensors,
        hyperParameters: KimiLinear.hyperParameters, readConfig: KimiLinear.readConfig, configFromGGUF: KimiLinear.configFromGGUF)
}

enum KimiLinear {
    static let linear: LayerKinds = [.dense, .moe, .linearAttention]
    static let full: LayerKinds = [.dense, .moe, .fullAttention]
    static let moe = HFNames.layer + "block_sparse_moe."

    static func kda(_ s: ModelSpec) -> LinearAttention {
        s.linearAttention ?? LinearAttention(heads: 0, headDim: 0, convKernel: 0, layers: [])
    }

    static func width(_ s: ModelSpec) -> Int { kda(s).heads * kda(s).headDim }

    static func checkpointTensors(_ s: ModelSpec) -> [CheckpointTensor] {
        let a = HFNames.attention
        var t = CheckpointTensor.leading(s) + [.attentionNorm(.main)]
        // Kimi Delta Attention.
        for (part, name) in [(AttentionPart.query, "q_proj"), (.key, "k_proj"), (.value, "v_proj")] {
            t.append(CheckpointTensor(.attention(part), a + name + ".weight", .layer(linear), linear: true) { [width($0), $0.hiddenSize] })
        }
        for (part, name) in [(AttentionPart.convQuery, "q_conv1d"), (.convKey, "k_conv1d"), (.convValue, "v_conv1d")] {
            t.append(CheckpointTensor(.attention(part), a + name + ".weight", .layer(linear)) { [width($0), 1, kda($0).convKernel] })
        }
        t += [
            CheckpointTensor(.attention(.forgetA), a + "f_a_proj.weight", .layer(linear), linear: true) {
                [kda($0).headDim, $0.hiddenSize]
            },
            CheckpointTensor(.attention(.forgetB), a + "f_b_proj.weight", .layer(linear), linear: true) { [width($0), kda($0).headDim] },
            CheckpointTensor(.attention(.decayBias), a + "dt_bias", .layer(linear), part: .bias) { [width($0)] },
            CheckpointTensor(.attention(.decayLog), a + "A_log", .layer(linear)) { [1, 1, kda($0).heads, 1] },
            CheckpointTensor(.attention(.beta), a + "b_proj.weight", .layer(linear), linear: true) { [kda($0).heads, $0.hiddenSize] },
            CheckpointTensor(.attention(.gateA), a + "g_a_proj.weight", .layer(linear), linear: true) { [kda($0).headDim, $0.hiddenSize] },
            CheckpointTensor(.attention(.gateB), a + "g_b_proj.weight", .layer(linear), linear: true) { [width($0), kda($0).headDim] },
            CheckpointTensor(.attention(.outputNorm), a + "o_norm.weight", .layer(linear)) { [kda($0).headDim] },
            CheckpointTensor(.attention(.output), a + "o_proj.weight", .layer(linear), linear: true) { [$0.hiddenSize, width($0)] },
        ]
        // MLA without positions (plain q_proj).
        t += [
            CheckpointTensor(.attention(.query), a + "q_proj.weight", .layer(full), linear: true) {
                [DeepseekV3.queryWidth($0), $0.hiddenSize]
            },
            CheckpointTensor(.attention(.keyValueA), a + "kv_a_proj_with_mqa.weight", .layer(full), linear: true) {
                [DeepseekV3.mla($0).keyValueRank + DeepseekV3.mla($0).ropeHeadDim, $0.hiddenSize]
            },
            CheckpointTensor(.attention(.keyValueANorm), a + "kv_a_layernorm.weight", .layer(full)) { [DeepseekV3.mla($0).keyValueRank] },
            CheckpointTensor(.attention(.keyValueB), a + "kv_b_proj.weight", .layer(full), linear: true) {
                [$0.headCount * (DeepseekV3.mla($0).noPositionHeadDim + DeepseekV3.mla($0).valueHeadDim), DeepseekV3.mla($0).keyValueRank]
            },
            CheckpointTensor(.attention(.output), a + "o_proj.weight", .layer(full), linear: true) {
                [$0.hiddenSize, $0.headCount * DeepseekV3.mla($0).valueHeadDim]
            },
            .feedForwardNorm(.main),
        ]
        t += CheckpointTensor.swiGLU({ .denseFeedForward($0) }, HFNames.mlp, .layer(.dense)) { $0.intermediateSize }
        t += [
            CheckpointTensor(.router, moe + "gate.weight", .layer(.moe)) { [$0.routedExpertCount, $0.hiddenSize] },
            CheckpointTensor(.routerBias, moe + "gate.e_score_correction_bias", .layer(.moe), part: .bias) { [$0.routedExpertCount] },
        ]
        t += CheckpointTensor.swiGLU(
            { .routedExpert($0) }, moe + "experts.{expert}.", .expert(.moe), names: [(.gate, "w1"), (.down, "w2"), (.up, "w3")]
        ) { $0.expertIntermediateSize }
        if s.sharedExpertCount > 0 {
            t += CheckpointTensor.swiGLU({ .sharedExpert($0) }, moe + "shared_experts.", .layer(.moe)) {
                $0.expertIntermediateSize * $0.sharedExpertCount
            }
        }
        return t + CheckpointTensor.trailing(s)
    }

    static func fileTensors(_ s: ModelSpec) -> [FileTensor] {
        let b = GGUFNames.block
        var t = FileTensor.leading() + [.attentionNorm(.main)]
        for (part, name) in [(AttentionPart.query, "attn_q"), (.key, "attn_k"), (.value, "attn_v")] {
            t.append(FileTensor(.attention(part), b + name + ".weight", .layer(linear)) { [$0.hiddenSize, width($0)] })
        }
        for (part, name) in [(AttentionPart.convQuery, "q"), (.convKey, "k"), (.convValue, "v")] {
            t.append(
                FileTensor(.attention(part), b + "ssm_conv1d_\(name).weight", .layer(linear)) { [kda($0).convKernel, 1, width($0), 1] })
        }
        t += [
            FileTensor(.attention(.forgetA), b + "ssm_f_a.weight", .layer(linear)) { [$0.hiddenSize, kda($0).headDim] },
            FileTensor(.attention(.forgetB), b + "ssm_f_b.weight", .layer(linear)) { [kda($0).headDim, width($0)] },
            FileTensor(.attention(.beta), b + "ssm_beta.weight", .layer(linear)) { [$0.hiddenSize, kda($0).heads] },
            FileTensor(.attention(.decayLog), b + "ssm_a", .layer(linear), from: .negatedExponential(.attention(.decayLog))) {
                [1, kda($0).heads, 1, 1]
            },
            FileTensor(.attention(.decayBias), b + "ssm_dt.bias", .layer(linear), part: .bias) { [width($0)] },
            FileTensor(.attention(.gateA), b + "ssm_g_a.weight", .layer(linear)) { [$0.hiddenSize, kda($0).headDim] },
            FileTensor(.attention(.gateB), b + "ssm_g_b.weight", .layer(linear)) { [kda($0).headDim, width($0)] },
            FileTensor(.attention(.outputNorm), b + "ssm_norm.weight", .layer(linear)) { [kda($0).headDim] },
            FileTensor(.attention(.output), b + "attn_output.weight", .layer(linear)) { [width($0), $0.hiddenSize] },
        ]
        let mla = DeepseekV3.mla
        t += [
            FileTensor(.attention(.query), b + "attn_q.weight", .layer(full)) { [$0.hiddenSize, DeepseekV3.queryWidth($0)] },
            FileTensor(.attention(.keyValueA), b + "attn_kv_a_mqa.weight", .layer(full)) {
                [$0.hiddenSize, mla($0).keyValueRank + mla($0).ropeHeadDim]
            },
            FileTensor(.attention(.keyValueANorm), b + "attn_kv_a_norm.weight", .layer(full)) { [mla($0).keyValueRank] },
            FileTensor(.attention(.keyB), b + "attn_k_b.weight", .layer(full), from: .keyFromKVB(.attention(.keyValueB))) {
                [mla($0).noPositionHeadDim, mla($0).keyValueRank, $0.headCount]
            },
            FileTensor(.attention(.valueB), b + "attn_v_b.weight", .layer(full), from: .valueFromKVB(.attention(.keyValueB))) {
                [mla($0).keyValueRank, mla($0).valueHeadDim, $0.headCount]
            },
            FileTensor(.attention(.output), b + "attn_output.weight", .layer(full)) {
                [$0.headCount * mla($0).valueHeadDim, $0.hiddenSize]
            },
            .feedForwardNorm(.main),
        ]
        t += FileTensor.denseFeedForward(.dense)
        t += [.router(.moe), .routerBias(.moe)]
        t += FileTensor.stackedExperts(.moe)
        if s.sharedExpertCount > 0 { t += FileTensor.sharedExperts(.moe) }
        return t + FileTensor.trailing()
    }

    static func hyperParameters(_ s: ModelSpec) -> [(ModelKey, GGUFValue)] {
        let mla = DeepseekV3.mla(s), linear = kda(s)
        // head_count_kv per layer: 0 marks a KDA layer, 1 an MLA layer (MLA as one shared latent head).
        let kvHeads: [GGUFValue] = (0..<s.layerCount).map { .uint32(linear.layers.contains($0) ? 0 : 1) }
        var kv = ArchitectureTable.commonHyperParameters(
            s, blocks: s.layerCount, feedForward: s.intermediateSize, writesVocabularySize: true)
        kv.removeAll { $0.0 == .headCountKeyValue }
        kv += [
            (.headCountKeyValue, .array(.uint32, kvHeads)), (.expertGroupUsedCount, .uint32(UInt32(s.expertGroupsUsed))),
            (.expertGatingFunction, .uint32(2)),
            (.keyLength, .uint32(UInt32(mla.keyValueRank + mla.ropeHeadDim))), (.valueLength, .uint32(UInt32(s.headDim))),
            (.ssmConvolutionKernel, .uint32(UInt32(linear.convKernel))), (.kdaHeadDim, .uint32(UInt32(linear.headDim))),
            (.keyValueLoRARank, .uint32(UInt32(mla.keyValueRank))), (.ropeDimensionCount, .uint32(UInt32(mla.ropeHeadDim))),
            (.keyLengthMLA, .uint32(UInt32(mla.noPositionHeadDim + mla.ropeHeadDim))), (.valueLengthMLA, .uint32(UInt32(mla.valueHeadDim))),
            (.expertFeedForwardLength, .uint32(UInt32(s.expertIntermediateSize))),
            (.expertSharedCount, .uint32(UInt32(s.sharedExpertCount))),
            (.leadingDenseBlockCount, .uint32(UInt32((0..<s.layerCount).prefix { !s.isMoELayer($0) }.count))),
            (.expertWeightsScale, .float32(Float(s.routedScalingFactor))),
        ]
        if let rank = mla.queryRank { kv.append((.queryLoRARank, .uint32(UInt32(rank)))) }
        if s.normalizeTopKProbabilities { kv.append((.expertWeightsNorm, .bool(true))) }
        return kv
    }

    static func configFromGGUF(_ h: GGUFHeaderReader) throws(CatalogError) -> [(String, JSONValue)] {
        // head_count_kv per layer: 0 on KDA layers (listed 1-based, as config.json does).
        guard case .array(_, let perLayer)? = h.file[ModelKey.headCountKeyValue, architecture: h.architecture] else {
            throw .missingField(file: h.file.path, field: ModelKey.headCountKeyValue.key(h.architecture).rawValue)
        }
        let kinds = perLayer.map { $0.integerValue ?? 0 }
        let rope = try h.required(.ropeDimensionCount)
        let kdaLayers = kinds.indices.filter { kinds[$0] == 0 }.map { JSONValue.integer(Int64($0 + 1)) }
        let fullLayers = kinds.indices.filter { kinds[$0] != 0 }.map { JSONValue.integer(Int64($0 + 1)) }
        var config: [(String, JSONValue)] = [("model_type", "kimi_linear")]
        func add(_ key: String, _ value: Int?) { if let value { config.append((key, .integer(Int64(value)))) } }
        add("num_key_value_heads", try h.required(.headCount))
        add("kv_lora_rank", try h.required(.keyValueLoRARank))
        add("q_lora_rank", h.int(.queryLoRARank))
        add("qk_rope_head_dim", rope)
        add("qk_nope_head_dim", try h.required(.keyLengthMLA) - rope)
        add("v_head_dim", try h.required(.valueLengthMLA))
        add("head_dim", h.int(.valueLength))
        add("intermediate_size", h.int(.feedForwardLength))
        add("moe_intermediate_size", h.int(.expertFeedForwardLength))
        add("num_experts", h.int(.expertCount))
        add("num_experts_per_token", h.int(.expertUsedCount))
        add("num_shared_experts", h.int(.expertSharedCount))
        add("first_k_dense_replace", h.int(.leadingDenseBlockCount))
        add("topk_group", h.int(.expertGroupUsedCount))
        if let scale = h.double(.expertWeightsScale) { config.append(("routed_scaling_factor", .double(scale))) }
        if let norm = h.bool(.expertWeightsNorm) { config.append(("moe_renormalize", .bool(norm))) }
        // llama.cpp's KDA has as many heads as attention heads.
        var linear = JSONObject()
        linear["kda_layers"] = .array(kdaLayers)
        linear["full_attn_layers"] = .array(fullLayers)
        linear["num_heads"] = .integer(Int64(try h.required(.headCount)))
        linear["head_dim"] = .integer(Int64(try h.required(.kdaHeadDim)))
        linear["short_conv_kernel_size"] = .integer(Int64(try h.required(.ssmConvolutionKernel)))
        config.append(("linear_attn_config", .object(linear)))
        return config
    }

    static func readConfig(_ s: inout ModelSpec, _ read: ConfigReader) throws(CatalogError) {
        let dim = ConfigLimits.headDim
        s.latentAttention = LatentAttention(
            queryRank: try read.optionalInt("q_lora_rank", in: ConfigLimits.rank),
            keyValueRank: try read.int("kv_lora_rank", in: ConfigLimits.rank),
            noPositionHeadDim: try read.int("qk_nope_head_dim", in: dim), ropeHeadDim: try read.int("qk_rope_head_dim", in: dim),
            valueHeadDim: try read.int("v_head_dim", in: dim))
        s.latentAttentionWithoutPositions = true
        s.ropeScaling = nil
        if let context = try read.optionalInt("model_max_length", in: ConfigLimits.context) { s.maxPositionEmbeddings = context }
        s.expertIntermediateSize = try read.int("moe_intermediate_size", in: ConfigLimits.feedForwardWidth)
        s.routedExpertCount = try read.int("num_experts", in: ConfigLimits.experts)
        s.expertsPerToken = try read.int("num_experts_per_token", in: ConfigLimits.experts)
        s.sharedExpertCount = try read.optionalInt("num_shared_experts", in: ConfigLimits.sharedExperts) ?? 0
        let layers = s.layerCount
        let firstDense = try read.optionalInt("first_k_dense_replace", in: 0...layers) ?? 1
        s.denseLayers = Set(0..<firstDense)
        if firstDense > 0 { s.intermediateSize = try read.int("intermediate_size", in: ConfigLimits.feedForwardWidth) }
        s.routerScoring = .sigmoid
        s.expertGroupCount = try read.optionalInt("num_expert_group", in: ConfigLimits.experts) ?? 1
        s.expertGroupsUsed = try read.optionalInt("topk_group", in: ConfigLimits.experts) ?? 1
        s.routedScalingFactor = try read.optionalDouble("routed_scaling_factor", in: ConfigLimits.scalingFactor) ?? 1
        s.normalizeTopKProbabilities = try read.optionalBool("moe_renormalize") ?? true
        guard let config = read["linear_attn_config"], config.objectValue != nil else {
            throw .missingField(file: read.file, field: "linear_attn_config")
        }
        let sub = ConfigReader(config: config, file: read.file, prefix: "linear_attn_config.")
        func oneBased(_ key: String) throws(CatalogError) -> Set<Int> {
            guard let list = config[key]?.arrayValue else { throw .missingField(file: read.file, field: "linear_attn_config." + key) }
            var layersSet = Set<Int>()
            for (i, item) in list.enumerated() {
                guard let value = item.intValue, (1...layers).contains(value) else {
                    throw .invalidField(
                        file: read.file, field: "linear_attn_config.\(key)[\(i)]",
                        reason: "\(item.serialized()) is not a layer 1…\(layers)"
                    )
                }
                layersSet.insert(value - 1)
            }
            return layersSet
        }
        let kdaLayers = try oneBased("kda_layers"), fullLayers = try oneBased("full_attn_layers")
        guard kdaLayers.isDisjoint(with: fullLayers), kdaLayers.union(fullLayers).count == layers else {
            throw .inconsistent(
                file: read.file, reason: "linear_attn_config.kda_layers and full_attn_layers must split the \(layers) layers between them")
        }
        s.linearAttention = LinearAttention(
            heads: try sub.int("num_heads", in: ConfigLimits.heads), headDim: try sub.int("head_dim", in: dim),
            convKernel: try sub.optionalInt("short_conv_kernel_size", in: 1...64) ?? 4, layers: kdaLayers)
    }
}
