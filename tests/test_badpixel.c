/* test_badpixel.c - the median against sorting; every mask criterion on
 * hand-made statistics, at and beyond its limit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "morgul/badpixel.h"

static int cmpf(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static void test_median(void)
{
    uint64_t r = 7;
    for (size_t n = 1; n < 300; n += 7) {
        float *v = malloc(n * sizeof(float)), *s = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            v[i] = (float)(r % 50); /* many ties */
        }
        memcpy(s, v, n * sizeof(float));
        qsort(s, n, sizeof(float), cmpf);
        double want = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
        CHECK(mg_median_f32(v, n) == want);
        free(v), free(s);
    }
    float w[5] = {NAN, 3, NAN, 1, 2};
    CHECK(mg_median_f32(w, 5) == 2.0);
    CHECK(isnan(mg_median_f32(w, 1)));
}

enum { N = 1024 };

static void test_criteria(void)
{
    static float mean[3 * N], rms[3 * N];
    static uint32_t used[3 * N], wrong[3 * N], mask[N];
    static uint8_t user[N];
    mg_dark_stats s = {.pixels = N, .mean = mean, .rms = rms, .frames_used = used, .wrong_gain = wrong,
                       .frames = {100, 50, 0}};
    for (int p = 0; p < N; p++) {
        mean[p] = 2500, rms[p] = 10 + (float)(p % 5); /* median 12, MAD 1 */
        used[p] = 100, wrong[p] = 0;
        mean[N + p] = 13600, rms[N + p] = 4, used[N + p] = 50, wrong[N + p] = 0;
        mean[2 * N + p] = NAN, rms[2 * N + p] = NAN, used[2 * N + p] = 0, wrong[2 * N + p] = 0; /* G2 not taken */
    }
    rms[10] = 22.5f;             /* > 12 + 10 * 1 */
    rms[11] = 21.5f;             /* below the robust limit */
    used[20] = 49, wrong[20] = 51; /* few frames and wrong gain in G0 */
    wrong[21] = 2, used[21] = 98;  /* 2 wrong G0 frames are allowed */
    wrong[N + 22] = 1, used[N + 22] = 49; /* one in G1 is not */
    mean[23] = 0, rms[23] = 0;   /* dead */
    rms[24] = 0;                 /* stuck at 2500 */
    mean[N + 25] = 16383;        /* out of range in G1 */
    used[26] = used[N + 26] = 0, wrong[26] = 100, wrong[N + 26] = 50, mean[26] = mean[N + 26] = NAN,
    rms[26] = rms[N + 26] = NAN; /* nothing valid anywhere */
    user[27] = 1;
    mg_mask_criteria c;
    mg_mask_criteria_defaults(&c);
    mg_mask_summary sum;
    CHECK_EQ(mg_mask_compute(&c, &s, user, mask, &sum), 0);
    CHECK(sum.noisy_threshold == 22.0);
    CHECK_EQ(mask[10], MG_MASK_NOISY);
    CHECK_EQ(mask[11], 0);
    CHECK_EQ(mask[20], MG_MASK_FEW_FRAMES(0) | MG_MASK_WRONG_GAIN(0));
    CHECK_EQ(mask[21], 0);
    CHECK_EQ(mask[22], MG_MASK_WRONG_GAIN(1));
    CHECK_EQ(mask[23], MG_MASK_DEAD | MG_MASK_PEDESTAL_RANGE);
    CHECK_EQ(mask[24], MG_MASK_STUCK);
    CHECK_EQ(mask[25], MG_MASK_PEDESTAL_RANGE);
    CHECK(mask[26] & MG_MASK_DEAD);
    CHECK_EQ(mask[27], MG_MASK_USER);
    CHECK_EQ(sum.masked, 8);
    CHECK(sum.median_pedestal[1] == 13600 && isnan(sum.median_pedestal[2]));
    /* the absolute limit wins when it is lower */
    c.noisy_rms = 13.5;
    mg_mask_compute(&c, &s, NULL, mask, &sum);
    CHECK(mask[4] & MG_MASK_NOISY);
    CHECK(!(mask[3] & MG_MASK_NOISY));
}

int main(void)
{
    RUN(test_median);
    RUN(test_criteria);
    return CHECK_DONE();
}
