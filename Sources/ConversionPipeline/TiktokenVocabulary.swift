// Kimi's tiktoken tokenizer (`tiktoken.model`: one "base64(token bytes) rank" per line) → llama.cpp's byte-level
// BPE keys: tokens as GPT-2 byte-unicode strings by rank, merges recovered by re-running BPE over the ranks
// (each multi-byte token is the merge of the two parts BPE reaches just below its rank), special tokens from
// tokenizer_config.json's `added_tokens_decoder`, the rest of the 256 reserved slots as <|reserved_token_i|>.
import Foundation
import TensorFormats

enum TiktokenVocabulary {
    /// Reads `tiktoken.model`: token bytes by rank.
    static func ranks(path: String) throws -> [[UInt8]: Int] {
        guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
            throw ImportanceMatrixError.unreadable(file: path, byteOffset: 0, reason: "cannot read")
        }
        var ranks: [[UInt8]: Int] = [:]
        var offset = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let bytes = Data(base64Encoded: String(parts[0])), let rank = Int(parts[1]) else {
                throw ImportanceMatrixError.unreadable(file: path, byteOffset: offset, reason: "line is not \"base64 rank\"")
            }
            ranks[[UInt8](bytes)] = rank
            offset += line.utf8.count + 1
        }
        return ranks
    }

    /// BPE over `token` using only merges of rank below `maxRank`: the parts it ends with.
    static func bpe(_ ranks: [[UInt8]: Int], _ token: [UInt8], maxRank: Int) -> [[UInt8]] {
        var parts = token.map { [$0] }
        while parts.count > 1 {
            var best: (index: Int, rank: Int)? = nil
            for i in 0..<(parts.count - 1) {
                if let rank = ranks[parts[i] + parts[i + 1]], best.map({ rank < $0.rank }) ?? true { best = (i, rank) }
            }
            guard let best, best.rank < maxRank else { break }
            parts.replaceSubrange(best.index...(best.index + 1), with: [parts[best.index] + parts[best.index + 1]])
        }
        return parts
    }

    /// GPT-2's printable form of raw bytes (each byte through the byte → unicode table).
    static func printable(_ bytes: [UInt8]) -> String {
        String(bytes.map { SyntheticTokenizer.byteCharacters[Int($0)] })
    }

    /// tokenizer.ggml.* keys for a Kimi checkpoint directory.
    static func keys(directory: String, vocabularySize: Int, tokenizerConfig: JSONValue?) throws -> [(String, GGUFValue)] {
        let ranks = try ranks(path: (directory as NSString).appendingPathComponent("tiktoken.model"))
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
            if let id = Int(key), let content = value["content"]?.stringValue { special[id] = content }
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
        return [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("kimi-k2")),
                ("tokenizer.ggml.tokens", .array(.string, tokens)), ("tokenizer.ggml.token_type", .array(.int32, types)),
                ("tokenizer.ggml.merges", .array(.string, merges))]
    }
}
