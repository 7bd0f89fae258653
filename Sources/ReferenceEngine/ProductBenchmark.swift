// `moeq bench product`: the engine's row-exact f32 product against OpenBLAS's sgemm (the roofline the engine is held
// to), same shapes and threads, measured in the same run; the fastest of `repeats` counts.
import COpenBLAS
import CRowGEMM
import Foundation

public enum ProductBenchmark {
    public struct Row: Sendable {
        public let rows: Int, inner: Int, columns: Int, threads: Int
        public let oursGFLOPS: Double, openBLASGFLOPS: Double
        /// Largest |ours − OpenBLAS| relative to the largest |OpenBLAS| value (both are f32 sums in different orders).
        public let relativeDifference: Double
    }

    /// Each shape (m, k, n) at each thread count.
    public static func run(shapes: [(Int, Int, Int)], threads: [Int], repeats: Int) -> [Row] {
        var rows: [Row] = []
        let blasThreads = openblas_get_num_threads()
        defer { openblas_set_num_threads(blasThreads) }
        for (m, k, n) in shapes {
            let a = (0..<(m * k)).map { Float(($0 &* 7919) % 23) / 11 - 1 }
            let b = (0..<(n * k)).map { Float(($0 &* 104_729) % 31) / 15 - 1 }
            var ours = [Float](repeating: 0, count: m * n), theirs = ours
            for t in threads {
                openblas_set_num_threads(Int32(t))
                let flops = 2 * Double(m) * Double(n) * Double(k)
                let oursSeconds = fastest(repeats) {
                    a.withUnsafeBufferPointer { a in
                        b.withUnsafeBufferPointer { b in
                            ours.withUnsafeMutableBufferPointer { c in
                                // Columns split over `t` threads, as the engine splits them.
                                let step = (n + t - 1) / t
                                let task = Columns(a: a.baseAddress!, b: b.baseAddress!, c: c.baseAddress!, m: m, k: k, n: n, step: step)
                                DispatchQueue.concurrentPerform(iterations: t) { task.run($0) }
                            }
                        }
                    }
                }
                let blasSeconds = fastest(repeats) {
                    a.withUnsafeBufferPointer { a in
                        b.withUnsafeBufferPointer { b in
                            theirs.withUnsafeMutableBufferPointer {
                                Matrix.multiplyTransposed(a, rows: m, inner: k, b, columns: n, into: $0)
                            }
                        }
                    }
                }
                let scale = theirs.reduce(Float(0)) { max($0, abs($1)) }
                let difference = zip(ours, theirs).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
                rows.append(
                    Row(
                        rows: m, inner: k, columns: n, threads: t, oursGFLOPS: flops / oursSeconds / 1e9,
                        openBLASGFLOPS: flops / blasSeconds / 1e9, relativeDifference: Double(difference / max(scale, 1e-30))))
            }
        }
        return rows
    }

    private struct Columns: @unchecked Sendable {
        let a: UnsafePointer<Float>, b: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>
        let m: Int, k: Int, n: Int, step: Int
        func run(_ share: Int) {
            let start = share * step, end = min(n, start + step)
            if start < end { moeq_row_gemm(a, m, k, b, n, c, start, end) }
        }
    }

    private static func fastest(_ repeats: Int, _ body: () -> Void) -> Double {
        body()  // warm-up: pages, caches, thread pools
        var best = Double.infinity
        for _ in 0..<max(repeats, 1) {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }
}
