/* bitshuffle_avx512.c - AVX-512 bit transpose and its inverse (compiled
 * with -mavx512f -mavx512bw -mavx512vbmi, called only when the CPU has all
 * three), for the element sizes morgul writes, 2 and 4 bytes; the others go
 * to the AVX2 kernels.  The bytes are the scalar reference's (bitshuffle.c).
 *
 * Forward: a 64-byte register of byte j of 64 elements gives its eight bit
 * planes by _mm512_movepi8_mask (the top bit of every byte: 8 bytes of a
 * plane) and adding the register to itself (every byte shifted left by one),
 * eight times.  Byte j of the elements is gathered from 128 bytes with one
 * two-source byte permute (VBMI).
 *
 * Inverse, 64 groups (512 elements) at a time: for byte j, the groups' bytes
 * in the 8 planes are transposed into 64-bit words (byte k from plane k) by
 * three rounds of two-source permutes that interleave 8-, 16- and 32-bit
 * pieces; the 8x8 bit transpose of each word (bits8x8, as transpose8x8 in
 * bitshuffle.c, 8 words at a time) gives byte j of the group's 8 elements in
 * order, so the 8 registers are byte j of the 512 elements in order.  The es
 * rows are then interleaved into elements by the same permutes. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "bitshuffle_kernels.h"

/* The two-source permutes' indexes, made once (a table built at every call cost as much as the transpose
 * of a block): interleaving the low or high halves of two registers in pieces of 8, 16 or 32 bits; and
 * gathering byte j of each element of 128 bytes (elements of 2 bytes: all 64; of 4 bytes: 32, twice). */
#define LO8(i) (i) / 2 + ((i) & 1) * 64
#define HI8(i) 32 + (i) / 2 + ((i) & 1) * 64
#define LO16(i) (i) / 2 + ((i) & 1) * 32
#define HI16(i) 16 + (i) / 2 + ((i) & 1) * 32
#define LO32(i) (i) / 2 + ((i) & 1) * 16
#define HI32(i) 8 + (i) / 2 + ((i) & 1) * 16
#define E2B0(t) 2 * (t)
#define E2B1(t) 2 * (t) + 1
#define E4B0(t) 4 * ((t) % 32)
#define E4B1(t) 4 * ((t) % 32) + 1
#define E4B2(t) 4 * ((t) % 32) + 2
#define E4B3(t) 4 * ((t) % 32) + 3
#define R8(f, b) f(b), f(b + 1), f(b + 2), f(b + 3), f(b + 4), f(b + 5), f(b + 6), f(b + 7)
#define R16(f) R8(f, 0), R8(f, 8)
#define R32(f) R16(f), R8(f, 16), R8(f, 24)
#define R64(f) R32(f), R8(f, 32), R8(f, 40), R8(f, 48), R8(f, 56)
static const uint8_t il8[2][64] __attribute__((aligned(64))) = {{R64(LO8)}, {R64(HI8)}};
static const uint16_t il16[2][32] __attribute__((aligned(64))) = {{R32(LO16)}, {R32(HI16)}};
static const uint32_t il32[2][16] __attribute__((aligned(64))) = {{R16(LO32)}, {R16(HI32)}};
static const uint8_t gather2[2][64] __attribute__((aligned(64))) = {{R64(E2B0)}, {R64(E2B1)}};
static const uint8_t gather4[4][64] __attribute__((aligned(64))) = {{R64(E4B0)}, {R64(E4B1)}, {R64(E4B2)},
                                                                    {R64(E4B3)}};

/* The bytes one block (8 KiB) ahead of the `len` bytes at p, asked into the cache: compression transposes a
 * block and then runs LZ4 on it, which touches nothing outside the cache, so without this the next block's
 * reads would start cold (10 % of a compression's time on real frames). */
static inline void prefetch_ahead(const uint8_t *p, size_t len)
{
    for (size_t k = 0; k < len; k += 64)
        _mm_prefetch((const char *)p + MG_BSHUF_PREFETCH_AHEAD + k, _MM_HINT_T0);
}

static inline void planes64(__m512i v, uint8_t *plane0, size_t plane_bytes, size_t at)
{
    for (int k = 7; k >= 0; k--) {
        uint64_t m = _mm512_movepi8_mask(v);
        memcpy(plane0 + (size_t)k * plane_bytes + at, &m, 8);
        v = _mm512_add_epi8(v, v);
    }
}

void mg_bshuf_transpose_avx512(const void *in, void *out, size_t n, size_t es, void *scratch)
{
    if (es != 2 && es != 4) {
        mg_bshuf_transpose_avx2(in, out, n, es, scratch);
        return;
    }
    const uint8_t *src = in;
    uint8_t *dst = out;
    const size_t nb = n / 8;
    size_t i = 0;
    if (es == 2) {
        const __m512i lo = _mm512_load_si512(gather2[0]), hi = _mm512_load_si512(gather2[1]);
        for (; i + 64 <= n; i += 64) {
            __m512i a = _mm512_loadu_si512(src + 2 * i), b = _mm512_loadu_si512(src + 2 * i + 64);
            prefetch_ahead(src + 2 * i, 128);
            planes64(_mm512_permutex2var_epi8(a, lo, b), dst, nb, i / 8);
            planes64(_mm512_permutex2var_epi8(a, hi, b), dst + 8 * nb, nb, i / 8);
        }
    } else {
        __m512i idx[4];
        for (int j = 0; j < 4; j++)
            idx[j] = _mm512_load_si512(gather4[j]);
        for (; i + 64 <= n; i += 64) {
            const uint8_t *e = src + 4 * i;
            __m512i r0 = _mm512_loadu_si512(e), r1 = _mm512_loadu_si512(e + 64);
            __m512i r2 = _mm512_loadu_si512(e + 128), r3 = _mm512_loadu_si512(e + 192);
            prefetch_ahead(e, 256);
            for (int j = 0; j < 4; j++) {
                __m512i t0 = _mm512_permutex2var_epi8(r0, idx[j], r1), t1 = _mm512_permutex2var_epi8(r2, idx[j], r3);
                planes64(_mm512_inserti64x4(t0, _mm512_castsi512_si256(t1), 1), dst + (size_t)j * 8 * nb, nb, i / 8);
            }
        }
    }
    mg_bshuf_transpose_groups(in, out, n, es, i / 8, nb);
}

/* The 8x8 bit transpose of each 64-bit word (see transpose8x8). */
static inline __m512i bits8x8(__m512i x)
{
    __m512i t = _mm512_and_si512(_mm512_xor_si512(x, _mm512_srli_epi64(x, 7)), _mm512_set1_epi64(0x00AA00AA00AA00AALL));
    x = _mm512_xor_si512(x, _mm512_xor_si512(t, _mm512_slli_epi64(t, 7)));
    t = _mm512_and_si512(_mm512_xor_si512(x, _mm512_srli_epi64(x, 14)), _mm512_set1_epi64(0x0000CCCC0000CCCCLL));
    x = _mm512_xor_si512(x, _mm512_xor_si512(t, _mm512_slli_epi64(t, 14)));
    t = _mm512_and_si512(_mm512_xor_si512(x, _mm512_srli_epi64(x, 28)), _mm512_set1_epi64(0x00000000F0F0F0F0LL));
    return _mm512_xor_si512(x, _mm512_xor_si512(t, _mm512_slli_epi64(t, 28)));
}

typedef struct ixs {
    __m512i b8[2], b16[2], b32[2]; /* [lo, hi] */
} ixs;

/* Byte j of the 512 elements of groups g..g+63 into row[0..7] (64 bytes each, in element order), from the
 * 8 planes at p0 (each nb bytes). */
static inline void tile_row(const ixs *x, const uint8_t *p0, size_t nb, size_t g, __m512i row[8])
{
    __m512i p[8], u[8], q[8];
    for (int k = 0; k < 8; k++)
        p[k] = _mm512_loadu_si512(p0 + (size_t)k * nb + g);
    for (int k = 0; k < 4; k++) /* (p2k, p2k+1) bytes of groups 0-31 (lo), 32-63 (hi) */
        for (int h = 0; h < 2; h++)
            u[2 * k + h] = _mm512_permutex2var_epi8(p[2 * k], x->b8[h], p[2 * k + 1]);
    for (int k = 0; k < 2; k++) /* planes 4k..4k+3 of groups 0-15, 16-31, 32-47, 48-63 */
        for (int h = 0; h < 2; h++)
            for (int hh = 0; hh < 2; hh++)
                q[4 * k + 2 * h + hh] = _mm512_permutex2var_epi16(u[4 * k + h], x->b16[hh], u[4 * k + 2 + h]);
    for (int m = 0; m < 4; m++) /* words of groups 16m..16m+7 and 16m+8..16m+15 */
        for (int hh = 0; hh < 2; hh++)
            row[2 * m + hh] = bits8x8(_mm512_permutex2var_epi32(q[m], x->b32[hh], q[4 + m]));
}

void mg_bshuf_untranspose_avx512(const void *in, void *out, size_t n, size_t es)
{
    if (es != 2 && es != 4) {
        mg_bshuf_untranspose_avx2(in, out, n, es);
        return;
    }
    const uint8_t *src = in;
    uint8_t *dst = out;
    const size_t nb = n / 8;
    ixs x;
    for (int h = 0; h < 2; h++) {
        x.b8[h] = _mm512_load_si512(il8[h]);
        x.b16[h] = _mm512_load_si512(il16[h]);
        x.b32[h] = _mm512_load_si512(il32[h]);
    }
    size_t g = 0;
    for (; g + 64 <= nb; g += 64) {
        uint8_t *o = dst + g * 8 * es;
        __m512i r[4][8];
        for (size_t j = 0; j < es; j++)
            tile_row(&x, src + j * 8 * nb, nb, g, r[j]);
        for (int c = 0; c < 8; c++) { /* elements 64c..64c+63 */
            uint8_t *v = o + (size_t)c * 64 * es;
            __m512i a0 = _mm512_permutex2var_epi8(r[0][c], x.b8[0], r[1][c]);
            __m512i a1 = _mm512_permutex2var_epi8(r[0][c], x.b8[1], r[1][c]);
            if (es == 2) {
                _mm512_storeu_si512(v, a0);
                _mm512_storeu_si512(v + 64, a1);
                continue;
            }
            __m512i b0 = _mm512_permutex2var_epi8(r[2][c], x.b8[0], r[3][c]);
            __m512i b1 = _mm512_permutex2var_epi8(r[2][c], x.b8[1], r[3][c]);
            _mm512_storeu_si512(v, _mm512_permutex2var_epi16(a0, x.b16[0], b0));
            _mm512_storeu_si512(v + 64, _mm512_permutex2var_epi16(a0, x.b16[1], b0));
            _mm512_storeu_si512(v + 128, _mm512_permutex2var_epi16(a1, x.b16[0], b1));
            _mm512_storeu_si512(v + 192, _mm512_permutex2var_epi16(a1, x.b16[1], b1));
        }
    }
    mg_bshuf_untranspose_groups(in, out, n, es, g, nb);
}

/* The noise test of bitshuffle_kernels.h, 64 bytes at a time. */
static size_t equal64(const uint8_t *a, const uint8_t *b)
{
    return (size_t)__builtin_popcountll(_mm512_cmpeq_epi8_mask(_mm512_loadu_si512(a), _mm512_loadu_si512(b)));
}

static size_t zero_or_ff(const uint8_t *p, size_t n)
{
    const __m512i ones = _mm512_set1_epi8(-1);
    size_t c = 0;
    for (size_t j = 0; j < n; j += 64) {
        __m512i v = _mm512_loadu_si512(p + j);
        c += (size_t)__builtin_popcountll(_mm512_cmpeq_epi8_mask(v, _mm512_setzero_si512()) |
                                          _mm512_cmpeq_epi8_mask(v, ones));
    }
    return c;
}

size_t mg_bshuf_noise_planes_avx512(const uint8_t *block, size_t plane_bytes, size_t planes)
{
    return mg_bshuf_noise_planes_with(block, plane_bytes, planes, zero_or_ff, equal64);
}
