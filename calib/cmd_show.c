/* cmd_show.c - `morgul calib show`: a calibration file's constants for
 * people: per-module statistics, modules that stand out from the others
 * flagged, and with --png pictures (maps of pedestal, noise and mask per
 * module and gain on one colour scale per gain for the whole detector, the
 * detector laid out by module row and column, and histograms). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "morgul/badpixel.h"
#include "morgul/calibration.h"
#include "morgul/cli.h"
#include "morgul/jungfrau.h"
#include "morgul/png.h"

#define P ((size_t)MG_MODULE_PIXELS)
#define W MG_MODULE_COLS
#define H MG_MODULE_ROWS

static const uint8_t WHITE[3] = {255, 255, 255}, BLACK[3] = {0, 0, 0}, MASKED[3] = {255, 0, 255},
                     GREY[3] = {90, 90, 90};

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Quantiles q[k] of the finite values of v (every `step`-th), NaN if none. */
static void quantiles(const float *v, size_t n, size_t step, const double *q, double *out, int nq)
{
    float *s = malloc((n / step + 1) * sizeof(float));
    size_t k = 0;
    for (size_t i = 0; s && i < n; i += step)
        if (isfinite(v[i]))
            s[k++] = v[i];
    for (int j = 0; j < nq; j++)
        out[j] = NAN;
    if (s && k) {
        qsort(s, k, sizeof(float), cmp_f);
        for (int j = 0; j < nq; j++)
            out[j] = s[(size_t)(q[j] * (double)(k - 1) + 0.5)];
    }
    free(s);
}

typedef struct {
    double ped[3][3], rms[3][3]; /* 1 %, median, 99 % */
    double used[3], gain[3];     /* medians */
    uint64_t masked, by_bit[32];
} module_stats;

static void stats_of(const mg_module_calib *x, module_stats *s)
{
    static const double q3[3] = {0.01, 0.5, 0.99}, q1[1] = {0.5};
    memset(s, 0, sizeof *s);
    float *tmp = malloc(P * sizeof(float));
    for (int g = 0; g < 3; g++) {
        for (int k = 0; k < 3; k++)
            s->ped[g][k] = s->rms[g][k] = NAN;
        s->used[g] = s->gain[g] = NAN;
        if (x->pedestal)
            quantiles(x->pedestal + g * P, P, 3, q3, s->ped[g], 3);
        if (x->pedestal_rms)
            quantiles(x->pedestal_rms + g * P, P, 3, q3, s->rms[g], 3);
        if (tmp && x->frames_used) {
            for (size_t i = 0; i < P; i++)
                tmp[i] = (float)x->frames_used[g * P + i];
            quantiles(tmp, P, 3, q1, &s->used[g], 1);
        }
        if (tmp && x->gain) {
            for (size_t i = 0; i < P; i++)
                tmp[i] = (float)x->gain[g * P + i];
            quantiles(tmp, P, 3, q1, &s->gain[g], 1);
        }
    }
    free(tmp);
    for (size_t i = 0; x->mask && i < P; i++)
        if (x->mask[i]) {
            s->masked++;
            for (int b = 0; b < 32; b++)
                s->by_bit[b] += (x->mask[i] >> b) & 1;
        }
}

static void print_module(const mg_module_calib *x, const module_stats *s, const char *flag)
{
    char iso[64] = "unknown";
    if (x->taken > 0)
        mg_calib_time_iso(x->taken, iso, sizeof iso);
    printf("module %s  row %d column %d  serial %s  taken %s  exposure %g s  dark frames %llu/%llu/%llu%s\n", x->name,
           x->row, x->column, x->serial[0] ? x->serial : "-", iso, x->exposure_s,
           (unsigned long long)x->dark_frames[0], (unsigned long long)x->dark_frames[1],
           (unsigned long long)x->dark_frames[2], flag);
    printf("       pedestal ADU: median [1%%, 99%%]    noise ADU: median [1%%, 99%%]   frames used   gain ADU/keV\n");
    for (int g = 0; g < 3; g++)
        printf("  G%d  %9.1f [%8.1f, %8.1f]   %7.2f [%6.2f, %7.2f]   %11.0f   %12.3f\n", g, s->ped[g][1], s->ped[g][0],
               s->ped[g][2], s->rms[g][1], s->rms[g][0], s->rms[g][2], s->used[g], s->gain[g]);
    if (!x->mask) {
        printf("  mask: none\n");
        return;
    }
    printf("  masked %llu (%.3f %%): dead %llu, noisy %llu, stuck %llu, user %llu, pedestal range %llu, few frames "
           "G0/G1/G2 %llu/%llu/%llu, wrong gain G0/G1/G2 %llu/%llu/%llu\n",
           (unsigned long long)s->masked, 100.0 * (double)s->masked / (double)P, (unsigned long long)s->by_bit[1],
           (unsigned long long)s->by_bit[4], (unsigned long long)s->by_bit[16], (unsigned long long)s->by_bit[8],
           (unsigned long long)s->by_bit[15], (unsigned long long)s->by_bit[9], (unsigned long long)s->by_bit[10],
           (unsigned long long)s->by_bit[11], (unsigned long long)s->by_bit[12], (unsigned long long)s->by_bit[13],
           (unsigned long long)s->by_bit[14]);
}

/* Modules, or with storage cells each (module, cell): what is shown. */
#define MAX_ENTRIES (MG_MAX_MODULES * MG_CELLS_MAX)

static double median_d(double *v, int n)
{
    double s[MAX_ENTRIES];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (v[i] == v[i])
            s[k++] = v[i];
    if (!k)
        return NAN;
    for (int i = 1; i < k; i++) /* tiny: insertion sort */
        for (int j = i; j > 0 && s[j] < s[j - 1]; j--) {
            double t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
        }
    return k % 2 ? s[k / 2] : 0.5 * (s[k / 2 - 1] + s[k / 2]);
}

/* ---- pictures ---- */

typedef struct {
    uint8_t *rgb;
    int w, h;
} canvas;

static int canvas_new(canvas *c, int w, int h, const uint8_t *bg)
{
    c->w = w, c->h = h;
    c->rgb = malloc((size_t)w * (size_t)h * 3);
    for (size_t i = 0; c->rgb && i < (size_t)w * (size_t)h; i++)
        memcpy(c->rgb + i * 3, bg, 3);
    return c->rgb ? 0 : -1;
}

static void put(canvas *c, int x, int y, const uint8_t *col)
{
    if (x >= 0 && x < c->w && y >= 0 && y < c->h)
        memcpy(c->rgb + ((size_t)y * (size_t)c->w + (size_t)x) * 3, col, 3);
}

static void fill(canvas *c, int x0, int y0, int x1, int y1, const uint8_t *col)
{
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            put(c, x, y, col);
}

/* One module's plane at (ox, oy), downscaled by `ds`, raw row 0 at the
 * bottom (as the module sits in the detector image). */
static void draw_map(canvas *c, int ox, int oy, int ds, const float *v, const uint32_t *mask, double lo, double hi)
{
    for (int y = 0; y < H / ds; y++)
        for (int x = 0; x < W / ds; x++) {
            double sum = 0;
            int n = 0, bad = 0;
            for (int dy = 0; dy < ds; dy++)
                for (int dx = 0; dx < ds; dx++) {
                    size_t i = (size_t)(y * ds + dy) * W + (size_t)(x * ds + dx);
                    if (mask && mask[i])
                        bad++;
                    else if (isfinite(v[i]))
                        sum += v[i], n++;
                }
            uint8_t col[3];
            if (!n)
                memcpy(col, bad ? MASKED : GREY, 3);
            else
                mg_png_colour((sum / n - lo) / (hi - lo), col);
            put(c, ox + x, oy + (H / ds - 1 - y), col);
        }
}

/* The colour bar with its ends labelled. */
static void draw_bar(canvas *c, int y, double lo, double hi, const char *title)
{
    for (int x = 10; x < c->w - 10; x++) {
        uint8_t col[3];
        mg_png_colour((double)(x - 10) / (c->w - 21), col);
        fill(c, x, y, x + 1, y + 12, col);
    }
    char t[64];
    snprintf(t, sizeof t, "%.4g", lo);
    mg_png_text(c->rgb, c->w, c->h, 10, y + 16, t, 2, BLACK);
    snprintf(t, sizeof t, "%.4g", hi);
    mg_png_text(c->rgb, c->w, c->h, c->w - 10 - (int)strlen(t) * 12, y + 16, t, 2, BLACK);
    mg_png_text(c->rgb, c->w, c->h, c->w / 2 - (int)strlen(title) * 6, y + 16, title, 2, BLACK);
}

static uint8_t mask_colour(uint32_t m, uint8_t *col)
{
    static const struct {
        uint32_t bits;
        uint8_t rgb[3];
    } k[] = {
        {MG_MASK_DEAD, {230, 30, 30}},
        {MG_MASK_STUCK, {0, 220, 230}},
        {MG_MASK_NOISY, {255, 150, 0}},
        {MG_MASK_WRONG_GAIN(0) | MG_MASK_WRONG_GAIN(1) | MG_MASK_WRONG_GAIN(2), {220, 0, 220}},
        {MG_MASK_FEW_FRAMES(0) | MG_MASK_FEW_FRAMES(1) | MG_MASK_FEW_FRAMES(2), {60, 90, 255}},
        {MG_MASK_PEDESTAL_RANGE, {255, 255, 0}},
        {MG_MASK_USER, {255, 255, 255}},
    };
    for (size_t i = 0; i < sizeof k / sizeof *k; i++)
        if (m & k[i].bits) {
            memcpy(col, k[i].rgb, 3);
            return 1;
        }
    if (m) {
        memcpy(col, (const uint8_t[3]){160, 160, 160}, 3);
        return 1;
    }
    memcpy(col, BLACK, 3);
    return 0;
}

static void draw_mask(canvas *c, int ox, int oy, int ds, const uint32_t *mask)
{
    for (int y = 0; y < H / ds; y++)
        for (int x = 0; x < W / ds; x++) {
            uint32_t any = 0; /* a bad pixel stays visible when the picture is downscaled */
            for (int dy = 0; dy < ds; dy++)
                for (int dx = 0; dx < ds; dx++)
                    any |= mask ? mask[(size_t)(y * ds + dy) * W + (size_t)(x * ds + dx)] : 0;
            uint8_t col[3];
            mask_colour(any, col);
            put(c, ox + x, oy + (H / ds - 1 - y), col);
        }
}

static void mask_legend(canvas *c, int y)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } L[] = {{MG_MASK_DEAD, "dead"}, {MG_MASK_STUCK, "stuck"}, {MG_MASK_NOISY, "noisy"},
             {MG_MASK_WRONG_GAIN(0), "wrong gain"}, {MG_MASK_FEW_FRAMES(0), "few frames"},
             {MG_MASK_PEDESTAL_RANGE, "range"}, {MG_MASK_USER, "user"}};
    const int k = c->w >= 900 ? 2 : 1; /* the whole legend fits a single module's width */
    int x = 10;
    for (size_t i = 0; i < sizeof L / sizeof *L; i++) {
        uint8_t col[3];
        mask_colour(L[i].bit, col);
        fill(c, x, y, x + 7 * k, y + 7 * k, col);
        x += 7 * k + 4;
        x += mg_png_text(c->rgb, c->w, c->h, x, y, L[i].name, k, WHITE) + 6 * k;
    }
}

static int save(canvas *c, const char *dir, const char *name, int *count, mg_error *err)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = mg_png_write_rgb(path, c->w, c->h, c->rgb, err);
    free(c->rgb);
    c->rgb = NULL;
    if (!rc)
        (*count)++;
    return rc;
}

/* A histogram of v (finite values) over [lo, hi], log counts. */
static int histogram(const char *dir, const char *name, const float *v, double lo, double hi, const char *title,
                     double median, int *count, mg_error *err)
{
    enum { BINS = 150, PW = 640, PH = 330, X0 = 40, Y0 = 40, HH = 220 };
    uint64_t bin[BINS] = {0}, under = 0, over = 0;
    for (size_t i = 0; i < P; i++) {
        if (!isfinite(v[i]))
            continue;
        double t = (v[i] - lo) / (hi - lo);
        if (t < 0)
            under++;
        else if (t >= 1)
            over++;
        else
            bin[(int)(t * BINS)]++;
    }
    uint64_t top = 1;
    for (int b = 0; b < BINS; b++)
        top = bin[b] > top ? bin[b] : top;
    canvas c;
    if (canvas_new(&c, PW, PH, WHITE))
        return mg_error_set(err, MG_ENOMEM, "out of memory for a picture");
    const uint8_t bar[3] = {40, 80, 160}, axis[3] = {0, 0, 0}, red[3] = {200, 0, 0};
    for (int b = 0; b < BINS; b++) {
        int hgt = bin[b] ? (int)(HH * log10((double)bin[b] + 1) / log10((double)top + 1)) : 0;
        fill(&c, X0 + b * 4, Y0 + HH - hgt, X0 + b * 4 + 3, Y0 + HH, bar);
    }
    fill(&c, X0 - 2, Y0 + HH, X0 + BINS * 4, Y0 + HH + 2, axis);
    fill(&c, X0 - 2, Y0, X0, Y0 + HH + 2, axis);
    if (median == median && median > lo && median < hi) {
        int mx = X0 + (int)((median - lo) / (hi - lo) * BINS * 4);
        fill(&c, mx, Y0, mx + 1, Y0 + HH, red);
    }
    char t[96];
    mg_png_text(c.rgb, PW, PH, X0, 10, title, 2, BLACK);
    snprintf(t, sizeof t, "%.4g", lo);
    mg_png_text(c.rgb, PW, PH, X0, Y0 + HH + 8, t, 2, BLACK);
    snprintf(t, sizeof t, "%.4g", hi);
    mg_png_text(c.rgb, PW, PH, X0 + BINS * 4 - (int)strlen(t) * 12, Y0 + HH + 8, t, 2, BLACK);
    snprintf(t, sizeof t, "median %.4g  below %llu  above %llu  log counts", median, (unsigned long long)under,
             (unsigned long long)over);
    mg_png_text(c.rgb, PW, PH, X0, Y0 + HH + 34, t, 2, red);
    return save(&c, dir, name, count, err);
}

static int pictures(const mg_module_calib *e, const int *cell, int n, const module_stats *st, const char *dir,
                    int *count, mg_error *err)
{
    if (mkdir(dir, 0755) && access(dir, W_OK))
        return mg_error_set(err, MG_EIO, "cannot create or write the picture directory %s", dir);
    int rc = 0;
    /* one colour scale per gain for every module, so a module that differs stands out */
    double plo[3], phi[3], rlo[3], rhi[3];
    for (int g = 0; g < 3; g++) {
        double a[MAX_ENTRIES], b[MAX_ENTRIES], c[MAX_ENTRIES], d[MAX_ENTRIES];
        for (int m = 0; m < n; m++)
            a[m] = st[m].ped[g][0], b[m] = st[m].ped[g][2], c[m] = st[m].rms[g][0], d[m] = st[m].rms[g][2];
        plo[g] = median_d(a, n), phi[g] = median_d(b, n), rlo[g] = median_d(c, n), rhi[g] = median_d(d, n);
        if (!(phi[g] > plo[g]))
            phi[g] = plo[g] + 1;
        if (!(rhi[g] > rlo[g]))
            rhi[g] = rlo[g] + 1;
    }
    const char *gn[3] = {"G0", "G1", "G2"};
    for (int m = 0; m < n && !rc; m++) {
        const mg_module_calib *x = &e[m];
        char name[MG_NAME_MAX + 48], title[MG_NAME_MAX + 48];
        for (int g = 0; g < 3 && !rc; g++)
            for (int kind = 0; kind < 2 && !rc; kind++) {
                const float *v = kind == 0 ? x->pedestal : x->pedestal_rms;
                if (!v)
                    continue;
                canvas c;
                if (canvas_new(&c, W, H + 44, WHITE))
                    return mg_error_set(err, MG_ENOMEM, "out of memory for a picture");
                double lo = kind == 0 ? plo[g] : rlo[g], hi = kind == 0 ? phi[g] : rhi[g];
                draw_map(&c, 0, 0, 1, v + g * P, x->mask, lo, hi);
                snprintf(title, sizeof title, "%s %s %s ADU", x->name, kind == 0 ? "pedestal" : "noise", gn[g]);
                draw_bar(&c, H + 4, lo, hi, title);
                snprintf(name, sizeof name, "%s_%s_%s.png", x->name, kind == 0 ? "pedestal" : "noise", gn[g]);
                rc = save(&c, dir, name, count, err);
                if (!rc) {
                    snprintf(name, sizeof name, "%s_%s_hist_%s.png", x->name, kind == 0 ? "pedestal" : "noise", gn[g]);
                    double l = kind == 0 ? plo[g] - 0.2 * (phi[g] - plo[g]) : 0;
                    double h = kind == 0 ? phi[g] + 0.2 * (phi[g] - plo[g]) : rhi[g] * 2;
                    rc = histogram(dir, name, v + g * P, l, h, title, kind == 0 ? st[m].ped[g][1] : st[m].rms[g][1],
                                   count, err);
                }
            }
        if (!rc && x->mask) {
            canvas c;
            if (canvas_new(&c, W, H + 24, BLACK))
                return mg_error_set(err, MG_ENOMEM, "out of memory for a picture");
            draw_mask(&c, 0, 0, 1, x->mask);
            mask_legend(&c, H + 6);
            snprintf(name, sizeof name, "%s_mask.png", x->name);
            rc = save(&c, dir, name, count, err);
        }
    }
    /* the detector: modules placed by row and column, half size, named (storage cell 0) */
    int rows = 0, cols = 0;
    for (int m = 0; m < n; m++) {
        rows = e[m].row + 1 > rows ? e[m].row + 1 : rows;
        cols = e[m].column + 1 > cols ? e[m].column + 1 : cols;
    }
    const int ds = 2, mw = W / ds, mh = H / ds, gap = 12;
    for (int kind = 0; kind < 3 && !rc; kind++) {
        canvas c;
        if (canvas_new(&c, cols * (mw + gap) + gap, rows * (mh + gap) + gap + 44, kind == 2 ? BLACK : WHITE))
            return mg_error_set(err, MG_ENOMEM, "out of memory for a picture");
        for (int m = 0; m < n; m++) {
            const mg_module_calib *x = &e[m];
            if (cell[m] > 0)
                continue;
            int ox = gap + x->column * (mw + gap), oy = gap + (rows - 1 - x->row) * (mh + gap);
            if (kind == 2)
                draw_mask(&c, ox, oy, ds, x->mask);
            else if (kind == 0 ? x->pedestal != NULL : x->pedestal_rms != NULL)
                draw_map(&c, ox, oy, ds, kind == 0 ? x->pedestal : x->pedestal_rms, x->mask,
                         kind == 0 ? plo[0] : rlo[0], kind == 0 ? phi[0] : rhi[0]);
            mg_png_text(c.rgb, c.w, c.h, ox + 6, oy + 6, x->name, 3, kind == 2 ? WHITE : BLACK);
        }
        if (kind == 2)
            mask_legend(&c, c.h - 30);
        else
            draw_bar(&c, c.h - 40, kind == 0 ? plo[0] : rlo[0], kind == 0 ? phi[0] : rhi[0],
                     kind == 0 ? "pedestal G0 ADU" : "noise G0 ADU");
        rc = save(&c, dir, kind == 0 ? "detector_pedestal_G0.png" : kind == 1 ? "detector_noise_G0.png"
                                                                              : "detector_mask.png",
                  count, err);
    }
    return rc;
}

int mg_cmd_calib_show(int argc, char **argv)
{
    static struct option opts[] = {{"png", required_argument, 0, 'p'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *png = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'p')
            png = optarg;
        else if (c == 'h') {
            printf("usage: morgul calib show CALIBRATION.h5 [--png DIR]\n\n"
                   "Per module: pedestal and noise per gain (median and 1st/99th percentiles), frames used, gain,\n"
                   "and masked pixels per reason; modules whose G0 noise or masked fraction stand out from the\n"
                   "others are flagged.  --png DIR writes pictures: each module's pedestal and noise maps per\n"
                   "gain (one colour scale per gain for all modules; masked pixels magenta), its mask coloured by\n"
                   "reason, histograms, and the whole detector laid out (detector_*.png).\n");
            return 0;
        } else
            return 2;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "morgul calib show: give one calibration file\n");
        return 2;
    }
    mg_calibration cb;
    mg_error err = {0};
    if (mg_calib_read(argv[optind], &cb, &err)) {
        fprintf(stderr, "morgul calib show: %s\n", err.message);
        return 1;
    }
    /* with storage cells every (module, cell) is shown, and compared, as a module of its own */
    int n = 0;
    for (int m = 0; m < cb.nmodules; m++)
        n += mg_calib_cells(&cb.modules[m]);
    module_stats *st = calloc((size_t)n, sizeof *st);
    mg_module_calib *e = calloc((size_t)n, sizeof *e);
    int *cell = calloc((size_t)n, sizeof *cell);
    double *noise = calloc((size_t)n, sizeof *noise), *frac = calloc((size_t)n, sizeof *frac);
    if (!st || !e || !cell || !noise || !frac) {
        free(st), free(e), free(cell), free(noise), free(frac);
        mg_calib_free(&cb);
        fprintf(stderr, "morgul calib show: out of memory\n");
        return 1;
    }
    for (int m = 0, k = 0; m < cb.nmodules; m++) {
        const mg_module_calib *x = &cb.modules[m];
        const int cells = mg_calib_cells(x);
        for (int c = 0; c < cells; c++, k++) {
            mg_module_calib *v = &e[k];
            *v = *x; /* a view: the arrays stay cb's */
            cell[k] = cells > 1 ? c : -1;
            if (cells > 1) {
                snprintf(v->name, sizeof v->name, "%.50s_cell%02d", x->name, c);
                memcpy(v->dark_frames, x->cell_frames[c], sizeof v->dark_frames);
            }
            const size_t o = (size_t)c * 3 * P;
            v->pedestal = x->pedestal ? x->pedestal + o : NULL;
            v->pedestal_rms = x->pedestal_rms ? x->pedestal_rms + o : NULL;
            v->frames_used = x->frames_used ? x->frames_used + o : NULL;
            v->wrong_gain = x->wrong_gain ? x->wrong_gain + o : NULL;
            v->mask = x->mask ? x->mask + (size_t)c * P : NULL;
        }
    }
    for (int m = 0; m < n; m++) {
        stats_of(&e[m], &st[m]);
        noise[m] = st[m].rms[0][1];
        frac[m] = e[m].mask ? (double)st[m].masked / (double)P : NAN;
    }
    double mn = median_d(noise, n), mf = median_d(frac, n);
    char iso[64] = "unknown";
    if (cb.taken > 0)
        mg_calib_time_iso(cb.taken, iso, sizeof iso);
    printf("%s: detector %s, %d module(s)%s, taken %s, exposure %g s\n", argv[optind], cb.detector, cb.nmodules,
           n > cb.nmodules ? " with storage cells (each cell shown as MODULE_cellNN)" : "", iso, cb.exposure_s);
    int flagged = 0;
    for (int m = 0; m < n; m++) {
        char flag[160] = "";
        if (n > 1 && noise[m] == noise[m] && (noise[m] > 1.5 * mn || noise[m] < mn / 1.5))
            snprintf(flag, sizeof flag, "  << G0 noise %.1f vs %.1f ADU for the detector", noise[m], mn);
        else if (n > 1 && frac[m] == frac[m] && frac[m] > 5 * mf + 0.001)
            snprintf(flag, sizeof flag, "  << %.2f %% masked vs %.2f %% for the detector", 100 * frac[m], 100 * mf);
        flagged += flag[0] != 0;
        print_module(&e[m], &st[m], flag);
    }
    if (flagged)
        printf("%d module(s) stand out from the others (<<): look at them before using these constants\n", flagged);
    int rc = 0, count = 0;
    if (png && (rc = pictures(e, cell, n, st, png, &count, &err)))
        fprintf(stderr, "morgul calib show: %s\n", err.message);
    else if (png)
        printf("wrote %d pictures to %s\n", count, png);
    free(e), free(cell), free(noise), free(frac);
    free(st);
    mg_calib_free(&cb);
    return rc ? 1 : 0;
}
