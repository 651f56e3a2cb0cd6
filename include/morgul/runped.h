/* morgul/runped.h - the run-time pedestal: the G0 pedestal of a data run
 * from its own first frames, taken before the shutter opens.
 *
 * Pedestals drift with temperature between dark runs; the first frames of
 * a data run are dark too, so they give the pedestal as it is now.  Frames
 * are offered one at a time, in order, before any of them is converted:
 *
 *   fixed (frames = N): the first N complete frames are the dark frames;
 *     frames among them that show signal are counted (a warning: the
 *     shutter opened early and the pedestal is biased).
 *   auto (frames = 0): every complete frame is tested for signal and
 *     taken while it shows none; the first frame with signal is the onset
 *     and ends the search (or max_frames frames without any).
 *
 * Signal test: a pixel is hit when it is not masked and reads G1/G2 or an
 * ADC above its calibration G0 pedestal by more than max(6 x its G0 noise,
 * 60 ADU) - beyond any noise or drift of a dark pixel, below one photon at
 * any energy JUNGFRAU is used at (> 2 keV x ~40 ADU/keV).  A frame shows
 * signal when its hit pixels exceed 50 per module plus ten times the mean
 * of the dark frames before it (a cosmic ray hits a few pixels; the
 * diffuse background of an exposed frame thousands).
 *
 * The result is each module's G0 pedestal: the mean over the dark frames
 * in which the pixel read G0, and the calibration's value where it never
 * did.  Partial frames are neither tested nor taken.
 *
 * Storage cells: with a calibration per cell (cells > 1) every frame is
 * tested against, and averaged into, the cell its DAQ info names (all
 * modules of a frame are stored in the same cell, as one trigger stores
 * them); a cell the frames before the signal never named keeps the
 * calibration's pedestal.  A frame of a cell beyond the count is skipped.
 */
#ifndef MORGUL_RUNPED_H
#define MORGUL_RUNPED_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "morgul/error.h"

typedef struct mg_runped mg_runped;

typedef struct mg_runped_config {
    int nmodules;
    int cells;                        /* storage cells of the calibration, 0 or 1: none */
    const float *const *pedestal;     /* per module: the calibration's ([cells,] 3, 512, 1024); G0 used */
    const float *const *noise;        /* per module: ([cells,] 3, 512, 1024) RMS, or NULL entries (15 ADU assumed) */
    const uint32_t *const *mask;      /* per module: ([cells,] 512, 1024), or NULL entries */
    uint64_t frames;                  /* N, or 0 for auto */
    uint64_t max_frames;              /* auto: search at most this many frames (default 200) */
} mg_runped_config;

enum { MG_RUNPED_MORE = 0, MG_RUNPED_DONE = 1, MG_RUNPED_SIGNAL = 2 };

mg_runped *mg_runped_new(const mg_runped_config *cfg, mg_error *err);
void mg_runped_free(mg_runped *r);

/* Space for module m's words (512 x 1024) of the frame about to be offered. */
uint16_t *mg_runped_module(mg_runped *r, int m);

/* Offers the frame written into the module spaces (complete: every packet
 * of every module arrived; daq_info: its first module's, for the storage
 * cell).  Returns MG_RUNPED_MORE (taken or skipped;
 * offer the next), MG_RUNPED_DONE (taken, and no more are wanted) or
 * MG_RUNPED_SIGNAL (auto: this frame shows signal and was not taken; the
 * pedestal is complete without it). */
int mg_runped_offer(mg_runped *r, int complete, uint32_t daq_info);

/* Results, once done (or at any time: what was taken so far). */
uint64_t mg_runped_frames(const mg_runped *r);       /* dark frames taken */
int64_t mg_runped_onset(const mg_runped *r);         /* offer index (0-based) of the first frame with signal, -1 */
uint64_t mg_runped_signal_frames(const mg_runped *r); /* fixed N: taken frames that showed signal */
int mg_runped_cells(const mg_runped *r);             /* storage cells, 1 = none */
/* Module m's run G0 pedestal into p0 ([cells,] 512 x 1024); returns the
 * median change from the calibration's over all cells, ADU (NaN if no
 * frame was taken). */
double mg_runped_result(mg_runped *r, int m, float *p0);

/* With a calibration: a run-time pedestal for det's modules (each must be
 * in cb with pedestals), and, once done, the result put into cb's G0
 * pedestal planes (so tables built afterwards use it), each module's
 * plane(s) also copied into p0[m] (malloc'd, [cells,] 512 x 1024, for the
 * run's record), and a line per
 * module printed to report (may be NULL).  mg_runped_apply refuses a run
 * with no dark frame before the signal. */
struct mg_calibration;
struct mg_detector;
mg_runped *mg_runped_for(const struct mg_calibration *cb, const struct mg_detector *det, uint64_t frames,
                         uint64_t max_frames, mg_error *err);
int mg_runped_apply(mg_runped *r, struct mg_calibration *cb, const struct mg_detector *det, float **p0, FILE *report,
                    mg_error *err);

#endif
