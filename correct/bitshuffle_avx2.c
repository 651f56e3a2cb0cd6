/* bitshuffle_avx2.c - AVX2 bit transpose (compiled with -mavx2, called only
 * when the CPU has AVX2).
 *
 * _mm256_movemask_epi8 collects the top bit of 32 bytes into 32 bits: one
 * 4-byte piece of a bit plane.  Adding a register to itself shifts every byte
 * left by one, so eight movemask/add steps emit all eight planes of 32 bytes.
 * For 16-bit words (raw JUNGFRAU pixels) the low and high bytes of 32
 * elements are first split with one pack per byte; other sizes are byte-
 * transposed into scratch first. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "bitshuffle_kernels.h"

static inline void planes32(__m256i v, uint8_t *plane0, size_t plane_bytes, size_t at)
{
    for (int k = 7; k >= 0; k--) {
        uint32_t m = (uint32_t)_mm256_movemask_epi8(v);
        memcpy(plane0 + (size_t)k * plane_bytes + at, &m, 4);
        v = _mm256_add_epi8(v, v);
    }
}

void mg_bshuf_transpose_avx2(const void *in, void *out, size_t n, size_t es, void *scratch)
{
    const uint8_t *src = in;
    uint8_t *dst = out;
    const size_t nb = n / 8;
    size_t i = 0;
    if (es == 2) {
        const __m256i lowmask = _mm256_set1_epi16(0x00FF);
        for (; i + 32 <= n; i += 32) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(src + 2 * i));
            __m256i b = _mm256_loadu_si256((const __m256i *)(src + 2 * i + 32));
            __m256i lo = _mm256_packus_epi16(_mm256_and_si256(a, lowmask), _mm256_and_si256(b, lowmask));
            __m256i hi = _mm256_packus_epi16(_mm256_srli_epi16(a, 8), _mm256_srli_epi16(b, 8));
            /* packus works per 128-bit lane: restore element order 0..31 */
            lo = _mm256_permute4x64_epi64(lo, 0xD8);
            hi = _mm256_permute4x64_epi64(hi, 0xD8);
            planes32(lo, dst, nb, i / 8);
            planes32(hi, dst + 8 * nb, nb, i / 8);
        }
        mg_bshuf_transpose_groups(in, out, n, es, i / 8, nb);
        return;
    }
    /* Byte-transpose into scratch: row j holds byte j of every element. */
    uint8_t *rows = scratch;
    for (size_t e = 0; e < n; e++)
        for (size_t j = 0; j < es; j++)
            rows[j * n + e] = src[e * es + j];
    for (size_t j = 0; j < es; j++) {
        const uint8_t *r = rows + j * n;
        uint8_t *p0 = dst + j * 8 * nb;
        for (i = 0; i + 32 <= n; i += 32)
            planes32(_mm256_loadu_si256((const __m256i *)(r + i)), p0, nb, i / 8);
        /* tail groups of 8: one byte per plane each */
        for (; i < n; i += 8) {
            uint64_t x;
            memcpy(&x, r + i, 8);
            for (int k = 0; k < 8; k++) {
                uint8_t m = 0;
                for (int t = 0; t < 8; t++)
                    m |= (uint8_t)(((x >> (8 * t + k)) & 1u) << t);
                p0[(size_t)k * nb + i / 8] = m;
            }
        }
    }
}
