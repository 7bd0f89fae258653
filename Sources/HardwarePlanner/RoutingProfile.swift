// How unevenly a model routes tokens to its experts, from an importance matrix's per-expert counts (llama.cpp
// imatrix GGUF or `moeq imatrix`): the share of routed reads that the hottest x % of experts receive. The page cache
// keeps recently used experts in RAM, so when the experts do not all fit, disk reads fall on the cold tail only.
import ModelCatalog
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

/// An importance matrix that does not describe the model being planned.
public struct RoutingProfileError: Error, Sendable, CustomStringConvertible {
    public let file: String
    public let reason: String
    public var description: String { "\(file): \(reason)" }
}

extension RoutingProfile {
    /// The profile of `imatrix` for `spec`, refusing one made for another model: every MoE layer of the model needs its
    /// routed-expert counts, each over this model's number of experts.
    public init(imatrix: ImportanceMatrix, path: String, spec: ModelSpec) throws(RoutingProfileError) {
        let layout = spec.tensorLayout
        func fail(_ reason: String) -> RoutingProfileError { RoutingProfileError(file: path, reason: reason) }
        let counts = layout.routingCounts(imatrix)
        for (layer, experts) in counts.sorted(by: { $0.key < $1.key }) where experts.count != spec.routedExpertCount {
            throw fail(
                "layer \(layer) counts \(experts.count) experts; this model has \(spec.routedExpertCount) (an imatrix of another model?)")
        }
        let moeLayers = (0..<spec.layerCount).filter(spec.isMoELayer)
        let missing = moeLayers.filter { counts[$0] == nil }
        guard missing.isEmpty else {
            throw fail(
                "no routing counts for \(missing.count) of the model's \(moeLayers.count) MoE layers (first: layer \(missing[0])); "
                    + "an imatrix of another model, or one without per-expert counts")
        }
        guard let profile = RoutingProfile(counts: counts) else {
            throw fail("no expert received a token: the routing counts are all zero")
        }
        self = profile
    }
}
