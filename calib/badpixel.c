/* badpixel.c - masks from dark-run statistics (contract in morgul/badpixel.h). */
#include "morgul/badpixel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void mg_mask_criteria_defaults(mg_mask_criteria *c)
{
    c->min_valid_fraction = 0.5;
    c->max_wrong_g0 = 2;
    c->max_wrong_g12 = 0;
    c->noisy_rms = 100;
    c->noisy_k = 10;
    c->pedestal_min = 1;
    c->pedestal_max = 16382;
}

/* k-th smallest of v[0..n-1] (reorders v): Hoare's selection. */
static float select_kth(float *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        float pivot = v[lo + (hi - lo) / 2];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot)
                i++;
            while (v[j] > pivot)
                j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                if (j == 0)
                    break;
                j--;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return v[k];
    }
    return v[k];
}

static double median_inplace(float *v, size_t n)
{
    if (!n)
        return NAN;
    double m = select_kth(v, n, n / 2);
    if (n % 2 == 0) {
        /* the lower middle is the largest of the lower half, which selection left below n/2 */
        float lower = v[0];
        for (size_t i = 1; i < n / 2; i++)
            if (v[i] > lower)
                lower = v[i];
        m = 0.5 * (m + lower);
    }
    return m;
}

double mg_median_f32(const float *v, size_t n)
{
    float *c = malloc((n ? n : 1) * sizeof(float));
    if (!c)
        return NAN;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (v[i] == v[i])
            c[k++] = v[i];
    double m = median_inplace(c, k);
    free(c);
    return m;
}

int mg_mask_compute(const mg_mask_criteria *c, const mg_dark_stats *s, const uint8_t *user, uint32_t *mask,
                    mg_mask_summary *sum)
{
    const size_t P = s->pixels;
    mg_mask_summary local;
    mg_mask_summary *out = sum ? sum : &local;
    memset(out, 0, sizeof *out);
    for (int g = 0; g < 3; g++) {
        out->median_pedestal[g] = s->frames[g] ? mg_median_f32(s->mean + (size_t)g * P, P) : NAN;
        out->median_rms[g] = s->frames[g] ? mg_median_f32(s->rms + (size_t)g * P, P) : NAN;
    }
    /* the robust noise threshold: median + k * MAD of the G0 RMS */
    double threshold = c->noisy_rms;
    if (s->frames[0]) {
        float *dev = malloc(P * sizeof(float));
        if (!dev)
            return -1;
        size_t k = 0;
        for (size_t p = 0; p < P; p++)
            if (s->rms[p] == s->rms[p])
                dev[k++] = fabsf(s->rms[p] - (float)out->median_rms[0]);
        double mad = median_inplace(dev, k);
        free(dev);
        double robust = out->median_rms[0] + c->noisy_k * mad;
        if (robust == robust && robust < threshold)
            threshold = robust;
    }
    out->noisy_threshold = threshold;
    int taken = 0;
    for (int g = 0; g < 3; g++)
        taken += s->frames[g] > 0;
    for (size_t p = 0; p < P; p++) {
        uint32_t m = 0;
        uint32_t valid_any = 0;
        for (int g = 0; g < 3; g++) {
            if (!s->frames[g])
                continue;
            size_t at = (size_t)g * P + p;
            uint32_t used = s->frames_used[at];
            valid_any += used;
            if ((double)used < c->min_valid_fraction * (double)s->frames[g])
                m |= MG_MASK_FEW_FRAMES(g);
            if (s->wrong_gain[at] > (g == 0 ? c->max_wrong_g0 : c->max_wrong_g12))
                m |= MG_MASK_WRONG_GAIN(g);
            float mean = s->mean[at], rms = s->rms[at];
            if (used && !(mean >= c->pedestal_min && mean <= c->pedestal_max))
                m |= MG_MASK_PEDESTAL_RANGE;
            if (used >= 2 && rms == 0 && mean > 0)
                m |= MG_MASK_STUCK;
        }
        if (s->frames[0]) {
            if (s->frames_used[p] && s->mean[p] == 0)
                m |= MG_MASK_DEAD;
            if (s->frames_used[p] && s->rms[p] > threshold)
                m |= MG_MASK_NOISY;
        }
        if (taken && !valid_any)
            m |= MG_MASK_DEAD;
        if (user && user[p])
            m |= MG_MASK_USER;
        mask[p] = m;
        if (m) {
            out->masked++;
            for (int b = 0; b < 32; b++)
                out->by_bit[b] += m >> b & 1;
        }
    }
    return 0;
}

static const struct {
    int bit;
    const char *why;
} reasons[] = {{1, "dead"}, {4, "noisy"}, {8, "user mask"}, {9, "few frames G0"}, {10, "few frames G1"},
               {11, "few frames G2"}, {12, "wrong gain G0"}, {13, "wrong gain G1"}, {14, "wrong gain G2"},
               {15, "pedestal range"}, {16, "stuck"}, {17, "gain G0 unusable"}, {18, "gain G1 unusable"},
               {19, "gain G2 unusable"}};

void mg_mask_summary_print(const char *module, const mg_mask_summary *s, FILE *out)
{
    fprintf(out, "module %s: %llu pixels masked (%.3f %%)\n", module, (unsigned long long)s->masked,
            100.0 * (double)s->masked / (512.0 * 1024.0));
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
        fprintf(out, "  %-16s bit %-2d %8llu\n", reasons[i].why, reasons[i].bit,
                (unsigned long long)s->by_bit[reasons[i].bit]);
    fprintf(out, "  %-6s %12s %12s\n", "gain", "median ped", "median rms");
    for (int g = 0; g < 3; g++)
        fprintf(out, "  G%-5d %12.1f %12.2f\n", g, s->median_pedestal[g], s->median_rms[g]);
    fprintf(out, "  noisy above %.2f ADU G0 RMS\n", s->noisy_threshold);
}

void mg_mask_summary_print_cells(const char *module, const mg_mask_summary *s, int cells, FILE *out)
{
    uint64_t masked = 0, by_bit[32] = {0};
    for (int k = 0; k < cells; k++) {
        masked += s[k].masked;
        for (int b = 0; b < 32; b++)
            by_bit[b] += s[k].by_bit[b];
    }
    fprintf(out, "module %s: %d storage cells, %llu pixel-cells masked (%.3f %%)\n", module, cells,
            (unsigned long long)masked, 100.0 * (double)masked / (512.0 * 1024.0 * cells));
    for (size_t i = 0; i < sizeof reasons / sizeof *reasons; i++)
        fprintf(out, "  %-16s bit %-2d %8llu\n", reasons[i].why, reasons[i].bit,
                (unsigned long long)by_bit[reasons[i].bit]);
    fprintf(out, "  %-4s %8s %9s %7s %9s %7s %9s %7s %8s\n", "cell", "masked", "G0 ped", "G0 rms", "G1 ped", "G1 rms",
            "G2 ped", "G2 rms", "noisy >");
    for (int k = 0; k < cells; k++)
        fprintf(out, "  %-4d %8llu %9.1f %7.2f %9.1f %7.2f %9.1f %7.2f %8.2f\n", k, (unsigned long long)s[k].masked,
                s[k].median_pedestal[0], s[k].median_rms[0], s[k].median_pedestal[1], s[k].median_rms[1],
                s[k].median_pedestal[2], s[k].median_rms[2], s[k].noisy_threshold);
}
