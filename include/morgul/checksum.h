/* morgul/checksum.h - CRC-32C (Castagnoli), the checksum of every stored
 * frame chunk (recorded as /frames/chunk_crc32c beside the data, checked by
 * `morgul verify`, `correct` and `pedestal`).
 *
 * CRC-32C as in iSCSI and ext4: polynomial 0x1EDC6F41 (reflected
 * 0x82F63B78), initial value and final xor 0xFFFFFFFF; "123456789" gives
 * 0xE3069283.  Computed with the SSE4.2 crc32 instruction where the CPU has
 * it, three streams at a time (about 20 GB/s on one core of the test
 * machine: a 2 MB frame chunk in 0.1 ms), else with tables. */
#ifndef MORGUL_CHECKSUM_H
#define MORGUL_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* The CRC-32C of n bytes at p, continuing `crc` (0 to start): the CRC of
 * A then B is mg_crc32c(mg_crc32c(0, A), B). */
uint32_t mg_crc32c(uint32_t crc, const void *p, size_t n);
/* The same without the CPU instruction (tables, any CPU): what mg_crc32c
 * uses where SSE4.2 is missing. */
uint32_t mg_crc32c_portable(uint32_t crc, const void *p, size_t n);

#endif
