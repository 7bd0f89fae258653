// Kimi's tiktoken BPE (`tiktoken.model`: one "base64(token bytes) rank" per line): the rank table and tiktoken's
// merge rule (repeatedly join the adjacent pair whose concatenation has the lowest rank).
import Foundation

public enum TiktokenRanks {
    /// Reads `tiktoken.model`: token bytes by rank.
    /// Ranks are token ids: each in 0…2³¹−1, each token and each rank once.
    public static func read(path: String) throws -> [[UInt8]: Int] {
        let text: String
        do { text = try PositionalFile.readText(path, limit: 1 << 28) } catch {
            throw TokenizerFileError.invalid(file: path, byteOffset: nil, reason: error.reasonWithoutFile)
        }
        var ranks: [[UInt8]: Int] = [:]
        var used = Set<Int>()
        var offset = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            defer { offset += line.utf8.count + 1 }
            if line.isEmpty { continue }
            let parts = line.split(separator: " ")
            guard parts.count == 2, let bytes = Data(base64Encoded: String(parts[0])), !bytes.isEmpty, let rank = Int(parts[1]),
                (0...Int(Int32.max)).contains(rank)
            else {
                throw TokenizerFileError.invalid(
                    file: path, byteOffset: offset, reason: "line is not \"base64-token rank\" with a rank in 0…2147483647")
            }
            guard ranks.updateValue(rank, forKey: [UInt8](bytes)) == nil, used.insert(rank).inserted else {
                throw TokenizerFileError.invalid(file: path, byteOffset: offset, reason: "token or rank \(rank) appears twice")
            }
        }
        guard !ranks.isEmpty else { throw TokenizerFileError.invalid(file: path, byteOffset: 0, reason: "no tokens") }
        return ranks
    }

    /// BPE over `token` using only merges of rank below `maxRank`: the parts it ends with.
    public static func merge(_ ranks: [[UInt8]: Int], _ token: [UInt8], maxRank: Int = .max) -> [[UInt8]] {
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
}
