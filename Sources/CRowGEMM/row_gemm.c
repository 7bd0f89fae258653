// The row-deterministic f32 product of row_gemm.h. AVX2 + FMA path: B packed 16 columns at a time as [k][16], rows of
// A taken 6 at a time, 12 accumulators of 8 columns each, a[i][k] broadcast against the packed row (the usual register
// tile of a BLAS kernel, without splitting k, so every element is one chain). Row tails run the same tile on a
// zero-padded copy. The portable path computes each element's chain with fmaf.
#include "row_gemm.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static int forcePortable = 0;

int moeq_row_gemm_force_portable(int on) {
    int previous = forcePortable;
    forcePortable = on;
    return previous;
}

static void gemmPortable(const float *a, long m, long k, const float *b, long n, float *c, long j0, long j1) {
    for (long i = 0; i < m; i++)
        for (long j = j0; j < j1; j++) {
            const float *x = a + i * k, *y = b + j * k;
            float sum = 0.0f;
            for (long t = 0; t < k; t++) sum = fmaf(x[t], y[t], sum);
            c[i * n + j] = sum;
        }
}

#if defined(__x86_64__)
enum { TileRows = 6, TileColumns = 16 };

// C tile (rows × columns stored, up to 6 × 16) = A rows · packed panel; `a` holds 6 rows of `lda` floats.
__attribute__((target("avx2,fma"))) static void tile6x16(
    const float *a, long lda, const float *panel, long k, float *c, long ldc, long rows, long columns) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda, *a5 = a + 5 * lda;
    for (long t = 0; t < k; t++) {
        __m256 y0 = _mm256_loadu_ps(panel + t * TileColumns), y1 = _mm256_loadu_ps(panel + t * TileColumns + 8);
        __m256 x = _mm256_broadcast_ss(a0 + t);
        c00 = _mm256_fmadd_ps(x, y0, c00), c01 = _mm256_fmadd_ps(x, y1, c01);
        x = _mm256_broadcast_ss(a1 + t);
        c10 = _mm256_fmadd_ps(x, y0, c10), c11 = _mm256_fmadd_ps(x, y1, c11);
        x = _mm256_broadcast_ss(a2 + t);
        c20 = _mm256_fmadd_ps(x, y0, c20), c21 = _mm256_fmadd_ps(x, y1, c21);
        x = _mm256_broadcast_ss(a3 + t);
        c30 = _mm256_fmadd_ps(x, y0, c30), c31 = _mm256_fmadd_ps(x, y1, c31);
        x = _mm256_broadcast_ss(a4 + t);
        c40 = _mm256_fmadd_ps(x, y0, c40), c41 = _mm256_fmadd_ps(x, y1, c41);
        x = _mm256_broadcast_ss(a5 + t);
        c50 = _mm256_fmadd_ps(x, y0, c50), c51 = _mm256_fmadd_ps(x, y1, c51);
    }
    float out[TileRows][TileColumns];
    _mm256_storeu_ps(out[0], c00), _mm256_storeu_ps(out[0] + 8, c01), _mm256_storeu_ps(out[1], c10);
    _mm256_storeu_ps(out[1] + 8, c11), _mm256_storeu_ps(out[2], c20), _mm256_storeu_ps(out[2] + 8, c21);
    _mm256_storeu_ps(out[3], c30), _mm256_storeu_ps(out[3] + 8, c31), _mm256_storeu_ps(out[4], c40);
    _mm256_storeu_ps(out[4] + 8, c41), _mm256_storeu_ps(out[5], c50), _mm256_storeu_ps(out[5] + 8, c51);
    for (long r = 0; r < rows; r++) memcpy(c + r * ldc, out[r], (size_t)columns * sizeof(float));
}

// The AVX-512 tile: two adjacent packed panels as one 6 × 32 tile, 12 accumulators of 16 columns. Half the
// instructions of two 6 × 16 tiles for the same multiply-adds, and each element the same fused chain, so the same bits.
__attribute__((target("avx512f"))) static void tile6x32(
    const float *a, long lda, const float *panel0, const float *panel1, long k, float *c, long ldc, long rows, long columns) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *a0 = a, *a1 = a + lda, *a2 = a + 2 * lda, *a3 = a + 3 * lda, *a4 = a + 4 * lda, *a5 = a + 5 * lda;
    for (long t = 0; t < k; t++) {
        __m512 y0 = _mm512_loadu_ps(panel0 + t * TileColumns), y1 = _mm512_loadu_ps(panel1 + t * TileColumns);
        __m512 x = _mm512_set1_ps(a0[t]);
        c00 = _mm512_fmadd_ps(x, y0, c00), c01 = _mm512_fmadd_ps(x, y1, c01);
        x = _mm512_set1_ps(a1[t]);
        c10 = _mm512_fmadd_ps(x, y0, c10), c11 = _mm512_fmadd_ps(x, y1, c11);
        x = _mm512_set1_ps(a2[t]);
        c20 = _mm512_fmadd_ps(x, y0, c20), c21 = _mm512_fmadd_ps(x, y1, c21);
        x = _mm512_set1_ps(a3[t]);
        c30 = _mm512_fmadd_ps(x, y0, c30), c31 = _mm512_fmadd_ps(x, y1, c31);
        x = _mm512_set1_ps(a4[t]);
        c40 = _mm512_fmadd_ps(x, y0, c40), c41 = _mm512_fmadd_ps(x, y1, c41);
        x = _mm512_set1_ps(a5[t]);
        c50 = _mm512_fmadd_ps(x, y0, c50), c51 = _mm512_fmadd_ps(x, y1, c51);
    }
    float out[TileRows][2 * TileColumns];
    _mm512_storeu_ps(out[0], c00), _mm512_storeu_ps(out[0] + 16, c01), _mm512_storeu_ps(out[1], c10);
    _mm512_storeu_ps(out[1] + 16, c11), _mm512_storeu_ps(out[2], c20), _mm512_storeu_ps(out[2] + 16, c21);
    _mm512_storeu_ps(out[3], c30), _mm512_storeu_ps(out[3] + 16, c31), _mm512_storeu_ps(out[4], c40);
    _mm512_storeu_ps(out[4] + 16, c41), _mm512_storeu_ps(out[5], c50), _mm512_storeu_ps(out[5] + 16, c51);
    for (long r = 0; r < rows; r++) memcpy(c + r * ldc, out[r], (size_t)columns * sizeof(float));
}

// One row block against one or two panels: the 6 × 32 AVX-512 tile where asked and two panels remain, else 6 × 16.
__attribute__((target("avx2,fma"))) static void rowBlock(
    const float *a, long k, long r0, long r1, const float *panel, long panels, long columns, float *c, long n, float *padded,
    int wide) {
    long i = r0;
    for (; i + TileRows <= r1; i += TileRows) {
        if (wide && panels == 2)
            tile6x32(a + i * k, k, panel, panel + k * TileColumns, k, c + i * n, n, TileRows, columns);
        else
            tile6x16(a + i * k, k, panel, k, c + i * n, n, TileRows, columns);
    }
    if (i < r1) {
        memset(padded, 0, (size_t)k * TileRows * sizeof(float));
        memcpy(padded, a + i * k, (size_t)(r1 - i) * k * sizeof(float));
        if (wide && panels == 2)
            tile6x32(padded, k, panel, panel + k * TileColumns, k, c + i * n, n, r1 - i, columns);
        else
            tile6x16(padded, k, panel, k, c + i * n, n, r1 - i, columns);
    }
}

__attribute__((target("avx2,fma"))) static int gemmVector(
    const float *a, long m, long k, const float *b, long n, float *c, long j0, long j1, int wide) {
    if (k <= 0) {
        for (long i = 0; i < m; i++)
            for (long j = j0; j < j1; j++) c[i * n + j] = 0.0f;
        return 1;
    }
    // Blocking (changes which tile runs when, never an element's chain): columns in chunks whose packed panels take
    // about 512 KiB (L2), rows in blocks of about 96 KiB of A, every panel of the chunk applied to a block before the
    // next block, so A is read from memory once per chunk rather than once per panel.
    long panelsPerChunk = (131072 / (k * TileColumns));
    if (panelsPerChunk < 1) panelsPerChunk = 1;
    if (wide && panelsPerChunk % 2) panelsPerChunk++;  // whole pairs for the 6 × 32 tile
    long blockRows = (24576 / k) / TileRows * TileRows;
    if (blockRows < TileRows) blockRows = TileRows;
    long chunkColumns = panelsPerChunk * TileColumns;
    float *panels = malloc((size_t)k * chunkColumns * sizeof(float));
    float *padded = malloc((size_t)k * TileRows * sizeof(float));
    if (!panels || !padded) {
        free(panels), free(padded);
        return 0;
    }
    for (long q = j0; q < j1; q += chunkColumns) {
        long q1 = q + chunkColumns < j1 ? q + chunkColumns : j1;
        // Pack columns q … q1 of Bᵀ as [panel][k][16]; lanes past the range are zero and never stored.
        for (long p = q; p < q1; p += TileColumns) {
            float *panel = panels + ((p - q) / TileColumns) * k * TileColumns;
            long columns = q1 - p < TileColumns ? q1 - p : TileColumns;
            for (long t = 0; t < k; t++)
                for (long l = 0; l < TileColumns; l++) panel[t * TileColumns + l] = l < columns ? b[(p + l) * k + t] : 0.0f;
        }
        for (long r0 = 0; r0 < m; r0 += blockRows) {
            long r1 = r0 + blockRows < m ? r0 + blockRows : m;
            long step = wide ? 2 * TileColumns : TileColumns;
            for (long p = q; p < q1; p += step) {
                const float *panel = panels + ((p - q) / TileColumns) * k * TileColumns;
                long columns = q1 - p < step ? q1 - p : step;
                long used = (columns + TileColumns - 1) / TileColumns;
                rowBlock(a, k, r0, r1, panel, used, columns, c + p, n, padded, wide);
            }
        }
    }
    free(panels), free(padded);
    return 1;
}
#endif

// The 6 × 32 AVX-512 tile: on CPUs with AVX-512F unless forced off (level 2 of moeq_row_gemm_force_portable).
static inline int wide(void) {
#if defined(__x86_64__)
    return forcePortable == 0 && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

int moeq_row_gemm_vectorized(void) {
#if defined(__x86_64__)
    return forcePortable != 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

void moeq_row_gemm(const float *a, long m, long k, const float *b, long n, float *c, long columnStart, long columnEnd) {
#if defined(__x86_64__)
    if (moeq_row_gemm_vectorized() && gemmVector(a, m, k, b, n, c, columnStart, columnEnd, wide())) return;
#endif
    gemmPortable(a, m, k, b, n, c, columnStart, columnEnd);
}

int moeq_keep_freed_memory(long mmapThreshold, long trimThreshold) {
#if defined(__GLIBC__)
    return mallopt(M_MMAP_THRESHOLD, (int)mmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, (int)trimThreshold) == 1;
#else
    (void)mmapThreshold, (void)trimThreshold;
    return 0;
#endif
}
