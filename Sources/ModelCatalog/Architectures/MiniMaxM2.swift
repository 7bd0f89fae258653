// MiniMax-M2: GQA with q/k RMS norms over all heads at once (not per head), partial rotary (`rotary_dim` of each
// head), every layer MoE with a sigmoid router and a selection bias (no groups, no shared experts), experts named
// w1 (gate) / w3 (up) / w2 (down) under `block_sparse_moe` as Mixtral's. GGUF: llama.cpp's `minimax-m2`
// (LCPP conversion/minimax.py `MiniMaxM2Model`): experts stacked, q/k not permuted (NeoX rotary).
import TensorFormats

extension ArchitectureTable {
    public static let minimaxM2 = ArchitectureTable(
        architecture: .minimaxM2, modelTypes: ["minimax_m2"], ggufArchitecture: "minimax-m2", isConvertible: true, namePrefixes: [],
        checkpointTensors: MiniMaxM2.checkpointTensors, fileTensors: MiniMaxM2.fileTensors,
        hyperParameters: MiniMaxM2.hyperParameters, readConfig: MiniMaxM2.readConfig, configFromGGUF: MiniMaxM2.configFromGGUF)
}

enum MiniMaxM2 {
    static let moe = HFNames.layer + "block_sparse_moe."

    static func checkpointTensors(_ s: ModelSpec) -> [CheckpointTensor] {
        var t = CheckpointTensor.leading(s) + [.attentionNorm(.main)]
        t += CheckpointTensor.groupedQueryAttention(s, .main)
        t += [
            CheckpointTensor(.attention(.queryNorm), HFNames.attention + "q_norm.weight", .layer(.main)) { normWidth($0, $0.headCount) },
            CheckpointTensor(.attention(.keyNorm), HFNames.attention + "k_norm.weight", .layer(.main)) {
                normWidth($0, $0.keyValueHeadCount)
            },
            .feedForwardNorm(.main),
            CheckpointTensor(.router, moe + "gate.weight", .layer(.moe)) { [$0.routedExpertCount, $0.hiddenSize] },
            CheckpointTensor(.routerBias, moe + "e_score_correction_bias", .layer(.moe), part: .bias) { [$0.routedExpertCount] },
        ]
        t += CheckpointTensor.swiGLU(
            { .routedExpert($0) }, moe + "experts.{expert}.", .expert(.moe), names: [(.gate, "w1"), (.down, "w2"), (.up, "w3")]
        ) { $0.expertIntermediateSize }
        return t + CheckpointTensor.trailing(s)
    }

    static func fileTensors(_ s: ModelSpec) -> [FileTensor] {
        var t = FileTensor.leading() + [.attentionNorm(.main)]
        t += FileTensor.groupedQueryAttention(s, .main)
        t += [
            FileTensor(.attention(.queryNorm), GGUFNames.block + "attn_q_norm.weight", .layer(.main)) { normWidth($0, $0.headCount) },
            FileTensor(.attention(.keyNorm), GGUFNames.block + "attn_k_norm.weight", .layer(.main)) { normWidth($0, $0.keyValueHeadCount) },
            .feedForwardNorm(.main), .router(.moe), .routerBias(.moe),
        ]
        t += FileTensor.stackedExperts(.moe)
        return t + FileTensor.trailing()
    }

    /// q/k norm weights: all heads' width with `qk_norm_type` per_layer (the release), one head's with per_head.
    static func normWidth(_ s: ModelSpec, _ heads: Int) -> [Int] { [s.queryKeyNormAcrossHeads ? heads * s.headDim : s.headDim] }

    static func hyperParameters(_ s: ModelSpec) -> [(ModelKey, GGUFValue)] {
        ArchitectureTable.commonHyperParameters(s, blocks: s.layerCount, feedForward: s.expertIntermediateSize, writesVocabularySize: false)
            + [
                (.keyLength, .uint32(UInt32(s.headDim))),
                (.valueLength, .uint32(UInt32(s.headDim))),
                (.expertFeedForwardLength, .uint32(UInt32(s.expertIntermediateSize))),
                (.ropeDimensionCount, .uint32(UInt32((Double(s.headDim) * s.partialRotaryFactor).rounded()))),
                // Not written by llama.cpp's converter (LCPP conversion/minimax.py), whose loader then has no gating
                // function and aborts in build_moe_ffn; sigmoid is what the model uses.
                (.expertGatingFunction, .uint32(2)),
            ]
    }

    static func configFromGGUF(_ h: GGUFHeaderReader) throws(CatalogError) -> [(String, JSONValue)] {
        var config: [(String, JSONValue)] = [("model_type", "minimax_m2")]
        func add(_ key: String, _ value: Int?) { if let value { config.append((key, .integer(Int64(value)))) } }
        add("num_key_value_heads", h.int(.headCountKeyValue))
        add("head_dim", h.int(.keyLength))
        add("intermediate_size", h.int(.expertFeedForwardLength) ?? h.int(.feedForwardLength))
        add("num_local_experts", h.int(.expertCount))
        add("rotary_dim", h.int(.ropeDimensionCount))
        return config
    }

    static func readConfig(_ s: inout ModelSpec, _ read: ConfigReader) throws(CatalogError) {
        // Every layer MoE; `intermediate_size` is the expert width.
        s.expertIntermediateSize = try read.int("intermediate_size", in: ConfigLimits.feedForwardWidth)
        s.routedExpertCount = try read.int("num_local_experts", in: ConfigLimits.experts)
        s.expertsPerToken = try read.int("num_experts_per_tok", in: ConfigLimits.experts)
        s.routerScoring = .sigmoid
        s.normalizeTopKProbabilities = true
        s.queryKeyNorm = try read.optionalBool("use_qk_norm") ?? true
        switch read["qk_norm_type"]?.stringValue ?? "per_layer" {
        case "per_layer": s.queryKeyNormAcrossHeads = true
        case "per_head": s.queryKeyNormAcrossHeads = false
        case let other: throw .invalidField(file: read.file, field: "qk_norm_type", reason: "\"\(other)\" (expected per_layer or per_head)")
        }
        // Released configs give `rotary_dim`; transformers 5 writes rope_parameters.partial_rotary_factor as well.
        if let rotary = try read.optionalInt("rotary_dim", in: 1...s.headDim) {
            s.partialRotaryFactor = Double(rotary) / Double(s.headDim)
        } else if let parameters = read["rope_parameters"], parameters.objectValue != nil {
            s.partialRotaryFactor =
                try ConfigReader(config: parameters, file: read.file, prefix: "rope_parameters.").optionalDouble(
                    "partial_rotary_factor", in: 1e-3...1) ?? 1
        }
    }
}
