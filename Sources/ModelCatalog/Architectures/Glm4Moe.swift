// GLM-4.5 / GLM-4.5-Air: GQA with q/k/v biases, partial rotary and optional q/k norms, a DeepSeek-style sigmoid
// router with a selection bias and one shared expert, leading dense layers, one MTP layer that llama.cpp keeps as
// a block. GGUF: llama.cpp's `glm4moe` (LCPP conversion/glm.py). Inspected, planned, converted and run.
import TensorFormats

extension ArchitectureTable {
    public static let glm4Moe = ArchitectureTable(
        architecture: .glm4Moe, modelTypes: ["glm4_moe"], ggufArchitecture: "glm4moe", isConvertible: true, namePrefixes: [],
        checkpointTensors: Glm4Moe.checkpointTensors, fileTensors: Glm4Moe.fileTensors,
        hyperParameters: Glm4Moe.hyperParameters, readConfig: Glm4Moe.readConfig, configFromGGUF: Glm4Moe.configFromGGUF,
        // llama.cpp's GLM vocabulary step (LCPP conversion/base.py `_set_vocab_glm`): [gMASK] as BOS, <|user|> as end of
        // turn (<|endoftext|> there makes generation endless), <|endoftext|> as unknown, <|observation|> as end of message.
        namedSpecialTokens: glmSpecialTokens)

    /// GLM's chat specials by name (GLM-4.5, GLM-5).
    static let glmSpecialTokens: [(key: GGUFKey, token: String)] = [
        (.beginningOfSequence, "[gMASK]"), (.endOfTurn, "<|user|>"), (.unknownToken, "<|endoftext|>"),
        (.endOfMessage, "<|observation|>"),
    ]
}

enum Glm4Moe {
    static func checkpointTensors(_ s: ModelSpec) -> [CheckpointTensor] {
        let l = HFNames.layer
        var t = CheckpointTensor.leading(s)
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
            .attentionNorm(.all),
        ]
        t += CheckpointTensor.groupedQueryAttention(s, .all)
        if s.queryKeyNorm { t += CheckpointTensor.queryKeyNorms(.all) }
        t.append(.feedForwardNorm(.all))
        t += CheckpointTensor.sigmoidRoutedFeedForward(s)
        return t + CheckpointTensor.trailing(s)
    }

    /// llama.cpp's GLM-4.5 converter keeps the MTP layer as one more block (its experts included).
    static func fileTensors(_ s: ModelSpec) -> [FileTensor] {
        let b = GGUFNames.block
        var t = FileTensor.leading() + [.attentionNorm(.all)]
        t += FileTensor.groupedQueryAttention(s, .all)
        if s.queryKeyNorm { t += FileTensor.queryKeyNorms(.all) }
        t.append(.feedForwardNorm(.all, name: "post_attention_norm.weight"))
        t += FileTensor.denseFeedForward(.dense)
        t += [.router([.moe, .mtp]), .routerBias([.moe, .mtp])] + FileTensor.stackedExperts([.moe, .mtp])
        if s.sharedExpertCount > 0 { t += FileTensor.sharedExperts([.moe, .mtp]) }
        t += [
            FileTensor(.nextTokenPrediction(.projection), b + "nextn.eh_proj.weight", .layer(.mtp)) { [2 * $0.hiddenSize, $0.hiddenSize] },
            FileTensor(.nextTokenPrediction(.embeddingNorm), b + "nextn.enorm.weight", .layer(.mtp)) { [$0.hiddenSize] },
            FileTensor(.nextTokenPrediction(.hiddenNorm), b + "nextn.hnorm.weight", .layer(.mtp)) { [$0.hiddenSize] },
            FileTensor(.nextTokenPrediction(.headNorm), b + "nextn.shared_head_norm.weight", .layer(.mtp)) { [$0.hiddenSize] },
        ]
        return t + FileTensor.trailing()
    }

    static func hyperParameters(_ s: ModelSpec) -> [(ModelKey, GGUFValue)] {
        // GLM-4.5's converter counts its MTP layer as a block (llama.cpp conversion/glm.py).
        ArchitectureTable.commonHyperParameters(
            s, blocks: s.layerCount + s.nextTokenPredictionLayers, feedForward: s.intermediateSize,
            writesVocabularySize: false) + [
                (.keyLength, .uint32(UInt32(s.headDim))),
                (.valueLength, .uint32(UInt32(s.headDim))),
                (.ropeDimensionCount, .uint32(UInt32(Double(s.headDim) * s.partialRotaryFactor))),
                (.expertFeedForwardLength, .uint32(UInt32(s.expertIntermediateSize))),
                (.expertSharedCount, .uint32(UInt32(s.sharedExpertCount))),
                (.leadingDenseBlockCount, .uint32(UInt32(s.denseLayers.count))),
                (.expertGroupCount, .uint32(UInt32(s.expertGroupCount))),
                (.expertGroupUsedCount, .uint32(UInt32(s.expertGroupsUsed))),
                (.expertGatingFunction, .uint32(2)),
                (.expertWeightsScale, .float32(Float(s.routedScalingFactor))),
                (.expertWeightsNorm, .bool(s.normalizeTopKProbabilities)),
                (.nextNPredictLayers, .uint32(UInt32(s.nextTokenPredictionLayers))),
            ]
    }

    static func configFromGGUF(_ h: GGUFHeaderReader) throws(CatalogError) -> [(String, JSONValue)] {
        let nextN = h.int(.nextNPredictLayers) ?? 0
        let heads = try h.required(.headCount)
        var keyLength = try h.required(.embeddingLength) / max(heads, 1)
        if let stated = h.int(.keyLength) { keyLength = stated }
        var config: [(String, JSONValue)] = [
            ("model_type", "glm4_moe"), ("num_hidden_layers", .integer(Int64(try h.required(.blockCount) - nextN))),
        ]
        func add(_ key: String, _ value: Int?) { if let value { config.append((key, .integer(Int64(value)))) } }
        add("num_key_value_heads", h.int(.headCountKeyValue))
        add("head_dim", keyLength)
        add("num_nextn_predict_layers", nextN)
        if let rope = h.int(.ropeDimensionCount) {
            config.append(("partial_rotary_factor", .double(Double(rope) / Double(max(keyLength, 1)))))
        }
        let table = ArchitectureTable.glm4Moe
        let bias = table.fileName(.attention(.query), part: .bias), norm = table.fileName(.attention(.queryNorm))
        config.append(("attention_bias", .bool(bias.map(h.hasTensor) ?? false)))
        config.append(("use_qk_norm", .bool(norm.map(h.hasTensor) ?? false)))
        return config + ArchitectureTable.deepseekStyleRouting(h)
    }

    static func readConfig(_ s: inout ModelSpec, _ read: ConfigReader) throws(CatalogError) {
        s.expertIntermediateSize = try read.int("moe_intermediate_size", in: ConfigLimits.feedForwardWidth)
        s.routedExpertCount = try read.int("n_routed_experts", in: ConfigLimits.experts)
        s.sharedExpertCount = try read.optionalInt("n_shared_experts", in: ConfigLimits.sharedExperts) ?? 0
        s.expertsPerToken = try read.int("num_experts_per_tok", in: ConfigLimits.experts)
        let firstDense = try read.optionalInt("first_k_dense_replace", in: 0...s.layerCount) ?? 0
        s.denseLayers = Set(0..<firstDense)
        if firstDense > 0 { s.intermediateSize = try read.int("intermediate_size", in: ConfigLimits.feedForwardWidth) }
        s.routerScoring = .sigmoid
        s.expertGroupCount = try read.optionalInt("n_group", in: ConfigLimits.experts) ?? 1
        s.expertGroupsUsed = try read.optionalInt("topk_group", in: ConfigLimits.experts) ?? 1
        s.routedScalingFactor = try read.optionalDouble("routed_scaling_factor", in: ConfigLimits.scalingFactor) ?? 1
        s.normalizeTopKProbabilities = try read.optionalBool("norm_topk_prob") ?? true
        s.nextTokenPredictionLayers = try read.optionalInt("num_nextn_predict_layers", in: ConfigLimits.nextTokenPredictionLayers) ?? 0
        s.attentionBias = try read.optionalBool("attention_bias") ?? false
        s.queryKeyNorm = try read.optionalBool("use_qk_norm") ?? false
        // llama.cpp's converter assumes 0.5 when the key is absent (LCPP conversion/glm.py).
        var factor = try read.optionalDouble("partial_rotary_factor", in: 1e-3...1)
        if factor == nil, let parameters = read["rope_parameters"], parameters.objectValue != nil {
            factor = try ConfigReader(config: parameters, file: read.file, prefix: "rope_parameters.").optionalDouble(
                "partial_rotary_factor", in: 1e-3...1)
        }
        s.partialRotaryFactor = factor ?? 0.5
    }
}
