// tokenizer.json (Hugging Face byte-level BPE) → llama.cpp's tokenizer.ggml.* keys: tokens padded to the
// model's vocabulary, token types, merges, special ids, pre-tokenizer name, chat template.
import Foundation
import ModelCatalog
import TensorFormats

/// A tokenizer file that cannot become GGUF keys: the file, what is wrong, and where.
public enum TokenizerMetadataError: Error, Sendable, CustomStringConvertible {
    case invalid(file: String, reason: String)
    public var description: String {
        switch self {
        case let .invalid(file, reason): "\(file): \(reason)"
        }
    }
}

public enum TokenizerMetadata {
    /// Token types llama.cpp uses.
    enum TokenType: Int32 { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    /// Keys for the tokenizer in `directory`, or none (with the reason in `warnings`) when there is no tokenizer file
    /// we read. A tokenizer file that is there but broken is an error naming it. `warnings` also notes a pre-tokenizer
    /// llama.cpp has no name for.
    public static func keys(
        directory: String, spec: ModelSpec, config: JSONValue, warnings: inout [String]
    ) throws -> [(GGUFKey, GGUFValue)] {
        let path = (directory as NSString).appendingPathComponent("tokenizer.json")
        let sentencePiece = (directory as NSString).appendingPathComponent("tokenizer.model")
        let tiktoken = (directory as NSString).appendingPathComponent("tiktoken.model")
        let configPath = (directory as NSString).appendingPathComponent("config.json")
        let tokenizerConfigPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        let tokenizerConfig: JSONValue? = PositionalFile.exists(tokenizerConfigPath) ? try JSONParser.parse(file: tokenizerConfigPath) : nil
        /// A token id from config.json, checked against the model's vocabulary.
        func configID(_ key: String) throws -> GGUFValue? {
            // A list (GLM's eos_token_id [151329, 151336, 151338]) is skipped, as gguf-py's SpecialVocab skips it: the
            // tokenizer's own files name the token instead.
            guard let value = config[key], !value.isNull, value.arrayValue == nil else { return nil }
            guard let id = value.intValue, (0..<spec.vocabularySize).contains(id) else {
                throw TokenizerMetadataError.invalid(
                    file: configPath, reason: "\(key) \(value.serialized()) is not a token id in 0…\(spec.vocabularySize - 1) (vocab_size)")
            }
            return .uint32(UInt32(id))
        }
        guard PositionalFile.exists(path) else {
            if PositionalFile.exists(tiktoken) {
                var keys = try TiktokenVocabulary.keys(
                    directory: directory, vocabularySize: spec.vocabularySize, tokenizerConfig: tokenizerConfig)
                if let bos = try configID("bos_token_id") { keys.append((.beginningOfSequence, bos)) }
                if let eos = try configID("eos_token_id") { keys.append((.endOfSequence, eos)) }
                if let template = tokenizerConfig?["chat_template"]?.stringValue { keys.append((.chatTemplate, .string(template))) }
                return keys
            }
            if PositionalFile.exists(sentencePiece) {
                var keys = try sentencePieceKeys(path: sentencePiece, spec: spec)
                if let bos = try configID("bos_token_id") { keys.append((.beginningOfSequence, bos)) }
                if let eos = try configID("eos_token_id") { keys.append((.endOfSequence, eos)) }
                return keys
            }
            warnings.append(
                "no tokenizer.json or tokenizer.model in \(directory): the GGUF carries no tokenizer (llama.cpp needs one to run)")
            return []
        }
        let root = try JSONParser.parse(file: path)
        guard let model = root["model"], model["type"]?.stringValue == "BPE", let vocab = model["vocab"]?.objectValue else {
            warnings.append("\(path): only byte-level BPE tokenizers are converted so far; no tokenizer written")
            return []
        }
        guard !vocab.isEmpty else { throw TokenizerMetadataError.invalid(file: path, reason: "model.vocab is empty") }
        func checked(_ id: JSONValue?, _ what: String) throws -> Int {
            guard let id = id?.intValue, (0..<spec.vocabularySize).contains(id) else {
                throw TokenizerMetadataError.invalid(
                    file: path,
                    reason: "\(what) has id \(id?.serialized() ?? "(none)"), not in 0…\(spec.vocabularySize - 1) "
                        + "(the model's vocab_size in config.json)")
            }
            return id
        }
        var byID: [Int: String] = [:]
        for (token, id) in vocab.pairs {
            let id = try checked(id, "token \"\(token)\"")
            if let other = byID[id] {
                throw TokenizerMetadataError.invalid(
                    file: path, reason: "model.vocab: \"\(other)\" and \"\(token)\" both have id \(id); each id names one token")
            }
            byID[id] = token
        }
        var special: Set<Int> = []
        for added in root["added_tokens"]?.arrayValue ?? [] {
            guard let content = added["content"]?.stringValue, !content.isEmpty else {
                throw TokenizerMetadataError.invalid(file: path, reason: "an added token has no content")
            }
            let id = try checked(added["id"], "added token \"\(content)\"")
            byID[id] = content
            if added["special"]?.boolValue ?? false { special.insert(id) }
        }
        var tokens: [GGUFValue] = [], types: [GGUFValue] = []
        tokens.reserveCapacity(spec.vocabularySize)
        for id in 0..<spec.vocabularySize {
            if let token = byID[id] {
                tokens.append(.string(token))
                types.append(.int32((special.contains(id) ? TokenType.control : TokenType.normal).rawValue))
            } else {
                tokens.append(.string("[PAD\(id)]"))
                types.append(.int32(TokenType.unused.rawValue))
            }
        }
        guard let mergeList = model["merges"]?.arrayValue ?? (model["merges"] == nil ? [] : nil) else {
            throw TokenizerMetadataError.invalid(file: path, reason: "model.merges is not an array")
        }
        let merges: [GGUFValue] = try mergeList.enumerated().map { i, merge in
            if let text = merge.stringValue { return .string(text) }
            if let pair = merge.arrayValue?.compactMap(\.stringValue), pair.count == 2 { return .string(pair[0] + " " + pair[1]) }
            throw TokenizerMetadataError.invalid(file: path, reason: "model.merges[\(i)] is not \"a b\" or [a, b]")
        }
        var keys: [(GGUFKey, GGUFValue)] = [
            (.tokenizerModel, .string("gpt2")),
            (.tokenizerPre, .string(preTokenizerName(root["pre_tokenizer"], spec: spec, warnings: &warnings))),
            (.tokens, .array(.string, tokens)),
            (.tokenTypes, .array(.int32, types)),
            (.merges, .array(.string, merges)),
        ]
        func id(of name: String, configKey: String) throws -> GGUFValue? {
            if let id = try configID(configKey) { return id }
            guard let content = tokenizerConfig?[name]?.stringValue ?? tokenizerConfig?[name]?["content"]?.stringValue else { return nil }
            return byID.first { $0.value == content }.map { .uint32(UInt32($0.key)) }
        }
        if let bos = try id(of: "bos_token", configKey: "bos_token_id") { keys.append((.beginningOfSequence, bos)) }
        if let eos = try id(of: "eos_token", configKey: "eos_token_id") { keys.append((.endOfSequence, eos)) }
        if let pad = try id(of: "pad_token", configKey: "pad_token_id") { keys.append((.padding, pad)) }
        // The family's specials by their text, where the tokenizer has them and nothing set the key yet.
        for (key, token) in spec.tensorLayout.table.namedSpecialTokens where !keys.contains(where: { $0.0 == key }) {
            if let id = byID.first(where: { $0.value == token })?.key { keys.append((key, .uint32(UInt32(id)))) }
        }
        keys.append((.addBeginningOfSequence, .bool(tokenizerConfig?["add_bos_token"]?.boolValue ?? false)))
        keys.append((.addEndOfSequence, .bool(tokenizerConfig?["add_eos_token"]?.boolValue ?? false)))
        if let template = tokenizerConfig?["chat_template"]?.stringValue { keys.append((.chatTemplate, .string(template))) }
        return keys
    }

    /// SentencePiece (`tokenizer.model`, as Mixtral ships): llama.cpp's "llama" tokenizer with scores; the
    /// vocabulary padded to the model's with `[PAD<i>]` pieces (score −1000, unused).
    static func sentencePieceKeys(path: String, spec: ModelSpec) throws -> [(GGUFKey, GGUFValue)] {
        let model = try SentencePieceModel(path: path)
        var tokens = model.pieces.map { GGUFValue.string($0.text) }
        var scores = model.pieces.map { GGUFValue.float32($0.score) }
        var types = model.pieces.map { GGUFValue.int32($0.type.rawValue) }
        for id in model.pieces.count..<max(spec.vocabularySize, model.pieces.count) {
            tokens.append(.string("[PAD\(id)]"))
            scores.append(.float32(-1000))
            types.append(.int32(TokenType.unused.rawValue))
        }
        guard model.pieces.count <= spec.vocabularySize else {
            throw TokenizerMetadataError.invalid(
                file: path, reason: "\(model.pieces.count) pieces, more than the model's vocab_size \(spec.vocabularySize)")
        }
        return [
            (.tokenizerModel, .string("llama")), (.tokenizerPre, .string("default")),
            (.tokens, .array(.string, tokens)), (.scores, .array(.float32, scores)),
            (.tokenTypes, .array(.int32, types)),
        ]
    }

    /// llama.cpp names pre-tokenizers by hashing a test string's tokens; without running the tokenizer we
    /// recognise the plain GPT-2 byte-level one and otherwise take the model family's known name.
    static func preTokenizerName(_ pre: JSONValue?, spec: ModelSpec, warnings: inout [String]) -> String {
        if pre?["type"]?.stringValue == "ByteLevel", pre?["use_regex"]?.boolValue ?? true { return "gpt-2" }
        switch spec.modelType {
        case "deepseek_v3": return "deepseek-v3"
        case "kimi_k2", "kimi_k25": return "kimi-k2"
        case "qwen3_moe": return "qwen2"
        default:
            warnings.append(
                "pre-tokenizer of model_type \(spec.modelType) has no llama.cpp name; wrote \"gpt-2\" (the closest standard one)")
            return "gpt-2"
        }
    }
}
