// GGUF metadata keys, declared once (as gguf-py's constants.py `Keys` does): the writers and every reader name
// keys through this vocabulary, never through string literals of their own. Also llama.cpp's split-file names.
import Foundation

/// A GGUF metadata key.
public struct GGUFKey: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }
    public var description: String { rawValue }

    // MARK: general.*
    public static let architecture: GGUFKey = "general.architecture"
    public static let type: GGUFKey = "general.type"
    public static let name: GGUFKey = "general.name"
    public static let fileType: GGUFKey = "general.file_type"
    public static let quantizationVersion: GGUFKey = "general.quantization_version"
    public static let alignment: GGUFKey = "general.alignment"

    // MARK: tokenizer.*
    public static let tokenizerModel: GGUFKey = "tokenizer.ggml.model"
    public static let tokenizerPre: GGUFKey = "tokenizer.ggml.pre"
    public static let tokens: GGUFKey = "tokenizer.ggml.tokens"
    public static let tokenTypes: GGUFKey = "tokenizer.ggml.token_type"
    public static let scores: GGUFKey = "tokenizer.ggml.scores"
    public static let merges: GGUFKey = "tokenizer.ggml.merges"
    public static let beginningOfSequence: GGUFKey = "tokenizer.ggml.bos_token_id"
    public static let endOfSequence: GGUFKey = "tokenizer.ggml.eos_token_id"
    public static let padding: GGUFKey = "tokenizer.ggml.padding_token_id"
    public static let unknownToken: GGUFKey = "tokenizer.ggml.unknown_token_id"
    public static let endOfTurn: GGUFKey = "tokenizer.ggml.eot_token_id"
    public static let endOfMessage: GGUFKey = "tokenizer.ggml.eom_token_id"
    public static let addBeginningOfSequence: GGUFKey = "tokenizer.ggml.add_bos_token"
    public static let addEndOfSequence: GGUFKey = "tokenizer.ggml.add_eos_token"
    public static let chatTemplate: GGUFKey = "tokenizer.chat_template"

    // MARK: split.* (llama.cpp's multi-file GGUF)
    public static let splitNumber: GGUFKey = "split.no"
    public static let splitCount: GGUFKey = "split.count"
    public static let splitTensorCount: GGUFKey = "split.tensors.count"

    // MARK: quantize.imatrix.* (what llama-quantize records about the imatrix it used)
    public static let quantizeImatrixFile: GGUFKey = "quantize.imatrix.file"
    public static let quantizeImatrixDataset: GGUFKey = "quantize.imatrix.dataset"
    public static let quantizeImatrixEntries: GGUFKey = "quantize.imatrix.entries_count"
    public static let quantizeImatrixChunks: GGUFKey = "quantize.imatrix.chunks_count"

    // MARK: imatrix.* (llama-imatrix's own files)
    public static let imatrixDatasets: GGUFKey = "imatrix.datasets"
    public static let imatrixChunkCount: GGUFKey = "imatrix.chunk_count"
    public static let imatrixChunkSize: GGUFKey = "imatrix.chunk_size"

    /// `general.type` of an importance matrix.
    public static let imatrixType = "imatrix"
}

/// Hyper-parameter keys, which llama.cpp scopes by architecture: `ModelKey.blockCount.key("deepseek2")` is
/// `deepseek2.block_count`.
public enum ModelKey: String, Sendable, CaseIterable {
    case blockCount = "block_count"
    case contextLength = "context_length"
    case embeddingLength = "embedding_length"
    case feedForwardLength = "feed_forward_length"
    case vocabularySize = "vocab_size"
    case headCount = "attention.head_count"
    case headCountKeyValue = "attention.head_count_kv"
    case keyLength = "attention.key_length"
    case valueLength = "attention.value_length"
    case layerNormRMSEpsilon = "attention.layer_norm_rms_epsilon"
    case queryLoRARank = "attention.q_lora_rank"
    case keyValueLoRARank = "attention.kv_lora_rank"
    case keyLengthMLA = "attention.key_length_mla"
    /// DeepSeek-V3.2 / GLM-5 lightning indexer.
    case indexerHeadCount = "attention.indexer.head_count"
    case indexerKeyLength = "attention.indexer.key_length"
    case indexerTopK = "attention.indexer.top_k"
    case indexerTypes = "attention.indexer.types"
    /// Kimi-Linear's KDA layers.
    case ssmConvolutionKernel = "ssm.conv_kernel"
    case kdaHeadDim = "kda.head_dim"
    case valueLengthMLA = "attention.value_length_mla"
    case slidingWindow = "attention.sliding_window"
    case ropeFrequencyBase = "rope.freq_base"
    case ropeDimensionCount = "rope.dimension_count"
    case ropeScalingType = "rope.scaling.type"
    case ropeScalingFactor = "rope.scaling.factor"
    case ropeScalingOriginalContext = "rope.scaling.original_context_length"
    case yarnBetaFast = "rope.scaling.yarn_beta_fast"
    case yarnBetaSlow = "rope.scaling.yarn_beta_slow"
    case yarnLogMultiplier = "rope.scaling.yarn_log_multiplier"
    case expertCount = "expert_count"
    case expertUsedCount = "expert_used_count"
    case expertSharedCount = "expert_shared_count"
    case expertFeedForwardLength = "expert_feed_forward_length"
    case expertGroupCount = "expert_group_count"
    case expertGroupUsedCount = "expert_group_used_count"
    case expertWeightsScale = "expert_weights_scale"
    case expertWeightsNorm = "expert_weights_norm"
    case expertGatingFunction = "expert_gating_func"
    case leadingDenseBlockCount = "leading_dense_block_count"
    case nextNPredictLayers = "nextn_predict_layers"

    /// The full key for `architecture` (llama.cpp's `general.architecture` value).
    public func key(_ architecture: String) -> GGUFKey { GGUFKey(rawValue: architecture + "." + rawValue) }
}

/// llama.cpp's names for the files of a split GGUF (`gguf-split`): `STEM-00001-of-00003.gguf` …
public enum GGUFSplitName {
    /// File `number` (1-based) of `count` for an output named `output` (`.gguf` dropped from the stem).
    public static func path(_ output: String, number: Int, of count: Int) -> String {
        stem(output) + String(format: "-%05d-of-%05d.gguf", number, count)
    }

    /// The part of `output` before `.gguf`.
    public static func stem(_ output: String) -> String { output.hasSuffix(".gguf") ? String(output.dropLast(5)) : output }

    /// For the first file of a set (`…-00001-of-0000N.gguf`), the set's stem; nil for any other name.
    public static func stem(ofFirst path: String, count: Int) -> String? {
        let suffix = String(format: "-%05d-of-%05d.gguf", 1, count)
        return path.hasSuffix(suffix) ? String(path.dropLast(suffix.count)) : nil
    }
}
