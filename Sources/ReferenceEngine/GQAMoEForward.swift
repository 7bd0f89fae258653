// Reference forward pass for GQA MoE transformers (qwen3_moe, mixtral, glm4_moe, minimax_m2, gpt_oss) in f32 on the
// CPU: tokens processed as one batch, routed tokens grouped per expert with one sgemm per projection per expert,
// weights decoded from any source encoding one tensor at a time.
import Foundation
import ModelCatalog
import TensorFormats

public struct GQAMoEForward {
    public let spec: ModelSpec
    public let weights: WeightProvider

    public init(weights: WeightProvider) throws {
        guard [.qwen3Moe, .mixtral, .glm4Moe, .minimaxM2, .gptOss].contains(weights.spec.architecture) else {
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
            let qkv = try weights.project(
                a, tokens: t, inputs: h,
                [(attention(.query), heads * d), (attention(.key), kvHeads * d), (attention(.value), kvHeads * d)],
                observer: observer)
            var q = qkv[0], k = qkv[1], v = qkv[2]
            // GLM's q/k/v biases.
            for (i, part) in [AttentionPart.query, .key, .value].enumerated() {
                guard let bias = try weights.bias(attention(part)) else { continue }
                if i == 0 { DenseOps.addRows(&q, bias) } else if i == 1 { DenseOps.addRows(&k, bias) } else { DenseOps.addRows(&v, bias) }
            }
            if spec.queryKeyNorm {
                // Per head (Qwen3, GLM), or over the whole projection (MiniMax-M2).
                let across = spec.queryKeyNormAcrossHeads
                DenseOps.rmsNorm(&q, width: across ? heads * d : d, weight: try weight(attention(.queryNorm)), epsilon: eps)
                DenseOps.rmsNorm(&k, width: across ? kvHeads * d : d, weight: try weight(attention(.keyNorm)), epsilon: eps)
            }
            // GLM and MiniMax-M2 rotate the first partial_rotary_factor of each head (NeoX halves within it).
            let rotary = Int((Double(d) * spec.partialRotaryFactor).rounded())
            // gpt-oss: YaRN.
            let scaling = spec.ropeScaling?.type == "yarn" ? spec.ropeScaling : nil
            DenseOps.rope(&q, windows: windows, heads: heads, dim: d, theta: spec.ropeTheta, rotary: rotary, scaling: scaling)
            DenseOps.rope(&k, windows: windows, heads: kvHeads, dim: d, theta: spec.ropeTheta, rotary: rotary, scaling: scaling)
            // gpt-oss: a sink logit per head, and a sliding window on some layers.
            let sinks = weights.has(attention(.sinks)) ? try weight(attention(.sinks)) : nil
            let window = spec.slidingWindowLayers.contains(layer) ? spec.slidingWindow : nil
            let context = DenseOps.attention(
                q: q, k: k, v: v, windows: windows, heads: heads, kvHeads: kvHeads, dim: d, sinks: sinks, slidingWindow: window)
            var attended = try project(context, tokens: t, inputs: heads * d, attention(.output), outputs: h)
            if let bias = try weights.bias(attention(.output)) { DenseOps.addRows(&attended, bias) }
            DenseOps.add(&x, attended)
            // MoE block.
            var m = x
            DenseOps.rmsNorm(&m, width: h, weight: try weight(.feedForwardNorm(layer: layer)), epsilon: eps)
            guard spec.isMoELayer(layer) else {
                // Qwen3's mlp_only_layers: a dense SwiGLU FFN.
                let out = try swiGLUFeedForward(
                    m, tokens: t, roles: { .denseFeedForward(layer: layer, projection: $0) }, width: spec.intermediateSize)
                DenseOps.add(&x, out)
                return
            }
            let experts = spec.routedExpertCount, topK = spec.expertsPerToken
            var router = try project(m, tokens: t, inputs: h, .router(layer: layer), outputs: experts)
            // gpt-oss's router has a bias (its softmax over the top-k logits is the renormalised top-k of the softmax).
            if let routerBias = try weights.bias(.router(layer: layer)) { DenseOps.addRows(&router, routerBias) }
            let bias =
                weights.has(.routerBias(layer: layer)) ? try weight(.routerBias(layer: layer)) : [Float](repeating: 0, count: experts)
            // Softmax over all experts, top-k, renormalised (Mixtral always; Qwen3 when norm_topk_prob); GLM: DeepSeek's
            // sigmoid router.
            func route(_ i: Int) -> [(expert: Int, weight: Float)] {
                let row = Array(router[(i * experts)..<((i + 1) * experts)])
                if spec.routerScoring == .sigmoid { return SigmoidRouter.route(row, bias: bias, spec: spec) }
                let top = row.max() ?? 0
                let e = row.map { exp($0 - top) }
                let total = e.reduce(0, +)
                let probabilities = e.map { $0 / total }
                let picks = probabilities.enumerated().sorted {
                    $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset)
                }.prefix(topK)
                let sum = picks.reduce(Float(0)) { $0 + $1.element }
                let normalize = spec.normalizeTopKProbabilities
                return picks.map { ($0.offset, normalize ? $0.element / sum : $0.element) }
            }
            var chosen = [[(expert: Int, weight: Float)]](repeating: [], count: t)
            chosen.withUnsafeMutableBufferPointer { chosen in Parallel.rows(t) { tokens in for i in tokens { chosen[i] = route(i) } } }
            let ff = spec.expertIntermediateSize
            let output = try DenseOps.dispatch(m, tokens: t, width: h, experts: experts, chosen: chosen) { expert, rows, count in
                try swiGLUFeedForward(
                    rows, tokens: count, roles: { .routedExpert(layer: layer, expert: expert, projection: $0) }, width: ff)
            }
            DenseOps.add(&x, output)
            if spec.sharedExpertCount > 0 {
                let shared = try swiGLUFeedForward(
                    m, tokens: t, roles: { .sharedExpert(layer: layer, projection: $0) }, width: ff * spec.sharedExpertCount)
                DenseOps.add(&x, shared)
            }
        }
    }
}

extension GQAMoEForward: LayerForward {}
