// tokenizer.json (Hugging Face byte-level BPE) → llama.cpp's tokenizer.ggml.* keys: tokens padded to the
// model's vocabulary, token types, merges, special ids, pre-tokenizer name, chat template.
import Foundation
import ModelCatalog
import TensorFormats

public enum TokenizerMetadata {
    /// Token types llama.cpp uses.
    enum TokenType: Int32 { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    /// Keys for the tokenizer in `directory`, or nil (with the reason in `warnings`) when there is none
    /// we can read. `warnings` also notes a pre-tokenizer llama.cpp has no name for.
    public static func keys(directory: String, spec: ModelSpec, config: JSONValue, warnings: inout [String]) throws -> [(String, GGUFValue)] {
        let path = (directory as NSString).appendingPathComponent("tokenizer.json")
        let sentencePiece = (directory as NSString).appendingPathComponent("tokenizer.model")
        let tiktoken = (directory as NSString).appendingPathComponent("tiktoken.model")
        guard let data = FileManager.default.contents(atPath: path) else {
            if FileManager.default.fileExists(atPath: tiktoken) {
                let tokenizerConfig = FileManager.default.contents(atPath: (directory as NSString).appendingPathComponent("tokenizer_config.json"))
                    .flatMap { try? JSONParser.parse([UInt8]($0)) }
                var keys = try TiktokenVocabulary.keys(directory: directory, vocabularySize: spec.vocabularySize, tokenizerConfig: tokenizerConfig)
                if let bos = config["bos_token_id"]?.intValue { keys.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
                if let eos = config["eos_token_id"]?.intValue { keys.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
                if let template = tokenizerConfig?["chat_template"]?.stringValue { keys.append(("tokenizer.chat_template", .string(template))) }
                return keys
            }
            if FileManager.default.fileExists(atPath: sentencePiece) {
                return try sentencePieceKeys(path: sentencePiece, spec: spec, config: config)
            }
            warnings.append("no tokenizer.json or tokenizer.model in \(directory): the GGUF carries no tokenizer (llama.cpp needs one to run)")
            return []
        }
        let root = try JSONParser.parse([UInt8](data))
        guard let model = root["model"], model["type"]?.stringValue == "BPE", let vocab = model["vocab"]?.objectValue else {
            warnings.append("\(path): only byte-level BPE tokenizers are converted so far; no tokenizer written")
            return []
        }
        var byID: [Int: String] = [:]
        for (token, id) in vocab.pairs { if let id = id.intValue { byID[id] = token } }
        var special: Set<Int> = []
        for added in root["added_tokens"]?.arrayValue ?? [] {
            guard let id = added["id"]?.intValue, let content = added["content"]?.stringValue else { continue }
            byID[id] = content
            if added["special"]?.boolValue ?? false { special.insert(id) }
        }
        let count = max(spec.vocabularySize, (byID.keys.max() ?? -1) + 1)
        var tokens: [GGUFValue] = [], types: [GGUFValue] = []
        tokens.reserveCapacity(count)
        for id in 0..<count {
            if let token = byID[id] {
                tokens.append(.string(token))
                types.append(.int32((special.contains(id) ? TokenType.control : TokenType.normal).rawValue))
            } else {
                tokens.append(.string("[PAD\(id)]"))
                types.append(.int32(TokenType.unused.rawValue))
            }
        }
        let merges: [GGUFValue] = (model["merges"]?.arrayValue ?? []).compactMap { merge in
            if let text = merge.stringValue { return .string(text) }
            if let pair = merge.arrayValue?.compactMap(\.stringValue), pair.count == 2 { return .string(pair[0] + " " + pair[1]) }
            return nil
        }
        var keys: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(preTokenizerName(root["pre_tokenizer"], spec: spec, warnings: &warnings))),
            ("tokenizer.ggml.tokens", .array(.string, tokens)),
            ("tokenizer.ggml.token_type", .array(.int32, types)),
            ("tokenizer.ggml.merges", .array(.string, merges)),
        ]
        let tokenizerConfig = FileManager.default.contents(atPath: (directory as NSString).appendingPathComponent("tokenizer_config.json"))
            .flatMap { try? JSONParser.parse([UInt8]($0)) }
        func id(of name: String, configKey: String) -> Int? {
            if let id = config[configKey]?.intValue { return id }
            guard let content = tokenizerConfig?[name]?.stringValue ?? tokenizerConfig?[name]?["content"]?.stringValue else { return nil }
            return byID.first { $0.value == content }?.key
        }
        if let bos = id(of: "bos_token", configKey: "bos_token_id") { keys.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
        if let eos = id(of: "eos_token", configKey: "eos_token_id") { keys.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
        if let pad = id(of: "pad_token", configKey: "pad_token_id") { keys.append(("tokenizer.ggml.padding_token_id", .uint32(UInt32(pad)))) }
        keys.append(("tokenizer.ggml.add_bos_token", .bool(tokenizerConfig?["add_bos_token"]?.boolValue ?? false)))
        keys.append(("tokenizer.ggml.add_eos_token", .bool(tokenizerConfig?["add_eos_token"]?.boolValue ?? false)))
        if let template = tokenizerConfig?["chat_template"]?.stringValue { keys.append(("tokenizer.chat_template", .string(template))) }
        return keys
    }

    /// SentencePiece (`tokenizer.model`, as Mixtral ships): llama.cpp's "llama" tokenizer with scores; the
    /// vocabulary padded to the model's with `[PAD<i>]` pieces (score −1000, unused).
    static func sentencePieceKeys(path: String, spec: ModelSpec, config: JSONValue) throws -> [(String, GGUFValue)] {
        let model = try SentencePieceModel(path: path)
        var tokens = model.pieces.map { GGUFValue.string($0.text) }
        var scores = model.pieces.map { GGUFValue.float32($0.score) }
        var types = model.pieces.map { GGUFValue.int32($0.type.rawValue) }
        for id in model.pieces.count..<max(spec.vocabularySize, model.pieces.count) {
            tokens.append(.string("[PAD\(id)]"))
            scores.append(.float32(-1000))
            types.append(.int32(TokenType.unused.rawValue))
        }
        var keys: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("llama")), ("tokenizer.ggml.pre", .string("default")),
            ("tokenizer.ggml.tokens", .array(.string, tokens)), ("tokenizer.ggml.scores", .array(.float32, scores)),
            ("tokenizer.ggml.token_type", .array(.int32, types)),
        ]
        if let bos = config["bos_token_id"]?.intValue { keys.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
        if let eos = config["eos_token_id"]?.intValue { keys.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
        return keys
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
            warnings.append("pre-tokenizer of model_type \(spec.modelType) has no llama.cpp name; wrote \"gpt-2\" (the closest standard one)")
            return "gpt-2"
        }
    }
}
