/* convert_avx2.c - the conversion of convert.c, 16 pixels at a time
 * (compiled with -mavx2 -mfma, called only on CPUs with both).
 *
 * 16 raw words are widened to 32 bits by unpacking each 128-bit lane's low
 * and high halves: vector a holds pixels 0-3 and 8-11, vector b pixels 4-7
 * and 12-15.  The tables are stored in that order (mg_conv_slot), and
 * packing a and b back to 16 bits restores the pixel order, so the int16
 * path never shuffles.  Most pixels of a frame are G0: a group of 16 G0
 * words takes a short path; a group with another gain or a special word
 * reads the G1 (and G2) tables too and blends, and a run of such groups
 * (where a strong signal switches many pixels) goes without a test per
 * group.  Every arithmetic step is the scalar reference's, so the results
 * are bit-identical.
 *
 * Whole frames are limited by reading the tables, not by the arithmetic: a
 * G0 pixel's table entries are 8 bytes against its 2 raw bytes (with
 * everything in the first-level cache the arithmetic runs 1.6-1.8 times as
 * fast; docs/performance.md). */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "convert_kernels.h"
#include "morgul/jungfrau.h"

#define HALF_BELOW 0x1.fffffep-2f /* the float below 1/2: see convert.c */

/* v + copysign(h, v): rounding half away from zero once truncated.  The
 * blend picks -h by the sign bit of v, as copysign does (also for -0 and
 * NaN): one instruction instead of an and and an or (x1.05 with the
 * tables in cache). */
static inline __m256 add_half_away(__m256 v)
{
    return _mm256_add_ps(v, _mm256_blendv_ps(_mm256_set1_ps(HALF_BELOW), _mm256_set1_ps(-HALF_BELOW), v));
}

/* 16 G0 words (gain bits 00, so none special) to int16, with the G0
 * planes' entries for them in oa, fa (pixels 0-3, 8-11) and ob, fb (4-7,
 * 12-15).  A G0 word is below 2^14: or'ed under the exponent of 2^23 it is
 * the float 2^23 + adc, and subtracting 2^23 leaves adc exactly (one add
 * instead of a conversion on the busier port).  A NaN offset (unusable
 * pixel) gives a NaN value, which max() passes on (NaN as its second
 * operand) and the conversion turns into 0x80000000, packed to -32768:
 * invalid.  Values above 32767 (below 2^31: the factor bound) are saturated
 * by the pack.  With `floor` 0 the tables guarantee values >= -32767
 * (g0_above_floor), and the clamp from below is left out.  g0_values
 * gives the values before rounding (float32 output). */
static inline __attribute__((always_inline)) void g0_values(__m256 oa, __m256 ob, __m256 fa, __m256 fb, __m256i r16,
                                                           __m256 *a, __m256 *b)
{
    const __m256i magic = _mm256_set1_epi16(0x4B00);
    const __m256 two23 = _mm256_set1_ps(8388608.0f);
    *a = _mm256_fmsub_ps(_mm256_sub_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(r16, magic)), two23), fa, oa);
    *b = _mm256_fmsub_ps(_mm256_sub_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(r16, magic)), two23), fb, ob);
}

static inline __attribute__((always_inline)) __m256i g0_int16(__m256 oa, __m256 ob, __m256 fa, __m256 fb,
                                                             __m256i r16, int floor)
{
    const __m256 lo = _mm256_set1_ps(-32767.0f);
    __m256 a, b;
    g0_values(oa, ob, fa, fb, r16, &a, &b);
    a = add_half_away(a);
    b = add_half_away(b);
    if (floor) {
        a = _mm256_max_ps(lo, a);
        b = _mm256_max_ps(lo, b);
    }
    return _mm256_packs_epi32(_mm256_cvttps_epi32(a), _mm256_cvttps_epi32(b));
}

/* Whether 16 words are all G0 (gain bits 00, so none special). */
static inline int all_g0(__m256i r16) { return _mm256_testz_si256(r16, _mm256_set1_epi16((short)0xC000)); }

typedef struct eight {
    __m256 v;   /* value before rounding */
    __m256 sat; /* masks */
    __m256 inv;
} eight;

/* 8 widened words w at table slots s..s+7, any gain: the G0 and G1 entries
 * are read and blended whatever the gains, the G2 ones only when a word
 * needs them (see any_int16). */
static inline __attribute__((always_inline)) eight compute8(const mg_conv_tables *t, size_t s, __m256i w)
{
    const __m256i g = _mm256_srli_epi32(w, 14);
    const __m256 m1 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(g, _mm256_set1_epi32(1)));
    const __m256 m3 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(g, _mm256_set1_epi32(3)));
    __m256 off = _mm256_blendv_ps(_mm256_loadu_ps(t->offset[0] + s), _mm256_loadu_ps(t->offset[1] + s), m1);
    __m256 fac = _mm256_blendv_ps(_mm256_loadu_ps(t->factor[0] + s), _mm256_loadu_ps(t->factor[1] + s), m1);
    if (!_mm256_testz_ps(m3, m3)) {
        off = _mm256_blendv_ps(off, _mm256_loadu_ps(t->offset[2] + s), m3);
        fac = _mm256_blendv_ps(fac, _mm256_loadu_ps(t->factor[2] + s), m3);
    }
    const __m256 adc = _mm256_cvtepi32_ps(_mm256_and_si256(w, _mm256_set1_epi32(0x3FFF)));
    eight e;
    e.v = _mm256_fmsub_ps(adc, fac, off);
    e.sat = _mm256_castsi256_ps(_mm256_cmpeq_epi32(w, _mm256_set1_epi32(MG_WORD_SATURATED)));
    __m256i inv = _mm256_or_si256(_mm256_cmpeq_epi32(g, _mm256_set1_epi32(2)),
                                  _mm256_or_si256(_mm256_cmpeq_epi32(w, _mm256_set1_epi32(0xFFFF)),
                                                  _mm256_cmpeq_epi32(w, _mm256_set1_epi32(0x4000))));
    e.inv = _mm256_or_ps(_mm256_castsi256_ps(inv), _mm256_cmp_ps(e.v, e.v, _CMP_UNORD_Q));
    return e;
}

static inline __m256i to_int32(eight e)
{
    /* r >= 2^31 exactly when its truncation is; negative r truncate to 0 or less: 0 */
    __m256 r = add_half_away(e.v);
    __m256 big = _mm256_cmp_ps(r, _mm256_set1_ps(2147483648.0f), _CMP_GE_OQ);
    __m256i o = _mm256_cvttps_epi32(_mm256_max_ps(r, _mm256_setzero_ps()));
    o = _mm256_blendv_epi8(o, _mm256_set1_epi32(MG_INT32_SATURATED), _mm256_castps_si256(big));
    o = _mm256_blendv_epi8(o, _mm256_set1_epi32(MG_INT32_INVALID), _mm256_castps_si256(e.inv));
    return _mm256_blendv_epi8(o, _mm256_set1_epi32(MG_INT32_SATURATED), _mm256_castps_si256(e.sat));
}

static inline __m256 to_float(eight e)
{
    __m256 o = _mm256_blendv_ps(e.v, _mm256_set1_ps(NAN), e.inv);
    return _mm256_blendv_ps(o, _mm256_set1_ps(INFINITY), e.sat);
}

/* 32-bit results a (pixels 0-3, 8-11) and b (4-7, 12-15) stored in pixel order */
static inline void store_32(void *out, __m256i a, __m256i b)
{
    _mm256_storeu_si256((__m256i *)out, _mm256_permute2x128_si256(a, b, 0x20));
    _mm256_storeu_si256((__m256i *)out + 1, _mm256_permute2x128_si256(a, b, 0x31));
}

/* 16 words of any kind at table slots s..s+15 to int16: the G0 and G1
 * table entries are read and blended whatever the gains (no test to
 * mispredict where gains are mixed).
 * The masks are made once for 16 words and widened for the tables, the
 * special words are set after the pack, and the value is the G0 path's
 * (a NaN offset gives -32768, the pack saturates above; |value| < 2^31 by
 * the factor bound of every gain).  The G2 entries are read only for a
 * group with a G2 word: scattered G1 pixels rarely come with G2 ones, and
 * where gains are mixed the conversion is bound by reading tables. */
static inline __attribute__((always_inline)) __m256i any_int16(const mg_conv_tables *t, size_t s, __m256i r16)
{
    const __m256i g16 = _mm256_and_si256(r16, _mm256_set1_epi16((short)0xC000));
    const __m256i m1 = _mm256_cmpeq_epi16(g16, _mm256_set1_epi16(0x4000));
    const __m256i m3 = _mm256_cmpeq_epi16(g16, _mm256_set1_epi16((short)0xC000));
    const __m256i inv = _mm256_or_si256(_mm256_cmpeq_epi16(g16, _mm256_set1_epi16((short)0x8000)),
                                        _mm256_or_si256(_mm256_cmpeq_epi16(r16, _mm256_set1_epi16((short)0xFFFF)),
                                                        _mm256_cmpeq_epi16(r16, _mm256_set1_epi16(0x4000))));
    const __m256i sat = _mm256_cmpeq_epi16(r16, _mm256_set1_epi16((short)MG_WORD_SATURATED));
    const __m256i adc = _mm256_and_si256(r16, _mm256_set1_epi16(0x3FFF));
    const __m256i magic = _mm256_set1_epi16(0x4B00);
    const int any3 = !_mm256_testz_si256(m3, m3);
    __m256i v[2];
    for (int h = 0; h < 2; h++) {
        const size_t at = s + 8 * (size_t)h;
        /* h 0: pixels 0-3 and 8-11 (the unpacks' low halves), h 1: 4-7 and 12-15 */
        const __m256 w1 = _mm256_castsi256_ps(h ? _mm256_unpackhi_epi16(m1, m1) : _mm256_unpacklo_epi16(m1, m1));
        const __m256 w3 = _mm256_castsi256_ps(h ? _mm256_unpackhi_epi16(m3, m3) : _mm256_unpacklo_epi16(m3, m3));
        __m256 off = _mm256_blendv_ps(_mm256_loadu_ps(t->offset[0] + at), _mm256_loadu_ps(t->offset[1] + at), w1);
        __m256 fac = _mm256_blendv_ps(_mm256_loadu_ps(t->factor[0] + at), _mm256_loadu_ps(t->factor[1] + at), w1);
        if (any3) {
            off = _mm256_blendv_ps(off, _mm256_loadu_ps(t->offset[2] + at), w3);
            fac = _mm256_blendv_ps(fac, _mm256_loadu_ps(t->factor[2] + at), w3);
        }
        const __m256i u = h ? _mm256_unpackhi_epi16(adc, magic) : _mm256_unpacklo_epi16(adc, magic);
        const __m256 a = _mm256_sub_ps(_mm256_castsi256_ps(u), _mm256_set1_ps(8388608.0f));
        const __m256 r = _mm256_max_ps(_mm256_set1_ps(-32767.0f), add_half_away(_mm256_fmsub_ps(a, fac, off)));
        v[h] = _mm256_cvttps_epi32(r);
    }
    __m256i o = _mm256_packs_epi32(v[0], v[1]);
    o = _mm256_blendv_epi8(o, _mm256_set1_epi16(MG_INT16_INVALID), inv);
    return _mm256_blendv_epi8(o, _mm256_set1_epi16(MG_INT16_SATURATED), sat);
}

/* One group of 16 words of any kind at slots s..s+15 to `type` at o. */
static inline __attribute__((always_inline)) void any_group(const mg_conv_tables *t, size_t s, __m256i r16, void *o,
                                                           mg_out_type type)
{
    if (type == MG_OUT_INT16) {
        _mm256_storeu_si256((__m256i *)o, any_int16(t, s, r16));
        return;
    }
    eight a = compute8(t, s, _mm256_unpacklo_epi16(r16, _mm256_setzero_si256()));
    eight b = compute8(t, s + 8, _mm256_unpackhi_epi16(r16, _mm256_setzero_si256()));
    if (type == MG_OUT_INT32)
        store_32(o, to_int32(a), to_int32(b));
    else
        store_32(o, _mm256_castps_si256(to_float(a)), _mm256_castps_si256(to_float(b)));
}

/* One group of 16 G0 words to `type` at o, with the G0 planes' entries for
 * them in oa, fa (pixels 0-3, 8-11) and ob, fb (4-7, 12-15).  int32: the
 * value rounded, negative ones 0, a NaN (unusable pixel) -1 from the
 * truncation's 0x80000000 or'ed with its sign (no valid value is negative;
 * none reaches 2^31, by the factor bound); float32: the value, NaN itself
 * marking an unusable pixel. */
static inline __attribute__((always_inline)) void g0_group(__m256 oa, __m256 ob, __m256 fa, __m256 fb, __m256i r16,
                                                          void *o, mg_out_type type, int floor)
{
    if (type == MG_OUT_INT16) {
        _mm256_storeu_si256((__m256i *)o, g0_int16(oa, ob, fa, fb, r16, floor));
        return;
    }
    __m256 a, b;
    g0_values(oa, ob, fa, fb, r16, &a, &b);
    if (type == MG_OUT_FLOAT32) {
        store_32(o, _mm256_castps_si256(a), _mm256_castps_si256(b));
        return;
    }
    /* max(0, NaN) is the NaN (its second operand) */
    __m256i ia = _mm256_cvttps_epi32(_mm256_max_ps(_mm256_setzero_ps(), add_half_away(a)));
    __m256i ib = _mm256_cvttps_epi32(_mm256_max_ps(_mm256_setzero_ps(), add_half_away(b)));
    ia = _mm256_or_si256(ia, _mm256_srai_epi32(ia, 31));
    ib = _mm256_or_si256(ib, _mm256_srai_epi32(ib, 31));
    store_32(o, ia, ib);
}

/* How far ahead of the group being converted its raw words are asked for
 * (in pixels: 8 KiB).  Frames that come from memory rather than from the
 * cache are otherwise read at the pace of the hardware prefetcher, which
 * follows the tables' two streams and the output as well: asking for the
 * raw words early made the conversion of streamed frames 1.1 times as fast
 * (docs/performance.md).  Asking for the tables early did not help. */
#define RAW_AHEAD 4096

/* Through an integer: the address may lie beyond the end of raw, where a
 * pointer may not point (a prefetch never faults).  A macro: written as an
 * inline function, gcc 12 left the prefetch out of the G0 loop. */
#define PREFETCH_RAW(at) _mm_prefetch((const char *)((uintptr_t)(at) + RAW_AHEAD * sizeof(uint16_t)), _MM_HINT_T0)

/* Converts groups of 16 G0 words from i on to `type` (element size es);
 * returns where it stopped: the end, or a group with another gain or a
 * special word.  The loop calls nothing, so its constants stay in
 * registers (with a call in the loop the compiler reloaded three of them
 * every group).  One instance per output type (and clamp).  Two groups at
 * a time while both are G0: one gain test and one prefetch (a cache line
 * of raw words) per 32 pixels, the arithmetic alone 1.05 times as fast;
 * the second loop takes a single group before another kind, and the end. */
static inline __attribute__((always_inline)) size_t g0_run(const float *o0, const float *f0, size_t i, size_t count,
                                                          const uint16_t *raw, char *out, mg_out_type type,
                                                          size_t es, int floor)
{
    for (; i + 32 <= count; i += 32) {
        const __m256i r0 = _mm256_loadu_si256((const __m256i *)(raw + i));
        const __m256i r1 = _mm256_loadu_si256((const __m256i *)(raw + i + 16));
        if (__builtin_expect(!all_g0(_mm256_or_si256(r0, r1)), 0))
            break;
        PREFETCH_RAW(raw + i);
        g0_group(_mm256_loadu_ps(o0 + i), _mm256_loadu_ps(o0 + i + 8), _mm256_loadu_ps(f0 + i),
                 _mm256_loadu_ps(f0 + i + 8), r0, out + i * es, type, floor);
        g0_group(_mm256_loadu_ps(o0 + i + 16), _mm256_loadu_ps(o0 + i + 24), _mm256_loadu_ps(f0 + i + 16),
                 _mm256_loadu_ps(f0 + i + 24), r1, out + (i + 16) * es, type, floor);
    }
    for (; i + 16 <= count; i += 16) {
        const __m256i r16 = _mm256_loadu_si256((const __m256i *)(raw + i));
        if (__builtin_expect(!all_g0(r16), 0))
            break;
        PREFETCH_RAW(raw + i);
        g0_group(_mm256_loadu_ps(o0 + i), _mm256_loadu_ps(o0 + i + 8), _mm256_loadu_ps(f0 + i),
                 _mm256_loadu_ps(f0 + i + 8), r16, out + i * es, type, floor);
    }
    return i;
}

/* Converts groups of any kind from i (one that is not all G0) until the
 * next two groups are both G0, or fewer than 32 words are left; returns
 * where it stopped.  Where gains are mixed (a strong signal: many pixels
 * switch) a test per group would go either way and mispredict, and the
 * G1/G2 tables are needed anyway: so no test but the one to leave, once
 * per group on the next 32 words.  With G1 pixels scattered over a real
 * frame (1 %, 5 %, 20 % of its pixels, all of them) this and any_int16
 * made the int16 conversion x1.5, x2.2, x2.6 and x1.9 as fast as a test
 * and a call per group (docs/performance.md). */
static inline __attribute__((always_inline)) size_t mixed_run(const mg_conv_tables *t, size_t first, size_t i,
                                                             size_t count, const uint16_t *raw, char *out,
                                                             mg_out_type type, size_t es)
{
    do {
        PREFETCH_RAW(raw + i);
        any_group(t, first + i, _mm256_loadu_si256((const __m256i *)(raw + i)), out + i * es, type);
        i += 16;
    } while (i + 32 <= count && !all_g0(_mm256_or_si256(_mm256_loadu_si256((const __m256i *)(raw + i)),
                                                         _mm256_loadu_si256((const __m256i *)(raw + i + 16)))));
    return i;
}

/* The conversion from i (a group boundary) to the last whole group;
 * returns where that ends. */
static inline __attribute__((always_inline)) size_t groups(const mg_conv_tables *t, size_t first, size_t i,
                                                          size_t count, const uint16_t *raw, char *out,
                                                          mg_out_type type, int floor)
{
    const size_t es = type == MG_OUT_INT16 ? 2 : 4;
    const float *o0 = t->offset[0] + first, *f0 = t->factor[0] + first;
    while ((i = g0_run(o0, f0, i, count, raw, out, type, es, floor)) + 16 <= count)
        i = mixed_run(t, first, i, count, raw, out, type, es);
    return i;
}

typedef size_t (*groups_fn)(const mg_conv_tables *t, size_t first, size_t i, size_t count, const uint16_t *raw,
                            char *out);

/* One compiled instance of groups() per output type (and int16 clamp). */
#define GROUPS_INSTANCE(name, type, floor)                                                                      \
    static size_t name(const mg_conv_tables *t, size_t first, size_t i, size_t count, const uint16_t *raw,      \
                       char *out)                                                                               \
    {                                                                                                           \
        return groups(t, first, i, count, raw, out, type, floor);                                               \
    }
GROUPS_INSTANCE(groups_int16_floor, MG_OUT_INT16, 1)
GROUPS_INSTANCE(groups_int16, MG_OUT_INT16, 0)
GROUPS_INSTANCE(groups_int32, MG_OUT_INT32, 0)
GROUPS_INSTANCE(groups_float32, MG_OUT_FLOAT32, 0)

void mg_convert_avx2(const mg_conv_tables *t, size_t first, size_t count, const uint16_t *raw, void *out,
                     mg_out_type type)
{
    const size_t es = mg_out_size(type);
    /* up to the first whole group of 16 (mg_conv_slot) */
    size_t i = (16 - first % 16) % 16;
    if (i > count)
        i = count;
    if (i)
        mg_convert_scalar(t, first, i, raw, out, type);
    /* the loops index from the first whole group; int16 clamps G0 values from below only where the tables
     * need it (g0_above_floor), int32 and float32 have no such clamp */
    const groups_fn fn = type == MG_OUT_INT32     ? groups_int32
                         : type == MG_OUT_FLOAT32 ? groups_float32
                         : t->g0_above_floor      ? groups_int16
                                                  : groups_int16_floor;
    i += fn(t, first + i, 0, count - i, raw + i, (char *)out + i * es);
    if (i < count)
        mg_convert_scalar(t, first + i, count - i, raw + i, (char *)out + i * es, type);
}
