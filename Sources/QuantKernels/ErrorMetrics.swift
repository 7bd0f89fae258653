// Per-tensor quantization error: RMSE, max |error|, cosine similarity, and imatrix-weighted variants.

public struct ErrorMetrics: Sendable, Equatable {
    public var rmse: Double = 0
    public var maxAbsoluteError: Double = 0
    public var cosineSimilarity: Double = 1
    /// √(Σ w·e² / Σ w) with w = the importance of each value's column (nil without an imatrix).
    public var weightedRMSE: Double? = nil
    public var count = 0

    /// Compares `reference` and `approximation` (row-major rows of `width`); `importance` has `width` values.
    public init(
        reference: UnsafeBufferPointer<Float>, approximation: UnsafeBufferPointer<Float>,
        width: Int, importance: UnsafeBufferPointer<Float>? = nil
    ) {
        let n = min(reference.count, approximation.count)
        var squared = 0.0, dot = 0.0, referenceEnergy = 0.0, approximationEnergy = 0.0, maxError = 0.0
        var weighted = 0.0, weightSum = 0.0
        for i in 0..<n {
            let a = Double(reference[i]), b = Double(approximation[i]), e = a - b
            squared += e * e
            dot += a * b
            referenceEnergy += a * a
            approximationEnergy += b * b
            maxError = max(maxError, abs(e))
            if let importance, width > 0 {
                let w = Double(importance[i % width])
                weighted += w * e * e
                weightSum += w
            }
        }
        count = n
        rmse = n > 0 ? (squared / Double(n)).squareRoot() : 0
        maxAbsoluteError = maxError
        let norms = (referenceEnergy * approximationEnergy).squareRoot()
        cosineSimilarity = norms > 0 ? dot / norms : (referenceEnergy == approximationEnergy ? 1 : 0)
        if importance != nil { weightedRMSE = weightSum > 0 ? (weighted / weightSum).squareRoot() : 0 }
    }

    public init(reference: [Float], approximation: [Float], width: Int, importance: [Float]? = nil) {
        self = reference.withUnsafeBufferPointer { r in
            approximation.withUnsafeBufferPointer { a in
                if let importance {
                    return importance.withUnsafeBufferPointer { ErrorMetrics(reference: r, approximation: a, width: width, importance: $0) }
                }
                return ErrorMetrics(reference: r, approximation: a, width: width)
            }
        }
    }
}
