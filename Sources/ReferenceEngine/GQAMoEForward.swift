// Reference forward pass for GQA MoE transformers (qwen3_moe, mixtral) in f32 on the CPU: tokens processed as
// one batch, routed tokens grouped per expert with one sgemm per projection per expert, weights decoded
// from any source encoding one tensor at a time.
import Foundation
import ModelCatalog
import TensorFormats

public enum EngineError: Error, Sendable, CustomStringConvertible {
    case unsupported(String)
    case token(index: Int, id: Int, vocabulary: Int)
    public var description: String {
        switch self {
        case .unsupported(let what): "the reference engine does not run \(what) yet"
        case let .token(index, id, vocabulary): "token \(index) has id \(id), outside the vocabulary of \(vocabulary)"
        }
    }
}

public struct GQAMoEForward {
    public let spec: ModelSpec
    let weights: WeightProvider

    public init(weights: WeightProvider) throws {
        guard weights.spec.architecture == .qwen3Moe || weights.spec.architecture == .mixtral else {
            throw EngineError.unsupported("\(weights.spec.modelType) as a GQA MoE")
        }
        spec = weights.spec
        self.weights = weights
    }

    /// Receives every matmul input, for importance matrices and routing statistics.
    public var observer: ActivationObserver? = nil

    func weight(_ name: String) throws -> [Float] { try weights.weight(name) }

    /// x · Wᵀ for the HF weight `name` (WeightProvider.project: observer first, llama.cpp rounding if asked).
    func project(_ x: [Float], tokens: Int, inputs: Int, _ name: String, outputs: Int) throws -> [Float] {
        try weights.project(x, tokens: tokens, inputs: inputs, name, outputs: outputs, observer: observer)
    }

    /// Logits [tokens × vocabulary] for one causal window.
    public func logits(tokens ids: [Int]) throws -> [Float] {
        let h = spec.hiddenSize, t = ids.count, eps = Float(spec.rmsNormEpsilon)
        let embedding = try weight("model.embed_tokens.weight")
        var x = [Float](repeating: 0, count: t * h)
        for (i, id) in ids.enumerated() {
            guard id >= 0, id < spec.vocabularySize else { throw EngineError.token(index: i, id: id, vocabulary: spec.vocabularySize) }
            for j in 0..<h { x[i * h + j] = embedding[id * h + j] }
        }
        let mixtral = spec.architecture == .mixtral
        for layer in 0..<spec.layerCount {
            let p = "model.layers.\(layer)."
            // Attention block.
            var a = x
            DenseOps.rmsNorm(&a, width: h, weight: try weight(p + "input_layernorm.weight"), epsilon: eps)
            let d = spec.headDim, heads = spec.headCount, kvHeads = spec.keyValueHeadCount
            var q = try project(a, tokens: t, inputs: h, p + "self_attn.q_proj.weight", outputs: heads * d)
            var k = try project(a, tokens: t, inputs: h, p + "self_attn.k_proj.weight", outputs: kvHeads * d)
            let v = try project(a, tokens: t, inputs: h, p + "self_attn.v_proj.weight", outputs: kvHeads * d)
            if spec.architecture == .qwen3Moe {
                DenseOps.rmsNorm(&q, width: d, weight: try weight(p + "self_attn.q_norm.weight"), epsilon: eps)
                DenseOps.rmsNorm(&k, width: d, weight: try weight(p + "self_attn.k_norm.weight"), epsilon: eps)
            }
            DenseOps.rope(&q, tokens: t, heads: heads, dim: d, theta: spec.ropeTheta)
            DenseOps.rope(&k, tokens: t, heads: kvHeads, dim: d, theta: spec.ropeTheta)
            let context = DenseOps.attention(q: q, k: k, v: v, tokens: t, heads: heads, kvHeads: kvHeads, dim: d)
            let attended = try project(context, tokens: t, inputs: heads * d, p + "self_attn.o_proj.weight", outputs: h)
            for i in 0..<x.count { x[i] += attended[i] }
            // MoE block.
            var m = x
            DenseOps.rmsNorm(&m, width: h, weight: try weight(p + "post_attention_layernorm.weight"), epsilon: eps)
            let moe = mixtral ? p + "block_sparse_moe." : p + "mlp."
            let experts = spec.routedExpertCount, topK = spec.expertsPerToken
            let router = try project(m, tokens: t, inputs: h, moe + "gate.weight", outputs: experts)
            // Softmax over all experts, top-k, renormalised (Mixtral always; Qwen3 when norm_topk_prob).
            var chosen = [[(expert: Int, weight: Float)]](repeating: [], count: t)
            for i in 0..<t {
                let row = Array(router[(i * experts)..<((i + 1) * experts)])
                let top = row.max() ?? 0
                let e = row.map { exp($0 - top) }
                let total = e.reduce(0, +)
                let probabilities = e.map { $0 / total }
                let picks = probabilities.enumerated().sorted { $0.element > $1.element || ($0.element == $1.element && $0.offset < $1.offset) }.prefix(topK)
                let sum = picks.reduce(Float(0)) { $0 + $1.element }
                let normalize = mixtral || spec.normalizeTopKProbabilities
                chosen[i] = picks.map { ($0.offset, normalize ? $0.element / sum : $0.element) }
            }
            let ff = spec.expertIntermediateSize
            let names = mixtral ? ["w1", "w3", "w2"] : ["gate_proj", "up_proj", "down_proj"]
            let output = try DenseOps.dispatch(m, tokens: t, width: h, experts: experts, chosen: chosen) { expert, rows, count in
                let base = moe + "experts.\(expert)."
                let gate = try project(rows, tokens: count, inputs: h, base + names[0] + ".weight", outputs: ff)
                let up = try project(rows, tokens: count, inputs: h, base + names[1] + ".weight", outputs: ff)
                var act = [Float](repeating: 0, count: gate.count)
                for i in 0..<act.count { act[i] = DenseOps.silu(gate[i]) * up[i] }
                return try project(act, tokens: count, inputs: ff, base + names[2] + ".weight", outputs: h)
            }
            for i in 0..<x.count { x[i] += output[i] }
        }
        DenseOps.rmsNorm(&x, width: h, weight: try weight("model.norm.weight"), epsilon: eps)
        let head = weights.has("lm_head.weight") ? "lm_head.weight" : "model.embed_tokens.weight"
        return try project(x, tokens: t, inputs: h, head, outputs: spec.vocabularySize)
    }
}
