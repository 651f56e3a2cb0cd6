/* convert_kernels.h - private: the conversion kernels behind convert.c. */
#ifndef MORGUL_CONVERT_KERNELS_H
#define MORGUL_CONVERT_KERNELS_H

#include "morgul/convert.h"

void mg_convert_scalar(const mg_conv_tables *t, size_t first, size_t count, const uint16_t *raw, void *out,
                       mg_out_type type);
void mg_convert_avx2(const mg_conv_tables *t, size_t first, size_t count, const uint16_t *raw, void *out,
                     mg_out_type type);

#endif
