// DeepSeek-V3 / R1 and the Kimi K2 family: multi-head latent attention (q and kv low-rank, rope/nope split),
// a sigmoid router with a selection bias and group-limited top-k, shared experts, leading dense layers and MTP
// layers after the main ones. GGUF: llama.cpp's `deepseek2` with kv_b split into attn_k_b / attn_v_b
// (LCPP convert_hf_to_gguf.py DeepseekV2Model; formats.md §5.4–5.5).
import TensorFormats

extension ArchitectureTable {
    public static let deepseekV3 = ArchitectureTable(
        architecture: .deepseekV3, modelTypes: ["deepseek_v3", "kimi_k2", "kimi_k25"], ggufArchitecture: "deepseek2",
        isConvertible: true, namePrefixes: HFNames.wrappers,
        checkpointTensors: DeepseekV3.checkpointTensors, fileTensors: DeepseekV3.fileTensors,
        hyperParameters: DeepseekV3.hyperParameters, readConfig: DeepseekV3.readConfig, configFromGGUF: DeepseekV3.configFromGGUF)
}

extension ArchitectureTable {
    /// The compressed-tensors `ignore` list of Kimi K2 Thinking's INT4 release: only routed experts are packed.
    public static let kimiInt4Unquantized = [
        "lm_head", "re:.*self_attn.*", "re:.*shared_experts.*", "re:.*mlp\\.(gate|up|gate_up|down)_proj.*",
    ]
}

enum DeepseekV3 {
    // MARK: Checkpoint

    static func checkpointTensors(_ s: ModelSpec) -> [CheckpointTensor] {
        let a = HFNames.attention, l = HFNames.layer
        var t = CheckpointTensor.leading(s)
        // MTP layers: their own inputs and head first, then a full MoE decoder layer.
        t += [
            CheckpointTensor(.nextTokenPrediction(.embeddingNorm), l + "enorm.weight", .layer(.mtp)) { [$0.hiddenSize] },
            CheckpointTensor(.nextTokenPrediction(.hiddenNorm), l + "hnorm.weight", .layer(.mtp)) { [$0.hiddenSize] },
            CheckpointTensor(.nextTokenPrediction(.projection), l + "eh_proj.weight", .layer(.mtp), linear: true) {
                [$0.hiddenSize, 2 * $0.hiddenSize]
            },
            CheckpointTensor(.nextTokenPrediction(.headNorm), l + "shared_head.norm.weight", .layer(.mtp)) { [$0.hiddenSize] },
            CheckpointTensor(.nextTokenPrediction(.head), l + "shared_head.head.weight", .layer(.mtp)) {
                [$0.vocabularySize, $0.hiddenSize]
            },
            CheckpointTensor(.nextTokenPrediction(.embedding), l + "embed_tokens.weight", .layer(.mtp)) {
                [$0.vocabularySize, $0.hiddenSize]
            },
        ]
        t.append(.attentionNorm(.all))
        if s.latentAttention?.queryRank != nil {
            t += [
                CheckpointTensor(.attention(.queryA), a + "q_a_proj.weight", .layer(.all), linear: true) {
                    [queryRank($0), $0.hiddenSize]
                },
                CheckpointTensor(.attention(.queryANorm), a + "q_a_layernorm.weight", .layer(.all)) { [queryRank($0)] },
                CheckpointTensor(.attention(.queryB), a + "q_b_proj.weight", .layer(.all), linear: true) {
                    [queryWidth($0), queryRank($0)]
                },
            ]
        } else {
            t.append(
                CheckpointTensor(.attention(.query), a + "q_proj.weight", .layer(.all), linear: true) { [queryWidth($0), $0.hiddenSize] })
        }
        t += [
            CheckpointTensor(.attention(.keyValueA), a + "kv_a_proj_with_mqa.weight", .layer(.all), linear: true) {
                [mla($0).keyValueRank + mla($0).ropeHeadDim, $0.hiddenSize]
            },
            CheckpointTensor(.attention(.keyValueANorm), a + "kv_a_layernorm.weight", .layer(.all)) { [mla($0).keyValueRank] },
            CheckpointTensor(.attention(.keyValueB), a + "kv_b_proj.weight", .layer(.all), linear: true) {
                [$0.headCount * (mla($0).noPositionHeadDim + mla($0).valueHeadDim), mla($0).keyValueRank]
            },
            CheckpointTensor(.attention(.output), a + "o_proj.weight", .layer(.all), linear: true) {
                [$0.hiddenSize, $0.headCount * mla($0).valueHeadDim]
            },
            .feedForwardNorm(.all),
        ]
        t += CheckpointTensor.sigmoidRoutedFeedForward(s)
        return t + CheckpointTensor.trailing(s)
    }

    static func mla(_ s: ModelSpec) -> LatentAttention {
        s.latentAttention ?? LatentAttention(queryRank: nil, keyValueRank: 0, noPositionHeadDim: 0, ropeHeadDim: 0, valueHeadDim: 0)
    }

    static func queryRank(_ s: ModelSpec) -> Int { mla(s).queryRank ?? 0 }
    static func queryWidth(_ s: ModelSpec) -> Int { s.headCount * (mla(s).noPositionHeadDim + mla(s).ropeHeadDim) }

    // MARK: GGUF (llama.cpp's deepseek2 drops the MTP layers; deepseek32 keeps them: `keepingMTP`)

    static func fileTensors(_ s: ModelSpec) -> [FileTensor] { fileTensors(s, keepingMTP: false) }

    static func fileTensors(_ s: ModelSpec, keepingMTP: Bool) -> [FileTensor] {
        let b = GGUFNames.block
        let layers: LayerKinds = keepingMTP ? .all : .main, moe: LayerKinds = keepingMTP ? [.moe, .mtp] : .moe
        var t = FileTensor.leading()
        t.append(.attentionNorm(layers))
        if s.latentAttention?.queryRank != nil {
            t += [
                FileTensor(.attention(.queryA), b + "attn_q_a.weight", .layer(layers)) { [$0.hiddenSize, queryRank($0)] },
                FileTensor(.attention(.queryANorm), b + "attn_q_a_norm.weight", .layer(layers)) { [queryRank($0)] },
                FileTensor(.attention(.queryB), b + "attn_q_b.weight", .layer(layers)) { [queryRank($0), queryWidth($0)] },
            ]
        } else {
            t.append(FileTensor(.attention(.query), b + "attn_q.weight", .layer(layers)) { [$0.hiddenSize, queryWidth($0)] })
        }
        t += [
            FileTensor(.attention(.keyValueA), b + "attn_kv_a_mqa.weight", .layer(layers)) {
                [$0.hiddenSize, mla($0).keyValueRank + mla($0).ropeHeadDim]
            },
            FileTensor(.attention(.keyValueANorm), b + "attn_kv_a_norm.weight", .layer(layers)) { [mla($0).keyValueRank] },
            FileTensor(.attention(.keyB), b + "attn_k_b.weight", .layer(layers), from: .keyFromKVB(.attention(.keyValueB))) {
                [mla($0).noPositionHeadDim, mla($0).keyValueRank, $0.headCount]
            },
            FileTensor(.attention(.valueB), b + "attn_v_b.weight", .layer(layers), from: .valueFromKVB(.attention(.keyValueB))) {
                [mla($0).keyValueRank, mla($0).valueHeadDim, $0.headCount]
            },
            FileTensor(.attention(.output), b + "attn_output.weight", .layer(layers)) {
                [$0.headCount * mla($0).valueHeadDim, $0.hiddenSize]
            },
            .feedForwardNorm(layers),
        ]
        t += FileTensor.denseFeedForward(.dense)
        t += [.router(moe), .routerBias(moe)]
        t += FileTensor.stackedExperts(moe)
        if s.sharedExpertCount > 0 { t += FileTensor.sharedExperts(moe) }
        if keepingMTP { t += nextTokenPredictionFileTensors() }
        return t + FileTensor.trailing()
    }

    /// The MTP layer's own tensors as llama.cpp's deepseek32 / glm-dsa converters write them (`blk.N.nextn.*`).
    static func nextTokenPredictionFileTensors() -> [FileTensor] {
        let n = GGUFNames.block + "nextn."
        return [
            FileTensor(.nextTokenPrediction(.projection), n + "eh_proj.weight", .layer(.mtp)) { [2 * $0.hiddenSize, $0.hiddenSize] },
            FileTensor(.nextTokenPrediction(.embedding), n + "embed_tokens.weight", .layer(.mtp)) { [$0.hiddenSize, $0.vocabularySize] },
            FileTensor(.nextTokenPrediction(.embeddingNorm), n + "enorm.weight", .layer(.mtp)) { [$0.hiddenSize] },
            FileTensor(.nextTokenPrediction(.hiddenNorm), n + "hnorm.weight", .layer(.mtp)) { [$0.hiddenSize] },
            FileTensor(.nextTokenPrediction(.head), n + "shared_head_head.weight", .layer(.mtp)) { [$0.hiddenSize, $0.vocabularySize] },
            FileTensor(.nextTokenPrediction(.headNorm), n + "shared_head_norm.weight", .layer(.mtp)) { [$0.hiddenSize] },
        ]
    }

    // MARK: GGUF keys

    static func hyperParameters(_ s: ModelSpec) -> [(ModelKey, GGUFValue)] { hyperParameters(s, keepingMTP: false) }

    static func hyperParameters(_ s: ModelSpec, keepingMTP: Bool) -> [(ModelKey, GGUFValue)] {
        var kv = ArchitectureTable.commonHyperParameters(
            s, blocks: s.layerCount + (keepingMTP ? s.nextTokenPredictionLayers : 0), feedForward: s.intermediateSize,
            writesVocabularySize: true)
        guard let mla = s.latentAttention else { return kv }
        kv += [
            (.expertGroupCount, .uint32(UInt32(s.expertGroupCount))),
            (.expertGroupUsedCount, .uint32(UInt32(s.expertGroupsUsed))),
            (.keyLength, .uint32(UInt32(mla.keyValueRank + mla.ropeHeadDim))),
            (.valueLength, .uint32(UInt32(mla.keyValueRank))),
            (.leadingDenseBlockCount, .uint32(UInt32((0..<s.layerCount).prefix { !s.isMoELayer($0) }.count))),
        ]
        if let rank = mla.queryRank { kv.append((.queryLoRARank, .uint32(UInt32(rank)))) }
        kv += [
            (.keyValueLoRARank, .uint32(UInt32(mla.keyValueRank))),
            (.keyLengthMLA, .uint32(UInt32(mla.noPositionHeadDim + mla.ropeHeadDim))),
            (.valueLengthMLA, .uint32(UInt32(mla.valueHeadDim))),
            (.expertFeedForwardLength, .uint32(UInt32(s.expertIntermediateSize))),
            (.expertSharedCount, .uint32(UInt32(s.sharedExpertCount))),
            (.expertWeightsScale, .float32(Float(s.routedScalingFactor))),
        ]
        if s.normalizeTopKProbabilities { kv.append((.expertWeightsNorm, .bool(true))) }
        // 1 softmax, 2 sigmoid: written always, since the loader's default (softmax) is wrong for V3/Kimi.
        kv.append((.expertGatingFunction, .uint32(s.routerScoring == .sigmoid ? 2 : 1)))
        kv.append((.ropeDimensionCount, .uint32(UInt32(mla.ropeHeadDim))))
        if let scaling = s.ropeScaling, scaling.type == "yarn" {
            kv.append((.yarnLogMultiplier, .float32(Float(0.1 * (scaling.mscaleAllDim ?? 1)))))
        }
        return kv
    }

    static func configFromGGUF(_ h: GGUFHeaderReader) throws(CatalogError) -> [(String, JSONValue)] {
        let rope = try h.required(.ropeDimensionCount)
        // GGUFs from before llama.cpp's MLA split state only key_length / value_length (nope + rope, v).
        guard let keyMLA = h.int(.keyLengthMLA) ?? h.int(.keyLength) else {
            throw .missingField(file: h.file.path, field: ModelKey.keyLengthMLA.key(h.architecture).rawValue)
        }
        var config: [(String, JSONValue)] = [
            ("model_type", "deepseek_v3"), ("num_key_value_heads", .integer(Int64(try h.required(.headCount)))),
        ]
        func add(_ key: String, _ value: Int?) { if let value { config.append((key, .integer(Int64(value)))) } }
        add("q_lora_rank", h.int(.queryLoRARank))
        add("kv_lora_rank", try h.required(.keyValueLoRARank))
        add("qk_rope_head_dim", rope)
        add("qk_nope_head_dim", keyMLA - rope)
        add("v_head_dim", h.int(.valueLengthMLA) ?? h.int(.valueLength))
        if let gating = h.int(.expertGatingFunction) { config.append(("scoring_func", gating == 1 ? "softmax" : "sigmoid")) }
        return config + ArchitectureTable.deepseekStyleRouting(h)
    }

    // MARK: config.json

    static func readConfig(_ s: inout ModelSpec, _ read: ConfigReader) throws(CatalogError) {
        let dim = ConfigLimits.headDim
        s.latentAttention = LatentAttention(
            queryRank: try read.optionalInt("q_lora_rank", in: ConfigLimits.rank),
            keyValueRank: try read.int("kv_lora_rank", in: ConfigLimits.rank),
            noPositionHeadDim: try read.int("qk_nope_head_dim", in: dim),
            ropeHeadDim: try read.int("qk_rope_head_dim", in: dim),
            valueHeadDim: try read.int("v_head_dim", in: dim))
        s.expertIntermediateSize = try read.int("moe_intermediate_size", in: ConfigLimits.feedForwardWidth)
        s.routedExpertCount = try read.int("n_routed_experts", in: ConfigLimits.experts)
        s.sharedExpertCount = try read.optionalInt("n_shared_experts", in: ConfigLimits.sharedExperts) ?? 0
        s.expertsPerToken = try read.int("num_experts_per_tok", in: ConfigLimits.experts)
        let layers = s.layerCount
        let firstDense = try read.optionalInt("first_k_dense_replace", in: 0...layers) ?? 0
        let frequency = try read.optionalInt("moe_layer_freq", in: 1...layers) ?? 1
        s.denseLayers = Set((0..<layers).filter { $0 < firstDense || $0 % frequency != 0 })
        if s.denseLayers.count > 0 { s.intermediateSize = try read.int("intermediate_size", in: ConfigLimits.feedForwardWidth) }
        s.routerScoring =
            RouterScoring(rawValue: try read.optionalChoice("scoring_func", RouterScoring.allCases.map(\.rawValue)) ?? "sigmoid")
            ?? .sigmoid
        s.expertGroupCount = try read.optionalInt("n_group", in: ConfigLimits.experts) ?? 1
        s.expertGroupsUsed = try read.optionalInt("topk_group", in: ConfigLimits.experts) ?? 1
        s.routedScalingFactor = try read.optionalDouble("routed_scaling_factor", in: ConfigLimits.scalingFactor) ?? 1
        s.normalizeTopKProbabilities = try read.optionalBool("norm_topk_prob") ?? true
        s.nextTokenPredictionLayers = try read.optionalInt("num_nextn_predict_layers", in: ConfigLimits.nextTokenPredictionLayers) ?? 0
        s.ropeInterleave = try read.optionalBool("rope_interleave") ?? true
    }
}
