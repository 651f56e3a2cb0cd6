/* merge.c - joining calibration files: per-module files, or files that
 * each hold some of a module's constants (the gain maps in one, the G0
 * dark run in another), into one detector file (contract in
 * morgul/calibration.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "morgul/badpixel.h"
#include "morgul/calibration.h"
#include "morgul/darkrun.h"
#include "morgul/jungfrau.h"

#define P ((size_t)MG_MODULE_PIXELS)

/* A pedestal plane holds something if any pixel is a number. */
static int plane_known(const float *v)
{
    for (size_t i = 0; i < P; i++)
        if (v[i] == v[i])
            return 1;
    return 0;
}

static void *dup_or_null(const void *src, size_t bytes)
{
    if (!src)
        return NULL;
    void *d = malloc(bytes);
    if (d)
        memcpy(d, src, bytes);
    return d;
}

/* dst's array `*slot` (planes of `plane` bytes, `n` of them) gets src's
 * plane g; allocated (NaN or 0 filled) when missing. */
static int take_plane(void **slot, const void *src, size_t plane, int n, int g, int nan_fill)
{
    if (!*slot) {
        *slot = malloc(plane * (size_t)n);
        if (!*slot)
            return -1;
        if (nan_fill)
            for (size_t i = 0; i < plane * (size_t)n / sizeof(float); i++)
                ((float *)*slot)[i] = NAN;
        else
            memset(*slot, 0, plane * (size_t)n);
    }
    memcpy((char *)*slot + plane * (size_t)g, (const char *)src + plane * (size_t)g, plane);
    return 0;
}

int mg_calib_merge(mg_calibration *dst, const mg_calibration *src, const char *src_name, FILE *report, mg_error *err)
{
    if (dst->exposure_s == dst->exposure_s && src->exposure_s == src->exposure_s &&
        fabs(dst->exposure_s - src->exposure_s) > 1e-9)
        return mg_error_set(err, MG_EINVAL, "%s was taken at exposure %g s, the files before it at %g s: constants of "
                            "different exposures do not belong in one file", src_name, src->exposure_s,
                            dst->exposure_s);
    if (dst->exposure_s != dst->exposure_s)
        dst->exposure_s = src->exposure_s;
    if (src->taken > dst->taken)
        dst->taken = src->taken;
    if (!dst->detector[0] || (!strcmp(dst->detector, "jungfrau") && src->detector[0]))
        snprintf(dst->detector, sizeof dst->detector, "%s", src->detector);
    for (int m = 0; m < src->nmodules; m++) {
        const mg_module_calib *s = &src->modules[m];
        int existed = mg_calib_find(dst, s->name) != NULL;
        mg_module_calib *d = mg_calib_module(dst, s->name, s->row, s->column);
        if (!d)
            return mg_error_set(err, MG_ECONFIG, "more than %d modules in all", MG_MAX_MODULES);
        d->row = s->row;
        d->column = s->column;
        if (s->serial[0])
            snprintf(d->serial, sizeof d->serial, "%s", s->serial);
        const int cells = mg_calib_cells(s);
        if (s->pedestal && d->pedestal && mg_calib_cells(d) != cells)
            return mg_error_set(err, MG_ECONFIG, "module %s has %d storage cell(s) in %s but %d in the files before it: "
                                "constants of different cell counts do not merge", s->name, cells, src_name,
                                mg_calib_cells(d));
        if (s->pedestal && mg_calib_set_cells(d, cells))
            return mg_error_set(err, MG_ENOMEM, "out of memory merging module %s", s->name);
        const size_t C = (size_t)mg_calib_cells(d);
        char took[128] = "";
        int fail = 0;
        if (s->gain) {
            free(d->gain);
            fail |= !(d->gain = dup_or_null(s->gain, 3 * P * sizeof(double)));
            strcat(took, " gain-map");
        }
        int stats = 0;
        for (int g = 0; g < 3 && s->pedestal; g++) {
            /* a gain's constants: those of a dark run of that gain, or any known plane of an import */
            int have = s->dark_frames[g] > 0 || (!(s->dark_frames[0] | s->dark_frames[1] | s->dark_frames[2]) &&
                                                 plane_known(s->pedestal + g * P));
            if (!have)
                continue;
            const int n = (int)(3 * C);
            for (int k = 0; k < (int)C; k++) { /* plane (cell k, gain g) */
                const int pl = 3 * k + g;
                fail |= take_plane((void **)&d->pedestal, s->pedestal, P * sizeof(float), n, pl, 1);
                if (s->pedestal_rms)
                    fail |= take_plane((void **)&d->pedestal_rms, s->pedestal_rms, P * sizeof(float), n, pl, 1);
                if (s->frames_used)
                    fail |= take_plane((void **)&d->frames_used, s->frames_used, P * sizeof(uint32_t), n, pl, 0);
                if (s->wrong_gain)
                    fail |= take_plane((void **)&d->wrong_gain, s->wrong_gain, P * sizeof(uint32_t), n, pl, 0);
                d->cell_frames[k][g] = s->cell_frames[k][g];
            }
            d->dark_frames[g] = s->dark_frames[g];
            stats |= s->frames_used != NULL;
            snprintf(took + strlen(took), sizeof took - strlen(took), " G%d", g);
        }
        if (s->mask) { /* the user's bits and any imported mask stay; dark-run bits are recomputed below */
            if (!d->mask)
                fail |= !(d->mask = calloc(C * P, sizeof(uint32_t)));
            /* a source without cells (a gain-map file with a mask, say) holds for every cell */
            const size_t sc = (size_t)cells;
            for (size_t i = 0; d->mask && i < C * P; i++)
                d->mask[i] |= s->mask[sc == C ? i : i % P];
        }
        if (fail)
            return mg_error_set(err, MG_ENOMEM, "out of memory merging module %s", s->name);
        if (stats && d->frames_used && d->wrong_gain && d->pedestal_rms && d->mask) {
            /* the dark-run bits from the merged statistics (default criteria), the user's bits kept */
            uint8_t *user = calloc(P, 1);
            int r = !user;
            for (size_t i = 0; user && i < C * P; i++) /* a user bit in any cell holds for all */
                user[i % P] |= (d->mask[i] & MG_MASK_USER) != 0;
            mg_mask_criteria c;
            mg_mask_criteria_defaults(&c);
            r = r || mg_dark_mask(d, &c, user, NULL);
            free(user);
            if (r)
                return mg_error_set(err, MG_ENOMEM, "out of memory merging module %s", s->name);
        }
        if (s->taken > d->taken)
            d->taken = s->taken;
        if (s->exposure_s == s->exposure_s)
            d->exposure_s = s->exposure_s;
        if (s->sources[0]) {
            size_t len = strlen(d->sources);
            snprintf(d->sources + len, sizeof d->sources - len, "%s%s", len ? "," : "", s->sources);
        }
        if (report)
            fprintf(report, "%s: module %s%s:%s%s\n", src_name, s->name, existed ? "" : " (new)",
                    took[0] ? took : " nothing", s->mask ? " mask" : "");
    }
    return 0;
}
