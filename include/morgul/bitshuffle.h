/* morgul/bitshuffle.h - bitshuffle + LZ4 chunks, HDF5 filter 32008.
 *
 * Produces and reads exactly the chunk format of the HDF5 bitshuffle filter
 * with LZ4 compression, so files written by morgul's direct chunk writes
 * decode with the standard plugin and vice versa:
 *
 *   8-byte big-endian uncompressed size in bytes
 *   4-byte big-endian block size in bytes (8192 by default)
 *   per block: 4-byte big-endian compressed size, then an LZ4 block of the
 *              bit-transposed block
 *   the last n mod 8 elements, raw
 *
 * A block of B elements (B a multiple of 8) is bit-transposed into
 * 8*elem_size bit planes of B/8 bytes: plane 8*j+b holds bit b of byte j of
 * every element, element i at byte i/8, bit i%8.  The last partial block is
 * cut down to a multiple of 8 elements.
 *
 * The transpose has a scalar reference, AVX2 and AVX-512 kernels; the
 * context picks one at run time (mg_bshuf_ctx_new).  Outputs are
 * byte-identical.
 * A context is not thread-safe: give each worker thread its own.
 */
#ifndef MORGUL_BITSHUFFLE_H
#define MORGUL_BITSHUFFLE_H

#include <stddef.h>
#include <stdint.h>

#include "morgul/error.h"

#define MG_BSHUF_FILTER_ID 32008
#define MG_BSHUF_HEADER_BYTES 12
#define MG_BSHUF_TARGET_BLOCK_BYTES 8192

typedef enum mg_bshuf_impl {
    MG_BSHUF_AUTO = 0, /* AVX-512 (F, BW and VBMI) if the CPU has it, else AVX2 if it has that, else scalar */
    MG_BSHUF_SCALAR,
    MG_BSHUF_AVX2,
    MG_BSHUF_AVX512,   /* element sizes 2 and 4; the others use the AVX2 kernels */
} mg_bshuf_impl;

typedef struct mg_bshuf_ctx mg_bshuf_ctx;

/* Creates a context for elements of `elem_size` bytes (1, 2, 4 or 8).
 * Asking for MG_BSHUF_AVX2 or MG_BSHUF_AVX512 on a CPU without it fails with
 * MG_EINVAL.  Every kernel gives the same bytes. */
mg_bshuf_ctx *mg_bshuf_ctx_new(size_t elem_size, mg_bshuf_impl impl, mg_error *err);
void mg_bshuf_ctx_free(mg_bshuf_ctx *ctx);

/* LZ4's acceleration for compression.  1 is LZ4's own default (the
 * reference plugin's choice): the chunks are the reference plugin's, byte for
 * byte.  morgul uses 8 by default, and above 1 it also leaves LZ4's search
 * out of a block's leading bit planes that look like noise (the low bits of
 * noisy pixels: few 0x00 or 0xFF bytes and no repeats at short or power-of-two
 * distances; the test is in correct/bitshuffle_kernels.h): they go into the
 * block as literals, which is what LZ4 makes of them anyway.  On real JUNGFRAU
 * frames that is 10 of 16 planes, and compression at 8 runs about 1.5x the
 * speed of 1 (x1.9 the reference plugin's) for chunks 0.5 % larger (measured
 * in docs/performance.md).  Every kernel writes the same chunk at any setting,
 * and the output is standard LZ4 that any bitshuffle reader decodes. */
#define MG_BSHUF_DEFAULT_ACCELERATION 8
void mg_bshuf_ctx_set_acceleration(mg_bshuf_ctx *ctx, int acceleration);
/* Whether noise planes go in as literals above acceleration 1 (on = 1, the
 * default) or LZ4 searches every plane (0: plain LZ4 at that acceleration,
 * for comparison). */
void mg_bshuf_ctx_set_noise_literals(mg_bshuf_ctx *ctx, int on);

/* The kernel the context uses: MG_BSHUF_SCALAR, MG_BSHUF_AVX2 or MG_BSHUF_AVX512. */
mg_bshuf_impl mg_bshuf_ctx_impl(const mg_bshuf_ctx *ctx);
/* Its name: "scalar", "AVX2", "AVX-512". */
const char *mg_bshuf_impl_name(mg_bshuf_impl impl);

/* True if this CPU can run the AVX2 kernels, the AVX-512 ones. */
int mg_cpu_has_avx2(void);
int mg_cpu_has_avx512(void);

/* The default block size in elements (8192 bytes' worth, a multiple of 8). */
size_t mg_bshuf_default_block(size_t elem_size);

/* Largest possible chunk for n elements, header included. */
size_t mg_bshuf_bound(size_t n, size_t elem_size);

/* Compresses n elements from `in` into a complete chunk at `out` (capacity
 * `cap`, at least mg_bshuf_bound()).  Returns the chunk size in bytes, or a
 * negative MG_E* code (err says why). */
int64_t mg_bshuf_compress(mg_bshuf_ctx *ctx, const void *in, size_t n, void *out, size_t cap,
                          mg_error *err);

/* The same chunk from `nblocks` separate pieces of exactly
 * mg_bshuf_default_block(elem_size) elements each (for uint16, 8192 bytes:
 * one JUNGFRAU packet's pixels), so a frame can be compressed from wherever
 * its packets lie without gathering them first. */
int64_t mg_bshuf_compress_blocks(mg_bshuf_ctx *ctx, const void *const *blocks, size_t nblocks, void *out, size_t cap,
                                 mg_error *err);

/* Decompresses a chunk of `len` bytes into `out`, which must hold exactly
 * `out_bytes` bytes (the chunk's stated size must equal it).  Every length in
 * the chunk is checked: a corrupt chunk returns MG_EFORMAT, never reads or
 * writes out of bounds.  Returns out_bytes or a negative code. */
int64_t mg_bshuf_decompress(mg_bshuf_ctx *ctx, const void *in, size_t len, void *out,
                            size_t out_bytes, mg_error *err);

/* The bare transpose of one block of n elements (n a multiple of 8) and its
 * inverse, for tests and benchmarks. */
void mg_bshuf_transpose(mg_bshuf_ctx *ctx, const void *in, void *out, size_t n);
void mg_bshuf_untranspose(mg_bshuf_ctx *ctx, const void *in, void *out, size_t n);

/* HDF5 dataset-creation cd_values for filter 32008 with LZ4 as written by
 * morgul: {0, 3, elem_size, 0, 2} (version 0.3, element size, default block,
 * LZ4).  Fills `cd` (5 entries) and returns 5. */
int mg_bshuf_cd_values(size_t elem_size, unsigned cd[5]);

#endif
