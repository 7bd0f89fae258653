// Kimi K2's tokenizer: tiktoken BPE over `tiktoken.model` ranks with Kimi's pre-tokenizer pattern (Han runs kept
// apart from other letters, cased words with English contractions, numbers in groups of up to three), special
// tokens from tokenizer_config.json's `added_tokens_decoder`. Token ids equal the `tiktoken` package's
// (TokenizerTests.tiktokenIdsEqualPythonTiktoken, validation/fixtures/tiktoken-kimi).
import Foundation
import TensorFormats

public struct TiktokenTokenizer: TextTokenizer {
    let ranks: [[UInt8]: Int]
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
        ranks = try TiktokenRanks.read(path: (directory as NSString).appendingPathComponent("tiktoken.model"))
        var specials: [(String, Int)] = []
        let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        if let data = FileManager.default.contents(atPath: configPath), let config = try? JSONParser.parse([UInt8](data)),
           let decoder = config["added_tokens_decoder"]?.objectValue {
            for (key, value) in decoder.pairs {
                if let id = Int(key), let content = value["content"]?.stringValue { specials.append((content, id)) }
            }
        }
        added = specials.sorted { $0.0.count > $1.0.count }.map { (content: $0.0, id: $0.1) }
        pattern = try NSRegularExpression(pattern: TiktokenTokenizer.kimiPattern)
    }

    public func encode(_ text: String) -> [Int] {
        splittingSpecialTokens(text, added: added) { plain in
            var ids: [Int] = []
            let ns = plain as NSString
            for match in pattern.matches(in: plain, range: NSRange(location: 0, length: ns.length)) {
                let piece = [UInt8](ns.substring(with: match.range).utf8)
                if let id = ranks[piece] { ids.append(id); continue }
                for part in TiktokenRanks.merge(ranks, piece) { if let id = ranks[part] { ids.append(id) } }
            }
            return ids
        }
    }
}

/// A text → token ids tokenizer of a checkpoint.
public protocol TextTokenizer {
    func encode(_ text: String) -> [Int]
}

/// Splits out added (special) tokens — the earliest match, the longest at the same position — and encodes the
/// text between them with `plain`.
func splittingSpecialTokens(_ text: String, added: [(content: String, id: Int)], plain: (String) -> [Int]) -> [Int] {
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
        if !before.isEmpty { ids += plain(String(before)) }
        guard let best else { break }
        ids.append(best.id)
        rest = rest[best.range.upperBound...]
    }
    return ids
}

public enum TokenizerLoader {
    /// The tokenizer a checkpoint directory ships: tokenizer.json (byte-level BPE) or tiktoken.model (Kimi).
    public static func load(directory: String) throws -> TextTokenizer {
        let json = (directory as NSString).appendingPathComponent("tokenizer.json")
        if FileManager.default.fileExists(atPath: json) { return try BPETokenizer(path: json) }
        if FileManager.default.fileExists(atPath: (directory as NSString).appendingPathComponent("tiktoken.model")) {
            return try TiktokenTokenizer(directory: directory)
        }
        throw BPETokenizer.TokenizerError.unsupported(file: directory, reason: "neither tokenizer.json nor tiktoken.model")
    }
}
