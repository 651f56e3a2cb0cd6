/* png.c - RGB PNG files, a colour scale and a 5x7 font (contract in
 * morgul/png.h).  The PNG is the minimal valid one: IHDR, one IDAT with
 * every row unfiltered (filter byte 0), IEND; zlib does the deflate and
 * the CRCs. */
#include "morgul/png.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static int chunk(FILE *fp, const char *type, const uint8_t *data, uint32_t len)
{
    uint8_t hdr[8];
    be32(hdr, len);
    memcpy(hdr + 4, type, 4);
    uLong crc = crc32(0, (const Bytef *)type, 4);
    if (len)
        crc = crc32(crc, data, len);
    uint8_t tail[4];
    be32(tail, (uint32_t)crc);
    return fwrite(hdr, 1, 8, fp) == 8 && (!len || fwrite(data, 1, len, fp) == len) && fwrite(tail, 1, 4, fp) == 4
               ? 0
               : -1;
}

/* The PNG of w x h RGB pixels onto fp; `what` names it in errors. */
static int png_to(FILE *fp, const char *what, int w, int h, const uint8_t *rgb, mg_error *err)
{
    if (w <= 0 || h <= 0)
        return mg_error_set(err, MG_EINVAL, "an empty picture (%d x %d)", w, h);
    const size_t row = (size_t)w * 3 + 1, raw_len = row * (size_t)h;
    uint8_t *raw = malloc(raw_len);
    uLongf zlen = compressBound((uLong)raw_len);
    uint8_t *z = malloc(zlen);
    if (!raw || !z) {
        free(raw), free(z);
        return mg_error_set(err, MG_ENOMEM, "out of memory for a %d x %d picture", w, h);
    }
    for (int y = 0; y < h; y++) {
        raw[(size_t)y * row] = 0;
        memcpy(raw + (size_t)y * row + 1, rgb + (size_t)y * (size_t)w * 3, (size_t)w * 3);
    }
    int rc = 0;
    if (compress2(z, &zlen, raw, (uLong)raw_len, 6) != Z_OK)
        rc = mg_error_set(err, MG_ENOMEM, "compressing %s failed", what);
    if (!rc) {
        static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
        uint8_t ihdr[13];
        be32(ihdr, (uint32_t)w);
        be32(ihdr + 4, (uint32_t)h);
        ihdr[8] = 8;  /* bit depth */
        ihdr[9] = 2;  /* RGB */
        ihdr[10] = ihdr[11] = ihdr[12] = 0;
        if (fwrite(sig, 1, 8, fp) != 8 || chunk(fp, "IHDR", ihdr, 13) || chunk(fp, "IDAT", z, (uint32_t)zlen) ||
            chunk(fp, "IEND", NULL, 0))
            rc = mg_error_set(err, MG_EIO, "writing %s failed (disk full?)", what);
    }
    free(raw), free(z);
    return rc;
}

int mg_png_write_rgb(const char *path, int w, int h, const uint8_t *rgb, mg_error *err)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return mg_error_set(err, MG_EIO, "cannot create %s: %s", path, strerror(errno));
    int rc = png_to(fp, path, w, h, rgb, err);
    if (fclose(fp) && !rc)
        rc = mg_error_set(err, MG_EIO, "writing %s failed (disk full?)", path);
    return rc;
}

int mg_png_encode_rgb(int w, int h, const uint8_t *rgb, uint8_t **out, size_t *len, mg_error *err)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *fp = open_memstream(&buf, &n);
    if (!fp)
        return mg_error_set(err, MG_ENOMEM, "out of memory for a picture");
    int rc = png_to(fp, "a picture", w, h, rgb, err);
    if (fclose(fp) && !rc)
        rc = mg_error_set(err, MG_ENOMEM, "out of memory for a picture");
    if (rc) {
        free(buf);
        return rc;
    }
    *out = (uint8_t *)buf;
    *len = n;
    return 0;
}

void mg_png_colour(double t, uint8_t *rgb)
{
    /* piecewise linear through five stops: readable in print and for most colour-blind readers */
    static const double stop[5][3] = {
        {0.07, 0.03, 0.30}, {0.15, 0.35, 0.60}, {0.10, 0.62, 0.55}, {0.55, 0.80, 0.25}, {0.99, 0.91, 0.15}};
    if (!(t > 0))
        t = 0;
    if (t > 1)
        t = 1;
    double s = t * 4;
    int i = s >= 4 ? 3 : (int)s;
    double f = s - i;
    for (int k = 0; k < 3; k++)
        rgb[k] = (uint8_t)(255 * (stop[i][k] + (stop[i + 1][k] - stop[i][k]) * f) + 0.5);
}

/* 5x7 glyphs, one byte per row, bit 4 = leftmost column. */
static const struct {
    char c;
    uint8_t rows[7];
} FONT[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}}, {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}}, {':', {0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00}},
    {'/', {0x01, 0x01, 0x02, 0x04, 0x08, 0x10, 0x10}}, {'=', {0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00}},
    {'%', {0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03}}, {'(', {0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02}},
    {')', {0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08}}, {'_', {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F}},
    {'A', {0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}}, {'B', {0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E}},
    {'C', {0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E}}, {'D', {0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C}},
    {'E', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F}}, {'F', {0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10}},
    {'G', {0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F}}, {'H', {0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11}},
    {'I', {0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'J', {0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C}},
    {'K', {0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11}}, {'L', {0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F}},
    {'M', {0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11}}, {'N', {0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11}},
    {'O', {0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'P', {0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10}},
    {'Q', {0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D}}, {'R', {0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11}},
    {'S', {0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E}}, {'T', {0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04}},
    {'U', {0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E}}, {'V', {0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04}},
    {'W', {0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A}}, {'X', {0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11}},
    {'Y', {0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04}}, {'Z', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F}},
};

int mg_png_text(uint8_t *rgb, int w, int h, int x, int y, const char *text, int scale, const uint8_t *colour)
{
    int x0 = x;
    for (const char *p = text; *p; p++, x += 6 * scale) {
        char c = *p >= 'a' && *p <= 'z' ? (char)(*p - 'a' + 'A') : *p;
        const uint8_t *rows = NULL;
        for (size_t k = 0; k < sizeof FONT / sizeof *FONT && !rows; k++)
            if (FONT[k].c == c)
                rows = FONT[k].rows;
        if (!rows)
            continue; /* space and anything unknown: a gap */
        for (int r = 0; r < 7; r++)
            for (int col = 0; col < 5; col++)
                if (rows[r] & (0x10 >> col))
                    for (int dy = 0; dy < scale; dy++)
                        for (int dx = 0; dx < scale; dx++) {
                            int px = x + col * scale + dx, py = y + r * scale + dy;
                            if (px >= 0 && px < w && py >= 0 && py < h)
                                memcpy(rgb + ((size_t)py * (size_t)w + (size_t)px) * 3, colour, 3);
                        }
    }
    return x - x0;
}
