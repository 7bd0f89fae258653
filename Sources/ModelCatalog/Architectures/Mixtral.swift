// Mixtral: GQA, a softmax top-2 router over experts named w1 (gate) / w3 (up) / w2 (down) under
// `block_sparse_moe`. GGUF: llama.cpp's `llama` with experts, q/k rows rope-permuted (LCPP LlamaModel).
import TensorFormats

extension ArchitectureTable {
    public static let mixtral = ArchitectureTable(
        architecture: .mixtral, modelTypes: ["mixtral"], ggufArchitecture: "llama", isConvertible: true, namePrefixes: [],
        checkpointTensors: Mixtral.checkpointTensors, fileTensors: Mixtral.fileTensors,
        hyperParameters: Mixtral.hyperParameters, readConfig: Mixtral.readConfig, configFromGGUF: Mixtral.configFromGGUF)
}

enum Mixtral {
    static let moe = HFNames.layer + "block_sparse_moe."

    static func checkpointTensors(_ s: ModelSpec) -> [CheckpointTensor] {
        var t = CheckpointTensor.leading(s) + [.attentionNorm(.main)]
        t += CheckpointTensor.groupedQueryAttention(s, .main) + [.feedForwardNorm(.main)]
        t.append(CheckpointTensor(.router, moe + "gate.weight", .layer(.moe)) { [$0.routedExpertCount, $0.hiddenSize] })
        t += CheckpointTensor.swiGLU(
            { .routedExpert($0) }, moe + "experts.{expert}.", .expert(.moe),
            names: [(.gate, "w1"), (.down, "w2"), (.up, "w3")]
        ) { $0.expertIntermediateSize }
        return t + CheckpointTensor.trailing(s)
    }

    static func fileTensors(_ s: ModelSpec) -> [FileTensor] {
        var t = FileTensor.leading() + [.attentionNorm(.main)]
        t += FileTensor.groupedQueryAttention(s, .main, ropePermuted: true) + [.feedForwardNorm(.main)]
        t += [.router(.moe)] + FileTensor.stackedExperts(.moe)
        return t + FileTensor.trailing()
    }

    static func hyperParameters(_ s: ModelSpec) -> [(ModelKey, GGUFValue)] {
        var kv = ArchitectureTable.commonHyperParameters(
            s, blocks: s.layerCount, feedForward: s.expertIntermediateSize, writesVocabularySize: true)
        kv.append((.ropeDimensionCount, .uint32(UInt32(s.headDim))))
        if s.headDimGiven { kv += [(.keyLength, .uint32(UInt32(s.headDim))), (.valueLength, .uint32(UInt32(s.headDim)))] }
        return kv
    }

    static func configFromGGUF(_ h: GGUFHeaderReader) throws(CatalogError) -> [(String, JSONValue)] {
        guard (h.int(.expertCount) ?? 0) > 0 else {
            throw .unsupportedModelType(
                file: h.file.path, modelType: "llama without experts (GGUF \(GGUFKey.architecture))",
                supported: Architecture.allCases.map(\.table.ggufArchitecture))
        }
        var config: [(String, JSONValue)] = [("model_type", "mixtral")]
        func add(_ key: String, _ value: Int?) { if let value { config.append((key, .integer(Int64(value)))) } }
        add("num_key_value_heads", h.int(.headCountKeyValue))
        add("head_dim", h.int(.keyLength))
        add("intermediate_size", h.int(.expertFeedForwardLength) ?? h.int(.feedForwardLength))
        add("num_local_experts", h.int(.expertCount))
        return config
    }

    static func readConfig(_ s: inout ModelSpec, _ read: ConfigReader) throws(CatalogError) {
        // Every layer MoE with a softmax router and no shared experts; `intermediate_size` is the expert width.
        s.expertIntermediateSize = try read.int("intermediate_size", in: ConfigLimits.feedForwardWidth)
        s.routedExpertCount = try read.int("num_local_experts", in: ConfigLimits.experts)
        s.expertsPerToken = try read.int("num_experts_per_tok", in: ConfigLimits.experts)
        s.routerScoring = .softmax
        s.normalizeTopKProbabilities = true
    }
}
