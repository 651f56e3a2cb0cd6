/* test_convert.c - conversion to photons: the real PSI module frames give
 * PSI's reference conversion; scalar and AVX2 kernels agree bit for bit on
 * real and on random words (every gain code, every special word, unusable
 * table entries); special words map to the documented values. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "morgul/bitshuffle.h"
#include "morgul/convert.h"
#include "morgul/jungfrau.h"

#ifndef SHARED_DATA
#define SHARED_DATA "../shared/data"
#endif
#define P MG_MODULE_PIXELS

static int load(const char *name, void *dst, size_t bytes)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/psi-mod5/%s", SHARED_DATA, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(dst, 1, bytes, f);
    fclose(f);
    return n == bytes ? 0 : -1;
}

static float rounded(float v) { return v < 0 ? -floorf(-v + 0.5f) : floorf(v + 0.5f); }

static void test_real_frames(void)
{
    static float ped[3][P], conv[P];
    static double gain[3][P];
    static uint16_t raw[P];
    static int16_t o16a[P], o16b[P];
    static int32_t o32a[P], o32b[P];
    static float ofa[P], ofb[P];
    if (load("mod5_pedeG0.bin", ped[0], sizeof ped[0]) || load("mod5_pedeG1.bin", ped[1], sizeof ped[1]) ||
        load("mod5_pedeG2.bin", ped[2], sizeof ped[2]) || load("gainmap_mod5_derived.bin", gain, sizeof gain)) {
        printf("     (skipped: %s/psi-mod5 is not there)\n", SHARED_DATA);
        return;
    }
    const float *pp[3] = {ped[0], ped[1], ped[2]};
    const double *gp[3] = {gain[0], gain[1], gain[2]};
    mg_conv_tables *t = mg_conv_tables_new(P, pp, gp, NULL, 12.4, NULL, -1, NULL);
    CHECK(t != NULL);
    size_t valid = 0, exact = 0, g0_far = 0, sat = 0;
    int avx = mg_conv_best() == MG_CONV_AVX2;
    for (int k = 0; k < 10; k++) {
        char name[64];
        snprintf(name, sizeof name, "mod5_raw%d.bin", k);
        CHECK(load(name, raw, sizeof raw) == 0);
        snprintf(name, sizeof name, "mod5_conv%d.bin", k);
        CHECK(load(name, conv, sizeof conv) == 0);
        mg_convert(t, 0, P, raw, o16a, MG_OUT_INT16, MG_CONV_SCALAR);
        mg_convert(t, 0, P, raw, o32a, MG_OUT_INT32, MG_CONV_SCALAR);
        mg_convert(t, 0, P, raw, ofa, MG_OUT_FLOAT32, MG_CONV_SCALAR);
        if (avx) {
            mg_convert(t, 0, P, raw, o16b, MG_OUT_INT16, MG_CONV_AVX2);
            mg_convert(t, 0, P, raw, o32b, MG_OUT_INT32, MG_CONV_AVX2);
            mg_convert(t, 0, P, raw, ofb, MG_OUT_FLOAT32, MG_CONV_AVX2);
            CHECK(memcmp(o16a, o16b, sizeof o16a) == 0);
            CHECK(memcmp(o32a, o32b, sizeof o32a) == 0);
            CHECK(memcmp(ofa, ofb, sizeof ofa) == 0);
        }
        for (size_t p = 0; p < P; p++) {
            if (raw[p] == MG_WORD_SATURATED) {
                sat++;
                CHECK_EQ(o16a[p], MG_INT16_SATURATED);
                continue;
            }
            if (o16a[p] == MG_INT16_INVALID)
                continue;
            valid++;
            float want = rounded(conv[p]);
            exact += want == (float)o16a[p];
            if (MG_PIXEL_GAIN(raw[p]) == 0 && fabsf(want - (float)o16a[p]) > 1)
                g0_far++;
        }
    }
    printf("     %zu valid pixels, %.4f %% equal PSI's rounded conversion; %zu saturated\n", valid,
           100.0 * (double)exact / (double)valid, sat);
    CHECK(valid > 10 * (P - 200));
    CHECK((double)exact >= 0.999 * (double)valid);
    CHECK_EQ(g0_far, 0);
    CHECK(sat > 0);
    mg_conv_tables_free(t);
}

static uint64_t rs = 0x853c49e6748fea9bull;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static void test_random_words_bit_identical(void)
{
    if (mg_conv_best() != MG_CONV_AVX2) {
        printf("     (no AVX2 and FMA on this CPU)\n");
        return;
    }
    const size_t n = 65536 * 4;
    float *ped[3];
    double *gain[3];
    for (int g = 0; g < 3; g++) {
        ped[g] = malloc(n * sizeof(float));
        gain[g] = malloc(n * sizeof(double));
        for (size_t p = 0; p < n; p++) {
            uint64_t r = rnd();
            ped[g][p] = (r & 63) == 0 ? 0.0f : (r & 63) == 1 ? 16383.0f : (r & 63) == 2 ? NAN : (float)(r % 16000) + 0.37f;
            gain[g][p] = (r >> 8 & 63) == 0 ? 0.0 : (g ? -1.0 : 1.0) * (0.001 + (double)((r >> 20) % 100000) / 1000.0);
        }
    }
    uint32_t *mask = calloc(n, sizeof(uint32_t));
    for (size_t p = 0; p < n; p += 97)
        mask[p] = 1u << 8;
    const float *pp[3] = {ped[0], ped[1], ped[2]};
    const double *gp[3] = {gain[0], gain[1], gain[2]};
    uint16_t *raw = malloc(n * 2);
    for (size_t i = 0; i < n; i++)
        raw[i] = (uint16_t)(i < 65536 ? i : rnd()); /* every word once, then random ones */
    void *a = malloc(n * 4), *b = malloc(n * 4);
    double energies[] = {12.4, 1.0, 0.0001, 50000};
    for (size_t e = 0; e < sizeof energies / sizeof *energies; e++) {
        mg_conv_tables *t = mg_conv_tables_new(n, pp, gp, mask, energies[e], NULL, -1, NULL);
        for (int type = MG_OUT_INT16; type <= MG_OUT_FLOAT32; type++) {
            /* odd offsets and lengths: the scalar tail too */
            size_t first = 3, count = n - 11;
            mg_convert(t, first, count, raw + first, a, (mg_out_type)type, MG_CONV_SCALAR);
            mg_convert(t, first, count, raw + first, b, (mg_out_type)type, MG_CONV_AVX2);
            if (memcmp(a, b, count * mg_out_size((mg_out_type)type))) {
                fprintf(stderr, "energy %g type %d differs\n", energies[e], type);
                CHECK(0);
            }
        }
        /* another storage cell's tables, sharing these factors, convert exactly as tables made from scratch:
         * the pedestals reversed and another mask */
        float *ped2[3];
        for (int g = 0; g < 3; g++) {
            ped2[g] = malloc(n * sizeof(float));
            for (size_t p = 0; p < n; p++)
                ped2[g][p] = ped[g][n - 1 - p];
        }
        uint32_t *mask2 = calloc(n, sizeof(uint32_t));
        for (size_t p = 5; p < n; p += 89)
            mask2[p] = 1u << 4;
        const float *pp2[3] = {ped2[0], ped2[1], ped2[2]};
        mg_conv_tables *fresh = mg_conv_tables_new(n, pp2, gp, mask2, energies[e], NULL, -1, NULL);
        mg_conv_tables *like = mg_conv_tables_new_like(t, pp2, mask2, NULL, -1, NULL);
        CHECK(like && like->shared_factor && like->factor[1] == t->factor[1]);
        for (int type = MG_OUT_INT16; like && type <= MG_OUT_FLOAT32; type++) {
            mg_convert(fresh, 0, n, raw, a, (mg_out_type)type, MG_CONV_AUTO);
            mg_convert(like, 0, n, raw, b, (mg_out_type)type, MG_CONV_AUTO);
            CHECK(memcmp(a, b, n * mg_out_size((mg_out_type)type)) == 0);
        }
        mg_conv_tables_free(like);
        mg_conv_tables_free(fresh);
        for (int g = 0; g < 3; g++)
            free(ped2[g]);
        free(mask2);
        mg_conv_tables_free(t);
    }
    for (int g = 0; g < 3; g++) {
        free(ped[g]);
        free(gain[g]);
    }
    free(mask);
    free(raw);
    free(a);
    free(b);
}

/* The first 16 words take the general path, the next 16 (all G0) the AVX2
 * kernel's short one. */
static void test_special_words(void)
{
    enum { N = 32 };
    float ped[3][N];
    double gain[3][N];
    /* gains of powers of two: factors, offsets and halves are exact, so the ties are real ties */
    for (int g = 0; g < 3; g++)
        for (int p = 0; p < N; p++) {
            ped[g][p] = g == 0 ? 1000 : 10000;
            gain[g][p] = g == 0 ? 8 : -1;
        }
    ped[0][5] = ped[0][18] = 0; /* no usable G0 pedestal */
    uint32_t mask[N] = {0};
    mask[6] = mask[19] = 1;
    gain[0][20] = gain[0][21] = 1.0 / 64; /* 64 photons per ADU: beyond the int16 range */
    gain[0][22] = 2e-6;                   /* a factor above 1e5: unusable */
    const float *pp[3] = {ped[0], ped[1], ped[2]};
    const double *gp[3] = {gain[0], gain[1], gain[2]};
    mg_conv_tables *t = mg_conv_tables_new(N, pp, gp, mask, 1.0, NULL, -1, NULL);
    uint16_t raw[N] = {
        1000 + 12,          /* 1.5 photons -> 2 */
        1000 - 12,          /* -1.5 -> -2 (int32: 0) */
        0xC000,             /* saturated */
        0xFFFF,             /* error word / missing packet */
        0x4000,             /* error word */
        1000 + 20,          /* pixel 5: no pedestal */
        1000 + 20,          /* pixel 6: masked */
        0x8000 | 1000,      /* gain bits 10 */
        0x4000 | 9000,      /* G1: (9000 - 10000) / -1 = 1000 */
        0xC000 | 9990,      /* G2: 10 */
        16383,              /* G0: 1922.875 -> 1923 */
        1000 + 11,          /* 1.375 -> 1 */
        1000,               /* 0 */
        0xC000 | 1,         /* G2 ADC 1: 9999 */
        0x4000 | 1,         /* G1 ADC 1: not the error word: 9999 */
        1000 + 20,          /* 2.5 -> 3 */
        1000 + 12, 1000 - 12, /* 16, 17: 2, -2 */
        1000 + 20, 1000 + 20, /* 18: no pedestal, 19: masked */
        16383,              /* 20: 984512 -> 32767 */
        0,                  /* 21: -64000 -> -32767 */
        1001,               /* 22: unusable gain */
        1000 + 11, 1000 - 11, 1000 + 4, 1000 - 4, 1000 + 3, 1000 - 3, 1000, /* 23..29: +-1.375, +-0.5, +-0.375, 0 */
        0x3FFF, 0,          /* 30: 1922.875 -> 1923, 31: -125 */
    };
    int16_t o16[N];
    int32_t o32[N];
    float of[N];
    for (int impl = MG_CONV_SCALAR; impl <= MG_CONV_AVX2; impl++) {
        if (impl == MG_CONV_AVX2 && mg_conv_best() != MG_CONV_AVX2)
            break;
        mg_convert(t, 0, N, raw, o16, MG_OUT_INT16, (mg_conv_impl)impl);
        mg_convert(t, 0, N, raw, o32, MG_OUT_INT32, (mg_conv_impl)impl);
        mg_convert(t, 0, N, raw, of, MG_OUT_FLOAT32, (mg_conv_impl)impl);
        const int16_t w16[N] = {2,   -2,    32767,  -32768, -32768, -32768, -32768, -32768, 1000, 10, 1923,
                                1,   0,     9999,   9999,   3,      2,      -2,     -32768, -32768, 32767, -32767,
                                -32768, 1,  -1,     1,      -1,     0,      0,      0,      1923,   -125};
        const int32_t w32[N] = {2, 0, INT32_MAX, -1, -1, -1, -1, -1, 1000, 10, 1923, 1, 0, 9999, 9999, 3,
                                2, 0, -1,        -1, 984512, 0, -1, 1, 0, 1, 0, 0, 0, 0, 1923, 0};
        for (int i = 0; i < N; i++) {
            if (o16[i] != w16[i] || o32[i] != w32[i])
                fprintf(stderr, "kernel %d word %d: %d %d\n", impl, i, o16[i], o32[i]);
            CHECK_EQ(o16[i], w16[i]);
            CHECK_EQ(o32[i], w32[i]);
        }
        CHECK(isinf(of[2]) && of[2] > 0);
        CHECK(isnan(of[3]) && isnan(of[5]) && isnan(of[6]) && isnan(of[7]));
        CHECK(of[0] == 1.5f && of[1] == -1.5f);
    }
    mg_conv_tables_free(t);
    mg_error e;
    CHECK(mg_conv_tables_new(N, pp, gp, NULL, NAN, NULL, -1, &e) == NULL);
    CHECK(mg_conv_tables_new(N, pp, gp, NULL, -3, NULL, -1, &e) == NULL);
}

static float half_away(float v)
{
    float t = truncf(v);
    return fabsf(v - t) >= 0.5f ? t + (v < 0 ? -1.0f : 1.0f) : t;
}

/* trunc(v + copysign(0.5 - 2^-25, v)) is rounding half away from zero: every
 * float of the binades where it could fail (|v| from 1/8 to 8, where the
 * sum crosses an integer with few bits to spare, and 2^21 to 2^24, where
 * the ulp reaches 1/2 and 1), and random floats of every magnitude. */
static void test_rounding_formula(void)
{
    uint64_t bad = 0, n = 0;
    const float h = 0x1.fffffep-2f;
    CHECK(h < 0.5f && nextafterf(h, 1.0f) == 0.5f);
    const uint32_t from[] = {0x3E000000u /* 1/8 */, 0x4A000000u /* 2^21 */};
    const uint32_t to[] = {0x41000000u /* 8 */, 0x4B800000u /* 2^24 */};
    for (int r = 0; r < 2; r++)
        for (uint32_t bits = from[r]; bits < to[r]; bits++)
            for (int sign = 0; sign < 2; sign++) {
                float v;
                uint32_t b = bits | (uint32_t)sign << 31;
                memcpy(&v, &b, 4);
                bad += truncf(v + copysignf(h, v)) != half_away(v);
                n++;
            }
    for (uint64_t k = 0; k < 1000000; k++) {
        uint32_t bits = (uint32_t)rnd();
        float v;
        memcpy(&v, &bits, 4);
        if (!isfinite(v))
            continue;
        bad += truncf(v + copysignf(h, v)) != half_away(v);
        n++;
    }
    const float halves[] = {0.5f, -0.5f, 1.5f, -2.5f, h, -h, 8388607.5f, 4194303.75f, 1e30f};
    for (size_t i = 0; i < sizeof halves / sizeof *halves; i++)
        bad += truncf(halves[i] + copysignf(h, halves[i])) != half_away(halves[i]);
    CHECK_EQ(bad, 0);
    CHECK(n > 100000000);
    /* the plain 1/2 would not do */
    CHECK(truncf(h + 0.5f) == 1.0f);
}

/* The AVX2 kernel equals the scalar one on frames all G0, G0 with a few
 * other groups, random words, the smallest ADC values and a strong signal
 * (G1 and a few G2 words scattered among G0 ones), on tables where
 * G0 values cannot go below -32767 (the kernel leaves out that clamp) and
 * on tables where they can. */
static void test_g0_clamp_or_not(void)
{
    enum { N = 8192, F = 6 };
    static float ped[3][N];
    static double gain[3][N];
    static uint16_t raw[F][N];
    static char want[N * 4], got[N * 4];
    for (size_t p = 0; p < N; p++) {
        uint64_t r = rnd();
        ped[0][p] = 1000.0f + (float)(r % 3000) + 0.25f;
        ped[1][p] = 14000.0f + (float)(r >> 16 & 1023);
        ped[2][p] = 15000.0f + (float)(r >> 26 & 1023);
        gain[0][p] = 38.0 + (double)(r >> 36 & 1023) / 256.0;
        gain[1][p] = -1.5;
        gain[2][p] = -0.11;
    }
    for (size_t p = 0; p < N; p++) {
        uint64_t r = rnd();
        raw[0][p] = (uint16_t)(r & 0x3FFF);
        raw[1][p] = (uint16_t)(p % 512 == 7 ? (r >> 14) & 0xFFFF : (r >> 14) & 0x3FFF);
        raw[2][p] = (uint16_t)(r >> 32);
        raw[3][p] = (uint16_t)(ped[0][p] + (float)(r >> 48 & 255) - 128.0f);
        raw[4][p] = (uint16_t)(r >> 50 & 3);
        /* a strong signal: near-pedestal G0 words with G1 ones scattered (1 in 20) and a few G2 (1 in 200),
         * so runs of mixed groups with and without G2 words alternate with runs of G0 groups */
        uint64_t q = rnd();
        raw[5][p] = q % 20 == 0    ? (uint16_t)(0x4000 | (1 + (q >> 8) % 16383))
                    : q % 200 == 1 ? (uint16_t)(0xC000 | (1 + (q >> 8) % 16382))
                                   : raw[3][p];
    }
    const float *pp[3] = {ped[0], ped[1], ped[2]};
    const double *gp[3] = {gain[0], gain[1], gain[2]};
    for (int floor = 0; floor < 2; floor++) {
        if (floor) /* one pixel per 64 with a G0 gain so small that its offset exceeds 32767 photons */
            for (size_t p = 0; p < N; p += 64)
                gain[0][p] = 0.003;
        mg_conv_tables *t = mg_conv_tables_new(N, pp, gp, NULL, 12.4, NULL, -1, NULL);
        CHECK(t && t->g0_above_floor == !floor);
        for (int type = MG_OUT_INT16; t && type <= MG_OUT_FLOAT32; type++)
            for (int k = 0; k < F; k++)
                for (size_t first = 0; first < 8; first += 5) {
                    size_t count = N - first - (k & 1) * 7, es = mg_out_size((mg_out_type)type);
                    mg_convert(t, first, count, raw[k] + first, got, (mg_out_type)type, MG_CONV_AUTO);
                    mg_convert(t, first, count, raw[k] + first, want, (mg_out_type)type, MG_CONV_SCALAR);
                    if (memcmp(want, got, count * es)) {
                        fprintf(stderr, "type %d, frame %d from %zu differs\n", type, k, first);
                        CHECK(0);
                    }
                }
        if (t && floor) { /* the small-gain pixels' small G0 values are clamped, not invalid */
            int16_t o[16];
            mg_convert(t, 0, 16, raw[4], o, MG_OUT_INT16, MG_CONV_AUTO);
            CHECK_EQ(o[0], -32767);
        }
        mg_conv_tables_free(t);
    }
}

static void test_energy(void)
{
    CHECK(fabs(mg_energy_from_wavelength(1.0) - 12.398419843320026) < 1e-12);
    CHECK(fabs(mg_energy_from_wavelength(0.999869) - 12.4) < 1e-4);
    CHECK_EQ(mg_energy_from_wavelength(0), 0);
    CHECK_EQ(mg_energy_from_wavelength(-1), 0);
}

int main(void)
{
    RUN(test_energy);
    RUN(test_rounding_formula);
    RUN(test_special_words);
    RUN(test_random_words_bit_identical);
    RUN(test_g0_clamp_or_not);
    RUN(test_real_frames);
    return CHECK_DONE();
}
