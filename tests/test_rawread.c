/* test_rawread.c - raw frames read back: morgul's chunks through the
 * direct path (fetch under the caller's lock, decode outside it) equal
 * what was written, across data files; a data file gone since the run was
 * opened is an error naming it, never zeros. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "morgul/bitshuffle.h"
#include "morgul/detector.h"
#include "morgul/jungfrau.h"
#include "morgul/checksum.h"
#include "morgul/rawfile.h"
#include "morgul/rawread.h"

#define P ((size_t)MG_MODULE_PIXELS)
#define FRAMES 5

static uint16_t word(size_t k, size_t p) { return (uint16_t)((p * 2654435761u + k * 40503u) >> 7); }

/* FRAMES frames of 2 modules in data files of 2 frames each */
static void write_run(const char *prefix)
{
    mg_detector d;
    mg_error e = {0};
    mg_detector_simple(&d, "t", 2, 1, "127.0.0.1", 50001, NULL, NULL);
    mg_rawfile_config cfg = {.prefix = prefix, .det = &d, .frames_per_file = 2, .overwrite = 1};
    mg_rawfile *f = mg_rawfile_create(&cfg, &e);
    CHECK(f != NULL);
    uint16_t *raw = malloc(2 * P * 2);
    size_t cap = mg_bshuf_bound(2 * P, 2);
    uint8_t *chunk = malloc(cap);
    mg_bshuf_ctx *bs = mg_bshuf_ctx_new(2, MG_BSHUF_AUTO, &e);
    for (size_t k = 0; f && k < FRAMES; k++) {
        mg_module_frame rec[2];
        memset(rec, 0, sizeof rec);
        for (int m = 0; m < 2; m++) {
            rec[m].frame_number = k + 1;
            rec[m].packets = MG_PACKETS_PER_MODULE;
            memset(rec[m].mask, 0xFF, 16);
        }
        for (size_t p = 0; p < 2 * P; p++)
            raw[p] = word(k, p);
        int64_t n = mg_bshuf_compress(bs, raw, 2 * P, chunk, cap, &e);
        CHECK(n > 0);
        CHECK_EQ(mg_rawfile_write(f, (int64_t)k, rec, chunk, mg_crc32c(0, chunk, (size_t)n), (size_t)n, &e), 0);
    }
    CHECK_EQ(f ? mg_rawfile_close(f, NULL, 0, &e) : -1, 0);
    mg_bshuf_ctx_free(bs);
    free(raw);
    free(chunk);
}

static int frame_ok(const uint16_t *raw, size_t k)
{
    for (size_t p = 0; p < 2 * P; p++)
        if (raw[p] != word(k, p))
            return 0;
    return 1;
}

static void test_direct_and_missing_file(void)
{
    char dir[] = "/tmp/morgul-rawread-XXXXXX", prefix[64], master[96], third[96];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(prefix, sizeof prefix, "%s/run", dir);
    write_run(prefix);
    snprintf(master, sizeof master, "%s_master.h5", prefix);
    snprintf(third, sizeof third, "%s_data_000003.h5", prefix);
    mg_error e = {0};
    const char *paths[1] = {master};
    mg_rawread *r = mg_rawread_open(paths, 1, NULL, &e);
    CHECK(r != NULL);
    if (!r)
        return;
    CHECK_EQ(mg_rawread_frames(r), FRAMES);
    uint16_t *raw = malloc(2 * P * 2);
    mg_rawread_buf *b = mg_rawread_buf_new(&e);
    /* out of order, across the three data files, in two steps and in one */
    const size_t order[] = {3, 0, 1, 4, 2};
    for (int j = 0; j < FRAMES; j++) {
        memset(raw, 0, 2 * P * 2);
        CHECK_EQ(mg_rawread_fetch(r, order[j], b, raw, &e), 0);
        CHECK_EQ(mg_rawread_decode(b, raw, &e), 0);
        CHECK(frame_ok(raw, order[j]));
        memset(raw, 0, 2 * P * 2);
        CHECK_EQ(mg_rawread_frame(r, order[j], raw, &e), 0);
        CHECK(frame_ok(raw, order[j]));
    }
    CHECK(mg_rawread_decode(b, raw, &e) == MG_EINVAL); /* nothing fetched */
    /* the third data file (frame 4) removed after opening: an error naming it; the others still read */
    CHECK_EQ(unlink(third), 0);
    mg_rawread_close(r);
    r = mg_rawread_open(paths, 1, NULL, &e); /* opening checks every data file */
    CHECK(r == NULL && strstr(e.message, "data_000003.h5"));
    write_run(prefix);
    r = mg_rawread_open(paths, 1, NULL, &e);
    CHECK(r != NULL);
    CHECK_EQ(r ? mg_rawread_frame(r, 0, raw, &e) : -1, 0);
    CHECK_EQ(unlink(third), 0);
    memset(&e, 0, sizeof e);
    CHECK_EQ(r ? mg_rawread_frame(r, 4, raw, &e) : -1, MG_EIO);
    CHECK(strstr(e.message, "frame 4") && strstr(e.message, "data_000003.h5"));
    CHECK_EQ(r ? mg_rawread_frame(r, 2, raw, &e) : -1, 0);
    CHECK(frame_ok(raw, 2));
    mg_rawread_buf_free(b);
    mg_rawread_close(r);
    free(raw);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ(system(cmd), 0);
}

int main(void)
{
    RUN(test_direct_and_missing_file);
    return CHECK_DONE();
}
