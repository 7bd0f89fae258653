// C[m×n] = A[m×k] · Bᵀ (B stored [n×k], row-major: PyTorch's [out, in] weight layout), every element computed the same
// way wherever its row or column sits: one fused multiply-add chain over k in order, starting from zero. A row's result
// therefore does not depend on how many other rows are in the product, on which thread computes it, or on whether the
// CPU has AVX2 (the portable path does the same operations with fmaf). OpenBLAS gives no such guarantee (its results move with M), which the reference engine needs
// so that batching windows together, or splitting them across machines, changes no number.
#ifndef MOEQ_ROW_GEMM_H
#define MOEQ_ROW_GEMM_H

/// Columns [columnStart, columnEnd) of C for all m rows; ldc = n. Safe to call concurrently on disjoint column ranges.
void moeq_row_gemm(const float *a, long m, long k, const float *b, long n, float *c, long columnStart, long columnEnd);

/// 1 when the AVX2 + FMA path runs on this CPU, 0 for the portable one.
int moeq_row_gemm_vectorized(void);

/// Forces a path (tests compare them): 1 the portable one everywhere, 2 the product's AVX2 6 × 16 tile even where
/// AVX-512 is present, 0 the best this CPU has; returns the previous setting.
int moeq_row_gemm_force_portable(int on);

/// log p of one row of `n` logits into `out` (f64): x − max − log Σ exp(x − max), the exponentials by a polynomial
/// within 1 ulp of expf, the same bits on the AVX2 and the portable path (exponentials.c).
void moeq_log_softmax(const float *x, long n, double *out);

/// Softmax of x[0..n) in place after multiplying by `scale`; `sink` (−∞: none) is one more logit in the sum with no
/// output (gpt-oss). The same bits on both paths.
void moeq_softmax(float *x, long n, float scale, float sink);

/// out = silu(gate) · up element-wise, silu(g) = g / (1 + exp(−g)). The same bits on both paths.
void moeq_silu_product(const float *gate, const float *up, float *out, long n);

/// `count` blocks of Q4_K (bits 4: 144 bytes → 256 values) or Q6_K (bits 6: 210 bytes → 256 values) decoded into `out`
/// with ggml's arithmetic, value for value the Swift decoders' (dequantize.c). Returns 0, writing nothing, when this CPU
/// lacks AVX2 / F16C or `bits` is neither: the caller decodes in Swift then.
int moeq_dequantize_k(int bits, const void *blocks, long count, float *out);

/// glibc: keep freed blocks up to `mmapThreshold` bytes in the heap (not mapped and unmapped per allocation) and hand
/// memory back to the system only when `trimThreshold` bytes are free. Returns 1 when both were set (0 elsewhere).
int moeq_keep_freed_memory(long mmapThreshold, long trimThreshold);

#endif
