/* verify.c - files against the checksums recorded when they were written
 * (see morgul/verify.h). */
#include "morgul/verify.h"

#include <glob.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "morgul/bitshuffle.h"
#include "morgul/checksum.h"
#include "morgul/h5filter.h"
#include "morgul/h5util.h"
#include "morgul/rawread.h"

/* Where a frame file keeps its frames and records: raw files, then NXmx ones. */
static const struct {
    const char *data, *crc;
} LAYOUTS[] = {
    {"data", "frames/chunk_crc32c"},
    {"entry/data/data", "entry/instrument/detector/jungfrau/frames/chunk_crc32c"},
};

/* Whether `path` names an object of loc (each component checked: H5Lexists
 * fails on a missing group on the way). */
static int exists(hid_t loc, const char *path)
{
    char part[512];
    for (const char *p = path;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - path) : strlen(path);
        if (n >= sizeof part)
            return 0;
        memcpy(part, path, n);
        part[n] = 0;
        if (H5Lexists(loc, part, H5P_DEFAULT) <= 0)
            return 0;
        if (!slash)
            return 1;
        p = slash + 1;
    }
}

typedef struct listing {
    FILE *out;
    int max, shown;
    uint64_t more;
} listing;

__attribute__((format(printf, 2, 3))) static void say(listing *l, const char *fmt, ...)
{
    if (!l->out)
        return;
    if (l->shown < l->max) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(l->out, fmt, ap);
        va_end(ap);
        l->shown++;
    } else
        l->more++;
}

/* Every frame of one frame file: its stored chunk against its CRC-32C, then decoded. */
static void verify_frames(hid_t f, const char *path, int layout, listing *l, mg_verify_result *res)
{
    hid_t d = H5Dopen2(f, LAYOUTS[layout].data, H5P_DEFAULT);
    hid_t s = d >= 0 ? H5Dget_space(d) : -1, t = d >= 0 ? H5Dget_type(d) : -1;
    hsize_t dims[4] = {0};
    int rank = s >= 0 ? H5Sget_simple_extent_dims(s, dims, NULL) : -1;
    size_t esize = t >= 0 ? H5Tget_size(t) : 0;
    if (rank < 2 || rank > 4 || (esize != 2 && esize != 4)) {
        say(l, "%s: its frames dataset does not read (damaged file)\n", path);
        res->files_damaged++;
        goto done;
    }
    size_t frame_bytes = esize;
    for (int k = 1; k < rank; k++)
        frame_bytes *= dims[k];
    uint32_t *crc = NULL;
    if (exists(f, LAYOUTS[layout].crc)) {
        hid_t c = H5Dopen2(f, LAYOUTS[layout].crc, H5P_DEFAULT);
        hid_t cs = c >= 0 ? H5Dget_space(c) : -1;
        crc = cs >= 0 && (hsize_t)H5Sget_simple_extent_npoints(cs) >= dims[0] ? malloc((dims[0] + 1) * 4) : NULL;
        if (crc && H5Dread(c, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, crc) < 0) {
            free(crc);
            crc = NULL;
        }
        if (cs >= 0)
            H5Sclose(cs);
        if (c >= 0)
            H5Dclose(c);
    }
    mg_bshuf_ctx *ctx = mg_bshuf_ctx_new(esize, MG_BSHUF_AUTO, NULL);
    uint8_t *chunk = NULL, *plain = malloc(frame_bytes);
    size_t cap = 0;
    for (hsize_t i = 0; i < dims[0] && ctx && plain; i++) {
        hsize_t off[4] = {i, 0, 0, 0}, size = 0;
        uint32_t fmask = 0;
        const char *why = NULL;
        res->frames++;
        if (H5Dget_chunk_storage_size(d, off, &size) < 0 || size == 0)
            why = "no chunk stored";
        else {
            if (size > cap) {
                uint8_t *n = realloc(chunk, size);
                if (!n) {
                    why = "out of memory";
                    goto judged;
                }
                chunk = n;
                cap = size;
            }
            if (H5Dread_chunk(d, H5P_DEFAULT, off, &fmask, chunk) < 0)
                why = "its chunk does not read";
            else if (crc && mg_crc32c(0, chunk, size) != crc[i])
                why = "its chunk does not match the CRC-32C recorded when it was written";
            else if (!(fmask & 1) && mg_bshuf_decompress(ctx, chunk, size, plain, frame_bytes, NULL) !=
                                         (int64_t)frame_bytes)
                why = "its chunk does not decode";
            else if ((fmask & 1) && size != frame_bytes)
                why = "its stored size is wrong";
        }
    judged:
        if (why) {
            res->frames_damaged++;
            say(l, "%s: frame %llu is damaged: %s\n", path, (unsigned long long)i, why);
        } else if (!crc)
            res->frames_unchecked++;
    }
    mg_bshuf_ctx_free(ctx);
    free(chunk);
    free(plain);
    free(crc);
done:
    if (t >= 0)
        H5Tclose(t);
    if (s >= 0)
        H5Sclose(s);
    if (d >= 0)
        H5Dclose(d);
}

typedef struct walk {
    const char *path;
    listing *l;
    mg_verify_result *res;
} walk;

/* One dataset of any other file, read whole (HDF5 checks each chunk's Fletcher-32 checksum). */
static herr_t verify_object(hid_t root, const char *name, const H5O_info_t *info, void *ctx)
{
    walk *w = ctx;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    hid_t d = H5Dopen2(root, name, H5P_DEFAULT);
    if (d < 0) {
        w->res->datasets_damaged++;
        say(w->l, "%s: dataset %s does not open\n", w->path, name);
        return 0;
    }
    hid_t dcpl = H5Dget_create_plist(d), t = H5Dget_type(d), s = H5Dget_space(d);
    int checked = mg_h5_has_filter(dcpl, H5Z_FILTER_FLETCHER32);
    hssize_t npts = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    size_t sz = t >= 0 ? H5Tget_size(t) : 0;
    w->res->datasets++;
    if (npts < 0 || !sz) {
        w->res->datasets_damaged++;
        say(w->l, "%s: dataset %s does not read\n", w->path, name);
    } else if (npts > 0 && H5Tget_class(t) != H5T_VLEN && !H5Tis_variable_str(t)) {
        void *buf = malloc((size_t)npts * sz);
        if (buf && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
            w->res->datasets_damaged++;
            say(w->l, "%s: dataset %s is damaged: it does not match its checksum, or does not read\n", w->path, name);
        } else if (!checked)
            w->res->datasets_unchecked++;
        free(buf);
    }
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    H5Dclose(d);
    return 0;
}

/* One file: probed, then its frames (a frame file) or its datasets. */
static void verify_file(const char *path, listing *l, mg_verify_result *res)
{
    res->files++;
    mg_error e = {0};
    if (mg_h5_probe(path, 0, &e)) {
        res->files_damaged++;
        if (l->out)
            fprintf(l->out, "%s\n", e.message);
        return;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        res->files_damaged++;
        if (l->out)
            fprintf(l->out, "%s: does not open as HDF5 (damaged, or a run still writing it: morgul repair)\n", path);
        return;
    }
    char status[32] = "";
    mg_h5_attr_get_str(f, "morgul_status", status, sizeof status);
    int master = H5Aexists(f, "morgul_records") > 0;
    if (master && !strcmp(status, "writing")) {
        res->files_unfinished++;
        if (l->out)
            fprintf(l->out, "%s: the run did not end (status \"writing\"): morgul repair finishes its files\n", path);
    }
    int layout = -1;
    for (int k = 0; k < (int)(sizeof LAYOUTS / sizeof *LAYOUTS) && layout < 0; k++)
        if (exists(f, LAYOUTS[k].data) && exists(f, LAYOUTS[k].crc))
            layout = k;
    for (int k = 0; k < (int)(sizeof LAYOUTS / sizeof *LAYOUTS) && layout < 0; k++)
        if (exists(f, LAYOUTS[k].data) && (exists(f, "frames") || exists(f, "entry/instrument/detector/jungfrau")))
            layout = k;
    if (master)
        ; /* its frames are the data files', checked on their own */
    else if (layout >= 0)
        verify_frames(f, path, layout, l, res);
    else {
        walk w = {path, l, res};
        if (H5Ovisit(f, H5_INDEX_NAME, H5_ITER_INC, verify_object, &w) < 0) {
            res->files_damaged++;
            if (l->out)
                fprintf(l->out, "%s: its objects do not all read (damaged file)\n", path);
        }
    }
    H5Fclose(f);
}

/* The files of one set (PREFIX_master.h5 and PREFIX_data_*.h5), in order. */
static int verify_set(const char *prefix, listing *l, mg_verify_result *res)
{
    char pat[4200], master[4200];
    snprintf(master, sizeof master, "%s_master.h5", prefix);
    snprintf(pat, sizeof pat, "%s_data_[0-9][0-9][0-9][0-9][0-9][0-9].h5", prefix);
    int n = 0;
    if (access(master, F_OK) == 0) {
        verify_file(master, l, res);
        n++;
    }
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t k = 0; k < g.gl_pathc; k++)
            verify_file(g.gl_pathv[k], l, res);
        n += (int)g.gl_pathc;
        globfree(&g);
    }
    return n;
}

int mg_verify(const char *path, FILE *out, int max_list, mg_verify_result *res, mg_error *err)
{
    memset(res, 0, sizeof *res);
    if (mg_h5_register_bitshuffle(err))
        return err ? err->code : MG_ESYS;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    listing l = {out, max_list > 0 ? max_list : 50, 0, 0};
    char prefix[4096];
    size_t n = strlen(path);
    const char *tail = "_master.h5";
    int is_master = n > strlen(tail) && !strcmp(path + n - strlen(tail), tail);
    if (is_master || (access(path, F_OK) != 0 && n < sizeof prefix - 32)) {
        /* a run: the master's set and every later acquisition's */
        snprintf(prefix, sizeof prefix, "%.*s", (int)(is_master ? n - strlen(tail) : n), path);
        int found = verify_set(prefix, &l, res);
        char pat[4200];
        snprintf(pat, sizeof pat, "%s_acq[0-9][0-9][0-9]_master.h5", prefix);
        glob_t g;
        if (glob(pat, 0, NULL, &g) == 0) {
            for (size_t k = 0; k < g.gl_pathc; k++) {
                char acq[4200];
                snprintf(acq, sizeof acq, "%.*s", (int)(strlen(g.gl_pathv[k]) - strlen(tail)), g.gl_pathv[k]);
                found += verify_set(acq, &l, res);
            }
            globfree(&g);
        }
        if (!found)
            return mg_error_set(err, MG_EINVAL, "%s: no such file, and no run's files (%s_master.h5, %s_data_*.h5)",
                                path, prefix, prefix);
    } else if (access(path, R_OK) != 0)
        return mg_error_set(err, MG_EIO, "cannot read %s", path);
    else if (!mg_file_is_hdf5(path))
        return mg_error_set(err, MG_EFORMAT, "%s is not an HDF5 file", path);
    else
        verify_file(path, &l, res);
    if (out && l.more)
        fprintf(out, "... and %llu more\n", (unsigned long long)l.more);
    return 0;
}

int mg_verify_damaged(const mg_verify_result *res)
{
    return res->files_damaged || res->files_unfinished || res->frames_damaged || res->datasets_damaged;
}
