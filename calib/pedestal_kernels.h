/* pedestal_kernels.h - private: the batch kernels behind pedestal.c.
 *
 * Both add n frames (n <= MG_PEDESTAL_BATCH, frame f at frames + f * pixels)
 * taken in the gain whose bits are `want` (0, 1 or 3) to the sums; a word
 * counts when its gain bits are `want` and it is neither `bad1` nor `bad2`
 * (the error and saturation words of that gain). */
#ifndef MORGUL_PEDESTAL_KERNELS_H
#define MORGUL_PEDESTAL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

void mg_ped_batch_scalar(const uint16_t *frames, int n, size_t pixels, unsigned want, uint16_t bad1, uint16_t bad2,
                         uint32_t *count, uint64_t *sum, uint64_t *sumsq);
void mg_ped_batch_avx2(const uint16_t *frames, int n, size_t pixels, unsigned want, uint16_t bad1, uint16_t bad2,
                       uint32_t *count, uint64_t *sum, uint64_t *sumsq);

#endif
