/* sim_content.c - frame content for the simulator: pattern, dark, photons
 * and frames from files.
 *
 * Dark and photon frames are built from per-pixel pedestals (synthetic or
 * from files), gaussian noise from a fast seeded generator, and for photons
 * a gain map: ADC = pedestal[g] + photons * gain[g] * E + noise, where the
 * gain g is the lowest one whose ADC stays in range, as the detector's
 * automatic gain switching does.  Beyond G2's range the word is 0xC000. */
#include "sim_content.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "morgul/jungfrau.h"

struct sim_content {
    mg_sim_config cfg;
    int nmod;
    float *ped;      /* [3][pixels] shared by all modules (files hold one module) */
    float *noise0;   /* G0 noise per pixel, or NULL */
    double *gain;    /* [3][pixels] ADU/keV */
    uint16_t *frames;/* MG_SIM_FRAMES */
    size_t nframes;
    float *image;    /* photons scratch */
    float *background; /* photons: the smooth part, computed once */
    int32_t *truth;    /* photons: the whole photons of the frame last made */
    float *gtable;   /* 65536 standard normal values: a table draw per pixel */
    uint8_t *bad;    /* dark: [nmod][pixels] planted kind (BAD_*), or NULL */
    uint64_t rng;
};

static inline uint64_t next_u64(uint64_t *s)
{
    /* xorshift64*: fast, good enough for noise, exactly repeatable */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

static inline double uniform(uint64_t *s) { return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0); }


/* A standard normal value from a table of 65536 quantiles: one random draw
 * gives four noise values, fast enough to send fresh noise at line rate. */
static inline float table_gauss(const float *t, uint64_t r, int i) { return t[(r >> (16 * i)) & 0xFFFF]; }

static float *make_gauss_table(void)
{
    float *t = malloc(65536 * sizeof(float));
    if (!t)
        return NULL;
    /* inverse normal CDF at the bin centres, by bisection on erfc */
    for (int i = 0; i < 65536; i++) {
        double p = (i + 0.5) / 65536.0, lo = -9, hi = 9;
        for (int it = 0; it < 40; it++) { /* 2^-40 of 18: far below float resolution */
            double mid = 0.5 * (lo + hi);
            if (0.5 * erfc(-mid / sqrt(2.0)) < p)
                lo = mid;
            else
                hi = mid;
        }
        t[i] = (float)(0.5 * (lo + hi));
    }
    return t;
}

enum { BAD_NONE, BAD_NOISY, BAD_WRONG_GAIN, BAD_STUCK, BAD_DEAD };
static const char *const bad_names[] = {"", "noisy", "wrong-gain", "stuck", "dead"};

/* Chooses the planted pixels from the module index alone (not the seed of
 * the noise), so every run plants the same ones, as a real module's bad
 * pixels stay; logs them. */
static int plant_bad_pixels(sim_content *c, mg_error *err)
{
    const mg_sim_config *cfg = &c->cfg;
    const int want[5] = {0, cfg->bad_noisy, cfg->bad_wrong_gain, cfg->bad_stuck, cfg->bad_dead};
    if (!(want[1] | want[2] | want[3] | want[4]))
        return 0;
    const size_t P = MG_MODULE_PIXELS;
    if ((size_t)want[1] + (size_t)want[2] + (size_t)want[3] + (size_t)want[4] > P / 2)
        return mg_error_set(err, MG_EINVAL, "more bad pixels asked for than half a module");
    c->bad = calloc((size_t)c->nmod * P, 1);
    if (!c->bad)
        return mg_error_set(err, MG_ENOMEM, "out of memory");
    FILE *log = NULL;
    if (cfg->bad_pixel_log && !(log = fopen(cfg->bad_pixel_log, "w")))
        return mg_error_set(err, MG_EIO, "cannot write %s: %s", cfg->bad_pixel_log, strerror(errno));
    if (log)
        fprintf(log, "module,row,column,kind\n");
    for (int m = 0; m < c->nmod; m++) {
        uint64_t s = 0xD1B54A32D192ED03ull + (uint64_t)m * 0x9E3779B97F4A7C15ull;
        for (int kind = 1; kind <= 4; kind++)
            for (int n = 0; n < want[kind];) {
                size_t p = (size_t)(uniform(&s) * (double)P);
                if (c->bad[(size_t)m * P + p])
                    continue;
                c->bad[(size_t)m * P + p] = (uint8_t)kind;
                if (log)
                    fprintf(log, "%d,%zu,%zu,%s\n", m, p / MG_MODULE_COLS, p % MG_MODULE_COLS, bad_names[kind]);
                n++;
            }
    }
    if (log && fclose(log))
        return mg_error_set(err, MG_EIO, "writing %s failed", cfg->bad_pixel_log);
    return 0;
}

static int read_file(const char *path, void *dst, size_t bytes, size_t *got, mg_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return mg_error_set(err, MG_EIO, "cannot open %s: %s", path, strerror(errno));
    size_t n = fread(dst, 1, bytes, f);
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got)
        *got = n;
    else if (n != bytes || extra)
        return mg_error_set(err, MG_EFORMAT, "%s: expected %zu bytes, it has %s%zu", path, bytes,
                            extra ? "more than " : "", n);
    return 0;
}

sim_content *sim_content_new(const mg_sim_config *cfg, mg_error *err)
{
    sim_content *c = calloc(1, sizeof *c);
    if (!c) {
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    c->cfg = *cfg;
    c->nmod = cfg->det->nmodules;
    c->rng = cfg->seed * 0x9E3779B97F4A7C15ull + 12345;
    const size_t P = MG_MODULE_PIXELS;
    if (cfg->content == MG_SIM_DARK || cfg->content == MG_SIM_PHOTONS) {
        c->ped = malloc(3 * P * sizeof(float));
        c->gtable = make_gauss_table();
        if (!c->ped || !c->gtable)
            goto nomem;
        /* synthetic pedestals in the typical ranges, different for every pixel */
        uint64_t s = 0xC0FFEE;
        for (size_t i = 0; i < P; i++) {
            c->ped[i] = (float)(2000 + 1000 * uniform(&s));
            c->ped[P + i] = (float)(13500 + 200 * uniform(&s));
            c->ped[2 * P + i] = (float)(14000 + 200 * uniform(&s));
        }
        if (cfg->pedestal_files && *cfg->pedestal_files) {
            char buf[4096];
            snprintf(buf, sizeof buf, "%s", cfg->pedestal_files);
            char *save = NULL, *tok = strtok_r(buf, ",", &save);
            for (int g = 0; g < 3 && tok; g++, tok = strtok_r(NULL, ",", &save))
                if (read_file(tok, c->ped + g * P, P * sizeof(float), NULL, err))
                    goto fail;
        }
        if (cfg->content == MG_SIM_DARK && plant_bad_pixels(c, err))
            goto fail;
        if (cfg->noise_file && *cfg->noise_file) {
            c->noise0 = malloc(P * sizeof(float));
            if (!c->noise0)
                goto nomem;
            if (read_file(cfg->noise_file, c->noise0, P * sizeof(float), NULL, err))
                goto fail;
        }
    }
    if (cfg->content == MG_SIM_PHOTONS) {
        c->gain = malloc(3 * P * sizeof(double));
        c->image = malloc(P * sizeof(float));
        c->background = malloc(P * sizeof(float));
        c->truth = malloc(P * sizeof(int32_t));
        if (!c->gain || !c->image || !c->background || !c->truth)
            goto nomem;
        /* smooth background falling off from the module centre */
        for (size_t r = 0; r < MG_MODULE_ROWS; r++)
            for (size_t col = 0; col < MG_MODULE_COLS; col++) {
                double dr = ((double)r - 256) / 512, dc = ((double)col - 512) / 1024;
                c->background[r * MG_MODULE_COLS + col] = (float)(0.3 / (1 + 8 * (dr * dr + dc * dc)));
            }
        for (size_t i = 0; i < P; i++) {
            c->gain[i] = 41.0;
            c->gain[P + i] = -1.44;
            c->gain[2 * P + i] = -0.115;
        }
        if (cfg->gainmap_file && *cfg->gainmap_file) {
            size_t got = 0;
            double *g6 = malloc(6 * P * sizeof(double));
            if (!g6)
                goto nomem;
            int rc = read_file(cfg->gainmap_file, g6, 6 * P * sizeof(double), &got, err);
            if (!rc && got != 3 * P * sizeof(double) && got != 6 * P * sizeof(double))
                rc = mg_error_set(err, MG_EFORMAT, "gain map %s has %zu bytes; a PSI gain map has 3 or 6 planes of "
                                  "512x1024 float64 (%zu or %zu bytes)", cfg->gainmap_file, got,
                                  3 * P * sizeof(double), 6 * P * sizeof(double));
            if (!rc)
                memcpy(c->gain, g6, 3 * P * sizeof(double));
            free(g6);
            if (rc)
                goto fail;
        }
    }
    if (cfg->content == MG_SIM_FRAMES) {
        if (!cfg->frame_files || !*cfg->frame_files) {
            mg_error_set(err, MG_EINVAL, "content 'frames' needs files of raw frames (--frames-file A.bin,B.bin)");
            goto fail;
        }
        char buf[8192];
        snprintf(buf, sizeof buf, "%s", cfg->frame_files);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            FILE *f = fopen(tok, "rb");
            if (!f) {
                mg_error_set(err, MG_EIO, "cannot open %s: %s", tok, strerror(errno));
                goto fail;
            }
            fseek(f, 0, SEEK_END);
            long sz = ftell(f);
            fseek(f, 0, SEEK_SET);
            if (sz <= 0 || sz % MG_MODULE_BYTES) {
                fclose(f);
                mg_error_set(err, MG_EFORMAT, "%s holds %ld bytes, not a whole number of 512x1024 uint16 frames "
                             "(%d bytes each)", tok, sz, MG_MODULE_BYTES);
                goto fail;
            }
            size_t n = (size_t)sz / MG_MODULE_BYTES;
            uint16_t *nf = realloc(c->frames, (c->nframes + n) * MG_MODULE_BYTES);
            if (!nf) {
                fclose(f);
                goto nomem;
            }
            c->frames = nf;
            size_t got = fread(c->frames + c->nframes * P, MG_MODULE_BYTES, n, f);
            fclose(f);
            if (got != n) {
                mg_error_set(err, MG_EIO, "reading %s failed", tok);
                goto fail;
            }
            c->nframes += n;
        }
    }
    return c;
nomem:
    mg_error_set(err, MG_ENOMEM, "out of memory for simulator content");
fail:
    sim_content_free(c);
    return NULL;
}

void sim_content_free(sim_content *c)
{
    if (!c)
        return;
    free(c->ped);
    free(c->noise0);
    free(c->gain);
    free(c->frames);
    free(c->image);
    free(c->background);
    free(c->truth);
    free(c->gtable);
    free(c->bad);
    free(c);
}

static inline uint16_t word(unsigned g, double adc)
{
    long a = lround(adc);
    if (a < 0)
        a = 0;
    if (a > 0x3FFF)
        a = 0x3FFF;
    static const unsigned bits[3] = {MG_GAIN_BITS_G0, MG_GAIN_BITS_G1, MG_GAIN_BITS_G2};
    return (uint16_t)(bits[g] << 14 | (unsigned)a);
}

/* The gain a dark frame k is taken in, and its DAQ bits. */
static unsigned dark_gain(const mg_sim_config *cfg, uint64_t k, uint32_t *daq)
{
    unsigned g = (unsigned)cfg->gain;
    if (cfg->pedestal_mode_frames > 0 && cfg->pedestal_mode_loops > 0) {
        uint64_t F = (uint64_t)cfg->pedestal_mode_frames, FL = F * (uint64_t)cfg->pedestal_mode_loops;
        g = 0;
        if (k < 2 * FL && (k + 1) % F == 0)
            g = k < FL ? 1 : 2;
    }
    *daq = g == 1 ? MG_DAQ_FORCE_G1 : g == 2 ? MG_DAQ_FORCE_G2 : 0;
    return g;
}

const int32_t *sim_content_truth(const sim_content *c) { return c->truth; }

uint32_t sim_content_frame(sim_content *c, int m, uint64_t k, uint16_t *out)
{
    const mg_sim_config *cfg = &c->cfg;
    const size_t P = MG_MODULE_PIXELS;
    uint64_t fn = cfg->first_frame + k;
    uint32_t daq = 0;
    const unsigned cell = cfg->storage_cells > 1 ? (unsigned)(k % (uint64_t)cfg->storage_cells) : 0;
    switch (cfg->content) {
    case MG_SIM_PATTERN:
        for (uint32_t i = 0; i < P; i++)
            out[i] = mg_sim_pattern_word((unsigned)m, fn, i);
        break;
    case MG_SIM_FRAMES:
        memcpy(out, c->frames + ((k * (uint64_t)c->nmod + (uint64_t)m) % c->nframes) * P, MG_MODULE_BYTES);
        break;
    case MG_SIM_DARK: {
        unsigned g = dark_gain(cfg, k, &daq);
        double sd = cfg->noise[g] > 0 ? cfg->noise[g] : (g == 0 ? 12 : g == 1 ? 4 : 3);
        const float *ped = c->ped + g * P;
        for (size_t i = 0; i < P; i += 4) {
            uint64_t r = next_u64(&c->rng);
            for (int h = 0; h < 4; h++) {
                double sdp = g == 0 && c->noise0 ? c->noise0[i + (size_t)h] : sd;
                out[i + (size_t)h] = word(g, ped[i + (size_t)h] + mg_sim_cell_offset(cell, (uint32_t)(i + (size_t)h)) +
                                                 table_gauss(c->gtable, r, h) * sdp);
            }
        }
        if (c->bad) {
            const uint8_t *bad = c->bad + (size_t)m * P;
            for (size_t i = 0; i < P; i++) {
                if (!bad[i])
                    continue;
                switch (bad[i]) {
                case BAD_NOISY: {
                    double sdp = g == 0 && c->noise0 ? c->noise0[i] : sd;
                    uint64_t r = next_u64(&c->rng);
                    out[i] = word(g, ped[i] + mg_sim_cell_offset(cell, (uint32_t)i) + table_gauss(c->gtable, r, 0) * 10 * sdp);
                    break;
                }
                case BAD_WRONG_GAIN:
                    if ((k + i) % 10 == 0) {
                        unsigned o = g == 0 ? 1 : 0;
                        out[i] = word(o, c->ped[o * P + i] + mg_sim_cell_offset(cell, (uint32_t)i));
                    }
                    break;
                case BAD_STUCK: out[i] = word(g, ped[i] + mg_sim_cell_offset(cell, (uint32_t)i)); break;
                case BAD_DEAD: out[i] = 0; break;
                }
            }
        }
        break;
    }
    case MG_SIM_PHOTONS: {
        const double E = cfg->energy_kev > 0 ? cfg->energy_kev : 12.4;
        float *img = c->image;
        const int dark = k < cfg->shutter_frame; /* before the shutter opens: no photons at all */
        if (dark)
            memset(img, 0, P * sizeof(float));
        else
            memcpy(img, c->background, P * sizeof(float));
        int spots = dark ? 0 : cfg->spots > 0 ? cfg->spots : 200;
        for (int s = 0; s < spots; s++) {
            double r0 = uniform(&c->rng) * MG_MODULE_ROWS, c0 = uniform(&c->rng) * MG_MODULE_COLS;
            double peak = exp(uniform(&c->rng) * log(20000.0)); /* 1 .. 20000 photons, many weak */
            for (int dr = -3; dr <= 3; dr++)
                for (int dc = -3; dc <= 3; dc++) {
                    long r = (long)r0 + dr, cc = (long)c0 + dc;
                    if (r < 0 || r >= MG_MODULE_ROWS || cc < 0 || cc >= MG_MODULE_COLS)
                        continue;
                    img[r * MG_MODULE_COLS + cc] += (float)(peak * exp(-(dr * dr + dc * dc) / 1.5));
                }
        }
        const float *ped0 = c->ped;
        for (size_t i = 0; i < P; i += 2) {
            uint64_t rnd = next_u64(&c->rng);
            for (int h = 0; h < 2; h++) {
                size_t p = i + (size_t)h;
                /* whole photons: the mean's integer part plus a coin for its fraction */
                float mean = img[p], whole = floorf(mean);
                float coin = (float)((rnd >> (32 + 16 * h)) & 0xFFFF) * (1.0f / 65536.0f);
                float n = whole + (coin < mean - whole ? 1.0f : 0.0f);
                c->truth[p] = (int32_t)n;
                float nz = table_gauss(c->gtable, rnd, h);
                /* most pixels: a few photons in G0 */
                const float off = mg_sim_cell_offset(cell, (uint32_t)p);
                float adc0 = ped0[p] + off + n * (float)(c->gain[p] * E) + nz * (c->noise0 ? c->noise0[p] : 12.0f);
                if (adc0 >= 0 && adc0 <= 14000) {
                    out[p] = (uint16_t)(MG_GAIN_BITS_G0 << 14 | (unsigned)(adc0 + 0.5f));
                    continue;
                }
                uint16_t w = MG_WORD_SATURATED;
                for (unsigned g = 1; g < 3; g++) {
                    double sd = g == 1 ? 4 : 3;
                    double adc = c->ped[g * P + p] + off + n * c->gain[g * P + p] * E + nz * sd;
                    if (adc >= 0 && adc <= 16000 && adc < c->ped[g * P + p] + off + 50) {
                        w = word(g, adc);
                        break;
                    }
                }
                out[p] = w;
            }
        }
        break;
    }
    }
    return daq | cell << 8;
}
