// Qwen3-MoE: GQA with per-head q/k RMS norms, a softmax top-k router, no shared experts; `mlp_only_layers` and
// `decoder_sparse_step` make some layers dense. GGUF: llama.cpp's `qwen3moe` (LCPP Qwen3MoeModel).
import TensorFormats

extension ArchitectureTable {
    public static let qwen3Moe = ArchitectureTable(
        architecture: .qwen3Moe, modelTypes: ["qwen3_moe"], ggufArchitecture: "qwen3moe", isConvertible: true, namePrefixes: [],
        checkpointTensors: Qwen3Moe.checkpointTensors, fileTensors: Qwen3Moe.fileTensors,
        hyperParameters: Qwen3Moe.hyperParameters, readConfig: Qwen3Moe.readConfig, configFromGGUF: Qwen3Moe.configFromGGUF)
}

enum Qwen3Moe {
    static func checkpointTensors(_ s: ModelSpec) -> [CheckpointTensor] {
        let mlp = HFNames.mlp
        var t = CheckpointTensor.leading(s) + [.attentionNorm(.main)]
        t += CheckpointTensor.groupedQueryAttention(s, .main) + CheckpointTensor.queryKeyNorms(.main) + [.feedForwardNorm(.main)]
        t += CheckpointTensor.swiGLU({ .denseFeedForward($0) }, mlp, .layer(.dense)) { $0.intermediateSize }
        t.append(CheckpointTensor(.router, mlp + "gate.weight", .layer(.moe)) { [$0.routedExpertCount, $0.hiddenSize] })
        t += CheckpointTensor.swiGLU({ .routedExpert($0) }, mlp + "experts.{expert}.", .expert(.moe)) { $0.expertIntermediateSize }
        t += CheckpointTensor.fusedExperts(mlp, .moe)
        return t + CheckpointTensor.trailing(s)
    }

    static func fileTensors(_ s: ModelSpec) -> [FileTensor] {
        var t = FileTensor.leading() + [.attentionNorm(.main)]
        t += FileTensor.groupedQueryAttention(s, .main) + FileTensor.queryKeyNorms(.main) + [.feedForwardNorm(.main)]
        t += FileTensor.denseFeedForward(.dense) + [.router(.moe)] + FileTensor.stackedExperts(.moe)
        return t + FileTensor.trailing()
    }

    static func hyperParameters(_ s: ModelSpec) -> [(ModelKey, GGUFValue)] {
        // llama.cpp's converter writes vocab_size for deepseek2 and llama, not for qwen3moe.
        ArchitectureTable.commonHyperParameters(s, blocks: s.layerCount, feedForward: s.intermediateSize, writesVocabularySize: false) + [
            (.keyLength, .uint32(UInt32(s.headDim))),
            (.valueLength, .uint32(UInt32(s.headDim))),
            (.expertFeedForwardLength, .uint32(UInt32(s.expertIntermediateSize))),
        ]
    }

    static func configFromGGUF(_ h: GGUFHeaderReader) throws(CatalogError) -> [(String, JSONValue)] {
        var config: [(String, JSONValue)] = [("model_type", "qwen3_moe")]
        func add(_ key: String, _ value: Int?) { if let value { config.append((key, .integer(Int64(value)))) } }
        add("num_key_value_heads", h.int(.headCountKeyValue))
        add("head_dim", h.int(.keyLength))
        add("intermediate_size", h.int(.feedForwardLength))
        add("moe_intermediate_size", h.int(.expertFeedForwardLength))
        add("num_experts", h.int(.expertCount))
        return config
    }

    static func readConfig(_ s: inout ModelSpec, _ read: ConfigReader) throws(CatalogError) {
        s.expertIntermediateSize = try read.int("moe_intermediate_size", in: ConfigLimits.feedForwardWidth)
        if let experts = try read.optionalInt("num_experts", in: ConfigLimits.experts) {
            s.routedExpertCount = experts
        } else {
            s.routedExpertCount = try read.int("num_local_experts", in: ConfigLimits.experts)
        }
        s.expertsPerToken = try read.int("num_experts_per_tok", in: ConfigLimits.experts)
        let layers = s.layerCount
        let step = try read.optionalInt("decoder_sparse_step", in: 1...layers) ?? 1
        let mlpOnly = try read.optionalLayerList("mlp_only_layers", layers: layers) ?? []
        s.denseLayers = Set((0..<layers).filter { mlpOnly.contains($0) || ($0 + 1) % step != 0 })
        if !s.denseLayers.isEmpty { s.intermediateSize = try read.int("intermediate_size", in: ConfigLimits.feedForwardWidth) }
        s.routerScoring = .softmax
        s.normalizeTopKProbabilities = try read.optionalBool("norm_topk_prob") ?? false
        s.queryKeyNorm = true
    }
}
