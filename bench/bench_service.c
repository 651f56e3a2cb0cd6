/* bench_service.c - `morgul bench service`: what the service costs and
 * saves, each against a baseline measured in the same run.
 *
 *   arming: the time from arming to listening, through mg_service_arm (what
 *     POST /api/arm calls: sockets kept, topology and frame buffers kept),
 *     against the set-up of the same run as `morgul receive` makes it
 *     (binding, topology, frame buffers made and touched);
 *   streaming: the replay of a 2-module capture of real frames with every
 *     image also sent to a ZeroMQ consumer on loopback (draining in a
 *     thread of this process), against the same replay without a stream,
 *     alternating, best of three each. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "bench.h"
#include "morgul/geometry.h"
#include "morgul/run.h"
#include "morgul/service.h"
#include "morgul/stream.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* A run of `morgul receive`, set up and ended at once: seconds to listening. */
typedef struct cli_run {
    mg_run_config cfg;
    _Atomic int stop, ready;
    mg_run_summary sum;
    mg_error err;
    int rc;
} cli_run;

static void *cli_main(void *arg)
{
    cli_run *c = arg;
    c->rc = mg_run_receive(&c->cfg, &c->sum, &c->err);
    return NULL;
}

static double cli_setup(const mg_detector *det, const char *out, const char *cal, FILE *devnull)
{
    cli_run *c = calloc(1, sizeof *c);
    c->cfg.det = *det;
    c->cfg.calibration = cal;
    c->cfg.energy_kev = 12.4;
    mg_geometry_defaults(&c->cfg.geometry);
    c->cfg.beam_x = c->cfg.beam_y = NAN;
    c->cfg.check_position = 1;
    c->cfg.output = out;
    c->cfg.overwrite = 1;
    c->cfg.quiet = 1;
    c->cfg.log = devnull;
    c->cfg.stop = &c->stop;
    c->cfg.ready = &c->ready;
    pthread_t th;
    double t0 = bench_now_s(), t = 0;
    if (pthread_create(&th, NULL, cli_main, c)) {
        free(c);
        return -1;
    }
    while (!atomic_load(&c->ready) && bench_now_s() - t0 < 30) {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
    t = bench_now_s() - t0;
    atomic_store(&c->stop, 1);
    pthread_join(th, NULL);
    int bad = c->rc != 0 || !atomic_load(&c->ready);
    if (bad)
        fprintf(stderr, "bench service: the receive run did not start: %s\n", c->err.message);
    free(c);
    bench_remove_prefix(out);
    return bad ? -1 : t;
}

static int bench_arming(const char *frames_dir, const char *dir, int markdown)
{
    const int nmod = 2, rounds = 15;
    int port = 46000 + (int)(getpid() % 500) * 8;
    FILE *devnull = fopen("/dev/null", "w");
    mg_service_config sc;
    memset(&sc, 0, sizeof sc);
    mg_detector_simple(&sc.run.det, "bench", nmod, 1, "127.0.0.1", port, NULL, NULL);
    sc.run.check_position = 1;
    mg_geometry_defaults(&sc.run.geometry);
    sc.run.beam_x = sc.run.beam_y = NAN;
    char data[600], cli_out[700], cal[700];
    snprintf(data, sizeof data, "%s/service", dir);
    snprintf(cli_out, sizeof cli_out, "%s/cli", dir);
    snprintf(cal, sizeof cal, "%s/arming-calibration.h5", dir);
    int have_cal = !bench_make_calibration(frames_dir, cal, &sc.run.det);
    sc.data_dir = data;
    sc.min_free = 1e6;
    sc.log = devnull;
    mg_error err = {0};
    double t0 = bench_now_s();
    mg_service *s = mg_service_open(&sc, &err);
    double open_s = bench_now_s() - t0;
    if (!s) {
        fprintf(stderr, "bench service: %s\n", err.message);
        fclose(devnull);
        return 1;
    }
    mg_detector other;
    mg_detector_simple(&other, "bench", nmod, 1, "127.0.0.1", port + 4, NULL, NULL);
    json_t *corrected = json_pack("{s:s,s:f}", "calibration", cal, "energy_kev", 12.4);
    double arm[2][32], cli[2][32];
    int bad = 0, kinds = have_cal ? 2 : 1;
    for (int k = 0; k < kinds && !bad; k++)
        for (int i = 0; i < rounds && !bad; i++) { /* alternating: the service's arming, the CLI's set-up */
            t0 = bench_now_s();
            mg_reply r = mg_service_arm(s, k ? corrected : NULL);
            arm[k][i] = bench_now_s() - t0;
            if (r.status != 200) {
                fprintf(stderr, "bench service: arming failed: %s\n",
                        json_string_value(json_object_get(r.body, "error")));
                bad = 1;
            }
            json_decref(r.body);
            r = mg_service_disarm(s);
            json_decref(r.body);
            cli[k][i] = cli_setup(&other, cli_out, k ? cal : NULL, devnull);
            bad |= cli[k][i] < 0;
        }
    json_decref(corrected);
    mg_service_close(s);
    fclose(devnull);
    unlink(cal);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data);
    if (system(cmd)) {
    }
    if (bad)
        return 1;
    printf("service arming, %d modules, %d rounds each, alternating with morgul receive's set-up of the same run "
           "(median, max):\n", nmod, rounds);
    for (int k = 0; k < kinds; k++) {
        qsort(arm[k], rounds, sizeof **arm, cmp_double);
        qsort(cli[k], rounds, sizeof **cli, cmp_double);
        const char *what = k ? "corrected (calibration, 12.4 keV)" : "raw";
        printf("  %-34s service %7.1f ms %7.1f ms | receive %7.1f ms %7.1f ms | x%.1f\n", what,
               arm[k][rounds / 2] * 1e3, arm[k][rounds - 1] * 1e3, cli[k][rounds / 2] * 1e3,
               cli[k][rounds - 1] * 1e3, cli[k][rounds / 2] / arm[k][rounds / 2]);
        if (markdown)
            printf("| service arming, 2 modules, %s | %.1f ms (median of %d) | morgul receive set-up %.1f ms | x%.1f | "
                   "|\n", what, arm[k][rounds / 2] * 1e3, rounds, cli[k][rounds / 2] * 1e3,
                   cli[k][rounds / 2] / arm[k][rounds / 2]);
    }
    printf("  the service's own start (binding, buffers, once): %.0f ms%s\n", open_s * 1e3,
           have_cal ? "" : "; no PSI constants in --frames-dir: corrected arming not measured");
    return 0;
}

/* ---- streaming ---- */

typedef struct consumer {
    void *ctx, *sock;
    _Atomic int quit;
    _Atomic uint64_t messages, bytes;
} consumer;

static void *consume(void *arg)
{
    consumer *c = arg;
    zmq_msg_t m;
    zmq_msg_init(&m);
    while (!atomic_load(&c->quit)) {
        int n = zmq_msg_recv(&m, c->sock, 0);
        if (n >= 0) {
            atomic_fetch_add(&c->messages, 1);
            atomic_fetch_add(&c->bytes, (uint64_t)n);
        }
    }
    zmq_msg_close(&m);
    return NULL;
}

typedef struct hook {
    mg_stream *st;
    const mg_detector *det;
} hook;

static void on_images(void *ctx, const mg_run_images *shape)
{
    hook *h = ctx;
    mg_stream_series ser = {.id = 1, .unique_id = "bench", .arm_time = (double)time(NULL), .images = shape,
                            .nmodules = h->det->nmodules, .detector = h->det->name, .beam_x = NAN, .beam_y = NAN};
    mg_stream_start(h->st, &ser);
}

static void on_written(void *ctx, const mg_image_written *w)
{
    mg_stream_image(((hook *)ctx)->st, w);
}

static double replay_streamed(const mg_detector *det, const char *cap, int loops, hook *h, mg_run_summary *sum)
{
    mg_run_config hooks = {.on_images = on_images, .written = on_written, .written_ctx = h};
    double mf = bench_replay_pass(det, cap, NULL, loops, NULL, h ? &hooks : NULL, sum);
    if (h && mf > 0)
        mg_stream_end(h->st);
    return mf;
}

static int bench_streaming(const char *frames_dir, const char *dir, int loops, int markdown)
{
    char cap[600], ep[64];
    snprintf(cap, sizeof cap, "%s/stream.pcap", dir);
    mg_detector det;
    if (bench_make_capture(cap, 2, 1000, frames_dir, &det))
        return 1;
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", 45000 + (int)(getpid() % 500) * 4);
    mg_error err = {0};
    mg_stream *st = mg_stream_open(ep, &err);
    if (!st) {
        fprintf(stderr, "bench service: %s\n", err.message);
        unlink(cap);
        return 1;
    }
    consumer c;
    memset(&c, 0, sizeof c);
    c.ctx = zmq_ctx_new();
    c.sock = zmq_socket(c.ctx, ZMQ_PULL);
    int timeo = 100;
    zmq_setsockopt(c.sock, ZMQ_RCVTIMEO, &timeo, sizeof timeo);
    zmq_connect(c.sock, ep);
    pthread_t th;
    pthread_create(&th, NULL, consume, &c);
    mg_stream_counts sc = {0};
    for (int i = 0; i < 500 && !sc.consumers; i++) { /* until the consumer's connection is up */
        mg_stream_get_counts(st, &sc);
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    hook h = {st, &det};
    double best[2] = {0, 0};
    mg_run_summary sum;
    mg_stream_counts before, after;
    mg_stream_get_counts(st, &before);
    for (int pass = 0; pass < 6; pass++) { /* alternating: without, with */
        int with = pass & 1;
        double mf = replay_streamed(&det, cap, loops, with ? &h : NULL, &sum);
        if (mf <= 0)
            break;
        if (mf > best[with])
            best[with] = mf;
    }
    mg_stream_get_counts(st, &after);
    atomic_store(&c.quit, 1);
    pthread_join(th, NULL);
    zmq_close(c.sock);
    zmq_ctx_term(c.ctx);
    mg_stream_close(st);
    unlink(cap);
    if (!(best[0] > 0 && best[1] > 0))
        return 1;
    uint64_t images = 3 * (sum.frames.images);
    printf("streaming: replay of a 2-module capture of real frames (1000 x %d loops), no files, best of 3, "
           "alternating\n", loops);
    printf("  without a stream                                 %8.0f module-frames/s\n", best[0]);
    printf("  every image also to a ZeroMQ consumer (loopback) %8.0f module-frames/s  (x%.2f)\n", best[1],
           best[1] / best[0]);
    printf("  streamed %llu messages, %.2f GB; not streamed %llu of %llu images (the consumer's queue full)\n",
           (unsigned long long)(after.sent - before.sent), (double)(after.bytes - before.bytes) / 1e9,
           (unsigned long long)(after.not_streamed - before.not_streamed), (unsigned long long)images);
    if (markdown)
        printf("| replay 2 modules, every image streamed to a consumer | %.0f module-frames/s | without stream %.0f "
               "| x%.2f | not streamed %llu of %llu |\n", best[1], best[0], best[1] / best[0],
               (unsigned long long)(after.not_streamed - before.not_streamed), (unsigned long long)images);
    return 0;
}

int bench_service(const char *frames_dir, const char *base, int loops, int warm_gb, int markdown)
{
    char dir[256];
    if (bench_scratch_dir(base, dir, sizeof dir))
        return 1;
    bench_warm_memory(warm_gb);
    int rc = bench_arming(frames_dir, dir, markdown);
    rc |= bench_streaming(frames_dir, dir, loops, markdown);
    rmdir(dir);
    return rc;
}
