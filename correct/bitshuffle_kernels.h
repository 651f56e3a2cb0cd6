/* bitshuffle_kernels.h - private: the transpose kernels behind bitshuffle.c.
 * A kernel transposes one block of n elements (n % 8 == 0) into bit planes
 * (see morgul/bitshuffle.h for the layout). */
#ifndef MORGUL_BITSHUFFLE_KERNELS_H
#define MORGUL_BITSHUFFLE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* The forward AVX2 and AVX-512 kernels for 2- and 4-byte elements ask for the bytes this far ahead of what
 * they read into the cache (a prefetch, which never faults): the next block's, read after LZ4 has worked on
 * this one. */
#define MG_BSHUF_PREFETCH_AHEAD 8192

void mg_bshuf_transpose_scalar(const void *in, void *out, size_t n, size_t elem_size);
void mg_bshuf_untranspose_scalar(const void *in, void *out, size_t n, size_t elem_size);
/* AVX2 transpose; needs a scratch of n * elem_size bytes for element sizes
 * other than 2. */
void mg_bshuf_transpose_avx2(const void *in, void *out, size_t n, size_t elem_size, void *scratch);
/* AVX2 inverse, element sizes 1, 2, 4 and 8; no scratch. */
void mg_bshuf_untranspose_avx2(const void *in, void *out, size_t n, size_t elem_size);
/* AVX-512 (F, BW, VBMI) transpose and inverse for element sizes 2 and 4; other sizes go to the AVX2
 * kernels (which need the scratch). */
void mg_bshuf_transpose_avx512(const void *in, void *out, size_t n, size_t elem_size, void *scratch);
void mg_bshuf_untranspose_avx512(const void *in, void *out, size_t n, size_t elem_size);
/* Scalar transpose and inverse of the 8-element groups [g0, g1) only (for
 * kernel tails). */
void mg_bshuf_transpose_groups(const void *in, void *out, size_t n, size_t elem_size, size_t g0,
                               size_t g1);
void mg_bshuf_untranspose_groups(const void *in, void *out, size_t n, size_t elem_size, size_t g0,
                                 size_t g1);

/* Noise planes: how many of a transposed block's bit planes, counted from plane 0 (bit 0 of byte 0 of the
 * elements, where a detector's noise lives), look like noise that LZ4 could not shorten, at most planes - 1.
 * `plane_bytes` is a multiple of 64 and at least 256.  Plane i is noise when both hold:
 *   - fewer than plane_bytes / 16 of its bytes are 0x00 or 0xFF (a sparse or constant plane has many);
 *   - in its last 64 bytes, fewer than 8 bytes equal the byte s before them, for every s of 1-8, 16, 32,
 *     64, 128 and 256 up to plane_bytes - 64, and for s = plane_bytes (the previous plane) when i > 0:
 *     a plane repeating at such a distance (a pattern along a row, rows alike) is not noise.
 * Random bytes fail a shift's test with a chance of about 2e-10 (8 of 64 equal at 1/256 each).  Every kernel
 * gives the same count: the tests are exact counts. */
size_t mg_bshuf_noise_planes_scalar(const uint8_t *block, size_t plane_bytes, size_t planes);
size_t mg_bshuf_noise_planes_avx2(const uint8_t *block, size_t plane_bytes, size_t planes);
size_t mg_bshuf_noise_planes_avx512(const uint8_t *block, size_t plane_bytes, size_t planes);

/* The test above, written once: each kernel passes its own counts (inlined into it, compiled for its
 * instruction set) of the bytes of n that are 0x00 or 0xFF, and of the equal bytes of two 64-byte runs. */
static inline size_t mg_bshuf_noise_planes_with(const uint8_t *block, size_t nb, size_t planes,
                                                size_t (*zero_or_ff)(const uint8_t *p, size_t n),
                                                size_t (*equal64)(const uint8_t *a, const uint8_t *b))
{
    static const size_t shifts[] = {1, 2, 3, 4, 5, 6, 7, 8, 16, 32, 64, 128, 256};
    size_t i = 0;
    for (; i + 1 < planes; i++) {
        const uint8_t *p = block + i * nb, *w = p + nb - 64;
        int noise = zero_or_ff(p, nb) * 16 < nb;
        for (size_t k = 0; noise && k < sizeof shifts / sizeof *shifts && shifts[k] <= nb - 64; k++)
            noise = equal64(w, w - shifts[k]) < 8;
        if (noise && i)
            noise = equal64(w, w - nb) < 8;
        if (!noise)
            break;
    }
    return i;
}

#endif
