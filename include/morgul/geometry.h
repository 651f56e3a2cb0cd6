/* morgul/geometry.h - modules into a detector image.
 *
 * A module is 2 x 4 chips of 256 x 256 pixels; the pixels on chip borders
 * are twice as big (corners four times).  In the standard expanded module of
 * 514 x 1030 pixels, raw pixel (r, c) goes to (r + 2*floor(r/256),
 * c + 2*floor(c/256)), and raw rows 255, 256 and columns 255, 256, 511, 512,
 * 767, 768 each become two pixels sharing the value (corners four):
 *
 *   integer outputs: the value v is split into k parts (2 or 4) that add up
 *     to v exactly: each gets v/k (truncated), and the first |v - k*(v/k)|
 *     parts, in image order (row by row), get sign(v) more;
 *   float32: each part is v/k;
 *   saturated and invalid values are copied to every part.
 *
 * With mask_big the big pixels are not split but set invalid (and masked).
 *
 * Modules are placed from their row and column (row 0 at the bottom of the
 * detector; image rows count downwards from the top) with gap_rows empty
 * image rows between module rows and gap_cols columns between module
 * columns.  Within a module, raw row 0 is at the bottom too (the first
 * interface sends the module's "bottom" half), so module rows are flipped
 * unless flip_rows is 0.  raw_layout keeps the raw layout instead: modules
 * stacked in module order, 512 x 1024 each, no gaps, no flip, no splitting.
 *
 * The pixel mask of the image (NXmx pixel_mask convention) has bit 0 on gap
 * pixels, bit 31 on the parts of split (or masked) big pixels, and each
 * module's own mask bits moved with its pixels.
 */
#ifndef MORGUL_GEOMETRY_H
#define MORGUL_GEOMETRY_H

#include <stdint.h>

#include "morgul/convert.h"
#include "morgul/detector.h"
#include "morgul/error.h"

#define MG_MASK_GAP (1u << 0)
#define MG_MASK_VIRTUAL (1u << 31)

typedef struct mg_geometry_config {
    int raw_layout;  /* modules stacked raw, nothing else */
    int mask_big;    /* big pixels invalid and masked instead of split */
    int gap_rows;    /* default 36 (when negative: default) */
    int gap_cols;    /* default 8 */
    int flip_rows;   /* raw row 0 at the module's bottom (default 1) */
} mg_geometry_config;

/* The defaults: expanded, split, gaps 36 and 8, rows flipped. */
void mg_geometry_defaults(mg_geometry_config *cfg);

typedef struct mg_geometry {
    mg_geometry_config cfg;
    int width, height;     /* the image */
    int mod_w, mod_h;      /* one module in the image */
    int nmodules;
    int x0[MG_MAX_MODULES], y0[MG_MAX_MODULES]; /* top-left corner of each module */
} mg_geometry;

int mg_geometry_init(mg_geometry *g, const mg_detector *d, const mg_geometry_config *cfg, mg_error *err);

/* Where raw pixel (r, c) of module m lands: the image position of its first
 * part (the top-left one of a big pixel's parts). */
void mg_geometry_where(const mg_geometry *g, int module, int r, int c, int *y, int *x);

/* Places module m's converted values (512 x 1024 of `type`) into `image`
 * (height x width of `type`).  Gap pixels are not touched: fill them once
 * with the invalid value (mg_geometry_fill_gaps). */
void mg_geometry_place(const mg_geometry *g, int module, const void *values, void *image, mg_out_type type);

/* The same for module rows first_row .. first_row + nrows - 1 only, from
 * `values` holding just those rows (nrows x 1024): a packet's 4 rows can be
 * placed while they are in cache. */
void mg_geometry_place_rows(const mg_geometry *g, int module, int first_row, int nrows, const void *values,
                            void *image, mg_out_type type);

/* Converts module m's frame with tables t and places it, a packet at a
 * time: each packet's 4 rows are converted into `conv` (room for
 * MG_PACKET_DATA_BYTES / 2 values of `type`) and placed while they are in
 * cache.  blocks[q] holds packet q's MG_PACKET_DATA_BYTES / 2 raw words.  A
 * packet whose bit in `mask` is clear (packet q: byte q / 8, bit q % 8) did
 * not come: its rows are invalid and its words are not read (converting
 * the missing-packet words would give the same, more slowly).  t NULL (no
 * tables for the frame's storage cell) makes every pixel invalid.  The
 * inline and the offline correction both convert through here. */
void mg_geometry_convert_module(const mg_geometry *g, int module, const mg_conv_tables *t,
                                const uint16_t *const *blocks, const uint8_t mask[16], mg_out_type type, void *conv,
                                void *image);

/* Sets every gap pixel of the image to the invalid value of `type`. */
void mg_geometry_fill_gaps(const mg_geometry *g, void *image, mg_out_type type);

/* The image's pixel mask from each module's mask (512 x 1024; NULL entries
 * or a NULL array for none). */
void mg_geometry_mask(const mg_geometry *g, const uint32_t *const *module_masks, uint32_t *image_mask);

#endif
