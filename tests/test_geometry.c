/* test_geometry.c - every raw pixel lands where the JUNGFRAU geometry says;
 * split big pixels add up to the original; specials are copied; gaps and
 * big pixels are marked in the mask; detector sizes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "morgul/geometry.h"
#include "morgul/jungfrau.h"

static void test_sizes(void)
{
    mg_detector d;
    mg_geometry_config cfg;
    mg_geometry_defaults(&cfg);
    mg_geometry g;
    /* a 4M: 4 module rows x 2 module columns */
    char ini[] = "/tmp/morgul-geom-XXXXXX";
    int fd = mkstemp(ini);
    const char *text = "[detector]\nname = jf4m\n"
                       "[a]\nmodule = M1\nposition = 00\n[b]\nmodule = M2\nposition = 01\n"
                       "[c]\nmodule = M3\nposition = 10\n[d]\nmodule = M4\nposition = 11\n"
                       "[e]\nmodule = M5\nposition = 20\n[f]\nmodule = M6\nposition = 21\n"
                       "[g]\nmodule = M7\nposition = 30\n[h]\nmodule = M8\nposition = 31\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    mg_error e = {0};
    CHECK_EQ(mg_detector_load(&d, ini, &e), 0);
    unlink(ini);
    CHECK_EQ(mg_geometry_init(&g, &d, &cfg, &e), 0);
    CHECK_EQ(g.width, 2068);
    CHECK_EQ(g.height, 2164);
    /* module row 0 at the bottom, column 1 on the right */
    CHECK_EQ(g.y0[0], 3 * (514 + 36));
    CHECK_EQ(g.x0[1], 1030 + 8);
    CHECK_EQ(g.y0[7], 0);
    cfg.raw_layout = 1;
    CHECK_EQ(mg_geometry_init(&g, &d, &cfg, &e), 0);
    CHECK(g.width == 1024 && g.height == 8 * 512);
}

static int is_big(int i, int n) { return (i % 256 == 255 && i < n - 1) || (i % 256 == 0 && i > 0); }

static void test_every_pixel_lands_right(void)
{
    mg_detector d;
    mg_detector_simple(&d, "t", 2, 1, "127.0.0.1", 50001, NULL, NULL);
    for (int flip = 0; flip <= 1; flip++) {
        mg_geometry_config cfg;
        mg_geometry_defaults(&cfg);
        cfg.flip_rows = flip;
        mg_geometry g;
        mg_geometry_init(&g, &d, &cfg, NULL);
        CHECK(g.width == 1030 && g.height == 2 * 514 + 36);
        int32_t *img = malloc((size_t)g.width * (size_t)g.height * 4);
        int32_t *mod = malloc((size_t)MG_MODULE_PIXELS * 4);
        mg_geometry_fill_gaps(&g, img, MG_OUT_INT32);
        for (int m = 0; m < 2; m++) {
            for (int i = 0; i < MG_MODULE_PIXELS; i++)
                mod[i] = i * 4 + 400 + m; /* divisible into 4 parts only for our check below */
            mg_geometry_place(&g, m, mod, img, MG_OUT_INT32);
        }
        long bad = 0;
        for (int m = 0; m < 2; m++)
            for (int r = 0; r < MG_MODULE_ROWS; r++)
                for (int c = 0; c < MG_MODULE_COLS; c++) {
                    /* the facts' formula, then flip and place */
                    int er = r + 2 * (r / 256), ec = c + 2 * (c / 256);
                    if (r % 256 == 0 && r > 0)
                        er--; /* a big pixel's first part is one before its mapped position */
                    if (c % 256 == 0 && c > 0)
                        ec--;
                    int nr = is_big(r, 512) ? 2 : 1, nc = is_big(c, 1024) ? 2 : 1;
                    int y = flip ? g.y0[m] + 513 - er - (nr - 1) : g.y0[m] + er, x = g.x0[m] + ec;
                    int32_t v = (r * 1024 + c) * 4 + 400 + m, sum = 0;
                    for (int a = 0; a < nr; a++)
                        for (int b = 0; b < nc; b++)
                            sum += img[(size_t)(y + a) * (size_t)g.width + (size_t)(x + b)];
                    bad += sum != v;
                    int wy, wx;
                    mg_geometry_where(&g, m, r, c, &wy, &wx);
                    bad += wy != y || wx != x;
                }
        CHECK_EQ(bad, 0);
        /* module 1 (row 1) is on top, module 0 below the 36-row gap */
        CHECK_EQ(g.y0[1], 0);
        CHECK_EQ(img[(size_t)514 * (size_t)g.width + 5], MG_INT32_INVALID); /* gap */
        free(img);
        free(mod);
    }
}

static void test_splits_add_up(void)
{
    mg_detector d;
    mg_detector_simple(&d, "t", 1, 1, "127.0.0.1", 50001, NULL, NULL);
    mg_geometry_config cfg;
    mg_geometry_defaults(&cfg);
    cfg.flip_rows = 0;
    mg_geometry g;
    mg_geometry_init(&g, &d, &cfg, NULL);
    int16_t *mod = calloc(MG_MODULE_PIXELS, 2), *img = calloc((size_t)g.width * (size_t)g.height, 2);
    float *modf = calloc(MG_MODULE_PIXELS, 4), *imgf = calloc((size_t)g.width * (size_t)g.height, 4);
    /* a big edge pixel (255, 10), a corner (255, 255), specials */
    const int16_t vals[] = {7, -7, 3, -3, 1, 0, 32767, -32768, 13};
    for (size_t k = 0; k < sizeof vals / sizeof *vals; k++) {
        mod[255 * 1024 + 10] = vals[k];
        mod[255 * 1024 + 255] = vals[k];
        modf[255 * 1024 + 255] = (float)vals[k];
        mg_geometry_place(&g, 0, mod, img, MG_OUT_INT16);
        mg_geometry_place(&g, 0, modf, imgf, MG_OUT_FLOAT32);
        int16_t e0 = img[255 * 1030 + 10], e1 = img[256 * 1030 + 10];
        int16_t c0 = img[255 * 1030 + 255], c1 = img[255 * 1030 + 256], c2 = img[256 * 1030 + 255],
                c3 = img[256 * 1030 + 256];
        if (vals[k] == 32767 || vals[k] == -32768) {
            CHECK(e0 == vals[k] && e1 == vals[k] && c0 == vals[k] && c3 == vals[k]);
        } else {
            CHECK_EQ(e0 + e1, vals[k]);
            CHECK_EQ(c0 + c1 + c2 + c3, vals[k]);
            CHECK(abs(e0 - e1) <= 1);
            CHECK(abs(c0 - c3) <= 1);
            CHECK(fabsf(imgf[255 * 1030 + 255] * 4 - (float)vals[k]) < 1e-6f);
        }
    }
    CHECK_EQ(img[255 * 1030 + 10], 7); /* 13 -> 7 + 6: the first part takes the extra */
    free(mod);
    free(img);
    free(modf);
    free(imgf);
}

static void test_mask_and_mask_big(void)
{
    mg_detector d;
    mg_detector_simple(&d, "t", 2, 1, "127.0.0.1", 50001, NULL, NULL);
    mg_geometry_config cfg;
    mg_geometry_defaults(&cfg);
    cfg.mask_big = 1;
    mg_geometry g;
    mg_geometry_init(&g, &d, &cfg, NULL);
    uint32_t *mm = calloc(MG_MODULE_PIXELS, 4), *img = malloc((size_t)g.width * (size_t)g.height * 4);
    mm[3 * 1024 + 4] = 1u << 4; /* a noisy pixel of module 1 */
    const uint32_t *masks[2] = {NULL, mm};
    mg_geometry_mask(&g, masks, img);
    int y, x;
    mg_geometry_where(&g, 1, 3, 4, &y, &x);
    CHECK_EQ(img[(size_t)y * (size_t)g.width + (size_t)x], 1u << 4);
    mg_geometry_where(&g, 0, 100, 255, &y, &x);
    CHECK_EQ(img[(size_t)y * (size_t)g.width + (size_t)x], MG_MASK_VIRTUAL);
    CHECK_EQ(img[(size_t)y * (size_t)g.width + (size_t)x + 1], MG_MASK_VIRTUAL);
    CHECK_EQ(img[(size_t)514 * (size_t)g.width], MG_MASK_GAP);
    long gaps = 0;
    for (size_t i = 0; i < (size_t)g.width * (size_t)g.height; i++)
        gaps += img[i] == MG_MASK_GAP;
    CHECK_EQ(gaps, 36L * 1030);
    int16_t *mod = malloc(MG_MODULE_PIXELS * 2), *im = malloc((size_t)g.width * (size_t)g.height * 2);
    for (int i = 0; i < MG_MODULE_PIXELS; i++)
        mod[i] = 5;
    mg_geometry_place(&g, 0, mod, im, MG_OUT_INT16);
    mg_geometry_where(&g, 0, 10, 256, &y, &x);
    CHECK_EQ(im[(size_t)y * (size_t)g.width + (size_t)x], MG_INT16_INVALID);
    mg_geometry_where(&g, 0, 10, 250, &y, &x);
    CHECK_EQ(im[(size_t)y * (size_t)g.width + (size_t)x], 5);
    free(mm);
    free(img);
    free(mod);
    free(im);
}

int main(void)
{
    RUN(test_sizes);
    RUN(test_every_pixel_lands_right);
    RUN(test_splits_add_up);
    RUN(test_mask_and_mask_big);
    return CHECK_DONE();
}
