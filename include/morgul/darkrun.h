/* morgul/darkrun.h - the result of dark runs into a detector's calibration
 * file: pedestals, noise, frames used, wrong-gain counts and the bad-pixel
 * mask of every module.
 *
 * Gains whose run was taken this time replace that gain's planes; the other
 * gains' planes (and the gain maps) already in the file stay, so the three
 * dark runs may come from three invocations (e.g. three `morgul receive
 * --pedestal` runs).  The mask is then computed from all three gains'
 * statistics as they stand in the file.
 */
#ifndef MORGUL_DARKRUN_H
#define MORGUL_DARKRUN_H

#include <stdint.h>
#include <stdio.h>

#include "morgul/badpixel.h"
#include "morgul/detector.h"
#include "morgul/error.h"
#include "morgul/run.h"

struct mg_pedestal_acc;

typedef struct mg_dark_info {
    mg_mask_criteria criteria;  /* fill with mg_mask_criteria_defaults first */
    const char *user_mask;      /* HDF5 file: /<module>/mask or /mask, (512, 1024), nonzero = bad; or NULL */
    double exposure_s;          /* NaN: unknown */
    double taken;               /* Unix time of the dark run's start (start of validity) */
    const char *sources;        /* the runs' files or "live", comma-separated */
} mg_dark_info;

void mg_dark_info_defaults(mg_dark_info *d);

/* Reads (or creates) the calibration file at `cal`, puts the accumulators'
 * results (acc[m] for det's module m) into it, computes the masks, writes
 * it back and prints each module's summary to `report` (may be NULL). */
int mg_dark_save(const char *cal, const mg_detector *det, struct mg_pedestal_acc *const *acc,
                 const mg_dark_info *info, FILE *report, mg_error *err);

/* Module x's mask from its dark-run statistics (pedestal, pedestal_rms,
 * frames_used, wrong_gain and mask present; dark_frames says which gains
 * were taken) and `user` (P bytes, nonzero = bad; may be NULL).  0, or
 * nonzero when out of memory. */
struct mg_module_calib;
int mg_dark_mask(struct mg_module_calib *x, const mg_mask_criteria *c, const uint8_t *user, mg_mask_summary *sum);

/* One pedestal accumulator per module (all NULL on failure) and their end. */
int mg_dark_accs_new(struct mg_pedestal_acc **acc, int nmodules, mg_error *err);
void mg_dark_accs_free(struct mg_pedestal_acc **acc, int nmodules);

/* Runs cfg, live (`live`) or as a replay of cfg->pcap, with its frames added
 * to acc instead of written: each frame in `gain`, or by the firmware
 * pedestal mode (mode_frames > 0) or its DAQ bits.  Fills *sum; a run that
 * gave no complete frame is an error.  When info's exposure is unknown it
 * is taken from the frames' header. */
int mg_dark_run(mg_run_config *cfg, int live, struct mg_pedestal_acc *const *acc, int gain, int mode_frames,
                int mode_loops, mg_dark_info *info, mg_run_summary *sum, mg_error *err);

/* The same from raw files already written (morgul/rawread.h): every
 * complete frame of r into acc (acc[m] for r's module m), in `gain`, or by
 * the pedestal mode, or by its DAQ bits, as mg_dark_run.  *frames gets the
 * frames taken, *partial those left out for missing packets; a run without
 * a complete frame is an error.  Unknown exposure and start time in info
 * are taken from the files. */
struct mg_rawread;
int mg_dark_rawread(struct mg_rawread *r, struct mg_pedestal_acc *const *acc, int gain, int mode_frames,
                    int mode_loops, mg_dark_info *info, uint64_t *frames, uint64_t *partial, mg_error *err);

#endif
