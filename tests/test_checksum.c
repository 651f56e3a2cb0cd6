/* test_checksum.c - CRC-32C: the standard check value, chaining, every
 * length and alignment against a bit-at-a-time reference (short buffers,
 * and long ones through the three joined streams), the portable version
 * equal, and a single flipped bit always caught. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "morgul/checksum.h"

/* the definition, one bit at a time */
static uint32_t reference(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    }
    return ~c;
}

static void test_check_value(void)
{
    CHECK_EQ(mg_crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ(mg_crc32c(0, "", 0), 0);
    /* 32 zero bytes: the iSCSI test vector (RFC 3720 B.4) */
    uint8_t z[32] = {0};
    CHECK_EQ(mg_crc32c(0, z, 32), 0x8A9136AAu);
}

static void test_lengths_and_alignment(void)
{
    static uint8_t buf[4200];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += n < 80 ? 1 : 97) {
            CHECK_EQ(mg_crc32c(0, buf + off, n), reference(buf + off, n));
            CHECK_EQ(mg_crc32c_portable(0, buf + off, n), reference(buf + off, n));
        }
    /* chained pieces give the whole */
    uint32_t c = mg_crc32c(0, buf, 1000);
    c = mg_crc32c(c, buf + 1000, 3);
    c = mg_crc32c(c, buf + 1003, 3197);
    CHECK_EQ(c, mg_crc32c(0, buf, 4200));
    /* any one flipped bit changes it */
    uint32_t whole = mg_crc32c(0, buf, sizeof buf);
    for (size_t bit = 0; bit < 8 * sizeof buf; bit += 37) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        CHECK(mg_crc32c(0, buf, sizeof buf) != whole);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}

/* past three 8 KiB streams: the joined streams against the one-stream definition */
static void test_long_buffers(void)
{
    static uint8_t buf[100000];
    uint32_t x = 777;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    const size_t lengths[] = {24575, 24576, 24577, 49152, 49159, 73727, 99990};
    for (size_t off = 0; off < 4; off++)
        for (size_t k = 0; k < sizeof lengths / sizeof *lengths; k++) {
            CHECK_EQ(mg_crc32c(0, buf + off, lengths[k]), reference(buf + off, lengths[k]));
            CHECK_EQ(mg_crc32c(0, buf + off, lengths[k]), mg_crc32c_portable(0, buf + off, lengths[k]));
        }
    uint32_t c = mg_crc32c(0, buf, 30000);
    CHECK_EQ(mg_crc32c(c, buf + 30000, 70000), mg_crc32c(0, buf, 100000));
}

int main(void)
{
    RUN(test_check_value);
    RUN(test_lengths_and_alignment);
    RUN(test_long_buffers);
    return CHECK_DONE();
}
