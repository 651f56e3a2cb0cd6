/* convert.c - tables and the scalar reference conversion
 * (contract in morgul/convert.h).
 *
 * The order of operations is part of the contract, because the AVX2 kernel
 * must match it bit for bit: v = fma(adc, factor, -offset) in float32 (the
 * product exact, one rounding), offset = pedestal * factor rounded once to
 * float32 when the tables are built; then rounding half away from zero as
 * trunc(v + copysign(h, v)) with h = 0.5 - 2^-25, the float below 1/2.
 *
 * Why that rounds half away from zero, for v >= 0 (the sign is symmetric):
 * v < 1/2 gives v + h <= 1 - 2^-24, a float, so 0.  v >= 2^23 is whole
 * and h is below half its ulp, so v.  Otherwise v = n + f with n whole and
 * f a multiple of u = ulp(v) <= 1/2.  If f >= 1/2, v + h >= n + 1 - 2^-25,
 * which rounds to n + 1 or more (below n + 1 the floats are 2^-24 apart or
 * more, and at n + 1 = 1 the tie goes to the even 1.0), and v + h < n + 3/2
 * stays below n + 2: n + 1.  If f < 1/2, f <= 1/2 - u and v + h < n + 1 - u,
 * a float, so trunc gives n.  (Also checked over every finite float once;
 * the unit test sweeps the binades where it could fail.)  A 1/2 instead of
 * h would round 0.49999997 up to 1. */
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

mg_conv_impl mg_conv_best(void)
{
    __builtin_cpu_init();
    return mg_cpu_has_avx2() && __builtin_cpu_supports("fma") ? MG_CONV_AVX2 : MG_CONV_SCALAR;
}

/* The planes' length: whole groups of 16 pixels (mg_conv_slot). */
static size_t plane_len(size_t pixels) { return (pixels + 15) & ~(size_t)15; }

void mg_conv_tables_free(mg_conv_tables *t)
{
    if (!t)
        return;
    for (int g = 0; g < 3; g++) {
        mg_numa_free(t->topo, t->offset[g], plane_len(t->pixels) * sizeof(float));
        if (!t->shared_factor)
            mg_numa_free(t->topo, t->factor[g], plane_len(t->pixels) * sizeof(float));
    }
    free(t);
}

/* The offset planes of t, whose factors are set: a pixel is usable in a
 * gain when that gain's factor is nonzero (the gain is usable), its pedestal
 * is a plausible ADC value and it is not masked; unusable ones (and the
 * padding slots) get a NaN offset.  t is freed on failure. */
static mg_conv_tables *fill_offsets(mg_conv_tables *t, const float *const pedestal[3], const uint32_t *mask,
                                    int node, mg_error *err)
{
    const size_t len = plane_len(t->pixels);
    for (int g = 0; g < 3; g++) {
        if (!(t->offset[g] = mg_numa_alloc(t->topo, len * sizeof(float), node))) {
            mg_conv_tables_free(t);
            mg_error_set(err, MG_ENOMEM, "out of memory for conversion tables");
            return NULL;
        }
        for (size_t s = 0; s < len; s++)
            t->offset[g][s] = NAN;
        for (size_t p = 0; p < t->pixels; p++) {
            size_t s = mg_conv_slot(p);
            float ped = pedestal[g][p], f = t->factor[g][s];
            int usable = f != 0 && isfinite(ped) && ped > 0 && ped < 16383 && !(mask && mask[p]);
            /* the product of two floats is exact in double: one rounding */
            t->offset[g][s] = usable ? (float)((double)ped * (double)f) : NAN;
        }
    }
    /* adc * f - offset >= -offset for adc >= 0 and f >= 0, and the fma rounds monotonically */
    t->g0_above_floor = 1;
    for (size_t s = 0; s < len; s++)
        if (!isnan(t->offset[0][s]) && (t->factor[0][s] < 0 || t->offset[0][s] > 32767.0f))
            t->g0_above_floor = 0;
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
        if (!(t->factor[g] = mg_numa_alloc(topo, plane_len(pixels) * sizeof(float), node))) {
            mg_conv_tables_free(t);
            mg_error_set(err, MG_ENOMEM, "out of memory for conversion tables");
            return NULL;
        }
        memset(t->factor[g], 0, plane_len(pixels) * sizeof(float));
        for (size_t p = 0; p < pixels; p++) {
            /* the factor depends on the gain alone, so tables of other pedestals can share it; at most
             * 1e5 keeps |ADC * factor - offset| < 16383e5 < 2^31, which the int16 kernel relies on */
            double gn = gain[g][p], f = 1.0 / (gn * e);
            t->factor[g][mg_conv_slot(p)] = isfinite(gn) && gn != 0 && isfinite(f) && fabs(f) <= 1e5 ? (float)f : 0;
        }
    }
    return fill_offsets(t, pedestal, mask, node, err);
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
    return fill_offsets(t, pedestal, mask, node, err);
}

/* v finite.  truncf without a libm call: floats of 2^23 and more are whole. */
static inline float trunc_finite(float v) { return fabsf(v) < 8388608.0f ? (float)(int32_t)v : v; }

static inline float round_away(float v) { return trunc_finite(v + copysignf(0x1.fffffep-2f, v)); }

void mg_convert_scalar(const mg_conv_tables *t, size_t first, size_t count, const uint16_t *raw, void *out,
                       mg_out_type type)
{
    for (size_t i = 0; i < count; i++) {
        size_t p = mg_conv_slot(first + i);
        uint16_t w = raw[i];
        unsigned g = w >> 14;
        int sat = w == MG_WORD_SATURATED;
        int inv = g == 2 || w == 0xFFFF || w == 0x4000;
        unsigned gi = g == 3 ? 2 : g == 2 ? 0 : g;
        float v = fmaf((float)(w & 0x3FFF), t->factor[gi][p], -t->offset[gi][p]);
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
