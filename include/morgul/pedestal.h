/* morgul/pedestal.h - pedestals and noise from dark frames, accumulated as
 * the frames stream past (never all frames in memory).
 *
 * For every pixel and gain: the number of dark frames in which the pixel
 * read that gain, and exact integer sums of its ADC and of the ADC squared,
 * so mean and RMS are exact whatever the order and number of frames.  Each
 * frame is taken "in" one gain (the gain the dark run forces: G0 for a normal
 * dark run, G1 or G2 for forced switching); a pixel that reads another gain
 * is counted as wrong-gain for that run's gain instead.  All-zero frames
 * (after a detector restart) are skipped and counted.
 */
#ifndef MORGUL_PEDESTAL_H
#define MORGUL_PEDESTAL_H

#include <stddef.h>
#include <stdint.h>

#include "morgul/error.h"

typedef struct mg_pedestal_acc {
    size_t pixels;
    uint32_t *count[3];      /* frames in which the pixel read gain g (in a gain-g frame) */
    uint64_t *sum[3];        /* of ADC */
    uint64_t *sumsq[3];      /* of ADC squared */
    uint32_t *wrong_gain[3]; /* in a gain-g frame, read another gain */
    uint64_t frames[3];      /* frames taken per gain */
    uint64_t zero_frames;    /* all-zero frames skipped */
} mg_pedestal_acc;

mg_pedestal_acc *mg_pedestal_acc_new(size_t pixels, mg_error *err);
void mg_pedestal_acc_free(mg_pedestal_acc *a);

/* Adds one dark frame of raw words, taken in gain `gain` (0, 1 or 2). */
void mg_pedestal_add(mg_pedestal_acc *a, const uint16_t *raw, int gain);

/* Means and RMS per gain (3 x pixels each, NaN where a pixel has no frame
 * in that gain), and the frames used (3 x pixels; may be NULL). */
void mg_pedestal_result(const mg_pedestal_acc *a, float *mean, float *rms, uint32_t *frames_used);

#endif
