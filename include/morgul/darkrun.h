/* morgul/darkrun.h - the result of dark runs into a detector's calibration
 * file: pedestals, noise, frames used, wrong-gain counts and the bad-pixel
 * mask of every module.
 *
 * Gains whose run was taken this time replace that gain's planes; the other
 * gains' planes (and the gain maps) already in the file stay, so the three
 * dark runs may come from three invocations (e.g. three `morgul receive
 * --pedestal` runs).  The mask is then computed from all three gains'
 * statistics as they stand in the file.
 *
 * Storage cells (burst mode): with info.cells > 1 every module has one
 * accumulator per cell, acc[m * cells + c], and a frame goes to the cell
 * its DAQ info names; frames of cells beyond the count are left out and
 * counted.  The file then holds per-cell constants (morgul/calibration.h).
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
    int cells;                  /* storage cells, 0 or 1: none (cell bits ignored) */
    /* what the runs found (added to by mg_dark_run and mg_dark_rawread) */
    uint64_t frames_other_cell; /* frames of a cell >= cells, left out */
    uint32_t cells_seen;        /* bit c: a frame named cell c */
} mg_dark_info;

/* Storage cells of info: 1 when none. */
static inline int mg_dark_cells(const mg_dark_info *d) { return d->cells > 1 ? d->cells : 1; }

void mg_dark_info_defaults(mg_dark_info *d);

/* Reads (or creates) the calibration file at `cal`, puts the accumulators'
 * results (acc[m] for det's module m) into it, computes the masks, writes
 * it back and prints each module's summary to `report` (may be NULL). */
int mg_dark_save(const char *cal, const mg_detector *det, struct mg_pedestal_acc *const *acc,
                 const mg_dark_info *info, FILE *report, mg_error *err);

/* Module x's mask (every storage cell's) from its dark-run statistics
 * (pedestal, pedestal_rms, frames_used, wrong_gain and mask present;
 * dark_frames, or cell_frames with cells, say which gains were taken) and
 * `user` (P bytes, nonzero = bad, the same for every cell; may be NULL).
 * sum gets one summary per cell (may be NULL).  0, or nonzero when out of
 * memory. */
struct mg_module_calib;
int mg_dark_mask(struct mg_module_calib *x, const mg_mask_criteria *c, const uint8_t *user, mg_mask_summary *sum);

/* Warnings about storage cells after the runs, to out: frames of cells
 * beyond info's count left out; cells of the count that had no frame; or,
 * without --storage-cells, frames naming several cells (a burst-mode run
 * averaged as one).  Nothing when all is as expected. */
void mg_dark_cells_report(const mg_dark_info *info, FILE *out);

/* Where a complete frame of a dark run goes, the same on every path: the
 * storage cell of its first module (0 without cells), or -1 when it is
 * left out because its modules name different cells or a cell >= cells.
 * *seen gets a bit for every cell the modules name. */
int mg_dark_frame_cell(const mg_module_frame *rec, int nmod, int cells, uint32_t *seen);

/* The gain a module's dark frame was taken in: its DAQ info's forcing
 * bits, else its position `index` in a firmware pedestal-mode run
 * (mode_frames > 0), else the run's `gain`. */
int mg_dark_frame_gain(uint32_t daq_info, int64_t index, int gain, int mode_frames, int mode_loops);

/* n pedestal accumulators (modules x cells; all NULL on failure) and their
 * end. */
int mg_dark_accs_new(struct mg_pedestal_acc **acc, int n, mg_error *err);
void mg_dark_accs_free(struct mg_pedestal_acc **acc, int n);

/* Runs cfg, live (`live`) or as a replay of cfg->pcap, with its frames added
 * to acc (per module and cell, as info->cells says) instead of written: each frame in `gain`, or by the firmware
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
