// The forward passes as stages — embed, one decoder layer, final norm + head — so windows can advance one layer at a
// time (layer-major: each layer's weights read and decoded once for all windows) or one window at a time; the per-window
// arithmetic is the same code either way, so both orders give the same logits bit for bit.
import Foundation
import ModelCatalog
import TensorFormats

public protocol LayerForward {
    var spec: ModelSpec { get }
    var weights: WeightProvider { get }
    var observer: ActivationObserver? { get set }
    /// One decoder layer on the hidden states `x` [tokens × hidden] of one causal window, in place.
    func layer(_ layer: Int, _ x: inout [Float], tokens: Int) throws
}

extension LayerForward {
    /// Token embeddings [tokens × hidden] of one window.
    public func embed(_ ids: [Int]) throws -> [Float] {
        let h = spec.hiddenSize
        let embedding = try weights.weight(.embedding)
        var x = [Float](repeating: 0, count: ids.count * h)
        for (i, id) in ids.enumerated() {
            guard id >= 0, id < spec.vocabularySize else { throw EngineError.token(index: i, id: id, vocabulary: spec.vocabularySize) }
            for j in 0..<h { x[i * h + j] = embedding[id * h + j] }
        }
        return x
    }

    /// Final norm and output head: logits [tokens × vocabulary].
    public func head(_ hidden: [Float], tokens t: Int) throws -> [Float] {
        var x = hidden
        let h = spec.hiddenSize
        DenseOps.rmsNorm(&x, width: h, weight: try weights.weight(.finalNorm), epsilon: Float(spec.rmsNormEpsilon))
        let head: TensorRole = weights.has(.outputHead) ? .outputHead : .embedding
        return try weights.project(x, tokens: t, inputs: h, head, outputs: spec.vocabularySize, observer: observer)
    }

    /// Logits [tokens × vocabulary] for one causal window.
    public func logits(tokens ids: [Int]) throws -> [Float] {
        var x = try embed(ids)
        for layer in 0..<spec.layerCount { try self.layer(layer, &x, tokens: ids.count) }
        return try head(x, tokens: ids.count)
    }
}

/// Layer-major evaluation: the hidden states of all windows advance one layer at a time, so each layer's weights are
/// read (and decoded, through the provider's cache) once per pass rather than once per window.
public enum LayerMajor {
    /// The final hidden states of every window (before the final norm), layer after layer.
    public static func hiddenStates(_ engine: LayerForward, windows: [[Int]]) throws -> [[Float]] {
        var states = try windows.map { try engine.embed($0) }
        for layer in 0..<engine.spec.layerCount {
            for w in windows.indices { try engine.layer(layer, &states[w], tokens: windows[w].count) }
        }
        return states
    }

    /// Logits of every window, computed layer-major; `each` receives window w's logits in window order, so the caller
    /// keeps one window's logits at a time.
    public static func forEachLogits(
        weights: WeightProvider, windows: [[Int]], observer: ActivationObserver? = nil, _ each: (Int, [Float]) throws -> Void
    ) throws {
        var engine = try ReferenceModel.engine(weights: weights)
        engine.observer = observer
        let states = try hiddenStates(engine, windows: windows)
        for w in windows.indices { try each(w, try engine.head(states[w], tokens: windows[w].count)) }
    }
}
