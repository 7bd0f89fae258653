// How unevenly a model routes tokens to its experts, from an importance matrix's per-expert counts (llama.cpp
// imatrix GGUF or `moeq imatrix`): the share of routed reads that the hottest x % of experts receive. The page cache
// keeps recently used experts in RAM, so when the experts do not all fit, disk reads fall on the cold tail only.
import TensorFormats

public struct RoutingProfile: Sendable, Equatable {
    /// `cumulative[k]` = share of routed tokens that went to the k hottest experts of a layer (averaged over layers);
    /// `cumulative[0] = 0`, `cumulative[E] = 1`.
    public let cumulative: [Double]

    /// From per-layer token counts per expert (`ImportanceMatrix.routingCounts`). Layers without tokens are skipped.
    public init?(counts: [Int: [Int]]) {
        var sum: [Double] = []
        var layers = 0
        for (_, experts) in counts.sorted(by: { $0.key < $1.key }) {
            let total = experts.reduce(0, +)
            guard total > 0 else { continue }
            if sum.isEmpty { sum = Array(repeating: 0, count: experts.count + 1) }
            guard experts.count + 1 == sum.count else { continue }
            var running = 0.0
            for (k, count) in experts.sorted(by: >).enumerated() {
                running += Double(count) / Double(total)
                sum[k + 1] += running
            }
            layers += 1
        }
        guard layers > 0 else { return nil }
        cumulative = sum.map { $0 / Double(layers) }
    }

    /// Share of routed reads that go to the hottest `fraction` (0…1) of experts, linearly interpolated.
    public func mass(ofHottest fraction: Double) -> Double {
        let experts = Double(cumulative.count - 1)
        let position = min(max(fraction, 0), 1) * experts
        let lower = Int(position.rounded(.down))
        guard lower < cumulative.count - 1 else { return 1 }
        let weight = position - Double(lower)
        return cumulative[lower] * (1 - weight) + cumulative[lower + 1] * weight
    }
}
