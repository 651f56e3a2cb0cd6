/* test_calibration.c - the calibration file round-trips; a calibration that
 * does not fit the detector is refused naming what is missing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "morgul/badpixel.h"
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

/* Constants no real module shows are masked with their reason and counted;
 * a module mostly made of them is refused naming the counts; a gain map
 * judged again loses the gain bits of the last judgement. */
static void test_validate(void)
{
    mg_calibration c;
    mg_calib_init(&c);
    mg_module_calib *a = mg_calib_module(&c, "M420", 0, 0);
    a->gain = malloc(3 * P * sizeof(double));
    a->pedestal = malloc(3 * P * sizeof(float));
    for (size_t i = 0; i < P; i++) {
        a->gain[i] = 41;
        a->gain[P + i] = -1.44;
        a->gain[2 * P + i] = -0.115;
        a->pedestal[i] = 3000;
        a->pedestal[P + i] = 14000;
        a->pedestal[2 * P + i] = NAN; /* unknown: not an issue */
    }
    a->gain[10] = INFINITY;
    a->gain[11] = 0;
    a->gain[P + 12] = 1.44;        /* wrong sign */
    a->gain[2 * P + 13] = NAN;
    a->pedestal[14] = 0;           /* PSI's bad pixel */
    a->pedestal[P + 15] = 16383;
    a->pedestal[P + 10] = INFINITY; /* pixel 10 counted once */
    mg_calib_issues is;
    mg_error e = {0};
    CHECK(mg_calib_validate(a, MG_CALIB_MAX_UNUSABLE, &is, &e) == 0);
    CHECK(is.gain[0] == 2 && is.gain[1] == 1 && is.gain[2] == 1);
    CHECK(is.pedestal[0] == 1 && is.pedestal[1] == 2 && is.pedestal[2] == 0);
    CHECK(is.unusable == 6);
    CHECK(a->mask != NULL);
    CHECK(a->mask[10] == (MG_MASK_GAIN(0) | MG_MASK_PEDESTAL_RANGE));
    CHECK(a->mask[11] == MG_MASK_GAIN(0) && a->mask[12] == MG_MASK_GAIN(1) && a->mask[13] == MG_MASK_GAIN(2));
    CHECK(a->mask[14] == MG_MASK_PEDESTAL_RANGE && a->mask[15] == MG_MASK_PEDESTAL_RANGE);
    CHECK(a->mask[16] == 0);

    /* the gain fixed and judged again: its bit goes, the pedestal's stays */
    a->gain[11] = 40;
    CHECK(mg_calib_validate(a, MG_CALIB_MAX_UNUSABLE, &is, &e) == 0);
    CHECK(a->mask[11] == 0 && a->mask[14] == MG_MASK_PEDESTAL_RANGE && is.unusable == 5);

    /* a map in eV instead of keV: every G0 gain 1000 times too large */
    for (size_t i = 0; i < P; i++)
        a->gain[i] *= 1000;
    CHECK(mg_calib_validate(a, MG_CALIB_MAX_UNUSABLE, &is, &e) == MG_EDATA);
    CHECK(is.gain[0] == P);
    CHECK(strstr(e.message, "module M420") && strstr(e.message, "100.0 %") && strstr(e.message, "G0 gain"));
    /* a looser limit lets it through, every pixel masked */
    CHECK(mg_calib_validate(a, 1.0, &is, &e) == 0 && a->mask[100] == MG_MASK_GAIN(0));

    /* nothing to judge: no issue */
    mg_module_calib *b = mg_calib_module(&c, "M418", 1, 0);
    CHECK(mg_calib_validate(b, MG_CALIB_MAX_UNUSABLE, &is, &e) == 0 && is.unusable == 0 && b->mask == NULL);
    mg_calib_free(&c);
}

int main(void)
{
    RUN(test_roundtrip_and_check);
    RUN(test_storage_cells);
    RUN(test_validate);
    return CHECK_DONE();
}
