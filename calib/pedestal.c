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

mg_pedestal_acc *mg_pedestal_acc_new(size_t pixels, mg_error *err)
{
    mg_pedestal_acc *a = calloc(1, sizeof *a);
    int ok = a != NULL;
    for (int g = 0; g < 3 && ok; g++) {
        a->count[g] = calloc(pixels, sizeof(uint32_t));
        a->sum[g] = calloc(pixels, sizeof(uint64_t));
        a->sumsq[g] = calloc(pixels, sizeof(uint64_t));
        a->wrong_gain[g] = calloc(pixels, sizeof(uint32_t));
        ok = a->count[g] && a->sum[g] && a->sumsq[g] && a->wrong_gain[g];
    }
    if (!ok) {
        mg_pedestal_acc_free(a);
        mg_error_set(err, MG_ENOMEM, "out of memory for pedestal sums of %zu pixels", pixels);
        return NULL;
    }
    a->pixels = pixels;
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
        free(a->wrong_gain[g]);
    }
    free(a);
}

void mg_pedestal_add(mg_pedestal_acc *a, const uint16_t *raw, int gain)
{
    if (gain < 0 || gain > 2)
        return;
    /* an all-zero frame comes after a detector restart: not dark data */
    size_t i = 0;
    while (i < a->pixels && raw[i] == 0)
        i++;
    if (i == a->pixels) {
        a->zero_frames++;
        return;
    }
    static const unsigned bits[3] = {0, 1, 3};
    const unsigned want = bits[gain];
    uint32_t *cnt = a->count[gain], *wrong = a->wrong_gain[gain];
    uint64_t *sum = a->sum[gain], *sq = a->sumsq[gain];
    for (size_t p = 0; p < a->pixels; p++) {
        unsigned w = raw[p];
        if ((w >> 14) == want && w != 0xFFFF && w != 0x4000 && w != 0xC000) {
            uint64_t adc = w & 0x3FFF;
            cnt[p]++;
            sum[p] += adc;
            sq[p] += adc * adc;
        } else
            wrong[p]++;
    }
    a->frames[gain]++;
}

void mg_pedestal_result(const mg_pedestal_acc *a, float *mean, float *rms, uint32_t *frames_used)
{
    for (int g = 0; g < 3; g++)
        for (size_t p = 0; p < a->pixels; p++) {
            uint64_t n = a->count[g][p];
            size_t at = (size_t)g * a->pixels + p;
            if (frames_used)
                frames_used[at] = (uint32_t)n;
            if (!n) {
                mean[at] = NAN;
                if (rms)
                    rms[at] = NAN;
                continue;
            }
            mean[at] = (float)((double)a->sum[g][p] / (double)n);
            if (rms) {
                unsigned __int128 num = (unsigned __int128)n * a->sumsq[g][p] -
                                        (unsigned __int128)a->sum[g][p] * a->sum[g][p];
                rms[at] = (float)sqrt((double)num / ((double)n * (double)n));
            }
        }
}
