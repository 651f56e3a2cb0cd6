/* cmd_receive.c - `morgul receive`, `morgul replay` and `morgul plan`:
 * command-line front ends of morgul/run.h. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "morgul/calstore.h"
#include "morgul/capture.h"
#include "morgul/cli.h"
#include "morgul/convert.h"
#include "morgul/darkrun.h"
#include "morgul/jungfrau.h"
#include "morgul/pedestal.h"
#include "morgul/run.h"
#include "morgul/sizing.h"
#include "morgul/topology.h"

static const char *const run_help =
    "output:\n"
    "  -o, --output PREFIX     write PREFIX_master.h5 and PREFIX_data_NNNNNN.h5 (missing directories are\n"
    "                          made); a further acquisition (counter reset) goes to PREFIX_acq002_...\n"
    "      --no-write          receive and assemble only: no compression, no files (like the vendor\n"
    "                          receiver's fwrite 0, for comparisons)\n"
    "      --overwrite         replace existing files of PREFIX (never done otherwise; only the names this\n"
    "                          run writes)\n"
    "      --frames-per-file N data files roll over every N frames (default 1000)\n"
    "      --workers N         compression threads (default: the cores left after one per receiving\n"
    "                          thread; every core for replay)\n"
    "      --scalar            use the scalar bitshuffle kernel instead of AVX2\n"
    "      --lz4-acceleration N  LZ4 speed/size trade-off (default 8, where noise bit planes also go in\n"
    "                          unsearched; 1 = LZ4's own default: the reference plugin's chunks, byte for byte)\n"
    "assembly:\n"
    "  -n, --frames N          stop after N images (counted from the first frame with evidence, over all\n"
    "                          acquisitions)\n"
    "      --rate HZ           the detector's highest frame rate (default: the description's frame_rate,\n"
    "                          else 2000); sizes the frame buffers and bounds how far numbers may jump\n"
    "      --frame-timeout MS  a frame waits this long for a silent or lagging link (default 100)\n"
    "      --window N          frames over which a link's packets may arrive reordered (default 16)\n"
    "      --buffer-frames N   frame buffers in all (default rate x frame timeout + 64; printed at start)\n"
    "      --readnrows N       partial readout: rows read per module around its centre (8..512; default:\n"
    "                          the description's, else all); only their packets are expected\n"
    "      --align auto|number auto: a module whose frame numbers differ from the others' is paired with\n"
    "                          their frames by bunch id, timestamp or arrival time, and reported (default);\n"
    "                          number: modules must send the same frame numbers (others are stray)\n"
    "      --no-position-check accept packets whose header row/column differ from the configuration\n"
    "ending and reporting:\n"
    "      --idle-timeout S    end the run S seconds after the last packet, or after listening began if\n"
    "                          none came (default: never)\n"
    "      --max-loss F        a fraction of lost packets that still counts as a complete run (default 0)\n"
    "      --ready-file PATH   written once every port listens (a line \"ready\", then the ports)\n"
    "      --progress          print a line of counters every second\n"
    "  -q, --quiet             no plan or summary, errors only\n"
    "exit status: 0 complete, 1 failed, 2 bad usage, 3 data lost beyond --max-loss or ended before -n,\n"
    "  4 nothing lost but datagrams refused or stray (see docs/user-guide.md)\n"
    "correction while receiving (NXmx output instead of raw frames):\n"
    "  -c, --calibration FILE  the detector's calibration file (morgul gainmap, calib import)\n"
    "      --calibration-store DIR   or pick it from a store (morgul calib add): the newest taken before the\n"
    "                          run with its exposure (--exposure S; replay: the capture's), warning when older\n"
    "                          than --max-age S (default 3600)\n"
    "      --energy KEV | --wavelength A   photon energy\n"
    "      --type int16|int32|float32  output values (default int16)\n"
    "      --keV               energy deposited in keV instead of photons\n"
    "      --raw-layout | --mask-big | --no-flip | --gap-rows N | --gap-cols N   image layout (see morgul correct)\n"
    "      --distance MM  --beam-center X,Y   for the NXmx master (default 100 mm, image centre)\n"
    "      --omega START,INCREMENT   a rotation series (degrees; default stills)\n"
    "      --sample NAME  --source NAME   NXmx sample name (default: the output's name) and X-ray source\n"
    "      --runtime-pedestal N|auto[:MAX]  the G0 pedestal from the run's first N frames, or from the frames\n"
    "                          before signal shows (auto: searched in the first MAX, default 200); those\n"
    "                          frames are held, then written like all others; recorded in the output\n"
    "threads:\n"
    "      --cpus LIST         cores for the receivers, then workers, then writer (e.g. 2,3,8-11)\n"
    "      --no-pin            do not pin threads\n"
    "      --topology SRC      plan for an hwloc XML file or synthetic topology (plan only)\n";

enum {
    O_NOWRITE = 1000, O_OVERWRITE, O_FPF, O_WORKERS, O_SCALAR, O_WINDOW, O_BUFFERS, O_ALIGN, O_NOPOS, O_IDLE,
    O_PROGRESS, O_CPUS, O_NOPIN, O_TOPO, O_RCVBUF, O_BATCH, O_REALTIME, O_SPEED, O_SEND, O_HELP, O_ACCEL, O_LOOPS,
    O_PEDESTAL, O_RATE, O_FTIMEOUT, O_READN, O_MAXLOSS, O_READYF, O_CORRECTED, O_PROFILE,
    O_CORR, /* + mg_corropt index */
    O_DET = O_CORR + MG_CORROPT_COUNT, /* detector options: O_DET + index */
    O_DARK = O_DET + 16                /* dark-run options: O_DARK + index */
};


/* the correction options (mg_corropt) are added after these at run time */
static struct option opts[56 + MG_CORROPT_COUNT + MG_DARKOPT_COUNT] = {
    {"output", required_argument, 0, 'o'},  {"no-write", no_argument, 0, O_NOWRITE},
    {"overwrite", no_argument, 0, O_OVERWRITE}, {"frames-per-file", required_argument, 0, O_FPF},
    {"workers", required_argument, 0, O_WORKERS}, {"scalar", no_argument, 0, O_SCALAR},
    {"frames", required_argument, 0, 'n'},  {"window", required_argument, 0, O_WINDOW},
    {"buffer-frames", required_argument, 0, O_BUFFERS}, {"align", required_argument, 0, O_ALIGN},
    {"no-position-check", no_argument, 0, O_NOPOS}, {"idle-timeout", required_argument, 0, O_IDLE},
    {"progress", no_argument, 0, O_PROGRESS}, {"quiet", no_argument, 0, 'q'},
    {"cpus", required_argument, 0, O_CPUS}, {"no-pin", no_argument, 0, O_NOPIN},
    {"topology", required_argument, 0, O_TOPO}, {"rcvbuf", required_argument, 0, O_RCVBUF},
    {"batch", required_argument, 0, O_BATCH}, {"realtime", no_argument, 0, O_REALTIME},
    {"speed", required_argument, 0, O_SPEED}, {"send", required_argument, 0, O_SEND},
    {"help", no_argument, 0, 'h'}, {"lz4-acceleration", required_argument, 0, O_ACCEL},
    {"loops", required_argument, 0, O_LOOPS}, {"pedestal", required_argument, 0, O_PEDESTAL},
    {"rate", required_argument, 0, O_RATE}, {"frame-timeout", required_argument, 0, O_FTIMEOUT},
    {"readnrows", required_argument, 0, O_READN}, {"max-loss", required_argument, 0, O_MAXLOSS},
    {"ready-file", required_argument, 0, O_READYF}, {"correct", no_argument, 0, O_CORRECTED},
    {"profile", required_argument, 0, O_PROFILE},
    MG_DETOPT_LONG_OPTIONS(O_DET),
};

typedef enum { CMD_RECEIVE, CMD_REPLAY, CMD_PLAN } which;

static void usage(which w, FILE *out)
{
    if (w == CMD_RECEIVE)
        fprintf(out, "usage: morgul receive [options]\n\n"
                     "Receives a JUNGFRAU detector's UDP packets, one pinned thread per module interface,\n"
                     "assembles frames and writes them raw to bitshuffle/LZ4 HDF5.\n\n");
    else if (w == CMD_REPLAY)
        fprintf(out, "usage: morgul replay [options] FILE.pcap\n\n"
                     "Feeds a capture through the same assembly and writing as `morgul receive`, as fast as\n"
                     "possible (or --realtime), or retransmits it with --send HOST[:PORT].  Without detector\n"
                     "options the detector is worked out from the capture.\n\n"
                     "replay:\n"
                     "      --realtime          pace by the capture's time stamps\n"
                     "      --speed X           with --realtime, X times faster\n"
                     "      --send HOST[:PORT]  send the datagrams over UDP instead (PORT: new lowest port)\n"
                     "      --loops N           replay the capture N times, frame numbers continuing (benchmarks)\n");
    else
        fprintf(out, "usage: morgul plan [options]\n\n"
                     "Prints the detector description and the thread and memory plan `morgul receive` would use,\n"
                     "for this machine or for --topology (an hwloc XML export or a synthetic description such as\n"
                     "\"pack:2 numa:1 core:8 pu:1\"), and what the detector at --rate needs: cores per stage,\n"
                     "memory per NUMA node, memory bandwidth, network per link, whether the machine keeps up, and\n"
                     "how many servers would if it does not.\n\n"
                     "sizing:\n"
                     "      --correct           size for conversion while receiving (--type sets the output)\n"
                     "      --profile FILE      stage costs from morgul bench profile (default: the saved one,\n"
                     "                          else figures built in)\n\n");
    fputs(mg_detopt_help, out);
    fputs(run_help, out);
    if (w != CMD_PLAN) {
        fprintf(out, "dark run (no frames written):\n"
                     "      --pedestal FILE     add the frames to pedestal sums and write pedestals, noise and\n"
                     "                          masks into the calibration FILE (see morgul pedestal)\n");
        fputs(mg_darkopt_help, out);
    }
    if (w == CMD_RECEIVE)
        fprintf(out, "live receiving:\n"
                     "      --rcvbuf MB         socket receive buffer (default 256)\n"
                     "      --batch N           datagrams per recvmmsg call (default 64)\n");
}

/* --pedestal CAL: the run's frames go into pedestal sums, nothing is
 * written but the calibration file at the end. */
static int dark_run(which w, mg_run_config *cfg, const char *cal, const mg_darkopt *dk)
{
    const char *cmd = w == CMD_RECEIVE ? "receive" : "replay";
    if (cfg->output || cfg->calibration) {
        fprintf(stderr, "morgul %s: --pedestal writes only the calibration file: no -o or --calibration with it\n",
                cmd);
        return 2;
    }
    mg_error err = {0};
    mg_pedestal_acc *acc[MG_MAX_MODULES * MG_CELLS_MAX];
    mg_dark_info info = dk->info;
    const int nacc = cfg->det.nmodules * mg_dark_cells(&info);
    info.taken = (double)time(NULL);
    info.sources = w == CMD_RECEIVE ? "live" : cfg->pcap;
    cfg->stop = mg_cli_stop_flag();
    cfg->log = stderr;
    mg_run_summary sum;
    memset(&sum, 0, sizeof sum);
    int rc = mg_dark_accs_new(acc, nacc, &err);
    if (!rc) {
        rc = mg_dark_run(cfg, w == CMD_RECEIVE, acc, dk->gain, dk->mode_frames, dk->mode_loops, &info, &sum, &err);
        if (!cfg->quiet && sum.started)
            mg_run_print_summary(&sum, rc, 0, stderr);
        if (!rc)
            mg_dark_cells_report(&info, stderr);
    }
    if (!rc && !(rc = mg_dark_save(cal, &cfg->det, acc, &info, cfg->quiet ? NULL : stdout, &err)) && !cfg->quiet)
        printf("wrote %s\n", cal);
    if (rc)
        fprintf(stderr, "morgul %s: %s (%s left as it was)\n", cmd, err.message, cal);
    mg_dark_accs_free(acc, nacc);
    return rc ? 1 : 0;
}

static int run_cmd(which w, int argc, char **argv)
{
    static char command_line[8192]; /* as typed: getopt reorders argv */
    mg_cli_command_line(argc, argv, command_line, sizeof command_line);
    const char *cmd = w == CMD_RECEIVE ? "receive" : w == CMD_REPLAY ? "replay" : "plan";
    mg_run_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.check_position = 1;
    cfg.speed = 1;
    mg_corropt co;
    mg_corropt_init(&co);
    int base = 0;
    while (opts[base].name && opts[base].val != O_CORR) /* the first free entry (or our earlier fill) */
        base++;
    for (int i = 0; i < MG_CORROPT_COUNT; i++)
        opts[base + i] = (struct option){mg_corropt_names[i], mg_corropt_has_arg[i] ? required_argument : no_argument,
                                       0, O_CORR + i};
    for (int i = 0; i < MG_DARKOPT_COUNT; i++)
        opts[base + MG_CORROPT_COUNT + i] = (struct option){mg_darkopt_names[i], required_argument, 0, O_DARK + i};
    mg_darkopt dk;
    mg_darkopt_init(&dk);
    const char *pedestal = NULL;
    mg_detopt dopt;
    mg_detopt_init(&dopt);
    const char *send = NULL, *profile = NULL;
    int no_write = 0, c, bad = 0, size_corrected = 0;
    double max_loss = 0;
    /* signals end the run (also during set-up) from the start */
    cfg.stop = mg_cli_stop_flag();
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:n:qhc:", opts, NULL)) != -1) {
        switch (c) {
        case 'o': cfg.output = optarg; break;
        case 'c': co.calibration = optarg; break;
        case O_NOWRITE: no_write = 1; break;
        case O_OVERWRITE: cfg.overwrite = 1; break;
        case O_FPF: bad |= mg_opt_u64(cmd, "--frames-per-file", optarg, &cfg.frames_per_file); break;
        case O_WORKERS: bad |= mg_opt_int(cmd, "--workers", optarg, 1, 64, &cfg.workers); break;
        case O_SCALAR: cfg.impl = MG_BSHUF_SCALAR; break;
        case 'n': bad |= mg_opt_u64(cmd, "--frames", optarg, &cfg.max_frames); break;
        case O_WINDOW: bad |= mg_opt_int(cmd, "--window", optarg, 1, 4096, &cfg.reorder); break;
        case O_BUFFERS: bad |= mg_opt_int(cmd, "--buffer-frames", optarg, 8, 1 << 24, &cfg.buffer_frames); break;
        case O_RATE: bad |= mg_opt_double(cmd, "--rate", optarg, 1, 100000, &cfg.rate_hz); break;
        case O_FTIMEOUT: bad |= mg_opt_double(cmd, "--frame-timeout", optarg, 1, 600000, &cfg.frame_timeout_ms); break;
        case O_READN:
            if (mg_opt_int(cmd, "--readnrows", optarg, 8, 512, &cfg.readnrows) || cfg.readnrows % 8) {
                if (cfg.readnrows % 8)
                    fprintf(stderr, "morgul %s: --readnrows %s: rows are read in steps of 8\n", cmd, optarg);
                bad = 1;
            }
            break;
        case O_MAXLOSS: bad |= mg_opt_double(cmd, "--max-loss", optarg, 0, 1, &max_loss); break;
        case O_READYF: cfg.ready_file = optarg; break;
        case O_CORRECTED: size_corrected = 1; break;
        case O_PROFILE: profile = optarg; break;
        case O_ALIGN:
            /* first and none: the names of earlier versions */
            if (!strcmp(optarg, "auto") || !strcmp(optarg, "first"))
                cfg.align = MG_ALIGN_AUTO;
            else if (!strcmp(optarg, "number") || !strcmp(optarg, "none"))
                cfg.align = MG_ALIGN_NUMBER;
            else {
                fprintf(stderr, "morgul %s: --align is 'auto' or 'number'\n", cmd);
                bad = 1;
            }
            break;
        case O_NOPOS: cfg.check_position = 0; break;
        case O_IDLE: bad |= mg_opt_double(cmd, "--idle-timeout", optarg, 0, 1e9, &cfg.idle_timeout); break;
        case O_PROGRESS: cfg.progress = 1; break;
        case 'q': cfg.quiet = 1; break;
        case O_CPUS: cfg.cpus = optarg; break;
        case O_NOPIN: cfg.no_pin = 1; break;
        case O_TOPO: cfg.topology = optarg; break;
        case O_RCVBUF: bad |= mg_opt_int(cmd, "--rcvbuf", optarg, 1, 1 << 16, &cfg.rcvbuf_mb); break;
        case O_BATCH: bad |= mg_opt_int(cmd, "--batch", optarg, 1, 1024, &cfg.batch); break;
        case O_REALTIME: cfg.realtime = 1; break;
        case O_SPEED: bad |= mg_opt_double(cmd, "--speed", optarg, 1e-6, 1e6, &cfg.speed); break;
        case O_SEND: send = optarg; break;
        case O_ACCEL: bad |= mg_opt_int(cmd, "--lz4-acceleration", optarg, 1, 65537, &cfg.lz4_acceleration); break;
        case O_LOOPS: bad |= mg_opt_int(cmd, "--loops", optarg, 1, 1000000, &cfg.loops); break;
        case O_PEDESTAL: pedestal = optarg; break;
        case 'h': usage(w, stdout); return 0;
        default:
            if (c >= O_DET && c < O_DET + 7) {
                if (mg_detopt_take(&dopt, cmd, mg_detopt_names[c - O_DET], optarg) < 0)
                    bad = 1;
                break;
            }
            if (c >= O_CORR && c < O_CORR + MG_CORROPT_COUNT) {
                if (mg_corropt_take(&co, cmd, c - O_CORR, optarg))
                    bad = 1;
                break;
            }
            if (c >= O_DARK && c < O_DARK + MG_DARKOPT_COUNT) {
                if (mg_darkopt_take(&dk, cmd, c - O_DARK, optarg))
                    bad = 1;
                break;
            }
            fprintf(stderr, "morgul %s: see 'morgul %s --help'\n", cmd, cmd);
            return 2;
        }
    }
    if (bad || mg_corropt_energy(&co, cmd))
        return 2;
    cfg.calibration = co.calibration;
    cfg.energy_kev = co.energy_kev;
    cfg.kev = co.kev;
    cfg.out_type = co.type;
    cfg.geometry = co.geometry;
    cfg.distance_mm = co.distance_mm;
    cfg.beam_x = co.beam_x;
    cfg.beam_y = co.beam_y;
    cfg.rotation = co.rotation;
    cfg.omega_start = co.omega_start;
    cfg.omega_increment = co.omega_increment;
    cfg.sample_name = co.sample;
    cfg.source_name = co.source;
    cfg.command_line = command_line;
    cfg.runtime = co.runtime;
    cfg.runtime_frames = co.runtime_frames;
    cfg.runtime_max = co.runtime_max;
    if (co.runtime && !co.calibration && !co.store) {
        fprintf(stderr, "morgul %s: --runtime-pedestal updates a calibration: give --calibration or "
                        "--calibration-store\n", cmd);
        return 2;
    }
    if ((cfg.calibration || co.store) && !(cfg.energy_kev > 0)) {
        fprintf(stderr, "morgul %s: --calibration needs the photon energy: --energy KEV or --wavelength A\n", cmd);
        return 2;
    }
    mg_error err = {0};
    if (w == CMD_REPLAY) {
        if (optind != argc - 1) {
            fprintf(stderr, "morgul replay: give one capture file (morgul replay [options] FILE.pcap)\n");
            return 2;
        }
        cfg.pcap = argv[optind];
        if (send) {
            if (mg_replay_send(cfg.pcap, send, cfg.realtime, cfg.speed, stderr, mg_cli_stop_flag(), &err)) {
                fprintf(stderr, "morgul replay: %s\n", err.message);
                return 1;
            }
            return 0;
        }
    } else if (optind != argc) {
        fprintf(stderr, "morgul %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return 2;
    }
    if (w == CMD_REPLAY && !dopt.given) {
        if (mg_detector_from_capture(&cfg.det, cfg.pcap, cfg.quiet ? NULL : stderr, &err)) {
            fprintf(stderr, "morgul replay: %s\n", err.message);
            return 1;
        }
    } else if (mg_detopt_build(&dopt, &cfg.det, &err)) {
        fprintf(stderr, "morgul %s: %s\n", cmd, err.message);
        return 2;
    }
    if (w == CMD_PLAN) {
        mg_topology *t = mg_topology_open(cfg.topology, &err);
        if (!t) {
            fprintf(stderr, "morgul plan: %s\n", err.message);
            return 1;
        }
        int nl = mg_detector_links(&cfg.det);
        char ifn[MG_MAX_LINKS][32];
        const char *ifp[MG_MAX_LINKS];
        for (int l = 0; l < nl; l++) {
            int m, i;
            mg_detector_link(&cfg.det, l, &m, &i);
            /* a bind address may also name the interface directly (planning for another machine) */
            mg_interface_of_address(cfg.det.modules[m].bind, ifn[l], sizeof ifn[l]);
            if (!ifn[l][0])
                snprintf(ifn[l], sizeof ifn[l], "%s", cfg.det.modules[m].bind);
            ifp[l] = ifn[l];
        }
        mg_thread_plan plan;
        int rc = mg_topology_plan(t, nl, ifp, cfg.workers > 0 ? cfg.workers : mg_topology_default_workers(t, nl), cfg.cpus, &plan, &err);
        if (!rc) {
            mg_detector_print(&cfg.det, stdout);
            for (int l = 0; l < nl; l++)
                printf("  link %d NIC %s\n", l, ifp[l][0] ? ifp[l] : "(unknown)");
            mg_topology_print_plan(&plan, stdout);
            /* what the detector at its rate needs of this machine (or the topology given) */
            mg_cost_profile prof;
            char ppath[4096];
            if (!profile && access(mg_cost_profile_default_path(ppath, sizeof ppath), R_OK) == 0)
                profile = ppath;
            if (profile)
                rc = mg_cost_profile_read(profile, &prof, &err);
            else
                mg_cost_profile_builtin(&prof);
            mg_sizing_input si = {.det = &cfg.det, .rate_hz = cfg.rate_hz > 0 ? cfg.rate_hz : cfg.det.rate_hz > 0
                                                                                 ? cfg.det.rate_hz : 2000,
                                  .corrected = size_corrected || co.calibration, .type = co.type,
                                  .frame_timeout_ms = cfg.frame_timeout_ms, .buffer_frames = cfg.buffer_frames};
            mg_sizing sz;
            if (!rc && !(rc = mg_size(&si, &prof, t, &sz, &err)))
                mg_sizing_print(&sz, &prof, stdout);
            if (rc)
                fprintf(stderr, "morgul plan: %s\n", err.message);
        } else
            fprintf(stderr, "morgul plan: %s\n", err.message);
        mg_topology_close(t);
        return rc ? 1 : 0;
    }
    if (co.store && pedestal) {
        fprintf(stderr, "morgul %s: --pedestal writes the calibration file it names; add it to a store afterwards "
                        "with morgul calib add\n", cmd);
        return 2;
    }
    if (co.store) {
        /* the constants valid when the data were taken: now, or the capture's first packet */
        double t, exposure = dk.info.exposure_s, t0;
        mg_jf_header h0;
        mg_time_parse("now", &t);
        if (w == CMD_REPLAY && !mg_capture_first_packet(cfg.pcap, &t0, &h0)) {
            t = t0;
            if (exposure != exposure && h0.exposure_length)
                exposure = h0.exposure_length * 1e-7;
        }
        char who[1100];
        snprintf(who, sizeof who, "%s:%s", cmd, w == CMD_REPLAY ? cfg.pcap : cfg.output ? cfg.output : "-");
        int r = mg_corropt_pick(&co, cmd, &cfg.det, t, exposure, who);
        if (r)
            return r;
        cfg.calibration = co.calibration;
    }
    if (pedestal)
        return dark_run(w, &cfg, pedestal, &dk);
    if (!cfg.output && !no_write) {
        fprintf(stderr, "morgul %s: say where to write (-o DIR/NAME) or pass --no-write\n", cmd);
        return 2;
    }
    if (no_write) {
        cfg.output = NULL;
        cfg.no_compress = 1;
    }
    if (cfg.topology) {
        fprintf(stderr, "morgul %s: --topology is for 'morgul plan'; a run uses this machine's topology\n", cmd);
        return 2;
    }
    cfg.log = stderr;
    mg_run_summary sum;
    memset(&sum, 0, sizeof sum);
    int rc = w == CMD_RECEIVE ? mg_run_receive(&cfg, &sum, &err) : mg_run_replay(&cfg, &sum, &err);
    int ran = sum.started; /* a run that never started has nothing to sum up: its error alone is said */
    if (!cfg.quiet && ran)
        mg_run_print_summary(&sum, rc, max_loss, stderr);
    if (rc)
        fprintf(stderr, "morgul %s: %s\n", cmd, err.message);
    if (!ran)
        return rc ? MG_EXIT_FAILED : MG_EXIT_OK;
    char why[512];
    return mg_run_outcome(&sum, rc, max_loss, why, sizeof why);
}

int mg_cmd_receive(int argc, char **argv) { return run_cmd(CMD_RECEIVE, argc, argv); }
int mg_cmd_replay(int argc, char **argv) { return run_cmd(CMD_REPLAY, argc, argv); }
int mg_cmd_plan(int argc, char **argv) { return run_cmd(CMD_PLAN, argc, argv); }
