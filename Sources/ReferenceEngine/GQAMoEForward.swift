// Reference forward pass for GQA MoE transformers (qwen3_moe, mixtral) in f32 on the CPU: tokens processed as
// one batch, routed tokens grouped per expert with one sgemm per projection per expert, weights decoded
// from any source encoding one tensor at a time.
import Foundation
import ModelCatalog
import TensorFormats

public struct GQAMoEForward {
    public let spec: ModelSpec
    public let weights: WeightProvider

    public init(weights: WeightProvider) throws {
        guard weights.spec.architecture == .qwen3Moe || weights.spec.architecture == .mixtral else {
            throw EngineError.unsupported("\(weights.spec.modelType) as a GQA MoE")
        }
        spec = weights.spec
        self.weights = weights
    }

    /// Receives every matmul input, for importance matrices and routing statistics.
    public var observer: ActivationObserver? = nil

    func weight(_ role: TensorRole) throws -> [Float] { try weights.weight(role) }

    /// x · Wᵀ for the weight of `role` (WeightProvider.project: observer first, llama.cpp rounding if asked).
    func project(_ x: [Float], tokens: Int, inputs: Int, _ role: TensorRole, outputs: Int) throws -> [Float] {
        try weights.project(x, tokens: tokens, inputs: inputs, role, outputs: outputs, observer: observer)
    }

    /// One decoder layer on the hidden states `x` [tokens × hidden] of consecutive causal windows (`windows`: their
    /// token counts), in place: projections and experts over all tokens at once, attention within each window.
    public func layer(_ layer: Int, _ x: inout [Float], windows: [Int]) throws {
        let h = spec.hiddenSize, eps = Float(spec.rmsNormEpsilon), t = windows.reduce(0, +)
        do {
            func attention(_ part: AttentionPart) -> TensorRole { .attention(layer: layer, part: part) }
            // Attention block.
            var a = x
            DenseOps.rmsNorm(&a, width: h, weight: try weight(.attentionNorm(layer: layer)), epsilon: eps)
            let d = spec.headDim, heads = spec.headCount, kvHeads = spec.keyValueHeadCount
            var q = try project(a, tokens: t, inputs: h, attention(.query), outputs: heads * d)
            var k = try project(a, tokens: t, inputs: h, attention(.key), outputs: kvHeads * d)
            let v = try project(a, tokens: t, inputs: h, attention(.value), outputs: kvHeads * d)
            if spec.queryKeyNorm {
                DenseOps.rmsNorm(&q, width: d, weight: try weight(attention(.queryNorm)), epsilon: eps)
                DenseOps.rmsNorm(&k, width: d, weight: try weight(attention(.keyNorm)), epsilon: eps)
            }
            DenseOps.rope(&q, windows: windows, heads: heads, dim: d, theta: spec.ropeTheta)
            DenseOps.rope(&k, windows: windows, heads: kvHeads, dim: d, theta: spec.ropeTheta)
            let context = DenseOps.attention(q: q, k: k, v: v, windows: windows, heads: heads, kvHeads: kvHeads, dim: d)
            let attended = try project(context, tokens: t, inputs: heads * d, attention(.output), outputs: h)
            for i in 0..<x.count { x[i] += attended[i] }
            // MoE block.
            var m = x
            DenseOps.rmsNorm(&m, width: h, weight: try weight(.feedForwardNorm(layer: layer)), epsilon: eps)
            guard spec.isMoELayer(layer) else {
                // Qwen3's mlp_only_layers: a dense SwiGLU FFN.
                let gate = try project(
                    m, tokens: t, inputs: h, .denseFeedForward(layer: layer, projection: .gate), outputs: spec.intermediateSize)
                let up = try project(
                    m, tokens: t, inputs: h, .denseFeedForward(layer: layer, projection: .up), outputs: spec.intermediateSize)
                var act = [Float](repeating: 0, count: gate.count)
                for i in 0..<act.count { act[i] = DenseOps.silu(gate[i]) * up[i] }
                let out = try project(
                    act, tokens: t, inputs: spec.intermediateSize, .denseFeedForward(layer: layer, projection: .down), outputs: h)
                for i in 0..<x.count { x[i] += out[i] }
                return
            }
            let experts = spec.routedExpertCount, topK = spec.expertsPerToken
            let router = try project(m, tokens: t, inputs: h, .router(layer: layer), outputs: experts)
            // Softmax over all experts, top-k, renormalised (Mixtral always; Qwen3 when norm_topk_prob).
            var chosen = [[(expert: Int, weight: Float)]](repeating: [], count: t)
            for i in 0..<t {
                let row = Array(router[(i * experts)..<((i + 1) * experts)])
                let top = row.max() ?? 0
                let e = row.map { exp($0 - top) }
                let total = e.reduce(0, +)
                let probabilities = e.map { $0 / total }
                let picks = probabilities.enumerated().sorted {
                    $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset)
                }.prefix(topK)
                let sum = picks.reduce(Float(0)) { $0 + $1.element }
                let normalize = spec.normalizeTopKProbabilities
                chosen[i] = picks.map { ($0.offset, normalize ? $0.element / sum : $0.element) }
            }
            let ff = spec.expertIntermediateSize
            let output = try DenseOps.dispatch(m, tokens: t, width: h, experts: experts, chosen: chosen, parallel: observer == nil) {
                expert, rows, count in
                func role(_ projection: Projection) -> TensorRole { .routedExpert(layer: layer, expert: expert, projection: projection) }
                let gate = try project(rows, tokens: count, inputs: h, role(.gate), outputs: ff)
                let up = try project(rows, tokens: count, inputs: h, role(.up), outputs: ff)
                var act = [Float](repeating: 0, count: gate.count)
                for i in 0..<act.count { act[i] = DenseOps.silu(gate[i]) * up[i] }
                return try project(act, tokens: count, inputs: ff, role(.down), outputs: h)
            }
            for i in 0..<x.count { x[i] += output[i] }
        }
    }
}

extension GQAMoEForward: LayerForward {}
