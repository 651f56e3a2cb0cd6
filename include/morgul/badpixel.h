/* morgul/badpixel.h - bad-pixel masks from dark-run statistics.
 *
 * Bits follow the NXmx pixel_mask convention (facts file §6); bits 9-16 are
 * morgul's own.  A pixel is masked for every reason that applies:
 *
 *   bit 1  dead: every valid G0 dark reading was ADC 0, or it gave no valid
 *          reading in any dark run that was taken
 *   bit 4  noisy: G0 RMS above an absolute limit (default 100 ADU), or above
 *          the module's median + k * MAD of the G0 RMS (default k = 10)
 *   bit 8  user mask (from a file)
 *   bit 9, 10, 11   too few valid frames in the G0, G1, G2 dark run (below
 *          50 % of the run's frames by default); only for runs taken
 *   bit 12 wrong gain in more than 2 G0 dark frames (default)
 *   bit 13, 14      wrong gain in any G1, G2 dark frame (default)
 *   bit 15 pedestal outside the plausible ADC range (default 1 .. 16382) in
 *          a gain whose run was taken
 *   bit 16 stuck: zero RMS over 2 or more valid frames of a gain, at a
 *          nonzero ADC
 *   bit 17, 18, 19  the G0, G1, G2 gain is unusable: not finite, zero, of
 *          the wrong sign, or outside the range real modules show
 *          (mg_calib_validate; bit 15 there for pedestals 0 or >= 16383)
 *
 * Bit 0 (gap) and bit 31 (virtual pixel) come from the geometry
 * (morgul/geometry.h), never from here.
 */
#ifndef MORGUL_BADPIXEL_H
#define MORGUL_BADPIXEL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MG_MASK_DEAD (1u << 1)
#define MG_MASK_NOISY (1u << 4)
#define MG_MASK_USER (1u << 8)
#define MG_MASK_FEW_FRAMES(g) (1u << (9 + (g)))
#define MG_MASK_WRONG_GAIN(g) (1u << (12 + (g)))
#define MG_MASK_PEDESTAL_RANGE (1u << 15)
#define MG_MASK_STUCK (1u << 16)
#define MG_MASK_GAIN(g) (1u << (17 + (g)))

typedef struct mg_mask_criteria {
    double min_valid_fraction; /* of a run's frames; default 0.5 */
    uint32_t max_wrong_g0;     /* default 2 */
    uint32_t max_wrong_g12;    /* default 0 */
    double noisy_rms;          /* ADU, G0; default 100 */
    double noisy_k;            /* median + k * MAD of the module's G0 RMS; default 10 */
    double pedestal_min, pedestal_max; /* ADU; default 1, 16382 */
} mg_mask_criteria;

void mg_mask_criteria_defaults(mg_mask_criteria *c);

/* The dark-run statistics of one module: planes of 3 x pixels (gain-major). */
typedef struct mg_dark_stats {
    size_t pixels;
    const float *mean, *rms;
    const uint32_t *frames_used, *wrong_gain;
    uint64_t frames[3]; /* frames taken per gain; 0 = that run was not taken */
} mg_dark_stats;

typedef struct mg_mask_summary {
    uint64_t masked;          /* pixels with any bit */
    uint64_t by_bit[32];      /* pixels with each bit */
    double median_pedestal[3], median_rms[3]; /* NaN for runs not taken */
    double noisy_threshold;   /* the G0 RMS limit used: min(absolute, median + k * MAD) */
} mg_mask_summary;

/* Computes the mask (pixels words) from the statistics and an optional user
 * mask (nonzero = masked; may be NULL), and its summary (may be NULL).
 * Returns 0, or -1 when out of memory. */
int mg_mask_compute(const mg_mask_criteria *c, const mg_dark_stats *s, const uint8_t *user, uint32_t *mask,
                    mg_mask_summary *sum);

/* The summary as a table row block, for humans. */
void mg_mask_summary_print(const char *module, const mg_mask_summary *s, FILE *out);

/* The summaries of a module's storage cells (s[0..cells-1]): reasons
 * summed over the cells, then a line per cell. */
void mg_mask_summary_print_cells(const char *module, const mg_mask_summary *s, int cells, FILE *out);

/* The median of n floats, NaNs left out (NaN if none); works on a copy. */
double mg_median_f32(const float *v, size_t n);

#endif
