/* h5util.c - HDF5 attribute helpers (see morgul/h5util.h). */
#include "morgul/h5util.h"

#include "morgul/bitshuffle.h"
#include "morgul/h5filter.h"

#include <errno.h>
#include <math.h>
#include <time.h>
#include <fcntl.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int mg_h5_attr_str(hid_t loc, const char *name, const char *v)
{
    if (H5Aexists(loc, name) > 0)
        H5Adelete(loc, name);
    hid_t s = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    hid_t a = H5Acreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, t, v) >= 0 ? 0 : -1;
    if (a >= 0)
        H5Aclose(a);
    H5Tclose(t);
    H5Sclose(s);
    return rc;
}

/* A scalar attribute of file type ftype from a value of memory type mtype. */
static int attr_scalar(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, ftype, s, H5P_DEFAULT, H5P_DEFAULT);
    int rc = a >= 0 && H5Awrite(a, mtype, v) >= 0 ? 0 : -1;
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(s);
    return rc;
}

int mg_h5_attr_int(hid_t loc, const char *name, int v) { return attr_scalar(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, &v); }

int mg_h5_attr_double(hid_t loc, const char *name, double v)
{
    return attr_scalar(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v);
}

double mg_h5_attr_get_double(hid_t loc, const char *name, double dflt)
{
    double v = dflt;
    if (H5Aexists(loc, name) > 0) {
        hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) < 0)
            v = dflt;
        H5Aclose(a);
    }
    return v;
}

void mg_h5_attr_get_str(hid_t loc, const char *name, char *dst, size_t cap)
{
    dst[0] = 0;
    if (H5Aexists(loc, name) <= 0)
        return;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    if (H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft)) {
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, cap);
        H5Aread(a, t, dst);
        H5Tclose(t);
        dst[cap - 1] = 0;
    }
    H5Tclose(ft);
    H5Aclose(a);
}

int mg_h5_put_string(hid_t loc, const char *name, const char *v, const char *description)
{
    if (H5Lexists(loc, name, H5P_DEFAULT) > 0)
        H5Ldelete(loc, name, H5P_DEFAULT);
    hid_t s = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    hid_t d = H5Dcreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int bad = d < 0 || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0 ||
              (description && mg_h5_attr_str(d, "description", description) < 0);
    if (d >= 0)
        H5Dclose(d);
    H5Tclose(t);
    H5Sclose(s);
    return bad ? -1 : 0;
}

int mg_h5_has_filter(hid_t dcpl, H5Z_filter_t id)
{
    for (int k = 0, n = dcpl >= 0 ? H5Pget_nfilters(dcpl) : 0; k < n; k++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        if (H5Pget_filter2(dcpl, (unsigned)k, &flags, &ncd, cd, 0, NULL, NULL) == id)
            return 1;
    }
    return 0;
}

void mg_h5_time_iso(double t, int decimals, char *out, size_t cap)
{
    static const long scale[7] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    if (decimals < 0)
        decimals = 0;
    if (decimals > 6)
        decimals = 6;
    time_t sec = (time_t)floor(t);
    long frac = (long)((t - (double)sec) * (double)scale[decimals] + 0.5);
    if (frac >= scale[decimals]) {
        sec++;
        frac -= scale[decimals];
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    if (decimals)
        snprintf(out, cap, "%s.%0*ldZ", day, decimals, frac);
    else
        snprintf(out, cap, "%sZ", day);
}

/* ---- the probe: walk a file in a child process (see the header) ---- */

/* the child's exit codes; anything else is a crash */
enum { PROBE_OK = 0, PROBE_HDF5_ERROR = 97, PROBE_CHUNKS = 98 };
#define PROBE_ATTR_MAX ((size_t)64 << 20)

typedef struct probe {
    hid_t file;
    size_t read_max;
    int errors;
    int bad_chunks; /* chunks that do not fit their dataset's layout */
} probe;

/* Reads one attribute whole, in its own type (vlen data is left: the child ends soon). */
static herr_t probe_attr(hid_t loc, const char *name, const H5A_info_t *info, void *ctx)
{
    (void)info;
    probe *p = ctx;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, s = a >= 0 ? H5Aget_space(a) : -1;
    hssize_t n = s >= 0 ? H5Sget_simple_extent_npoints(s) : -1;
    size_t sz = t >= 0 ? H5Tget_size(t) : 0;
    if (n < 0 || !sz)
        p->errors++;
    else if ((size_t)n * sz <= PROBE_ATTR_MAX) {
        void *buf = calloc((size_t)n ? (size_t)n : 1, sz);
        if (buf && H5Aread(a, t, buf) < 0)
            p->errors++;
        free(buf);
    }
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
    if (a >= 0)
        H5Aclose(a);
    return 0;
}

/* Whether the chunk at `offset` fits the layout: stored at all, and, when
 * bitshuffle is the only filter, its header's size is the chunk's (a
 * chunk of another size, from an overwritten layout message, makes HDF5
 * copy past its buffers).  Unfiltered chunks hold exactly the chunk. */
static int chunk_fits(hid_t d, const hsize_t *offset, size_t chunk_bytes, int nfilters, int bshuf)
{
    unsigned fmask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(d, offset, &fmask, &addr, &size) < 0)
        return 0;
    if (addr == HADDR_UNDEF)
        return 1; /* never written: read as fill values */
    if (addr == 0 || size == 0)
        return 0;
    if (!nfilters)
        return size == chunk_bytes;
    if (!bshuf || fmask)
        return size > 0;
    if (size < 12 || size > chunk_bytes + chunk_bytes / 8 + 4096)
        return 0;
    unsigned char *buf = malloc(size);
    uint32_t fm = 0;
    int ok = buf && H5Dread_chunk(d, H5P_DEFAULT, offset, &fm, buf) >= 0;
    uint64_t n = 0;
    for (int k = 0; ok && k < 8; k++)
        n = n << 8 | buf[k];
    free(buf);
    return ok && n == chunk_bytes;
}

/* A chunked dataset's chunks against its layout: the first chunk always
 * (damage to the layout shows there), every chunk when the dataset is at
 * most read_max bytes. */
static void probe_chunks(probe *p, hid_t d, hid_t dcpl, hid_t s, size_t elem)
{
    hsize_t dims[H5S_MAX_RANK], cdims[H5S_MAX_RANK], off[H5S_MAX_RANK] = {0};
    int rank = H5Sget_simple_extent_dims(s, dims, NULL);
    if (rank < 1 || H5Pget_chunk(dcpl, rank, cdims) != rank) {
        p->errors++;
        return;
    }
    size_t chunk_bytes = elem;
    for (int k = 0; k < rank; k++) {
        if (!cdims[k] || chunk_bytes > SIZE_MAX / cdims[k]) {
            p->bad_chunks++;
            return;
        }
        chunk_bytes *= cdims[k];
    }
    int nf = H5Pget_nfilters(dcpl), bshuf = 0;
    if (nf == 1) {
        unsigned flags = 0, cd[8];
        size_t ncd = 8;
        bshuf = H5Pget_filter2(dcpl, 0, &flags, &ncd, cd, 0, NULL, NULL) == MG_BSHUF_FILTER_ID;
    }
    for (int k = 0; k < rank; k++)
        if (!dims[k])
            return; /* no chunk */
    int all = H5Dget_storage_size(d) <= p->read_max;
    for (;;) {
        if (!chunk_fits(d, off, chunk_bytes, nf, bshuf)) {
            p->bad_chunks++;
            return;
        }
        if (!all)
            return;
        int k = rank - 1;
        while (k >= 0 && (off[k] += cdims[k]) >= dims[k])
            off[k--] = 0;
        if (k < 0)
            return;
    }
}

static void probe_dataset(probe *p, hid_t d)
{
    hid_t dcpl = H5Dget_create_plist(d), t = H5Dget_type(d);
    H5D_layout_t lay = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
    /* a virtual dataset's extent can come from its sources: they are probed on their own */
    hid_t s = lay != H5D_VIRTUAL && lay != H5D_LAYOUT_ERROR ? H5Dget_space(d) : -1;
    if (t < 0 || lay == H5D_LAYOUT_ERROR || (lay != H5D_VIRTUAL && s < 0)) {
        p->errors++;
    } else if (lay != H5D_VIRTUAL) {
        hssize_t n = H5Sget_simple_extent_npoints(s);
        size_t sz = H5Tget_size(t);
        hsize_t chunks = 0;
        /* a chunk index that cannot be walked is damage the real read may not survive */
        if (lay == H5D_CHUNKED && H5Dget_num_chunks(d, s, &chunks) < 0)
            p->bad_chunks++;
        else if (lay == H5D_CHUNKED && sz)
            probe_chunks(p, d, dcpl, s, sz);
        if (!p->bad_chunks && n > 0 && sz && H5Dget_storage_size(d) <= p->read_max && (size_t)n <= SIZE_MAX / sz) {
            void *buf = malloc((size_t)n * sz);
            if (buf && H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
                p->errors++;
            free(buf);
        }
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (s >= 0)
        H5Sclose(s);
    if (t >= 0)
        H5Tclose(t);
}

/* Probes one object, and a group's members by index: one by one, going on
 * past members that do not open (H5Ovisit would stop the whole walk at the
 * first, leaving the rest unprobed for a reader that opens them by name).
 * Objects already seen (hard links, loops) are not walked again. */
#define PROBE_MAX_DEPTH 32
#define PROBE_MAX_OBJECTS 100000

typedef struct probe_seen {
    haddr_t *addr;
    size_t n, cap;
} probe_seen;

static int seen_before(probe_seen *v, haddr_t a)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->addr[i] == a)
            return 1;
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 256;
        haddr_t *n = realloc(v->addr, cap * sizeof *n);
        if (!n)
            return 1;
        v->addr = n;
        v->cap = cap;
    }
    v->addr[v->n++] = a;
    return 0;
}

static void probe_object(probe *p, probe_seen *seen, hid_t o, int depth)
{
    H5O_info_t info;
    if (H5Oget_info2(o, &info, H5O_INFO_BASIC) < 0) {
        p->errors++;
        return;
    }
    if (seen_before(seen, info.addr) || seen->n > PROBE_MAX_OBJECTS)
        return;
    hsize_t idx = 0;
    if (H5Aiterate2(o, H5_INDEX_NAME, H5_ITER_NATIVE, &idx, probe_attr, p) < 0)
        p->errors++;
    if (info.type == H5O_TYPE_DATASET)
        probe_dataset(p, o);
    if (info.type != H5O_TYPE_GROUP || depth >= PROBE_MAX_DEPTH)
        return;
    H5G_info_t g;
    if (H5Gget_info(o, &g) < 0) {
        p->errors++;
        return;
    }
    for (hsize_t i = 0; i < g.nlinks && !p->bad_chunks; i++) {
        char name[1024];
        H5L_info_t li;
        if (H5Lget_name_by_idx(o, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0 ||
            H5Lget_info(o, name, &li, H5P_DEFAULT) < 0) {
            p->errors++;
            continue;
        }
        if (li.type != H5L_TYPE_HARD)
            continue; /* soft and external links: their targets are probed where they live */
        hid_t c = H5Oopen(o, name, H5P_DEFAULT);
        if (c < 0) {
            p->errors++;
            continue;
        }
        probe_object(p, seen, c, depth + 1);
        H5Oclose(c);
    }
}

static int probe_child(const char *path, size_t read_max)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    mg_h5_register_bitshuffle(NULL);
    probe p = {.read_max = read_max};
    p.file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (p.file < 0)
        return PROBE_HDF5_ERROR;
    hid_t root = H5Gopen2(p.file, "/", H5P_DEFAULT);
    probe_seen seen = {0};
    if (root < 0)
        p.errors++;
    else
        probe_object(&p, &seen, root, 0);
    /* not closed: the child leaves with _exit, touching none of the parent's open files */
    return p.bad_chunks ? PROBE_CHUNKS : p.errors ? PROBE_HDF5_ERROR : PROBE_OK;
}

int mg_h5_probe(const char *path, size_t read_max, mg_error *err)
{
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid < 0)
        return mg_error_set(err, MG_ESYS, "cannot start a process to check %s: %s", path, strerror(errno));
    if (pid == 0) {
        /* the child's crash reports (glibc's, the sanitizers') are not the user's concern: the parent
         * says what happened */
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, STDERR_FILENO);
        setenv("LIBC_FATAL_STDERR_", "1", 1);
        _exit(probe_child(path, read_max));
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return mg_error_set(err, MG_ESYS, "cannot wait for the check of %s: %s", path, strerror(errno));
    if (WIFEXITED(st) && (WEXITSTATUS(st) == PROBE_OK || WEXITSTATUS(st) == PROBE_HDF5_ERROR))
        return 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == PROBE_CHUNKS)
        return mg_error_set(err, MG_EDATA, "%s is damaged: a dataset's chunk index or stored chunks do not fit "
                            "its layout (the HDF5 library would read past them). Nothing was read from it; restore it from a copy "
                            "or make it again", path);
    char how[64];
    if (WIFSIGNALED(st))
        snprintf(how, sizeof how, "signal %d, %s", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(how, sizeof how, "exit status %d", WEXITSTATUS(st));
    return mg_error_set(err, MG_EDATA, "%s is damaged: the HDF5 library crashes reading it (%s). Nothing was read "
                        "from it; restore it from a copy or make it again", path, how);
}
