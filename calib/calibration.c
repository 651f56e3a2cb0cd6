/* calibration.c - the detector calibration file and importers
 * (contract and layout in morgul/calibration.h). */
#include "morgul/calibration.h"

#include "morgul/badpixel.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <time.h>
#include <fnmatch.h>
#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "morgul/bitshuffle.h"
#include "morgul/convert.h"
#include "morgul/geometry.h"
#include "morgul/h5filter.h"
#include "morgul/h5util.h"
#include "morgul/jungfrau.h"

#define P ((size_t)MG_MODULE_PIXELS)

void mg_calib_free(mg_calibration *c)
{
    for (int m = 0; m < c->nmodules; m++) {
        mg_module_calib *x = &c->modules[m];
        free(x->pedestal);
        free(x->pedestal_rms);
        free(x->gain);
        free(x->mask);
        free(x->frames_used);
        free(x->wrong_gain);
        x->pedestal = x->pedestal_rms = NULL;
        x->gain = NULL;
        x->mask = x->frames_used = x->wrong_gain = NULL;
    }
    c->nmodules = 0;
}

void mg_calib_init(mg_calibration *c)
{
    memset(c, 0, sizeof *c);
    c->exposure_s = NAN;
}

int mg_calib_load_or_new(const char *path, mg_calibration *c, const char *detector, mg_error *err)
{
    if (access(path, F_OK) == 0)
        return mg_calib_read(path, c, err);
    mg_calib_init(c);
    snprintf(c->detector, sizeof c->detector, "%s", detector ? detector : "jungfrau");
    return 0;
}

mg_module_calib *mg_calib_find(const mg_calibration *c, const char *name)
{
    for (int m = 0; m < c->nmodules; m++)
        if (!strcmp(c->modules[m].name, name))
            return (mg_module_calib *)&c->modules[m];
    return NULL;
}

mg_module_calib *mg_calib_module(mg_calibration *c, const char *name, int row, int column)
{
    mg_module_calib *found = mg_calib_find(c, name);
    if (found)
        return found;
    if (c->nmodules == MG_MAX_MODULES)
        return NULL;
    mg_module_calib *x = &c->modules[c->nmodules++];
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    x->row = row;
    x->column = column;
    x->exposure_s = NAN;
    return x;
}

int mg_calib_check(const mg_calibration *c, const mg_detector *det, mg_error *err)
{
    for (int d = 0; d < det->nmodules; d++) {
        const char *name = det->modules[d].name;
        const mg_module_calib *x = mg_calib_find(c, name);
        if (!x)
            return mg_error_set(err, MG_ECONFIG, "the calibration has no module %s (it has %d module(s)%s%s); "
                                "import its gain map and pedestals first", name, c->nmodules,
                                c->nmodules ? ", the first " : "", c->nmodules ? c->modules[0].name : "");
        if (!x->gain)
            return mg_error_set(err, MG_ECONFIG, "module %s has no gain map in the calibration; run morgul gainmap",
                                name);
        if (!x->pedestal)
            return mg_error_set(err, MG_ECONFIG, "module %s has no pedestals in the calibration; take a dark run "
                                "(morgul pedestal) or import them (morgul calib import)", name);
    }
    return 0;
}

const double mg_gain_range[3][2] = {{10, 200}, {-10, -0.1}, {-1, -0.01}};

int mg_calib_validate(mg_module_calib *m, double max_unusable, mg_calib_issues *out, mg_error *err)
{
    mg_calib_issues x;
    memset(&x, 0, sizeof x);
    const int cells = mg_calib_cells(m);
    if (!m->gain && !m->pedestal) {
        if (out)
            *out = x;
        return 0;
    }
    uint32_t *bad = calloc(P, sizeof(uint32_t)); /* the bits each pixel earns, all cells */
    if (!bad)
        return mg_error_set(err, MG_ENOMEM, "out of memory checking module %s", m->name);
    /* the gain bits are this check's alone: a gain map imported again is judged afresh */
    for (size_t i = 0; m->gain && m->mask && i < (size_t)cells * P; i++)
        m->mask[i] &= ~(MG_MASK_GAIN(0) | MG_MASK_GAIN(1) | MG_MASK_GAIN(2));
    for (int g = 0; g < 3 && m->gain; g++) {
        const double *v = m->gain + (size_t)g * P;
        for (size_t i = 0; i < P; i++)
            if (!(v[i] >= mg_gain_range[g][0] && v[i] <= mg_gain_range[g][1])) { /* NaN fails too */
                bad[i] |= MG_MASK_GAIN(g);
                x.gain[g]++;
            }
    }
    for (int c = 0; c < cells && m->pedestal; c++)
        for (int g = 0; g < 3; g++) {
            const float *v = m->pedestal + ((size_t)c * 3 + (size_t)g) * P;
            for (size_t i = 0; i < P; i++)
                if (!isnan(v[i]) && !(v[i] > 0 && v[i] < 16383) && !(bad[i] & (1u << 20 << g))) {
                    bad[i] |= MG_MASK_PEDESTAL_RANGE | (1u << 20 << g); /* (bits 20-22: counted once per gain) */
                    x.pedestal[g]++;
                }
        }
    for (size_t i = 0; i < P; i++) {
        bad[i] &= ~(7u << 20);
        x.unusable += bad[i] != 0;
    }
    if (x.unusable) {
        if (!m->mask && !(m->mask = calloc((size_t)cells * P, sizeof(uint32_t)))) {
            free(bad);
            return mg_error_set(err, MG_ENOMEM, "out of memory for module %s's mask", m->name);
        }
        for (int c = 0; c < cells; c++)
            for (size_t i = 0; i < P; i++)
                m->mask[(size_t)c * P + i] |= bad[i];
    }
    free(bad);
    if (out)
        *out = x;
    if ((double)x.unusable > max_unusable * (double)P) {
        char why[400];
        int n = 0;
        for (int g = 0; g < 3; g++)
            if (x.gain[g])
                n += snprintf(why + n, sizeof why - (size_t)n, "; G%d gain unusable in %llu (outside %g..%g ADU/keV, "
                              "zero or not finite)", g, (unsigned long long)x.gain[g], mg_gain_range[g][0],
                              mg_gain_range[g][1]);
        for (int g = 0; g < 3 && n < (int)sizeof why - 80; g++)
            if (x.pedestal[g])
                n += snprintf(why + n, sizeof why - (size_t)n, "; G%d pedestal 0, >= 16383 or infinite in %llu", g,
                              (unsigned long long)x.pedestal[g]);
        return mg_error_set(err, MG_EDATA, "module %s: %.1f %% of its pixels have constants no real module shows%s. "
                            "Refused: check the gain map's units and planes, and the pedestal files", m->name,
                            100.0 * (double)x.unusable / (double)P, why);
    }
    return 0;
}

void mg_calib_issues_print(const char *name, const mg_calib_issues *x, FILE *out)
{
    if (!x->unusable || !out)
        return;
    fprintf(out, "module %s: %llu pixels masked for unusable constants (%.3f %%):", name,
            (unsigned long long)x->unusable, 100.0 * (double)x->unusable / (double)P);
    for (int g = 0; g < 3; g++)
        if (x->gain[g])
            fprintf(out, " G%d gain %llu (bit %d)", g, (unsigned long long)x->gain[g], 17 + g);
    for (int g = 0; g < 3; g++)
        if (x->pedestal[g])
            fprintf(out, " G%d pedestal 0/>=16383 %llu (bit 15)", g, (unsigned long long)x->pedestal[g]);
    fprintf(out, "\n");
}

int mg_calib_validate_detector(mg_calibration *c, const mg_detector *det, FILE *log, mg_error *err)
{
    for (int m = 0; m < det->nmodules; m++) {
        mg_module_calib *x = mg_calib_find(c, det->modules[m].name);
        if (!x)
            continue;
        mg_calib_issues is;
        int rc = mg_calib_validate(x, MG_CALIB_MAX_UNUSABLE, &is, err);
        if (log && is.unusable) {
            fprintf(log, "calibration: ");
            mg_calib_issues_print(x->name, &is, log);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int mg_calib_tables(const mg_module_calib *m, double energy_kev, mg_topology *topo, int node, mg_module_tables *t,
                    mg_error *err)
{
    memset(t, 0, sizeof *t);
    if (!m->pedestal || !m->gain)
        return mg_error_set(err, MG_ECONFIG, "module %s has no %s in the calibration", m->name,
                            m->pedestal ? "gain map" : "pedestals");
    const int cells = mg_calib_cells(m);
    const double *gain[3] = {m->gain, m->gain + P, m->gain + 2 * P};
    for (int c = 0; c < cells; c++) {
        const float *base = m->pedestal + (size_t)c * 3 * P;
        const float *ped[3] = {base, base + P, base + 2 * P};
        const uint32_t *mask = m->mask ? m->mask + (size_t)c * P : NULL;
        /* cells after the first share its factor planes: the gain map is one for all cells */
        if (!(t->cell[c] = c ? mg_conv_tables_new_like(t->cell[0], ped, mask, topo, node, err)
                             : mg_conv_tables_new(P, ped, gain, mask, energy_kev, topo, node, err))) {
            mg_module_tables_free(t);
            if (cells > 1)
                mg_error_prefix(err, "module %s, storage cell %d", m->name, c);
            else
                mg_error_prefix(err, "module %s", m->name);
            return err ? err->code : MG_ENOMEM;
        }
    }
    t->cells = cells;
    return 0;
}

void mg_calib_mask_all_cells(const mg_module_calib *m, uint32_t *out)
{
    memset(out, 0, P * sizeof(uint32_t));
    for (int c = 0; m->mask && c < mg_calib_cells(m); c++)
        for (size_t i = 0; i < P; i++)
            out[i] |= m->mask[(size_t)c * P + i];
}

int mg_calib_geometry_mask(const mg_calibration *c, const mg_detector *det, const mg_geometry *g, uint32_t *out,
                           mg_error *err)
{
    uint32_t *all = malloc((size_t)det->nmodules * P * sizeof(uint32_t));
    if (!all)
        return mg_error_set(err, MG_ENOMEM, "out of memory for the pixel mask");
    const uint32_t *masks[MG_MAX_MODULES] = {0};
    for (int m = 0; m < det->nmodules; m++) {
        mg_calib_mask_all_cells(mg_calib_find(c, det->modules[m].name), all + (size_t)m * P);
        masks[m] = all + (size_t)m * P;
    }
    mg_geometry_mask(g, masks, out);
    free(all);
    return 0;
}

int mg_calib_set_cells(mg_module_calib *m, int cells)
{
    cells = cells > 1 ? cells : 1;
    const int had = mg_calib_cells(m);
    if (had == cells)
        return 0;
    uint32_t *mask = NULL;
    if (m->mask && had == 1) { /* a mask without cells (user bits, an import) holds for every cell */
        if (!(mask = malloc((size_t)cells * P * sizeof(uint32_t))))
            return MG_ENOMEM;
        for (int c = 0; c < cells; c++)
            memcpy(mask + (size_t)c * P, m->mask, P * sizeof(uint32_t));
    }
    free(m->pedestal), free(m->pedestal_rms), free(m->mask), free(m->frames_used), free(m->wrong_gain);
    m->pedestal = m->pedestal_rms = NULL;
    m->frames_used = m->wrong_gain = NULL;
    m->mask = mask;
    memset(m->dark_frames, 0, sizeof m->dark_frames);
    memset(m->cell_frames, 0, sizeof m->cell_frames);
    m->cells = cells;
    return 0;
}

/* ---- raw files ---- */

static int read_exact(const char *path, void *dst, size_t bytes, size_t *size_out, mg_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return mg_error_set(err, MG_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st)) {
        fclose(f);
        return mg_error_set(err, MG_EIO, "cannot read %s: %s", path, strerror(errno));
    }
    if (size_out)
        *size_out = (size_t)st.st_size;
    size_t want = bytes < (size_t)st.st_size ? bytes : (size_t)st.st_size;
    size_t n = fread(dst, 1, want, f);
    fclose(f);
    if (n != want)
        return mg_error_set(err, MG_EIO, "reading %s failed", path);
    return 0;
}

int mg_gainmap_read_bin(const char *path, double *gain, mg_error *err)
{
    size_t size = 0;
    int rc = read_exact(path, gain, 3 * P * sizeof(double), &size, err);
    if (rc)
        return rc;
    if (size != 3 * P * sizeof(double) && size != 6 * P * sizeof(double))
        return mg_error_set(err, MG_EFORMAT,
                            "%s has %zu bytes; a PSI gain map has 3 or 6 planes of 512x1024 float64 (%zu or %zu bytes)",
                            path, size, 3 * P * sizeof(double), 6 * P * sizeof(double));
    /* a gain of the wrong sign means planes in another order or another format */
    double s0 = 0, s1 = 0, s2 = 0;
    for (size_t i = 0; i < P; i += 997) {
        s0 += gain[i];
        s1 += gain[P + i];
        s2 += gain[2 * P + i];
    }
    if (!(s0 > 0) || !(s1 < 0) || !(s2 < 0))
        return mg_error_set(err, MG_EFORMAT,
                            "%s does not look like a PSI gain map: G0 should be positive and G1, G2 negative (ADU/keV)",
                            path);
    return 0;
}

int mg_plane_read_f32(const char *path, float *plane, mg_error *err)
{
    size_t size = 0;
    int rc = read_exact(path, plane, P * sizeof(float), &size, err);
    if (!rc && size != P * sizeof(float))
        rc = mg_error_set(err, MG_EFORMAT, "%s has %zu bytes; a plane of 512x1024 float32 has %zu", path, size,
                          P * sizeof(float));
    return rc;
}

/* Files in `dir` matching `pattern`, appended to found (count in *n). */
static void match_in(const char *dir, const char *pattern, char found[][1024], int *n, int max)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!fnmatch(pattern, e->d_name, 0) && *n < max)
            snprintf(found[(*n)++], 1024, "%s/%s", dir, e->d_name);
    closedir(d);
}

int mg_gainmap_find(const char *dir, const char *name, char *path, size_t cap, mg_error *err)
{
    char pattern[256], subpat[256];
    snprintf(pattern, sizeof pattern, "gainMaps_%s*.bin", name);
    snprintf(subpat, sizeof subpat, "%s*", name);
    char found[8][1024];
    int n = 0;
    match_in(dir, pattern, found, &n, 8);
    DIR *d = opendir(dir);
    if (!d)
        return mg_error_set(err, MG_EIO, "cannot open the calibration directory %s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)))
        if (!fnmatch(subpat, e->d_name, 0)) {
            char sub[1100];
            snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
            struct stat st;
            if (!stat(sub, &st) && S_ISDIR(st.st_mode))
                match_in(sub, pattern, found, &n, 8);
        }
    closedir(d);
    if (n == 1) {
        snprintf(path, cap, "%s", found[0]);
        return 0;
    }
    if (n == 0)
        return mg_error_set(err, MG_ECONFIG, "no gain map for module %s in %s (looked for %s there and in %s*/); "
                            "name it with --gainmap %s=FILE", name, dir, pattern, name, name);
    return mg_error_set(err, MG_ECONFIG, "%d gain maps for module %s in %s (%s, %s%s); name one with --gainmap %s=FILE",
                        n, name, dir, found[0], found[1], n > 2 ? ", ..." : "", name);
}

/* ---- HDF5 ---- */

/* Reads dataset `path` of loc if its shape is `rank` x dims, as `mtype`.
 * Returns 1 if read, 0 if absent, negative on a wrong shape or read error. */
static int read_ds(hid_t loc, const char *file, const char *path, int rank, const hsize_t *dims, hid_t mtype,
                   void *buf, mg_error *err)
{
    if (H5Lexists(loc, path, H5P_DEFAULT) <= 0)
        return 0;
    hid_t d = H5Dopen2(loc, path, H5P_DEFAULT);
    if (d < 0)
        return mg_error_set(err, MG_EFORMAT, "%s: %s is not a dataset", file, path);
    hid_t s = H5Dget_space(d);
    hsize_t got[8] = {0};
    int r = H5Sget_simple_extent_ndims(s);
    int ok = r == rank && r <= 8;
    if (ok) {
        H5Sget_simple_extent_dims(s, got, NULL);
        for (int i = 0; i < rank; i++)
            ok &= got[i] == dims[i];
    }
    H5Sclose(s);
    int rc = 1;
    if (!ok) {
        char have[96] = "", want[96] = "";
        for (int i = 0; i < r && i < 8; i++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%llu", i ? " x " : "", (unsigned long long)got[i]);
        for (int i = 0; i < rank; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%llu", i ? " x " : "", (unsigned long long)dims[i]);
        rc = mg_error_set(err, MG_EFORMAT, "%s: %s has shape (%s), expected (%s)", file, path, have, want);
    }
    else if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        /* read again without the checksum: if that works, the checksum was what failed */
        hid_t dx = H5Pcreate(H5P_DATASET_XFER);
        H5Pset_edc_check(dx, H5Z_DISABLE_EDC);
        int sum_failed = H5Dread(d, mtype, H5S_ALL, H5S_ALL, dx, buf) >= 0;
        H5Pclose(dx);
        hid_t dcpl = H5Dget_create_plist(d);
        int summed = mg_h5_has_filter(dcpl, H5Z_FILTER_FLETCHER32);
        if (dcpl >= 0)
            H5Pclose(dcpl);
        rc = sum_failed ? mg_error_set(err, MG_EDATA, "%s is damaged: %s does not match the checksum recorded when it "
                                       "was written; restore the file from a copy or make it again", file, path)
             : summed   ? mg_error_set(err, MG_EDATA, "%s is damaged: %s does not read (a chunk is corrupt or does not "
                                       "match its checksum); restore the file from a copy or make it again", file, path)
                        : mg_error_set(err, MG_EIO, "%s: reading %s failed (damaged file?)", file, path);
    }
    H5Dclose(d);
    return rc;
}

static const hsize_t DIM3[3] = {3, MG_MODULE_ROWS, MG_MODULE_COLS};
static const hsize_t DIM2[2] = {MG_MODULE_ROWS, MG_MODULE_COLS};

/* The storage cells of the module group g: the leading dimension of its
 * pedestal (or mask) when it has one, else 1; 0 for one out of range. */
static int group_cells(hid_t g)
{
    const char *probe[2] = {"pedestal", "mask"};
    const int plain_rank[2] = {3, 2};
    for (int k = 0; k < 2; k++) {
        if (H5Lexists(g, probe[k], H5P_DEFAULT) <= 0)
            continue;
        hid_t d = H5Dopen2(g, probe[k], H5P_DEFAULT);
        if (d < 0)
            return 1; /* read_ds names it */
        hid_t s = H5Dget_space(d);
        hsize_t dims[8] = {0};
        int r = H5Sget_simple_extent_ndims(s);
        if (r > 0 && r <= 8)
            H5Sget_simple_extent_dims(s, dims, NULL);
        H5Sclose(s);
        H5Dclose(d);
        if (r != plain_rank[k] + 1)
            return 1;
        return dims[0] >= 2 && dims[0] <= MG_CELLS_MAX ? (int)dims[0] : 0;
    }
    return 1;
}

int mg_calib_peek(const char *path, mg_calib_header *h, mg_error *err)
{
    memset(h, 0, sizeof *h);
    h->exposure_s = NAN;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, F_OK) == 0 && mg_h5_probe(path, 0, err))
        return err ? err->code : MG_EDATA;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return mg_error_set(err, MG_EIO, "cannot open calibration file %s (missing, truncated, or not HDF5)", path);
    mg_h5_attr_get_str(f, "detector", h->detector, sizeof h->detector);
    h->taken = mg_h5_attr_get_double(f, "time_taken", 0);
    h->exposure_s = mg_h5_attr_get_double(f, "exposure_time", NAN);
    int rc = 0;
    H5G_info_t gi;
    hsize_t n = H5Gget_info(f, &gi) >= 0 ? gi.nlinks : 0;
    for (hsize_t i = 0; i < n && !rc; i++) {
        char name[MG_NAME_MAX] = {0}, ds[MG_NAME_MAX + 16];
        H5O_info_t oi;
        if (H5Lget_name_by_idx(f, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0 ||
            H5Oget_info_by_name(f, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP)
            continue;
        if (h->nmodules == MG_MAX_MODULES) {
            rc = mg_error_set(err, MG_EFORMAT, "%s has more than %d modules", path, MG_MAX_MODULES);
            break;
        }
        snprintf(ds, sizeof ds, "%s/pedestal", name);
        hid_t d = H5Lexists(f, name, H5P_DEFAULT) > 0 && H5Lexists(f, ds, H5P_DEFAULT) > 0 ? H5Dopen2(f, ds, H5P_DEFAULT)
                                                                                         : -1;
        hsize_t dims[4] = {0};
        int rank = 0;
        if (d >= 0) {
            hid_t sp = H5Dget_space(d);
            rank = H5Sget_simple_extent_ndims(sp);
            if (rank == 3 || rank == 4)
                H5Sget_simple_extent_dims(sp, dims, NULL);
            H5Sclose(sp);
            H5Dclose(d);
        }
        /* (3, 512, 1024), or per storage cell (cells, 3, 512, 1024) */
        const hsize_t *g = rank == 4 ? dims + 1 : dims;
        int cells = rank == 4 ? (int)dims[0] : 1;
        if ((rank != 3 && rank != 4) || g[0] != 3 || g[1] != MG_MODULE_ROWS || g[2] != MG_MODULE_COLS ||
            (rank == 4 && (cells < 2 || cells > MG_CELLS_MAX)))
            rc = mg_error_set(err, MG_EFORMAT, "%s: module %s has no pedestal of ([cells,] 3, 512, 1024)", path,
                              name);
        else {
            h->cells[h->nmodules] = cells;
            snprintf(h->modules[h->nmodules++], MG_NAME_MAX, "%s", name);
        }
    }
    H5Fclose(f);
    if (!rc && h->nmodules == 0)
        rc = mg_error_set(err, MG_EFORMAT, "%s holds no module groups: not a morgul calibration file", path);
    return rc;
}

int mg_calib_read(const char *path, mg_calibration *c, mg_error *err)
{
    mg_calib_init(c);
    mg_h5_register_bitshuffle(NULL);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* a damaged file must not take the run down with it: walked whole in a child first */
    if (access(path, F_OK) == 0 && mg_h5_probe(path, SIZE_MAX, err))
        return err ? err->code : MG_EDATA;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return mg_error_set(err, MG_EIO, "cannot open calibration file %s (missing, or not HDF5)", path);
    int rc = 0;
    hid_t a = H5Aexists(f, "detector") > 0 ? H5Aopen(f, "detector", H5P_DEFAULT) : -1;
    if (a >= 0) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, sizeof c->detector);
        H5Aread(a, t, c->detector);
        H5Tclose(t);
        H5Aclose(a);
    }
    hsize_t n = 0;
    H5G_info_t gi;
    if (H5Gget_info(f, &gi) >= 0)
        n = gi.nlinks;
    for (hsize_t i = 0; i < n && !rc; i++) {
        char name[MG_NAME_MAX] = {0};
        if (H5Lget_name_by_idx(f, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0)
            continue;
        H5O_info_t oi;
        if (H5Oget_info_by_name(f, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP)
            continue;
        hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
        int row = (int)mg_h5_attr_get_double(g, "row", 0), col = (int)mg_h5_attr_get_double(g, "column", 0);
        mg_module_calib *x = mg_calib_module(c, name, row, col);
        if (!x) {
            rc = mg_error_set(err, MG_EFORMAT, "%s has more than %d modules", path, MG_MAX_MODULES);
            H5Gclose(g);
            break;
        }
        mg_h5_attr_get_str(g, "serial", x->serial, sizeof x->serial);
        mg_h5_attr_get_str(g, "source_files", x->sources, sizeof x->sources);
        x->exposure_s = mg_h5_attr_get_double(g, "exposure_time", NAN);
        x->taken = mg_h5_attr_get_double(g, "time_taken", 0);
        if (H5Aexists(g, "dark_frames") > 0) {
            hid_t da = H5Aopen(g, "dark_frames", H5P_DEFAULT);
            hid_t ds = H5Aget_space(da);
            if (H5Sget_simple_extent_npoints(ds) == 3)
                H5Aread(da, H5T_NATIVE_UINT64, x->dark_frames);
            H5Sclose(ds);
            H5Aclose(da);
        }
        if (H5Aexists(g, "cell_dark_frames") > 0) {
            hid_t da = H5Aopen(g, "cell_dark_frames", H5P_DEFAULT);
            hid_t ds = H5Aget_space(da);
            hssize_t np = H5Sget_simple_extent_npoints(ds);
            if (np >= 3 && np <= 3 * MG_CELLS_MAX && np % 3 == 0)
                H5Aread(da, H5T_NATIVE_UINT64, x->cell_frames);
            H5Sclose(ds);
            H5Aclose(da);
        }
        int cells = group_cells(g);
        if (!cells) {
            rc = mg_error_set(err, MG_EFORMAT, "%s: module %s has more than %d storage cells", path, name,
                              MG_CELLS_MAX);
            H5Gclose(g);
            break;
        }
        x->cells = cells;
        /* per-cell parts have a leading cell dimension when there are cells */
        const size_t C = (size_t)cells;
        hsize_t cdim3[4] = {C, 3, MG_MODULE_ROWS, MG_MODULE_COLS}, cdim2[3] = {C, MG_MODULE_ROWS, MG_MODULE_COLS};
        const int c1 = cells > 1;
        struct {
            const char *ds;
            int rank;
            const hsize_t *dims;
            void **buf;
            size_t bytes;
            hid_t t;
        } parts[] = {
            {"pedestal", 3 + c1, c1 ? cdim3 : DIM3, (void **)&x->pedestal, C * 3 * P * sizeof(float), H5T_NATIVE_FLOAT},
            {"pedestal_rms", 3 + c1, c1 ? cdim3 : DIM3, (void **)&x->pedestal_rms, C * 3 * P * sizeof(float),
             H5T_NATIVE_FLOAT},
            {"gain", 3, DIM3, (void **)&x->gain, 3 * P * sizeof(double), H5T_NATIVE_DOUBLE},
            {"mask", 2 + c1, c1 ? cdim2 : DIM2, (void **)&x->mask, C * P * sizeof(uint32_t), H5T_NATIVE_UINT32},
            {"frames_used", 3 + c1, c1 ? cdim3 : DIM3, (void **)&x->frames_used, C * 3 * P * sizeof(uint32_t),
             H5T_NATIVE_UINT32},
            {"wrong_gain", 3 + c1, c1 ? cdim3 : DIM3, (void **)&x->wrong_gain, C * 3 * P * sizeof(uint32_t),
             H5T_NATIVE_UINT32},
        };
        for (size_t k = 0; k < sizeof parts / sizeof *parts && !rc; k++) {
            void *buf = malloc(parts[k].bytes);
            if (!buf) {
                rc = mg_error_set(err, MG_ENOMEM, "out of memory reading %s", path);
                break;
            }
            int r = read_ds(g, path, parts[k].ds, parts[k].rank, parts[k].dims, parts[k].t, buf, err);
            if (r == 1)
                *parts[k].buf = buf;
            else {
                free(buf);
                if (r < 0) {
                    mg_error_prefix(err, "module %s", name);
                    rc = r;
                }
            }
        }
        H5Gclose(g);
    }
    c->exposure_s = mg_h5_attr_get_double(f, "exposure_time", NAN);
    c->taken = mg_h5_attr_get_double(f, "time_taken", 0);
    H5Fclose(f);
    if (!rc && c->nmodules == 0)
        rc = mg_error_set(err, MG_EFORMAT, "%s holds no module groups: not a morgul calibration file", path);
    if (rc)
        mg_calib_free(c);
    return rc;
}

static int write_ds(hid_t g, const char *name, int rank, const hsize_t *dims, hid_t ftype, hid_t mtype, const void *buf)
{
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[4] = {1, 1, MG_MODULE_ROWS, MG_MODULE_COLS}; /* one plane per chunk */
    H5Pset_chunk(dcpl, rank, chunk + (4 - rank));
    /* bitshuffle + LZ4, not deflate: a run reads every table at its start,
     * and inflating them took most of that (0.16 s of 0.24 s for 2 modules) */
    unsigned cd[5];
    mg_bshuf_cd_values(H5Tget_size(ftype), cd);
    H5Pset_filter(dcpl, MG_BSHUF_FILTER_ID, H5Z_FLAG_MANDATORY, 5, cd);
    /* and a checksum of every chunk as stored (HDF5's Fletcher-32, which every HDF5 reader checks): a
     * flipped byte that would still decode gives an error, never other constants */
    H5Pset_fletcher32(dcpl);
    hid_t d = H5Dcreate2(g, name, ftype, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = d < 0 || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0 ? -1 : 0;
    if (d >= 0)
        H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(s);
    return rc;
}

int mg_calib_write(const char *path, const mg_calibration *c, mg_error *err)
{
    if (mg_h5_register_bitshuffle(err))
        return err ? err->code : MG_ESYS;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    /* write beside and rename over: a crash never leaves half a calibration */
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.writing", path);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return mg_error_set(err, MG_EIO, "cannot create %s: %s", tmp, strerror(errno));
    int bad = 0;
    mg_h5_attr_str(f, "detector", c->detector[0] ? c->detector : "jungfrau");
    mg_h5_attr_str(f, "morgul_version", MG_VERSION);
    double exposure = c->exposure_s, taken = c->taken;
    for (int m = 0; m < c->nmodules; m++) {
        const mg_module_calib *x = &c->modules[m];
        if (x->taken > taken && c->taken == 0)
            taken = x->taken;
        if (exposure != exposure && c->exposure_s != c->exposure_s)
            exposure = x->exposure_s;
    }
    if (exposure == exposure)
        mg_h5_attr_double(f, "exposure_time", exposure);
    if (taken > 0) {
        mg_h5_attr_double(f, "time_taken", taken);
        char iso[64];
        mg_calib_time_iso(taken, iso, sizeof iso);
        mg_h5_attr_str(f, "time_taken_iso", iso);
    }
    for (int m = 0; m < c->nmodules && !bad; m++) {
        const mg_module_calib *x = &c->modules[m];
        hid_t g = H5Gcreate2(f, x->name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) {
            bad = 1;
            break;
        }
        mg_h5_attr_str(g, "name", x->name);
        mg_h5_attr_int(g, "row", x->row);
        mg_h5_attr_int(g, "column", x->column);
        char serial[32];
        if (x->serial[0])
            snprintf(serial, sizeof serial, "%s", x->serial);
        else {
            size_t k = 0;
            for (const char *q = x->name; *q && k + 1 < sizeof serial; q++)
                if (*q >= '0' && *q <= '9')
                    serial[k++] = *q;
            serial[k] = 0;
        }
        mg_h5_attr_str(g, "serial", serial);
        if (x->exposure_s == x->exposure_s)
            mg_h5_attr_double(g, "exposure_time", x->exposure_s);
        if (x->taken > 0) {
            char iso[64];
            mg_calib_time_iso(x->taken, iso, sizeof iso);
            mg_h5_attr_double(g, "time_taken", x->taken);
            mg_h5_attr_str(g, "time_taken_iso", iso);
        }
        if (x->sources[0])
            mg_h5_attr_str(g, "source_files", x->sources);
        if (x->dark_frames[0] || x->dark_frames[1] || x->dark_frames[2]) {
            hsize_t three = 3;
            hid_t sp = H5Screate_simple(1, &three, NULL);
            hid_t da = H5Acreate2(g, "dark_frames", H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
            bad |= da < 0 || H5Awrite(da, H5T_NATIVE_UINT64, x->dark_frames) < 0;
            if (da >= 0)
                H5Aclose(da);
            H5Sclose(sp);
            if (mg_calib_cells(x) > 1) {
                hsize_t cd[2] = {(hsize_t)mg_calib_cells(x), 3};
                sp = H5Screate_simple(2, cd, NULL);
                da = H5Acreate2(g, "cell_dark_frames", H5T_STD_U64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
                bad |= da < 0 || H5Awrite(da, H5T_NATIVE_UINT64, x->cell_frames) < 0;
                if (da >= 0)
                    H5Aclose(da);
                H5Sclose(sp);
            }
        }
        const int cells = mg_calib_cells(x), c1 = cells > 1;
        mg_h5_attr_int(g, "storage_cells", cells);
        hsize_t cdim3[4] = {(hsize_t)cells, 3, MG_MODULE_ROWS, MG_MODULE_COLS};
        hsize_t cdim2[3] = {(hsize_t)cells, MG_MODULE_ROWS, MG_MODULE_COLS};
        const hsize_t *d3 = c1 ? cdim3 : DIM3, *d2 = c1 ? cdim2 : DIM2;
        if (x->pedestal)
            bad |= write_ds(g, "pedestal", 3 + c1, d3, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x->pedestal);
        if (x->pedestal_rms)
            bad |= write_ds(g, "pedestal_rms", 3 + c1, d3, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x->pedestal_rms);
        if (x->gain)
            bad |= write_ds(g, "gain", 3, DIM3, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, x->gain);
        if (x->mask)
            bad |= write_ds(g, "mask", 2 + c1, d2, H5T_STD_U32LE, H5T_NATIVE_UINT32, x->mask);
        if (x->frames_used)
            bad |= write_ds(g, "frames_used", 3 + c1, d3, H5T_STD_U32LE, H5T_NATIVE_UINT32, x->frames_used);
        if (x->wrong_gain)
            bad |= write_ds(g, "wrong_gain", 3 + c1, d3, H5T_STD_U32LE, H5T_NATIVE_UINT32, x->wrong_gain);
        H5Gclose(g);
    }
    bad |= H5Fclose(f) < 0;
    if (bad) {
        remove(tmp);
        return mg_error_set(err, MG_EIO, "writing the calibration file %s failed (disk full?)", path);
    }
    if (rename(tmp, path)) {
        remove(tmp);
        return mg_error_set(err, MG_EIO, "cannot replace %s: %s", path, strerror(errno));
    }
    return 0;
}

int mg_pedestal_import_h5(const char *path, const char *name, mg_module_calib *m, mg_error *err)
{
    if (mg_calib_cells(m) > 1)
        return mg_error_set(err, MG_ECONFIG, "module %s is calibrated per storage cell (%d cells); %s has one pedestal "
                            "per gain: import it into a new calibration file", name, m->cells, path);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, F_OK) == 0 && mg_h5_probe(path, SIZE_MAX, err))
        return err ? err->code : MG_EDATA;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return mg_error_set(err, MG_EIO, "cannot open %s (missing, or not HDF5)", path);
    float *ped = malloc(3 * P * sizeof(float)), *rms = malloc(3 * P * sizeof(float));
    uint32_t *mask = malloc(P * sizeof(uint32_t));
    int rc = 0, have_rms = 0, have_mask = 0, found = 0;
    const char *layout = "";
    if (!ped || !rms || !mask) {
        rc = mg_error_set(err, MG_ENOMEM, "out of memory");
        goto done;
    }
    char grp[MG_NAME_MAX + 2];
    snprintf(grp, sizeof grp, "/%s", name);
    /* PSI: /gains (3,H,W) pedestals, /gainsRMS, /pixel_mask */
    if ((rc = read_ds(f, path, "gains", 3, DIM3, H5T_NATIVE_FLOAT, ped, err)) == 1) {
        found = 1;
        layout = "PSI";
        have_rms = read_ds(f, path, "gainsRMS", 3, DIM3, H5T_NATIVE_FLOAT, rms, err) == 1;
        have_mask = read_ds(f, path, "pixel_mask", 2, DIM2, H5T_NATIVE_UINT32, mask, err) == 1;
        rc = 0;
    } else if (rc == 0 && H5Lexists(f, "p0", H5P_DEFAULT) > 0) {
        /* the original morgul: /p0 /p1 /p2 */
        layout = "morgul p0/p1/p2";
        found = 1;
        const char *names[3] = {"p0", "p1", "p2"};
        for (int g = 0; g < 3 && !rc; g++) {
            int r = read_ds(f, path, names[g], 2, DIM2, H5T_NATIVE_FLOAT, ped + g * P, err);
            rc = r == 1 ? 0 : r == 0 ? mg_error_set(err, MG_EFORMAT, "%s has p0 but no %s", path, names[g]) : r;
        }
    } else if (rc == 0 && H5Lexists(f, grp + 1, H5P_DEFAULT) > 0) {
        hid_t g = H5Gopen2(f, grp + 1, H5P_DEFAULT);
        if (H5Lexists(g, "pedestal", H5P_DEFAULT) > 0) { /* a morgul calibration file */
            layout = "morgul calibration";
            found = 1;
            int r = read_ds(g, path, "pedestal", 3, DIM3, H5T_NATIVE_FLOAT, ped, err);
            rc = r == 1 ? 0 : r;
            have_rms = !rc && read_ds(g, path, "pedestal_rms", 3, DIM3, H5T_NATIVE_FLOAT, rms, err) == 1;
            have_mask = !rc && read_ds(g, path, "mask", 2, DIM2, H5T_NATIVE_UINT32, mask, err) == 1;
        } else if (H5Lexists(g, "pedestal_0", H5P_DEFAULT) > 0) { /* original morgul, per-module groups */
            layout = "morgul per-module groups";
            found = 1;
            const char *names[3] = {"pedestal_0", "pedestal_1", "pedestal_2"};
            for (int k = 0; k < 3 && !rc; k++) {
                int r = read_ds(g, path, names[k], 2, DIM2, H5T_NATIVE_FLOAT, ped + k * P, err);
                rc = r == 1 ? 0 : r == 0 ? mg_error_set(err, MG_EFORMAT, "%s/%s has no %s", path, name, names[k]) : r;
            }
        }
        H5Gclose(g);
    }
    if (!rc && !found)
        rc = mg_error_set(err, MG_EFORMAT,
                          "%s holds no pedestals for %s in a known layout (PSI /gains, morgul /p0../p2 or "
                          "/%s/pedestal_0..2, or a morgul calibration group /%s)", path, name, name, name);
    if (!rc) {
        free(m->pedestal);
        m->pedestal = ped;
        ped = NULL;
        if (have_rms) {
            free(m->pedestal_rms);
            m->pedestal_rms = rms;
            rms = NULL;
        }
        if (have_mask) {
            free(m->mask);
            m->mask = mask;
            mask = NULL;
        }
        (void)layout;
    }
done:
    H5Fclose(f);
    free(ped);
    free(rms);
    free(mask);
    return rc;
}

void mg_calib_time_iso(double t, char *buf, size_t cap)
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
