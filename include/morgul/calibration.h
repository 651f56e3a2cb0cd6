/* morgul/calibration.h - a detector's calibration constants: one HDF5 file
 * per detector, one group per module (format in docs/file-formats.md).
 *
 *   /<module>/pedestal       float32 ([cells,] 3, 512, 1024)  ADU per gain, NaN = unknown
 *   /<module>/pedestal_rms   float32 ([cells,] 3, 512, 1024)  ADU, NaN = unknown
 *   /<module>/gain           float64 (3, 512, 1024)  ADU/keV (G1, G2 negative, as PSI files)
 *   /<module>/mask           uint32  ([cells,] 512, 1024)     bad-pixel bits (morgul/badpixel.h)
 *   /<module>/frames_used    uint32  ([cells,] 3, 512, 1024)  dark frames averaged per pixel and gain
 *   /<module>/wrong_gain     uint32  ([cells,] 3, 512, 1024)  dark frames in which the pixel read another gain
 *   module attributes: name, serial, row, column, storage_cells; from a dark run also
 *     dark_frames (3) [and cell_dark_frames (cells, 3)], exposure_time (s), time_taken (Unix s, the start of validity),
 *     time_taken_iso, source_files
 *   file attributes: detector, morgul_version; exposure_time and time_taken when known
 *
 * Storage cells: a module calibrated in burst mode holds its pedestals,
 * noise, counts and mask per cell, with a leading dimension indexed by the
 * cell number of the frames' DAQ info (bits 8-11); cell c covers frames
 * stored in cell c.  Without that dimension (storage_cells 1) the constants
 * serve every frame, whatever cell it names.  The gain map is per pixel and
 * shared by all cells.
 *
 * A part that was never given (a gain map not imported yet, say) is absent,
 * and so NULL after mg_calib_read.  Importers fill the parts from the
 * formats in use elsewhere: PSI gain-map .bin files, raw float32 pedestal
 * planes, the original morgul pedestal files and PSI pedestal HDF5 files.
 */
#ifndef MORGUL_CALIBRATION_H
#define MORGUL_CALIBRATION_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "morgul/detector.h"
#include "morgul/error.h"
#include "morgul/jungfrau.h"
#include "morgul/topology.h"

struct mg_module_tables;

typedef struct mg_module_calib {
    char name[MG_NAME_MAX];
    int row, column;
    int cells;           /* storage cells: 1 (or 0) none, else 2..16 - a leading dimension below */
    float *pedestal;     /* cells x 3 x 512 x 1024, or NULL */
    float *pedestal_rms; /* cells x 3 x 512 x 1024, or NULL */
    double *gain;        /* 3 x 512 x 1024 (every cell's), or NULL */
    uint32_t *mask;      /* cells x 512 x 1024, or NULL */
    uint32_t *frames_used; /* cells x 3 x 512 x 1024, or NULL */
    uint32_t *wrong_gain;  /* cells x 3 x 512 x 1024, or NULL */
    char serial[32];       /* "" = the digits of the name */
    uint64_t dark_frames[3]; /* frames of each dark run (0: not taken here), all cells */
    uint64_t cell_frames[MG_CELLS_MAX][3]; /* with storage cells: those of each cell */
    double exposure_s;     /* of the dark runs, NaN = unknown */
    double taken;          /* Unix time of the dark run, 0 = unknown */
    char sources[1024];    /* the dark runs' files, comma-separated */
} mg_module_calib;

typedef struct mg_calibration {
    char detector[MG_NAME_MAX];
    double exposure_s;   /* NaN = unknown; written as the modules' common value if NaN */
    double taken;        /* 0 = unknown; written as the modules' latest if 0 */
    int nmodules;
    mg_module_calib modules[MG_MAX_MODULES];
} mg_calibration;

/* A module's storage cells (1 when it has none). */
static inline int mg_calib_cells(const mg_module_calib *m) { return m->cells > 1 ? m->cells : 1; }

/* What a calibration file is, without reading its arrays: the detector,
 * when the dark runs were taken and at which exposure (file attributes),
 * and its modules, each of which must hold a pedestal ([cells,] 3, 512,
 * 1024). */
typedef struct mg_calib_header {
    char detector[MG_NAME_MAX];
    double taken;      /* Unix s, 0 = unknown */
    double exposure_s; /* NaN = unknown */
    int nmodules;
    char modules[MG_MAX_MODULES][MG_NAME_MAX];
    int cells[MG_MAX_MODULES]; /* storage cells of each, 1 = none */
} mg_calib_header;

int mg_calib_peek(const char *path, mg_calib_header *h, mg_error *err);

/* Reads a calibration file.  Shapes and types are checked; a file that is
 * not one names what is wrong. */
int mg_calib_read(const char *path, mg_calibration *c, mg_error *err);

/* Writes (replaces) the calibration file at path. */
int mg_calib_write(const char *path, const mg_calibration *c, mg_error *err);

void mg_calib_free(mg_calibration *c);

/* An empty calibration (no modules, times unknown). */
void mg_calib_init(mg_calibration *c);

/* Reads the file at path if there is one, else an empty calibration for
 * `detector` (NULL: "jungfrau"). */
int mg_calib_load_or_new(const char *path, mg_calibration *c, const char *detector, mg_error *err);

/* The module's entry, or NULL if c has none of that name. */
mg_module_calib *mg_calib_find(const mg_calibration *c, const char *name);

/* The module's entry, created (with no parts) if absent; NULL if full. */
mg_module_calib *mg_calib_module(mg_calibration *c, const char *name, int row, int column);

/* Checks that c fits the detector: every module of det present with all of
 * pedestal (3 gains), gain (3 gains); names the first thing missing. */
int mg_calib_check(const mg_calibration *c, const mg_detector *det, mg_error *err);

/* What a module's constants hold that no real module shows.  Gains: not
 * finite, zero, of the wrong sign, or outside mg_gain_range (ADU/keV; a gain
 * map in another unit or with its planes in another order falls far
 * outside); pedestals: 0, 16383 or above (PSI's marks of bad pixels: they
 * read hundreds of photons), or infinite (NaN is "unknown": that gain is
 * invalid for the pixel, not an error). */
typedef struct mg_calib_issues {
    uint64_t gain[3];     /* pixels whose G0, G1, G2 gain is unusable */
    uint64_t pedestal[3]; /* pixels whose G0, G1, G2 pedestal is (in any storage cell) */
    uint64_t unusable;    /* pixels with either */
} mg_calib_issues;

/* The range of each gain real modules show, ADU/keV: G0 10..200 (typical
 * +41), G1 -10..-0.1 (typical -1.44), G2 -1..-0.01 (typical -0.115). */
extern const double mg_gain_range[3][2];
/* A module with more than this fraction of its pixels unusable is refused. */
#define MG_CALIB_MAX_UNUSABLE 0.05

/* Checks every constant of module m that is there (gain map, pedestals):
 * each pixel with an unusable value is masked with its reason (bits 17-19
 * for gains, bit 15 for pedestals, in every storage cell's mask; the mask
 * is made if m has none), and counted into *out (may be NULL).  Returns 0,
 * or MG_EDATA naming the module and the counts when more than
 * `max_unusable` (a fraction; MG_CALIB_MAX_UNUSABLE) of its pixels are
 * unusable, or MG_ENOMEM. */
int mg_calib_validate(mg_module_calib *m, double max_unusable, mg_calib_issues *out, mg_error *err);

/* A line per kind of issue for module `name` on `out` (nothing if none). */
void mg_calib_issues_print(const char *name, const mg_calib_issues *x, FILE *out);

/* mg_calib_validate for every module of det in c, each one's issues printed
 * on `log` (may be NULL) prefixed "calibration: "; the first refusal is
 * returned. */
int mg_calib_validate_detector(mg_calibration *c, const mg_detector *det, FILE *log, mg_error *err);

/* The conversion tables of one module of a checked calibration (pedestal
 * and gain present) at photon energy `energy_kev` (0 or 1: keV output), on
 * NUMA node `node`: one set per storage cell (morgul/convert.h,
 * mg_module_tables).  The module's mask, if any, marks pixels invalid.
 * On failure *t holds nothing. */
int mg_calib_tables(const mg_module_calib *m, double energy_kev, mg_topology *topo, int node,
                    struct mg_module_tables *t, mg_error *err);

/* The module's mask for a whole run's pixel_mask into out (P words): with
 * storage cells the bits of every cell or'ed, so a pixel bad in any cell
 * is flagged; zeros when the module has no mask. */
void mg_calib_mask_all_cells(const mg_module_calib *m, uint32_t *out);

/* The detector's pixel_mask laid out by geometry g (width x height words
 * into out): each module's calibration mask of all cells
 * (mg_calib_mask_all_cells) plus the geometry's bits (mg_geometry_mask).
 * Every module of det must be in c.  0, or MG_ENOMEM. */
struct mg_geometry;
int mg_calib_geometry_mask(const mg_calibration *c, const mg_detector *det, const struct mg_geometry *g, uint32_t *out,
                           mg_error *err);

/* Gives module m `cells` storage cells (1..16): its per-cell parts are
 * freed so that they are made anew in that shape; the gain map stays, and
 * a mask without cells is copied to every cell.  Nothing happens when it
 * has that many already.  0, or MG_ENOMEM. */
int mg_calib_set_cells(mg_module_calib *m, int cells);

/* Merges src into dst (calib/merge.c): src's modules are added or
 * updated (a module's storage cells must agree unless dst has no
 * pedestals for it yet); per module, src's gain map replaces dst's, and each gain whose
 * dark run src holds (or, for imported pedestals, each known plane)
 * replaces that gain's pedestal, noise and counts; masks are joined, and
 * where dark-run statistics are present the dark-run bits are recomputed
 * from the merged statistics (default criteria, user bits kept).  Files
 * of different exposure times are refused.  One line per module goes to
 * `report` (may be NULL). */
int mg_calib_merge(mg_calibration *dst, const mg_calibration *src, const char *src_name, FILE *report, mg_error *err);

/* Writes c's modules in det's order (calib/export.c) as whole-detector
 * arrays (3, modules, 512, 1024): pixel_gain and pixel_offset (float32,
 * ADU/keV and ADU; the offset is zero), pedestals and pixel_rms (float32),
 * pixel_status (uint32, the mask repeated per gain), module_name.  With
 * storage cells, pedestals, pixel_rms and pixel_status have a leading cell
 * dimension (cells, 3, modules, 512, 1024); all modules must have as many.
 * Every module needs pedestals and a gain map. */
int mg_calib_export(const mg_calibration *c, const mg_detector *det, const char *path, int overwrite, mg_error *err);

/* A Unix time as ISO 8601 UTC ("2026-11-21T06:58:04Z"). */
void mg_calib_time_iso(double t, char *buf, size_t cap);

/* PSI gain map .bin: 3 or 6 little-endian float64 planes of 512 x 1024 (G0,
 * G1, G2[, HG0, HG1, HG2]); the first 3 go to gain (3 x 512 x 1024).  Any
 * other size is refused. */
int mg_gainmap_read_bin(const char *path, double *gain, mg_error *err);

/* Finds the gain map of module `name` (e.g. M420) under dir: a file named
 * like gainMaps_M420*.bin in dir or in a subdirectory M420* of it.  Exactly
 * one must match; the error lists the candidates otherwise. */
int mg_gainmap_find(const char *dir, const char *name, char *path, size_t cap, mg_error *err);

/* A raw float32 plane of 512 x 1024 (e.g. a PSI pedestal of one gain). */
int mg_plane_read_f32(const char *path, float *plane, mg_error *err);

/* Pedestals from an HDF5 file in one of the known layouts, for module
 * `name`:
 *   PSI:            /gains (3, 512, 1024) pedestals, /gainsRMS, /pixel_mask
 *   morgul (orig.): /p0 /p1 /p2 (512, 1024), or /<module>/pedestal_0..2
 *   morgul:         a calibration file (this format)
 * Fills m->pedestal (and pedestal_rms, mask when the file has them).  A
 * module calibrated per storage cell is refused (these layouts have no
 * cells). */
int mg_pedestal_import_h5(const char *path, const char *name, mg_module_calib *m, mg_error *err);

#endif
