// The engine's element-wise exponentials, vectorized: log-softmax of a row of logits (the scoring step of every
// validation), the attention softmax and SwiGLU's SiLU. The exponential is a Cephes-style polynomial within 1 ulp of
// glibc's expf (0 below −87.3, ∞ above 88.7). Sums run over eight lanes in a fixed order. The AVX2 and portable paths
// run the same operations in the same order with no contraction into FMAs, so they give the same bits.
#include "row_gemm.h"
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

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
// The AVX2 paths: the scalar bodies above written eight lanes at a time with intrinsics (the compiler left them
// scalar: the clamps, the rounding and the exponent's bit tricks). Every lane runs the scalar operations in the same
// order, without FMAs (no "fma" target here, contraction off), so each value has the same bits as the portable path.

// expPolynomial on eight lanes: the same clamps (as compares and blends, NaN passing through as in the ternaries),
// the same products and sums, 2^(n−1) · 2 above 0.
__attribute__((target("avx2"))) static inline __m256 expPolynomial8(__m256 x) {
    const __m256 low = _mm256_set1_ps(-87.33654f), high = _mm256_set1_ps(88.72283f);
    __m256 below = _mm256_cmp_ps(x, low, _CMP_LT_OQ), above = _mm256_cmp_ps(x, high, _CMP_GT_OQ);
    __m256 clamped = _mm256_blendv_ps(_mm256_blendv_ps(x, high, above), low, below);
    __m256 n = _mm256_round_ps(
        _mm256_mul_ps(clamped, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_sub_ps(clamped, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
    r = _mm256_sub_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(-2.12194440e-4f)));
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, _mm256_mul_ps(r, r)), r), _mm256_set1_ps(1.0f));
    __m256i k = _mm256_cvttps_epi32(n), positive = _mm256_cmpgt_epi32(k, _mm256_setzero_si256());
    // positive is −1 where k > 0: k + positive = k − (k > 0).
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_add_epi32(k, positive), _mm256_set1_epi32(127)), 23);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    y = _mm256_blendv_ps(y, _mm256_mul_ps(y, _mm256_set1_ps(2.0f)), _mm256_castsi256_ps(positive));
    y = _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), above);
    return _mm256_blendv_ps(y, _mm256_setzero_ps(), below);
}

// The largest of x[0..n) and `start` by the scalar rule (a value replaces the maximum only when greater, so NaNs never
// do); lanes first, then the lanes in order. Equal values of different sign (±0) may resolve to the other zero, which
// changes no difference x − top and no sum.
__attribute__((target("avx2"))) static inline float maximum8(const float *x, long n, float start) {
    __m256 top8 = _mm256_set1_ps(start);
    long i = 0;
    for (; i + LANES <= n; i += LANES) {
        __m256 v = _mm256_loadu_ps(x + i);
        top8 = _mm256_blendv_ps(top8, v, _mm256_cmp_ps(v, top8, _CMP_GT_OQ));
    }
    float lanes[LANES], top = start;
    _mm256_storeu_ps(lanes, top8);
    for (int l = 0; l < LANES; l++) top = lanes[l] > top ? lanes[l] : top;
    for (; i < n; i++) top = x[i] > top ? x[i] : top;
    return top;
}

__attribute__((target("avx2"))) static void softmaxVector(float *x, long n, float scale, float sink) {
    long i = 0;
    for (; i + LANES <= n; i += LANES) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(scale)));
    for (; i < n; i++) x[i] = x[i] * scale;
    float top = maximum8(x, n, sink);
    __m256 top8 = _mm256_set1_ps(top), acc8 = _mm256_setzero_ps();
    for (i = 0; i + LANES <= n; i += LANES) {
        __m256 e = expPolynomial8(_mm256_sub_ps(_mm256_loadu_ps(x + i), top8));
        _mm256_storeu_ps(x + i, e);
        acc8 = _mm256_add_ps(acc8, e);
    }
    float acc[LANES];
    _mm256_storeu_ps(acc, acc8);
    float total = sink == -INFINITY ? 0.0f : expPolynomial(sink - top);
    for (int l = 0; l < LANES; l++) total += acc[l];
    for (; i < n; i++) {
        x[i] = expPolynomial(x[i] - top);
        total += x[i];
    }
    __m256 total8 = _mm256_set1_ps(total);
    for (i = 0; i + LANES <= n; i += LANES) _mm256_storeu_ps(x + i, _mm256_div_ps(_mm256_loadu_ps(x + i), total8));
    for (; i < n; i++) x[i] = x[i] / total;
}

__attribute__((target("avx2"))) static void siluVector(const float *gate, const float *up, float *out, long n) {
    long i = 0;
    for (; i + LANES <= n; i += LANES) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = expPolynomial8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        __m256 silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) out[i] = gate[i] / (1.0f + expPolynomial(-gate[i])) * up[i];
}
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
__attribute__((target("avx2"))) static void logSoftmaxVector(const float *x, long n, double *out) {
    float top = maximum8(x, n, -INFINITY);
    __m256 top8 = _mm256_set1_ps(top);
    double total = 0;
    long i = 0;
    for (; i + BLOCK <= n; i += BLOCK) {
        __m256 acc8 = _mm256_setzero_ps();
        for (long j = 0; j < BLOCK; j += LANES) acc8 = _mm256_add_ps(acc8, expPolynomial8(_mm256_sub_ps(_mm256_loadu_ps(x + i + j), top8)));
        float acc[LANES];
        _mm256_storeu_ps(acc, acc8);
        for (int l = 0; l < LANES; l++) total += (double)acc[l];
    }
    for (; i < n; i++) total += (double)expPolynomial(x[i] - top);
    double logSum = log(total) + (double)top;
    __m256d logSum4 = _mm256_set1_pd(logSum);
    long k = 0;
    for (; k + 4 <= n; k += 4) _mm256_storeu_pd(out + k, _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + k)), logSum4));
    for (; k < n; k++) out[k] = (double)x[k] - logSum;
}
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
