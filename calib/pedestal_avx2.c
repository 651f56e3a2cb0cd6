/* pedestal_avx2.c - the batch kernel of pedestal.c, 16 pixels at a time
 * (compiled with -mavx2, called only on CPUs with AVX2).
 *
 * For each group of 16 pixels the batch's frames are gone through with the
 * partial sums in registers: counts in 16-bit lanes, ADC sums and sums of
 * squares in 32-bit lanes (unpacking the ADC against zero puts each pixel in
 * its own 32-bit lane; madd of that with itself is its square).  Unpacking
 * works within 128-bit halves, so the 32-bit lanes hold pixels 0-3 and 8-11
 * (lo) and 4-7 and 12-15 (hi); the flush puts them back in order. */
#include <immintrin.h>

#include "pedestal_kernels.h"

static inline void add_u32x4_to_u64(uint64_t *dst, __m128i v)
{
    __m256i d = _mm256_loadu_si256((const __m256i *)dst);
    _mm256_storeu_si256((__m256i *)dst, _mm256_add_epi64(d, _mm256_cvtepu32_epi64(v)));
}

void mg_ped_batch_avx2(const uint16_t *frames, int n, size_t pixels, unsigned want, uint16_t bad1, uint16_t bad2,
                       uint32_t *count, uint64_t *sum, uint64_t *sumsq)
{
    const __m256i wantv = _mm256_set1_epi16((short)want), b1 = _mm256_set1_epi16((short)bad1),
                  b2 = _mm256_set1_epi16((short)bad2), adcmask = _mm256_set1_epi16(0x3FFF),
                  zero = _mm256_setzero_si256();
    for (size_t p = 0; p < pixels; p += 16) {
        __m256i c = zero, slo = zero, shi = zero, qlo = zero, qhi = zero;
        const uint16_t *src = frames + p;
        for (int f = 0; f < n; f++, src += pixels) {
            _mm_prefetch((const char *)(src + 256), _MM_HINT_T0);
            const __m256i w = _mm256_loadu_si256((const __m256i *)src);
            __m256i ok = _mm256_cmpeq_epi16(_mm256_srli_epi16(w, 14), wantv);
            ok = _mm256_andnot_si256(_mm256_or_si256(_mm256_cmpeq_epi16(w, b1), _mm256_cmpeq_epi16(w, b2)), ok);
            const __m256i adc = _mm256_and_si256(_mm256_and_si256(w, adcmask), ok);
            c = _mm256_sub_epi16(c, ok);
            const __m256i lo = _mm256_unpacklo_epi16(adc, zero), hi = _mm256_unpackhi_epi16(adc, zero);
            slo = _mm256_add_epi32(slo, lo);
            shi = _mm256_add_epi32(shi, hi);
            qlo = _mm256_add_epi32(qlo, _mm256_madd_epi16(lo, lo));
            qhi = _mm256_add_epi32(qhi, _mm256_madd_epi16(hi, hi));
        }
        __m256i c32 = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(c));
        _mm256_storeu_si256((__m256i *)(count + p),
                            _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(count + p)), c32));
        c32 = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(c, 1));
        _mm256_storeu_si256((__m256i *)(count + p + 8),
                            _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)(count + p + 8)), c32));
        add_u32x4_to_u64(sum + p, _mm256_castsi256_si128(slo));
        add_u32x4_to_u64(sum + p + 4, _mm256_castsi256_si128(shi));
        add_u32x4_to_u64(sum + p + 8, _mm256_extracti128_si256(slo, 1));
        add_u32x4_to_u64(sum + p + 12, _mm256_extracti128_si256(shi, 1));
        add_u32x4_to_u64(sumsq + p, _mm256_castsi256_si128(qlo));
        add_u32x4_to_u64(sumsq + p + 4, _mm256_castsi256_si128(qhi));
        add_u32x4_to_u64(sumsq + p + 8, _mm256_extracti128_si256(qlo, 1));
        add_u32x4_to_u64(sumsq + p + 12, _mm256_extracti128_si256(qhi, 1));
    }
}
