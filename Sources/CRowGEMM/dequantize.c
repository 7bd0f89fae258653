// AVX2 decoders of the two k-quant blocks the engine meets most (Q4_K for most weights of a Q4_K_M file, Q6_K for
// its down projections and heads). Each value is computed by the same f32 operations, in the same order, as the
// Swift decoders of QuantKernels (ggml's dequantize_row_q4_K / q6_K): a scale times a small integer, minus a minimum,
// each rounded on its own (multiply and subtract, never fused). A caller falls back to the Swift decoder when these
// return 0 (no AVX2 / F16C).
#include "row_gemm.h"
#include <stdint.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) static float halfToFloat(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

// 8 unsigned bytes widened to f32 lanes.
__attribute__((target("avx2,fma,f16c"))) static __m256 bytesToFloats(__m128i bytes) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
}

__attribute__((target("avx2,fma,f16c"))) static void q4KBlocks(const uint8_t *x, long blocks, float *y) {
    const __m128i low4 = _mm_set1_epi8(0x0F);
    for (long b = 0; b < blocks; b++, x += 144, y += 256) {
        float d = halfToFloat(x), dmin = halfToFloat(x + 2);
        const uint8_t *scales = x + 4, *qs = x + 16;
        for (int chunk = 0; chunk < 4; chunk++) {
            int sc[2], m[2];
            for (int h = 0; h < 2; h++) {
                int j = 2 * chunk + h;
                if (j < 4) {
                    sc[h] = scales[j] & 63, m[h] = scales[j + 4] & 63;
                } else {
                    sc[h] = (scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4);
                    m[h] = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
                }
            }
            __m256 d1 = _mm256_set1_ps(d * (float)sc[0]), min1 = _mm256_set1_ps(dmin * (float)m[0]);
            __m256 d2 = _mm256_set1_ps(d * (float)sc[1]), min2 = _mm256_set1_ps(dmin * (float)m[1]);
            float *out = y + 64 * chunk;
            for (int l = 0; l < 32; l += 8) {
                __m128i q = _mm_loadl_epi64((const __m128i *)(qs + 32 * chunk + l));
                __m128i lo = _mm_and_si128(q, low4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), low4);
                _mm256_storeu_ps(out + l, _mm256_sub_ps(_mm256_mul_ps(d1, bytesToFloats(lo)), min1));
                _mm256_storeu_ps(out + 32 + l, _mm256_sub_ps(_mm256_mul_ps(d2, bytesToFloats(hi)), min2));
            }
        }
    }
}

__attribute__((target("avx2,fma,f16c"))) static void q6KBlocks(const uint8_t *x, long blocks, float *y) {
    const __m128i low4 = _mm_set1_epi8(0x0F), two = _mm_set1_epi8(3);
    const __m256i bias = _mm256_set1_epi32(32);
    for (long b = 0; b < blocks; b++, x += 210, y += 256) {
        float d = halfToFloat(x + 208);
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = x + 64 * half, *qh = x + 128 + 32 * half;
            const int8_t *sc = (const int8_t *)(x + 192 + 8 * half);
            float *out = y + 128 * half;
            for (int l = 0; l < 32; l += 8) {
                int s = l / 16;
                __m128i a = _mm_loadl_epi64((const __m128i *)(ql + l)), c = _mm_loadl_epi64((const __m128i *)(ql + l + 32));
                __m128i h = _mm_loadl_epi64((const __m128i *)(qh + l));
                __m128i q[4] = {
                    _mm_or_si128(_mm_and_si128(a, low4), _mm_slli_epi16(_mm_and_si128(h, two), 4)),
                    _mm_or_si128(_mm_and_si128(c, low4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(h, 2), two), 4)),
                    _mm_or_si128(_mm_and_si128(_mm_srli_epi16(a, 4), low4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(h, 4), two), 4)),
                    _mm_or_si128(_mm_and_si128(_mm_srli_epi16(c, 4), low4), _mm_slli_epi16(_mm_and_si128(_mm_srli_epi16(h, 6), two), 4)),
                };
                for (int r = 0; r < 4; r++) {
                    __m256 scale = _mm256_set1_ps(d * (float)sc[s + 2 * r]);
                    __m256 v = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(q[r]), bias));
                    _mm256_storeu_ps(out + 32 * r + l, _mm256_mul_ps(scale, v));
                }
            }
        }
    }
}
#endif

int moeq_dequantize_k(int bits, const void *blocks, long count, float *out) {
#if defined(__x86_64__)
    if (!moeq_row_gemm_vectorized() || !__builtin_cpu_supports("f16c")) return 0;
    if (bits == 4) {
        q4KBlocks((const uint8_t *)blocks, count, out);
        return 1;
    }
    if (bits == 6) {
        q6KBlocks((const uint8_t *)blocks, count, out);
        return 1;
    }
#else
    (void)bits, (void)blocks, (void)count, (void)out;
#endif
    return 0;
}
