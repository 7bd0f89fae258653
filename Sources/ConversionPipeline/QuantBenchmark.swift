// `moeq bench quant`: GB/s of f32 input per type, one thread and all threads, and ggml's reference on the
// same data in the same run when its library is given, with the ratio and a byte-equality check.
import Dispatch
import QuantKernels

public struct QuantBenchmarkRow: Sendable {
    public let type: QuantType
    public let withImportance: Bool
    public let oneThreadGBps: Double
    public let allThreadsGBps: Double
    public let ggmlGBps: Double?
    /// nil without the peer; true when our bytes equal ggml's.
    public let sameBytesAsGGML: Bool?
}

public enum QuantBenchmark {
    /// Seconds of the fastest of `repeats` runs of `body`.
    static func best(_ repeats: Int, _ body: () -> Void) -> Double {
        var best = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }

    /// Measures every type in `types` on a seeded Gaussian `rows × width` matrix (×0.02, like real weights).
    public static func run(
        types: [QuantType], rows: Int, width: Int, threads: Int, importance: Bool,
        peer: GGMLPeer?, repeats: Int = 3
    ) -> [QuantBenchmarkRow] {
        var state: UInt64 = 42
        func uniform() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24)
        }
        let input = (0..<(rows * width)).map { _ in (uniform() + uniform() + uniform() + uniform() - 2) * 0.035 }
        let weights = (0..<width).map { _ in 0.1 + 4 * uniform() * uniform() }
        let gigabytes = Double(rows * width * 4) / 1e9
        var results: [QuantBenchmarkRow] = []
        for type in types {
            guard let rowBytes = type.rowBytes(width: width) else { continue }
            var ours = [UInt8](repeating: 0, count: rows * rowBytes)
            var theirs = [UInt8](repeating: 0, count: rows * rowBytes)
            // Types ggml cannot quantize without an importance matrix are always measured with one.
            let useWeights = (importance && type.layout.usesImportance) || type.layout.requiresImportance
            let (one, all, ggml): (Double, Double, Double?) = input.withUnsafeBufferPointer { source in
                weights.withUnsafeBufferPointer { w in
                    let imatrix = useWeights ? w : nil
                    // One row first on both sides, so one-time set-up (the i-quants' lattice neighbour lists,
                    // ggml_quantize_init) is not timed.
                    let row = UnsafeBufferPointer(rebasing: source[0..<width])
                    ours.withUnsafeMutableBytes {
                        _ = try? QuantCodec.quantize(
                            type, row, rows: 1, width: width, importance: imatrix,
                            into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<rowBytes]))
                    }
                    if let peer {
                        theirs.withUnsafeMutableBytes {
                            _ = peer.quantize(
                                type, row, rows: 1, width: width, importance: imatrix,
                                into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<rowBytes]))
                        }
                    }
                    let one = best(repeats) {
                        ours.withUnsafeMutableBytes {
                            try? QuantCodec.quantize(type, source, rows: rows, width: width, importance: imatrix, into: $0, threads: 1)
                        }
                    }
                    let all = best(repeats) {
                        ours.withUnsafeMutableBytes {
                            try? QuantCodec.quantize(
                                type, source, rows: rows, width: width, importance: imatrix, into: $0, threads: threads)
                        }
                    }
                    var ggml: Double? = nil
                    if let peer {
                        ggml = best(repeats) {
                            theirs.withUnsafeMutableBytes {
                                _ = peer.quantize(type, source, rows: rows, width: width, importance: imatrix, into: $0)
                            }
                        }
                    }
                    return (one, all, ggml)
                }
            }
            results.append(
                QuantBenchmarkRow(
                    type: type, withImportance: useWeights, oneThreadGBps: gigabytes / one,
                    allThreadsGBps: gigabytes / all, ggmlGBps: ggml.map { gigabytes / $0 },
                    sameBytesAsGGML: peer == nil ? nil : ours == theirs))
        }
        return results
    }
}
