// The row-deterministic f32 product of row_gemm.h: an AVX2 + FMA path (3 rows × 4 columns at a time, columns in
// panels that stay in L2) and a portable path with the same arithmetic, element for element.
#include "row_gemm.h"
#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static int forcePortable = 0;

int moeq_row_gemm_force_portable(int on) {
    int previous = forcePortable;
    forcePortable = on;
    return previous;
}

// ((p0+p4)+(p2+p6)) + ((p1+p5)+(p3+p7)): the order of the AVX reduction below.
static inline float reduce8(const float p[8]) { return ((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7])); }

static float dotPortable(const float *a, const float *b, long k) {
    float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long i = 0;
    for (; i + 8 <= k; i += 8)
        for (int l = 0; l < 8; l++) p[l] = fmaf(a[i + l], b[i + l], p[l]);
    if (i < k)
        for (int l = 0; l < 8; l++) {
            float x = i + l < k ? a[i + l] : 0.0f, y = i + l < k ? b[i + l] : 0.0f;
            p[l] = fmaf(x, y, p[l]);
        }
    return reduce8(p);
}

static void gemmPortable(const float *a, long m, long k, const float *b, long n, float *c, long j0, long j1) {
    for (long i = 0; i < m; i++)
        for (long j = j0; j < j1; j++) c[i * n + j] = dotPortable(a + i * k, b + j * k, k);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static inline float reduceVector(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // p[l] + p[l+4]
    __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));                                    // s0+s2, s1+s3
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));                     // (s0+s2) + (s1+s3)
}

__attribute__((target("avx2,fma"))) static inline __m256i tailMask(long remaining) {
    const int lanes[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)remaining), _mm256_loadu_si256((const __m256i *)lanes));
}

__attribute__((target("avx2,fma"))) static float dotVector(const float *a, const float *b, long k) {
    __m256 acc = _mm256_setzero_ps();
    long i = 0;
    for (; i + 8 <= k; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    if (i < k) {
        __m256i mask = tailMask(k - i);
        acc = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, mask), _mm256_maskload_ps(b + i, mask), acc);
    }
    return reduceVector(acc);
}

// 3 rows of A against 4 rows of B: twelve accumulators, each exactly dotVector's.
__attribute__((target("avx2,fma"))) static void block3x4(const float *a, const float *b, long k, float *c, long ldc) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
    __m256 c10 = c00, c11 = c00, c12 = c00, c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    const float *a0 = a, *a1 = a + k, *a2 = a + 2 * k;
    const float *b0 = b, *b1 = b + k, *b2 = b + 2 * k, *b3 = b + 3 * k;
    long i = 0;
    __m256 x0, x1, x2, y;
#define MOEQ_STEP(LOAD)                                                   \
    x0 = LOAD(a0 + i), x1 = LOAD(a1 + i), x2 = LOAD(a2 + i);              \
    y = LOAD(b0 + i);                                                     \
    c00 = _mm256_fmadd_ps(x0, y, c00), c10 = _mm256_fmadd_ps(x1, y, c10), \
    c20 = _mm256_fmadd_ps(x2, y, c20);                                    \
    y = LOAD(b1 + i);                                                     \
    c01 = _mm256_fmadd_ps(x0, y, c01), c11 = _mm256_fmadd_ps(x1, y, c11), \
    c21 = _mm256_fmadd_ps(x2, y, c21);                                    \
    y = LOAD(b2 + i);                                                     \
    c02 = _mm256_fmadd_ps(x0, y, c02), c12 = _mm256_fmadd_ps(x1, y, c12), \
    c22 = _mm256_fmadd_ps(x2, y, c22);                                    \
    y = LOAD(b3 + i);                                                     \
    c03 = _mm256_fmadd_ps(x0, y, c03), c13 = _mm256_fmadd_ps(x1, y, c13), c23 = _mm256_fmadd_ps(x2, y, c23);
    for (; i + 8 <= k; i += 8) { MOEQ_STEP(_mm256_loadu_ps) }
    if (i < k) {
        __m256i mask = tailMask(k - i);
#define MOEQ_MASKED(p) _mm256_maskload_ps((p), mask)
        MOEQ_STEP(MOEQ_MASKED)
#undef MOEQ_MASKED
    }
#undef MOEQ_STEP
    c[0] = reduceVector(c00), c[1] = reduceVector(c01), c[2] = reduceVector(c02), c[3] = reduceVector(c03);
    c[ldc] = reduceVector(c10), c[ldc + 1] = reduceVector(c11), c[ldc + 2] = reduceVector(c12), c[ldc + 3] = reduceVector(c13);
    c[2 * ldc] = reduceVector(c20), c[2 * ldc + 1] = reduceVector(c21), c[2 * ldc + 2] = reduceVector(c22);
    c[2 * ldc + 3] = reduceVector(c23);
}

__attribute__((target("avx2,fma"))) static void gemmVector(
    const float *a, long m, long k, const float *b, long n, float *c, long j0, long j1) {
    // Column panels of about 256 KiB of B, reused by every row of A.
    long panel = (65536 / (k > 0 ? k : 1)) & ~3L;
    if (panel < 4) panel = 4;
    for (long p0 = j0; p0 < j1; p0 += panel) {
        long p1 = p0 + panel < j1 ? p0 + panel : j1;
        long i = 0;
        for (; i + 3 <= m; i += 3) {
            long j = p0;
            for (; j + 4 <= p1; j += 4) block3x4(a + i * k, b + j * k, k, c + i * n + j, n);
            for (; j < p1; j++)
                for (long r = i; r < i + 3; r++) c[r * n + j] = dotVector(a + r * k, b + j * k, k);
        }
        for (; i < m; i++)
            for (long j = p0; j < p1; j++) c[i * n + j] = dotVector(a + i * k, b + j * k, k);
    }
}
#endif

int moeq_row_gemm_vectorized(void) {
#if defined(__x86_64__)
    return !forcePortable && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

void moeq_row_gemm(const float *a, long m, long k, const float *b, long n, float *c, long columnStart, long columnEnd) {
#if defined(__x86_64__)
    if (moeq_row_gemm_vectorized()) {
        gemmVector(a, m, k, b, n, c, columnStart, columnEnd);
        return;
    }
#endif
    gemmPortable(a, m, k, b, n, c, columnStart, columnEnd);
}
