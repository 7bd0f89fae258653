// Kimi's tiktoken tokenizer (`tiktoken.model`: one "base64(token bytes) rank" per line) → llama.cpp's byte-level
// BPE keys: tokens as GPT-2 byte-unicode strings by rank, merges recovered by re-running BPE over the ranks
// (each multi-byte token is the merge of the two parts BPE reaches just below its rank), special tokens from
// tokenizer_config.json's `added_tokens_decoder`, the rest of the 256 reserved slots as <|reserved_token_i|>.
import Foundation
import TensorFormats

enum TiktokenVocabulary {
    static func ranks(path: String) throws -> [[UInt8]: Int] { try TiktokenRanks.read(path: path) }

    static func bpe(_ ranks: [[UInt8]: Int], _ token: [UInt8], maxRank: Int) -> [[UInt8]] {
        TiktokenRanks.merge(ranks, token, maxRank: maxRank)
    }

    /// GPT-2's printable form of raw bytes (each byte through the byte → unicode table).
    static func printable(_ bytes: [UInt8]) -> String {
        ByteLevelAlphabet.spell(bytes)
    }

    /// tokenizer.ggml.* keys for a Kimi checkpoint directory.
    static func keys(directory: String, vocabularySize: Int, tokenizerConfig: JSONValue?) throws -> [(GGUFKey, GGUFValue)] {
        let path = (directory as NSString).appendingPathComponent("tiktoken.model")
        let ranks = try ranks(path: path)
        if let (token, rank) = ranks.first(where: { $0.value >= vocabularySize }) {
            throw TokenizerMetadataError.invalid(
                file: path, reason: "token \(token) has rank \(rank), beyond the model's vocab_size \(vocabularySize) in config.json")
        }
        var byID: [Int: String] = [:]
        var merges: [GGUFValue] = []
        for (token, rank) in ranks.sorted(by: { $0.value < $1.value }) {
            byID[rank] = printable(token)
            guard token.count > 1 else { continue }
            let parts = bpe(ranks, token, maxRank: rank)
            if parts.count == 2 { merges.append(.string(printable(parts[0]) + " " + printable(parts[1]))) }
        }
        // Special tokens: the named ones, and reserved names for the rest of the 256 slots after the base vocabulary.
        let base = ranks.count
        var special: [Int: String] = [:]
        for id in base..<(base + 256) { special[id] = "<|reserved_token_\(id)|>" }
        for (key, value) in tokenizerConfig?["added_tokens_decoder"]?.objectValue?.pairs ?? [] {
            guard let id = Int(key), (0..<max(vocabularySize, base)).contains(id), let content = value["content"]?.stringValue,
                !content.isEmpty
            else {
                throw TokenizerMetadataError.invalid(
                    file: (directory as NSString).appendingPathComponent("tokenizer_config.json"),
                    reason: "added_tokens_decoder[\"\(key)\"] needs an id below vocab_size \(vocabularySize) and a non-empty content")
            }
            special[id] = content
        }
        var tokens: [GGUFValue] = [], types: [GGUFValue] = []
        for id in 0..<max(vocabularySize, base) {
            if let name = special[id] {
                tokens.append(.string(name)); types.append(.int32(TokenizerMetadata.TokenType.control.rawValue))
            } else if let name = byID[id] {
                tokens.append(.string(name)); types.append(.int32(TokenizerMetadata.TokenType.normal.rawValue))
            } else {
                tokens.append(.string("[PAD\(id)]")); types.append(.int32(TokenizerMetadata.TokenType.unused.rawValue))
            }
        }
        return [
            (.tokenizerModel, .string("gpt2")), (.tokenizerPre, .string("kimi-k2")),
            (.tokens, .array(.string, tokens)), (.tokenTypes, .array(.int32, types)),
            (.merges, .array(.string, merges)),
        ]
    }
}
