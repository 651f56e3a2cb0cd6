/* test_calstore.c - times as users type them; PNG files decode back to
 * the pixels written (zlib, CRCs); the colour scale's ends. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "morgul/calstore.h"
#include "morgul/png.h"

static void test_time_parse(void)
{
    double t = 0;
    CHECK(!mg_time_parse("2026-11-21T07:16:00Z", &t) && t == 1795245360.0);
    CHECK(!mg_time_parse("2026-11-21 07:16", &t) && t == 1795245360.0);
    CHECK(!mg_time_parse("2026-11-21T07:16:30.5", &t) && t == 1795245390.5);
    CHECK(!mg_time_parse("2026-11-21", &t) && t == 1795219200.0);
    CHECK(!mg_time_parse("1700000000", &t) && t == 1700000000.0);
    CHECK(!mg_time_parse("now", &t) && t > 1.7e9);
    CHECK(mg_time_parse("yesterday", &t) == -1);
    CHECK(mg_time_parse("2026-13-01", &t) == -1);
    CHECK(mg_time_parse("2026-11-21T25:00", &t) == -1);
    CHECK(mg_time_parse("2026-11-21T07:16:00+02", &t) == -1);
    CHECK(mg_time_parse("", &t) == -1);
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static void test_png_round_trip(void)
{
    const int w = 37, h = 11;
    uint8_t *rgb = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++)
        rgb[i] = (uint8_t)(i * 7);
    char path[] = "/tmp/morgul-test-png-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    mg_error err = {0};
    CHECK(mg_png_write_rgb(path, w, h, rgb, &err) == 0);
    FILE *fp = fopen(path, "rb");
    uint8_t buf[1 << 16];
    size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
    if (fp)
        fclose(fp);
    CHECK(n > 8 && !memcmp(buf, "\x89PNG\r\n\x1a\n", 8));
    uint8_t idat[1 << 16];
    size_t ilen = 0, pos = 8;
    int chunks = 0;
    while (pos + 12 <= n) {
        uint32_t len = be32(buf + pos);
        CHECK(be32(buf + pos + 8 + len) == (uint32_t)crc32(0, buf + pos + 4, len + 4));
        if (!memcmp(buf + pos + 4, "IHDR", 4))
            CHECK(be32(buf + pos + 8) == (uint32_t)w && be32(buf + pos + 12) == (uint32_t)h);
        if (!memcmp(buf + pos + 4, "IDAT", 4)) {
            memcpy(idat + ilen, buf + pos + 8, len);
            ilen += len;
        }
        pos += 12 + len;
        chunks++;
    }
    CHECK_EQ(chunks, 3);
    uint8_t raw[(37 * 3 + 1) * 11];
    uLongf rlen = sizeof raw;
    CHECK(uncompress(raw, &rlen, idat, ilen) == Z_OK && rlen == sizeof raw);
    int same = 1;
    for (int y = 0; y < h; y++)
        same &= raw[y * (w * 3 + 1)] == 0 && !memcmp(raw + y * (w * 3 + 1) + 1, rgb + y * w * 3, (size_t)w * 3);
    CHECK(same);
    CHECK(mg_png_write_rgb("/nonexistent-dir/x.png", w, h, rgb, &err) != 0 && strstr(err.message, "cannot create"));
    unlink(path);
    close(fd);
    free(rgb);
}

static void test_colour_and_text(void)
{
    uint8_t a[3], b[3], c[3];
    mg_png_colour(-5, a);
    mg_png_colour(0, b);
    CHECK(!memcmp(a, b, 3)); /* clamped */
    mg_png_colour(1, c);
    CHECK(c[0] > 200 && c[1] > 200 && b[2] > b[0]); /* yellow top, blue bottom */
    uint8_t img[40 * 10 * 3] = {0};
    const uint8_t white[3] = {255, 255, 255};
    CHECK_EQ(mg_png_text(img, 40, 10, 0, 0, "1.5", 1, white), 18);
    int lit = 0;
    for (int i = 0; i < 40 * 10 * 3; i++)
        lit += img[i] == 255;
    CHECK(lit > 0 && lit < 40 * 10 * 3);
    mg_png_text(img, 40, 10, 35, 8, "88", 2, white); /* clipped at the edges, no overrun */
}

int main(void)
{
    RUN(test_time_parse);
    RUN(test_png_round_trip);
    RUN(test_colour_and_text);
    return CHECK_DONE();
}
