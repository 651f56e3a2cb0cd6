/* rawread.c - raw frames back from morgul's raw files and the original
 * morgul's per-module files (contract in morgul/rawread.h). */
#include "morgul/rawread.h"

#include <glob.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "morgul/bitshuffle.h"
#include "morgul/checksum.h"
#include "morgul/h5filter.h"
#include "morgul/h5util.h"
#include "morgul/jungfrau.h"

#define P ((size_t)MG_MODULE_PIXELS)

/* Frames [first, first + count) of the raw data, stored as frames
 * [src_first, ...) of dataset `dset` in `file` ("" : the file opened). */
typedef struct source {
    char file[1024], dset[256];
    hsize_t first, count, src_first;
} source;

/* A thread's buffer for one frame's stored bytes, and the frame's name for
 * the error (decompression happens away from the file). */
struct mg_rawread_buf {
    uint8_t *bytes;
    size_t cap, len, want;
    int state; /* BUF_EMPTY, BUF_CHUNK (compressed), BUF_PLAIN (unfiltered), BUF_DONE (raw already holds it) */
    size_t frame;
    char path[1024];
    mg_bshuf_ctx *ctx; /* element size 2 */
    int have_crc;      /* the chunk's CRC-32C was recorded when it was written: checked before decoding */
    uint32_t crc;
};
enum { BUF_EMPTY, BUF_CHUNK, BUF_PLAIN, BUF_DONE };

struct mg_rawread {
    mg_detector det;
    int original;         /* one file per module */
    int nfiles;
    hid_t f[MG_MAX_MODULES], d[MG_MAX_MODULES];
    hid_t fspace, mspace; /* of d[0] (morgul) or of each read (original) */
    char paths[MG_MAX_MODULES][1024];
    size_t nframes, nmod;
    mg_module_frame *recs; /* nframes x nmod */
    uint32_t *crc;         /* per frame, CRC-32C of its stored chunk; NULL: not recorded (older files) */
    int64_t *index;
    int gain;
    double start, end, exposure;
    mg_counter counters[64]; /* the raw run's /run counters */
    char counter_names[64][64];
    int ncounters;
    /* the direct path (morgul files): each frame's chunk read as stored and
     * decompressed by the caller, outside HDF5 (mg_rawread_fetch) */
    source *src;
    size_t nsrc;
    long open_src;        /* the source whose dataset is open, -1 none */
    hid_t src_f, src_d;   /* its file (-1: r->f[0]) and dataset */
    int src_direct;       /* 1 if its chunks are one frame each, bitshuffle + LZ4 uint16 */
    mg_rawread_buf *own;  /* mg_rawread_frame's */
};

int mg_file_is_hdf5(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char b[8];
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    int ok = fread(b, 1, 8, fp) == 8 && !memcmp(b, sig, 8);
    fclose(fp);
    return ok;
}

/* A scalar dataset as double, or `dflt`. */
static double scalar(hid_t f, const char *name, double dflt)
{
    double v = dflt;
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
        hid_t s = H5Dget_space(d), t = H5Dget_type(d);
        if (H5Sget_simple_extent_npoints(s) == 1 && H5Tget_class(t) != H5T_STRING &&
            H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0)
            v = dflt;
        H5Tclose(t);
        H5Sclose(s);
        H5Dclose(d);
    }
    return v;
}

/* A scalar string dataset (fixed or variable length) into dst, "" if none. */
static void scalar_str(hid_t f, const char *name, char *dst, size_t cap)
{
    dst[0] = 0;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0)
        return;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t s = H5Dget_space(d), t = H5Dget_type(d);
    if (H5Tget_class(t) == H5T_STRING && H5Sget_simple_extent_npoints(s) == 1) {
        hid_t m = H5Tcopy(H5T_C_S1);
        H5Tset_cset(m, H5Tget_cset(t)); /* HDF5 converts no character sets: h5py writes UTF-8 */
        if (H5Tis_variable_str(t)) {
            char *v = NULL;
            H5Tset_size(m, H5T_VARIABLE);
            if (H5Dread(d, m, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0 && v) {
                snprintf(dst, cap, "%s", v);
                H5free_memory(v);
            }
        } else {
            H5Tset_size(m, cap);
            if (H5Dread(d, m, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
                dst[0] = 0;
            dst[cap - 1] = 0;
        }
        H5Tclose(m);
    }
    H5Tclose(t);
    H5Sclose(s);
    H5Dclose(d);
}

/* Reads dataset `path` of f into buf as `mtype` if it has n elements. */
static int read_all(hid_t f, const char *path, hid_t mtype, void *buf, size_t n)
{
    if (H5Lexists(f, path, H5P_DEFAULT) <= 0)
        return -1;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    int ok = (size_t)H5Sget_simple_extent_npoints(s) == n && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
    H5Sclose(s);
    H5Dclose(d);
    return ok ? 0 : -1;
}

/* The dims of dataset `data` of f if its rank is 3 or 4 (0 otherwise). */
static int data_dims(hid_t f, hid_t *d, hsize_t *dims)
{
    *d = H5Lexists(f, "data", H5P_DEFAULT) > 0 ? H5Dopen2(f, "data", H5P_DEFAULT) : -1;
    if (*d < 0)
        return 0;
    hid_t s = H5Dget_space(*d);
    int rank = H5Sget_simple_extent_ndims(s);
    if (rank == 3 || rank == 4)
        H5Sget_simple_extent_dims(s, dims, NULL);
    H5Sclose(s);
    return rank == 3 || rank == 4 ? rank : 0;
}

/* The original files' gain mode names (slsDetector's) as a dark run's gain. */
static int gain_of_mode(const char *mode)
{
    if (!mode[0])
        return -1;
    if (!strcmp(mode, "dynamic") || !strcmp(mode, "normal") || !strcmp(mode, "g0"))
        return 0;
    if (!strcmp(mode, "forceswitchg1") || !strcmp(mode, "fixg1") || !strcmp(mode, "g1"))
        return 1;
    if (!strcmp(mode, "forceswitchg2") || !strcmp(mode, "fixg2") || !strcmp(mode, "g2"))
        return 2;
    return -1;
}

static int name_modules(mg_rawread *r, const mg_rawread_naming *nm, mg_error *err)
{
    mg_detector known;
    int have_known = 0;
    if (nm && nm->config) {
        int rc = mg_detector_load(&known, nm->config, err);
        if (rc)
            return rc;
        have_known = 1;
    }
    const char *np = nm ? nm->names : NULL;
    for (size_t m = 0; m < r->nmod; m++) {
        mg_module *mod = &r->det.modules[m];
        if (have_known) {
            int found = -1;
            for (int k = 0; k < known.nmodules; k++)
                if (known.modules[k].row == mod->row && known.modules[k].column == mod->column)
                    found = k;
            if (found < 0)
                return mg_error_set(err, MG_ECONFIG, "%s is the module at row %d column %d, which %s does not describe",
                                    r->paths[m], mod->row, mod->column, nm->config);
            snprintf(mod->name, MG_NAME_MAX, "%s", known.modules[found].name);
            snprintf(r->det.name, sizeof r->det.name, "%s", known.name);
        } else if (np && *np) {
            size_t len = strcspn(np, ",");
            snprintf(mod->name, MG_NAME_MAX, "%.*s", (int)(len < MG_NAME_MAX - 1 ? len : MG_NAME_MAX - 1), np);
            np += len + (np[len] == ',');
        } else
            snprintf(mod->name, MG_NAME_MAX, "M%03zu", m);
    }
    return 0;
}

static int open_original(mg_rawread *r, const char *const *paths, const hsize_t *dims0, const mg_rawread_naming *nm,
                         mg_error *err)
{
    r->original = 1;
    r->nmod = (size_t)r->nfiles;
    r->nframes = (size_t)dims0[0];
    int gain = -2;
    for (int m = 0; m < r->nfiles; m++) {
        if (m > 0) {
            r->f[m] = H5Fopen(paths[m], H5F_ACC_RDONLY, H5P_DEFAULT);
            hsize_t d3[4] = {0};
            int rank = r->f[m] >= 0 ? data_dims(r->f[m], &r->d[m], d3) : 0;
            if (rank != 3 || d3[0] != dims0[0] || d3[1] != MG_MODULE_ROWS || d3[2] != MG_MODULE_COLS)
                return mg_error_set(err, MG_EFORMAT, "%s has no /data of %llu frames of 512 x 1024 like %s", paths[m],
                                    (unsigned long long)dims0[0], paths[0]);
        }
        r->det.modules[m].row = (int)scalar(r->f[m], "row", (double)m);
        r->det.modules[m].column = (int)scalar(r->f[m], "column", 0);
        char mode[64];
        scalar_str(r->f[m], "gainmode", mode, sizeof mode);
        int g = gain_of_mode(mode);
        gain = gain == -2 || gain == g ? g : -1; /* files that disagree say nothing */
    }
    r->gain = gain < 0 ? -1 : gain;
    r->exposure = scalar(r->f[0], "exptime", NAN);
    double ts = scalar(r->f[0], "timestamp", 0);
    r->start = ts > 1e8 ? ts : 0; /* Unix seconds, not a detector clock */
    int rc = name_modules(r, nm, err);
    if (rc)
        return rc;
    r->recs = calloc(r->nframes * r->nmod + 1, sizeof *r->recs);
    r->index = malloc((r->nframes + 1) * sizeof(int64_t));
    if (!r->recs || !r->index)
        return mg_error_set(err, MG_ENOMEM, "out of memory for %zu frames' records", r->nframes);
    /* the files record one exposure and timestamp per module: read once, given to every frame */
    uint64_t stamp[MG_MAX_MODULES];
    for (size_t m = 0; m < r->nmod; m++)
        stamp[m] = (uint64_t)scalar(r->f[m], "timestamp", 0);
    const uint32_t exposure = r->exposure == r->exposure ? (uint32_t)llround(r->exposure * 1e7) : 0;
    for (size_t i = 0; i < r->nframes; i++) {
        r->index[i] = (int64_t)i;
        for (size_t m = 0; m < r->nmod; m++) {
            mg_module_frame *rm = &r->recs[i * r->nmod + m];
            rm->frame_number = i + 1;
            rm->exposure_length = exposure;
            rm->timestamp = stamp[m];
            rm->packets = MG_PACKETS_PER_MODULE;
            if (r->gain > 0)
                rm->daq_info = r->gain == 1 ? MG_DAQ_FORCE_G1 : MG_DAQ_FORCE_G2;
            memset(rm->mask, 0xFF, 16);
        }
    }
    hsize_t cnt3[3] = {1, MG_MODULE_ROWS, MG_MODULE_COLS};
    r->mspace = H5Screate_simple(3, cnt3, NULL);
    return 0;
}

/* Mapping i's source file of a virtual dataset (creation list dcpl) as a
 * path: a relative name beside the master file.  0 for the master file
 * itself ("."), -1 if the name cannot be read. */
static int source_path(const mg_rawread *r, hid_t dcpl, size_t i, char *path, size_t cap)
{
    char name[1024];
    if (H5Pget_virtual_filename(dcpl, i, name, sizeof name) <= 0)
        return -1;
    if (!strcmp(name, "."))
        return 0;
    const char *slash = strrchr(r->paths[0], '/');
    const int dirlen = slash && name[0] != '/' ? (int)(slash - r->paths[0] + 1) : 0;
    snprintf(path, cap, "%.*s%s", dirlen, r->paths[0], name);
    return 1;
}

/* A master file's frames are a virtual dataset over its data files; HDF5
 * reads a missing source file as zeros, so every one must be there. */
static int check_sources(mg_rawread *r, mg_error *err)
{
    hid_t dcpl = H5Dget_create_plist(r->d[0]);
    int rc = 0;
    size_t n = 0;
    if (H5Pget_layout(dcpl) == H5D_VIRTUAL && H5Pget_virtual_count(dcpl, &n) >= 0) {
        for (size_t i = 0; i < n && !rc; i++) {
            char path[2100];
            if (source_path(r, dcpl, i, path, sizeof path) <= 0)
                continue;
            if (!mg_file_is_hdf5(path))
                rc = mg_error_set(err, MG_EIO, "%s: its data file %s is missing or not HDF5; keep the data files "
                                               "beside the master file", r->paths[0], path);
        }
    }
    H5Pclose(dcpl);
    return rc;
}

/* The bounds of a selection that is one box of whole frames (rank 4,
 * every module, row and column): 1, with its first frame and count. */
static int frame_box(hid_t space, size_t nmod, hsize_t *first, hsize_t *count)
{
    hsize_t lo[4], hi[4];
    if (space < 0 || H5Sget_simple_extent_ndims(space) != 4 || H5Sget_select_bounds(space, lo, hi) < 0)
        return 0;
    const hssize_t n = H5Sget_select_npoints(space);
    const hsize_t frames = hi[0] - lo[0] + 1;
    if (n < 0 || (hsize_t)n != frames * nmod * P || lo[1] || hi[1] != nmod - 1 || lo[2] ||
        hi[2] != MG_MODULE_ROWS - 1 || lo[3] || hi[3] != MG_MODULE_COLS - 1)
        return 0;
    *first = lo[0];
    *count = frames;
    return 1;
}

/* The direct path's map from frames to the datasets that store them: a
 * master's virtual dataset is mapped file by file (each mapping one box of
 * whole frames), a chunked dataset is its own source.  Anything else
 * leaves the map empty, and every frame is read through HDF5's filters. */
static void plan_sources(mg_rawread *r)
{
    r->open_src = -1;
    r->src_f = r->src_d = -1;
    hid_t dcpl = H5Dget_create_plist(r->d[0]);
    const H5D_layout_t layout = H5Pget_layout(dcpl);
    size_t n = 0;
    if (layout == H5D_CHUNKED) {
        if ((r->src = calloc(1, sizeof *r->src))) {
            r->src[0].count = r->nframes;
            r->nsrc = 1;
        }
    } else if (layout == H5D_VIRTUAL && H5Pget_virtual_count(dcpl, &n) >= 0 && n &&
               (r->src = calloc(n, sizeof *r->src))) {
        int ok = 1;
        for (size_t i = 0; i < n && ok; i++) {
            source *sc = &r->src[i];
            hid_t vs = H5Pget_virtual_vspace(dcpl, i), ss = H5Pget_virtual_srcspace(dcpl, i);
            hsize_t vcount = 0, scount = 0;
            ok = frame_box(vs, r->nmod, &sc->first, &vcount);
            /* a source selection of all (as morgul writes it) has no extent until its file is opened */
            if (ok && ss >= 0 && H5Sget_select_type(ss) == H5S_SEL_ALL)
                scount = vcount;
            else
                ok = ok && frame_box(ss, r->nmod, &sc->src_first, &scount);
            /* the file found as check_sources found it; "" for the master itself */
            ok = ok && vcount == scount && source_path(r, dcpl, i, sc->file, sizeof sc->file) >= 0 &&
                 H5Pget_virtual_dsetname(dcpl, i, sc->dset, sizeof sc->dset) > 0;
            sc->count = vcount;
            if (vs >= 0)
                H5Sclose(vs);
            if (ss >= 0)
                H5Sclose(ss);
        }
        if (ok)
            r->nsrc = n;
        else {
            free(r->src);
            r->src = NULL;
        }
    }
    H5Pclose(dcpl);
}

/* Whether the chunks of dataset d are each one frame of every module,
 * uint16, compressed by bitshuffle + LZ4 and nothing else, as morgul
 * writes them (anything else goes through HDF5's filters). */
static int chunks_direct(hid_t d, size_t nmod, uint64_t frames_needed)
{
    hid_t t = H5Dget_type(d), dcpl = H5Dget_create_plist(d), sp = H5Dget_space(d);
    hsize_t ch[4] = {0}, dims[4] = {0};
    unsigned flags = 0, cd[8] = {0}, config = 0;
    size_t ncd = 8;
    int ok = t >= 0 && dcpl >= 0 && sp >= 0 && H5Tequal(t, H5T_STD_U16LE) > 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
             H5Pget_chunk(dcpl, 4, ch) == 4 && ch[0] == 1 && ch[1] == nmod && ch[2] == MG_MODULE_ROWS &&
             ch[3] == MG_MODULE_COLS && H5Pget_nfilters(dcpl) == 1 &&
             H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, 0, NULL, &config) == MG_BSHUF_FILTER_ID && ncd >= 5 &&
             cd[2] == 2 && cd[4] == 2 && H5Sget_simple_extent_ndims(sp) == 4 &&
             H5Sget_simple_extent_dims(sp, dims, NULL) == 4 && dims[0] >= frames_needed && dims[1] == nmod &&
             dims[2] == MG_MODULE_ROWS && dims[3] == MG_MODULE_COLS;
    if (t >= 0)
        H5Tclose(t);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (sp >= 0)
        H5Sclose(sp);
    return ok;
}

static void close_source(mg_rawread *r)
{
    if (r->src_d >= 0 && r->src_d != r->d[0])
        H5Dclose(r->src_d);
    if (r->src_f >= 0)
        H5Fclose(r->src_f);
    r->src_f = r->src_d = -1;
    r->open_src = -1;
    r->src_direct = 0;
}

/* The source holding frame i, its dataset opened (one at a time: a run
 * may have thousands of data files): its index, -1 if frame i is to be
 * read through HDF5's filters, or -2 if its data file or dataset cannot be
 * opened (HDF5 would read a virtual dataset's missing source as zeros). */
static long source_of(mg_rawread *r, size_t i)
{
    long k = r->open_src;
    if (k < 0 || i < r->src[k].first || i - r->src[k].first >= r->src[k].count) {
        for (k = 0; k < (long)r->nsrc; k++)
            if (i >= r->src[k].first && i - r->src[k].first < r->src[k].count)
                break;
        if (k == (long)r->nsrc)
            return -1;
        close_source(r);
        r->open_src = k;
        const source *sc = &r->src[k];
        if (sc->file[0])
            r->src_f = H5Fopen(sc->file, H5F_ACC_RDONLY, H5P_DEFAULT);
        const hid_t f = sc->file[0] ? r->src_f : r->f[0];
        r->src_d = !sc->dset[0] ? r->d[0] : f >= 0 ? H5Dopen2(f, sc->dset, H5P_DEFAULT) : -1;
        r->src_direct = r->src_d >= 0 && chunks_direct(r->src_d, r->nmod, sc->src_first + sc->count);
    }
    return r->src_d < 0 ? -2 : r->src_direct ? k : -1;
}

/* The raw run's counters: every unsigned scalar of /run (at most 64). */
static void read_counters(mg_rawread *r, hid_t f)
{
    hid_t g = H5Lexists(f, "run", H5P_DEFAULT) > 0 ? H5Gopen2(f, "run", H5P_DEFAULT) : -1;
    if (g < 0)
        return;
    H5G_info_t gi;
    for (hsize_t i = 0; H5Gget_info(g, &gi) >= 0 && i < gi.nlinks && r->ncounters < 64; i++) {
        char name[64];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) <= 0)
            continue;
        hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
        if (d < 0)
            continue;
        hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
        uint64_t v = 0;
        if (H5Tget_class(t) == H5T_INTEGER && H5Sget_simple_extent_type(sp) == H5S_SCALAR &&
            H5Dread(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) >= 0) {
            int k = r->ncounters++;
            snprintf(r->counter_names[k], sizeof r->counter_names[k], "%s", name);
            r->counters[k] = (mg_counter){r->counter_names[k], v};
        }
        H5Sclose(sp);
        H5Tclose(t);
        H5Dclose(d);
    }
    H5Gclose(g);
}

static int open_morgul(mg_rawread *r, const hsize_t *dims, mg_error *err)
{
    const char *in = r->paths[0];
    char status[32] = "";
    mg_h5_attr_get_str(r->f[0], "morgul_status", status, sizeof status);
    if (!strcmp(status, "writing"))
        return mg_error_set(err, MG_EDATA, "%s belongs to a run that has not ended: it is still being written, or "
                                           "the run died; wait for its end, or finish its files with morgul repair",
                            in);
    hid_t f = r->f[0];
    r->nframes = (size_t)dims[0];
    r->nmod = (size_t)dims[1];
    r->gain = -1;
    char(*names)[MG_NAME_MAX] = calloc(r->nmod, MG_NAME_MAX);
    int *rows = calloc(r->nmod, sizeof(int)), *cols = calloc(r->nmod, sizeof(int));
    r->recs = calloc(r->nframes * r->nmod + 1, sizeof *r->recs);
    r->index = malloc((r->nframes + 1) * sizeof(int64_t));
    void *buf = malloc((r->nframes * r->nmod + 1) * 16);
    int rc = check_sources(r, err);
    if (!rc && (!names || !rows || !cols || !r->recs || !r->index || !buf))
        rc = mg_error_set(err, MG_ENOMEM, "out of memory for %zu frames' records", r->nframes);
    if (!rc) {
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, MG_NAME_MAX);
        int bad = read_all(f, "detector/module_name", st, names, r->nmod) ||
                  read_all(f, "detector/module_row", H5T_NATIVE_INT, rows, r->nmod) ||
                  read_all(f, "detector/module_column", H5T_NATIVE_INT, cols, r->nmod);
        H5Tclose(st);
        if (bad)
            rc = mg_error_set(err, MG_EFORMAT, "%s has no /detector description for its %zu module(s)", in, r->nmod);
        else {
            /* the run's detector as it was described: its name, interfaces and ports */
            hid_t g = H5Gopen2(f, "detector", H5P_DEFAULT);
            if (g >= 0) {
                if (H5Aexists(g, "name") > 0)
                    mg_h5_attr_get_str(g, "name", r->det.name, sizeof r->det.name);
                H5Gclose(g);
            }
            int ifs[MG_MAX_MODULES], ports[2 * MG_MAX_MODULES];
            if (!read_all(f, "detector/module_interfaces", H5T_NATIVE_INT, ifs, r->nmod))
                for (size_t m = 0; m < r->nmod; m++)
                    r->det.modules[m].interfaces = ifs[m] == 2 ? 2 : 1;
            if (!read_all(f, "detector/module_ports", H5T_NATIVE_INT, ports, r->nmod * 2))
                for (size_t m = 0; m < r->nmod; m++)
                    for (int i = 0; i < 2; i++)
                        r->det.modules[m].ports[i] = ports[2 * m + i] > 0 && ports[2 * m + i] < 65536
                                                         ? (uint16_t)ports[2 * m + i] : 0;
        }
    }
    for (size_t m = 0; m < r->nmod && !rc; m++) {
        snprintf(r->det.modules[m].name, MG_NAME_MAX, "%s", names[m]);
        r->det.modules[m].row = rows[m];
        r->det.modules[m].column = cols[m];
    }
    const size_t n = r->nframes * r->nmod;
    /* without records or masks every packet counts as there (a missing packet's words are invalid anyway) */
    for (size_t i = 0; r->recs && i < n; i++)
        memset(r->recs[i].mask, 0xFF, 16);
    int have = !rc && !read_all(f, "frames/index", H5T_NATIVE_INT64, r->index, r->nframes);
#define REC(path, field, mtype, ctype)                                                  \
    if (have && !read_all(f, path, mtype, buf, n))                                      \
        for (size_t i = 0; i < n; i++)                                                  \
            r->recs[i].field = ((const ctype *)buf)[i];
    REC("frames/frame_number", frame_number, H5T_NATIVE_UINT64, uint64_t)
    REC("frames/bunch_id", bunch_id, H5T_NATIVE_UINT64, uint64_t)
    REC("frames/timestamp", timestamp, H5T_NATIVE_UINT64, uint64_t)
    REC("frames/exposure_length", exposure_length, H5T_NATIVE_UINT32, uint32_t)
    REC("frames/daq_info", daq_info, H5T_NATIVE_UINT32, uint32_t)
    REC("frames/packets_received", packets, H5T_NATIVE_UINT16, uint16_t)
    REC("frames/module_id", module_id, H5T_NATIVE_UINT16, uint16_t)
#undef REC
    if (have && !read_all(f, "frames/packet_mask", H5T_NATIVE_UINT8, buf, n * 16))
        for (size_t i = 0; i < n; i++)
            memcpy(r->recs[i].mask, (const uint8_t *)buf + i * 16, 16);
    if (!have && !rc)
        for (size_t i = 0; i < r->nframes; i++) {
            r->index[i] = (int64_t)i;
            for (size_t m = 0; m < r->nmod; m++)
                r->recs[i * r->nmod + m].packets = MG_PACKETS_PER_MODULE;
        }
    r->crc = have ? malloc((r->nframes + 1) * sizeof *r->crc) : NULL;
    if (r->crc && read_all(f, "frames/chunk_crc32c", H5T_NATIVE_UINT32, r->crc, r->nframes)) {
        free(r->crc);
        r->crc = NULL;
    }
    r->start = mg_h5_attr_get_double(f, "start_time", 0);
    r->end = mg_h5_attr_get_double(f, "end_time", 0);
    read_counters(r, f);
    r->exposure = r->nframes && r->recs && r->recs[0].exposure_length ? r->recs[0].exposure_length * 1e-7 : NAN;
    free(names), free(rows), free(cols), free(buf);
    if (!rc) {
        hsize_t cnt[4] = {1, r->nmod, MG_MODULE_ROWS, MG_MODULE_COLS};
        r->mspace = H5Screate_simple(4, cnt, NULL);
        r->fspace = H5Dget_space(r->d[0]);
        plan_sources(r);
    }
    return rc;
}

/* Probes (morgul/h5util.h) the files given and, for a morgul master
 * (PREFIX_master.h5), the data files beside it (PREFIX_data_*.h5) its
 * virtual datasets map: their metadata and the small datasets, not the
 * frames (a damaged chunk is an error of its own, found when it is read). */
static int probe_files(const char *const *paths, int npaths, mg_error *err)
{
    const size_t small = (size_t)1 << 20;
    for (int m = 0; m < npaths; m++) {
        size_t n = strlen(paths[m]);
        const char *tail = "_master.h5";
        if (n > strlen(tail) && !strcmp(paths[m] + n - strlen(tail), tail)) {
            char pat[4200];
            snprintf(pat, sizeof pat, "%.*s_data_*.h5", (int)(n - strlen(tail)), paths[m]);
            glob_t g;
            if (glob(pat, 0, NULL, &g) == 0) {
                int rc = 0;
                for (size_t k = 0; k < g.gl_pathc && !rc; k++)
                    rc = mg_h5_probe(g.gl_pathv[k], small, err);
                globfree(&g);
                if (rc)
                    return rc;
            }
        }
        if (access(paths[m], F_OK) == 0 && mg_h5_probe(paths[m], small, err))
            return err ? err->code : MG_EDATA;
    }
    return 0;
}

mg_rawread *mg_rawread_open(const char *const *paths, int npaths, const mg_rawread_naming *naming, mg_error *err)
{
    if (npaths < 1 || npaths > MG_MAX_MODULES) {
        mg_error_set(err, MG_EINVAL, "give one morgul raw file or 1 to %d per-module files, not %d", MG_MAX_MODULES,
                     npaths);
        return NULL;
    }
    if (mg_h5_register_bitshuffle(err))
        return NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    mg_rawread *r = calloc(1, sizeof *r);
    if (!r) {
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    r->nfiles = npaths;
    r->fspace = r->mspace = -1;
    for (int m = 0; m < MG_MAX_MODULES; m++)
        r->f[m] = r->d[m] = -1;
    for (int m = 0; m < npaths; m++)
        snprintf(r->paths[m], sizeof r->paths[m], "%s", paths[m]);
    snprintf(r->det.name, sizeof r->det.name, "jungfrau");
    /* damaged files must not crash the reader: each is walked in a child first */
    int rc = probe_files(paths, npaths, err);
    r->f[0] = rc ? -1 : H5Fopen(paths[0], H5F_ACC_RDONLY, H5P_DEFAULT);
    hsize_t dims[4] = {0};
    int rank = r->f[0] >= 0 ? data_dims(r->f[0], &r->d[0], dims) : 0;
    if (rc)
        ;
    else if (r->f[0] < 0)
        rc = mg_error_set(err, MG_EIO, "cannot open %s (missing, or not HDF5)", paths[0]);
    else if (rank == 3 && H5Lexists(r->f[0], "detector", H5P_DEFAULT) <= 0 && dims[1] == MG_MODULE_ROWS &&
             dims[2] == MG_MODULE_COLS)
        rc = open_original(r, paths, dims, naming, err);
    else if (rank == 4 && dims[2] == MG_MODULE_ROWS && dims[3] == MG_MODULE_COLS && dims[1] >= 1 &&
             dims[1] <= MG_MAX_MODULES) {
        if (npaths != 1)
            rc = mg_error_set(err, MG_EINVAL, "%s is a morgul raw file: give it alone", paths[0]);
        else
            rc = open_morgul(r, dims, err);
    } else
        rc = mg_error_set(err, MG_EFORMAT, "%s has no /data of raw frames ((frames, modules, 512, 1024) from morgul, "
                                           "or (frames, 512, 1024) from the original morgul): not a raw file", paths[0]);
    if (!rc) {
        r->det.nmodules = (int)r->nmod;
        /* the run's own interfaces and ports when the files say (morgul's do), else stand-ins that pass
         * validation (original files: there is no network here) */
        for (size_t m = 0; m < r->nmod; m++)
            if (!r->det.modules[m].interfaces || !r->det.modules[m].ports[0]) {
                r->det.modules[m].interfaces = 1;
                r->det.modules[m].ports[0] = (uint16_t)(1 + m);
            }
        rc = mg_detector_validate(&r->det, err);
    }
    if (rc) {
        mg_rawread_close(r);
        return NULL;
    }
    return r;
}

void mg_rawread_close(mg_rawread *r)
{
    if (!r)
        return;
    if (r->src)
        close_source(r);
    free(r->src);
    mg_rawread_buf_free(r->own);
    if (r->mspace >= 0)
        H5Sclose(r->mspace);
    if (r->fspace >= 0)
        H5Sclose(r->fspace);
    for (int m = 0; m < MG_MAX_MODULES; m++) {
        if (r->d[m] >= 0)
            H5Dclose(r->d[m]);
        if (r->f[m] >= 0)
            H5Fclose(r->f[m]);
    }
    free(r->recs);
    free(r->crc);
    free(r->index);
    free(r);
}

const mg_detector *mg_rawread_detector(const mg_rawread *r) { return &r->det; }
size_t mg_rawread_frames(const mg_rawread *r) { return r->nframes; }
int mg_rawread_original(const mg_rawread *r) { return r->original; }
const mg_module_frame *mg_rawread_records(const mg_rawread *r, size_t i) { return r->recs + i * r->nmod; }
int64_t mg_rawread_index(const mg_rawread *r, size_t i) { return r->index[i]; }
int mg_rawread_gain(const mg_rawread *r) { return r->gain; }
double mg_rawread_start(const mg_rawread *r) { return r->start; }
double mg_rawread_end(const mg_rawread *r) { return r->end; }
int mg_rawread_counters(const mg_rawread *r, const mg_counter **counters)
{
    *counters = r->counters;
    return r->ncounters;
}
double mg_rawread_exposure(const mg_rawread *r) { return r->exposure; }

int mg_rawread_complete(const mg_rawread *r, size_t i)
{
    for (size_t m = 0; m < r->nmod; m++)
        if (r->recs[i * r->nmod + m].packets != MG_PACKETS_PER_MODULE)
            return 0;
    return 1;
}

/* A failed read as an mg_error.  With the thread-safe HDF5 (Debian's) the
 * error stack is the calling thread's, and HDF5 1.10 frees a thread's stack
 * at its exit without its entries: cleared here, or a correcting thread that
 * met a corrupt chunk would leak them. */
static int read_failed(mg_error *err, size_t i, const char *path, const char *why)
{
    H5Eclear2(H5E_DEFAULT);
    return mg_error_set(err, MG_EIO, "reading frame %zu of %s failed (%s)", i, path, why);
}

mg_rawread_buf *mg_rawread_buf_new(mg_error *err)
{
    mg_rawread_buf *b = calloc(1, sizeof *b);
    if (b && !(b->ctx = mg_bshuf_ctx_new(2, MG_BSHUF_AUTO, err))) {
        free(b);
        return NULL;
    }
    if (!b)
        mg_error_set(err, MG_ENOMEM, "out of memory for a frame buffer");
    return b;
}

void mg_rawread_buf_free(mg_rawread_buf *b)
{
    if (!b)
        return;
    mg_bshuf_ctx_free(b->ctx);
    free(b->bytes);
    free(b);
}

/* Frame i through HDF5's own reading (and filters), whole. */
static int read_whole(mg_rawread *r, size_t i, uint16_t *raw, mg_error *err)
{
    if (r->original) {
        hsize_t start[3] = {i, 0, 0}, cnt[3] = {1, MG_MODULE_ROWS, MG_MODULE_COLS};
        for (size_t m = 0; m < r->nmod; m++) {
            hid_t sp = H5Dget_space(r->d[m]);
            H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, cnt, NULL);
            int ok = H5Dread(r->d[m], H5T_NATIVE_UINT16, r->mspace, sp, H5P_DEFAULT, raw + m * P) >= 0;
            H5Sclose(sp);
            if (!ok)
                return read_failed(err, i, r->paths[m], "corrupt or truncated file?");
        }
        return 0;
    }
    hsize_t start[4] = {i, 0, 0, 0}, cnt[4] = {1, r->nmod, MG_MODULE_ROWS, MG_MODULE_COLS};
    H5Sselect_hyperslab(r->fspace, H5S_SELECT_SET, start, NULL, cnt, NULL);
    if (H5Dread(r->d[0], H5T_NATIVE_UINT16, r->mspace, r->fspace, H5P_DEFAULT, raw) < 0)
        return read_failed(err, i, r->paths[0], "corrupt chunk, or a data file missing?");
    return 0;
}

int mg_rawread_fetch(mg_rawread *r, size_t i, mg_rawread_buf *b, uint16_t *raw, mg_error *err)
{
    b->state = BUF_EMPTY;
    if (i >= r->nframes)
        return mg_error_set(err, MG_EINVAL, "frame %zu is past the end (%zu frames)", i, r->nframes);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* per thread where HDF5 is thread-safe: errors come back as mg_error */
    b->frame = i;
    b->have_crc = 0;
    b->want = r->nmod * P * sizeof(uint16_t);
    const long k = r->original || !r->nsrc ? -1 : source_of(r, i);
    if (k == -2) {
        const source *sc = &r->src[r->open_src];
        H5Eclear2(H5E_DEFAULT);
        return mg_error_set(err, MG_EIO, "reading frame %zu failed: %s has no dataset %s or cannot be opened (moved "
                            "or deleted since the run was opened?); keep the data files beside the master file", i,
                            sc->file[0] ? sc->file : r->paths[0], sc->dset);
    }
    if (k >= 0) {
        const source *sc = &r->src[k];
        snprintf(b->path, sizeof b->path, "%s", sc->file[0] ? sc->file : r->paths[0]);
        hsize_t off[4] = {sc->src_first + (i - sc->first), 0, 0, 0}, size = 0;
        /* a chunk never written is left to HDF5, which reads its fill value, as before */
        if (H5Dget_chunk_storage_size(r->src_d, off, &size) >= 0 && size > 0) {
            if (size > b->cap) {
                uint8_t *nb = realloc(b->bytes, size);
                if (!nb)
                    return mg_error_set(err, MG_ENOMEM, "out of memory for frame %zu's %llu stored bytes", i,
                                        (unsigned long long)size);
                b->bytes = nb;
                b->cap = size;
            }
            uint32_t skipped = 0;
            if (H5Dread_chunk(r->src_d, H5P_DEFAULT, off, &skipped, b->bytes) < 0)
                return read_failed(err, i, b->path, "corrupt or truncated file?");
            b->len = size;
            b->state = skipped & 1 ? BUF_PLAIN : BUF_CHUNK; /* the filter skipped: stored as they are */
            b->have_crc = r->crc != NULL;
            b->crc = r->crc ? r->crc[i] : 0;
            return 0;
        }
    }
    int rc = read_whole(r, i, raw, err);
    if (!rc)
        b->state = BUF_DONE;
    return rc;
}

int mg_rawread_decode(mg_rawread_buf *b, uint16_t *raw, mg_error *err)
{
    const int state = b->state;
    b->state = BUF_EMPTY;
    if (state == BUF_DONE)
        return 0;
    if (state == BUF_PLAIN && b->len == b->want) {
        memcpy(raw, b->bytes, b->want);
        return 0;
    }
    if (b->have_crc && (state == BUF_PLAIN || state == BUF_CHUNK) && mg_crc32c(0, b->bytes, b->len) != b->crc)
        return mg_error_set(err, MG_EDATA, "frame %zu of %s is damaged: its stored chunk does not match the CRC-32C "
                            "recorded when it was written (morgul verify lists every damaged frame)", b->frame,
                            b->path);
    mg_error e = {0};
    if (state == BUF_CHUNK && mg_bshuf_decompress(b->ctx, b->bytes, b->len, raw, b->want, &e) == (int64_t)b->want)
        return 0;
    if (state == BUF_EMPTY)
        return mg_error_set(err, MG_EINVAL, "no frame fetched to decode");
    return mg_error_set(err, MG_EIO, "reading frame %zu of %s failed (corrupt chunk: %s)", b->frame, b->path,
                        state == BUF_PLAIN ? "wrong size" : e.message);
}

int mg_rawread_frame(mg_rawread *r, size_t i, uint16_t *raw, mg_error *err)
{
    if (!r->own && !(r->own = mg_rawread_buf_new(err)))
        return err ? err->code : MG_ENOMEM;
    const int rc = mg_rawread_fetch(r, i, r->own, raw, err);
    return rc ? rc : mg_rawread_decode(r->own, raw, err);
}
