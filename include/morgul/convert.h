/* morgul/convert.h - raw JUNGFRAU words to photons (or keV), per pixel,
 * with a module's pedestal and gain tables.
 *
 *   value = (ADC - pedestal[g]) * factor[g],  factor = 1 / (gain[g] * E)
 *
 * with g from the word's gain bits (00 G0, 01 G1, 11 G2), gain in ADU/keV
 * and E the photon energy in keV (E = 1 gives keV instead of photons).
 *
 * Special words and pixels, per output type:
 *
 *   | output  | rounding             | saturated (0xC000, or above range) | invalid       |
 *   | int16   | half away from zero  | 32767                               | -32768        |
 *   | int32   | half away from zero  | INT32_MAX                           | -1, and counts clamped at >= 0 |
 *   | float32 | none                 | +inf                                | NaN           |
 *
 * Invalid: gain bits 10, the error words 0xFFFF and 0x4000, pixels of
 * missing packets (written as 0xFFFF), masked pixels, and pixels whose
 * pedestal or gain in that gain is not usable (pedestal 0, >= 16383 or NaN;
 * gain 0 or NaN, or |1 / (gain * E)| above 1e5, which keeps every value
 * within the int32 range).  int16 values below -32767 become -32767, so
 * -32768 only ever means invalid.
 *
 * The arithmetic, which both kernels follow exactly (the scalar kernel is
 * the reference; the AVX2 kernel gives bit-identical output):
 *
 *   v = fma(ADC, factor, -offset)      offset = pedestal * factor, in float32
 *   rounded = trunc(v + copysign(0.49999997, v))
 *
 * one rounding for the value (a fused multiply-add), and rounding half away
 * from zero by adding the float just below 1/2 (proof in convert.c).
 *
 * Tables are float32 planes per gain (offset, factor), built once per
 * module; an unusable (pixel, gain) has a NaN offset, so the hot loop needs
 * no mask.  The planes hold pixel p at mg_conv_slot(p): "laid out for
 * streaming" in the order the AVX2 kernel widens 16 words into two vectors
 * of 8 and packs them back, so it never shuffles.
 */
#ifndef MORGUL_CONVERT_H
#define MORGUL_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "morgul/error.h"
#include "morgul/jungfrau.h"
#include "morgul/topology.h"

typedef enum mg_out_type { MG_OUT_INT16 = 0, MG_OUT_INT32, MG_OUT_FLOAT32 } mg_out_type;

typedef enum mg_conv_impl { MG_CONV_AUTO = 0, MG_CONV_SCALAR, MG_CONV_AVX2 } mg_conv_impl;

#define MG_INT16_SATURATED 32767
#define MG_INT16_INVALID (-32768)
#define MG_INT32_SATURATED 2147483647
#define MG_INT32_INVALID (-1)

typedef struct mg_conv_tables {
    size_t pixels;
    float *offset[3];   /* pedestal * factor (output units), NaN where unusable; at mg_conv_slot(p) */
    float *factor[3];   /* 1 / (gain * E); 0 where the gain is unusable; at mg_conv_slot(p) */
    mg_topology *topo;  /* where the planes were allocated */
    int shared_factor;  /* the factor planes are another table's (mg_conv_tables_new_like) */
    int g0_above_floor; /* every G0 value is >= -32767 (usable G0 factors >= 0, offsets <= 32767): the
                         * int16 kernel then skips that clamp for G0 words (any real calibration) */
} mg_conv_tables;

/* Where pixel p's entries are in the table planes: within each group of 16
 * pixels the order is 0-3, 8-11, 4-7, 12-15 (bits 2 and 3 of p swapped).
 * Planes are allocated for the pixel count rounded up to 16. */
static inline size_t mg_conv_slot(size_t p) { return (p & ~(size_t)12) | (p & 4) << 1 | (p & 8) >> 1; }

/* Builds the tables of one module of `pixels` pixels from pedestals (3
 * planes, ADU), gains (3 planes, ADU/keV; G1/G2 negative as in PSI files),
 * an optional mask (nonzero = masked; may be NULL) and the photon energy
 * (keV; 0 or 1 for output in keV).  The planes go on `node` (-1: any).
 * Refuses energies that are not positive and finite. */
mg_conv_tables *mg_conv_tables_new(size_t pixels, const float *const pedestal[3], const double *const gain[3],
                                   const uint32_t *mask, double energy_kev, mg_topology *topo, int node,
                                   mg_error *err);
void mg_conv_tables_free(mg_conv_tables *t);

/* Tables for other pedestals (and mask) of the same module at the same
 * gains and energy as `like` (another storage cell): only the pedestal
 * planes are made; the factor planes are like's, which must outlive these
 * tables.  Output is what mg_conv_tables_new would give for them. */
mg_conv_tables *mg_conv_tables_new_like(const mg_conv_tables *like, const float *const pedestal[3],
                                        const uint32_t *mask, mg_topology *topo, int node, mg_error *err);

/* A module's tables for each storage cell it is calibrated for
 * (mg_calib_tables builds them): cell[c] for frames stored in cell c; a
 * module without storage cells has cells 1 and cell[0] serves every frame.
 * The cells share cell[0]'s factor planes (the gain map is per pixel), so
 * a cell costs 12 MiB per module and the factors stay in cache when frames
 * cycle through the cells. */
typedef struct mg_module_tables {
    int cells;
    mg_conv_tables *cell[MG_CELLS_MAX];
} mg_module_tables;

/* The tables for a frame whose DAQ info is `daq_info`, or NULL when the
 * module is calibrated per cell and not for that frame's cell (its pixels
 * are then invalid: mg_convert_invalid). */
static inline const mg_conv_tables *mg_module_tables_pick(const mg_module_tables *t, uint32_t daq_info)
{
    if (t->cells <= 1)
        return t->cell[0];
    unsigned c = MG_DAQ_STORAGE_CELL(daq_info);
    return c < (unsigned)t->cells ? t->cell[c] : NULL;
}

/* Frees cells 1.. before cell 0, whose factor planes they share. */
void mg_module_tables_free(mg_module_tables *t);

/* Photon energy in keV from a wavelength in Angstrom (E = hc / lambda,
 * hc = 12.398419843320026 keV A); 0 for a wavelength that is not positive. */
double mg_energy_from_wavelength(double angstrom);

/* The kernel MG_CONV_AUTO picks on this CPU: MG_CONV_AVX2 where the CPU
 * has AVX2 and FMA. */
mg_conv_impl mg_conv_best(void);

/* Converts `count` words of the module starting at pixel `first` into out
 * (count elements of the output type).  `impl` MG_CONV_AVX2 needs AVX2
 * and FMA (mg_conv_best() == MG_CONV_AVX2). */
void mg_convert(const mg_conv_tables *t, size_t first, size_t count, const uint16_t *raw, void *out,
                mg_out_type type, mg_conv_impl impl);

/* Fills count elements of out with the invalid value of `type`. */
void mg_convert_invalid(size_t count, void *out, mg_out_type type);

/* Bytes per output element. */
size_t mg_out_size(mg_out_type type);

#endif
