// The engine's element-wise exponentials, vectorized: log-softmax of a row of logits (the scoring step of every
// validation), the attention softmax and SwiGLU's SiLU. The exponential is a Cephes-style polynomial within 1 ulp of
// glibc's expf (0 below −87.3, ∞ above 88.7). Sums run over eight lanes in a fixed order. The AVX2 and portable paths
// run the same operations in the same order with no contraction into FMAs, so they give the same bits.
#include "row_gemm.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#pragma clang fp contract(off)

#define LANES 8
#define BLOCK 64

#define LOG_SOFTMAX_BODY                                                                                                       \
    float top = -INFINITY;                                                                                                     \
    for (long i = 0; i < n; i++) top = x[i] > top ? x[i] : top;                                                                \
    double total = 0;                                                                                                          \
    long i = 0;                                                                                                                \
    for (; i + BLOCK <= n; i += BLOCK) {                                                                                       \
        float acc[LANES] = {0};                                                                                                \
        for (long j = 0; j < BLOCK; j += LANES)                                                                                \
            for (int l = 0; l < LANES; l++) acc[l] += expPolynomial(x[i + j + l] - top);                                      \
        for (int l = 0; l < LANES; l++) total += (double)acc[l];                                                               \
    }                                                                                                                          \
    for (; i < n; i++) total += (double)expPolynomial(x[i] - top);                                                            \
    double logSum = log(total) + (double)top;                                                                                  \
    for (long k = 0; k < n; k++) out[k] = (double)x[k] - logSum;

// exp(x): 0 below −87.3, ∞ above 88.7; 2^n is split as 2^(n−1) · 2 above 0 so that n = 128 (x near 88.7) does not
// overflow the exponent field (for x ≤ 0 that split never happens).
static inline float expPolynomial(float x) {
    const float low = -87.33654f, high = 88.72283f;
    float clamped = x < low ? low : (x > high ? high : x);
    float n = rintf(clamped * 1.44269504088896341f);
    float r = clamped - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    int32_t k = (int32_t)n, positive = k > 0;
    int32_t bits = (k - positive + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    y = positive ? y * 2.0f : y;
    return x < low ? 0.0f : (x > high ? INFINITY : y);
}

// Softmax of x[0..n) after scaling by `scale`, with an optional extra logit `sink` that takes part in the sum and has no
// output (−∞: none).
#define SOFTMAX_BODY                                                                                                           \
    float top = sink;                                                                                                          \
    for (long i = 0; i < n; i++) {                                                                                             \
        x[i] = x[i] * scale;                                                                                                   \
        top = x[i] > top ? x[i] : top;                                                                                         \
    }                                                                                                                          \
    float acc[LANES] = {0};                                                                                                    \
    long i = 0;                                                                                                                \
    for (; i + LANES <= n; i += LANES)                                                                                         \
        for (int l = 0; l < LANES; l++) {                                                                                      \
            x[i + l] = expPolynomial(x[i + l] - top);                                                                         \
            acc[l] += x[i + l];                                                                                                \
        }                                                                                                                      \
    float total = sink == -INFINITY ? 0.0f : expPolynomial(sink - top);                                                       \
    for (int l = 0; l < LANES; l++) total += acc[l];                                                                           \
    for (; i < n; i++) {                                                                                                       \
        x[i] = expPolynomial(x[i] - top);                                                                                     \
        total += x[i];                                                                                                         \
    }                                                                                                                          \
    for (long k = 0; k < n; k++) x[k] = x[k] / total;

#define SILU_BODY                                                                                                              \
    for (long i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expPolynomial(-gate[i])) * up[i];

static void softmaxPortable(float *x, long n, float scale, float sink) { SOFTMAX_BODY }
static void siluPortable(const float *gate, const float *up, float *out, long n) { SILU_BODY }

#if defined(__x86_64__)
__attribute__((target("avx2"))) static void softmaxVector(float *x, long n, float scale, float sink) { SOFTMAX_BODY }
__attribute__((target("avx2"))) static void siluVector(const float *gate, const float *up, float *out, long n) { SILU_BODY }
#endif

void moeq_softmax(float *x, long n, float scale, float sink) {
#if defined(__x86_64__)
    if (moeq_row_gemm_vectorized()) {
        softmaxVector(x, n, scale, sink);
        return;
    }
#endif
    softmaxPortable(x, n, scale, sink);
}

void moeq_silu_product(const float *gate, const float *up, float *out, long n) {
#if defined(__x86_64__)
    if (moeq_row_gemm_vectorized()) {
        siluVector(gate, up, out, n);
        return;
    }
#endif
    siluPortable(gate, up, out, n);
}

static void logSoftmaxPortable(const float *x, long n, double *out) { LOG_SOFTMAX_BODY }

#if defined(__x86_64__)
__attribute__((target("avx2"))) static void logSoftmaxVector(const float *x, long n, double *out) { LOG_SOFTMAX_BODY }
#endif

void moeq_log_softmax(const float *x, long n, double *out) {
#if defined(__x86_64__)
    if (moeq_row_gemm_vectorized()) {
        logSoftmaxVector(x, n, out);
        return;
    }
#endif
    logSoftmaxPortable(x, n, out);
}
