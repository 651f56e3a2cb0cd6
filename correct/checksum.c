/* checksum.c - CRC-32C (see morgul/checksum.h). */
#include "morgul/checksum.h"

#include <string.h>

#define POLY 0x82F63B78u /* reflected Castagnoli */

static uint32_t table[8][256];
static int have_table;

/* Slicing by 8: eight bytes per step from eight tables. */
static void make_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
    __atomic_store_n(&have_table, 1, __ATOMIC_RELEASE);
}

static uint32_t crc_table(uint32_t c, const uint8_t *p, size_t n)
{
    if (!__atomic_load_n(&have_table, __ATOMIC_ACQUIRE))
        make_tables(); /* idempotent: two threads building it write the same values */
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= c;
        c = table[7][w & 0xFF] ^ table[6][(w >> 8) & 0xFF] ^ table[5][(w >> 16) & 0xFF] ^
            table[4][(w >> 24) & 0xFF] ^ table[3][(w >> 32) & 0xFF] ^ table[2][(w >> 40) & 0xFF] ^
            table[1][(w >> 48) & 0xFF] ^ table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ table[0][(c ^ *p++) & 0xFF];
    return c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

/* One stream of 8-byte steps: the instruction's 3-cycle latency gives
 * about 8 bytes per 3 cycles, several GB/s; a frame's chunk is checked in
 * well under a millisecond. */
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c64 = c;
    while (n && ((uintptr_t)p & 7)) {
        c64 = _mm_crc32_u8((uint32_t)c64, *p++);
        n--;
    }
    while (n >= 32) {
        uint64_t w[4];
        memcpy(w, p, 32);
        c64 = _mm_crc32_u64(c64, w[0]);
        c64 = _mm_crc32_u64(c64, w[1]);
        c64 = _mm_crc32_u64(c64, w[2]);
        c64 = _mm_crc32_u64(c64, w[3]);
        p += 32;
        n -= 32;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = _mm_crc32_u64(c64, w);
        p += 8;
        n -= 8;
    }
    while (n--)
        c64 = _mm_crc32_u8((uint32_t)c64, *p++);
    return (uint32_t)c64;
}
#endif

uint32_t mg_crc32c(uint32_t crc, const void *p, size_t n)
{
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("sse4.2"))
        return ~crc_hw(c, p, n);
#endif
    return ~crc_table(c, p, n);
}

uint32_t mg_crc32c_portable(uint32_t crc, const void *p, size_t n)
{
    return ~crc_table(~crc, p, n);
}
