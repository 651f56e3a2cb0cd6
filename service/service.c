/* service.c - the service: sockets kept between runs, arming and ending
 * runs of morgul/run.h, the run log, the watcher between runs.  The HTTP
 * front (http.c) and the reports (report.c) call in here.
 *
 * One mutex (mu) guards the state.  A run's thread is started under it, but
 * the run sets up, receives and ends without it; the thread takes it only to
 * publish what it observed and, at the end, to record the run.  A finished
 * run thread is joined by whoever next looks (reap), never while it runs. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "morgul/darkrun.h"
#include "morgul/h5util.h"
#include "morgul/pedestal.h"
#include "morgul/rawfile.h"
#include "service_internal.h"

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static json_t *iso(double t)
{
    char buf[64];
    mg_h5_time_iso(t, 3, buf, sizeof buf);
    return json_string(buf);
}

static mg_reply reply(int status, json_t *body) { return (mg_reply){status, body}; }

mg_reply mg_reply_error(int status, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return reply(status, json_pack("{s:s}", "error", msg));
}

/* ---- the run log: one JSON object per line, appended and synced ---- */

static int log_append(mg_service *s, const char *event, json_t *record, mg_error *err)
{
    json_t *line = json_deep_copy(record);
    json_object_set_new(line, "event", json_string(event));
    char *text = json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(line);
    if (!text)
        return mg_error_set(err, MG_ENOMEM, "out of memory for the run log");
    int fd = open(s->runlog_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    int rc = 0;
    if (fd < 0)
        rc = mg_error_set(err, MG_EIO, "cannot open the run log %s: %s", s->runlog_path, strerror(errno));
    else {
        size_t n = strlen(text);
        text[n] = '\n'; /* json_dumps leaves room for nothing more: write the line and its end together */
        ssize_t w = write(fd, text, n + 1);
        if (w != (ssize_t)(n + 1) || fsync(fd))
            rc = mg_error_set(err, MG_EIO, "cannot write the run log %s: %s", s->runlog_path,
                              w < 0 || w == (ssize_t)(n + 1) ? strerror(errno) : "short write");
        close(fd);
    }
    free(text);
    return rc;
}

static json_t *find_run(mg_service *s, const char *name)
{
    size_t i;
    json_t *r;
    json_array_foreach(s->runs, i, r) if (!strcmp(json_string_value(json_object_get(r, "name")), name)) return r;
    return NULL;
}

static int run_number_of(const char *name)
{
    int n = 0;
    if (sscanf(name, "run_%6d", &n) == 1 && strlen(name) == 10)
        return n;
    return 0;
}

/* Reads the run log: "start" adds a run, "end" replaces it.  A line that is
 * not JSON (a kill in the middle of a write) is skipped and said. */
static int log_load(mg_service *s, mg_error *err)
{
    FILE *f = fopen(s->runlog_path, "r");
    if (!f)
        return errno == ENOENT ? 0 : mg_error_set(err, MG_EIO, "cannot read the run log %s: %s", s->runlog_path,
                                                 strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        const char *ev = json_string_value(json_object_get(j, "event"));
        const char *name = json_string_value(json_object_get(j, "name"));
        if (!j || !ev || !name) {
            fprintf(s->log, "serve: run log %s line %d is not a run record; skipped\n", s->runlog_path, lineno);
            json_decref(j);
            continue;
        }
        json_object_del(j, "event");
        json_t *old = find_run(s, name);
        if (old)
            json_object_update(old, j);
        else
            json_array_append(s->runs, j);
        json_decref(j);
    }
    free(line);
    fclose(f);
    return 0;
}

/* ---- names, space ---- */

int mg_service_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 100 || name[0] == '.' || name[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* Whether files of run `name` exist in the data directory (its master, log or a data file). */
static int name_taken(mg_service *s, const char *name)
{
    if (find_run(s, name))
        return 1;
    DIR *d = opendir(s->cfg.data_dir);
    if (!d)
        return 0;
    size_t n = strlen(name);
    int taken = 0;
    struct dirent *e;
    while (!taken && (e = readdir(d)))
        if (!strncmp(e->d_name, name, n) && (e->d_name[n] == '_' || e->d_name[n] == '.'))
            taken = 1;
    closedir(d);
    return taken;
}

void mg_service_disk(mg_service *s, uint64_t *free_bytes, uint64_t *total_bytes)
{
    struct statvfs v;
    *free_bytes = *total_bytes = 0;
    if (!statvfs(s->cfg.data_dir, &v)) {
        *free_bytes = (uint64_t)v.f_bavail * v.f_frsize;
        *total_bytes = (uint64_t)v.f_blocks * v.f_frsize;
    }
}

/* ---- the current run ---- */

static void observe(void *ctx, const struct mg_run_summary *now)
{
    mg_service *s = ctx;
    pthread_mutex_lock(&s->mu);
    double t = wall_now();
    /* rates over the last second or more */
    if (t - s->rate_t >= 1.0 || !s->rate_t) {
        if (s->rate_t) {
            double dt = t - s->rate_t;
            s->frames_per_s = (double)(now->frames.images - s->rate_images) / dt;
            s->bytes_per_s = (double)(now->total.bytes - s->rate_bytes) / dt;
        }
        s->rate_t = t;
        s->rate_images = now->frames.images;
        s->rate_bytes = now->total.bytes;
    }
    *s->live = *now;
    s->have_live = 1;
    if (s->state == MG_SV_ARMED && now->total.packets)
        s->state = MG_SV_RECEIVING;
    pthread_mutex_unlock(&s->mu);
}

json_t *mg_service_counters(const mg_run_summary *m)
{
    uint64_t rejected = m->unexpected_port + mg_link_stats_rejected(&m->total);
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f}",
                     "images", (json_int_t)m->frames.images, "complete", (json_int_t)m->frames.frames_complete,
                     "partial", (json_int_t)m->frames.frames_partial, "missing", (json_int_t)m->frames.frames_missing,
                     "written", (json_int_t)m->frames_written, "synced", (json_int_t)m->frames_synced,
                     "packets_received", (json_int_t)m->total.packets, "packets_lost", (json_int_t)m->packets_lost,
                     "packets_expected", (json_int_t)m->packets_expected, "stray", (json_int_t)m->total.stray,
                     "late", (json_int_t)m->total.late, "lagged", (json_int_t)m->total.lagged,
                     "kernel_drops", (json_int_t)m->total.kernel_drops, "overruns", (json_int_t)m->total.overrun,
                     "refused", (json_int_t)rejected, "acquisitions", (json_int_t)m->acquisitions, "unwritten", (json_int_t)m->frames_unwritten, "dark",
                     (json_int_t)m->frames_dark,
                     "bytes_received", (json_int_t)m->total.bytes, "bytes_written", (json_int_t)m->bytes_compressed,
                     "seconds", m->seconds);
}

/* A series of images begins (a run, or the next run at a counter restart): the preview takes its name and
 * shape, the stream sends its start message before its first image. */
static void begin_series(mg_service *s, uint64_t id, const char *name, const mg_run_images *shape)
{
    mg_preview_shape(s->preview, shape, name);
    if (!s->stream)
        return;
    const mg_run_config *rc = &s->rc;
    mg_stream_series ser = {.id = id, .unique_id = name, .arm_time = s->arm_time, .images = shape,
                            .nmodules = rc->det.nmodules, .detector = rc->det.name,
                            .energy_kev = rc->calibration ? rc->energy_kev : 0, .distance_mm = rc->distance_mm,
                            .beam_x = rc->beam_x, .beam_y = rc->beam_y, .number_of_images = rc->max_frames};
    mg_stream_start(s->stream, &ser);
}

/* The run's images: the stream's start message (on the run's thread, before any image). */
static void on_images(void *ctx, const mg_run_images *shape)
{
    mg_service *s = ctx;
    s->shape = *shape; /* for the runs a counter restart begins (--auto) */
    begin_series(s, (uint64_t)(s->number_in_use > 0 ? s->number_in_use : 0), s->run_name, shape);
}

static void on_written(void *ctx, const mg_image_written *w)
{
    mg_service *s = ctx;
    mg_preview_offer(s->preview, w);
    if (s->stream)
        mg_stream_image(s->stream, w);
}

/* --auto: the detector's frame counter restarted with no pause, so the
 * acquisition that ended is a run of its own.  It is ended in the run list
 * with its images' counters and the next run (the next number) begins on
 * the same receiving, its files named after it; nothing is missed between
 * them.  The packet counters belong to the receiving as a whole and end up
 * in the last run of the chain.  On the writing thread. */
static void split_run(void *ctx, int acq, const mg_acq_info *q, char *output, size_t cap)
{
    mg_service *s = ctx;
    (void)acq;
    pthread_mutex_lock(&s->mu);
    json_t *rec = s->current;
    char name[128];
    int number = s->next_number;
    do
        snprintf(name, sizeof name, "run_%06d", number++);
    while (name_taken(s, name));
    number--;
    s->next_number = number + 1;
    int whole = q->partial == 0 && q->missing == 0;
    char why[512];
    snprintf(why, sizeof why, "%s: %llu images (complete %llu, partial %llu, missing %llu); the detector's frame "
             "counter restarted and run %s goes on", whole ? "complete" : "IMAGES INCOMPLETE",
             (unsigned long long)q->images, (unsigned long long)q->complete, (unsigned long long)q->partial,
             (unsigned long long)q->missing, name);
    json_object_set_new(rec, "end", iso(wall_now()));
    json_object_set_new(rec, "state", json_string("ended"));
    json_object_set_new(rec, "reason", json_string("counter restart"));
    json_object_set_new(rec, "verdict", json_string(why));
    json_object_set_new(rec, "exit_status", json_integer(whole ? MG_EXIT_OK : MG_EXIT_LOSS));
    json_object_set_new(rec, "counters", json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "images", (json_int_t)q->images,
                                                   "complete", (json_int_t)q->complete, "partial",
                                                   (json_int_t)q->partial, "missing", (json_int_t)q->missing,
                                                   "first_number", (json_int_t)q->first_number, "last_number",
                                                   (json_int_t)q->last_number));
    json_object_set_new(rec, "continued_by", json_string(name));
    mg_stream_counts sc = {0};
    if (s->stream) {
        mg_stream_end(s->stream);
        mg_stream_get_counts(s->stream, &sc);
        json_object_set_new(rec, "stream", json_pack("{s:I,s:I}", "sent", (json_int_t)(sc.sent - s->stream_at_arm.sent),
                                                     "not_streamed",
                                                     (json_int_t)(sc.not_streamed - s->stream_at_arm.not_streamed)));
    }
    mg_error lerr = {0};
    if (log_append(s, "end", rec, &lerr))
        fprintf(s->log, "serve: %s\n", lerr.message);
    fprintf(s->log, "serve: run %s ended (counter restart): %s\n", json_string_value(json_object_get(rec, "name")), why);
    snprintf(output, cap, "%s/%s", s->cfg.data_dir, name);
    char master[4300];
    snprintf(master, sizeof master, "%s_master.h5", output);
    json_t *next = json_pack("{s:s,s:i,s:s,s:b,s:O,s:o,s:s,s:{s:s,s:O},s:O}", "name", name, "number", number, "kind",
                             "data", "auto", 1, "settings", json_object_get(rec, "settings"), "start",
                             iso(wall_now()), "state", "running", "files", "master", master, "log",
                             json_object_get(json_object_get(rec, "files"), "log"), "continues",
                             json_object_get(rec, "name"));
    json_array_append_new(s->runs, next);
    s->current = next;
    s->number_in_use = number;
    snprintf(s->run_name, sizeof s->run_name, "%s", name);
    s->arm_time = wall_now();
    s->stream_at_arm = sc;
    if (log_append(s, "start", next, &lerr))
        fprintf(s->log, "serve: %s\n", lerr.message);
    fprintf(s->log, "serve: run %s began at a counter restart (--auto)\n", name);
    fflush(s->log);
    pthread_mutex_unlock(&s->mu);
    begin_series(s, (uint64_t)number, name, &s->shape);
}

/* A dark run: its frames into pedestal sums, then pedestals, noise and masks into the calibration file. */
static int dark_run(mg_service *s, mg_error *err)
{
    mg_dark_info info;
    mg_dark_info_defaults(&info);
    info.cells = s->dark_cells;
    info.taken = wall_now();
    info.sources = "live (morgul serve)";
    const int nacc = s->rc.det.nmodules * mg_dark_cells(&info);
    mg_pedestal_acc *acc[MG_MAX_MODULES * MG_CELLS_MAX];
    int rc = mg_dark_accs_new(acc, nacc, err);
    if (rc) {
        memset(s->final, 0, sizeof *s->final);
        return rc;
    }
    rc = mg_dark_run(&s->rc, 1, acc, s->dark_gain, 0, 0, &info, s->final, err);
    if (!rc) {
        mg_dark_cells_report(&info, s->run_log);
        rc = mg_dark_save(s->dark_calibration, &s->rc.det, acc, &info, s->run_log, err);
        if (!rc)
            fprintf(s->run_log, "wrote %s\n", s->dark_calibration);
    }
    mg_dark_accs_free(acc, nacc);
    return rc;
}

static void *run_main(void *arg)
{
    mg_service *s = arg;
    mg_error err = {0};
    int rc;
    if (s->dark)
        rc = dark_run(s, &err);
    else
        rc = mg_run_receive(&s->rc, s->final, &err);
    const mg_run_summary *sum = s->final;
    mg_stream_counts sc0 = s->stream_at_arm, sc1 = {0};
    if (s->stream && sum->started) {
        mg_stream_end(s->stream);
        mg_stream_get_counts(s->stream, &sc1);
    }
    char why[512] = "";
    int status = sum->started ? mg_run_outcome(sum, rc, s->max_loss, why, sizeof why) : MG_EXIT_FAILED;
    if (sum->started)
        mg_run_print_summary(sum, rc, s->max_loss, s->run_log);
    if (rc) {
        fprintf(s->run_log, "morgul serve: %s\n", err.message);
        if (!sum->started)
            snprintf(why, sizeof why, "%s", err.message);
    }
    fflush(s->run_log);
    pthread_mutex_lock(&s->mu);
    s->setup_rc = rc;
    s->setup_err = err;
    json_t *rec = s->current;
    if (rec && sum->started) {
        json_object_set_new(rec, "end", iso(wall_now()));
        json_object_set_new(rec, "state", json_string(rc ? "failed" : "ended"));
        json_object_set_new(rec, "reason", json_string(sum->stopped_by == MG_END_SIGNAL && s->stop_why ? s->stop_why
                                                       : mg_run_end_reason(sum->stopped_by)));
        json_object_set_new(rec, "verdict", json_string(why));
        json_object_set_new(rec, "exit_status", json_integer(status));
        json_object_set_new(rec, "counters", mg_service_counters(sum));
        int last = sum->acquisitions - 1;
        if (json_object_get(rec, "continues") && last >= 0 && last < MG_RUN_ACQ_KEPT) {
            /* the last run of a chain a counter restart split: its own images, and (above) the receiving's */
            const mg_acq_info *q = &sum->acq[last];
            json_object_set_new(rec, "acquisition", json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "images",
                                                              (json_int_t)q->images, "complete", (json_int_t)q->complete,
                                                              "partial", (json_int_t)q->partial, "missing",
                                                              (json_int_t)q->missing, "first_number",
                                                              (json_int_t)q->first_number, "last_number",
                                                              (json_int_t)q->last_number));
        }
        if (rc)
            json_object_set_new(rec, "error", json_string(err.message));
        if (s->stream)
            json_object_set_new(rec, "stream", json_pack("{s:I,s:I}", "sent", (json_int_t)(sc1.sent - sc0.sent),
                                                         "not_streamed",
                                                         (json_int_t)(sc1.not_streamed - sc0.not_streamed)));
        mg_error lerr = {0};
        if (log_append(s, "end", rec, &lerr))
            fprintf(s->log, "serve: %s\n", lerr.message);
        fprintf(s->log, "serve: run %s ended (%s): %s\n", json_string_value(json_object_get(rec, "name")),
                json_string_value(json_object_get(rec, "reason")), why);
        fflush(s->log);
    }
    *s->live = *sum;
    s->have_live = sum->started;
    s->state = rc && sum->started ? MG_SV_ERROR : MG_SV_IDLE;
    if (rc && sum->started)
        snprintf(s->error, sizeof s->error, "run %s: %s", json_string_value(json_object_get(rec, "name")),
                 err.message);
    s->finished = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Joins a finished run's thread (under mu); nothing when none or still running. */
static void reap(mg_service *s)
{
    if (!s->running || !s->finished)
        return;
    mg_thread_join(&s->th);
    s->running = 0;
    if (s->run_log && s->run_log != s->log)
        fclose(s->run_log);
    s->run_log = NULL;
    s->current = NULL;
}

/* Throws away what waits in the sockets (under mu, no run on), counted: at
 * most 4096 datagrams per link at a time, so that a detector sending at full
 * rate to an unarmed service cannot keep the lock (what is left waits for
 * the watcher's next round, 20 ms later, or overflows the socket, which the
 * next run does not count as its own: morgul/run.h). */
static void drain_sockets(mg_service *s)
{
    enum { BATCH = 64, DGRAM = 9000 };
    static __thread char buf[BATCH][DGRAM];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    for (int l = 0; l < s->nlinks; l++)
        for (int round = 0; round < 4096 / BATCH; round++) {
            memset(msgs, 0, sizeof msgs);
            for (int i = 0; i < BATCH; i++) {
                iov[i] = (struct iovec){buf[i], DGRAM};
                msgs[i].msg_hdr.msg_iov = &iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            int n = recvmmsg(s->fds[l], msgs, BATCH, MSG_DONTWAIT, NULL);
            if (n <= 0)
                break;
            s->unarmed += (uint64_t)n;
        }
}

static int get_number(const json_t *v, double lo, double hi, double *out)
{
    if (!json_is_number(v))
        return -1;
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi))
        return -1;
    *out = x;
    return 0;
}

/* The run's configuration from the defaults and `settings` (a dark run's
 * settings with `dark`); 400 with the first problem. */
static mg_reply configure(mg_service *s, const json_t *settings, int dark, mg_run_config *rc, char *name,
                          size_t ncap, double *max_loss)
{
    *rc = s->cfg.run;
    *max_loss = 0;
    name[0] = 0;
    s->dark_gain = 0;
    s->dark_cells = 1;
    s->dark_calibration = NULL;
    if (dark) /* its frames go into the pedestal sums; nothing is corrected or written */
        rc->calibration = NULL;
    if (settings && !json_is_object(settings))
        return mg_reply_error(400, "the request's body is a JSON object of settings");
    const char *key;
    json_t *v;
    double x;
    int corrected = -1;
    json_object_foreach((json_t *)settings, key, v)
    {
        /* the settings of every run */
        if (!strcmp(key, "name")) {
            const char *n = json_string_value(v);
            if (!n || !mg_service_name_ok(n))
                return mg_reply_error(400, "name: letters, digits, '.', '_' and '-' only, at most 100, not starting "
                                           "with '.' or '-' (it names the run's files in the data directory)");
            snprintf(name, ncap, "%s", n);
        } else if (!strcmp(key, "frames")) {
            if (!json_is_integer(v) || json_integer_value(v) < dark)
                return mg_reply_error(400, dark ? "frames: a whole number >= 1 (dark frames to average)"
                                                : "frames: a whole number >= 0 (0: until disarmed or idle)");
            rc->max_frames = (uint64_t)json_integer_value(v);
        } else if (!strcmp(key, "idle_timeout")) {
            if (get_number(v, 0, 1e7, &x))
                return mg_reply_error(400, "idle_timeout: seconds, 0..1e7 (0: no idle end)");
            rc->idle_timeout = x;
        } else if (dark) { /* a dark run's */
            if (!strcmp(key, "gain")) {
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 2)
                    return mg_reply_error(400, "gain: 0 (dynamic gain, the G0 run), 1 or 2 (forced)");
                s->dark_gain = (int)json_integer_value(v);
            } else if (!strcmp(key, "storage_cells")) {
                if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > MG_CELLS_MAX)
                    return mg_reply_error(400, "storage_cells: 1..%d", MG_CELLS_MAX);
                s->dark_cells = (int)json_integer_value(v);
            } else if (!strcmp(key, "calibration")) {
                const char *p = json_string_value(v);
                if (!p || !p[0])
                    return mg_reply_error(400, "calibration: the path of the calibration file (on the server) the "
                                               "pedestals, noise and masks go into");
                s->dark_calibration = p;
            } else
                return mg_reply_error(400, "unknown setting '%s' of a dark run (see /openapi.json: name, frames, "
                                           "idle_timeout, gain, storage_cells, calibration)", key);
        } else if (!strcmp(key, "max_loss")) { /* a data run's */
            if (get_number(v, 0, 1, &x))
                return mg_reply_error(400, "max_loss: a fraction of the packets, 0..1");
            *max_loss = x;
        } else if (!strcmp(key, "frames_per_file")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1)
                return mg_reply_error(400, "frames_per_file: a whole number >= 1");
            rc->frames_per_file = (uint64_t)json_integer_value(v);
        } else if (!strcmp(key, "sample")) {
            if (!json_is_string(v) || json_string_length(v) > 1000)
                return mg_reply_error(400, "sample: a string of at most 1000 bytes");
            rc->sample_name = json_string_value(v); /* the settings live as long as the run's record */
        } else if (!strcmp(key, "corrected")) {
            if (!json_is_boolean(v))
                return mg_reply_error(400, "corrected: true or false");
            corrected = json_is_true(v);
        } else if (!strcmp(key, "calibration")) {
            const char *p = json_string_value(v);
            if (!p || !p[0])
                return mg_reply_error(400, "calibration: the path of a calibration file on the server");
            rc->calibration = p;
        } else if (!strcmp(key, "energy_kev")) {
            if (get_number(v, 0.1, 1000, &x))
                return mg_reply_error(400, "energy_kev: the photon energy in keV, 0.1..1000");
            rc->energy_kev = x;
        } else if (!strcmp(key, "type")) {
            const char *t = json_string_value(v);
            if (!t || (strcmp(t, "int16") && strcmp(t, "int32") && strcmp(t, "float32")))
                return mg_reply_error(400, "type: \"int16\", \"int32\" or \"float32\"");
            rc->out_type = !strcmp(t, "int16") ? MG_OUT_INT16 : !strcmp(t, "int32") ? MG_OUT_INT32 : MG_OUT_FLOAT32;
        } else if (!strcmp(key, "distance_mm")) {
            if (get_number(v, 1, 1e5, &x))
                return mg_reply_error(400, "distance_mm: 1..1e5");
            rc->distance_mm = x;
        } else
            return mg_reply_error(400, "unknown setting '%s' (see /openapi.json: name, frames, idle_timeout, "
                                       "max_loss, frames_per_file, sample, corrected, calibration, energy_kev, type, "
                                       "distance_mm)", key);
    }
    if (dark) {
        if (!s->dark_calibration)
            return mg_reply_error(400, "a dark run needs the calibration file it writes: calibration");
        if (!rc->max_frames)
            return mg_reply_error(400, "a dark run needs its number of frames: frames");
        return reply(0, NULL);
    }
    if (corrected == 0)
        rc->calibration = NULL;
    else if (corrected == 1 && !rc->calibration)
        return mg_reply_error(400, "corrected: true needs a calibration (in the request or the service's "
                                   "--calibration)");
    if (rc->calibration && !(rc->energy_kev > 0))
        return mg_reply_error(400, "a corrected run needs the photon energy: energy_kev");
    return reply(0, NULL);
}

/* Starts a run (under mu, no run on).  On success the run's thread is
 * started and its record is s->current. */
static mg_reply start_run(mg_service *s, const json_t *settings, int automatic, int dark)
{
    mg_run_config rc;
    char name[128];
    double max_loss;
    mg_reply bad = configure(s, settings, dark, &rc, name, sizeof name, &max_loss);
    if (bad.status)
        return bad;
    if (automatic) {
        rc.idle_timeout = s->cfg.auto_idle > 0 ? s->cfg.auto_idle : 2;
        if (!dark) { /* a counter restart ends the run and begins the next (split_run) */
            rc.acquisition_begins = split_run;
            rc.acquisition_ctx = s;
        }
    }
    if (name[0] && name_taken(s, name))
        return mg_reply_error(409, "a run named '%s' exists in %s: choose another name", name, s->cfg.data_dir);
    int number = 0;
    if (!name[0]) {
        number = s->next_number;
        do
            snprintf(name, sizeof name, "run_%06d", number++);
        while (name_taken(s, name));
        number--;
    } else
        number = run_number_of(name);
    /* room for the whole run when its length is known (uncompressed: compression rarely loses, never gains
     * much on noise), and always 1 GiB */
    uint64_t free_b, total_b;
    mg_service_disk(s, &free_b, &total_b);
    uint64_t reserve = s->cfg.min_free > 0 ? (uint64_t)s->cfg.min_free : 1ull << 30;
    uint64_t need = (dark ? 0 : rc.max_frames * (uint64_t)rc.det.nmodules * MG_MODULE_PIXELS * 2) + reserve;
    if (free_b < need)
        return mg_reply_error(507, "not enough free space in %s: %.3f GB free, the run needs %.3f GB (its frames "
                                   "uncompressed and --min-free %.3f GB); free space or arm for fewer frames",
                              s->cfg.data_dir, (double)free_b / 1e9, (double)need / 1e9, (double)reserve / 1e9);
    snprintf(s->prefix, sizeof s->prefix, "%s/%s", s->cfg.data_dir, name);
    snprintf(s->run_log_path, sizeof s->run_log_path, "%s/%s.log", s->cfg.data_dir, name);
    FILE *lf = fopen(s->run_log_path, "wx");
    if (!lf)
        return mg_reply_error(500, "cannot create the run's log %s: %s", s->run_log_path, strerror(errno));
    setvbuf(lf, NULL, _IOLBF, 0);
    if (!automatic)
        drain_sockets(s);
    rc.output = dark ? NULL : s->prefix;
    rc.log = lf;
    rc.stop = &s->stop;
    rc.ready = &s->ready;
    rc.observe = observe;
    rc.observe_ctx = s;
    rc.sockets = s->fds;
    rc.kept = &s->kept;
    rc.on_images = on_images;
    rc.written = on_written;
    rc.written_ctx = s;
    rc.ready_file = NULL;
    rc.progress = 0;
    rc.quiet = 0;
    rc.command_line = s->command_line;
    atomic_store(&s->stop, 0);
    atomic_store(&s->ready, 0);
    s->rc = rc;
    s->max_loss = max_loss;
    s->run_log = lf;
    json_t *own = settings ? json_deep_copy(settings) : json_object(); /* the run's strings point into it */
    char master[4300];
    snprintf(master, sizeof master, "%s_master.h5", s->prefix);
    json_t *rec = json_pack("{s:s,s:i,s:s,s:b,s:o,s:o,s:s,s:{s:s,s:s}}", "name", name, "number", number, "kind",
                            dark ? "dark" : "data", "auto", automatic, "settings", own, "start", iso(wall_now()),
                            "state", "running", "files", dark ? "calibration" : "master",
                            dark ? s->dark_calibration : master, "log", s->run_log_path);
    s->dark = dark;
    if (dark) /* its own copy, as for the other strings */
        s->dark_calibration = json_string_value(json_object_get(own, "calibration"));
    if (json_object_get(own, "sample"))
        s->rc.sample_name = json_string_value(json_object_get(own, "sample"));
    if (json_object_get(own, "calibration") && s->rc.calibration)
        s->rc.calibration = json_string_value(json_object_get(own, "calibration"));
    s->current = rec;
    snprintf(s->run_name, sizeof s->run_name, "%s", name);
    s->arm_time = wall_now();
    if (s->stream)
        mg_stream_get_counts(s->stream, &s->stream_at_arm);
    s->number_in_use = number;
    s->finished = 0;
    s->have_live = 0;
    s->rate_t = 0;
    s->frames_per_s = s->bytes_per_s = 0;
    s->state = MG_SV_ARMED;
    s->error[0] = 0;
    if (mg_thread_start(s->kept.threads, &s->th, run_main, s, NULL)) {
        fclose(lf);
        unlink(s->run_log_path);
        json_decref(rec);
        s->current = NULL;
        s->state = MG_SV_IDLE;
        return mg_reply_error(503, "cannot start the run's thread");
    }
    s->running = 1;
    s->number_in_use = number;
    return reply(200, NULL);
}

/* Waits (holding mu) until the run listens or its set-up failed; then
 * records its start or forgets it.  Returns the reply to the arming. */
static mg_reply await_start(mg_service *s)
{
    while (!s->finished && !atomic_load(&s->ready)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    json_t *rec = s->current;
    if (s->finished && !s->final->started) {
        /* it never listened: nothing was made; the request changes nothing */
        mg_error e = s->setup_err;
        reap(s);
        unlink(s->run_log_path);
        json_decref(rec);
        s->state = MG_SV_IDLE;
        return mg_reply_error(e.code == MG_ENOMEM || e.code == MG_ESYS ? 503 : 422, "the run cannot start: %s",
                              e.message);
    }
    json_array_append(s->runs, rec); /* the list holds it; s->current keeps the same object */
    json_decref(rec);
    if (s->number_in_use >= s->next_number)
        s->next_number = s->number_in_use + 1;
    mg_error lerr = {0};
    if (log_append(s, "start", rec, &lerr))
        fprintf(s->log, "serve: %s\n", lerr.message);
    fprintf(s->log, "serve: run %s armed\n", json_string_value(json_object_get(rec, "name")));
    fflush(s->log);
    return reply(200, json_deep_copy(rec));
}

/* Arms a data run or a dark run (under no lock: takes it). */
static mg_reply begin(mg_service *s, const json_t *settings, int dark)
{
    pthread_mutex_lock(&s->mu);
    reap(s);
    mg_reply r;
    if (s->running)
        r = mg_reply_error(409, "a run is on (%s): disarm it first",
                           json_string_value(json_object_get(s->current, "name")));
    else if ((r = start_run(s, settings, 0, dark)).status == 200)
        r = await_start(s);
    pthread_mutex_unlock(&s->mu);
    return r;
}

mg_reply mg_service_arm(mg_service *s, const json_t *settings) { return begin(s, settings, 0); }

mg_reply mg_service_pedestal(mg_service *s, const json_t *settings) { return begin(s, settings, 1); }

mg_reply mg_service_disarm(mg_service *s)
{
    pthread_mutex_lock(&s->mu);
    reap(s);
    if (!s->running) {
        pthread_mutex_unlock(&s->mu);
        return mg_reply_error(409, "no run is on: nothing to disarm");
    }
    json_t *rec = s->current;
    json_incref(rec);
    s->state = MG_SV_ENDING;
    s->stop_why = "disarmed";
    atomic_store(&s->stop, 1);
    while (!s->finished)
        pthread_cond_wait(&s->cv, &s->mu);
    reap(s);
    mg_reply r = reply(200, json_deep_copy(rec));
    json_decref(rec);
    pthread_mutex_unlock(&s->mu);
    return r;
}

int mg_service_preview(mg_service *s, uint8_t **png, size_t *len, mg_error *err)
{
    return mg_preview_png(s->preview, png, len, err);
}

mg_reply mg_service_runs(mg_service *s)
{
    pthread_mutex_lock(&s->mu);
    json_t *a = json_deep_copy(s->runs);
    pthread_mutex_unlock(&s->mu);
    return reply(200, json_pack("{s:o}", "runs", a));
}

mg_reply mg_service_run(mg_service *s, const char *name)
{
    pthread_mutex_lock(&s->mu);
    json_t *r = find_run(s, name);
    mg_reply out = r ? reply(200, json_deep_copy(r)) : mg_reply_error(404, "no run named '%s'", name);
    pthread_mutex_unlock(&s->mu);
    return out;
}

/* ---- the watcher: between runs, drain the sockets (or start a run with --auto), and join ended runs ---- */

static void *watch_main(void *arg)
{
    mg_service *s = arg;
    struct pollfd pf[MG_MAX_LINKS];
    while (!atomic_load(&s->quit)) {
        pthread_mutex_lock(&s->mu);
        atomic_fetch_add(&s->heartbeat, 1);
        reap(s);
        if (!s->running) {
            if (s->cfg.auto_arm) {
                for (int l = 0; l < s->nlinks; l++)
                    pf[l] = (struct pollfd){.fd = s->fds[l], .events = POLLIN};
                if (poll(pf, (nfds_t)s->nlinks, 0) > 0) {
                    mg_reply r = start_run(s, NULL, 1, 0);
                    if (r.status == 200)
                        r = await_start(s);
                    if (r.status != 200) {
                        fprintf(s->log, "serve: data arrived but no run could start: %s; it is thrown away\n",
                                json_string_value(json_object_get(r.body, "error")));
                        drain_sockets(s);
                    }
                    json_decref(r.body);
                }
            } else
                drain_sockets(s);
        }
        pthread_mutex_unlock(&s->mu);
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ---- open, close ---- */

mg_service *mg_service_open(const mg_service_config *cfg, mg_error *err)
{
    mg_service *s = calloc(1, sizeof *s);
    if (!s || !(s->live = calloc(1, sizeof *s->live)) || !(s->final = calloc(1, sizeof *s->final))) {
        if (s)
            free(s->live);
        free(s);
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->log = cfg->log ? cfg->log : stderr;
    s->nlinks = mg_detector_links(&cfg->run.det);
    for (int l = 0; l < MG_MAX_LINKS; l++)
        s->fds[l] = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->runs = json_array();
    s->next_number = 1;
    s->preview = mg_preview_new();
    atomic_init(&s->stop, 0);
    atomic_init(&s->ready, 0);
    atomic_init(&s->quit, 0);
    int rc = s->preview ? mg_detector_validate(&cfg->run.det, err) : mg_error_set(err, MG_ENOMEM, "out of memory");
    if (!rc && mkdir(cfg->data_dir, 0755) && errno != EEXIST)
        rc = mg_error_set(err, MG_EIO, "cannot make the data directory %s: %s", cfg->data_dir, strerror(errno));
    if (!rc) {
        struct stat st;
        if (stat(cfg->data_dir, &st) || !S_ISDIR(st.st_mode))
            rc = mg_error_set(err, MG_EIO, "%s is not a directory", cfg->data_dir);
    }
    snprintf(s->runlog_path, sizeof s->runlog_path, "%s/runs.jsonl", cfg->data_dir);
    if (!rc)
        rc = log_load(s, err);
    for (int l = 0; l < s->nlinks && !rc; l++)
        rc = mg_run_bind(&cfg->run, l, s->log, &s->fds[l], err);
    /* the topology and the frame buffers, made once: a run then starts in milliseconds */
    if (!rc && !(rc = mg_run_keep(&cfg->run, &s->kept, err)))
        fprintf(s->log, "serve: %.0f MiB of frame buffers kept for every run\n", (double)s->kept.pool_bytes / (1 << 20));
    if (!rc) {
        size_t i;
        json_t *r;
        json_array_foreach(s->runs, i, r)
        {
            const char *name = json_string_value(json_object_get(r, "name"));
            int n = json_integer_value(json_object_get(r, "number"));
            if (n >= s->next_number)
                s->next_number = n + 1;
            if (strcmp(json_string_value(json_object_get(r, "state")) ?: "", "running"))
                continue;
            /* the service died during this run: its files are finished, its end logged */
            char prefix[4300];
            snprintf(prefix, sizeof prefix, "%s/%s", cfg->data_dir, name);
            mg_error e = {0};
            int rr = mg_rawfile_repair(prefix, s->log, &e);
            json_object_set_new(r, "end", iso(wall_now()));
            json_object_set_new(r, "state", json_string("interrupted"));
            json_object_set_new(r, "reason", json_string("the service ended during the run (killed or crashed)"));
            json_object_set_new(r, "verdict", json_string(rr < 0 || (rr > 0 && e.code)
                                                              ? e.message
                                                              : "files finished by repair: they hold the frames "
                                                                "written before the end"));
            json_object_set_new(r, "exit_status", json_integer(MG_EXIT_FAILED));
            fprintf(s->log, "serve: run %s was interrupted; its files were finished (%s)\n", name,
                    rr >= 0 ? "repaired" : e.message);
            mg_error lerr = {0};
            if (log_append(s, "end", r, &lerr))
                fprintf(s->log, "serve: %s\n", lerr.message);
        }
    }
    if (!rc && cfg->stream && !(s->stream = mg_stream_open(cfg->stream, err)))
        rc = err ? err->code : MG_ESYS;
    if (!rc && pthread_create(&s->watcher, NULL, watch_main, s))
        rc = mg_error_set(err, MG_ESYS, "cannot start the service's watcher thread");
    else if (!rc)
        s->watching = 1;
    if (rc) {
        mg_service_close(s);
        return NULL;
    }
    return s;
}

void mg_service_set_command_line(mg_service *s, const char *line) { s->command_line = line; }

uint64_t mg_service_heartbeat(mg_service *s) { return atomic_load(&s->heartbeat); }

void mg_service_close(mg_service *s)
{
    if (!s)
        return;
    atomic_store(&s->quit, 1);
    if (s->watching)
        pthread_join(s->watcher, NULL);
    pthread_mutex_lock(&s->mu);
    if (s->running) {
        s->stop_why = "the service was stopped";
        atomic_store(&s->stop, 1);
        s->state = MG_SV_ENDING;
        while (!s->finished)
            pthread_cond_wait(&s->cv, &s->mu);
        reap(s);
    }
    pthread_mutex_unlock(&s->mu);
    for (int l = 0; l < MG_MAX_LINKS; l++)
        if (s->fds[l] >= 0)
            close(s->fds[l]);
    mg_stream_close(s->stream);
    mg_preview_free(s->preview);
    mg_run_kept_free(&s->kept);
    json_decref(s->runs);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->live);
    free(s->final);
    free(s);
}
