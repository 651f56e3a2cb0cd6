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

#include <stdio.h>

#include "morgul/badpixel.h"
#include "morgul/detector.h"
#include "morgul/error.h"

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

#endif
