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

static double cli_setup(const mg_detector *det, const char *out, FILE *devnull)
{
    cli_run *c = calloc(1, sizeof *c);
    c->cfg.det = *det;
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

static int bench_arming(const char *dir, int markdown)
{
    const int nmod = 2, rounds = 15;
    int port = 46000 + (int)(getpid() % 500) * 8;
    FILE *devnull = fopen("/dev/null", "w");
    mg_service_config sc;
    memset(&sc, 0, sizeof sc);
    mg_detector_simple(&sc.run.det, "bench", nmod, 1, "127.0.0.1", port, NULL, NULL);
    sc.run.check_position = 1;
    char data[600], cli_out[700];
    snprintf(data, sizeof data, "%s/service", dir);
    snprintf(cli_out, sizeof cli_out, "%s/cli", dir);
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
    double arm[32], cli[32];
    mg_detector other;
    mg_detector_simple(&other, "bench", nmod, 1, "127.0.0.1", port + 4, NULL, NULL);
    int bad = 0;
    for (int i = 0; i < rounds && !bad; i++) { /* alternating: the service's arming, the CLI's set-up */
        t0 = bench_now_s();
        mg_reply r = mg_service_arm(s, NULL);
        arm[i] = bench_now_s() - t0;
        bad |= r.status != 200;
        json_decref(r.body);
        r = mg_service_disarm(s);
        json_decref(r.body);
        cli[i] = cli_setup(&other, cli_out, devnull);
        bad |= cli[i] < 0;
    }
    mg_service_close(s);
    fclose(devnull);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", data);
    if (system(cmd)) {
    }
    if (bad)
        return 1;
    qsort(arm, rounds, sizeof *arm, cmp_double);
    qsort(cli, rounds, sizeof *cli, cmp_double);
    printf("service arming, %d modules, %d rounds alternating (median, max):\n", nmod, rounds);
    printf("  mg_service_arm (POST /api/arm): sockets, topology, frame buffers kept  %7.1f ms  %7.1f ms\n",
           arm[rounds / 2] * 1e3, arm[rounds - 1] * 1e3);
    printf("  morgul receive's set-up of the same run (baseline)                   %7.1f ms  %7.1f ms\n",
           cli[rounds / 2] * 1e3, cli[rounds - 1] * 1e3);
    printf("  x%.1f faster; the service's own start (binding, buffers, once): %.0f ms\n",
           cli[rounds / 2] / arm[rounds / 2], open_s * 1e3);
    if (markdown)
        printf("| service arming, 2 modules | %.1f ms (median of %d) | morgul receive set-up %.1f ms | x%.1f | "
               "service start %.0f ms once |\n", arm[rounds / 2] * 1e3, rounds, cli[rounds / 2] * 1e3,
               cli[rounds / 2] / arm[rounds / 2], open_s * 1e3);
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
    int rc = bench_arming(dir, markdown);
    rc |= bench_streaming(frames_dir, dir, loops, markdown);
    rmdir(dir);
    return rc;
}
