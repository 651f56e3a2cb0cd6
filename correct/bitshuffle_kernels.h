/* bitshuffle_kernels.h - private: the transpose kernels behind bitshuffle.c.
 * A kernel transposes one block of n elements (n % 8 == 0) into bit planes
 * (see morgul/bitshuffle.h for the layout). */
#ifndef MORGUL_BITSHUFFLE_KERNELS_H
#define MORGUL_BITSHUFFLE_KERNELS_H

#include <stddef.h>

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

#endif
