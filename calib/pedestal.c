/* pedestal.c - dark-frame accumulation (contract in morgul/pedestal.h).
 *
 * Integer sums are exact: an ADC value is below 2^14, so sum < 2^46 and
 * sum of squares < 2^60 for up to 2^32 frames.  The mean and variance are
 * computed at the end in double from the exact sums, with the variance as
 * (n * sumsq - sum^2) / n^2 in 128-bit integers, which cannot cancel. */
#include "morgul/pedestal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "morgul/bitshuffle.h"
#include "morgul/jungfrau.h"
#include "pedestal_kernels.h"

_Static_assert(MG_PEDESTAL_BATCH <= 16, "32-bit partial sums of squares overflow beyond 16 frames");

struct mg_pedestal_acc {
    size_t pixels;
    mg_pedestal_impl impl;
    uint32_t *count[3]; /* frames in which the pixel read gain g (in a gain-g frame) */
    uint64_t *sum[3];   /* of ADC */
    uint64_t *sumsq[3]; /* of ADC squared */
    uint64_t frames[3]; /* frames taken per gain */
    uint64_t zero_frames;
    uint16_t *batch;    /* MG_PEDESTAL_BATCH frames */
    int batched, batch_gain, open;
};

mg_pedestal_acc *mg_pedestal_acc_new(size_t pixels, mg_pedestal_impl impl, mg_error *err)
{
    if (pixels == 0 || pixels % 16) {
        mg_error_set(err, MG_EINVAL, "pedestal accumulator of %zu pixels: must be a positive multiple of 16", pixels);
        return NULL;
    }
    mg_pedestal_acc *a = calloc(1, sizeof *a);
    int ok = a != NULL;
    for (int g = 0; g < 3 && ok; g++) {
        a->count[g] = calloc(pixels, sizeof(uint32_t));
        a->sum[g] = calloc(pixels, sizeof(uint64_t));
        a->sumsq[g] = calloc(pixels, sizeof(uint64_t));
        ok = a->count[g] && a->sum[g] && a->sumsq[g];
    }
    if (ok)
        ok = (a->batch = malloc((size_t)MG_PEDESTAL_BATCH * pixels * sizeof(uint16_t))) != NULL;
    if (!ok) {
        mg_pedestal_acc_free(a);
        mg_error_set(err, MG_ENOMEM, "out of memory for pedestal sums of %zu pixels", pixels);
        return NULL;
    }
    a->pixels = pixels;
    a->impl = impl == MG_PED_AUTO ? (mg_cpu_has_avx2() ? MG_PED_AVX2 : MG_PED_SCALAR) : impl;
    a->batch_gain = -1;
    return a;
}

void mg_pedestal_acc_free(mg_pedestal_acc *a)
{
    if (!a)
        return;
    for (int g = 0; g < 3; g++) {
        free(a->count[g]);
        free(a->sum[g]);
        free(a->sumsq[g]);
    }
    free(a->batch);
    free(a);
}

void mg_ped_batch_scalar(const uint16_t *frames, int n, size_t pixels, unsigned want, uint16_t bad1, uint16_t bad2,
                         uint32_t *count, uint64_t *sum, uint64_t *sumsq)
{
    for (int f = 0; f < n; f++) {
        const uint16_t *raw = frames + (size_t)f * pixels;
        for (size_t p = 0; p < pixels; p++) {
            unsigned w = raw[p];
            if ((w >> 14) == want && w != bad1 && w != bad2) {
                uint64_t adc = w & 0x3FFF;
                count[p]++;
                sum[p] += adc;
                sumsq[p] += adc * adc;
            }
        }
    }
}

void mg_pedestal_flush(mg_pedestal_acc *a)
{
    if (!a->batched)
        return;
    static const unsigned bits[3] = {MG_GAIN_BITS_G0, MG_GAIN_BITS_G1, MG_GAIN_BITS_G2};
    /* the words that carry the gain's bits but are no reading in it */
    static const uint16_t bad1[3] = {0x4000, 0x4000, 0xC000}, bad2[3] = {0xC000, 0x4000, 0xFFFF};
    int g = a->batch_gain;
    (a->impl == MG_PED_AVX2 ? mg_ped_batch_avx2 : mg_ped_batch_scalar)(a->batch, a->batched, a->pixels, bits[g],
                                                                      bad1[g], bad2[g], a->count[g], a->sum[g],
                                                                      a->sumsq[g]);
    a->batched = 0;
}

uint16_t *mg_pedestal_next(mg_pedestal_acc *a, int gain)
{
    if (gain < 0 || gain > 2)
        return NULL;
    if (a->batched == MG_PEDESTAL_BATCH || (a->batched && gain != a->batch_gain))
        mg_pedestal_flush(a);
    a->batch_gain = gain;
    a->open = 1;
    return a->batch + (size_t)a->batched * a->pixels;
}

void mg_pedestal_commit(mg_pedestal_acc *a)
{
    if (!a->open)
        return;
    a->open = 0;
    const uint16_t *raw = a->batch + (size_t)a->batched * a->pixels;
    /* an all-zero frame comes after a detector restart: not dark data */
    size_t i = 0;
    while (i < a->pixels && raw[i] == 0)
        i++;
    if (i == a->pixels) {
        a->zero_frames++;
        return;
    }
    a->frames[a->batch_gain]++;
    a->batched++;
}

void mg_pedestal_add(mg_pedestal_acc *a, const uint16_t *raw, int gain)
{
    uint16_t *dst = mg_pedestal_next(a, gain);
    if (!dst)
        return;
    memcpy(dst, raw, a->pixels * sizeof(uint16_t));
    mg_pedestal_commit(a);
}

int mg_pedestal_merge(mg_pedestal_acc *dst, mg_pedestal_acc *src)
{
    if (dst->pixels != src->pixels)
        return MG_EINVAL;
    mg_pedestal_flush(dst);
    mg_pedestal_flush(src);
    for (int g = 0; g < 3; g++) {
        for (size_t p = 0; p < dst->pixels; p++) {
            dst->count[g][p] += src->count[g][p];
            dst->sum[g][p] += src->sum[g][p];
            dst->sumsq[g][p] += src->sumsq[g][p];
        }
        dst->frames[g] += src->frames[g];
    }
    dst->zero_frames += src->zero_frames;
    return 0;
}

uint64_t mg_pedestal_frames(const mg_pedestal_acc *a, int gain) { return gain >= 0 && gain < 3 ? a->frames[gain] : 0; }
uint64_t mg_pedestal_zero_frames(const mg_pedestal_acc *a) { return a->zero_frames; }

void mg_pedestal_sums(mg_pedestal_acc *a, int gain, const uint32_t **count, const uint64_t **sum,
                      const uint64_t **sumsq)
{
    mg_pedestal_flush(a);
    *count = a->count[gain];
    *sum = a->sum[gain];
    *sumsq = a->sumsq[gain];
}

void mg_pedestal_result(mg_pedestal_acc *a, float *mean, float *rms, uint32_t *frames_used, uint32_t *wrong_gain)
{
    mg_pedestal_flush(a);
    for (int g = 0; g < 3; g++)
        for (size_t p = 0; p < a->pixels; p++) {
            uint64_t n = a->count[g][p];
            size_t at = (size_t)g * a->pixels + p;
            if (frames_used)
                frames_used[at] = (uint32_t)n;
            if (wrong_gain)
                wrong_gain[at] = (uint32_t)(a->frames[g] - n);
            if (!n) {
                if (mean)
                    mean[at] = NAN;
                if (rms)
                    rms[at] = NAN;
                continue;
            }
            if (mean)
                mean[at] = (float)((double)a->sum[g][p] / (double)n);
            if (rms) {
                unsigned __int128 num = (unsigned __int128)n * a->sumsq[g][p] -
                                        (unsigned __int128)a->sum[g][p] * a->sum[g][p];
                rms[at] = (float)sqrt((double)num / ((double)n * (double)n));
            }
        }
}

int mg_pedestal_mode_gain(uint64_t k, int frames, int loops)
{
    if (frames < 1 || loops < 1)
        return 0;
    uint64_t F = (uint64_t)frames, FL = F * (uint64_t)loops;
    if (k < 2 * FL && (k + 1) % F == 0)
        return k < FL ? 1 : 2;
    return 0;
}

int mg_pedestal_gain_of_daq(uint32_t daq_info)
{
    return daq_info & MG_DAQ_FORCE_G2 ? 2 : daq_info & MG_DAQ_FORCE_G1 ? 1 : 0;
}
