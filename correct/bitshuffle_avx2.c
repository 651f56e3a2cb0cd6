/* bitshuffle_avx2.c - AVX2 bit transpose (compiled with -mavx2, called only
 * when the CPU has AVX2).
 *
 * _mm256_movemask_epi8 collects the top bit of 32 bytes into 32 bits: one
 * 4-byte piece of a bit plane.  Adding a register to itself shifts every byte
 * left by one, so eight movemask/add steps emit all eight planes of 32 bytes.
 * For 16-bit words (raw JUNGFRAU pixels) the low and high bytes of 32
 * elements are first split with one pack per byte; other sizes are byte-
 * transposed into scratch first.
 *
 * The inverse works on tiles of 32 groups (256 elements).  For byte j of
 * the elements, 32 bytes of each of its 8 planes are byte-transposed with
 * three rounds of unpacks into 32 words of 8 bytes (byte k from plane k),
 * each of which is the 8x8 bit matrix of one group; three rounds of
 * swapping its off-diagonal blocks (as transpose8x8 in bitshuffle.c, on 4
 * words at a time) leave byte t = byte j of element t of the group.  The
 * tile's es rows of bytes are then interleaved into elements by unpacks. */
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
            /* the next block into the cache while this one is read (see bitshuffle_avx512.c) */
            _mm_prefetch((const char *)src + 2 * i + MG_BSHUF_PREFETCH_AHEAD, _MM_HINT_T0);
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

/* The 8x8 bit transpose of each 64-bit word (see transpose8x8). */
static inline __m256i bits8x8(__m256i x)
{
    __m256i t = _mm256_and_si256(_mm256_xor_si256(x, _mm256_srli_epi64(x, 7)), _mm256_set1_epi64x(0x00AA00AA00AA00AALL));
    x = _mm256_xor_si256(x, _mm256_xor_si256(t, _mm256_slli_epi64(t, 7)));
    t = _mm256_and_si256(_mm256_xor_si256(x, _mm256_srli_epi64(x, 14)), _mm256_set1_epi64x(0x0000CCCC0000CCCCLL));
    x = _mm256_xor_si256(x, _mm256_xor_si256(t, _mm256_slli_epi64(t, 14)));
    t = _mm256_and_si256(_mm256_xor_si256(x, _mm256_srli_epi64(x, 28)), _mm256_set1_epi64x(0x00000000F0F0F0F0LL));
    return _mm256_xor_si256(x, _mm256_xor_si256(t, _mm256_slli_epi64(t, 28)));
}

static inline void store2(uint8_t *lo_dst, uint8_t *hi_dst, __m256i v)
{
    _mm_storeu_si128((__m128i *)lo_dst, _mm256_castsi256_si128(v));
    _mm_storeu_si128((__m128i *)hi_dst, _mm256_extracti128_si256(v, 1));
}

/* Byte j of the 256 elements of groups g..g+31 into row[0..255], from
 * planes p0 (8 planes of nb bytes). */
static inline void tile_row(const uint8_t *p0, size_t nb, size_t g, uint8_t *row)
{
    __m256i r[8], s[8], u[8];
    for (int k = 0; k < 8; k++)
        r[k] = _mm256_loadu_si256((const __m256i *)(p0 + (size_t)k * nb + g));
    for (int k = 0; k < 4; k++) { /* per lane: columns 0-7 and 8-15 of planes 2k, 2k+1 */
        s[2 * k] = _mm256_unpacklo_epi8(r[2 * k], r[2 * k + 1]);
        s[2 * k + 1] = _mm256_unpackhi_epi8(r[2 * k], r[2 * k + 1]);
    }
    for (int h = 0; h < 2; h++) /* planes 0-3 (h 0) and 4-7 (h 1): columns 0-3, 4-7, 8-11, 12-15 */
        for (int q = 0; q < 2; q++) {
            u[4 * h + 2 * q] = _mm256_unpacklo_epi16(s[4 * h + q], s[4 * h + 2 + q]);
            u[4 * h + 2 * q + 1] = _mm256_unpackhi_epi16(s[4 * h + q], s[4 * h + 2 + q]);
        }
    for (int c = 0; c < 4; c++) { /* words of columns 4c..4c+3 (lane 0), 16+4c.. (lane 1) */
        __m256i w0 = bits8x8(_mm256_unpacklo_epi32(u[c], u[4 + c]));
        __m256i w1 = bits8x8(_mm256_unpackhi_epi32(u[c], u[4 + c]));
        store2(row + 32 * c, row + 128 + 32 * c, w0);
        store2(row + 32 * c + 16, row + 128 + 32 * c + 16, w1);
    }
}

void mg_bshuf_untranspose_avx2(const void *in, void *out, size_t n, size_t es)
{
    const uint8_t *src = in;
    uint8_t *dst = out;
    const size_t nb = n / 8;
    uint8_t tile[8][256];
    size_t g = 0;
    for (; g + 32 <= nb; g += 32) {
        uint8_t *o = dst + g * 8 * es;
        if (es == 1) {
            tile_row(src, nb, g, o);
            continue;
        }
        for (size_t j = 0; j < es; j++)
            tile_row(src + j * 8 * nb, nb, g, tile[j]);
        for (int e = 0; e < 256; e += 32) {
            __m256i a[8];
            for (size_t j = 0; j < es; j++)
                a[j] = _mm256_loadu_si256((const __m256i *)(tile[j] + e));
            __m256i *v = (__m256i *)(o + (size_t)e * es);
            if (es == 2) {
                __m256i lo = _mm256_unpacklo_epi8(a[0], a[1]), hi = _mm256_unpackhi_epi8(a[0], a[1]);
                _mm256_storeu_si256(v, _mm256_permute2x128_si256(lo, hi, 0x20));
                _mm256_storeu_si256(v + 1, _mm256_permute2x128_si256(lo, hi, 0x31));
                continue;
            }
            /* 4 or 8 bytes: pairs, then quads (elements 0-3 | 16-19, 4-7 | 20-23, ...) */
            __m256i q[2][4];
            for (size_t h = 0; h < es / 4; h++) {
                __m256i l01 = _mm256_unpacklo_epi8(a[4 * h], a[4 * h + 1]), h01 = _mm256_unpackhi_epi8(a[4 * h], a[4 * h + 1]);
                __m256i l23 = _mm256_unpacklo_epi8(a[4 * h + 2], a[4 * h + 3]),
                        h23 = _mm256_unpackhi_epi8(a[4 * h + 2], a[4 * h + 3]);
                q[h][0] = _mm256_unpacklo_epi16(l01, l23);
                q[h][1] = _mm256_unpackhi_epi16(l01, l23);
                q[h][2] = _mm256_unpacklo_epi16(h01, h23);
                q[h][3] = _mm256_unpackhi_epi16(h01, h23);
            }
            if (es == 4) {
                for (int k = 0; k < 2; k++) {
                    _mm256_storeu_si256(v + k, _mm256_permute2x128_si256(q[0][2 * k], q[0][2 * k + 1], 0x20));
                    _mm256_storeu_si256(v + 2 + k, _mm256_permute2x128_si256(q[0][2 * k], q[0][2 * k + 1], 0x31));
                }
                continue;
            }
            /* es 8: element pairs 2c, 2c+1 (lane 0) and 16+2c, 17+2c (lane 1) */
            __m256i c[8];
            for (int k = 0; k < 4; k++) {
                c[2 * k] = _mm256_unpacklo_epi32(q[0][k], q[1][k]);
                c[2 * k + 1] = _mm256_unpackhi_epi32(q[0][k], q[1][k]);
            }
            for (int k = 0; k < 4; k++) {
                _mm256_storeu_si256(v + k, _mm256_permute2x128_si256(c[2 * k], c[2 * k + 1], 0x20));
                _mm256_storeu_si256(v + 4 + k, _mm256_permute2x128_si256(c[2 * k], c[2 * k + 1], 0x31));
            }
        }
    }
    mg_bshuf_untranspose_groups(in, out, n, es, g, nb);
}

/* The noise test of bitshuffle_kernels.h, 32 bytes at a time. */
static size_t equal64(const uint8_t *a, const uint8_t *b)
{
    __m256i e0 = _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)a), _mm256_loadu_si256((const __m256i *)b));
    __m256i e1 = _mm256_cmpeq_epi8(_mm256_loadu_si256((const __m256i *)(a + 32)),
                                   _mm256_loadu_si256((const __m256i *)(b + 32)));
    return (size_t)__builtin_popcount((uint32_t)_mm256_movemask_epi8(e0)) +
           (size_t)__builtin_popcount((uint32_t)_mm256_movemask_epi8(e1));
}

static size_t zero_or_ff(const uint8_t *p, size_t n)
{
    const __m256i ones = _mm256_set1_epi8(-1);
    size_t c = 0;
    for (size_t j = 0; j < n; j += 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(p + j));
        __m256i hit = _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_setzero_si256()), _mm256_cmpeq_epi8(v, ones));
        c += (size_t)__builtin_popcount((uint32_t)_mm256_movemask_epi8(hit));
    }
    return c;
}

size_t mg_bshuf_noise_planes_avx2(const uint8_t *block, size_t plane_bytes, size_t planes)
{
    return mg_bshuf_noise_planes_with(block, plane_bytes, planes, zero_or_ff, equal64);
}
