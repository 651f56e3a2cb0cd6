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
    mg_conv_tables *t = mg_calib_tables(ra, 12.4, NULL, -1, &e);
    CHECK(t != NULL);
    if (t) {
        CHECK(isnan(t->pedestal[0][7]) && !isnan(t->pedestal[0][8]));
        CHECK(fabsf(t->factor[0][8] - (float)(1.0 / (41.0 * 12.4))) < 1e-9f);
        mg_conv_tables_free(t);
    }
    CHECK(mg_calib_tables(rb, 12.4, NULL, -1, &e) == NULL);
    CHECK(strstr(e.message, "M418 has no pedestals") != NULL);
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

int main(void)
{
    RUN(test_roundtrip_and_check);
    return CHECK_DONE();
}
