/* test_pedestal.c - pedestals and noise from simulated dark frames with
 * known per-pixel values come back within their statistical error;
 * wrong-gain and all-zero frames are counted, not averaged. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
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

static void test_recovers_pedestals(void)
{
    enum { N = 4096, F = 400 };
    mg_pedestal_acc *a = mg_pedestal_acc_new(N, NULL);
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
    uint32_t *used = malloc(3 * N * sizeof(uint32_t));
    mg_pedestal_result(a, mean, rms, used);
    CHECK_EQ(a->zero_frames, 1);
    CHECK_EQ(a->frames[0], F);
    CHECK_EQ(used[7], F - 8);
    CHECK_EQ(a->wrong_gain[0][7], 8);
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
    free(ped), free(sd), free(raw), free(mean), free(rms), free(used);
}

static void test_exact_sums(void)
{
    mg_pedestal_acc *a = mg_pedestal_acc_new(2, NULL);
    uint16_t f1[2] = {0x4000 | 13600, 0x4000 | 16383}, f2[2] = {0x4000 | 13602, 0x4000 | 16383};
    mg_pedestal_add(a, f1, 1);
    mg_pedestal_add(a, f2, 1);
    float mean[6], rms[6];
    mg_pedestal_result(a, mean, rms, NULL);
    CHECK(mean[2] == 13601.0f && rms[2] == 1.0f);
    CHECK(mean[3] == 16383.0f && rms[3] == 0.0f);
    mg_pedestal_acc_free(a);
}

int main(void)
{
    RUN(test_recovers_pedestals);
    RUN(test_exact_sums);
    return CHECK_DONE();
}
