/* test_pedestal.c - pedestals and noise from simulated dark frames with
 * known per-pixel values come back within their statistical error;
 * wrong-gain and all-zero frames are counted, not averaged. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "morgul/bitshuffle.h"
#include "morgul/pedestal.h"

static uint64_t rs = 42;
static double u01(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (double)(rs >> 11) / 9007199254740992.0;
}
static double gauss(void) { return sqrt(-2 * log(u01() + 1e-300)) * cos(2 * M_PI * u01()); }

static void recovers(mg_pedestal_impl impl)
{
    enum { N = 4096, F = 400 };
    mg_pedestal_acc *a = mg_pedestal_acc_new(N, impl, NULL);
    double *ped = malloc(N * sizeof(double)), *sd = malloc(N * sizeof(double));
    uint16_t *raw = malloc(N * 2);
    for (int p = 0; p < N; p++) {
        ped[p] = 1900 + 1200 * u01();
        sd[p] = 8 + 20 * u01();
    }
    memset(raw, 0, N * 2);
    mg_pedestal_add(a, raw, 0); /* an all-zero frame after a restart */
    for (int f = 0; f < F; f++) {
        for (int p = 0; p < N; p++) {
            long v = lround(ped[p] + sd[p] * gauss());
            raw[p] = (uint16_t)(v < 0 ? 0 : v > 16383 ? 16383 : v);
        }
        if (f % 50 == 0)
            raw[7] = (uint16_t)(0x4000 | 13000); /* pixel 7 switches to G1 now and then */
        mg_pedestal_add(a, raw, 0);
    }
    float *mean = malloc(3 * N * sizeof(float)), *rms = malloc(3 * N * sizeof(float));
    uint32_t *used = malloc(3 * N * sizeof(uint32_t)), *wrong = malloc(3 * N * sizeof(uint32_t));
    mg_pedestal_result(a, mean, rms, used, wrong);
    CHECK_EQ(mg_pedestal_zero_frames(a), 1);
    CHECK_EQ(mg_pedestal_frames(a, 0), F);
    CHECK_EQ(used[7], F - 8);
    CHECK_EQ(wrong[7], 8);
    CHECK_EQ(wrong[8], 0);
    int far = 0, rms_far = 0;
    for (int p = 0; p < N; p++) {
        double n = used[p], se = sd[p] / sqrt(n); /* the mean's standard error */
        far += fabs(mean[p] - ped[p]) > 5 * se + 0.3; /* + rounding of simulated ADC to integers */
        rms_far += fabs(rms[p] - sqrt(sd[p] * sd[p] + 1.0 / 12)) > 5 * sd[p] / sqrt(2 * n);
    }
    CHECK_EQ(far, 0);
    CHECK_EQ(rms_far, 0);
    CHECK(isnan(mean[N + 3]) && used[N + 3] == 0); /* no G1 frames */
    mg_pedestal_acc_free(a);
    free(ped), free(sd), free(raw), free(mean), free(rms), free(used), free(wrong);
}

static void test_recovers_pedestals(void)
{
    recovers(MG_PED_SCALAR);
    if (mg_cpu_has_avx2())
        recovers(MG_PED_AVX2);
}

static void test_exact_sums(void)
{
    mg_pedestal_acc *a = mg_pedestal_acc_new(16, MG_PED_AUTO, NULL);
    uint16_t f1[16], f2[16];
    for (int p = 0; p < 16; p++)
        f1[p] = f2[p] = 0x4000 | 16383;
    f1[0] = 0x4000 | 13600, f2[0] = 0x4000 | 13602;
    mg_pedestal_add(a, f1, 1);
    mg_pedestal_add(a, f2, 1);
    float mean[48], rms[48];
    mg_pedestal_result(a, mean, rms, NULL, NULL);
    CHECK(mean[16] == 13601.0f && rms[16] == 1.0f);
    CHECK(mean[17] == 16383.0f && rms[17] == 0.0f);
    mg_pedestal_acc_free(a);
}

/* Random words of every kind (every gain, the error and saturation words,
 * the largest ADC), in runs of every gain that end mid-batch: the AVX2 sums
 * equal the scalar ones exactly, including whole batches of 16383^2 in a
 * 32-bit lane. */
static void test_avx2_equals_scalar(void)
{
    if (!mg_cpu_has_avx2())
        return;
    enum { N = 1024 };
    mg_pedestal_acc *s = mg_pedestal_acc_new(N, MG_PED_SCALAR, NULL), *v = mg_pedestal_acc_new(N, MG_PED_AVX2, NULL);
    uint16_t raw[N];
    static const uint16_t special[] = {0x0000, 0x3FFF, 0x4000, 0x7FFF, 0xC000, 0xFFFF, 0x8000, 0xBFFF, 0x4001, 0xC001};
    const int runs[][2] = {{0, 37}, {1, 16}, {2, 5}, {0, 16}, {2, 33}, {1, 1}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++)
        for (int f = 0; f < runs[r][1]; f++) {
            for (int p = 0; p < N; p++) {
                double x = u01();
                raw[p] = p < 16 ? (uint16_t)(0xFFFF & ((unsigned)runs[r][0] == 0 ? 0x3FFF : 0xFFFF))
                         : x < 0.2 ? special[(int)(u01() * 10) % 10]
                                   : (uint16_t)(rs >> 20);
            }
            mg_pedestal_add(s, raw, runs[r][0]);
            mg_pedestal_add(v, raw, runs[r][0]);
        }
    for (int g = 0; g < 3; g++) {
        const uint32_t *c1, *c2;
        const uint64_t *s1, *s2, *q1, *q2;
        mg_pedestal_sums(s, g, &c1, &s1, &q1);
        mg_pedestal_sums(v, g, &c2, &s2, &q2);
        CHECK(!memcmp(c1, c2, N * sizeof *c1));
        CHECK(!memcmp(s1, s2, N * sizeof *s1));
        CHECK(!memcmp(q1, q2, N * sizeof *q1));
        CHECK(mg_pedestal_frames(s, g) == mg_pedestal_frames(v, g));
    }
    const uint32_t *c;
    const uint64_t *sm, *sq;
    mg_pedestal_sums(v, 0, &c, &sm, &sq);
    CHECK_EQ(c[0], 37 + 16);
    CHECK_EQ(sq[0], (uint64_t)(37 + 16) * 16383 * 16383);
    mg_pedestal_acc_free(s);
    mg_pedestal_acc_free(v);
}

static void test_pedestal_mode(void)
{
    /* F = 4, L = 2: frames 3 and 7 forced to G1, 11 and 15 to G2, the rest G0 */
    int g1 = 0, g2 = 0;
    for (uint64_t k = 0; k < 40; k++) {
        int g = mg_pedestal_mode_gain(k, 4, 2);
        g1 += g == 1, g2 += g == 2;
        if (k == 3 || k == 7)
            CHECK_EQ(g, 1);
        else if (k == 11 || k == 15)
            CHECK_EQ(g, 2);
        else
            CHECK_EQ(g, 0);
    }
    CHECK(g1 == 2 && g2 == 2);
    CHECK_EQ(mg_pedestal_gain_of_daq(1u << 12), 1);
    CHECK_EQ(mg_pedestal_gain_of_daq(1u << 13), 2);
    CHECK_EQ(mg_pedestal_gain_of_daq(0x3), 0);
    CHECK(mg_pedestal_acc_new(10, MG_PED_AUTO, NULL) == NULL);
}

int main(void)
{
    RUN(test_recovers_pedestals);
    RUN(test_exact_sums);
    RUN(test_avx2_equals_scalar);
    RUN(test_pedestal_mode);
    return CHECK_DONE();
}
