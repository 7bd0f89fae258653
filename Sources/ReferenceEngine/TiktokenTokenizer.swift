// Kimi K2's tokenizer: tiktoken BPE over `tiktoken.model` ranks with Kimi's pre-tokenizer pattern (Han runs kept
// apart from other letters, cased words with English contractions, numbers in groups of up to three), special
// tokens from tokenizer_config.json's `added_tokens_decoder`. Token ids equal the `tiktoken` package's
// (TokenizerTests.tiktokenIdsEqualPythonTiktoken, validation/fixtures/tiktoken-kimi).
import Foundation
import TensorFormats

public struct TiktokenTokenizer: TextTokenizer {
    let path: String
    let ranks: [[UInt8]: Int]
    public let maximumID: Int
    let added: [(content: String, id: Int)]
    let pattern: NSRegularExpression

    /// Kimi's `pat_str` in ICU syntax. `\s` is spelled out as Unicode White_Space (what tiktoken's Rust regex
    /// means by `\s`; ICU's `\s` lacks U+000B and U+0085).
    static let kimiPattern: String = {
        let space = #"[\t\n\x{0B}\f\r\x{85}\p{Z}]"#, nonSpace = #"[^\t\n\x{0B}\f\r\x{85}\p{Z}]"#
        let upper = #"[[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]&&[^\p{Han}]]"#, lower = #"[[\p{Ll}\p{Lm}\p{Lo}\p{M}]&&[^\p{Han}]]"#
        let suffix = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)?"#
        return [
            #"[\p{Han}]+"#,
            #"[^\r\n\p{L}\p{N}]?"# + upper + "*" + lower + "+" + suffix,
            #"[^\r\n\p{L}\p{N}]?"# + upper + "+" + lower + "*" + suffix,
            #"\p{N}{1,3}"#,
            " ?" + #"[^\t\n\x{0B}\f\r\x{85}\p{Z}\p{L}\p{N}]+[\r\n]*"#,
            space + #"*[\r\n]+"#,
            space + "+(?!" + nonSpace + ")",
            space + "+",
        ].joined(separator: "|")
    }()

    /// Reads `tiktoken.model` and `tokenizer_config.json` from a Kimi checkpoint directory.
    public init(directory: String) throws {
        path = (directory as NSString).appendingPathComponent("tiktoken.model")
        ranks = try TiktokenRanks.read(path: path)
        var specials: [(String, Int)] = []
        let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        if PositionalFile.exists(configPath) {
            let config: JSONValue
            do { config = try JSONParser.parse(file: configPath) } catch {
                throw TokenizerFileError.invalid(file: configPath, byteOffset: nil, reason: error.reasonWithoutFile)
            }
            for (key, value) in config["added_tokens_decoder"]?.objectValue?.pairs ?? [] {
                guard let id = Int(key), (0...Int(Int32.max)).contains(id), let content = value["content"]?.stringValue, !content.isEmpty
                else {
                    throw TokenizerFileError.invalid(
                        file: configPath, byteOffset: nil,
                        reason: "added_tokens_decoder[\"\(key)\"] needs an id in 0…2147483647 and a non-empty content")
                }
                specials.append((content, id))
            }
        }
        added = specials.sorted { $0.0.count > $1.0.count }.map { (content: $0.0, id: $0.1) }
        maximumID = max(ranks.values.max() ?? 0, specials.map(\.1).max() ?? 0)
        pattern = try NSRegularExpression(pattern: TiktokenTokenizer.kimiPattern)
    }

    public func encode(_ text: String) throws -> [Int] {
        try splittingSpecialTokens(text, added: added) { plain, offset in
            var ids: [Int] = []
            let ns = plain as NSString
            for match in pattern.matches(in: plain, range: NSRange(location: 0, length: ns.length)) {
                let piece = [UInt8](ns.substring(with: match.range).utf8)
                if let id = ranks[piece] { ids.append(id); continue }
                for part in TiktokenRanks.merge(ranks, piece) {
                    guard let id = ranks[part] else {
                        let at = offset + ns.substring(to: match.range.location).utf8.count
                        throw TokenizerFileError.cannotEncode(
                            file: path, textOffset: at, what: "bytes \(part) of \"\(ns.substring(with: match.range))\"")
                    }
                    ids.append(id)
                }
            }
            return ids
        }
    }
}

/// A text → token ids tokenizer of a checkpoint.
public protocol TextTokenizer {
    /// The largest id it produces (checked against the model's vocabulary when loaded).
    var maximumID: Int { get }
    func encode(_ text: String) throws -> [Int]
}

/// Splits out added (special) tokens — the earliest match, the longest at the same position — and encodes the
/// text between them with `plain(text, byte offset of that text)`.
func splittingSpecialTokens(_ text: String, added: [(content: String, id: Int)], plain: (String, Int) throws -> [Int]) throws -> [Int] {
    var ids: [Int] = []
    var rest = Substring(text)
    while !rest.isEmpty {
        var best: (range: Range<Substring.Index>, id: Int)? = nil
        for token in added {
            if let range = rest.range(of: token.content), best.map({ range.lowerBound < $0.range.lowerBound }) ?? true {
                best = (range, token.id)
            }
        }
        let before = best.map { rest[rest.startIndex..<$0.range.lowerBound] } ?? rest
        if !before.isEmpty { ids += try plain(String(before), text.utf8.distance(from: text.utf8.startIndex, to: before.startIndex)) }
        guard let best else { break }
        ids.append(best.id)
        rest = rest[best.range.upperBound...]
    }
    return ids
}

public enum TokenizerLoader {
    /// The tokenizer a checkpoint directory ships: tokenizer.json (byte-level BPE) or tiktoken.model (Kimi).
    /// Every id it can produce must be below `vocabularySize` (the model's embedding rows).
    public static func load(directory: String, vocabularySize: Int) throws -> TextTokenizer {
        let json = (directory as NSString).appendingPathComponent("tokenizer.json")
        let tiktoken = (directory as NSString).appendingPathComponent("tiktoken.model")
        let tokenizer: TextTokenizer
        let file: String
        if PositionalFile.exists(json) {
            tokenizer = try BPETokenizer(path: json)
            file = json
        } else if PositionalFile.exists(tiktoken) {
            tokenizer = try TiktokenTokenizer(directory: directory)
            file = tiktoken
        } else {
            throw TokenizerFileError.invalid(
                file: directory, byteOffset: nil, reason: "neither tokenizer.json nor tiktoken.model: pass --tokens with token ids instead")
        }
        guard tokenizer.maximumID < vocabularySize else {
            throw TokenizerFileError.invalid(
                file: file, byteOffset: nil,
                reason: "has token id \(tokenizer.maximumID), beyond the model's vocab_size \(vocabularySize) in config.json")
        }
        return tokenizer
    }
}
