// The budget solver of `moeq fit`: one type per item (a GGUF tensor, or tensors that must share a type) so that the
// summed cost (predicted error) is smallest and the summed bytes stay within the budget. Each item's options are cut to
// their lower convex hull in (bytes, cost); walking the hull segments of all items from the most error saved per byte
// down is the Lagrangian solution (every λ at once, the budget deciding where to stop); a greedy repair then spends what
// is left on the best remaining upgrades, hull or not. Exact bytes throughout; deterministic (ties by item order).
import Foundation
import QuantKernels

public struct BudgetOption: Sendable, Equatable {
    public let type: QuantType
    public let bytes: Int
    public let cost: Double

    public init(type: QuantType, bytes: Int, cost: Double) {
        self.type = type
        self.bytes = bytes
        self.cost = cost
    }
}

public struct BudgetItem: Sendable {
    /// The GGUF tensors that take the chosen type together.
    public let tensors: [String]
    public let options: [BudgetOption]

    public init(tensors: [String], options: [BudgetOption]) {
        self.tensors = tensors
        self.options = options
    }
}

public enum BudgetSolverError: Error, Sendable, CustomStringConvertible {
    case doesNotFit(budget: Int, smallest: Int)
    case noOptions(tensor: String)

    public var description: String {
        switch self {
        case let .doesNotFit(budget, smallest):
            "the budget (\(budget) bytes for the quantized tensors) is below the smallest mix of the candidate types (\(smallest) bytes)"
        case let .noOptions(tensor): "no candidate type could be measured for \(tensor)"
        }
    }
}

public enum BudgetSolver {
    /// Up to this many items, pairs of items are exchanged after the greedy steps (O(items² × options²) per exchange).
    public static let exchangeLimit = 256

    /// The chosen option index per item.
    public static func solve(_ items: [BudgetItem], budget: Int) throws -> [Int] {
        for item in items where item.options.isEmpty { throw BudgetSolverError.noOptions(tensor: item.tensors.first ?? "?") }
        // Per item: options by bytes (then cost), and the lower convex hull's indices into them.
        let sorted = items.map { item in
            item.options.indices.sorted { a, b in
                (item.options[a].bytes, item.options[a].cost, a) < (item.options[b].bytes, item.options[b].cost, b)
            }
        }
        var hulls: [[Int]] = []
        for (item, order) in zip(items, sorted) {
            var hull: [Int] = []
            for index in order {
                let p = item.options[index]
                // Keep only options that save error for their bytes: strictly lower cost than the last kept.
                if let last = hull.last, item.options[last].cost <= p.cost { continue }
                if let last = hull.last, item.options[last].bytes == p.bytes { hull.removeLast() }
                while hull.count >= 2 {
                    let a = item.options[hull[hull.count - 2]], b = item.options[hull[hull.count - 1]]
                    // b lies on or above the segment a→p: drop it (cross product in (bytes, cost)).
                    let cross = Double(b.bytes - a.bytes) * (p.cost - a.cost) - (b.cost - a.cost) * Double(p.bytes - a.bytes)
                    if cross <= 0 { hull.removeLast() } else { break }
                }
                hull.append(index)
            }
            hulls.append(hull)
        }
        var chosen = hulls.map { $0[0] }
        var used = zip(items, chosen).reduce(0) { $0 + $1.0.options[$1.1].bytes }
        guard used <= budget else { throw BudgetSolverError.doesNotFit(budget: budget, smallest: used) }
        // Hull segments, most error saved per byte first; an item's segments come in that order already (convexity).
        struct Segment { let item: Int, step: Int, efficiency: Double }
        var segments: [Segment] = []
        for (i, hull) in hulls.enumerated() where hull.count > 1 {
            for s in 1..<hull.count {
                let a = items[i].options[hull[s - 1]], b = items[i].options[hull[s]]
                segments.append(Segment(item: i, step: s, efficiency: (a.cost - b.cost) / Double(max(b.bytes - a.bytes, 1))))
            }
        }
        segments.sort { ($0.efficiency, -$0.item, -$0.step) > ($1.efficiency, -$1.item, -$1.step) }
        var position = [Int](repeating: 0, count: items.count)
        var blocked = [Bool](repeating: false, count: items.count)
        for segment in segments where !blocked[segment.item] && position[segment.item] == segment.step - 1 {
            let hull = hulls[segment.item]
            let extra = items[segment.item].options[hull[segment.step]].bytes - items[segment.item].options[hull[segment.step - 1]].bytes
            if used + extra <= budget {
                used += extra
                position[segment.item] = segment.step
                chosen[segment.item] = hull[segment.step]
            } else {
                blocked[segment.item] = true
            }
        }
        // Repair: the best upgrade (error saved per byte) that still fits, any option, until none does.
        while true {
            var best: (item: Int, option: Int, efficiency: Double)?
            for (i, item) in items.enumerated() {
                let current = item.options[chosen[i]]
                for (o, option) in item.options.enumerated() where option.cost < current.cost {
                    let extra = option.bytes - current.bytes
                    guard used + extra <= budget else { continue }
                    let efficiency = extra <= 0 ? .infinity : (current.cost - option.cost) / Double(extra)
                    if best == nil || efficiency > best!.efficiency { best = (i, o, efficiency) }
                }
            }
            guard let best else { break }
            used += items[best.item].options[best.option].bytes - items[best.item].options[chosen[best.item]].bytes
            chosen[best.item] = best.option
        }
        // Exchanges on small problems (a few hundred items): one item's option for another's when the pair lowers the
        // cost within the budget, best pair first, until none does (where the greedy steps leave a gap).
        guard items.count <= exchangeLimit else { return chosen }
        for _ in 0..<1000 {
            var best: (i: Int, a: Int, j: Int, b: Int, gain: Double)?
            for i in items.indices {
                let ci = items[i].options[chosen[i]]
                for (a, oa) in items[i].options.enumerated() where a != chosen[i] {
                    let bytesA = oa.bytes - ci.bytes, costA = oa.cost - ci.cost
                    for j in items.indices where j != i {
                        let cj = items[j].options[chosen[j]]
                        for (b, ob) in items[j].options.enumerated() where b != chosen[j] {
                            guard used + bytesA + ob.bytes - cj.bytes <= budget else { continue }
                            let gain = -(costA + ob.cost - cj.cost)
                            if gain > 1e-12 * max(1, abs(ci.cost) + abs(cj.cost)), gain > (best?.gain ?? 0) { best = (i, a, j, b, gain) }
                        }
                    }
                }
            }
            guard let best else { break }
            used += items[best.i].options[best.a].bytes - items[best.i].options[chosen[best.i]].bytes
            used += items[best.j].options[best.b].bytes - items[best.j].options[chosen[best.j]].bytes
            chosen[best.i] = best.a
            chosen[best.j] = best.b
        }
        return chosen
    }
}
