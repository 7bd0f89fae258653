// Sensitivity: the error the collector predicts for quantizing one tensor equals the change in that tensor's output
// when a GGUF with only that tensor quantized (written by the conversion pipeline, byte-exact with llama-quantize)
// runs over the same windows; and more bits never give more error.
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

/// Records every product's output for the roles asked for, concatenated in call order.
private final class ProductRecorder: ActivationObserver {
    let roles: Set<TensorRole>
    var outputs: [TensorRole: [Float]] = [:]
    init(_ roles: Set<TensorRole>) { self.roles = roles }
    func observe(_ role: TensorRole, input: [Float], rows: Int, width: Int) {}
    func observeProduct(_ role: TensorRole, input: [Float], rows: Int, width: Int, weight: [Float], output: [Float]) {
        if roles.contains(role) { outputs[role, default: []] += output }
    }
}

/// Σ (a − b)² over the elements whose column (index mod `width`) `included` accepts.
private func squaredDifference(_ a: [Float], _ b: [Float], width: Int, included: (Int) -> Bool) -> Double {
    var sum = 0.0
    for i in a.indices where included(i % width) {
        let d = Double(a[i]) - Double(b[i])
        sum += d * d
    }
    return sum
}

/// With `llamaCPU` both sides compute as llama.cpp's CPU backend: the collector rounds each candidate's input to its
/// vec_dot_type, and the file's products round theirs; the error then holds the activation's rounding too.
@Test(arguments: [false, true]) func sensitivityEqualsTheOutputChangeOfAFileWithOnlyThatTensorQuantized(llamaCPU: Bool) throws {
    let directory = fixtures.appendingPathComponent("trained-deepseek_v3_wide").path
    let base = try CheckpointWeights(path: directory)
    let windows = (0..<3).map { w in (0..<48).map { (w * 131 + $0 * 37 + 5) % 3000 + 3 } }
    let candidates: [QuantType] = [.q8_0, .q4_0, .q6_K, .q4_K, .q2_K]
    let measured = try Sensitivity.measure(
        weights: base, windows: windows, candidates: candidates, llamaCPUArithmetic: llamaCPU, budget: 0)
    let byName = Dictionary(uniqueKeysWithValues: measured.map { ($0.name, $0) })

    // More bits, less error, on every tensor each pair was measured on; widths that a type cannot take are named.
    for entry in measured {
        #expect(entry.rows > 0 && entry.outputEnergy > 0, "\(entry.name)")
        for (better, worse) in [(QuantType.q8_0, QuantType.q4_0), (.q6_K, .q4_K), (.q4_K, .q2_K)] {
            if let a = entry.squaredError[better], let b = entry.squaredError[worse] { #expect(0 < a && a < b, "\(entry.name)") }
        }
        if entry.rowWidth % 256 != 0 { #expect(entry.squaredError[.q4_K] == nil && entry.unavailable[.q4_K] != nil, "\(entry.name)") }
    }
    let spec = base.spec
    let experts = try #require(byName["blk.1.ffn_gate_exps.weight"])
    #expect(experts.rows == 3 * 48 * spec.expertsPerToken)
    #expect(byName["output.weight"] != nil && byName["blk.0.attn_k_b.weight"] != nil && byName["blk.0.attn_v_b.weight"] != nil)

    // Files with one tensor quantized: the stacked experts of the MoE layer (Q4_K), MLA's attn_k_b (Q4_0, per head
    // transposed) and the output head (Q2_K); each runs over the same windows and its output is compared with the base's.
    // kv_b's output per token: per head 64 key (no-rope) values, then 64 values; attn_k_b changes only the first.
    let cases: [(tensor: String, type: QuantType, role: TensorRole, keyColumnsOnly: Bool)] = [
        ("blk.1.ffn_gate_exps.weight", .q4_K, .routedExpert(layer: 1, expert: 0, projection: .gate), false),
        ("blk.0.attn_k_b.weight", .q4_0, .attention(layer: 0, part: .keyValueB), true),
        ("output.weight", .q2_K, .outputHead, false),
    ]
    for (tensor, type, role, keyColumnsOnly) in cases {
        let output = NSTemporaryDirectory() + "moeq-sensitivity-\(UUID().uuidString).gguf"
        defer {
            try? FileManager.default.removeItem(atPath: output); try? FileManager.default.removeItem(atPath: output + ".manifest.json")
        }
        let rules = try RecipeFile(
            json: try JSONParser.parse(
                Array(#"{"format": "moeq recipe 1", "base": "F32", "rules": [{"tensor": "\#(tensor)", "type": "\#(type.rawValue)"}]}"#.utf8)
            ),
            path: "one-tensor.json")
        _ = try GGUFConversion.run(try GGUFConversion.plan(path: directory, recipe: .f32, rules: rules), output: output, threads: 2)
        let quant = try ReferenceModel.weights(path: output, configDirectory: directory, llamaCPUArithmetic: llamaCPU)
        // Every expert of the stacked tensor: record all of them.
        let roles: Set<TensorRole> =
            if case .routedExpert(let l, _, let p) = role {
                Set((0..<spec.routedExpertCount).map { .routedExpert(layer: l, expert: $0, projection: p) })
            } else { [role] }
        var observed: [[TensorRole: [Float]]] = []
        for weights in [base as WeightProvider, quant] {
            let recorder = ProductRecorder(roles)
            var engine = try ReferenceModel.engine(weights: weights)
            engine.observer = recorder
            let states = try LayerMajor.hiddenStates(engine, windows: windows, budget: 0)
            var x: [Float] = []
            for w in windows.indices { x += try states.read(w) }
            _ = try engine.head(x, tokens: windows.count * 48)
            observed.append(recorder.outputs)
        }
        var actual = 0.0
        for r in roles {
            let b = try #require(observed[0][r]), q = try #require(observed[1][r])
            #expect(b.count == q.count && !b.isEmpty)
            actual += squaredDifference(q, b, width: 128) { !keyColumnsOnly || $0 < 64 }
        }
        let predicted = try #require(byName[tensor]?.squaredError[type])
        #expect(actual > 0 && abs(predicted - actual) <= 1e-6 * actual, "\(tensor) \(type): predicted \(predicted), file gives \(actual)")
    }
}
