// Kimi's tiktoken BPE (`tiktoken.model`: one "base64(token bytes) rank" per line): the rank table and tiktoken's
// merge rule (repeatedly join the adjacent pair whose concatenation has the lowest rank).
import Foundation

public enum TiktokenRanks {
    /// Reads `tiktoken.model`: token bytes by rank.
    public static func read(path: String) throws -> [[UInt8]: Int] {
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
