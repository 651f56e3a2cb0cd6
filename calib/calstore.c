/* calstore.c - the calibration store (contract in morgul/calstore.h). */
#include "morgul/calstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "morgul/h5util.h"

#define LOG_NAME "store.log"

int mg_time_parse(const char *s, double *t)
{
    if (!strcmp(s, "now")) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        *t = (double)now.tv_sec + now.tv_nsec * 1e-9;
        return 0;
    }
    char *end;
    double v = strtod(s, &end);
    if (end != s && !*end && isfinite(v) && v >= 0 && !strchr(s, '-')) {
        *t = v;
        return 0;
    }
    int y, mo, d, h = 0, mi = 0, pos = 0;
    double sec = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &pos) != 3)
        return -1;
    const char *p = s + pos;
    if (*p == 'T' || *p == ' ') {
        int k = 0;
        if (sscanf(++p, "%2d:%2d%n", &h, &mi, &k) != 2)
            return -1;
        p += k;
        if (*p == ':') {
            sec = strtod(++p, &end);
            if (end == p)
                return -1;
            p = end;
        }
    }
    if (*p == 'Z')
        p++;
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec >= 61)
        return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    *t = (double)timegm(&tm) + sec;
    return 0;
}

int mg_store_log(const char *dir, const char *op, const char *file, const char *details)
{
    char path[1100], now[64];
    snprintf(path, sizeof path, "%s/%s", dir, LOG_NAME);
    FILE *fp = fopen(path, "a");
    if (!fp)
        return -1;
    mg_calib_time_iso((double)time(NULL), now, sizeof now);
    fprintf(fp, "%s %s %s %s\n", now, op, file, details ? details : "");
    return fclose(fp) == 0 ? 0 : -1;
}

static int by_taken(const void *a, const void *b)
{
    const mg_store_entry *x = a, *y = b;
    if (!x->problem[0] != !y->problem[0])
        return x->problem[0] ? 1 : -1;
    if (x->h.taken != y->h.taken)
        return x->h.taken < y->h.taken ? -1 : 1;
    return strcmp(x->file, y->file);
}

static int is_h5_name(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 3 && !strcmp(name + n - 3, ".h5");
}

int mg_store_list(const char *dir, mg_store_entry **out, size_t *n, mg_error *err)
{
    *out = NULL;
    *n = 0;
    DIR *dp = opendir(dir);
    if (!dp)
        return mg_error_set(err, MG_EIO, "cannot open the calibration store %s: %s", dir, strerror(errno));
    size_t cap = 0;
    int rc = 0;
    for (struct dirent *e; (e = readdir(dp)) && !rc;) {
        if (!is_h5_name(e->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 32;
            mg_store_entry *m = realloc(*out, cap * sizeof **out);
            if (!m) {
                rc = mg_error_set(err, MG_ENOMEM, "out of memory listing %s", dir);
                break;
            }
            *out = m;
        }
        mg_store_entry *x = &(*out)[(*n)++];
        memset(x, 0, sizeof *x);
        snprintf(x->file, sizeof x->file, "%s", e->d_name);
        snprintf(x->path, sizeof x->path, "%s/%s", dir, e->d_name);
        mg_error pe = {0};
        if (mg_calib_peek(x->path, &x->h, &pe))
            snprintf(x->problem, sizeof x->problem, "%s", pe.message);
        else if (!(x->h.taken > 0))
            snprintf(x->problem, sizeof x->problem, "no time_taken attribute");
        else if (x->h.exposure_s != x->h.exposure_s)
            snprintf(x->problem, sizeof x->problem, "no exposure_time attribute");
    }
    closedir(dp);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
        return rc;
    }
    if (*n)
        qsort(*out, *n, sizeof **out, by_taken);
    return 0;
}

/* Copies src to dst (created exclusively). */
static int copy_file(const char *src, const char *dst, mg_error *err)
{
    int in = open(src, O_RDONLY);
    if (in < 0)
        return mg_error_set(err, MG_EIO, "cannot open %s: %s", src, strerror(errno));
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (out < 0) {
        close(in);
        return mg_error_set(err, MG_EIO, "cannot create %s: %s; is the store writable?", dst, strerror(errno));
    }
    static char buf[1 << 20];
    int rc = 0;
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = mg_error_set(err, MG_EIO, "reading %s failed: %s", src, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        for (ssize_t w = 0; w < r;) {
            ssize_t k = write(out, buf + w, (size_t)(r - w));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0) {
                rc = mg_error_set(err, MG_EIO, "writing %s failed: %s (disk full?)", dst, strerror(errno));
                break;
            }
            w += k;
        }
        if (rc)
            break;
    }
    if (!rc && fsync(out))
        rc = mg_error_set(err, MG_EIO, "writing %s failed: %s", dst, strerror(errno));
    close(in);
    if (close(out) && !rc)
        rc = mg_error_set(err, MG_EIO, "writing %s failed: %s", dst, strerror(errno));
    return rc;
}

/* The time and exposure attributes of one object (file or module group). */
static int stamp_one(hid_t loc, double taken, double exposure_s)
{
    int bad = 0;
    if (taken > 0) {
        char iso[64];
        mg_calib_time_iso(taken, iso, sizeof iso);
        if (H5Aexists(loc, "time_taken") > 0)
            H5Adelete(loc, "time_taken");
        bad |= mg_h5_attr_double(loc, "time_taken", taken) < 0 || mg_h5_attr_str(loc, "time_taken_iso", iso) < 0;
    }
    if (exposure_s == exposure_s) {
        if (H5Aexists(loc, "exposure_time") > 0)
            H5Adelete(loc, "exposure_time");
        bad |= mg_h5_attr_double(loc, "exposure_time", exposure_s) < 0;
    }
    return bad;
}

/* The stored copy's own time and exposure, when overridden: the file's
 * and every module's, so the copy never contradicts itself. */
static int stamp(const char *path, double taken, double exposure_s, mg_error *err)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0)
        return mg_error_set(err, MG_EIO, "cannot update %s", path);
    int bad = stamp_one(f, taken, exposure_s);
    H5G_info_t gi;
    hsize_t n = H5Gget_info(f, &gi) >= 0 ? gi.nlinks : 0;
    for (hsize_t i = 0; i < n; i++) {
        char name[MG_NAME_MAX] = {0};
        H5O_info_t oi;
        if (H5Lget_name_by_idx(f, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name, H5P_DEFAULT) < 0 ||
            H5Oget_info_by_name(f, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP)
            continue;
        hid_t g = H5Gopen2(f, name, H5P_DEFAULT);
        bad |= g < 0 || stamp_one(g, taken, exposure_s);
        if (g >= 0)
            H5Gclose(g);
    }
    bad |= H5Fclose(f) < 0;
    return bad ? mg_error_set(err, MG_EIO, "cannot update %s", path) : 0;
}

int mg_store_add(const char *dir, const char *src, double taken, double exposure_s, char *stored, size_t cap,
                 FILE *warn, mg_error *err)
{
    mg_calib_header h;
    int rc = mg_calib_peek(src, &h, err);
    if (rc)
        return rc;
    if (taken > 0)
        h.taken = taken;
    if (exposure_s == exposure_s)
        h.exposure_s = exposure_s;
    if (!(h.taken > 0))
        return mg_error_set(err, MG_EINVAL, "%s does not say when its dark runs were taken: give --taken TIME", src);
    if (h.exposure_s != h.exposure_s || h.exposure_s <= 0)
        return mg_error_set(err, MG_EINVAL, "%s does not say its exposure time: give --exposure SECONDS", src);
    struct stat st;
    if (!stat(dir, &st) && !S_ISDIR(st.st_mode))
        return mg_error_set(err, MG_EINVAL, "%s exists and is not a directory: a store is a directory", dir);
    if (stat(dir, &st) && mkdir(dir, 0755) && errno != EEXIST)
        return mg_error_set(err, MG_EIO, "cannot create the calibration store %s: %s", dir, strerror(errno));
    time_t tt = (time_t)h.taken;
    struct tm tm;
    gmtime_r(&tt, &tm);
    char stamp_s[32], base[300], tmp[1300], final[1300];
    strftime(stamp_s, sizeof stamp_s, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(base, sizeof base, "%s_%s_%gus", h.detector[0] ? h.detector : "jungfrau", stamp_s, h.exposure_s * 1e6);
    for (char *p = base; *p; p++) /* names from attributes must stay file names */
        if (*p == '/' || *p == ' ')
            *p = '-';
    snprintf(tmp, sizeof tmp, "%s/.adding-%ld.h5", dir, (long)getpid());
    unlink(tmp);
    if ((rc = copy_file(src, tmp, err)))
        goto fail;
    if ((taken > 0 || exposure_s == exposure_s) && (rc = stamp(tmp, taken, exposure_s, err)))
        goto fail;
    /* link() never replaces: a name taken (same detector, second and exposure) gets a suffix */
    for (int k = 1; k < 1000; k++) {
        if (k == 1)
            snprintf(final, sizeof final, "%s/%s.h5", dir, base);
        else
            snprintf(final, sizeof final, "%s/%s-%d.h5", dir, base, k);
        if (!link(tmp, final))
            break;
        if (errno != EEXIST) {
            rc = mg_error_set(err, MG_EIO, "cannot add %s to %s: %s", src, dir, strerror(errno));
            goto fail;
        }
    }
    unlink(tmp);
    const char *name = strrchr(final, '/') + 1;
    snprintf(stored, cap, "%s", name);
    char iso[64], details[1600];
    mg_calib_time_iso(h.taken, iso, sizeof iso);
    snprintf(details, sizeof details, "detector=%s taken=%s exposure=%g modules=%d from=%s",
             h.detector[0] ? h.detector : "jungfrau", iso, h.exposure_s, h.nmodules, src);
    if (mg_store_log(dir, "add", name, details) && warn)
        fprintf(warn, "warning: cannot write the log %s/%s\n", dir, LOG_NAME);
    return 0;
fail:
    unlink(tmp);
    return rc;
}

/* Time taken and exposure from a stored file's name (DET_YYYYmmddTHHMMSSZ_Eus[-k].h5). */
static int name_time(const char *name, double *t, double *e)
{
    const char *u = strrchr(name, '_');
    if (!u || u - name < 17 || u[-1] != 'Z' || u[-17] != '_')
        return -1;
    struct tm tm = {0};
    if (sscanf(u - 16, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec) != 6 || sscanf(u + 1, "%lfus", e) != 1)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *t = (double)timegm(&tm);
    *e *= 1e-6;
    return 0;
}

static int holds(const mg_calib_header *h, const mg_detector *det)
{
    for (int m = 0; m < det->nmodules; m++) {
        int found = 0;
        for (int k = 0; k < h->nmodules && !found; k++)
            found = !strcmp(h->modules[k], det->modules[m].name);
        if (!found)
            return 0;
    }
    return 1;
}

int mg_store_find(const char *dir, const mg_store_query *q, mg_store_entry *pick, FILE *warn, mg_error *err)
{
    mg_store_entry *all;
    size_t n;
    int rc = mg_store_list(dir, &all, &n, err);
    if (rc)
        return rc;
    const mg_store_entry *best = NULL;
    for (size_t i = 0; i < n; i++) {
        const mg_store_entry *x = &all[i];
        if (x->problem[0] || x->h.taken > q->time + 1e-6)
            continue;
        if (q->exposure_s == q->exposure_s && fabs(x->h.exposure_s - q->exposure_s) > 1e-9)
            continue;
        if (q->det && !holds(&x->h, q->det))
            continue;
        best = x;
    }
    /* A file that does not read is never passed over for older constants if
     * it might be the right one: its stored name says when it was taken. */
    const mg_store_entry *blocking = NULL;
    for (size_t i = 0; i < n && !blocking; i++) {
        const mg_store_entry *x = &all[i];
        double t, e;
        if (!x->problem[0])
            continue;
        if (name_time(x->file, &t, &e) || (t <= q->time + 1e-6 && (!best || t >= best->h.taken) &&
                                            (q->exposure_s != q->exposure_s || fabs(e - q->exposure_s) <= 1e-9)))
            blocking = x;
    }
    char when[64];
    mg_calib_time_iso(q->time, when, sizeof when);
    if (blocking)
        rc = mg_error_set(err, MG_EFORMAT, "the calibration store %s holds %s, which may be the right constants but "
                          "does not read (%s); remove or repair it, or name a file with --calibration", dir,
                          blocking->file, blocking->problem);
    else if (!best) {
        char exp[64] = "any exposure";
        if (q->exposure_s == q->exposure_s)
            snprintf(exp, sizeof exp, "exposure %g s", q->exposure_s);
        rc = mg_error_set(err, MG_ECONFIG, "no calibration in %s taken at or before %s with %s%s%s%s", dir, when, exp,
                          q->det ? " holding module " : "", q->det ? q->det->modules[0].name : "", "");
    }
    if (!rc) {
        *pick = *best;
        char details[512];
        snprintf(details, sizeof details, "for=%s exposure=%g by=%s", when, q->exposure_s,
                 q->who ? q->who : "morgul");
        if (mg_store_log(dir, "pick", best->file, details) && warn)
            fprintf(warn, "warning: cannot write the log %s/%s (the pick is not recorded there)\n", dir, LOG_NAME);
    }
    free(all);
    return rc;
}
