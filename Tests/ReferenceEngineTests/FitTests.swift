// moeq fit's parts: the round-trip model a probe runs equals the GGUF the conversion writes with the same types (so a
// probe's KLD is the file's), the sensitivity cache reads back what was written and refuses damage by key, and the
// budget solver never exceeds its budget and leaves no single affordable upgrade untaken, against brute force.
import ConversionPipeline
import Foundation
import ModelCatalog
import OutputPlanning
import QuantKernels
import TensorFormats
import Testing
@testable import ReferenceEngine

private let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("validation/fixtures")

/// Also with llama.cpp's CPU arithmetic on both sides (each product's input rounded for the tensor's type).
@Test(arguments: [false, true]) func roundTripWeightsGiveTheLogitsOfTheWrittenMix(llamaCPU: Bool) throws {
    let directory = fixtures.appendingPathComponent("trained-deepseek_v3_wide").path
    let base = try CheckpointWeights(path: directory)
    let types: [String: QuantType] = [
        "blk.1.ffn_down_exps.weight": .q2_K, "blk.0.attn_k_b.weight": .q4_0, "blk.0.attn_v_b.weight": .q3_K, "output.weight": .q4_K,
        "token_embd.weight": .q5_K, "blk.0.ffn_up.weight": .iq4_xs,
    ]
    let rules = types.sorted { $0.key < $1.key }.map { #"{"tensor": "\#($0.key)", "type": "\#($0.value.rawValue)"}"# }
    let recipe = try RecipeFile(
        json: try JSONParser.parse(#"{"format": "moeq recipe 1", "base": "F32", "rules": [\#(rules.joined(separator: ","))]}"#),
        path: "mix.json")
    let output = NSTemporaryDirectory() + "moeq-fit-\(UUID().uuidString).gguf"
    defer {
        try? FileManager.default.removeItem(atPath: output); try? FileManager.default.removeItem(atPath: output + ".manifest.json")
    }
    _ = try GGUFConversion.run(try GGUFConversion.plan(path: directory, recipe: .f32, rules: recipe), output: output, threads: 2)
    let file = try ReferenceModel.engine(
        weights: try ReferenceModel.weights(path: output, configDirectory: directory, llamaCPUArithmetic: llamaCPU))
    let probe = try ReferenceModel.engine(
        weights: RoundTripWeights(base: base, types: types, importance: nil, llamaCPUArithmetic: llamaCPU))
    let plain = try ReferenceModel.engine(weights: base)
    let tokens = (0..<40).map { ($0 * 97 + 11) % 3000 + 3 }
    let a = try file.logits(tokens: tokens), b = try probe.logits(tokens: tokens), c = try plain.logits(tokens: tokens)
    let worst = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
    let moved = zip(a, c).map { abs($0 - $1) }.max() ?? 0
    #expect(worst <= 1e-4 * max(1, moved), "probe vs file: \(worst); quantization moved the logits by \(moved)")
    #expect(moved > 1e-2)
}

@Test func sensitivityFileReadsBackAndRefusesDamage() throws {
    var t = TensorSensitivity(name: "blk.3.ffn_down_exps.weight", layer: 3, elements: 1 << 20, rowWidth: 256)
    t.rows = 77
    t.outputEnergy = 12.5
    t.squaredError = [.q4_K: 0.125, .q2_K: 1.0 / 3]
    t.unavailable = [.iq2_xs: "needs an importance matrix"]
    var calibration = FitCalibration(
        groupWeights: ["ffn_down_exps.weight@0-7": 0.25], scale: 1.5, exponent: 1.1,
        probes: [.init(label: "all at Q4_K", score: 0.1, measuredKLD: 0.2, measuredPPLRatio: 1.01, measuredTop1: 0.9)])
    calibration.layersPerGroup = 8
    let file = SensitivityFile(key: "abc", candidates: [.q4_K, .q2_K], tensors: [t], calibration: calibration)
    let path = NSTemporaryDirectory() + "moeq-sensitivity-\(UUID().uuidString).json"
    defer { try? FileManager.default.removeItem(atPath: path) }
    try file.write(to: path)
    #expect(try SensitivityFile(path: path) == file)
    #expect(calibration.group("blk.3.ffn_down_exps.weight") == "ffn_down_exps.weight@0-7")
    #expect(calibration.cost(t, .q2_K) == 0.25 * (1.0 / 3) / 12.5)
    let text = try String(contentsOfFile: path, encoding: .utf8)
    for (from, to, says) in [
        ("\"Q4_K\": 0.125", "\"Q4_K\": -0.125", "squared_error.Q4_K"),
        ("\"layers_per_group\": 8", "\"layers_per_group\": 0", "layers_per_group"),
        ("moeq sensitivity 1", "moeq sensitivity 9", "format"),
    ] {
        try text.replacingOccurrences(of: from, with: to).write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: EngineError.self) { try SensitivityFile(path: path) }
        do { _ = try SensitivityFile(path: path) } catch { #expect("\(error)".contains(path) && "\(error)".contains(says), "\(error)") }
    }
}

/// Random items: five types per item, error falling with bytes, with noise (so hulls are not all convex and the repair
/// and exchange steps have work).
private func randomItems(_ random: inout SeededGenerator, count: Int) -> [BudgetItem] {
    let types: [QuantType] = [.q8_0, .q6_K, .q4_K, .q3_K, .q2_K]
    return (0..<count).map { i in
        BudgetItem(
            tensors: ["t\(i)"],
            options: types.enumerated().map { k, type in
                let bytes = (k + 1) * 100 * (1 + Int(random.next() % 4))
                return BudgetOption(type: type, bytes: bytes, cost: Double(random.next() % 1000 + 1) / Double(bytes))
            })
    }
}

@Test func budgetSolverStaysWithinBudgetAndNearTheBruteForceOptimum() throws {
    var random = SeededGenerator(seed: 42)
    var gaps: [Double] = []
    for _ in 0..<40 {
        let items = randomItems(&random, count: 5)
        let smallest = items.reduce(0) { $0 + $1.options.map(\.bytes).min()! }
        let largest = items.reduce(0) { $0 + $1.options.map(\.bytes).max()! }
        let budget = smallest + Int(random.next() % UInt64(largest - smallest + 1))
        let chosen = try BudgetSolver.solve(items, budget: budget)
        #expect(try BudgetSolver.solve(items, budget: budget) == chosen)  // deterministic
        let used = zip(items, chosen).reduce(0) { $0 + $1.0.options[$1.1].bytes }
        let cost = zip(items, chosen).reduce(0.0) { $0 + $1.0.options[$1.1].cost }
        #expect(used <= budget)
        // No change of one item's option, or of two items' at once, that fits lowers the cost.
        for (i, item) in items.enumerated() {
            let ci = item.options[chosen[i]]
            for a in item.options where used - ci.bytes + a.bytes <= budget {
                #expect(a.cost >= ci.cost - 1e-12, "item \(i) could take \(a.type)")
                for (j, other) in items.enumerated() where j != i {
                    let cj = other.options[chosen[j]]
                    for b in other.options where used - ci.bytes + a.bytes - cj.bytes + b.bytes <= budget {
                        #expect(a.cost + b.cost >= ci.cost + cj.cost - 1e-9, "items \(i), \(j) could exchange")
                    }
                }
            }
        }
        // Brute force over all 5⁵ mixes.
        var best = Double.infinity
        for code in 0..<3125 {
            var c = code, bytes = 0, total = 0.0
            for item in items {
                let o = item.options[c % 5]
                c /= 5
                bytes += o.bytes
                total += o.cost
            }
            if bytes <= budget { best = min(best, total) }
        }
        #expect(cost >= best - 1e-12)
        gaps.append(cost / best - 1)
        #expect(throws: BudgetSolverError.self) { try BudgetSolver.solve(items, budget: smallest - 1) }
    }
    // On these small, deliberately non-convex problems: optimal in most cases, never far off.
    let optimal = gaps.filter { $0 < 1e-9 }.count
    #expect(optimal >= 30, "optimal in \(optimal) of 40; gaps \(gaps)")
    #expect(gaps.max()! < 0.10, "largest gap \(gaps.max()!)")
}

@Test func budgetSolverOnAThousandItemsStaysWithinBudget() throws {
    // The size of a 1 T-parameter MoE (61 blocks × ~12 tensors); the exchange step is skipped above 256 items, and the
    // hull + greedy steps alone must still spend the budget without exceeding it.
    var random = SeededGenerator(seed: 7)
    let items = randomItems(&random, count: 1000)
    let smallest = items.reduce(0) { $0 + $1.options.map(\.bytes).min()! }
    let chosen = try BudgetSolver.solve(items, budget: smallest * 2)
    let used = zip(items, chosen).reduce(0) { $0 + $1.0.options[$1.1].bytes }
    #expect(used <= smallest * 2)
    // Nothing affordable left undone: every item not at its costliest-saving option has no cheaper-cost upgrade that fits.
    for (i, item) in items.enumerated() {
        for option in item.options where option.cost < item.options[chosen[i]].cost {
            #expect(used - item.options[chosen[i]].bytes + option.bytes > smallest * 2, "item \(i)")
        }
    }
}

/// SplitMix64.
private struct SeededGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
