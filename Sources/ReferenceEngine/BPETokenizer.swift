// Byte-level BPE from a Hugging Face tokenizer.json (GPT-2 style): added tokens split out first, the ByteLevel
// pre-tokenizer's regex, bytes mapped to GPT-2's printable characters, merges applied lowest rank first.
import Foundation
import TensorFormats

public struct BPETokenizer: TextTokenizer {
    let path: String
    let vocabulary: [String: Int]
    let ranks: [String: Int]  // "left right" → rank
    let added: [(content: String, id: Int)]
    let pattern: NSRegularExpression
    let byteCharacters: [Character]
    public let maximumID: Int

    /// GPT-2's pre-tokenizer split (the ByteLevel pre-tokenizer with use_regex).
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    public init(path: String) throws {
        self.path = path
        func fail(_ reason: String) -> TokenizerFileError { .invalid(file: path, byteOffset: nil, reason: reason) }
        let root: JSONValue
        do { root = try JSONParser.parse(file: path) } catch {
            throw TokenizerFileError.invalid(file: path, byteOffset: nil, reason: error.reasonWithoutFile)
        }
        guard let model = root["model"], model["type"]?.stringValue == "BPE", let vocab = model["vocab"]?.objectValue else {
            throw fail("only BPE models (model.type \"BPE\" with a model.vocab object) are supported")
        }
        guard root["pre_tokenizer"]?["type"]?.stringValue == "ByteLevel", root["normalizer"]?.isNull ?? true else {
            throw fail("only a plain ByteLevel pre-tokenizer without normalizer is supported so far")
        }
        guard !vocab.isEmpty else { throw fail("model.vocab is empty") }
        var vocabulary: [String: Int] = [:]
        var tokenOfID: [Int: String] = [:]
        for (token, id) in vocab.pairs {
            guard let id = id.intValue, (0...Int(Int32.max)).contains(id) else {
                throw fail("model.vocab: token \"\(token)\" has id \(id.serialized()), not an integer in 0…2147483647")
            }
            if let other = tokenOfID.updateValue(token, forKey: id) {
                throw fail("model.vocab: \"\(other)\" and \"\(token)\" both have id \(id); each id names one token")
            }
            vocabulary[token] = id
        }
        var ranks: [String: Int] = [:]
        guard let merges = model["merges"]?.arrayValue ?? (model["merges"] == nil ? [] : nil) else {
            throw fail("model.merges is not an array")
        }
        for (rank, merge) in merges.enumerated() {
            if let text = merge.stringValue { ranks[text] = rank; continue }
            guard let pair = merge.arrayValue?.compactMap(\.stringValue), pair.count == 2 else {
                throw fail("model.merges[\(rank)] is not \"a b\" or [a, b]")
            }
            ranks[pair[0] + " " + pair[1]] = rank
        }
        self.vocabulary = vocabulary
        self.ranks = ranks
        var added: [(content: String, id: Int)] = []
        for (i, token) in (root["added_tokens"]?.arrayValue ?? []).enumerated() {
            guard let content = token["content"]?.stringValue, !content.isEmpty, let id = token["id"]?.intValue,
                (0...Int(Int32.max)).contains(id)
            else {
                throw fail("added_tokens[\(i)] needs a non-empty content and an id in 0…2147483647")
            }
            added.append((content, id))
        }
        self.added = added.sorted { $0.content.count > $1.content.count }
        maximumID = max(vocabulary.values.max() ?? 0, added.map(\.id).max() ?? 0)
        pattern = try NSRegularExpression(pattern: BPETokenizer.gpt2Pattern)
        byteCharacters = ByteLevelAlphabet.characters
    }

    /// Token ids of `text`; a byte the vocabulary cannot spell is an error, never dropped.
    public func encode(_ text: String) throws -> [Int] {
        try splittingSpecialTokens(text, added: added, plain: encodePlain)
    }

    private func encodePlain(_ text: String, offset: Int) throws -> [Int] {
        guard !text.isEmpty else { return [] }
        var ids: [Int] = []
        let ns = text as NSString
        for match in pattern.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            let piece = ns.substring(with: match.range)
            let symbols = piece.utf8.map { String(byteCharacters[Int($0)]) }
            for token in bpe(symbols) {
                guard let id = vocabulary[token] else {
                    let at = offset + ns.substring(to: match.range.location).utf8.count
                    throw TokenizerFileError.cannotEncode(file: path, textOffset: at, what: "\"\(piece)\" (token \"\(token)\")")
                }
                ids.append(id)
            }
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
