// Dense f32 matrix products through OpenBLAS: the one kernel the reference engine's batched forward pass
// spends its time in (tokens grouped per expert, one sgemm per expert).
import COpenBLAS
import CRowGEMM

public enum Matrix {
    /// C[m×n] = A[m×k] · Bᵀ where B is stored [n×k] row-major — the PyTorch `[out, in]` weight layout,
    /// so `multiply(activations, weight)` is `activations @ weight.T`.
    public static func multiplyTransposed(
        _ a: UnsafeBufferPointer<Float>, rows m: Int, inner k: Int,
        _ b: UnsafeBufferPointer<Float>, columns n: Int,
        into c: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(a.count >= m * k && b.count >= n * k && c.count >= m * n, "matrix buffers too small")
        guard m > 0, n > 0 else { return }
        if k == 0 { for i in 0..<(m * n) { c[i] = 0 }; return }
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k),
            1, a.baseAddress, Int32(k), b.baseAddress, Int32(k), 0, c.baseAddress, Int32(n))
    }

    /// The same product by row_gemm.h: each element computed identically wherever its row sits (eight lane partial
    /// sums over k, fused multiply-adds in order, one fixed reduction), so a window's numbers do not depend on which
    /// other windows share its batch, on the thread count or on the CPU. Columns split over `Parallel.threads` when the
    /// product is large enough to pay for it.
    public static func multiplyTransposedRowExact(
        _ a: UnsafeBufferPointer<Float>, rows m: Int, inner k: Int,
        _ b: UnsafeBufferPointer<Float>, columns n: Int,
        into c: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(a.count >= m * k && b.count >= n * k && c.count >= m * n, "matrix buffers too small")
        guard m > 0, n > 0, let pa = a.baseAddress, let pb = b.baseAddress, let pc = c.baseAddress else { return }
        let shares = m * n * k >= 1 << 20 ? min(Parallel.threads, max(n / 16, 1)) : 1
        let step = (n + shares - 1) / shares
        Parallel.forEach(shares) { s in
            let start = s * step, end = min(n, start + step)
            if start < end { moeq_row_gemm(pa, m, k, pb, n, pc, start, end) }
        }
    }

    /// Plain triple loop with the same contract, the reference the BLAS path is tested against.
    public static func multiplyTransposedReference(_ a: [Float], rows m: Int, inner k: Int, _ b: [Float], columns n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var sum: Double = 0
                for t in 0..<k { sum += Double(a[i * k + t]) * Double(b[j * k + t]) }
                c[i * n + j] = Float(sum)
            }
        }
        return c
    }
}
