// Next-token negative log-likelihood and perplexity of a window of logits.
import Foundation

public struct WindowScore: Sendable {
    public let tokens: Int
    public let scored: Int
    public let meanNegativeLogLikelihood: Double
    public var perplexity: Double { exp(meanNegativeLogLikelihood) }

    /// Scores positions `from…` (position t predicts token t+1), in f64 log-softmax.
    public init(logits: [Float], tokens ids: [Int], vocabulary: Int, from first: Int = 0) {
        var total = 0.0, count = 0
        for t in max(first, 0)..<max(ids.count - 1, 0) {
            let row = logits[(t * vocabulary)..<((t + 1) * vocabulary)]
            let maximum = Double(row.max() ?? 0)
            let logSum = log(row.reduce(0.0) { $0 + exp(Double($1) - maximum) }) + maximum
            total += logSum - Double(row[row.startIndex + ids[t + 1]])
            count += 1
        }
        tokens = ids.count
        scored = count
        meanNegativeLogLikelihood = count > 0 ? total / Double(count) : 0
    }
}
