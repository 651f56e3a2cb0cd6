/* test_runped.c - the run-time pedestal on hand-made frames: auto finds the
 * first frame with signal whatever came before (noise, a cosmic ray, a
 * partial frame), takes nothing after it, and averages exactly; fixed N
 * counts frames with signal; masked pixels never count as hit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "morgul/jungfrau.h"
#include "morgul/runped.h"

#define P ((size_t)MG_MODULE_PIXELS)

static float *ped, *rms;
static uint32_t *mask;

static uint64_t rng = 99;
static unsigned noise(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng % 21); /* 0..20 ADU: well inside 6 sigma of 12 ADU */
}

/* A dark frame of module m: the pedestal (drifted by `drift`) plus noise. */
static void dark(mg_runped *r, int nmod, int drift)
{
    for (int m = 0; m < nmod; m++) {
        uint16_t *f = mg_runped_module(r, m);
        for (size_t i = 0; i < P; i++)
            f[i] = (uint16_t)(ped[i] + drift + noise());
    }
}

static mg_runped *make(int nmod, uint64_t frames)
{
    const float *p[2] = {ped, ped}, *s[2] = {rms, rms};
    const uint32_t *k[2] = {mask, mask};
    mg_runped_config c = {.nmodules = nmod, .pedestal = p, .noise = s, .mask = k, .frames = frames};
    mg_error err = {0};
    mg_runped *r = mg_runped_new(&c, &err);
    CHECK(r != NULL);
    return r;
}

static void test_auto_onset(void)
{
    mg_runped *r = make(2, 0);
    for (int k = 0; k < 9; k++) {
        dark(r, 2, 30);
        if (k == 4) /* a cosmic ray: 30 pixels far above */
            for (int i = 0; i < 30; i++)
                mg_runped_module(r, 1)[1000 + i] = 12000;
        CHECK_EQ(mg_runped_offer(r, k != 6, 0), MG_RUNPED_MORE); /* frame 6 partial: neither tested nor taken */
    }
    /* the shutter opens: 2000 pixels with a photon (G1 words count as hit too) */
    dark(r, 2, 30);
    for (int i = 0; i < 2000; i++)
        mg_runped_module(r, 0)[i * 97] = i % 2 ? 0x4000 | 100 : 9000;
    CHECK_EQ(mg_runped_offer(r, 1, 0), MG_RUNPED_SIGNAL);
    CHECK_EQ(mg_runped_frames(r), 8);
    CHECK_EQ(mg_runped_onset(r), 9);
    float *p0 = malloc(P * sizeof(float));
    double shift = mg_runped_result(r, 0, p0);
    CHECK(fabs(shift - 40) < 1.5); /* drift 30 + the noise's mean 10 */
    int ok = 1;
    for (size_t i = 0; i < P; i++)
        ok &= p0[i] >= ped[i] + 30 && p0[i] <= ped[i] + 50;
    CHECK(ok);
    free(p0);
    mg_runped_free(r);
}

static void test_fixed_counts_signal(void)
{
    mg_runped *r = make(1, 5);
    for (int k = 0; k < 5; k++) {
        dark(r, 1, 0);
        if (k >= 3)
            for (int i = 0; i < 5000; i++)
                mg_runped_module(r, 0)[i * 31] = 15000;
        CHECK_EQ(mg_runped_offer(r, 1, 0), k == 4 ? MG_RUNPED_DONE : MG_RUNPED_MORE);
    }
    CHECK_EQ(mg_runped_frames(r), 5);
    CHECK_EQ(mg_runped_signal_frames(r), 2);
    CHECK_EQ(mg_runped_onset(r), 3);
    mg_runped_free(r);
}

static void test_masked_pixels_never_hit(void)
{
    for (size_t i = 0; i < 10000; i++)
        mask[i * 7] = 1u << 4;
    mg_runped *r = make(1, 0);
    dark(r, 1, 0);
    CHECK_EQ(mg_runped_offer(r, 1, 0), MG_RUNPED_MORE);
    dark(r, 1, 0);
    for (size_t i = 0; i < 10000; i++) /* noisy pixels, masked: a frame with them is still dark */
        mg_runped_module(r, 0)[i * 7] = 0xC000;
    CHECK_EQ(mg_runped_offer(r, 1, 0), MG_RUNPED_MORE);
    CHECK_EQ(mg_runped_frames(r), 2);
    mg_runped_free(r);
    memset(mask, 0, P * sizeof(uint32_t));
}

static void test_first_frame_signal(void)
{
    mg_runped *r = make(1, 0);
    dark(r, 1, 0);
    for (int i = 0; i < 3000; i++)
        mg_runped_module(r, 0)[i * 101] = 8000;
    CHECK_EQ(mg_runped_offer(r, 1, 0), MG_RUNPED_SIGNAL);
    CHECK_EQ(mg_runped_frames(r), 0);
    float *p0 = malloc(P * sizeof(float));
    CHECK(isnan(mg_runped_result(r, 0, p0)));
    CHECK(p0[123] == ped[123]); /* nothing taken: the calibration's pedestal */
    free(p0);
    mg_runped_free(r);
}

/* Two storage cells whose pedestals differ by 500 ADU: each frame is tested
 * against its own cell (cell 1's dark frames are no signal although they are
 * far above cell 0's pedestal) and averaged into it; a frame of a cell the
 * calibration lacks is skipped. */
static void test_storage_cells(void)
{
    float *ped2 = malloc(2 * 3 * P * sizeof(float)), *rms2 = malloc(2 * 3 * P * sizeof(float));
    for (size_t i = 0; i < 3 * P; i++) {
        ped2[i] = ped[i];
        ped2[3 * P + i] = ped[i] + 500;
        rms2[i] = rms2[3 * P + i] = 12;
    }
    const float *p[1] = {ped2}, *s[1] = {rms2};
    mg_runped_config c = {.nmodules = 1, .cells = 2, .pedestal = p, .noise = s, .frames = 0};
    mg_error err = {0};
    mg_runped *r = mg_runped_new(&c, &err);
    CHECK(r != NULL && mg_runped_cells(r) == 2);
    if (!r)
        return;
    for (int k = 0; k < 6; k++) {
        dark(r, 1, k % 2 ? 500 + 40 : 20); /* cell 1 drifted by 40, cell 0 by 20 */
        CHECK_EQ(mg_runped_offer(r, 1, (uint32_t)(k % 2) << 8), MG_RUNPED_MORE);
    }
    dark(r, 1, 0);
    CHECK_EQ(mg_runped_offer(r, 1, 5u << 8), MG_RUNPED_MORE); /* cell 5: not taken */
    CHECK_EQ(mg_runped_frames(r), 6);
    float *p0 = malloc(2 * P * sizeof(float));
    mg_runped_result(r, 0, p0);
    int ok = 1;
    for (size_t i = 0; i < P; i++) /* + the noise's mean 10, within its spread over 3 frames */
        ok &= fabsf(p0[i] - (ped[i] + 30)) <= 10.5f && fabsf(p0[P + i] - (ped[i] + 550)) <= 10.5f;
    CHECK(ok);
    free(p0), free(ped2), free(rms2);
    mg_runped_free(r);
}

int main(void)
{
    ped = malloc(3 * P * sizeof(float));
    rms = malloc(3 * P * sizeof(float));
    mask = calloc(P, sizeof(uint32_t));
    for (size_t i = 0; i < 3 * P; i++) {
        ped[i] = 1500 + (float)(i % 1000);
        rms[i] = 12;
    }
    RUN(test_auto_onset);
    RUN(test_fixed_counts_signal);
    RUN(test_masked_pixels_never_hit);
    RUN(test_first_frame_signal);
    RUN(test_storage_cells);
    free(ped), free(rms), free(mask);
    return CHECK_DONE();
}
