/* rawfile.c - raw frames to HDF5 (contract and layout in morgul/rawfile.h). */
#include "morgul/rawfile.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <hdf5.h>
#include <libgen.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "morgul/bitshuffle.h"
#include "morgul/h5filter.h"
#include "morgul/h5util.h"

#define META_BLOCK 256 /* frames of metadata buffered before a write */
/* At most this long between syncs: the data file's records and HDF5's metadata flushed (SWMR keeps the file
 * readable whenever the process dies) and the master file rewritten if a data file began since; so a crash
 * loses at most the last second. */
#define SYNC_NS 500000000ull

enum { M_INDEX, M_FN, M_PACKETS, M_MASK, M_BUNCH, M_TS, M_EXP, M_DAQ, M_MODID, M_CRC, M_COUNT };

static const struct meta_def {
    const char *path;
    int per_module; /* 0: (frames), 1: (frames, modules), 16: (frames, modules, 16) */
    size_t size;    /* bytes per element */
    const char *units, *description; /* written as attributes of the dataset */
} META[M_COUNT] = {
    [M_INDEX] = {"index", 0, 8, NULL, "image number within the acquisition (0 = its first frame)"},
    [M_FN] = {"frame_number", 1, 8, NULL, "each module's frame number from its packet headers"},
    [M_PACKETS] = {"packets_received", 1, 2, NULL, "packets of the module that arrived, of 128"},
    [M_MASK] = {"packet_mask", 16, 1, NULL,
                "bit q%8 of byte q/8: the module's packet q (rows 4q..4q+3) arrived; missing rows read 0xFFFF"},
    [M_BUNCH] = {"bunch_id", 1, 8, NULL, "bunch id from the packet headers"},
    [M_TS] = {"timestamp", 1, 8, "1e-7 s", "the detector's time stamp from the packet headers (10 MHz clock)"},
    [M_EXP] = {"exposure_length", 1, 4, "1e-7 s", "exposure time from the packet headers"},
    [M_DAQ] = {"daq_info", 1, 4, NULL,
               "DAQ info from the packet headers: gain settings, storage cell (bits 8-11), event code"},
    [M_MODID] = {"module_id", 1, 2, NULL, "module id from the packet headers (0: no packet came)"},
    [M_CRC] = {"chunk_crc32c", 0, 4, NULL,
               "CRC-32C of the frame's chunk as stored (the compressed bytes), taken when it was written: "
               "morgul verify checks it"},
};

/* units and description attributes of the dataset at `path` of `loc` */
static int describe(hid_t loc, const char *path, const char *units, const char *description)
{
    hid_t d = H5Dopen2(loc, path, H5P_DEFAULT);
    if (d < 0)
        return -1;
    int bad = (units && mg_h5_attr_str(d, "units", units) < 0) ||
              (description && mg_h5_attr_str(d, "description", description) < 0);
    H5Dclose(d);
    return bad ? -1 : 0;
}

static double unix_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + now.tv_nsec * 1e-9;
}

static void note_records(mg_rawfile *f, int64_t index, const mg_module_frame *mods);

static hid_t meta_type(int i)
{
    switch (META[i].size) {
    case 8: return H5T_STD_U64LE;
    case 4: return H5T_STD_U32LE;
    case 2: return H5T_STD_U16LE;
    default: return H5T_STD_U8LE;
    }
}

#define RESERVE_BYTES (8u << 20) /* room kept back to close the files on a full disk */

struct mg_rawfile {
    double t_created; /* Unix s when the writer (or the acquisition's files) began */
    /* the current acquisition as the data tell it (mg_rawfile_time, the records) */
    double t_first, t_last;      /* Unix s of its first and last frame's arrival, 0: not known */
    uint64_t ts_first, ts_last;  /* detector time stamps (0.1 us) of the first and last frame that had one */
    int64_t ts_first_i, ts_last_i; /* their image numbers */
    uint32_t exposure;           /* exposure length (0.1 us) of the first frame that had a packet */
    uint16_t module_id[MG_MAX_MODULES]; /* the first id each module's headers gave, 0: none yet */
    int id_pending;              /* a module's id became known after the master was written */
    mg_rawfile_config cfg;
    mg_frame_layout lay;     /* the layout in use (raw unless given) */
    char meta_path[M_COUNT][256];
    char det_path[256];
    int frank;               /* rank of one frame */
    hsize_t fdims[3];
    hid_t ftype;
    size_t esize;
    char run_prefix[4096];   /* -o: the first acquisition's files */
    char prefix[4120];       /* the current acquisition's: run_prefix, then run_prefix_acqNNN */
    int acq;                 /* current acquisition, 0-based */
    char master[4200];
    char made_dirs[8][4200]; /* directories created for -o, removed again if the run is abandoned */
    int nmade;
    int created;             /* data files of the current acquisition this writer created */
    char reserve[4200]; /* a file holding RESERVE_BYTES, removed when the disk fills */
    int have_reserve;
    int dirfd;          /* the output directory, for its free space */
    int nmod;
    uint64_t per_file;
    /* current data file */
    hid_t file, data, meta[M_COUNT];
    int file_no;           /* 1-based */
    uint64_t in_file;      /* frames in the current file */
    uint64_t last_sync;    /* CLOCK_MONOTONIC ns of the last sync */
    int master_files;      /* data files the master file on disk reaches (the last one growing) */
    int disk_files;        /* closed data files known to be on the disk (synced), from the first on */
    uint64_t meta_written; /* frames of metadata in the file */
    uint8_t *mbuf[M_COUNT];
    uint64_t mbuf_n;
    /* all files of the current acquisition */
    uint64_t total, bytes;
    uint64_t run_total;    /* every acquisition's */
    _Atomic uint64_t synced; /* run_total at the last sync that succeeded: on disk whatever happens */
    uint64_t *file_frames; /* frames per file */
    int files_cap;
    int pending[4096];     /* closed data files of the set still to be converted to the 1.8 format */
    int npending;
    int unconverted;       /* the set's data files left in the 1.10 format (a reader held them open) */
    int unconverted_over;  /* of those, the ones past the pending list */
};

static void data_path(const mg_rawfile *f, int no, char *out, size_t cap)
{
    snprintf(out, cap, "%s_data_%06d.h5", f->prefix, no);
}

/* A closed file's data on the disk (`all`: its every attribute too). */
static void sync_file(const char *path, int all)
{
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        if (all)
            fsync(fd);
        else
            fdatasync(fd);
        close(fd);
    }
}

/* The file at `path` and its directory on disk (a power loss after this
 * keeps them). */
static void sync_path(const char *path, int dirfd)
{
    sync_file(path, 1);
    if (dirfd >= 0)
        fsync(dirfd);
}

/* The name of data file `no` without its directory (written into full):
 * how the master refers to it, so the set of files can be moved whole. */
static const char *data_base(const mg_rawfile *f, int no, char *full, size_t cap)
{
    data_path(f, no, full, cap);
    const char *base = strrchr(full, '/');
    return base ? base + 1 : full;
}

static size_t row_elems(const mg_rawfile *f, int i)
{
    return META[i].per_module == 0 ? 1 : (size_t)f->nmod * (size_t)META[i].per_module;
}

/* A dataset at `path`, creating the groups on the way. */
static hid_t create_dataset(hid_t loc, const char *path, hid_t type, hid_t space, hid_t dcpl)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2(loc, path, type, space, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(lcpl);
    return d;
}

static hid_t create_extendable(hid_t loc, const char *path, hid_t type, int rank, const hsize_t *tail,
                               hsize_t chunk_frames, const hid_t *dcpl_in)
{
    hsize_t dims[4] = {0}, maxd[4] = {H5S_UNLIMITED}, chunk[4] = {chunk_frames};
    for (int i = 1; i < rank; i++)
        dims[i] = maxd[i] = chunk[i] = tail[i - 1];
    hid_t space = H5Screate_simple(rank, dims, maxd);
    hid_t dcpl = dcpl_in ? H5Pcopy(*dcpl_in) : H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    hid_t d = create_dataset(loc, path, type, space, dcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    return d;
}

/* The module description at `path`; with module_id (per module, from the
 * packet headers) also that. */
static int write_detector(hid_t loc, const char *path, const mg_detector *det, const uint16_t *module_id)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(loc, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    if (g < 0)
        return -1;
    int n = det->nmodules;
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, MG_NAME_MAX);
    H5Tset_strpad(str, H5T_STR_NULLTERM);
    hsize_t one = 1, nm = (hsize_t)n;
    hid_t s1 = H5Screate(H5S_SCALAR), sn = H5Screate_simple(1, &nm, NULL);
    hid_t a = H5Acreate2(g, "name", str, s1, H5P_DEFAULT, H5P_DEFAULT);
    char name[MG_NAME_MAX] = {0};
    snprintf(name, sizeof name, "%s", det->name);
    H5Awrite(a, str, name);
    H5Aclose(a);
    /* the description as text, as morgul plan prints it: modules, places, interfaces, addresses, ports */
    char *text = NULL;
    size_t text_len = 0;
    FILE *mem = open_memstream(&text, &text_len);
    if (mem) {
        mg_detector_print(det, mem);
        fclose(mem);
    }
    int text_bad = text && mg_h5_put_string(g, "description", text, "the detector description the run used") < 0;
    free(text);
    char(*names)[MG_NAME_MAX] = calloc((size_t)n, MG_NAME_MAX);
    int32_t *rows = calloc((size_t)n, 4), *cols = calloc((size_t)n, 4), *ifs = calloc((size_t)n, 4);
    int32_t *ports = calloc((size_t)n * 2, 4);
    int rc = -1;
    if (names && rows && cols && ifs && ports) {
        for (int m = 0; m < n; m++) {
            snprintf(names[m], MG_NAME_MAX, "%s", det->modules[m].name);
            rows[m] = det->modules[m].row;
            cols[m] = det->modules[m].column;
            ifs[m] = det->modules[m].interfaces;
            ports[2 * m] = det->modules[m].ports[0];
            ports[2 * m + 1] = det->modules[m].interfaces > 1 ? det->modules[m].ports[1] : 0;
        }
        hsize_t pd[2] = {nm, 2};
        hid_t sp = H5Screate_simple(2, pd, NULL);
        struct {
            const char *n;
            hid_t t, s;
            const void *v;
        } ds[] = {{"module_name", str, sn, names},     {"module_row", H5T_STD_I32LE, sn, rows},
                  {"module_column", H5T_STD_I32LE, sn, cols}, {"module_interfaces", H5T_STD_I32LE, sn, ifs},
                  {"module_ports", H5T_STD_I32LE, sp, ports}};
        rc = 0;
        for (size_t i = 0; i < sizeof ds / sizeof *ds; i++) {
            hid_t d = H5Dcreate2(g, ds[i].n, ds[i].t, ds[i].s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            hid_t mt = ds[i].t == str ? str : H5T_NATIVE_INT32;
            if (d < 0 || H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, ds[i].v) < 0)
                rc = -1;
            if (d >= 0)
                H5Dclose(d);
        }
        H5Sclose(sp);
        if (module_id) {
            hid_t d = H5Dcreate2(g, "module_id", H5T_STD_U16LE, sn, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            if (d < 0 || H5Dwrite(d, H5T_NATIVE_UINT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, module_id) < 0 ||
                mg_h5_attr_str(d, "description", "each module's id from its packet headers (0: no packet came)") < 0)
                rc = -1;
            if (d >= 0)
                H5Dclose(d);
        }
    }
    (void)one;
    free(names);
    free(rows);
    free(cols);
    free(ifs);
    free(ports);
    H5Sclose(s1);
    H5Sclose(sn);
    H5Tclose(str);
    H5Gclose(g);
    return rc || text_bad ? -1 : 0;
}

/* Sets aside disk space, so that when the disk fills up the data file's
 * records and the master file can still be written: every frame written
 * before stays readable. */
static int make_reserve(mg_rawfile *f, mg_error *err)
{
    snprintf(f->reserve, sizeof f->reserve, "%s_reserve.tmp", f->run_prefix);
    int fd = open(f->reserve, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return mg_error_set(err, MG_EIO, "cannot create %s: %s; check the directory exists and is writable", f->reserve,
                            strerror(errno));
    static const char zero[65536];
    int rc = 0;
    for (unsigned done = 0; done < RESERVE_BYTES && !rc; done += sizeof zero)
        if (write(fd, zero, sizeof zero) != (ssize_t)sizeof zero)
            rc = mg_error_set(err, MG_EIO, "%s has less than %u MiB free (%s)", f->reserve, RESERVE_BYTES >> 20,
                              strerror(errno));
    if (close(fd) && !rc)
        rc = mg_error_set(err, MG_EIO, "%s: %s", f->reserve, strerror(errno));
    if (rc)
        unlink(f->reserve);
    else
        f->have_reserve = 1;
    return rc;
}

static void drop_reserve(mg_rawfile *f)
{
    if (f->have_reserve)
        unlink(f->reserve);
    f->have_reserve = 0;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A data file is written in HDF5's single-writer/multiple-reader mode
 * (SWMR, the 1.10 format): whenever the process dies, what was flushed
 * stays readable, and readers can open the file while it is written (with
 * SWMR read access).  Every dataset and attribute exists before writing
 * starts, as SWMR requires. */
static int open_data_file(mg_rawfile *f, mg_error *err)
{
    char path[4200];
    f->file_no++;
    data_path(f, f->file_no, path, sizeof path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    f->file = H5Fcreate(path, f->cfg.overwrite ? H5F_ACC_TRUNC : H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f->file < 0)
        return mg_error_set(err, MG_EIO, "cannot create %s (%s); check the directory exists, is writable and has space",
                            path, access(path, F_OK) == 0 ? "it exists; use --overwrite" : strerror(errno));
    f->created = f->file_no;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    unsigned cd[5];
    mg_bshuf_cd_values(f->esize, cd);
    H5Pset_filter(dcpl, MG_BSHUF_FILTER_ID, H5Z_FLAG_OPTIONAL, 5, cd);
    f->data = create_extendable(f->file, f->lay.data_path, f->ftype, f->frank + 1, f->fdims, 1, &dcpl);
    H5Pclose(dcpl);
    int bad = f->data < 0;
    for (int i = 0; i < M_COUNT; i++) {
        hsize_t t[2] = {(hsize_t)f->nmod, 16};
        int rank = META[i].per_module == 0 ? 1 : META[i].per_module == 1 ? 2 : 3;
        f->meta[i] = create_extendable(f->file, f->meta_path[i], meta_type(i), rank, t, META_BLOCK, NULL);
        bad |= f->meta[i] < 0;
    }
    for (int i = 0; i < M_COUNT && !bad; i++)
        bad |= describe(f->file, f->meta_path[i], META[i].units, META[i].description) < 0;
    bad |= describe(f->file, f->lay.data_path, NULL, f->lay.description) < 0;
    bad |= write_detector(f->file, f->det_path, f->cfg.det, NULL) < 0;
    bad |= mg_h5_attr_str(f->file, "morgul_version", MG_VERSION) < 0;
    bad |= mg_h5_attr_double(f->file, "file_created", unix_now()) < 0;
    bad |= !bad && H5Fstart_swmr_write(f->file) < 0;
    f->in_file = f->meta_written = 0;
    if (bad)
        return mg_error_set(err, MG_EIO, "cannot lay out datasets in %s", path);
    if (f->file_no > f->files_cap) {
        int cap = f->files_cap ? f->files_cap * 2 : 16;
        uint64_t *n = realloc(f->file_frames, sizeof(uint64_t) * (size_t)cap);
        if (!n)
            return mg_error_set(err, MG_ENOMEM, "out of memory");
        memset(n + f->files_cap, 0, sizeof(uint64_t) * (size_t)(cap - f->files_cap));
        f->file_frames = n;
        f->files_cap = cap;
    }
    return 0;
}

/* A closed data file in the format HDF5 1.8 reads too (readers built with
 * it: the SWMR format's chunk indexes and superblock are 1.10's).  Returns
 * 0 when converted, 1 when the file does not open for writing - a reader
 * holds it open (HDF5's file lock), as readers may while the run goes on -
 * and -1 when the conversion failed. */
static int to_18_format(const char *path)
{
    hid_t fid = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (fid < 0)
        return 1;
    int rc = H5Fformat_convert(fid) < 0 ? -1 : 0;
    return H5Fclose(fid) < 0 ? -1 : rc;
}

/* Converts the data files a reader held open when they closed.  Never
 * waits while the run goes on (the writer must keep up); at the end of a
 * set (`final`) tries for up to a second.  What still cannot be converted
 * stays in the 1.10 format - complete and valid, read by HDF5 1.10 and
 * later - and is counted in the master (/run/data_files_1_10_format). */
static int convert_pending(mg_rawfile *f, int final, mg_error *err)
{
    for (int tries = 0; f->npending; tries++) {
        int kept = 0;
        for (int k = 0; k < f->npending; k++) {
            char path[4200];
            data_path(f, f->pending[k], path, sizeof path);
            int r = to_18_format(path);
            if (r < 0)
                return mg_error_set(err, MG_EIO, "cannot finish data file %s (disk full?)", path);
            if (r > 0)
                f->pending[kept++] = f->pending[k];
            else if (f->pending[k] <= f->disk_files)
                sync_file(path, 0); /* synced before it was converted: again, as it is now */
        }
        f->npending = kept;
        if (!final || !kept || tries == 40)
            break;
        struct timespec ts = {0, 25000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

static int flush_meta(mg_rawfile *f, mg_error *err)
{
    if (!f->mbuf_n)
        return 0;
    for (int i = 0; i < M_COUNT; i++) {
        int rank = META[i].per_module == 0 ? 1 : META[i].per_module == 1 ? 2 : 3;
        hsize_t ext[3] = {f->meta_written + f->mbuf_n, (hsize_t)f->nmod, 16};
        hsize_t start[3] = {f->meta_written, 0, 0}, count[3] = {f->mbuf_n, (hsize_t)f->nmod, 16};
        if (H5Dset_extent(f->meta[i], ext) < 0)
            return mg_error_set(err, MG_EIO, "cannot extend %s in data file %d", f->meta_path[i], f->file_no);
        hid_t fs = H5Dget_space(f->meta[i]);
        hid_t ms = H5Screate_simple(rank, count, NULL);
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        herr_t r = H5Dwrite(f->meta[i], meta_type(i), ms, fs, H5P_DEFAULT, f->mbuf[i]);
        H5Sclose(ms);
        H5Sclose(fs);
        if (r < 0)
            return mg_error_set(err, MG_EIO, "cannot write %s in data file %d (disk full?)", f->meta_path[i],
                                f->file_no);
    }
    f->meta_written += f->mbuf_n;
    f->mbuf_n = 0;
    return 0;
}

static int close_data_file(mg_rawfile *f, mg_error *err)
{
    if (f->file < 0)
        return 0;
    int rc = flush_meta(f, err);
    for (int i = 0; i < M_COUNT; i++)
        if (f->meta[i] >= 0)
            H5Dclose(f->meta[i]);
    if (f->data >= 0)
        H5Dclose(f->data);
    if (H5Fclose(f->file) < 0 && !rc)
        rc = mg_error_set(err, MG_EIO, "closing data file %d failed (disk full?)", f->file_no);
    f->file_frames[f->file_no - 1] = f->in_file;
    f->file = -1;
    if (!rc && f->npending == (int)(sizeof f->pending / sizeof *f->pending))
        rc = convert_pending(f, 1, err); /* make room: wait for the readers */
    if (!rc && f->npending < (int)(sizeof f->pending / sizeof *f->pending))
        f->pending[f->npending++] = f->file_no;
    else if (!rc)
        f->unconverted_over++; /* readers hold 4096 files open: this one stays as it is */
    if (!rc)
        rc = convert_pending(f, 0, err);
    return rc;
}

/* Frees what a writer holds once its files are closed (or never opened). */
static void release(mg_rawfile *f)
{
    drop_reserve(f);
    if (f->dirfd >= 0)
        close(f->dirfd);
    for (int i = 0; i < M_COUNT; i++)
        free(f->mbuf[i]);
    free(f->file_frames);
    free(f);
}

/* Whether `name` (a file name without directory) is one morgul writes for
 * the run prefix whose file-name part is `base`: BASE_master.h5,
 * BASE_data_NNNNNN.h5 and the same with _acqNNN after BASE for later
 * acquisitions.  Compared character by character: a prefix may hold any
 * character, none of them special. */
static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int is_output_name(const char *name, const char *base)
{
    size_t bl = strlen(base);
    if (strncmp(name, base, bl))
        return 0;
    const char *r = name + bl;
    if (!strncmp(r, "_acq", 4) && digits(r + 4, 3))
        r += 7;
    if (!strcmp(r, "_master.h5") || !strcmp(r, "_master.h5.tmp"))
        return 1;
    return !strncmp(r, "_data_", 6) && digits(r + 6, 6) && !strcmp(r + 12, ".h5");
}

/* The run prefix's directory (or ".") and file-name part. */
static void split_prefix(const char *prefix, char *dir, size_t cap, const char **base)
{
    const char *slash = strrchr(prefix, '/');
    if (!slash) {
        snprintf(dir, cap, ".");
        *base = prefix;
        return;
    }
    snprintf(dir, cap, "%.*s", slash == prefix ? 1 : (int)(slash - prefix), prefix);
    *base = slash + 1;
}

/* Counts the files of this run's names that exist (the first one's path into
 * `found`), removing them with `remove`.  -1 if the directory cannot be read. */
static int output_names(mg_rawfile *f, int remove, char *found, size_t cap, mg_error *err)
{
    char dir[4200];
    const char *base;
    split_prefix(f->run_prefix, dir, sizeof dir, &base);
    DIR *d = opendir(dir);
    if (!d)
        return mg_error_set(err, MG_EIO, "cannot read the output directory %s: %s", dir, strerror(errno)), -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_output_name(e->d_name, base))
            continue;
        char path[8400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!n)
            snprintf(found, cap, "%s", path);
        n++;
        if (remove && unlink(path) && errno != ENOENT) {
            mg_error_set(err, MG_EIO, "cannot remove %s: %s", path, strerror(errno));
            closedir(d);
            return -1;
        }
    }
    closedir(d);
    return n;
}

/* -o DIR/NAME: DIR and its parents are created if missing (remembered, so
 * that a run that cannot start leaves nothing behind). */
static int make_dirs(mg_rawfile *f, mg_error *err)
{
    char dir[4200];
    const char *base;
    split_prefix(f->run_prefix, dir, sizeof dir, &base);
    if (!*base)
        return mg_error_set(err, MG_EINVAL, "-o %s ends in '/': give DIR/NAME, the files are NAME_master.h5 ...",
                            f->run_prefix);
    struct stat st;
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0
                                   : mg_error_set(err, MG_EIO, "-o %s: %s is not a directory", f->run_prefix, dir);
    /* the missing directories, outermost first */
    char path[4200];
    snprintf(path, sizeof path, "%s", dir);
    for (char *p = path + 1;; p++) {
        if (*p && *p != '/')
            continue;
        char c = *p;
        *p = 0;
        if (stat(path, &st)) {
            if (mkdir(path, 0755) && errno != EEXIST) {
                int e = errno;
                *p = c;
                return mg_error_set(err, MG_EIO, "cannot create the output directory %s: %s", path, strerror(e));
            }
            if (f->nmade < 8)
                snprintf(f->made_dirs[f->nmade++], sizeof f->made_dirs[0], "%s", path);
        } else if (!S_ISDIR(st.st_mode)) {
            *p = c;
            return mg_error_set(err, MG_EIO, "-o %s: %s is not a directory", f->run_prefix, path);
        }
        *p = c;
        if (!c)
            break;
    }
    return 0;
}

static void remove_made_dirs(mg_rawfile *f)
{
    for (int i = f->nmade - 1; i >= 0; i--)
        rmdir(f->made_dirs[i]);
    f->nmade = 0;
}

static int write_master(mg_rawfile *f, int live, const char *status, const mg_counter *counters, int n,
                        mg_error *err);

mg_rawfile *mg_rawfile_create(const mg_rawfile_config *cfg, mg_error *err)
{
    if (mg_h5_register_bitshuffle(err))
        return NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are reported through mg_error */
    mg_rawfile *f = calloc(1, sizeof *f);
    if (!f) {
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    f->cfg = *cfg;
    f->t_created = unix_now();
    f->file = -1;
    f->dirfd = -1;
    if (cfg->layout)
        f->lay = *cfg->layout;
    else {
        f->lay.data_path = "data";
        f->lay.group = NULL;
        f->lay.rank = 3;
        f->lay.dims[0] = (uint64_t)cfg->det->nmodules;
        f->lay.dims[1] = MG_MODULE_ROWS;
        f->lay.dims[2] = MG_MODULE_COLS;
        f->lay.elem = MG_ELEM_U16;
        f->lay.description = "raw detector words, modules in /detector order: bits 15-14 gain (00 G0, 01 G1, "
                             "11 G2), bits 13-0 ADC; 0xFFFF where a packet did not arrive (see frames/packet_mask)";
    }
    f->frank = f->lay.rank;
    for (int i = 0; i < 3; i++)
        f->fdims[i] = (hsize_t)f->lay.dims[i];
    f->ftype = f->lay.elem == MG_ELEM_I16 ? H5T_STD_I16LE
               : f->lay.elem == MG_ELEM_I32 ? H5T_STD_I32LE
               : f->lay.elem == MG_ELEM_F32 ? H5T_IEEE_F32LE
                                            : H5T_STD_U16LE;
    f->esize = f->lay.elem == MG_ELEM_I32 || f->lay.elem == MG_ELEM_F32 ? 4 : 2;
    const char *grp = f->lay.group && *f->lay.group ? f->lay.group : NULL;
    for (int i = 0; i < M_COUNT; i++)
        snprintf(f->meta_path[i], sizeof f->meta_path[i], "%s%sframes/%s", grp ? grp : "", grp ? "/" : "",
                 META[i].path);
    snprintf(f->det_path, sizeof f->det_path, "%s%sdetector", grp ? grp : "", grp ? "/" : "");
    f->nmod = cfg->det->nmodules;
    f->per_file = cfg->frames_per_file ? cfg->frames_per_file : 1000;
    if (!cfg->prefix || !*cfg->prefix || strlen(cfg->prefix) >= sizeof f->run_prefix - 64) {
        mg_error_set(err, MG_EINVAL, "give an output prefix (-o DIR/NAME)");
        goto fail;
    }
    snprintf(f->run_prefix, sizeof f->run_prefix, "%s", cfg->prefix);
    snprintf(f->prefix, sizeof f->prefix, "%s", cfg->prefix);
    snprintf(f->master, sizeof f->master, "%s_master.h5", f->prefix);
    if (make_dirs(f, err))
        goto fail;
    /* never overwrite: refuse if any file this run could write exists; with overwrite remove exactly those.
     * Files a run left that did not end are finished first (they are data: never lost for a name). */
    {
        char found[4200] = "";
        int n = output_names(f, 0, found, sizeof found, err);
        if (n < 0)
            goto fail;
        if (n > 0 && !cfg->overwrite) {
            mg_error e2 = {0};
            int rep = mg_rawfile_repair(f->run_prefix, NULL, &e2);
            if (rep > 0)
                mg_error_set(err, MG_EEXIST, "%s is the output of a run that did not end; its files have been "
                             "finished (as morgul repair does) and are kept: choose another output name or pass "
                             "--overwrite", f->run_prefix);
            else
                mg_error_set(err, MG_EEXIST, "%s exists; choose another output name or pass --overwrite", found);
            goto fail;
        }
        if (n > 0 && output_names(f, 1, found, sizeof found, err) < 0)
            goto fail;
        char reserve[4300];
        snprintf(reserve, sizeof reserve, "%s_reserve.tmp", f->run_prefix);
        if (cfg->overwrite)
            unlink(reserve);
    }
    if (make_reserve(f, err))
        goto fail;
    {
        char dir[4200];
        const char *base;
        split_prefix(f->run_prefix, dir, sizeof dir, &base);
        f->dirfd = open(dir, O_RDONLY | O_DIRECTORY);
        if (f->dirfd < 0) {
            mg_error_set(err, MG_EIO, "cannot open the output directory %s: %s", dir, strerror(errno));
            goto fail;
        }
    }
    for (int i = 0; i < M_COUNT; i++) {
        f->meta[i] = -1;
        f->mbuf[i] = malloc(row_elems(f, i) * META[i].size * META_BLOCK);
        if (!f->mbuf[i]) {
            mg_error_set(err, MG_ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (open_data_file(f, err) || write_master(f, 1, "writing", NULL, 0, err))
        goto fail;
    f->last_sync = mono_ns();
    return f;
fail:
    mg_rawfile_abandon(f);
    return NULL;
}

static int write_frame(mg_rawfile *f, int64_t index, const mg_module_frame *mods, const void *chunk, uint32_t crc,
                       size_t chunk_bytes, mg_error *err)
{
    if (f->in_file == f->per_file) {
        if (close_data_file(f, err) || open_data_file(f, err))
            return err ? err->code : MG_EIO;
    }
    /* Stop before the disk is full rather than let HDF5 meet ENOSPC halfway
     * through a chunk: its chunk index is then left inconsistent and the
     * file could not be closed.  With room for this chunk and a megabyte,
     * plus the reserve, the records and the master file always fit. */
    struct statvfs vfs;
    if (fstatvfs(f->dirfd, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < chunk_bytes + (1u << 20)) {
        drop_reserve(f);
        return mg_error_set(err, MG_EIO, "writing frame %lld to data file %d failed (the disk is full); the %llu "
                            "frames before it are kept", (long long)index, f->file_no, (unsigned long long)f->total);
    }
    { /* the extent is always the frames written: a reader never sees a frame that is not there */
        hsize_t ext[4] = {f->in_file + 1, f->fdims[0], f->fdims[1], f->fdims[2]};
        if (H5Dset_extent(f->data, ext) < 0)
            return mg_error_set(err, MG_EIO, "cannot extend %s in data file %d", f->lay.data_path, f->file_no);
    }
    hsize_t off[4] = {f->in_file, 0, 0, 0};
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* per thread where HDF5 is thread-safe: errors come back as mg_error */
    if (H5Dwrite_chunk(f->data, H5P_DEFAULT, 0, off, chunk_bytes, chunk) < 0) {
        int e = errno;
        hsize_t back[4] = {f->in_file, f->fdims[0], f->fdims[1], f->fdims[2]};
        H5Dset_extent(f->data, back); /* the frame is not there: neither is its place */
        /* free the reserve so the records and the master file can still be written */
        drop_reserve(f);
        return mg_error_set(err, MG_EIO,
                            "writing frame %lld to data file %d failed (%s); the %llu frames before it are kept",
                            (long long)index, f->file_no, e == ENOSPC ? "the disk is full" : strerror(e),
                            (unsigned long long)f->total);
    }
    uint64_t r = f->mbuf_n;
    ((uint64_t *)f->mbuf[M_INDEX])[r] = (uint64_t)index;
    ((uint32_t *)f->mbuf[M_CRC])[r] = crc;
    for (int m = 0; m < f->nmod; m++) {
        size_t at = r * (size_t)f->nmod + (size_t)m;
        ((uint64_t *)f->mbuf[M_FN])[at] = mods[m].frame_number;
        ((uint16_t *)f->mbuf[M_PACKETS])[at] = mods[m].packets;
        memcpy(f->mbuf[M_MASK] + at * 16, mods[m].mask, 16);
        ((uint64_t *)f->mbuf[M_BUNCH])[at] = mods[m].bunch_id;
        ((uint64_t *)f->mbuf[M_TS])[at] = mods[m].timestamp;
        ((uint32_t *)f->mbuf[M_EXP])[at] = mods[m].exposure_length;
        ((uint32_t *)f->mbuf[M_DAQ])[at] = mods[m].daq_info;
        ((uint16_t *)f->mbuf[M_MODID])[at] = mods[m].module_id;
        if (mods[m].packets && !f->module_id[m] && mods[m].module_id) {
            f->module_id[m] = mods[m].module_id;
            f->id_pending = 1;
        }
    }
    note_records(f, index, mods);
    f->mbuf_n++;
    f->in_file++;
    f->total++;
    f->run_total++;
    f->bytes += chunk_bytes;
    if (f->mbuf_n == META_BLOCK && flush_meta(f, err))
        return err ? err->code : MG_EIO;
    return mg_rawfile_sync(f, 0, err);
}

int mg_rawfile_write(mg_rawfile *f, int64_t index, const mg_module_frame *mods, const void *chunk, uint32_t crc,
                     size_t chunk_bytes, mg_error *err)
{
    int rc = write_frame(f, index, mods, chunk, crc, chunk_bytes, err);
    /* Writers run on worker threads.  With the thread-safe HDF5 (Debian's)
     * the error stack is the calling thread's, and HDF5 1.10 frees a
     * thread's stack at its exit without its entries: cleared here once the
     * failure is an mg_error. */
    if (rc)
        H5Eclear2(H5E_DEFAULT);
    return rc;
}

/* One virtual dataset at `path` in `master` joining `path` of data files
 * 1..nfiles of set prefix `set` (`frames[j]` frames in file j+1; files
 * without frames left out).  `growing`: the last file is mapped with an
 * unlimited extent (its frames counted from `frames` so far). */
static int vds_over(hid_t master, const char *set, const char *path, hid_t type, int rank, const hsize_t *tail,
                    const uint64_t *frames, int nfiles, int growing)
{
    uint64_t total = 0;
    for (int j = 0; j < nfiles; j++)
        total += frames[j];
    hsize_t dims[4] = {total}, maxd[4] = {growing ? H5S_UNLIMITED : total};
    for (int i = 1; i < rank; i++)
        dims[i] = maxd[i] = tail[i - 1];
    hid_t vspace = H5Screate_simple(rank, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    uint64_t off = 0;
    for (int j = 0; j < nfiles; j++) {
        int grow = growing && j == nfiles - 1;
        uint64_t n = frames[j];
        if (!n && !grow)
            continue;
        char full[4200];
        snprintf(full, sizeof full, "%s_data_%06d.h5", set, j + 1);
        const char *base = strrchr(full, '/') ? strrchr(full, '/') + 1 : full;
        hsize_t sd[4] = {grow ? 0 : n}, smax[4] = {grow ? H5S_UNLIMITED : n};
        hsize_t start[4] = {off}, zero[4] = {0}, stride[4] = {1, 1, 1, 1}, count[4] = {n}, block[4] = {1, 1, 1, 1};
        for (int i = 1; i < rank; i++) {
            sd[i] = smax[i] = count[i] = tail[i - 1];
            block[i] = tail[i - 1];
            if (grow)
                count[i] = 1;
        }
        hid_t sspace = H5Screate_simple(rank, sd, smax);
        if (grow) { /* every frame from `off` on, as many as the file has */
            count[0] = H5S_UNLIMITED;
            H5Sselect_hyperslab(vspace, H5S_SELECT_SET, start, stride, count, block);
            H5Sselect_hyperslab(sspace, H5S_SELECT_SET, zero, stride, count, block);
        } else {
            /* the first n frames of the source, whatever else it may hold (a frame whose write failed) */
            H5Sselect_hyperslab(vspace, H5S_SELECT_SET, start, NULL, count, NULL);
            H5Sselect_hyperslab(sspace, H5S_SELECT_SET, zero, NULL, count, NULL);
        }
        /* relative name: the master finds its data files beside itself */
        H5Pset_virtual(dcpl, vspace, base, path, sspace);
        H5Sclose(sspace);
        off += n;
    }
    H5Sselect_all(vspace);
    hid_t d = create_dataset(master, path, type, vspace, dcpl);
    H5Pclose(dcpl);
    H5Sclose(vspace);
    if (d < 0)
        return -1;
    H5Dclose(d);
    return 0;
}

/* The master's virtual dataset of `path`; while the run goes on (`live`)
 * the growing data file is mapped with an unlimited extent: readers see its
 * frames as they are written. */
static int make_vds(mg_rawfile *f, hid_t master, const char *path, hid_t type, int rank, const hsize_t *tail, int live)
{
    return vds_over(master, f->prefix, path, type, rank, tail, f->file_frames, f->file_no, live && f->file >= 0);
}

/* DATA_PATH_NNNNNN in the master: an external link to DATA_PATH of data
 * file NNNNNN, by relative name like the virtual dataset's. */
static int link_files(mg_rawfile *f, hid_t master, int live)
{
    int bad = 0;
    for (int j = 0; j < f->file_no; j++) {
        if (!f->file_frames[j] && !(live && j == f->file_no - 1))
            continue;
        char full[4200], name[512], target[512];
        const char *base = data_base(f, j + 1, full, sizeof full);
        snprintf(name, sizeof name, "%s_%06d", f->lay.data_path, j + 1);
        snprintf(target, sizeof target, "/%s", f->lay.data_path);
        bad |= H5Lcreate_external(base, target, master, name, H5P_DEFAULT, H5P_DEFAULT) < 0;
    }
    return bad ? -1 : 0;
}

/* What the data told of the current acquisition. */
static void master_facts(const mg_rawfile *f, int live, mg_master_facts *x)
{
    memset(x, 0, sizeof *x);
    x->frames = f->total;
    x->start = f->t_first;
    x->end = f->t_last;
    x->count_time = f->exposure * 1e-7;
    if (f->ts_last_i > f->ts_first_i && f->ts_last > f->ts_first)
        x->frame_time = (double)(f->ts_last - f->ts_first) * 1e-7 / (double)(f->ts_last_i - f->ts_first_i);
    x->ended = !live;
    x->module_id = f->module_id;
}

/* The records' facts: exposure and the detector's time stamps (of the first
 * module that has them), and the master rewritten when a module's id
 * became known. */
static void note_records(mg_rawfile *f, int64_t index, const mg_module_frame *mods)
{
    for (int m = 0; m < f->nmod; m++) {
        if (!mods[m].packets)
            continue;
        if (!f->exposure)
            f->exposure = mods[m].exposure_length;
        if (mods[m].timestamp) {
            if (!f->ts_first) {
                f->ts_first = mods[m].timestamp;
                f->ts_first_i = index;
            } else if (index > f->ts_last_i && mods[m].timestamp > f->ts_first) {
                f->ts_last = mods[m].timestamp;
                f->ts_last_i = index;
            }
        }
        break;
    }
    if (f->id_pending) {
        f->id_pending = 0;
        f->master_files = -1; /* rewritten at the next sync */
    }
}

void mg_rawfile_time(mg_rawfile *f, double t)
{
    if (!(t > 0))
        return;
    if (!(f->t_first > 0)) {
        f->t_first = t;
        f->master_files = -1; /* the start is known: the master says it at the next sync */
    }
    if (t > f->t_last)
        f->t_last = t;
}

/* Writes the current acquisition's master file, whole, under a temporary
 * name, and renames it over the one before: a reader, or a crash, finds the
 * old master or the new one, never half of one.  `live`: the run goes on -
 * the growing data file is mapped with an unlimited extent, the status says
 * "writing", and there are no counters yet.  The layout is recorded in
 * attributes, so that `morgul repair` can finish the files of a run that
 * died. */
static int replace_master(mg_rawfile *f, int live, const char *status, const mg_counter *counters, int n,
                          mg_error *err)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->master);
    hid_t m = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (m < 0)
        return mg_error_set(err, MG_EIO, "cannot create the master file %s (%s)", tmp, strerror(errno));
    int bad = 0;
    bad |= make_vds(f, m, f->lay.data_path, f->ftype, f->frank + 1, f->fdims, live);
    if (f->lay.link_files)
        bad |= link_files(f, m, live) < 0;
    for (int i = 0; i < M_COUNT; i++) {
        hsize_t t[2] = {(hsize_t)f->nmod, 16};
        int rank = META[i].per_module == 0 ? 1 : META[i].per_module == 1 ? 2 : 3;
        bad |= make_vds(f, m, f->meta_path[i], meta_type(i), rank, t, live);
    }
    for (int i = 0; i < M_COUNT && !bad; i++)
        bad |= describe(m, f->meta_path[i], META[i].units, META[i].description) < 0;
    bad |= describe(m, f->lay.data_path, NULL, f->lay.description) < 0;
    bad |= write_detector(m, f->det_path, f->cfg.det, f->module_id) < 0;
    bad |= mg_h5_attr_str(m, "morgul_version", MG_VERSION) < 0;
    /* when the data were taken: the first frame's arrival (until one came, when the files began) */
    bad |= mg_h5_attr_double(m, "start_time", f->t_first > 0 ? f->t_first : f->t_created) < 0;
    if (f->t_last > 0)
        bad |= mg_h5_attr_double(m, "end_time", f->t_last) < 0;
    bad |= mg_h5_attr_str(m, "morgul_status", status) < 0;
    bad |= mg_h5_attr_str(m, "morgul_data_path", f->lay.data_path) < 0;
    bad |= mg_h5_attr_str(m, "morgul_records", f->meta_path[0]) < 0;
    hid_t g = H5Gcreate2(m, "run", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t s1 = H5Screate(H5S_SCALAR);
    for (int i = 0; i < n && g >= 0; i++) {
        hid_t d = H5Dcreate2(g, counters[i].name, H5T_STD_U64LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        bad |= d < 0 || H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &counters[i].value) < 0;
        if (d >= 0)
            H5Dclose(d);
    }
    if (g >= 0 && f->unconverted) {
        uint64_t v = (uint64_t)f->unconverted;
        hid_t d = H5Dcreate2(g, "data_files_1_10_format", H5T_STD_U64LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        bad |= d < 0 || H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v) < 0;
        if (d >= 0)
            H5Dclose(d);
    }
    H5Sclose(s1);
    if (g >= 0)
        H5Gclose(g);
    /* what the run was, as text: times from the data, the command, the software (/run holds numbers only) */
    g = H5Gcreate2(m, "metadata", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    bad |= g < 0;
    if (g >= 0) {
        char iso[64];
        if (f->t_first > 0) {
            mg_h5_time_iso(f->t_first, 6, iso, sizeof iso);
            bad |= mg_h5_put_string(g, "start_time", iso, "arrival of the first frame (UTC)") < 0;
        }
        if (f->t_last > 0 && !live) {
            mg_h5_time_iso(f->t_last, 6, iso, sizeof iso);
            bad |= mg_h5_put_string(g, "end_time", iso, "arrival of the last frame (UTC)") < 0;
        }
        if (f->cfg.command_line)
            bad |= mg_h5_put_string(g, "command_line", f->cfg.command_line, "the command that wrote the files") < 0;
        bad |= mg_h5_put_string(g, "software", "morgul " MG_VERSION, NULL) < 0;
        H5Gclose(g);
    }
    mg_master_facts facts;
    master_facts(f, live, &facts);
    if (f->lay.master_extra && f->lay.master_extra((int64_t)m, &facts, f->lay.ctx))
        bad = 1;
    bad |= H5Fclose(m) < 0;
    if (!bad)
        bad = rename(tmp, f->master) != 0;
    if (bad) {
        unlink(tmp);
        return mg_error_set(err, MG_EIO, "writing the master file %s failed (disk full?)", f->master);
    }
    f->master_files = f->file_no;
    return 0;
}

/* The master replaced, then synced to the disk. */
static int write_master(mg_rawfile *f, int live, const char *status, const mg_counter *counters, int n,
                        mg_error *err)
{
    if (replace_master(f, live, status, counters, n, err))
        return err ? err->code : MG_EIO;
    sync_path(f->master, f->dirfd);
    return 0;
}

/* The closed data files up to number `upto` that were never synced (a set
 * rolls over to a new file every few frames, and the sync only had the open
 * one at hand), synced now: what the last sync counted as on disk is. */
static void sync_closed(mg_rawfile *f, int upto)
{
    for (int j = f->disk_files + 1; j <= upto; j++) {
        char path[4200];
        data_path(f, j, path, sizeof path);
        sync_file(path, 0);
    }
    if (upto > f->disk_files)
        f->disk_files = upto;
}

/* In two steps.  First what a process that dies from here on keeps: the
 * open file's records and HDF5's caches written into it, and the master
 * replaced to reach every data file begun.  None of it waits for the disk:
 * syncing can take seconds on a busy machine (an fsync waits for the
 * journal, which carries other writers' pages too), and a kill meanwhile
 * must find the new master already there.  Then what a power loss keeps:
 * the data files and the master synced to the disk. */
int mg_rawfile_sync(mg_rawfile *f, int force, mg_error *err)
{
    uint64_t now = mono_ns();
    if (!force && now - f->last_sync < SYNC_NS)
        return 0;
    f->last_sync = now;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (f->file >= 0) {
        if (flush_meta(f, err))
            return err ? err->code : MG_EIO;
        if (H5Fflush(f->file, H5F_SCOPE_LOCAL) < 0)
            return mg_error_set(err, MG_EIO, "cannot flush data file %d (disk full?)", f->file_no);
    }
    int new_master = f->master_files != f->file_no;
    if (new_master && replace_master(f, 1, "writing", NULL, 0, err))
        return err ? err->code : MG_EIO;
    sync_closed(f, f->file >= 0 ? f->file_no - 1 : f->file_no);
    if (f->file >= 0) {
        void *h = NULL;
        if (H5Fget_vfd_handle(f->file, H5P_DEFAULT, &h) >= 0 && h)
            fdatasync(*(int *)h);
    }
    if (new_master)
        sync_path(f->master, f->dirfd);
    atomic_store(&f->synced, f->run_total);
    return 0;
}

uint64_t mg_rawfile_synced(const mg_rawfile *f) { return atomic_load(&((mg_rawfile *)f)->synced); }

/* Closes the current acquisition's data file and writes its final master file. */
static int finish_set(mg_rawfile *f, const mg_counter *counters, int n, mg_error *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int rc = close_data_file(f, err);
    if (!rc)
        rc = convert_pending(f, 1, err);
    f->unconverted = f->npending + f->unconverted_over; /* left in the 1.10 format: said in /run */
    f->npending = f->unconverted_over = 0;
    sync_closed(f, f->file_no); /* on the disk before a master says the set is complete */
    mg_error e2 = {0};
    int mrc = write_master(f, 0, "complete", counters, n, rc ? &e2 : err);
    f->unconverted = 0;
    return rc ? rc : mrc;
}

/* ---- finishing the files of a run that died ---- */

/* Frames whose chunk and records are both in data file `path`, after its
 * SWMR flags are cleared; the datasets are cut to them and the file
 * converted to the 1.8 format.  NOT_HDF5 if it does not open, NO_FRAMES if
 * it holds no frames dataset (err set for both). */
enum { NOT_HDF5 = -1, NO_FRAMES = -2 };
static int64_t repair_data_file(const char *path, const char *data, const char *records, mg_error *err)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* the property HDF5's h5clear sets: the consistency flags a writer that died left are cleared at opening */
    hbool_t clear = 1;
    H5Pset(fapl, "clear_status_flags", &clear);
    hid_t fid = H5Fopen(path, H5F_ACC_RDWR, fapl);
    H5Pclose(fapl);
    if (fid < 0)
        return mg_error_set(err, MG_EFORMAT, "%s does not open as HDF5: it cannot be repaired", path), NOT_HDF5;
    int64_t n = NO_FRAMES;
    hid_t d = H5Dopen2(fid, data, H5P_DEFAULT);
    if (d >= 0) {
        hid_t sp = H5Dget_space(d);
        hsize_t dims[4] = {0};
        int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
        H5Sclose(sp);
        n = (int64_t)dims[0];
        /* the extent grows before a chunk is written: a frame whose chunk never came is not kept */
        while (n > 0) {
            hsize_t off[4] = {(hsize_t)n - 1, 0, 0, 0}, size = 0;
            if (H5Dget_chunk_storage_size(d, off, &size) >= 0 && size > 0)
                break;
            n--;
        }
        /* records are written in blocks: frames beyond them have no record and are not kept either */
        char grp[300];
        snprintf(grp, sizeof grp, "%s", records);
        char *slash = strrchr(grp, '/');
        if (slash)
            *slash = 0;
        hid_t g = H5Gopen2(fid, grp, H5P_DEFAULT);
        hsize_t nobj = 0;
        if (g >= 0)
            H5Gget_num_objs(g, &nobj);
        /* two passes over the records: the fewest frames any holds, then each cut to that */
        for (int cut = 0; cut < 2; cut++)
            for (hsize_t i = 0; g >= 0 && i < nobj; i++) {
                char name[128];
                H5Gget_objname_by_idx(g, i, name, sizeof name);
                hid_t r = H5Dopen2(g, name, H5P_DEFAULT);
                if (r < 0)
                    continue;
                hid_t rs = H5Dget_space(r);
                hsize_t rd[3] = {0};
                int rr = H5Sget_simple_extent_dims(rs, rd, NULL);
                H5Sclose(rs);
                if (!cut && (int64_t)rd[0] < n)
                    n = (int64_t)rd[0];
                if (cut && rr > 0) {
                    rd[0] = (hsize_t)n;
                    H5Dset_extent(r, rd);
                }
                H5Dclose(r);
            }
        if (g >= 0)
            H5Gclose(g);
        dims[0] = (hsize_t)n;
        if (rank > 0)
            H5Dset_extent(d, dims);
        H5Dclose(d);
    }
    if (H5Fclose(fid) < 0 || n < 0)
        return mg_error_set(err, MG_EFORMAT, "%s has no frames dataset '%s'; it cannot be repaired", path, data),
               NO_FRAMES;
    to_18_format(path);
    return n;
}

/* Replaces dataset `path` of `loc` (if there) by the virtual dataset over
 * the repaired data files, of the type and shape the first file holds. */
static int replace_vds(hid_t master, const char *set, const char *first_file, const char *path, const uint64_t *frames,
                       int nfiles)
{
    hid_t fid = H5Fopen(first_file, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (fid < 0)
        return -1;
    hid_t d = H5Dopen2(fid, path, H5P_DEFAULT);
    int rc = -1;
    if (d >= 0) {
        hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
        hsize_t dims[4] = {0};
        int rank = H5Sget_simple_extent_dims(sp, dims, NULL);
        if (H5Lexists(master, path, H5P_DEFAULT) > 0)
            H5Ldelete(master, path, H5P_DEFAULT);
        rc = vds_over(master, set, path, ty, rank, dims + 1, frames, nfiles, 0);
        H5Tclose(ty);
        H5Sclose(sp);
        H5Dclose(d);
    }
    H5Fclose(fid);
    return rc;
}

/* NXmx values that count frames: nimages, and a rotation's omega per frame. */
static void repair_nxmx(hid_t m, uint64_t total)
{
    const char *ni = "entry/instrument/detector/detectorSpecific/nimages";
    if (H5Lexists(m, "entry", H5P_DEFAULT) > 0 && H5Lexists(m, "entry/instrument", H5P_DEFAULT) > 0 &&
        H5Lexists(m, "entry/instrument/detector", H5P_DEFAULT) > 0 &&
        H5Lexists(m, "entry/instrument/detector/detectorSpecific", H5P_DEFAULT) > 0 &&
        H5Lexists(m, ni, H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2(m, ni, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &total);
        H5Dclose(d);
    }
    const char *om = "entry/sample/transformations/omega";
    if (H5Lexists(m, "entry/sample", H5P_DEFAULT) > 0 && H5Lexists(m, "entry/sample/transformations", H5P_DEFAULT) > 0 &&
        H5Lexists(m, om, H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2(m, om, H5P_DEFAULT);
        double start = mg_h5_attr_get_double(d, "morgul_start", 0), inc = 0;
        H5Dclose(d);
        hid_t id = H5Dopen2(m, "entry/sample/transformations/omega_increment_set", H5P_DEFAULT);
        if (id >= 0) {
            H5Dread(id, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &inc);
            H5Dclose(id);
        }
        H5Ldelete(m, om, H5P_DEFAULT);
        hsize_t n = total;
        hid_t sp = H5Screate_simple(1, &n, NULL);
        double *v = malloc(sizeof(double) * (total + 1));
        for (uint64_t i = 0; v && i < total; i++)
            v[i] = start + (double)i * inc;
        d = H5Dcreate2(m, om, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (d >= 0 && v) {
            H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
            const double axis[3] = {-1, 0, 0};
            hsize_t three = 3;
            mg_h5_attr_str(d, "units", "deg");
            mg_h5_attr_str(d, "depends_on", ".");
            mg_h5_attr_str(d, "transformation_type", "rotation");
            hid_t as = H5Screate_simple(1, &three, NULL);
            hid_t a = H5Acreate2(d, "vector", H5T_IEEE_F64LE, as, H5P_DEFAULT, H5P_DEFAULT);
            H5Awrite(a, H5T_NATIVE_DOUBLE, axis);
            H5Aclose(a);
            H5Sclose(as);
            mg_h5_attr_double(d, "morgul_start", start);
        }
        if (d >= 0)
            H5Dclose(d);
        free(v);
        H5Sclose(sp);
    }
}

/* Whether data file number i + 1 of set `set` (`path`), which repair_data_file found without frames
 * (`why`), is the last one, begun when the run died: a rollover makes the file, then its datasets, and a
 * kill in between leaves a file that holds no frame.  It is taken out of the run, said on `log`: with no
 * frames dataset it is removed; one that is not even HDF5 is kept aside as PATH.unreadable (nothing can be
 * read from it, but its bytes are not ours to delete).  0 if it is not the last file, or cannot be moved. */
static int last_begun(const char *set, int i, const char *path, int64_t why, FILE *log)
{
    char next[4300], aside[4400];
    snprintf(next, sizeof next, "%s_data_%06d.h5", set, i + 2);
    if (access(next, F_OK) == 0)
        return 0;
    if (why == NO_FRAMES) {
        if (unlink(path))
            return 0;
        if (log)
            fprintf(log, "%s was begun when the run died and holds no frames: removed\n", path);
        return 1;
    }
    snprintf(aside, sizeof aside, "%s.unreadable", path);
    if (rename(path, aside))
        return 0;
    if (log)
        fprintf(log, "%s was begun when the run died and does not open as HDF5: no frame can be read from it; "
                     "kept aside as %s\n", path, aside);
    return 1;
}

/* One acquisition's files: every data file cut to the frames it holds
 * whole, the master file's virtual datasets and links over them, its
 * status "interrupted" and counters from the records. */
static int repair_set(const char *set, FILE *log, mg_error *err)
{
    char master[4300], first[4300];
    snprintf(master, sizeof master, "%s_master.h5", set);
    snprintf(first, sizeof first, "%s_data_000001.h5", set);
    char data[256] = "data", records[300] = "frames/index";
    hid_t m = -1;
    if (access(master, F_OK) == 0) {
        m = H5Fopen(master, H5F_ACC_RDWR, H5P_DEFAULT);
        if (m < 0)
            return mg_error_set(err, MG_EFORMAT, "%s does not open as HDF5: remove it and repair again", master);
        mg_h5_attr_get_str(m, "morgul_data_path", data, sizeof data);
        mg_h5_attr_get_str(m, "morgul_records", records, sizeof records);
    } else if (access(first, F_OK) != 0)
        return 0;
    uint64_t frames[4096], total = 0;
    int nfiles = 0;
    for (; nfiles < 4096; nfiles++) {
        char path[4300];
        snprintf(path, sizeof path, "%s_data_%06d.h5", set, nfiles + 1);
        if (access(path, F_OK) != 0)
            break;
        int64_t n = repair_data_file(path, data, records, err);
        if (n < 0 && last_begun(set, nfiles, path, n, log))
            break;
        if (n < 0) {
            if (m >= 0)
                H5Fclose(m);
            return err ? err->code : MG_EFORMAT;
        }
        frames[nfiles] = (uint64_t)n;
        total += (uint64_t)n;
    }
    if (m < 0) { /* no master yet (it died in its first milliseconds): a plain one */
        m = H5Fcreate(master, H5F_ACC_EXCL, H5P_DEFAULT, H5P_DEFAULT);
        if (m < 0)
            return mg_error_set(err, MG_EIO, "cannot create %s", master);
    }
    int bad = 0;
    if (nfiles) {
        bad |= replace_vds(m, set, first, data, frames, nfiles) < 0;
        char grp[300];
        snprintf(grp, sizeof grp, "%s", records);
        char *slash = strrchr(grp, '/');
        if (slash)
            *slash = 0;
        for (int i = 0; i < M_COUNT; i++) {
            char rp[400];
            snprintf(rp, sizeof rp, "%s/%s", grp, META[i].path);
            bad |= replace_vds(m, set, first, rp, frames, nfiles) < 0;
        }
        for (int j = 0; j <= nfiles; j++) { /* the Eiger layout's links, if the master had them */
            char ln[320];
            snprintf(ln, sizeof ln, "%s_%06d", data, j + 1);
            if (H5Lexists(m, ln, H5P_DEFAULT) > 0 && (j == nfiles || !frames[j]))
                H5Ldelete(m, ln, H5P_DEFAULT);
        }
    }
    repair_nxmx(m, total);
    if (H5Lexists(m, "run", H5P_DEFAULT) > 0)
        H5Ldelete(m, "run", H5P_DEFAULT);
    hid_t g = H5Gcreate2(m, "run", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    mg_counter c[2] = {{"frames_written", total}, {"interrupted", 1}};
    hid_t s1 = H5Screate(H5S_SCALAR);
    for (int i = 0; i < 2 && g >= 0; i++) {
        hid_t d = H5Dcreate2(g, c[i].name, H5T_STD_U64LE, s1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        bad |= d < 0 || H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, &c[i].value) < 0;
        if (d >= 0)
            H5Dclose(d);
    }
    H5Sclose(s1);
    if (g >= 0)
        H5Gclose(g);
    if (H5Aexists(m, "morgul_status") > 0)
        H5Adelete(m, "morgul_status");
    bad |= mg_h5_attr_str(m, "morgul_status", "interrupted") < 0;
    bad |= H5Fclose(m) < 0;
    if (bad)
        return mg_error_set(err, MG_EIO, "cannot rewrite %s (disk full?)", master);
    if (log)
        fprintf(log, "repaired %s: %llu frames in %d data file(s), the run marked interrupted\n", master,
                (unsigned long long)total, nfiles);
    return 0;
}

/* Whether acquisition set `set` was left by a run that died: its master
 * says "writing", or there are data files and no master. */
static int interrupted(const char *set)
{
    char master[4300], first[4300], st[32] = "";
    snprintf(master, sizeof master, "%s_master.h5", set);
    snprintf(first, sizeof first, "%s_data_000001.h5", set);
    if (access(master, F_OK) != 0)
        return access(first, F_OK) == 0;
    hid_t m = H5Fopen(master, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (m < 0)
        return 1;
    mg_h5_attr_get_str(m, "morgul_status", st, sizeof st);
    H5Fclose(m);
    return !strcmp(st, "writing");
}

int mg_rawfile_repair(const char *prefix, FILE *log, mg_error *err)
{
    if (mg_h5_register_bitshuffle(err))
        return err ? err->code : MG_ESYS;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    int repaired = 0;
    for (int acq = 1; acq < 1000; acq++) {
        char set[4200], master[4300], first[4300];
        if (acq == 1)
            snprintf(set, sizeof set, "%s", prefix);
        else
            snprintf(set, sizeof set, "%s_acq%03d", prefix, acq);
        snprintf(master, sizeof master, "%s_master.h5", set);
        snprintf(first, sizeof first, "%s_data_000001.h5", set);
        if (access(master, F_OK) && access(first, F_OK))
            break;
        if (!interrupted(set))
            continue;
        int rc = repair_set(set, log, err);
        if (rc)
            return rc;
        repaired++;
        char tmp[4400];
        snprintf(tmp, sizeof tmp, "%s.tmp", master);
        unlink(tmp);
    }
    char reserve[4300];
    snprintf(reserve, sizeof reserve, "%s_reserve.tmp", prefix);
    if (unlink(reserve) == 0)
        repaired += repaired ? 0 : 1;
    return repaired ? 1 : 0;
}

int mg_rawfile_next_acquisition(mg_rawfile *f, const char *prefix, const mg_counter *counters, int n, mg_error *err)
{
    int rc = finish_set(f, counters, n, err);
    f->acq++;
    if (prefix && prefix[0])
        snprintf(f->prefix, sizeof f->prefix, "%s", prefix);
    else
        snprintf(f->prefix, sizeof f->prefix, "%s_acq%03d", f->run_prefix, f->acq + 1);
    snprintf(f->master, sizeof f->master, "%s_master.h5", f->prefix);
    f->file_no = f->created = f->master_files = f->disk_files = 0;
    f->total = f->bytes = 0;
    if (f->file_frames)
        memset(f->file_frames, 0, sizeof(uint64_t) * (size_t)f->files_cap);
    f->t_created = unix_now();
    f->t_first = f->t_last = 0;
    f->ts_first = f->ts_last = 0;
    f->ts_first_i = f->ts_last_i = 0;
    f->exposure = 0;
    memset(f->module_id, 0, sizeof f->module_id);
    if (!rc)
        rc = open_data_file(f, err);
    if (!rc)
        rc = write_master(f, 1, "writing", NULL, 0, err);
    return rc;
}

int mg_rawfile_close(mg_rawfile *f, const mg_counter *counters, int n, mg_error *err)
{
    int rc = finish_set(f, counters, n, err);
    release(f);
    return rc;
}

void mg_rawfile_abandon(mg_rawfile *f)
{
    if (!f)
        return;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (f->file >= 0)
        close_data_file(f, NULL);
    for (int j = 1; j <= f->created; j++) {
        char path[4200];
        data_path(f, j, path, sizeof path);
        unlink(path);
    }
    if (f->master_files)
        unlink(f->master);
    drop_reserve(f);
    remove_made_dirs(f);
    release(f);
}

uint64_t mg_rawfile_frames(const mg_rawfile *f) { return f->run_total; }
int mg_rawfile_acquisition(const mg_rawfile *f) { return f->acq; }
uint64_t mg_rawfile_set_frames(const mg_rawfile *f) { return f->total; }
uint64_t mg_rawfile_bytes(const mg_rawfile *f) { return f->bytes; }
const char *mg_rawfile_master_path(const mg_rawfile *f) { return f->master; }
const uint16_t *mg_rawfile_module_ids(const mg_rawfile *f) { return f->module_id; }
