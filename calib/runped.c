/* runped.c - the run-time pedestal (contract in morgul/runped.h). */
#include "morgul/runped.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "morgul/badpixel.h"
#include "morgul/calibration.h"
#include "morgul/detector.h"
#include "morgul/jungfrau.h"
#include "morgul/pedestal.h"

#define P ((size_t)MG_MODULE_PIXELS)

struct mg_runped {
    mg_runped_config cfg;
    int cells;
    mg_pedestal_acc *acc[MG_MAX_MODULES * MG_CELLS_MAX]; /* [m * cells + c] */
    const float *ped[MG_MAX_MODULES]; /* the calibration's planes (the config's arrays need not outlive new) */
    uint16_t *frame;     /* nmodules x P: the frame being offered */
    uint16_t *limit;     /* cells x nmodules x P: the highest dark G0 word (G0 words are the ADC itself) */
    uint64_t offered, taken, signal_frames;
    double hits_sum;     /* over the taken frames that showed no signal (the dark reference) */
    int64_t onset;
    int done;
};

void mg_runped_free(mg_runped *r)
{
    if (!r)
        return;
    for (int m = 0; m < r->cfg.nmodules * r->cells; m++)
        mg_pedestal_acc_free(r->acc[m]);
    free(r->frame);
    free(r->limit);
    free(r);
}

mg_runped *mg_runped_new(const mg_runped_config *cfg, mg_error *err)
{
    if (cfg->nmodules < 1 || cfg->nmodules > MG_MAX_MODULES) {
        mg_error_set(err, MG_EINVAL, "run-time pedestal: %d modules", cfg->nmodules);
        return NULL;
    }
    mg_runped *r = calloc(1, sizeof *r);
    const size_t n = (size_t)cfg->nmodules * P, C = cfg->cells > 1 ? (size_t)cfg->cells : 1;
    if (r) {
        r->cfg = *cfg;
        r->cfg.pedestal = NULL, r->cfg.noise = NULL, r->cfg.mask = NULL; /* used only here */
        r->cells = (int)C;
        r->onset = -1;
        if (!r->cfg.max_frames)
            r->cfg.max_frames = 200;
        r->frame = malloc(n * sizeof(uint16_t));
        r->limit = malloc(C * n * sizeof(uint16_t));
    }
    if (!r || !r->frame || !r->limit) {
        mg_runped_free(r);
        mg_error_set(err, MG_ENOMEM, "out of memory for the run-time pedestal");
        return NULL;
    }
    for (int m = 0; m < cfg->nmodules; m++) {
        r->ped[m] = cfg->pedestal[m];
        for (size_t c = 0; c < C; c++) {
            if (!(r->acc[(size_t)m * C + c] = mg_pedestal_acc_new(P, MG_PED_AUTO, err))) {
                mg_runped_free(r);
                return NULL;
            }
            /* cell c's G0 plane, noise and mask */
            const float *p0 = cfg->pedestal[m] + c * 3 * P, *s0 = cfg->noise && cfg->noise[m] ? cfg->noise[m] + c * 3 * P
                                                                                                 : NULL;
            const uint32_t *mask = cfg->mask && cfg->mask[m] ? cfg->mask[m] + c * P : NULL;
            uint16_t *lim_out = r->limit + (c * (size_t)cfg->nmodules + (size_t)m) * P;
            for (size_t i = 0; i < P; i++) {
                double sd = s0 && s0[i] == s0[i] && s0[i] > 0 ? s0[i] : 15;
                double lim = p0[i] == p0[i] ? p0[i] + fmax(6 * sd, 60) : 16383;
                /* masked pixels never count as hit */
                lim_out[i] = mask && mask[i] ? 0xFFFF : (uint16_t)(lim >= 16383 ? 16383 : lim < 0 ? 0 : lim);
            }
        }
    }
    return r;
}

uint16_t *mg_runped_module(mg_runped *r, int m) { return r->frame + (size_t)m * P; }

/* Hit pixels of the frame: G1/G2 words (>= 0x4000) or G0 above the limit
 * of its cell; a masked pixel's limit 0xFFFF is never exceeded. */
static uint64_t hits(const mg_runped *r, unsigned cell)
{
    uint64_t h = 0;
    const size_t n = (size_t)r->cfg.nmodules * P;
    const uint16_t *limit = r->limit + cell * n;
    for (size_t i = 0; i < n; i++)
        h += r->frame[i] > limit[i];
    return h;
}

int mg_runped_offer(mg_runped *r, int complete, uint32_t daq_info)
{
    if (r->done)
        return MG_RUNPED_DONE;
    const uint64_t k = r->offered++;
    const int automatic = r->cfg.frames == 0;
    const unsigned cell = r->cells > 1 ? MG_DAQ_STORAGE_CELL(daq_info) : 0;
    if (complete && cell < (unsigned)r->cells) {
        uint64_t h = hits(r, cell);
        const uint64_t dark = r->taken - r->signal_frames;
        double limit = 50.0 * r->cfg.nmodules + (dark ? 10 * r->hits_sum / (double)dark : 0);
        int signal = (double)h > limit;
        if (signal && automatic) {
            r->onset = (int64_t)k;
            r->done = 1;
            return MG_RUNPED_SIGNAL;
        }
        if (signal) {
            r->signal_frames++;
            if (r->onset < 0)
                r->onset = (int64_t)k;
        }
        for (int m = 0; m < r->cfg.nmodules; m++)
            mg_pedestal_add(r->acc[(size_t)m * (size_t)r->cells + cell], r->frame + (size_t)m * P, 0);
        r->taken++;
        if (!signal)
            r->hits_sum += (double)h;
    }
    if ((!automatic && r->taken >= r->cfg.frames) || (automatic && r->offered >= r->cfg.max_frames)) {
        r->done = 1;
        return MG_RUNPED_DONE;
    }
    return MG_RUNPED_MORE;
}

uint64_t mg_runped_frames(const mg_runped *r) { return r->taken; }
int64_t mg_runped_onset(const mg_runped *r) { return r->onset; }
uint64_t mg_runped_signal_frames(const mg_runped *r) { return r->signal_frames; }
int mg_runped_cells(const mg_runped *r) { return r->cells; }

double mg_runped_result(mg_runped *r, int m, float *p0)
{
    const size_t C = (size_t)r->cells;
    float *mean = malloc(3 * P * sizeof(float)), *delta = malloc(C * P * sizeof(float));
    double med = NAN;
    for (size_t c = 0; c < C; c++) {
        const float *cal = r->ped[m] + c * 3 * P; /* cell c's G0 plane */
        float *out = p0 + c * P;
        if (!mean || !delta) {
            memcpy(out, cal, P * sizeof(float));
            continue;
        }
        mg_pedestal_result(r->acc[(size_t)m * C + c], mean, NULL, NULL, NULL);
        for (size_t i = 0; i < P; i++) {
            out[i] = mean[i] == mean[i] ? mean[i] : cal[i];
            delta[c * P + i] = mean[i] - cal[i]; /* NaN where either is unknown */
        }
    }
    if (mean && delta)
        med = mg_median_f32(delta, C * P);
    free(mean);
    free(delta);
    return med;
}

mg_runped *mg_runped_for(const mg_calibration *cb, const mg_detector *det, uint64_t frames, uint64_t max_frames,
                         mg_error *err)
{
    const float *ped[MG_MAX_MODULES], *rms[MG_MAX_MODULES];
    const uint32_t *mask[MG_MAX_MODULES];
    int cells = 0;
    for (int m = 0; m < det->nmodules; m++) {
        const mg_module_calib *x = mg_calib_find(cb, det->modules[m].name);
        if (!x || !x->pedestal) {
            mg_error_set(err, MG_ECONFIG, "run-time pedestal: module %s has no pedestals in the calibration",
                         det->modules[m].name);
            return NULL;
        }
        if (m && mg_calib_cells(x) != cells) {
            mg_error_set(err, MG_ECONFIG, "run-time pedestal: module %s has %d storage cell(s) in the calibration, "
                         "module %s %d; calibrate all modules with the same cells", x->name, mg_calib_cells(x),
                         det->modules[0].name, cells);
            return NULL;
        }
        cells = mg_calib_cells(x);
        ped[m] = x->pedestal, rms[m] = x->pedestal_rms, mask[m] = x->mask;
    }
    mg_runped_config c = {.nmodules = det->nmodules, .cells = cells, .pedestal = ped, .noise = rms, .mask = mask,
                          .frames = frames, .max_frames = max_frames};
    return mg_runped_new(&c, err);
}

int mg_runped_apply(mg_runped *r, mg_calibration *cb, const mg_detector *det, float **p0, FILE *report, mg_error *err)
{
    for (int m = 0; m < det->nmodules; m++)
        p0[m] = NULL;
    if (!r->taken)
        return mg_error_set(err, MG_EDATA, "run-time pedestal: %s; give --runtime-pedestal N, or leave it out to use "
                            "the calibration's pedestal", r->onset == 0 ? "the first frame already shows signal"
                                                                        : "no complete frame to take it from");
    if (report) {
        fprintf(report, "run-time pedestal: %llu dark frame(s)", (unsigned long long)r->taken);
        if (r->cfg.frames == 0)
            fprintf(report, r->onset >= 0 ? ", signal from frame %lld on\n" : ", no signal in the first %lld\n",
                    r->onset >= 0 ? (long long)r->onset : (long long)r->offered);
        else
            fprintf(report, "\n");
        if (r->signal_frames)
            fprintf(report, "warning: %llu of them show signal (from frame %lld): the shutter opened early and the "
                            "run-time pedestal is biased; use fewer frames or auto\n",
                    (unsigned long long)r->signal_frames, (long long)r->onset);
    }
    for (int m = 0; m < det->nmodules; m++) {
        mg_module_calib *x = mg_calib_find(cb, det->modules[m].name);
        if (!x || !x->pedestal || !(p0[m] = malloc((size_t)r->cells * P * sizeof(float)))) {
            for (int k = 0; k < m; k++)
                free(p0[k]), p0[k] = NULL;
            return mg_error_set(err, MG_ENOMEM, "run-time pedestal: out of memory");
        }
        /* the configured planes point into cb: the result is computed before they are overwritten */
        double shift = mg_runped_result(r, m, p0[m]);
        for (int c = 0; c < r->cells; c++) /* each cell's G0 plane */
            memcpy(x->pedestal + (size_t)c * 3 * P, p0[m] + (size_t)c * P, P * sizeof(float));
        if (report)
            fprintf(report, "  module %s: G0 pedestal %+.2f ADU from the calibration's (median)\n", x->name, shift);
    }
    return 0;
}
