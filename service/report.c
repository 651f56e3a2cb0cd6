/* report.c - what the service shows: its status as JSON and its counters
 * in Prometheus' text format.  Both are made from one copy of the state
 * taken under the lock, so a reader never holds up a run for longer than
 * that copy. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "service_internal.h"

static const char *const state_names[] = {"idle", "armed", "receiving", "ending", "error"};

/* The state as one consistent copy. */
typedef struct view {
    int state, running;
    char error[1200];
    uint64_t unarmed;
    size_t nruns;
    json_t *current;     /* a copy of the current (or last) run's record, or NULL */
    mg_run_summary *m;   /* its counters */
    int have;
    double frames_per_s, bytes_per_s;
    char calibration[4200];  /* the current run's, or the service's default; empty: none */
} view;

static int take_view(mg_service *s, view *v)
{
    memset(v, 0, sizeof *v);
    if (!(v->m = malloc(sizeof *v->m)))
        return -1;
    pthread_mutex_lock(&s->mu);
    v->state = s->state;
    v->running = s->running && !s->finished;
    snprintf(v->error, sizeof v->error, "%s", s->error);
    v->unarmed = s->unarmed;
    v->nruns = json_array_size(s->runs);
    json_t *rec = s->current ? s->current : json_array_get(s->runs, v->nruns ? v->nruns - 1 : 0);
    v->current = rec ? json_deep_copy(rec) : NULL;
    v->have = s->have_live;
    *v->m = *s->live;
    v->frames_per_s = v->running ? s->frames_per_s : 0;
    const char *cal = v->running ? s->rc.calibration : s->cfg.run.calibration;
    snprintf(v->calibration, sizeof v->calibration, "%s", cal ? cal : "");
    v->bytes_per_s = v->running ? s->bytes_per_s : 0;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void drop_view(view *v)
{
    json_decref(v->current);
    free(v->m);
}

mg_reply mg_service_status(mg_service *s)
{
    view v;
    if (take_view(s, &v))
        return mg_reply_error(503, "out of memory");
    uint64_t free_b, total_b;
    mg_service_disk(s, &free_b, &total_b);
    const mg_run_config *rc = &s->cfg.run;
    json_t *det = json_pack("{s:s,s:i,s:i}", "name", rc->det.name, "modules", rc->det.nmodules, "links", s->nlinks);
    json_t *out = json_pack("{s:s,s:b,s:I,s:I,s:{s:s,s:I,s:I},s:o,s:s?,s:b,s:s}", "state", state_names[v.state],
                            "running", v.running, "packets_unarmed", (json_int_t)v.unarmed, "runs",
                            (json_int_t)v.nruns, "disk", "path", s->cfg.data_dir, "free_bytes", (json_int_t)free_b,
                            "total_bytes", (json_int_t)total_b, "detector", det, "calibration", v.calibration[0] ? v.calibration : NULL,
                            "auto", s->cfg.auto_arm, "version", MG_VERSION);
    if (v.error[0])
        json_object_set_new(out, "error", json_string(v.error));
    /* threads kept between runs: a run of the shape of the last starts none, so `kept` stays */
    json_object_set_new(out, "threads", json_pack("{s:i,s:I}", "kept", mg_threads_count(s->kept.threads), "runs_on_them",
                                                  (json_int_t)mg_threads_jobs(s->kept.threads)));
    if (s->stream) {
        mg_stream_counts sc;
        mg_stream_get_counts(s->stream, &sc);
        json_object_set_new(out, "stream", json_pack("{s:s,s:i,s:I,s:I,s:I}", "endpoint", s->cfg.stream,
                                                     "consumers", sc.consumers, "sent", (json_int_t)sc.sent,
                                                     "not_streamed", (json_int_t)sc.not_streamed, "bytes",
                                                     (json_int_t)sc.bytes));
    } else
        json_object_set_new(out, "stream", json_null());
    if (v.current) {
        json_t *run = v.current;
        v.current = NULL;
        if (v.have) {
            json_object_set_new(run, "counters", mg_service_counters(v.m));
            json_object_set_new(run, "rates", json_pack("{s:f,s:f}", "frames_per_s", v.frames_per_s,
                                                        "gbytes_per_s", v.bytes_per_s / 1e9));
            json_object_set_new(run, "queue", json_pack("{s:i,s:i}", "fill", v.running ? (int)v.m->queue_fill_max : 0, "capacity",
                                                        (int)v.m->queue_capacity));
        }
        json_object_set_new(out, "run", run);
    } else
        json_object_set_new(out, "run", json_null());
    drop_view(&v);
    return (mg_reply){200, out};
}

/* ---- Prometheus text ---- */

typedef struct text {
    char *p;
    size_t n, cap;
    int bad;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = t->bad ? 0 : vsnprintf(t->p + t->n, t->cap - t->n, fmt, ap);
        va_end(ap);
        if (t->bad || k < 0)
            return;
        if ((size_t)k < t->cap - t->n) {
            t->n += (size_t)k;
            return;
        }
        size_t cap = t->cap * 2 + (size_t)k;
        char *q = realloc(t->p, cap);
        if (!q) {
            t->bad = 1;
            return;
        }
        t->p = q;
        t->cap = cap;
    }
}

static void head(text *t, const char *name, const char *type, const char *help)
{
    put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newlines escaped (the format's rules). */
static void label(char *out, size_t cap, const char *v)
{
    size_t o = 0;
    for (; *v && o + 3 < cap; v++) {
        if (*v == '\\' || *v == '"' || *v == '\n') {
            out[o++] = '\\';
            out[o++] = *v == '\n' ? 'n' : *v;
        } else
            out[o++] = *v;
    }
    out[o] = 0;
}

char *mg_service_metrics(mg_service *s)
{
    view v;
    if (take_view(s, &v))
        return NULL;
    text t = {malloc(16384), 0, 16384, 0};
    if (!t.p) {
        drop_view(&v);
        return NULL;
    }
    const mg_run_summary *m = v.m;
    head(&t, "morgul_state", "gauge", "1 for the service's current state");
    for (int i = 0; i < 5; i++)
        put(&t, "morgul_state{state=\"%s\"} %d\n", state_names[i], v.state == i);
    head(&t, "morgul_runs", "gauge", "runs in the run log");
    put(&t, "morgul_runs %zu\n", v.nruns);
    head(&t, "morgul_packets_unarmed_total", "counter", "datagrams that arrived with no run on, thrown away");
    put(&t, "morgul_packets_unarmed_total %llu\n", (unsigned long long)v.unarmed);
    uint64_t free_b, total_b;
    mg_service_disk(s, &free_b, &total_b);
    head(&t, "morgul_disk_free_bytes", "gauge", "free space for the data directory");
    put(&t, "morgul_disk_free_bytes %llu\n", (unsigned long long)free_b);
    head(&t, "morgul_disk_size_bytes", "gauge", "size of the data directory's file system");
    put(&t, "morgul_disk_size_bytes %llu\n", (unsigned long long)total_b);
    if (s->stream) {
        mg_stream_counts sc;
        mg_stream_get_counts(s->stream, &sc);
        head(&t, "morgul_stream_consumers", "gauge", "ZeroMQ consumers connected to the image stream");
        put(&t, "morgul_stream_consumers %d\n", sc.consumers);
        head(&t, "morgul_stream_messages_total", "counter", "stream messages sent (start, image, end)");
        put(&t, "morgul_stream_messages_total %llu\n", (unsigned long long)sc.sent);
        head(&t, "morgul_stream_not_streamed_total", "counter", "messages not sent: no consumer or all queues full");
        put(&t, "morgul_stream_not_streamed_total %llu\n", (unsigned long long)sc.not_streamed);
        head(&t, "morgul_stream_bytes_total", "counter", "bytes sent on the stream");
        put(&t, "morgul_stream_bytes_total %llu\n", (unsigned long long)sc.bytes);
    }
    char run[256] = "";
    if (v.current)
        label(run, sizeof run, json_string_value(json_object_get(v.current, "name")) ?: "");
    if (v.have && run[0]) {
        /* the current run's counters (the last run's final ones between runs); they start again at 0 with
         * each run, as Prometheus expects of a counter that resets */
        static const struct {
            const char *name, *help;
            size_t off;
        } link_counters[] = {
            {"packets", "datagrams taken into frames", offsetof(mg_link_stats, packets)},
            {"duplicates", "packets that came twice", offsetof(mg_link_stats, duplicates)},
            {"out_of_order", "packets that came after a later one", offsetof(mg_link_stats, out_of_order)},
            {"late", "packets that came after their frame was closed", offsetof(mg_link_stats, late)},
            {"lagged", "packets of a link too far behind the others", offsetof(mg_link_stats, lagged)},
            {"stray", "JUNGFRAU packets that fit no frame", offsetof(mg_link_stats, stray)},
            {"kernel_drops", "datagrams the kernel dropped at the socket", offsetof(mg_link_stats, kernel_drops)},
            {"overruns", "packets lost because every frame buffer was busy", offsetof(mg_link_stats, overrun)},
            {"bytes", "bytes received", offsetof(mg_link_stats, bytes)},
        };
        for (size_t c = 0; c < sizeof link_counters / sizeof *link_counters; c++) {
            char name[96];
            snprintf(name, sizeof name, "morgul_link_%s_total", link_counters[c].name);
            head(&t, name, "counter", link_counters[c].help);
            for (int l = 0; l < m->nlinks; l++) {
                int mod, ifc;
                mg_detector_link(&s->cfg.run.det, l, &mod, &ifc);
                char mname[160];
                label(mname, sizeof mname, s->cfg.run.det.modules[mod].name);
                uint64_t x;
                memcpy(&x, (const char *)&m->link[l] + link_counters[c].off, sizeof x);
                put(&t, "%s{run=\"%s\",link=\"%d\",module=\"%s\",interface=\"%d\"} %llu\n", name, run, l, mname, ifc,
                    (unsigned long long)x);
            }
        }
        uint64_t refused = m->unexpected_port;
        for (int k = 1; k < MG_PACKET_VERDICT_COUNT; k++)
            refused += m->total.rejected[k];
        head(&t, "morgul_run_frames_total", "counter", "the run's images by kind, and those written");
        put(&t, "morgul_run_frames_total{run=\"%s\",kind=\"complete\"} %llu\n", run,
            (unsigned long long)m->frames.frames_complete);
        put(&t, "morgul_run_frames_total{run=\"%s\",kind=\"partial\"} %llu\n", run,
            (unsigned long long)m->frames.frames_partial);
        put(&t, "morgul_run_frames_total{run=\"%s\",kind=\"missing\"} %llu\n", run,
            (unsigned long long)m->frames.frames_missing);
        put(&t, "morgul_run_frames_total{run=\"%s\",kind=\"written\"} %llu\n", run,
            (unsigned long long)m->frames_written);
        head(&t, "morgul_run_packets_lost_total", "counter", "packets expected in the run's images that never came");
        put(&t, "morgul_run_packets_lost_total{run=\"%s\"} %llu\n", run, (unsigned long long)m->packets_lost);
        head(&t, "morgul_run_packets_refused_total", "counter", "datagrams refused (wrong size, header, port)");
        put(&t, "morgul_run_packets_refused_total{run=\"%s\"} %llu\n", run, (unsigned long long)refused);
        head(&t, "morgul_run_bytes_written_total", "counter", "compressed bytes written to the run's files");
        put(&t, "morgul_run_bytes_written_total{run=\"%s\"} %llu\n", run, (unsigned long long)m->bytes_compressed);
        head(&t, "morgul_run_acquisitions", "gauge", "acquisitions (counter restarts) in the run");
        put(&t, "morgul_run_acquisitions{run=\"%s\"} %d\n", run, m->acquisitions);
        head(&t, "morgul_queue_fill", "gauge", "frames waiting for the compressing workers");
        put(&t, "morgul_queue_fill{run=\"%s\"} %u\n", run, v.running ? m->queue_fill_max : 0);
        head(&t, "morgul_queue_capacity", "gauge", "frames the workers' queues hold");
        put(&t, "morgul_queue_capacity{run=\"%s\"} %u\n", run, m->queue_capacity);
        head(&t, "morgul_run_frames_per_second", "gauge", "images assembled per second over the last second");
        put(&t, "morgul_run_frames_per_second{run=\"%s\"} %.3f\n", run, v.frames_per_s);
        head(&t, "morgul_run_bytes_per_second", "gauge", "bytes received per second over the last second");
        put(&t, "morgul_run_bytes_per_second{run=\"%s\"} %.0f\n", run, v.bytes_per_s);
    }
    drop_view(&v);
    if (t.bad) {
        free(t.p);
        return NULL;
    }
    return t.p;
}
