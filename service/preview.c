/* preview.c - the live picture of `GET /api/preview.png`: the latest image
 * kept as its compressed chunk (copied from the writer at most five times a
 * second: about 1 MB, nothing else on the data path), decoded only when
 * someone asks, binned to at most 512 pixels a side by the maximum (a
 * single bright pixel stays visible), coloured from 0 (raw: the lowest ADC
 * value) to the 99.9th percentile, with a colour bar and a caption. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "morgul/bitshuffle.h"
#include "morgul/convert.h"
#include "morgul/png.h"
#include "service_internal.h"

#define SIDE 512     /* the picture's longer side at most */
#define BAR 24       /* colour bar width */
#define CAPTION 22   /* caption height */
#define EVERY_NS 200000000ull

struct mg_preview {
    pthread_mutex_t mu;
    int width, height, corrected, type;
    char run[128];
    uint8_t *chunk;
    size_t n, cap;
    int64_t index;
    uint64_t taken_ns;
    int have;
};

static uint64_t mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

mg_preview *mg_preview_new(void)
{
    mg_preview *p = calloc(1, sizeof *p);
    if (p)
        pthread_mutex_init(&p->mu, NULL);
    return p;
}

void mg_preview_free(mg_preview *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->mu);
    free(p->chunk);
    free(p);
}

void mg_preview_shape(mg_preview *p, const mg_run_images *im, const char *run)
{
    pthread_mutex_lock(&p->mu);
    p->width = im->width;
    p->height = im->height;
    p->corrected = im->corrected;
    p->type = im->type;
    snprintf(p->run, sizeof p->run, "%s", run);
    p->have = 0;
    p->taken_ns = 0;
    pthread_mutex_unlock(&p->mu);
}

void mg_preview_offer(mg_preview *p, const mg_image_written *w)
{
    uint64_t now = mono();
    if (p->have && now - p->taken_ns < EVERY_NS) /* read without the lock: a late copy is harmless */
        return;
    if (pthread_mutex_trylock(&p->mu)) /* someone is drawing it: the writer never waits */
        return;
    if (w->bytes > p->cap) {
        uint8_t *c = realloc(p->chunk, w->bytes);
        if (!c) {
            pthread_mutex_unlock(&p->mu);
            return;
        }
        p->chunk = c;
        p->cap = w->bytes;
    }
    memcpy(p->chunk, w->chunk, w->bytes);
    p->n = w->bytes;
    p->index = w->index;
    p->taken_ns = now;
    p->have = 1;
    pthread_mutex_unlock(&p->mu);
}

static int by_value(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The value of pixel i, NAN when invalid; raw: the ADC (gain bits off). */
static float value(const mg_preview *p, const void *img, size_t i)
{
    if (!p->corrected)
        return (float)(((const uint16_t *)img)[i] & 0x3FFF);
    switch (p->type) {
    case MG_OUT_INT16: {
        int16_t v = ((const int16_t *)img)[i];
        return v == MG_INT16_INVALID ? NAN : v == MG_INT16_SATURATED ? INFINITY : (float)v;
    }
    case MG_OUT_INT32: {
        int32_t v = ((const int32_t *)img)[i];
        return v == MG_INT32_INVALID ? NAN : v == MG_INT32_SATURATED ? INFINITY : (float)v;
    }
    default: return ((const float *)img)[i];
    }
}

int mg_preview_png(mg_preview *p, uint8_t **png, size_t *len, mg_error *err)
{
    pthread_mutex_lock(&p->mu);
    if (!p->have) {
        pthread_mutex_unlock(&p->mu);
        return mg_error_set(err, MG_EDATA, "no image yet: the preview shows the latest image of a run");
    }
    const int W = p->width, H = p->height;
    const size_t es = p->corrected && p->type != MG_OUT_INT16 ? 4 : 2;
    const size_t npx = (size_t)W * (size_t)H;
    void *img = malloc(npx * es);
    mg_bshuf_ctx *ctx = mg_bshuf_ctx_new(es, MG_BSHUF_AUTO, err);
    int rc = !img || !ctx ? (img ? (err ? err->code : MG_ENOMEM) : mg_error_set(err, MG_ENOMEM, "out of memory"))
                          : 0;
    if (!rc && mg_bshuf_decompress(ctx, p->chunk, p->n, img, npx * es, err) < 0)
        rc = err ? err->code : MG_EFORMAT;
    char caption[200];
    snprintf(caption, sizeof caption, "%s  IMAGE %lld", p->run, (long long)p->index);
    const int corrected = p->corrected;
    pthread_mutex_unlock(&p->mu);
    mg_bshuf_ctx_free(ctx);
    if (rc) {
        free(img);
        return rc;
    }
    /* binned by the maximum of the valid pixels */
    const int f = (W > H ? W : H) > SIDE ? ((W > H ? W : H) + SIDE - 1) / SIDE : 1;
    const int bw = (W + f - 1) / f, bh = (H + f - 1) / f;
    float *bin = malloc((size_t)bw * (size_t)bh * sizeof *bin), *sorted = malloc((size_t)bw * (size_t)bh * sizeof *bin);
    const int pw = bw + 8 + BAR + 60, ph = (bh > 160 ? bh : 160) + CAPTION;
    uint8_t *rgb = calloc((size_t)pw * (size_t)ph, 3);
    if (!bin || !sorted || !rgb) {
        free(img), free(bin), free(sorted), free(rgb);
        return mg_error_set(err, MG_ENOMEM, "out of memory for the preview");
    }
    size_t nvalid = 0;
    for (int by = 0; by < bh; by++)
        for (int bx = 0; bx < bw; bx++) {
            float m = NAN;
            for (int y = by * f; y < (by + 1) * f && y < H; y++)
                for (int x = bx * f; x < (bx + 1) * f && x < W; x++) {
                    float v = value(p, img, (size_t)y * (size_t)W + (size_t)x);
                    if (!isnan(v) && (isnan(m) || v > m))
                        m = v;
                }
            bin[(size_t)by * (size_t)bw + (size_t)bx] = m;
            if (isfinite(m))
                sorted[nvalid++] = m;
        }
    free(img);
    float lo = 0, hi = 1;
    if (nvalid) {
        qsort(sorted, nvalid, sizeof *sorted, by_value);
        lo = corrected ? 0 : sorted[0];
        hi = sorted[(size_t)((double)(nvalid - 1) * 0.999)];
        if (!(hi > lo))
            hi = lo + 1;
    }
    free(sorted);
    static const uint8_t invalid[3] = {90, 0, 0}, saturated[3] = {255, 0, 255}, white[3] = {230, 230, 230};
    for (int y = 0; y < bh; y++)
        for (int x = 0; x < bw; x++) {
            float v = bin[(size_t)y * (size_t)bw + (size_t)x];
            uint8_t *o = rgb + ((size_t)y * (size_t)pw + (size_t)x) * 3;
            if (isnan(v))
                memcpy(o, invalid, 3);
            else if (isinf(v) && v > 0)
                memcpy(o, saturated, 3);
            else
                mg_png_colour((v - lo) / (hi - lo), o);
        }
    free(bin);
    /* the colour bar, top = hi, with its two ends written beside it */
    const int bx0 = bw + 8, bar_h = (bh > 160 ? bh : 160) - 20;
    for (int y = 0; y < bar_h; y++)
        for (int x = 0; x < BAR; x++)
            mg_png_colour(1.0 - (double)y / (bar_h - 1), rgb + ((size_t)(y + 10) * (size_t)pw + (size_t)(bx0 + x)) * 3);
    char t[32];
    snprintf(t, sizeof t, "%.0f", (double)hi);
    mg_png_text(rgb, pw, ph, bx0 + BAR + 4, 10, t, 1, white);
    snprintf(t, sizeof t, "%.0f", (double)lo);
    mg_png_text(rgb, pw, ph, bx0 + BAR + 4, 10 + bar_h - 7, t, 1, white);
    mg_png_text(rgb, pw, ph, 4, ph - CAPTION + 6, caption, 1, white);
    rc = mg_png_encode_rgb(pw, ph, rgb, png, len, err);
    free(rgb);
    return rc;
}
