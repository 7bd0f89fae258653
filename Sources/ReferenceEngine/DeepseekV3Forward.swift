// Reference forward pass for DeepSeek-V3 / Kimi K2 (transformers' DeepseekV3ForCausalLM): MLA with q/kv
// low-rank projections, rope/nope split with interleaved rope, YaRN (frequency blend and attention-scale
// correction), sigmoid router with e_score_correction_bias and group-limited top-k, norm_topk_prob,
// routed_scaling_factor, shared experts and leading dense layers. f32, one batch per window.
import Foundation
import ModelCatalog
import TensorFormats

public struct DeepseekV3Forward {
    public let spec: ModelSpec
    public let weights: WeightProvider
    let mla: LatentAttention
    let interleavedRope: Bool

    /// Rope pairs are interleaved unless config.json's `rope_interleave` says otherwise (transformers' default).
    public init(weights: WeightProvider) throws {
        guard [.deepseekV3, .deepseekV32, .glmMoeDsa, .kimiLinear].contains(weights.spec.architecture),
            let mla = weights.spec.latentAttention
        else {
            throw EngineError.unsupported("\(weights.spec.modelType) as DeepSeek-V3")
        }
        spec = weights.spec
        self.mla = mla
        self.weights = weights
        interleavedRope = weights.spec.ropeInterleave
    }

    /// Receives every matmul input, for importance matrices and routing statistics.
    public var observer: ActivationObserver? = nil

    func weight(_ role: TensorRole) throws -> [Float] { try weights.weight(role) }

    /// x · Wᵀ for the weight of `role` (WeightProvider.project: observer first, llama.cpp rounding if asked).
    func project(_ x: [Float], tokens: Int, inputs: Int, _ role: TensorRole, outputs: Int) throws -> [Float] {
        try weights.project(x, tokens: tokens, inputs: inputs, role, outputs: outputs, observer: observer)
    }

    // MARK: YaRN

    static func mscale(_ scale: Double, _ m: Double) -> Double { DenseOps.mscale(scale, m) }

    /// Inverse frequencies of the rope dims and the cos/sin scale (transformers' `_compute_yarn_parameters`).
    func ropeFrequencies() -> (inverse: [Float], attentionScale: Float) {
        DenseOps.ropeFrequencies(dim: mla.ropeHeadDim, theta: spec.ropeTheta, scaling: spec.ropeScaling)
    }

    /// Rotates the rope part (`dim` values at `offset` of each `stride`-wide head row) in place; positions restart at 0
    /// in each window of `windows` (token counts of the consecutive windows in `x`).
    func applyRope(
        _ x: inout [Float], windows: [Int], heads: Int, stride: Int, offset: Int, inverse: [Float], scale: Float, interleaved: Bool? = nil
    ) {
        let interleavedRope = interleaved ?? self.interleavedRope
        let half = mla.ropeHeadDim / 2
        var rotated = [Float](repeating: 0, count: 2 * half)
        var row = 0
        for count in windows {
            for t in 0..<count {
                for h in 0..<heads {
                    let base = ((row + t) * heads + h) * stride + offset
                    for i in 0..<half {
                        let angle = Float(t) * inverse[i]
                        let c = cos(angle) * scale, s = sin(angle) * scale
                        // Interleaved: pairs (2i, 2i+1); otherwise halves (i, i + half).
                        let a = interleavedRope ? x[base + 2 * i] : x[base + i]
                        let b = interleavedRope ? x[base + 2 * i + 1] : x[base + i + half]
                        rotated[i] = a * c - b * s
                        rotated[i + half] = b * c + a * s
                    }
                    for i in 0..<(2 * half) { x[base + i] = rotated[i] }
                }
            }
            row += count
        }
    }

    // MARK: Forward

    /// One decoder layer on the hidden states `x` [tokens × hidden] of consecutive causal windows (`windows`: their
    /// token counts), in place: projections and experts over all tokens at once, attention within each window.
    public func layer(_ layer: Int, _ x: inout [Float], windows: [Int]) throws {
        let t = windows.reduce(0, +), h = spec.hiddenSize, eps = Float(spec.rmsNormEpsilon), heads = spec.headCount
        let nope = mla.noPositionHeadDim, rope = mla.ropeHeadDim, vDim = mla.valueHeadDim, rank = mla.keyValueRank
        let qkDim = nope + rope
        // transformers builds q_a_layernorm and kv_a_layernorm with its RMSNorm's default 1e-6, whatever rms_norm_eps
        // says (GLM-5: 1e-5); llama.cpp uses rms_norm_eps for them.
        let latentEpsilon: Float = 1e-6
        let (inverse, ropeScale) = ropeFrequencies()
        var softmaxScale = 1 / Float(qkDim).squareRoot()
        if let yarn = spec.ropeScaling, yarn.type == "yarn", let all = yarn.mscaleAllDim, all != 0 {
            let m = Float(DeepseekV3Forward.mscale(yarn.factor, all))
            softmaxScale = softmaxScale * m * m
        }
        do {
            func attention(_ part: AttentionPart) -> TensorRole { .attention(layer: layer, part: part) }
            var a = x
            DenseOps.rmsNorm(&a, width: h, weight: try weight(.attentionNorm(layer: layer)), epsilon: eps)
            if let linear = spec.linearAttention, linear.layers.contains(layer) {
                // Kimi-Linear: Kimi Delta Attention on this layer.
                DenseOps.add(&x, try kimiDeltaAttention(layer: layer, normed: a, windows: windows, linear))
            } else {
                var q: [Float]
                // DeepSeek-V3.2: the keys each query may attend to (nil per window: every earlier one).
                var visible: [[Bool]?] = windows.map { _ in nil }
                if let qRank = mla.queryRank {
                    var compressed = try project(a, tokens: t, inputs: h, attention(.queryA), outputs: qRank)
                    DenseOps.rmsNorm(&compressed, width: qRank, weight: try weight(attention(.queryANorm)), epsilon: latentEpsilon)
                    q = try project(compressed, tokens: t, inputs: qRank, attention(.queryB), outputs: heads * qkDim)
                    visible = try indexerSelection(
                        layer: layer, compressed: compressed, normed: a, windows: windows, inverse: inverse, scale: ropeScale)
                } else {
                    q = try project(a, tokens: t, inputs: h, attention(.query), outputs: heads * qkDim)
                }
                let kvA = try project(a, tokens: t, inputs: h, attention(.keyValueA), outputs: rank + rope)
                var latent = [Float](repeating: 0, count: t * rank)
                var sharedRope = [Float](repeating: 0, count: t * rope)
                for i in 0..<t {
                    for j in 0..<rank { latent[i * rank + j] = kvA[i * (rank + rope) + j] }
                    for j in 0..<rope { sharedRope[i * rope + j] = kvA[i * (rank + rope) + rank + j] }
                }
                DenseOps.rmsNorm(&latent, width: rank, weight: try weight(attention(.keyValueANorm)), epsilon: latentEpsilon)
                let kv = try project(latent, tokens: t, inputs: rank, attention(.keyValueB), outputs: heads * (nope + vDim))
                // Kimi-Linear's MLA has no positions: the rope parts enter the product as they are.
                if !spec.latentAttentionWithoutPositions {
                    applyRope(&q, windows: windows, heads: heads, stride: qkDim, offset: nope, inverse: inverse, scale: ropeScale)
                    applyRope(&sharedRope, windows: windows, heads: 1, stride: rope, offset: 0, inverse: inverse, scale: ropeScale)
                }
                var k = [Float](repeating: 0, count: t * heads * qkDim)
                var v = [Float](repeating: 0, count: t * heads * vDim)
                for i in 0..<t {
                    for head in 0..<heads {
                        let source = (i * heads + head) * (nope + vDim), key = (i * heads + head) * qkDim
                        for j in 0..<nope { k[key + j] = kv[source + j] }
                        for j in 0..<rope { k[key + nope + j] = sharedRope[i * rope + j] }
                        for j in 0..<vDim { v[(i * heads + head) * vDim + j] = kv[source + nope + j] }
                    }
                }
                let context = DenseOps.attention(
                    q: q, k: k, v: v, windows: windows, heads: heads, kvHeads: heads, dim: qkDim, valueDim: vDim, scale: softmaxScale,
                    visible: visible)
                if let observer {
                    var row = 0
                    for (w, count) in windows.enumerated() {
                        func slice(_ values: [Float], _ width: Int) -> [Float] { Array(values[(row * width)..<((row + count) * width)]) }
                        observeAbsorbedAttention(
                            observer, layer: layer, q: slice(q, heads * qkDim), k: slice(k, heads * qkDim), latent: slice(latent, rank),
                            tokens: count, scale: softmaxScale, visible: visible[w])
                        row += count
                    }
                }
                let attended = try project(context, tokens: t, inputs: heads * vDim, attention(.output), outputs: h)
                DenseOps.add(&x, attended)
            }

            var m = x
            DenseOps.rmsNorm(&m, width: h, weight: try weight(.feedForwardNorm(layer: layer)), epsilon: eps)
            let out =
                spec.isMoELayer(layer)
                ? try moe(m, tokens: t, layer: layer)
                : try mlp(m, tokens: t, roles: { .denseFeedForward(layer: layer, projection: $0) }, width: spec.intermediateSize)
            DenseOps.add(&x, out)
        }
    }

    /// What llama.cpp's absorbed MLA multiplies attn_k_b and attn_v_b by, per head: the query's non-rope part, and
    /// the attention-weighted sum of the normed latent (the same scores, applied to the latent before kv_b's value half).
    func observeAbsorbedAttention(
        _ observer: ActivationObserver, layer: Int, q: [Float], k: [Float], latent: [Float], tokens t: Int, scale: Float,
        visible: [Bool]? = nil
    ) {
        let heads = spec.headCount, nope = mla.noPositionHeadDim, rank = mla.keyValueRank
        let qkDim = nope + mla.ropeHeadDim
        var queries = [Float](repeating: 0, count: heads * t * nope)
        var perHead = [Float](repeating: 0, count: t * heads * rank)
        for i in 0..<t {
            for head in 0..<heads {
                for j in 0..<nope { queries[(head * t + i) * nope + j] = q[(i * heads + head) * qkDim + j] }
                for j in 0..<rank { perHead[(i * heads + head) * rank + j] = latent[i * rank + j] }
            }
        }
        observer.observeHeads(.attention(layer: layer, part: .keyB), input: queries, heads: heads, tokens: t, width: nope)
        let mixed = DenseOps.attention(
            q: q, k: k, v: perHead, windows: [t], heads: heads, kvHeads: heads, dim: qkDim, valueDim: rank, scale: scale,
            visible: [visible])
        var latents = [Float](repeating: 0, count: heads * t * rank)
        for i in 0..<t {
            for head in 0..<heads {
                for j in 0..<rank { latents[(head * t + i) * rank + j] = mixed[(i * heads + head) * rank + j] }
            }
        }
        observer.observeHeads(.attention(layer: layer, part: .valueB), input: latents, heads: heads, tokens: t, width: rank)
    }

    /// SwiGLU MLP (dense layers, shared and routed experts).
    func mlp(_ x: [Float], tokens t: Int, roles: (Projection) -> TensorRole, width: Int) throws -> [Float] {
        try swiGLUFeedForward(x, tokens: t, roles: roles, width: width)
    }

    /// Sigmoid router with bias-for-selection and group limit, routed experts, plus shared experts.
    func moe(_ x: [Float], tokens t: Int, layer: Int) throws -> [Float] {
        let h = spec.hiddenSize, experts = spec.routedExpertCount
        let logits = try project(x, tokens: t, inputs: h, .router(layer: layer), outputs: experts)
        let bias = weights.has(.routerBias(layer: layer)) ? try weight(.routerBias(layer: layer)) : [Float](repeating: 0, count: experts)
        func route(_ i: Int) -> [(expert: Int, weight: Float)] {
            SigmoidRouter.route(Array(logits[(i * experts)..<((i + 1) * experts)]), bias: bias, spec: spec)
        }
        var chosen = [[(expert: Int, weight: Float)]](repeating: [], count: t)
        chosen.withUnsafeMutableBufferPointer { chosen in Parallel.rows(t) { tokens in for i in tokens { chosen[i] = route(i) } } }
        let ff = spec.expertIntermediateSize
        var output = try DenseOps.dispatch(x, tokens: t, width: h, experts: experts, chosen: chosen) {
            expert, rows, count in
            try mlp(rows, tokens: count, roles: { .routedExpert(layer: layer, expert: expert, projection: $0) }, width: ff)
        }
        if spec.sharedExpertCount > 0 {
            let shared = try mlp(x, tokens: t, roles: { .sharedExpert(layer: layer, projection: $0) }, width: ff * spec.sharedExpertCount)
            for i in 0..<output.count { output[i] += shared[i] }
        }
        return output
    }
}

extension DeepseekV3Forward: LayerForward {}

/// DeepSeek-V3's router (GLM-4.5's too): sigmoid scores, a selection bias, the best `topk_group` groups by the sum of
/// their two best biased scores, top-k within them; weights are the unbiased scores, renormalised when
/// `norm_topk_prob`, times `routed_scaling_factor`.
enum SigmoidRouter {
    static func route(_ logits: [Float], bias: [Float], spec: ModelSpec) -> [(expert: Int, weight: Float)] {
        let experts = logits.count, groups = max(spec.expertGroupCount, 1), perGroup = experts / groups
        let scores = logits.map { 1 / (1 + exp(-$0)) }
        var choice = (0..<experts).map { scores[$0] + bias[$0] }
        let groupScores = (0..<groups).map { g -> Float in
            choice[(g * perGroup)..<((g + 1) * perGroup)].sorted(by: >).prefix(2).reduce(0, +)
        }
        let kept = Set(groupScores.enumerated().sorted { $0.element > $1.element }.prefix(spec.expertGroupsUsed).map(\.offset))
        for e in 0..<experts where !kept.contains(e / perGroup) { choice[e] = -.infinity }
        let picks = choice.enumerated().sorted { $0.element > $1.element }.prefix(spec.expertsPerToken).map(\.offset)
        var weights = picks.map { scores[$0] }
        if spec.normalizeTopKProbabilities {
            let denominator = weights.reduce(0, +) + 1e-20
            weights = weights.map { $0 / denominator }
        }
        return zip(picks, weights).map { ($0, $1 * Float(spec.routedScalingFactor)) }
    }
}
