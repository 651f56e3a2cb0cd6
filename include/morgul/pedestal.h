/* morgul/pedestal.h - pedestals and noise from dark frames, accumulated as
 * the frames stream past (never all frames in memory).
 *
 * For every pixel and gain: the number of dark frames in which the pixel
 * read that gain, and exact integer sums of its ADC and of the ADC squared,
 * so mean and RMS are exact whatever the order and number of frames.  Each
 * frame is taken "in" one gain (the gain the dark run forces: G0 for a normal
 * dark run, G1 or G2 for forced switching); a pixel that reads another gain,
 * or one of the error words 0x4000, 0xFFFF, or the saturation word 0xC000,
 * is wrong-gain in that frame.  All-zero frames (after a detector restart)
 * are skipped and counted.
 *
 * Frames are taken in batches of up to MG_PEDESTAL_BATCH frames of one gain:
 * the caller writes each frame into the space mg_pedestal_next() gives and
 * calls mg_pedestal_commit(); a full batch, or a frame of another gain, adds
 * the batch to the sums.  The batch is added tile by tile with the partial
 * sums of a tile held in 32-bit vector registers across all its frames
 * (ADC^2 < 2^28, so up to 16 frames cannot overflow them), and the 64-bit
 * sums in memory are touched once per batch: that is what makes the
 * accumulation fast enough for live dark runs (docs/performance.md).  8
 * frames measured faster than 16 or 4: the batch (8 MiB for a module) stays
 * in the last-level cache.  The scalar kernel
 * gives identical sums and is chosen on CPUs without AVX2.
 *
 * One accumulator is one module (or any number of pixels, a multiple of 16)
 * and is used by one thread at a time.  Several threads accumulate one
 * module's frames each in its own accumulator; mg_pedestal_merge then adds
 * them up, exactly (the sums are integers, so the order of frames does not
 * matter).
 */
#ifndef MORGUL_PEDESTAL_H
#define MORGUL_PEDESTAL_H

#include <stddef.h>
#include <stdint.h>

#include "morgul/error.h"

#define MG_PEDESTAL_BATCH 8

typedef struct mg_pedestal_acc mg_pedestal_acc;

typedef enum mg_pedestal_impl { MG_PED_AUTO = 0, MG_PED_SCALAR, MG_PED_AVX2 } mg_pedestal_impl;

/* `pixels` must be a positive multiple of 16. */
mg_pedestal_acc *mg_pedestal_acc_new(size_t pixels, mg_pedestal_impl impl, mg_error *err);
void mg_pedestal_acc_free(mg_pedestal_acc *a);

/* Space for the next frame (pixels words), taken in gain `gain` (0, 1, 2).
 * The caller fills it, then commits.  NULL for a gain out of range. */
uint16_t *mg_pedestal_next(mg_pedestal_acc *a, int gain);
void mg_pedestal_commit(mg_pedestal_acc *a);

/* next + copy + commit. */
void mg_pedestal_add(mg_pedestal_acc *a, const uint16_t *raw, int gain);

/* Adds the frames waiting in the batch; the results below do it themselves. */
void mg_pedestal_flush(mg_pedestal_acc *a);

/* Frames taken in each gain (all-zero frames not included), and all-zero
 * frames skipped. */
uint64_t mg_pedestal_frames(const mg_pedestal_acc *a, int gain);
uint64_t mg_pedestal_zero_frames(const mg_pedestal_acc *a);

/* Per gain (3 planes of `pixels` each, any may be NULL): the mean and RMS
 * (population) of the ADC over the frames in which the pixel read that gain
 * (NaN where it never did), the number of those frames, and the frames of
 * that gain in which it read something else.  Flushes first. */
void mg_pedestal_result(mg_pedestal_acc *a, float *mean, float *rms, uint32_t *frames_used, uint32_t *wrong_gain);

/* Adds src's frames (sums, counts, frame and all-zero counts) to dst, as
 * if every frame given to src had been given to dst; both are flushed, src
 * is left as it was.  The two must be of the same size: 0, or MG_EINVAL. */
int mg_pedestal_merge(mg_pedestal_acc *dst, mg_pedestal_acc *src);

/* The raw sums of gain g (flushed): for tests and for merging partial runs. */
void mg_pedestal_sums(mg_pedestal_acc *a, int gain, const uint32_t **count, const uint64_t **sum,
                      const uint64_t **sumsq);

/* The gain of frame k (0 = first) of a run in the firmware's pedestal mode
 * with F frames and L loops: every F-th frame of the first F*L is forced to
 * G1, of the next F*L to G2; all others are G0.  A frame's DAQ info, when it
 * has the forcing bits, says the same (mg_pedestal_gain_of_daq). */
int mg_pedestal_mode_gain(uint64_t k, int frames, int loops);
/* 1 or 2 if the DAQ info has the forced-G1/G2 bit, else 0. */
int mg_pedestal_gain_of_daq(uint32_t daq_info);

#endif
