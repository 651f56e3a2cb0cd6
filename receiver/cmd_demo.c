/* cmd_demo.c - `morgul` with no command: a simulated 2-module detector
 * (2 interfaces each) sends over loopback, morgul receives it on four
 * pinned threads and writes HDF5, then says where the files are and how to
 * look at them. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "morgul/cli.h"
#include "morgul/run.h"
#include "morgul/simulate.h"

typedef struct demo_sender {
    _Atomic int ready;
    mg_sim_config cfg;
    mg_sim_stats st;
    mg_error err;
    int rc;
} demo_sender;

static void *send_main(void *arg)
{
    demo_sender *s = arg;
    struct timespec ts = {0, 1000000};
    while (!atomic_load(&s->ready) && !atomic_load(s->cfg.stop)) /* the receiver listens first */
        nanosleep(&ts, NULL);
    s->rc = mg_simulate(&s->cfg, &s->st, &s->err);
    return NULL;
}

int mg_demo(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "morgul-demo";
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: morgul [demo [DIR]]\n\nSimulates a JUNGFRAU 1M (2 modules x 2 interfaces) sending 400 frames at "
               "100 Hz over\nloopback, receives and writes them to DIR (default ./morgul-demo).\n");
        return 0;
    }
    mkdir(dir, 0755);
    char prefix[1024];
    snprintf(prefix, sizeof prefix, "%s/demo", dir);
    mg_run_config cfg;
    memset(&cfg, 0, sizeof cfg);
    mg_error err = {0};
    if (mg_detector_simple(&cfg.det, "demo1M", 2, 2, "127.0.0.1", 50001, "M420,M418", &err)) {
        fprintf(stderr, "morgul demo: %s\n", err.message);
        return 1;
    }
    cfg.check_position = 1;
    cfg.output = prefix;
    cfg.overwrite = 1;
    cfg.max_frames = 400;
    cfg.idle_timeout = 5;
    cfg.progress = 1;
    cfg.log = stderr;
    cfg.stop = mg_cli_stop_flag();
    demo_sender s;
    memset(&s, 0, sizeof s);
    s.cfg.det = &cfg.det;
    s.cfg.content = MG_SIM_PHOTONS;
    s.cfg.frames = 400;
    s.cfg.first_frame = 1;
    s.cfg.rate = 100;
    s.cfg.exposure_length = 100;
    s.cfg.seed = 1;
    s.cfg.stop = cfg.stop;
    cfg.ready = &s.ready;
    printf("morgul demo: a simulated 2-module JUNGFRAU sends 400 frames at 100 Hz to 127.0.0.1:50001-50004;\n"
           "morgul receives them and writes %s_master.h5\n", prefix);
    fflush(stdout);
    pthread_t th;
    pthread_create(&th, NULL, send_main, &s);
    mg_run_summary sum;
    memset(&sum, 0, sizeof sum);
    int rc = mg_run_receive(&cfg, &sum, &err);
    if (rc && !atomic_load(&s.ready)) /* it never listened: the sender must not wait for it */
        atomic_store(cfg.stop, 1);
    pthread_join(th, NULL);
    if (sum.started)
        mg_run_print_summary(&sum, rc, 0, stdout);
    if (s.rc)
        fprintf(stderr, "morgul demo: the simulator failed: %s\n", s.err.message);
    if (rc) {
        fprintf(stderr, "morgul demo: %s\n", err.message);
        return 1;
    }
    printf("\nLook at it: h5ls -r %s_master.h5   (the data reads with the bitshuffle HDF5 plugin, e.g. h5py)\n",
           prefix);
    return s.rc ? 1 : 0;
}
