// Byte-level BPE from a Hugging Face tokenizer.json (GPT-2 style): added tokens split out first, the ByteLevel
// pre-tokenizer's regex, bytes mapped to GPT-2's printable characters, merges applied lowest rank first.
import Foundation
import TensorFormats

public struct BPETokenizer: TextTokenizer {
    public enum TokenizerError: Error, Sendable, CustomStringConvertible {
        case unsupported(file: String, reason: String)
        public var description: String {
            switch self { case let .unsupported(file, reason): "\(file): \(reason)" }
        }
    }

    let vocabulary: [String: Int]
    let ranks: [String: Int]       // "left right" → rank
    let added: [(content: String, id: Int)]
    let pattern: NSRegularExpression
    let byteCharacters: [Character]

    /// GPT-2's pre-tokenizer split (the ByteLevel pre-tokenizer with use_regex).
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    public init(path: String) throws {
        guard let data = FileManager.default.contents(atPath: path) else { throw TokenizerError.unsupported(file: path, reason: "cannot read") }
        let root = try JSONParser.parse([UInt8](data))
        guard let model = root["model"], model["type"]?.stringValue == "BPE", let vocab = model["vocab"]?.objectValue else {
            throw TokenizerError.unsupported(file: path, reason: "only BPE models are supported")
        }
        guard root["pre_tokenizer"]?["type"]?.stringValue == "ByteLevel", root["normalizer"]?.isNull ?? true else {
            throw TokenizerError.unsupported(file: path, reason: "only a plain ByteLevel pre-tokenizer without normalizer is supported so far")
        }
        var vocabulary: [String: Int] = [:]
        for (token, id) in vocab.pairs { if let id = id.intValue { vocabulary[token] = id } }
        var ranks: [String: Int] = [:]
        for (rank, merge) in (model["merges"]?.arrayValue ?? []).enumerated() {
            if let text = merge.stringValue { ranks[text] = rank }
            if let pair = merge.arrayValue?.compactMap(\.stringValue), pair.count == 2 { ranks[pair[0] + " " + pair[1]] = rank }
        }
        self.vocabulary = vocabulary
        self.ranks = ranks
        added = (root["added_tokens"]?.arrayValue ?? []).compactMap { token in
            guard let content = token["content"]?.stringValue, let id = token["id"]?.intValue else { return nil }
            return (content, id)
        }.sorted { $0.content.count > $1.content.count }
        pattern = try NSRegularExpression(pattern: BPETokenizer.gpt2Pattern)
        byteCharacters = ByteLevelAlphabet.characters
    }

    /// Token ids of `text`.
    public func encode(_ text: String) -> [Int] {
        splittingSpecialTokens(text, added: added, plain: encodePlain)
    }

    private func encodePlain(_ text: String) -> [Int] {
        guard !text.isEmpty else { return [] }
        var ids: [Int] = []
        let ns = text as NSString
        for match in pattern.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            let piece = ns.substring(with: match.range)
            let symbols = piece.utf8.map { String(byteCharacters[Int($0)]) }
            for token in bpe(symbols) { if let id = vocabulary[token] { ids.append(id) } }
        }
        return ids
    }

    /// Merges the lowest-ranked adjacent pair until none is in the merge table.
    private func bpe(_ start: [String]) -> [String] {
        var parts = start
        while parts.count > 1 {
            var best: (index: Int, rank: Int)? = nil
            for i in 0..<(parts.count - 1) {
                if let rank = ranks[parts[i] + " " + parts[i + 1]], best.map({ rank < $0.rank }) ?? true { best = (i, rank) }
            }
            guard let best else { break }
            parts.replaceSubrange(best.index...(best.index + 1), with: [parts[best.index] + parts[best.index + 1]])
        }
        return parts
    }
}
