/* test_calibration.c - the calibration file round-trips; a calibration that
 * does not fit the detector is refused naming what is missing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "morgul/calibration.h"
#include "morgul/convert.h"
#include "morgul/jungfrau.h"

#define P ((size_t)MG_MODULE_PIXELS)

static void test_roundtrip_and_check(void)
{
    mg_calibration c;
    mg_calib_init(&c);
    snprintf(c.detector, sizeof c.detector, "jf1m");
    mg_module_calib *a = mg_calib_module(&c, "M420", 0, 0);
    mg_module_calib *b = mg_calib_module(&c, "M418", 1, 0);
    CHECK(mg_calib_module(&c, "M420", 5, 5) == a);
    a->pedestal = malloc(3 * P * sizeof(float));
    a->gain = malloc(3 * P * sizeof(double));
    a->mask = calloc(P, sizeof(uint32_t));
    for (size_t i = 0; i < 3 * P; i++) {
        a->pedestal[i] = (float)i * 0.25f;
        a->gain[i] = i < P ? 41.0 : -1.5;
    }
    a->mask[7] = 1u << 4;
    b->gain = malloc(3 * P * sizeof(double));
    for (size_t i = 0; i < 3 * P; i++)
        b->gain[i] = 40;
    char path[64];
    snprintf(path, sizeof path, "/tmp/morgul-cal-%d.h5", (int)getpid());
    mg_error e = {0};
    CHECK_EQ(mg_calib_write(path, &c, &e), 0);
    mg_calibration r;
    CHECK_EQ(mg_calib_read(path, &r, &e), 0);
    CHECK(!strcmp(r.detector, "jf1m"));
    CHECK_EQ(r.nmodules, 2);
    mg_module_calib *ra = mg_calib_module(&r, "M420", 9, 9), *rb = mg_calib_module(&r, "M418", 9, 9);
    CHECK(ra->pedestal && memcmp(ra->pedestal, a->pedestal, 3 * P * sizeof(float)) == 0);
    CHECK(ra->gain && memcmp(ra->gain, a->gain, 3 * P * sizeof(double)) == 0);
    CHECK(ra->mask && ra->mask[7] == (1u << 4));
    CHECK(ra->pedestal_rms == NULL);
    CHECK_EQ(rb->row, 1);
    CHECK(rb->pedestal == NULL);

    mg_detector d;
    mg_detector_simple(&d, "jf1m", 2, 1, "127.0.0.1", 50001, "M420,M418", NULL);
    CHECK(mg_calib_check(&r, &d, &e) == MG_ECONFIG);
    CHECK(strstr(e.message, "M418 has no pedestals") != NULL);
    mg_detector_simple(&d, "jf1m", 2, 1, "127.0.0.1", 50001, "M420,M500", NULL);
    CHECK(mg_calib_check(&r, &d, &e) == MG_ECONFIG);
    CHECK(strstr(e.message, "no module M500") != NULL);
    mg_detector_simple(&d, "jf1m", 1, 1, "127.0.0.1", 50001, "M420", NULL);
    CHECK_EQ(mg_calib_check(&r, &d, &e), 0);
    /* tables from the calibration: the mask marks pixel 7 invalid */
    mg_module_tables mt;
    CHECK_EQ(mg_calib_tables(ra, 12.4, NULL, -1, &mt, &e), 0);
    CHECK_EQ(mt.cells, 1);
    const mg_conv_tables *t = mt.cell[0];
    CHECK(t != NULL);
    if (t) {
        CHECK(isnan(t->offset[0][mg_conv_slot(7)]) && !isnan(t->offset[0][mg_conv_slot(8)]));
        CHECK(fabsf(t->factor[0][mg_conv_slot(8)] - (float)(1.0 / (41.0 * 12.4))) < 1e-9f);
        /* without storage cells the one set serves frames of any cell */
        CHECK(mg_module_tables_pick(&mt, 0) == t);
        CHECK(mg_module_tables_pick(&mt, 15u << 8) == t);
    }
    mg_module_tables_free(&mt);
    CHECK(mg_calib_tables(rb, 12.4, NULL, -1, &mt, &e) != 0);
    CHECK(strstr(e.message, "M418 has no pedestals") != NULL);
    CHECK(mt.cell[0] == NULL);
    mg_calib_free(&r);
    mg_calib_free(&c);

    /* not a calibration file */
    FILE *f = fopen(path, "w");
    fputs("nonsense", f);
    fclose(f);
    CHECK(mg_calib_read(path, &r, &e) != 0);
    unlink(path);
    CHECK(mg_calib_read("/nonexistent.h5", &r, &e) == MG_EIO);
}

/* A module calibrated per storage cell: a leading cell dimension in the
 * file, one set of tables per cell, picked by the frame's DAQ bits 8-11. */
static void test_storage_cells(void)
{
    const int C = 3;
    mg_calibration c;
    mg_calib_init(&c);
    mg_module_calib *a = mg_calib_module(&c, "M420", 0, 0);
    a->mask = calloc(P, sizeof(uint32_t));
    a->mask[5] = 1u << 8; /* a user bit, before the module has cells */
    CHECK_EQ(mg_calib_set_cells(a, C), 0);
    CHECK_EQ(mg_calib_cells(a), C);
    CHECK(a->mask != NULL && a->pedestal == NULL);
    for (int k = 0; a->mask && k < C; k++)
        CHECK(a->mask[(size_t)k * P + 5] == (1u << 8)); /* copied to every cell */
    a->pedestal = malloc((size_t)C * 3 * P * sizeof(float));
    a->gain = malloc(3 * P * sizeof(double));
    for (size_t i = 0; i < (size_t)C * 3 * P; i++)
        a->pedestal[i] = (float)(1000 + (i / (3 * P)) * 100 + (i % P) % 7); /* cell k: 1000 + 100k + ... */
    for (size_t i = 0; i < 3 * P; i++)
        a->gain[i] = i < P ? 40.0 : -1.5;
    a->mask[2 * P + 9] = 1u << 4; /* noisy in cell 2 only */
    a->cell_frames[1][0] = 77;
    a->dark_frames[0] = 231;
    char path[64];
    snprintf(path, sizeof path, "/tmp/morgul-cells-%d.h5", (int)getpid());
    mg_error e = {0};
    CHECK_EQ(mg_calib_write(path, &c, &e), 0);
    mg_calib_header h;
    CHECK_EQ(mg_calib_peek(path, &h, &e), 0);
    CHECK_EQ(h.nmodules, 1);
    CHECK_EQ(h.cells[0], C);
    mg_calibration r;
    CHECK_EQ(mg_calib_read(path, &r, &e), 0);
    mg_module_calib *ra = mg_calib_find(&r, "M420");
    CHECK(ra != NULL);
    if (!ra)
        return;
    CHECK_EQ(mg_calib_cells(ra), C);
    CHECK(memcmp(ra->pedestal, a->pedestal, (size_t)C * 3 * P * sizeof(float)) == 0);
    CHECK(memcmp(ra->mask, a->mask, (size_t)C * P * sizeof(uint32_t)) == 0);
    CHECK(ra->cell_frames[1][0] == 77 && ra->dark_frames[0] == 231);
    uint32_t *all = malloc(P * sizeof(uint32_t));
    mg_calib_mask_all_cells(ra, all);
    CHECK(all[9] == (1u << 4) && all[5] == (1u << 8) && all[10] == 0);
    free(all);
    mg_module_tables mt;
    CHECK_EQ(mg_calib_tables(ra, 12.4, NULL, -1, &mt, &e), 0);
    CHECK_EQ(mt.cells, C);
    for (int k = 0; k < C; k++) {
        const mg_conv_tables *t = mg_module_tables_pick(&mt, (uint32_t)k << 8 | MG_DAQ_HIGH_GAIN);
        CHECK(t == mt.cell[k]);
        if (t)
            CHECK(t->offset[0][mg_conv_slot(8)] == (float)((double)(1000 + 100 * k + 8 % 7) * t->factor[0][mg_conv_slot(8)]));
        if (t)
            CHECK(isnan(t->offset[0][mg_conv_slot(9)]) == (k == 2)); /* each cell's own mask */
    }
    CHECK(mt.cell[2]->factor[0] == mt.cell[0]->factor[0]); /* one gain map: the cells share its factors */
    CHECK(mg_module_tables_pick(&mt, 3u << 8) == NULL); /* a cell it has no constants for */
    CHECK(mg_module_tables_pick(&mt, 15u << 8) == NULL);
    mg_module_tables_free(&mt);
    /* importing pedestals without cells into it is refused */
    CHECK(mg_pedestal_import_h5(path, "M420", ra, &e) == MG_ECONFIG);
    CHECK(strstr(e.message, "storage cell") != NULL);
    mg_calib_free(&r);
    mg_calib_free(&c);
    unlink(path);
}

int main(void)
{
    RUN(test_roundtrip_and_check);
    RUN(test_storage_cells);
    return CHECK_DONE();
}
