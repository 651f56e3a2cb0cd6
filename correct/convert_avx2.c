/* convert_avx2.c - the conversion of convert.c, 16 pixels at a time
 * (compiled with -mavx2, no FMA, called only on CPUs with AVX2).
 *
 * G0 tables are streamed; most pixels of a frame are G0, so G1/G2 table
 * values are gathered only for the groups of 8 pixels that have such a
 * pixel.  Every arithmetic step is the scalar reference's, in the same
 * order, so the results are bit-identical. */
#include <immintrin.h>
#include <math.h>

#include "convert_kernels.h"
#include "morgul/jungfrau.h"

typedef struct eight {
    __m256 v;      /* value before rounding */
    __m256 sat;    /* masks */
    __m256 inv;
} eight;

static inline eight compute8(const mg_conv_tables *t, size_t p, __m128i raw8)
{
    const __m256i w = _mm256_cvtepu16_epi32(raw8);
    const __m256i g = _mm256_srli_epi32(w, 14);
    __m256 ped = _mm256_loadu_ps(t->pedestal[0] + p);
    __m256 fac = _mm256_loadu_ps(t->factor[0] + p);
    const __m256i m1 = _mm256_cmpeq_epi32(g, _mm256_set1_epi32(1));
    const __m256i m3 = _mm256_cmpeq_epi32(g, _mm256_set1_epi32(3));
    if (_mm256_movemask_epi8(_mm256_or_si256(m1, m3))) {
        const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        ped = _mm256_mask_i32gather_ps(ped, t->pedestal[1] + p, idx, _mm256_castsi256_ps(m1), 4);
        fac = _mm256_mask_i32gather_ps(fac, t->factor[1] + p, idx, _mm256_castsi256_ps(m1), 4);
        ped = _mm256_mask_i32gather_ps(ped, t->pedestal[2] + p, idx, _mm256_castsi256_ps(m3), 4);
        fac = _mm256_mask_i32gather_ps(fac, t->factor[2] + p, idx, _mm256_castsi256_ps(m3), 4);
    }
    const __m256 adc = _mm256_cvtepi32_ps(_mm256_and_si256(w, _mm256_set1_epi32(0x3FFF)));
    eight e;
    e.v = _mm256_mul_ps(_mm256_sub_ps(adc, ped), fac);
    e.sat = _mm256_castsi256_ps(_mm256_cmpeq_epi32(w, _mm256_set1_epi32(MG_WORD_SATURATED)));
    __m256i inv = _mm256_or_si256(_mm256_cmpeq_epi32(g, _mm256_set1_epi32(2)),
                                  _mm256_or_si256(_mm256_cmpeq_epi32(w, _mm256_set1_epi32(0xFFFF)),
                                                  _mm256_cmpeq_epi32(w, _mm256_set1_epi32(0x4000))));
    e.inv = _mm256_or_ps(_mm256_castsi256_ps(inv), _mm256_cmp_ps(e.v, e.v, _CMP_UNORD_Q));
    return e;
}

/* round half away from zero, exactly as round_away() in convert.c:
 * trunc(v + (v - trunc(v))) */
#define TRUNC_PS(x) _mm256_round_ps((x), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)

static inline __m256 round_away8(__m256 v) { return TRUNC_PS(_mm256_add_ps(v, _mm256_sub_ps(v, TRUNC_PS(v)))); }

/* The common case: 16 G0 pixels with no special word.  A NaN pedestal (an
 * unusable pixel) gives a NaN value, which the clamps pass on (NaN as their
 * second operand) and the conversion turns into 0x80000000, packed to
 * -32768: invalid, as the general path says. */
static inline __m256i g0_int16_8(const mg_conv_tables *t, size_t p, __m128i raw8)
{
    __m256 adc = _mm256_cvtepi32_ps(_mm256_cvtepu16_epi32(raw8));
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(adc, _mm256_loadu_ps(t->pedestal[0] + p)),
                             _mm256_loadu_ps(t->factor[0] + p));
    /* round_away8 without its outer trunc: clamping to whole bounds commutes
     * with trunc, and the conversion truncates */
    __m256 r = _mm256_add_ps(v, _mm256_sub_ps(v, TRUNC_PS(v)));
    r = _mm256_min_ps(_mm256_set1_ps(32767.0f), _mm256_max_ps(_mm256_set1_ps(-32767.0f), r));
    return _mm256_cvttps_epi32(r);
}

static inline __m256i to_int16_lanes(eight e)
{
    __m256 r = round_away8(e.v);
    r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-32767.0f)), _mm256_set1_ps(32767.0f));
    __m256i o = _mm256_cvttps_epi32(r);
    o = _mm256_blendv_epi8(o, _mm256_set1_epi32(MG_INT16_INVALID), _mm256_castps_si256(e.inv));
    o = _mm256_blendv_epi8(o, _mm256_set1_epi32(MG_INT16_SATURATED), _mm256_castps_si256(e.sat));
    return o;
}

static inline __m256i to_int32(eight e)
{
    __m256 r = round_away8(e.v);
    __m256 big = _mm256_cmp_ps(r, _mm256_set1_ps(2147483648.0f), _CMP_GE_OQ);
    __m256i o = _mm256_cvttps_epi32(_mm256_max_ps(r, _mm256_setzero_ps()));
    o = _mm256_blendv_epi8(o, _mm256_set1_epi32(MG_INT32_SATURATED), _mm256_castps_si256(big));
    o = _mm256_blendv_epi8(o, _mm256_set1_epi32(MG_INT32_INVALID), _mm256_castps_si256(e.inv));
    o = _mm256_blendv_epi8(o, _mm256_set1_epi32(MG_INT32_SATURATED), _mm256_castps_si256(e.sat));
    return o;
}

static inline __m256 to_float(eight e)
{
    __m256 o = _mm256_blendv_ps(e.v, _mm256_set1_ps(NAN), e.inv);
    return _mm256_blendv_ps(o, _mm256_set1_ps(INFINITY), e.sat);
}

void mg_convert_avx2(const mg_conv_tables *t, size_t first, size_t count, const uint16_t *raw, void *out,
                     mg_out_type type)
{
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        const __m256i r16 = _mm256_loadu_si256((const __m256i *)(raw + i));
        if (type == MG_OUT_INT16 && _mm256_testz_si256(r16, _mm256_set1_epi16((short)0xC000))) {
            __m256i p = _mm256_packs_epi32(g0_int16_8(t, first + i, _mm256_castsi256_si128(r16)),
                                           g0_int16_8(t, first + i + 8, _mm256_extracti128_si256(r16, 1)));
            _mm256_storeu_si256((__m256i *)((int16_t *)out + i), _mm256_permute4x64_epi64(p, 0xD8));
            continue;
        }
        eight a = compute8(t, first + i, _mm256_castsi256_si128(r16));
        eight b = compute8(t, first + i + 8, _mm256_extracti128_si256(r16, 1));
        switch (type) {
        case MG_OUT_INT16: {
            __m256i p = _mm256_packs_epi32(to_int16_lanes(a), to_int16_lanes(b));
            _mm256_storeu_si256((__m256i *)((int16_t *)out + i), _mm256_permute4x64_epi64(p, 0xD8));
            break;
        }
        case MG_OUT_INT32:
            _mm256_storeu_si256((__m256i *)((int32_t *)out + i), to_int32(a));
            _mm256_storeu_si256((__m256i *)((int32_t *)out + i + 8), to_int32(b));
            break;
        case MG_OUT_FLOAT32:
            _mm256_storeu_ps((float *)out + i, to_float(a));
            _mm256_storeu_ps((float *)out + i + 8, to_float(b));
            break;
        }
    }
    if (i < count)
        mg_convert_scalar(t, first + i, count - i, raw + i, (char *)out + i * mg_out_size(type), type);
}
