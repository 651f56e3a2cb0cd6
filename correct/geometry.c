/* geometry.c - modules into a detector image (contract in
 * morgul/geometry.h). */
#include "morgul/geometry.h"

#include <math.h>
#include <string.h>

#include "morgul/jungfrau.h"

#define EXP_H 514
#define EXP_W 1030

void mg_geometry_defaults(mg_geometry_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->gap_rows = 36;
    cfg->gap_cols = 8;
    cfg->flip_rows = 1;
}

int mg_geometry_init(mg_geometry *g, const mg_detector *d, const mg_geometry_config *cfg, mg_error *err)
{
    memset(g, 0, sizeof *g);
    g->cfg = *cfg;
    if (g->cfg.gap_rows < 0)
        g->cfg.gap_rows = 36;
    if (g->cfg.gap_cols < 0)
        g->cfg.gap_cols = 8;
    if (g->cfg.gap_rows > 10000 || g->cfg.gap_cols > 10000)
        return mg_error_set(err, MG_EINVAL, "gaps of %d rows and %d columns are not plausible", g->cfg.gap_rows,
                            g->cfg.gap_cols);
    g->nmodules = d->nmodules;
    if (cfg->raw_layout) {
        g->mod_w = MG_MODULE_COLS;
        g->mod_h = MG_MODULE_ROWS;
        g->width = MG_MODULE_COLS;
        g->height = MG_MODULE_ROWS * d->nmodules;
        for (int m = 0; m < d->nmodules; m++) {
            g->x0[m] = 0;
            g->y0[m] = m * MG_MODULE_ROWS;
        }
        return 0;
    }
    g->mod_w = EXP_W;
    g->mod_h = EXP_H;
    int nrows = 0, ncols = 0;
    for (int m = 0; m < d->nmodules; m++) {
        if (d->modules[m].row + 1 > nrows)
            nrows = d->modules[m].row + 1;
        if (d->modules[m].column + 1 > ncols)
            ncols = d->modules[m].column + 1;
    }
    g->width = ncols * EXP_W + (ncols - 1) * g->cfg.gap_cols;
    g->height = nrows * EXP_H + (nrows - 1) * g->cfg.gap_rows;
    for (int m = 0; m < d->nmodules; m++) {
        g->x0[m] = d->modules[m].column * (EXP_W + g->cfg.gap_cols);
        g->y0[m] = (nrows - 1 - d->modules[m].row) * (EXP_H + g->cfg.gap_rows); /* row 0 at the bottom */
    }
    return 0;
}

/* The expanded rows (or columns) of raw row (column) i of a 256-wide chip
 * grid with n raw lines: 1 or 2 of them, in increasing order. */
static int expand(int i, int n, int *out)
{
    int e = i + 2 * (i / 256);
    if (i % 256 == 255 && i < n - 1) {
        out[0] = e;
        out[1] = e + 1;
        return 2;
    }
    if (i % 256 == 0 && i > 0) {
        out[0] = e - 1;
        out[1] = e;
        return 2;
    }
    out[0] = e;
    return 1;
}

/* Image rows of raw row r of module m (1 or 2, top first). */
static int image_rows(const mg_geometry *g, int m, int r, int *y)
{
    if (g->cfg.raw_layout) {
        y[0] = g->y0[m] + r;
        return 1;
    }
    int e[2], n = expand(r, MG_MODULE_ROWS, e);
    for (int i = 0; i < n; i++)
        y[i] = g->y0[m] + (g->cfg.flip_rows ? EXP_H - 1 - e[i] : e[i]);
    if (n == 2 && y[1] < y[0]) {
        int t = y[0];
        y[0] = y[1];
        y[1] = t;
    }
    return n;
}

static int image_cols(const mg_geometry *g, int m, int c, int *x)
{
    if (g->cfg.raw_layout) {
        x[0] = g->x0[m] + c;
        return 1;
    }
    int n = expand(c, MG_MODULE_COLS, x);
    for (int i = 0; i < n; i++)
        x[i] += g->x0[m];
    return n;
}

void mg_geometry_where(const mg_geometry *g, int module, int r, int c, int *y, int *x)
{
    int ys[2], xs[2];
    image_rows(g, module, r, ys);
    image_cols(g, module, c, xs);
    *y = ys[0];
    *x = xs[0];
}

/* Part i of k of an integer value v that is not a special value. */
static inline long long part_of(long long v, int k, int i)
{
    long long base = v / k, rem = v - base * k;
    long long extra = (rem < 0 ? -rem : rem) > i ? (rem < 0 ? -1 : 1) : 0;
    return base + extra;
}

/* One raw pixel split over its parts (image positions ys x xs). */
#define SPLIT_PIXEL(T, SPECIAL, PART, INVALID)                                                                  \
    do {                                                                                                        \
        int k = nr * nc;                                                                                        \
        for (int a = 0; a < nr; a++)                                                                            \
            for (int b = 0; b < nc; b++) {                                                                      \
                int i = a * nc + b;                                                                             \
                (void)i;                                                                                        \
                img[(size_t)ys[a] * W + (size_t)xs[b]] = g->cfg.mask_big ? (INVALID) : (SPECIAL(v)) ? v : (T)(PART); \
            }                                                                                                   \
    } while (0)

/* Rows of one image row are copied in four runs (the chips' inner columns)
 * and six split columns; the two big rows go pixel by pixel. */
#define DEFINE_PLACE(NAME, T, SPECIAL, PART, INVALID)                                                          \
    static void NAME(const mg_geometry *g, int m, int r0, int nrows, const T *in, T *img)                      \
    {                                                                                                          \
        const size_t W = (size_t)g->width;                                                                     \
        static const int run_src[4] = {0, 257, 513, 769}, run_len[4] = {255, 254, 254, 255};                   \
        static const int run_dst[4] = {0, 259, 517, 775};                                                      \
        static const int big[6] = {255, 256, 511, 512, 767, 768};                                              \
        for (int r = r0; r < r0 + nrows; r++) {                                                                \
            int ys[2], nr = image_rows(g, m, r, ys);                                                           \
            const T *row = in + (size_t)(r - r0) * MG_MODULE_COLS;                                             \
            if (g->cfg.raw_layout) {                                                                           \
                memcpy(img + (size_t)ys[0] * W + (size_t)g->x0[m], row, MG_MODULE_COLS * sizeof(T));           \
                continue;                                                                                      \
            }                                                                                                  \
            if (nr == 1) {                                                                                     \
                T *dst = img + (size_t)ys[0] * W + (size_t)g->x0[m];                                           \
                for (int k = 0; k < 4; k++)                                                                    \
                    memcpy(dst + run_dst[k], row + run_src[k], (size_t)run_len[k] * sizeof(T));                \
                for (int j = 0; j < 6; j++) {                                                                  \
                    int xs[2], nc = image_cols(g, m, big[j], xs);                                              \
                    T v = row[big[j]];                                                                         \
                    SPLIT_PIXEL(T, SPECIAL, PART, INVALID);                                                    \
                }                                                                                              \
                continue;                                                                                      \
            }                                                                                                  \
            for (int c = 0; c < MG_MODULE_COLS; c++) {                                                         \
                int xs[2], nc = image_cols(g, m, c, xs);                                                       \
                T v = row[c];                                                                                  \
                SPLIT_PIXEL(T, SPECIAL, PART, INVALID);                                                        \
            }                                                                                                  \
        }                                                                                                      \
    }

#define SPECIAL16(v) ((v) == MG_INT16_SATURATED || (v) == MG_INT16_INVALID)
#define SPECIAL32(v) ((v) == MG_INT32_SATURATED || (v) == MG_INT32_INVALID)
#define SPECIALF(v) (isnan(v) || isinf(v))
DEFINE_PLACE(place16, int16_t, SPECIAL16, part_of(v, k, i), MG_INT16_INVALID)
DEFINE_PLACE(place32, int32_t, SPECIAL32, part_of(v, k, i), MG_INT32_INVALID)
DEFINE_PLACE(placef, float, SPECIALF, v / (float)k, NAN)

void mg_geometry_place_rows(const mg_geometry *g, int module, int first_row, int nrows, const void *values,
                            void *image, mg_out_type type)
{
    switch (type) {
    case MG_OUT_INT16: place16(g, module, first_row, nrows, values, image); break;
    case MG_OUT_INT32: place32(g, module, first_row, nrows, values, image); break;
    case MG_OUT_FLOAT32: placef(g, module, first_row, nrows, values, image); break;
    }
}

void mg_geometry_place(const mg_geometry *g, int module, const void *values, void *image, mg_out_type type)
{
    mg_geometry_place_rows(g, module, 0, MG_MODULE_ROWS, values, image, type);
}

void mg_geometry_convert_module(const mg_geometry *g, int module, const mg_conv_tables *t,
                                const uint16_t *const *blocks, const uint8_t mask[16], mg_out_type type, void *conv,
                                void *image)
{
    const size_t block = MG_PACKET_DATA_BYTES / 2;
    for (int q = 0; q < MG_PACKETS_PER_MODULE; q++) {
        if (t && mask[q >> 3] >> (q & 7) & 1)
            mg_convert(t, (size_t)q * block, block, blocks[q], conv, type, MG_CONV_AUTO);
        else
            mg_convert_invalid(block, conv, type);
        mg_geometry_place_rows(g, module, q * MG_ROWS_PER_PACKET, MG_ROWS_PER_PACKET, conv, image, type);
    }
}

/* True if image pixel (y, x) belongs to a module (not a gap). */
static int in_module(const mg_geometry *g, int y, int x)
{
    for (int m = 0; m < g->nmodules; m++)
        if (y >= g->y0[m] && y < g->y0[m] + g->mod_h && x >= g->x0[m] && x < g->x0[m] + g->mod_w)
            return 1;
    return 0;
}

void mg_geometry_fill_gaps(const mg_geometry *g, void *image, mg_out_type type)
{
    for (int y = 0; y < g->height; y++)
        for (int x = 0; x < g->width; x++)
            if (!in_module(g, y, x)) {
                size_t i = (size_t)y * (size_t)g->width + (size_t)x;
                if (type == MG_OUT_INT16)
                    ((int16_t *)image)[i] = MG_INT16_INVALID;
                else if (type == MG_OUT_INT32)
                    ((int32_t *)image)[i] = MG_INT32_INVALID;
                else
                    ((float *)image)[i] = NAN;
            }
}

void mg_geometry_mask(const mg_geometry *g, const uint32_t *const *module_masks, uint32_t *image_mask)
{
    const size_t W = (size_t)g->width;
    for (size_t i = 0; i < W * (size_t)g->height; i++)
        image_mask[i] = MG_MASK_GAP;
    for (int m = 0; m < g->nmodules; m++) {
        const uint32_t *mm = module_masks ? module_masks[m] : NULL;
        for (int r = 0; r < MG_MODULE_ROWS; r++) {
            int ys[2], nr = image_rows(g, m, r, ys);
            for (int c = 0; c < MG_MODULE_COLS; c++) {
                int xs[2], nc = image_cols(g, m, c, xs);
                uint32_t v = mm ? mm[(size_t)r * MG_MODULE_COLS + (size_t)c] : 0;
                if (nr * nc > 1)
                    v |= MG_MASK_VIRTUAL;
                for (int a = 0; a < nr; a++)
                    for (int b = 0; b < nc; b++)
                        image_mask[(size_t)ys[a] * W + (size_t)xs[b]] = v;
            }
        }
    }
}
