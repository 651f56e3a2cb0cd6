/* cmd_serve.c - `morgul serve`: the service (morgul/service.h) behind its
 * HTTP API until SIGTERM/SIGINT, which end the current run with valid
 * files first. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "morgul/cli.h"
#include "morgul/convert.h"
#include "service_internal.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: morgul serve --data-dir DIR [detector options] [options]\n\n"
            "A persistent receiver for one detector: binds its ports once and keeps them, and runs\n"
            "`morgul receive`'s runs when armed over HTTP (see /openapi.json, docs/operations.md).\n"
            "Each run writes DIR/NAME_master.h5 ... and DIR/NAME.log; DIR/runs.jsonl logs every run.\n\n");
    fputs(mg_detopt_help, out);
    fprintf(out,
            "service:\n"
            "      --data-dir DIR      where runs are written (made if missing)\n"
            "      --http ADDR:PORT    the control API (default 127.0.0.1:8080)\n"
            "      --token-file FILE   requests must carry 'Authorization: Bearer' and the file's first line;\n"
            "                          required to listen on an address other than loopback\n"
            "      --auto              start a run when data arrives unarmed; it ends after --auto-idle\n"
            "      --auto-idle S       seconds of silence that end an automatic run (default 2)\n"
            "      --ready-file PATH   written once the API listens (a line \"ready\" and the address)\n"
            "      --min-free GB       free space a run must leave (default 1); arming is refused below it\n"
            "      --stream ENDPOINT   every image written, as its compressed chunk, to ZeroMQ consumers in\n"
            "                          DECTRIS Stream V2 CBOR messages (PUSH; e.g. tcp://127.0.0.1:31001)\n"
            "defaults of every run (an arm request may change the per-run ones):\n"
            "  -c, --calibration FILE  calibration for corrected runs\n"
            "      --energy KEV        photon energy for corrected runs\n"
            "      --rate HZ  --frame-timeout MS  --buffer-frames N  --workers N  --frames-per-file N\n"
            "      --rcvbuf MB  --cpus LIST  --no-pin   as for morgul receive\n");
}

enum { O_DATA = 1000, O_HTTP, O_TOKEN, O_AUTO, O_AUTOIDLE, O_READY, O_ENERGY, O_RATE, O_FTIMEOUT, O_BUFFERS,
       O_WORKERS, O_FPF, O_RCVBUF, O_CPUS, O_NOPIN, O_STREAM, O_MINFREE, O_DET };

static int read_token(const char *path, char *tok, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "morgul serve: cannot read the token file %s: %s\n", path, strerror(errno));
        return -1;
    }
    tok[0] = 0;
    if (!fgets(tok, (int)cap, f))
        tok[0] = 0;
    fclose(f);
    tok[strcspn(tok, "\r\n")] = 0;
    if (strlen(tok) < 16) {
        fprintf(stderr, "morgul serve: the token in %s is shorter than 16 characters; make one with e.g. "
                        "'head -c 24 /dev/urandom | base64 > %s'\n", path, path);
        return -1;
    }
    return 0;
}

static int write_ready(const char *path, const char *http)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "ready pid %d\nhttp %s\n", (int)getpid(), http);
    if (fclose(f) || rename(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int mg_cmd_serve(int argc, char **argv)
{
    static char command_line[8192];
    mg_cli_command_line(argc, argv, command_line, sizeof command_line);
    static const struct option opts[] = {
        {"data-dir", required_argument, 0, O_DATA}, {"http", required_argument, 0, O_HTTP},
        {"token-file", required_argument, 0, O_TOKEN}, {"auto", no_argument, 0, O_AUTO},
        {"auto-idle", required_argument, 0, O_AUTOIDLE}, {"ready-file", required_argument, 0, O_READY},
        {"calibration", required_argument, 0, 'c'}, {"energy", required_argument, 0, O_ENERGY},
        {"rate", required_argument, 0, O_RATE}, {"frame-timeout", required_argument, 0, O_FTIMEOUT},
        {"buffer-frames", required_argument, 0, O_BUFFERS}, {"workers", required_argument, 0, O_WORKERS},
        {"frames-per-file", required_argument, 0, O_FPF}, {"rcvbuf", required_argument, 0, O_RCVBUF},
        {"cpus", required_argument, 0, O_CPUS}, {"no-pin", no_argument, 0, O_NOPIN},
        {"stream", required_argument, 0, O_STREAM}, {"min-free", required_argument, 0, O_MINFREE},
        {"help", no_argument, 0, 'h'},
        {"config", required_argument, 0, O_DET + 0}, {"modules", required_argument, 0, O_DET + 1},
        {"interfaces", required_argument, 0, O_DET + 2}, {"host", required_argument, 0, O_DET + 3},
        {"port", required_argument, 0, O_DET + 4}, {"module-names", required_argument, 0, O_DET + 5},
        {"detector-name", required_argument, 0, O_DET + 6}, {0, 0, 0, 0}};
    const char *cmd = "serve";
    mg_service_config sc;
    memset(&sc, 0, sizeof sc);
    sc.run.check_position = 1;
    sc.run.speed = 1;
    sc.run.out_type = MG_OUT_INT16;
    mg_geometry_defaults(&sc.run.geometry);
    sc.run.beam_x = sc.run.beam_y = 0.0 / 0.0;
    const char *http = "127.0.0.1:8080", *token_file = NULL, *ready_file = NULL;
    mg_detopt dopt;
    mg_detopt_init(&dopt);
    int c, bad = 0;
    _Atomic int *stop = mg_cli_stop_flag();
    optind = 1;
    while ((c = getopt_long(argc, argv, "hc:", opts, NULL)) != -1) {
        switch (c) {
        case O_DATA: sc.data_dir = optarg; break;
        case O_HTTP: http = optarg; break;
        case O_TOKEN: token_file = optarg; break;
        case O_AUTO: sc.auto_arm = 1; break;
        case O_AUTOIDLE: bad |= mg_opt_double(cmd, "--auto-idle", optarg, 0.01, 1e6, &sc.auto_idle); break;
        case O_READY: ready_file = optarg; break;
        case 'c': sc.run.calibration = optarg; break;
        case O_ENERGY: bad |= mg_opt_double(cmd, "--energy", optarg, 0.1, 1000, &sc.run.energy_kev); break;
        case O_RATE: bad |= mg_opt_double(cmd, "--rate", optarg, 1, 100000, &sc.run.rate_hz); break;
        case O_FTIMEOUT:
            bad |= mg_opt_double(cmd, "--frame-timeout", optarg, 1, 600000, &sc.run.frame_timeout_ms);
            break;
        case O_BUFFERS: bad |= mg_opt_int(cmd, "--buffer-frames", optarg, 8, 1 << 24, &sc.run.buffer_frames); break;
        case O_WORKERS: bad |= mg_opt_int(cmd, "--workers", optarg, 1, 64, &sc.run.workers); break;
        case O_FPF: bad |= mg_opt_u64(cmd, "--frames-per-file", optarg, &sc.run.frames_per_file); break;
        case O_RCVBUF: bad |= mg_opt_int(cmd, "--rcvbuf", optarg, 1, 1 << 16, &sc.run.rcvbuf_mb); break;
        case O_CPUS: sc.run.cpus = optarg; break;
        case O_NOPIN: sc.run.no_pin = 1; break;
        case O_STREAM: sc.stream = optarg; break;
        case O_MINFREE:
            if (!mg_opt_double(cmd, "--min-free", optarg, 0.000001, 1e6, &sc.min_free))
                sc.min_free *= 1e9;
            else
                bad = 1;
            break;
        case 'h': usage(stdout); return 0;
        default:
            if (c >= O_DET && c < O_DET + 7) {
                if (mg_detopt_take(&dopt, cmd, mg_detopt_names[c - O_DET], optarg) < 0)
                    bad = 1;
                break;
            }
            fprintf(stderr, "morgul serve: see 'morgul serve --help'\n");
            return 2;
        }
    }
    if (bad)
        return 2;
    if (optind != argc) {
        fprintf(stderr, "morgul serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!sc.data_dir) {
        fprintf(stderr, "morgul serve: say where runs are written: --data-dir DIR\n");
        return 2;
    }
    char token[512];
    if (token_file && read_token(token_file, token, sizeof token))
        return 2;
    mg_error err = {0};
    if (mg_detopt_build(&dopt, &sc.run.det, &err)) {
        fprintf(stderr, "morgul serve: %s\n", err.message);
        return 2;
    }
    sc.log = stderr;
    mg_service *s = mg_service_open(&sc, &err);
    if (!s) {
        fprintf(stderr, "morgul serve: %s\n", err.message);
        return 1;
    }
    mg_service_set_command_line(s, command_line);
    mg_http *h = mg_http_start(s, http, token_file ? token : NULL, &err);
    if (!h) {
        fprintf(stderr, "morgul serve: %s\n", err.message);
        mg_service_close(s);
        return 1;
    }
    fprintf(stderr, "serve: detector %s (%d module(s)) on %d port(s); runs in %s; API on http://%s/%s\n",
            sc.run.det.name, sc.run.det.nmodules, mg_detector_links(&sc.run.det), sc.data_dir, http,
            sc.auto_arm ? " (runs start when data arrives)" : "");
    if (ready_file && write_ready(ready_file, http))
        fprintf(stderr, "serve: warning: cannot write the ready file %s: %s\n", ready_file, strerror(errno));
    /* systemd (Type=notify): ready now; with WatchdogSec, a ping at half the interval as long as the
     * service's watcher thread goes round (a service stuck on its lock is restarted, not pinged for) */
    sd_notifyf(0, "READY=1\nSTATUS=listening on %s, runs in %s", http, sc.data_dir);
    uint64_t wd_usec = 0;
    int watchdog = sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0;
    uint64_t beat = mg_service_heartbeat(s), waited_ms = 0;
    while (!atomic_load(stop)) {
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
        waited_ms += 50;
        if (watchdog && waited_ms * 1000 >= wd_usec / 2) {
            uint64_t b = mg_service_heartbeat(s);
            if (b != beat)
                sd_notify(0, "WATCHDOG=1");
            else
                fprintf(stderr, "serve: the service's watcher has not gone round for %.1f s: no watchdog ping\n",
                        (double)waited_ms / 1000);
            beat = b;
            waited_ms = 0;
        }
    }
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: the current run ends with valid files");
    fprintf(stderr, "serve: stopping: the current run, if any, ends with valid files\n");
    mg_http_stop(h);
    mg_service_close(s);
    return 0;
}
