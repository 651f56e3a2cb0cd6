/* convert.c - tables and the scalar reference conversion
 * (contract in morgul/convert.h).
 *
 * The order of operations is part of the contract, because the AVX2 kernel
 * must match it bit for bit: v = ((float)adc - pedestal) * factor, in float32,
 * then rounding half away from zero as trunc(v + (v - trunc(v))).  That is
 * exact for every finite float: with t = trunc(v) and d = v - t (exact),
 * v + d = t + 2d is a multiple of twice v's ulp and at most one binade
 * above v, so it is representable, and trunc(t + 2d) = t + trunc(2d) adds
 * the sign exactly when |d| >= 0.5.  Tables never make v infinite: a factor
 * above 1e30 makes the pixel unusable. */
#include "morgul/convert.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convert_kernels.h"
#include "morgul/bitshuffle.h"
#include "morgul/jungfrau.h"

size_t mg_out_size(mg_out_type type) { return type == MG_OUT_INT16 ? 2 : 4; }

double mg_energy_from_wavelength(double angstrom)
{
    return angstrom > 0 && isfinite(angstrom) ? 12.398419843320026 / angstrom : 0;
}

mg_conv_impl mg_conv_best(void) { return mg_cpu_has_avx2() ? MG_CONV_AVX2 : MG_CONV_SCALAR; }

void mg_conv_tables_free(mg_conv_tables *t)
{
    if (!t)
        return;
    for (int g = 0; g < 3; g++) {
        mg_numa_free(t->topo, t->pedestal[g], t->pixels * sizeof(float));
        if (!t->shared_factor)
            mg_numa_free(t->topo, t->factor[g], t->pixels * sizeof(float));
    }
    free(t);
}

/* The pedestal planes of t, whose factors are set: a pixel is usable in a
 * gain when that gain's factor is nonzero (the gain is usable), its pedestal is a plausible
 * ADC value and it is not masked; unusable ones get a NaN pedestal.  t is
 * freed on failure. */
static mg_conv_tables *fill_pedestals(mg_conv_tables *t, const float *const pedestal[3], const uint32_t *mask,
                                      int node, mg_error *err)
{
    for (int g = 0; g < 3; g++) {
        if (!(t->pedestal[g] = mg_numa_alloc(t->topo, t->pixels * sizeof(float), node))) {
            mg_conv_tables_free(t);
            mg_error_set(err, MG_ENOMEM, "out of memory for conversion tables");
            return NULL;
        }
        for (size_t p = 0; p < t->pixels; p++) {
            float ped = pedestal[g][p];
            int usable = t->factor[g][p] != 0 && isfinite(ped) && ped > 0 && ped < 16383 && !(mask && mask[p]);
            t->pedestal[g][p] = usable ? ped : NAN;
        }
    }
    return t;
}

mg_conv_tables *mg_conv_tables_new(size_t pixels, const float *const pedestal[3], const double *const gain[3],
                                   const uint32_t *mask, double energy_kev, mg_topology *topo, int node,
                                   mg_error *err)
{
    if (!(energy_kev >= 0) || !isfinite(energy_kev)) {
        mg_error_set(err, MG_EINVAL, "photon energy %g keV: give a positive energy (--energy KEV or --wavelength A)",
                     energy_kev);
        return NULL;
    }
    double e = energy_kev > 0 ? energy_kev : 1.0;
    mg_conv_tables *t = calloc(1, sizeof *t);
    if (!t) {
        mg_error_set(err, MG_ENOMEM, "out of memory for conversion tables");
        return NULL;
    }
    t->pixels = pixels;
    t->topo = topo;
    for (int g = 0; g < 3; g++) {
        if (!(t->factor[g] = mg_numa_alloc(topo, pixels * sizeof(float), node))) {
            mg_conv_tables_free(t);
            mg_error_set(err, MG_ENOMEM, "out of memory for conversion tables");
            return NULL;
        }
        for (size_t p = 0; p < pixels; p++) {
            /* the factor depends on the gain alone, so tables of other pedestals can share it */
            double gn = gain[g][p], f = 1.0 / (gn * e);
            t->factor[g][p] = isfinite(gn) && gn != 0 && isfinite(f) && fabs(f) <= 1e30 ? (float)f : 0;
        }
    }
    return fill_pedestals(t, pedestal, mask, node, err);
}

mg_conv_tables *mg_conv_tables_new_like(const mg_conv_tables *like, const float *const pedestal[3],
                                        const uint32_t *mask, mg_topology *topo, int node, mg_error *err)
{
    mg_conv_tables *t = calloc(1, sizeof *t);
    if (!t) {
        mg_error_set(err, MG_ENOMEM, "out of memory for conversion tables");
        return NULL;
    }
    t->pixels = like->pixels;
    t->topo = topo;
    t->shared_factor = 1;
    for (int g = 0; g < 3; g++)
        t->factor[g] = like->factor[g];
    return fill_pedestals(t, pedestal, mask, node, err);
}

/* v finite.  truncf without a libm call: floats of 2^23 and more are whole. */
static inline float trunc_finite(float v) { return fabsf(v) < 8388608.0f ? (float)(int32_t)v : v; }

static inline float round_away(float v) { return trunc_finite(v + (v - trunc_finite(v))); }

void mg_convert_scalar(const mg_conv_tables *t, size_t first, size_t count, const uint16_t *raw, void *out,
                       mg_out_type type)
{
    for (size_t i = 0; i < count; i++) {
        size_t p = first + i;
        uint16_t w = raw[i];
        unsigned g = w >> 14;
        int sat = w == MG_WORD_SATURATED;
        int inv = g == 2 || w == 0xFFFF || w == 0x4000;
        unsigned gi = g == 3 ? 2 : g == 2 ? 0 : g;
        float v = ((float)(w & 0x3FFF) - t->pedestal[gi][p]) * t->factor[gi][p];
        inv |= v != v;
        switch (type) {
        case MG_OUT_INT16: {
            int16_t o;
            if (sat)
                o = MG_INT16_SATURATED;
            else if (inv)
                o = MG_INT16_INVALID;
            else {
                float r = round_away(v);
                r = r > 32767.0f ? 32767.0f : r < -32767.0f ? -32767.0f : r;
                o = (int16_t)r;
            }
            ((int16_t *)out)[i] = o;
            break;
        }
        case MG_OUT_INT32: {
            int32_t o;
            if (sat)
                o = MG_INT32_SATURATED;
            else if (inv)
                o = MG_INT32_INVALID;
            else {
                float r = round_away(v);
                if (r >= 2147483648.0f)
                    o = MG_INT32_SATURATED;
                else
                    o = r < 0 ? 0 : (int32_t)r;
            }
            ((int32_t *)out)[i] = o;
            break;
        }
        case MG_OUT_FLOAT32:
            ((float *)out)[i] = sat ? INFINITY : inv ? NAN : v;
            break;
        }
    }
}

void mg_convert(const mg_conv_tables *t, size_t first, size_t count, const uint16_t *raw, void *out,
                mg_out_type type, mg_conv_impl impl)
{
    if (impl == MG_CONV_AUTO)
        impl = mg_conv_best();
    if (impl == MG_CONV_AVX2)
        mg_convert_avx2(t, first, count, raw, out, type);
    else
        mg_convert_scalar(t, first, count, raw, out, type);
}

void mg_convert_invalid(size_t count, void *out, mg_out_type type)
{
    for (size_t i = 0; i < count; i++)
        switch (type) {
        case MG_OUT_INT16: ((int16_t *)out)[i] = MG_INT16_INVALID; break;
        case MG_OUT_INT32: ((int32_t *)out)[i] = MG_INT32_INVALID; break;
        case MG_OUT_FLOAT32: ((float *)out)[i] = NAN; break;
        }
}

void mg_module_tables_free(mg_module_tables *t)
{
    for (int c = MG_CELLS_MAX - 1; c >= 0; c--) {
        mg_conv_tables_free(t->cell[c]);
        t->cell[c] = NULL;
    }
    t->cells = 0;
}
