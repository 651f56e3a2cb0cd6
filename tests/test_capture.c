/* test_capture.c - pcap writing and reading: what is written reads back;
 * non-UDP records are skipped and counted; truncated files end with an
 * error after the good records. */
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "morgul/capture.h"

static void test_roundtrip_and_truncation(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/morgul-cap-%d.pcap", (int)getpid());
    unlink(path);
    mg_error e = {0};
    mg_capture_writer *w = mg_capture_create(path, 0, &e);
    CHECK(w != NULL);
    uint8_t payload[8240];
    for (int i = 0; i < 5; i++) {
        memset(payload, i, sizeof payload);
        CHECK_EQ(mg_capture_write(w, 0x7F000002u, 0x7F000001u, 1234, (uint16_t)(50001 + i), payload,
                                  (size_t)(100 + i * 2000), 1000000000ull + (uint64_t)i, &e), 0);
    }
    CHECK_EQ(mg_capture_finish(w, &e), 0);
    CHECK(mg_capture_create(path, 0, &e) == NULL); /* exists */
    CHECK(strstr(e.message, "--overwrite") != NULL);

    mg_capture *c = mg_capture_open(path, &e);
    CHECK(c != NULL);
    CHECK(!strcmp(mg_capture_link_type(c), "EN10MB"));
    const uint8_t *p;
    size_t len;
    uint16_t port;
    uint64_t ts;
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(mg_capture_next(c, &p, &len, &port, &ts, &e), 1);
        CHECK_EQ(len, 100 + i * 2000);
        CHECK_EQ(port, 50001 + i);
        CHECK_EQ(ts, 1000000000ull + (uint64_t)i);
        CHECK_EQ(p[len - 1], i);
    }
    CHECK_EQ(mg_capture_next(c, &p, &len, &port, &ts, &e), 0);
    mg_capture_close(c);

    /* cut the file inside the fourth record */
    FILE *f = fopen(path, "r+b");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK_EQ(truncate(path, size - (16 + 42 + 8100) - 3000), 0); /* the last record is 8158 bytes */
    c = mg_capture_open(path, &e);
    int got = 0, rc;
    while ((rc = mg_capture_next(c, &p, &len, &port, &ts, &e)) == 1)
        got++;
    CHECK_EQ(got, 3);
    CHECK(rc == MG_EFORMAT);
    CHECK(strstr(e.message, "after 3 records") != NULL);
    mg_capture_close(c);
    unlink(path);
    CHECK(mg_capture_open("/nonexistent.pcap", &e) == NULL);
}

int main(void)
{
    RUN(test_roundtrip_and_truncation);
    return CHECK_DONE();
}
