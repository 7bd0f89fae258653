// DeepSeek-V3.2: DeepSeek-V3's block plus a lightning indexer in every layer's attention (DSA): from the compressed
// query and the layer input it scores every earlier key, and each query attends to the `index_topk` best only.
// Indexer tensors (transformers `self_attn.indexer.*`): wq_b [heads·dim, q_lora_rank], wk [dim, hidden], k_norm
// (LayerNorm, weight and bias) [dim], weights_proj [heads, hidden]. The main attention's rope is always interleaved.
// GGUF: llama.cpp's `deepseek32` (LCPP conversion/deepseek.py `DeepseekV32Model`): deepseek2's tensors and keys plus
// `blk.N.indexer.*` and `attention.indexer.*`.
import TensorFormats

extension ArchitectureTable {
    public static let deepseekV32 = ArchitectureTable(
        architecture: .deepseekV32, modelTypes: ["deepseek_v32"], ggufArchitecture: "deepseek32", isConvertible: true,
        namePrefixes: HFNames.wrappers, checkpointTensors: DeepseekV32.checkpointTensors, fileTensors: DeepseekV32.fileTensors,
        hyperParameters: DeepseekV32.hyperParameters, readConfig: DeepseekV32.readConfig, configFromGGUF: DeepseekV32.configFromGGUF)
}

enum DeepseekV32 {
    static func indexer(_ s: ModelSpec) -> SparseIndexer {
        s.indexer ?? SparseIndexer(heads: 0, headDim: 0, topK: 0, interleavedRope: false)
    }

    static func checkpointTensors(_ s: ModelSpec) -> [CheckpointTensor] {
        let i = HFNames.attention + "indexer."
        return DeepseekV3.checkpointTensors(s) + [
            CheckpointTensor(.attention(.indexerQueryB), i + "wq_b.weight", .layer(.all), linear: true) {
                [indexer($0).heads * indexer($0).headDim, DeepseekV3.queryRank($0)]
            },
            CheckpointTensor(.attention(.indexerKey), i + "wk.weight", .layer(.all), linear: true) {
                [indexer($0).headDim, $0.hiddenSize]
            },
            CheckpointTensor(.attention(.indexerKeyNorm), i + "k_norm.weight", .layer(.all)) { [indexer($0).headDim] },
            CheckpointTensor(.attention(.indexerKeyNorm), i + "k_norm.bias", .layer(.all), part: .bias) { [indexer($0).headDim] },
            CheckpointTensor(.attention(.indexerWeights), i + "weights_proj.weight", .layer(.all), linear: true) {
                [indexer($0).heads, $0.hiddenSize]
            },
        ]
    }

    static func fileTensors(_ s: ModelSpec) -> [FileTensor] {
        let i = GGUFNames.block + "indexer."
        return DeepseekV3.fileTensors(s, keepingMTP: true) + [
            FileTensor(.attention(.indexerKeyNorm), i + "k_norm.weight", .layer(.all)) { [indexer($0).headDim] },
            FileTensor(.attention(.indexerKeyNorm), i + "k_norm.bias", .layer(.all), part: .bias) { [indexer($0).headDim] },
            FileTensor(.attention(.indexerWeights), i + "proj.weight", .layer(.all)) { [$0.hiddenSize, indexer($0).heads] },
            FileTensor(.attention(.indexerKey), i + "attn_k.weight", .layer(.all)) { [$0.hiddenSize, indexer($0).headDim] },
            FileTensor(.attention(.indexerQueryB), i + "attn_q_b.weight", .layer(.all)) {
                [DeepseekV3.queryRank($0), indexer($0).heads * indexer($0).headDim]
            },
        ]
    }

    static func hyperParameters(_ s: ModelSpec) -> [(ModelKey, GGUFValue)] {
        let index = indexer(s)
        // llama.cpp's deepseek32 keeps the MTP layers as blocks (LCPP conversion/deepseek.py DeepseekV32Model).
        var kv = DeepseekV3.hyperParameters(s, keepingMTP: true)
        if s.nextTokenPredictionLayers > 0 { kv.append((.nextNPredictLayers, .uint32(UInt32(s.nextTokenPredictionLayers)))) }
        return kv + [
            (.indexerHeadCount, .uint32(UInt32(index.heads))), (.indexerKeyLength, .uint32(UInt32(index.headDim))),
            (.indexerTopK, .uint32(UInt32(index.topK))),
        ]
    }

    static func configFromGGUF(_ h: GGUFHeaderReader) throws(CatalogError) -> [(String, JSONValue)] {
        var config = try DeepseekV3.configFromGGUF(h).filter { $0.0 != "model_type" }
        config.insert(("model_type", "deepseek_v32"), at: 0)
        // Its block count includes the MTP layers (a later pair wins over the common one).
        let nextN = h.int(.nextNPredictLayers) ?? 0
        config += [
            ("num_hidden_layers", .integer(Int64(try h.required(.blockCount) - nextN))),
            ("num_nextn_predict_layers", .integer(Int64(nextN))),
        ]
        config += [
            ("index_n_heads", .integer(Int64(try h.required(.indexerHeadCount)))),
            ("index_head_dim", .integer(Int64(try h.required(.indexerKeyLength)))),
            ("index_topk", .integer(Int64(try h.required(.indexerTopK)))),
        ]
        return config
    }

    static func readConfig(_ s: inout ModelSpec, _ read: ConfigReader) throws(CatalogError) {
        try DeepseekV3.readConfig(&s, read)
        // transformers' DeepseekV32 drops `rope_interleave`: the main attention's rope is always interleaved.
        s.ropeInterleave = true
        guard s.latentAttention?.queryRank != nil else {
            throw .invalidField(file: read.file, field: "q_lora_rank", reason: "null; the indexer reads the compressed query")
        }
        let headDim = try read.optionalInt("index_head_dim", in: ConfigLimits.headDim) ?? 128
        guard headDim >= (s.latentAttention?.ropeHeadDim ?? 0) else {
            throw .invalidField(
                file: read.file, field: "index_head_dim", reason: "\(headDim) is smaller than qk_rope_head_dim, which it rotates")
        }
        s.indexer = SparseIndexer(
            heads: try read.optionalInt("index_n_heads", in: ConfigLimits.heads) ?? 64, headDim: headDim,
            topK: try read.optionalInt("index_topk", in: 1...ConfigLimits.context.upperBound) ?? 2048, interleavedRope: false)
    }
}
