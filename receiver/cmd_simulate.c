/* cmd_simulate.c - `morgul simulate`: command-line front end of
 * morgul/simulate.h. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "morgul/calstore.h"
#include "morgul/cli.h"
#include "morgul/simulate.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: morgul simulate [options]\n\n"
            "Sends real JUNGFRAU packets over UDP (one port per module interface) or writes them to a pcap file.\n\n");
    fputs(mg_detopt_help, out);
    fprintf(out,
            "frames:\n"
            "  -n, --frames N          frames to send (default 100)\n"
            "      --rate HZ           frames per second; 0 = as fast as possible (default 0)\n"
            "      --first-frame N     frame number of the first frame (default 1)\n"
            "      --exposure-us X     exposure length in the header (default 10 us)\n"
            "      --bunch-id N        bunch id of the first frame (+1 per frame)\n"
            "      --timestamp N       timestamp of the first frame (10 MHz ticks; + frame period per frame)\n"
            "      --daq-info X        bits or'ed into every packet's DAQ info (decimal, or 0x... hexadecimal)\n"
            "      --readnrows N       partial readout: only the packets of the N rows around each module's\n"
            "                          centre are sent (8..512, steps of 8)\n"
            "      --storage-cells N   burst mode: frame k is stored in cell k mod N (DAQ info bits 8-11); in\n"
            "                          dark and photons content cell c > 0 adds 25c + ((p*c) mod 7) - 3 ADU to\n"
            "                          every gain's pedestal of pixel p (row * 1024 + column)\n"
            "content:\n"
            "      --content KIND      pattern (default), dark, photons or frames\n"
            "      --gain G            dark: g0, g1 or g2 (forced switching; sets DAQ info bits 12/13)\n"
            "      --pedestal-mode F,L dark: firmware pedestal mode, every F-th frame forced, L loops per gain\n"
            "      --noise ADU         dark/photons: G0 noise (default 12; G1 4, G2 3)\n"
            "      --pedestal FILES    G0.bin[,G1.bin,G2.bin]: float32 512x1024 pedestals (default synthetic)\n"
            "      --noise-file FILE   float32 512x1024 G0 noise per pixel\n"
            "      --bad-pixels noisy=N,wrong-gain=N,stuck=N,dead=N\n"
            "                          dark: plant bad pixels in every module (the same ones in every run)\n"
            "      --bad-pixel-log F   CSV of the planted pixels (module,row,column,kind)\n"
            "      --gainmap FILE      photons: PSI gain map .bin (default typical 41 / -1.44 / -0.115 ADU/keV)\n"
            "      --energy KEV        photons: photon energy (default 12.4)\n"
            "      --spots N           photons: Bragg spots per frame (default 200)\n"
            "      --shutter-opens K   photons: frames before K (0-based) are dark, as before a shutter opens\n"
            "      --truth FILE        photons: the true whole photons, int32 (frames, modules, 512, 1024)\n"
            "      --frames-file FILES frames: raw uint16 512x1024 frames, comma-separated files\n"
            "faults (probabilities per packet, repeatable with --seed):\n"
            "      --drop R  --duplicate R  --reorder R  --delay R\n"
            "      --delay-frames N    a delayed packet arrives after N later frames began (default 2)\n"
            "      --seed N            (default 1)\n"
            "      --fault-log FILE    CSV of every injected fault\n"
            "output:\n"
            "      --pcap FILE         write a capture (Ethernet/IPv4/UDP) instead of sending\n"
            "      --capture-time T    the capture's time of the first packet (Unix s or ISO 8601 UTC;\n"
            "                          default 2023-11-14T22:13:20Z)\n"
            "      --overwrite         replace an existing capture\n"
            "      --dest ADDR         send to ADDR instead of each module's address\n");
}

enum { O_RATE = 1000, O_FIRST, O_EXP, O_BUNCH, O_TS, O_DAQ, O_CONTENT, O_GAIN, O_PMODE, O_NOISE, O_PED, O_NOISEF, O_BAD, O_BADLOG,
       O_GMAP, O_ENERGY, O_SPOTS, O_FFILE, O_DROP, O_DUP, O_REORDER, O_DELAY, O_DELAYF, O_SEED, O_FLOG, O_PCAP,
       O_OVERWRITE, O_DEST, O_TRUTH, O_CTIME, O_SHUTTER, O_EXPWRONG, O_CELLS, O_READN, O_DET };


int mg_cmd_simulate(int argc, char **argv)
{
    static struct option opts[] = {
        {"frames", required_argument, 0, 'n'}, {"rate", required_argument, 0, O_RATE},
        {"first-frame", required_argument, 0, O_FIRST}, {"exposure-us", required_argument, 0, O_EXP},
        {"bunch-id", required_argument, 0, O_BUNCH}, {"timestamp", required_argument, 0, O_TS},
        {"daq-info", required_argument, 0, O_DAQ}, {"content", required_argument, 0, O_CONTENT},
        {"gain", required_argument, 0, O_GAIN}, {"pedestal-mode", required_argument, 0, O_PMODE},
        {"noise", required_argument, 0, O_NOISE}, {"pedestal", required_argument, 0, O_PED},
        {"noise-file", required_argument, 0, O_NOISEF}, {"bad-pixels", required_argument, 0, O_BAD},
        {"bad-pixel-log", required_argument, 0, O_BADLOG}, {"gainmap", required_argument, 0, O_GMAP},
        {"energy", required_argument, 0, O_ENERGY}, {"spots", required_argument, 0, O_SPOTS},
        {"frames-file", required_argument, 0, O_FFILE}, {"drop", required_argument, 0, O_DROP},
        {"duplicate", required_argument, 0, O_DUP}, {"reorder", required_argument, 0, O_REORDER},
        {"delay", required_argument, 0, O_DELAY}, {"delay-frames", required_argument, 0, O_DELAYF},
        {"seed", required_argument, 0, O_SEED}, {"fault-log", required_argument, 0, O_FLOG},
        {"pcap", required_argument, 0, O_PCAP}, {"capture-time", required_argument, 0, O_CTIME},
        {"shutter-opens", required_argument, 0, O_SHUTTER}, {"storage-cells", required_argument, 0, O_CELLS},
        {"readnrows", required_argument, 0, O_READN},
        /* named so that it is not taken as an abbreviation of --exposure-us */
        {"exposure", required_argument, 0, O_EXPWRONG}, {"overwrite", no_argument, 0, O_OVERWRITE},
        {"dest", required_argument, 0, O_DEST}, {"help", no_argument, 0, 'h'},
        {"truth", required_argument, 0, O_TRUTH},
        MG_DETOPT_LONG_OPTIONS(O_DET), {0, 0, 0, 0},
    };
    const char *cmd = "simulate";
    mg_sim_config cfg;
    memset(&cfg, 0, sizeof cfg);
    mg_detector det;
    cfg.det = &det;
    cfg.frames = 100;
    cfg.first_frame = 1;
    cfg.exposure_length = 100;
    cfg.seed = 1;
    mg_detopt dopt;
    mg_detopt_init(&dopt);
    double exp_us = 10;
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:h", opts, NULL)) != -1) {
        uint64_t u;
        switch (c) {
        case 'n': bad |= mg_opt_u64(cmd, "--frames", optarg, &cfg.frames); break;
        case O_RATE: bad |= mg_opt_double(cmd, "--rate", optarg, 0, 1e6, &cfg.rate); break;
        case O_FIRST: bad |= mg_opt_u64(cmd, "--first-frame", optarg, &cfg.first_frame); break;
        case O_EXP:
            bad |= mg_opt_double(cmd, "--exposure-us", optarg, 0, 429496729, &exp_us);
            break;
        case O_BUNCH: bad |= mg_opt_u64(cmd, "--bunch-id", optarg, &cfg.bunch_id); break;
        case O_TS: bad |= mg_opt_u64(cmd, "--timestamp", optarg, &cfg.timestamp); break;
        case O_DAQ: /* a bit field: decimal, or hexadecimal written 0x... */
            if (!strncmp(optarg, "0x", 2) || !strncmp(optarg, "0X", 2)) {
                char *end;
                errno = 0;
                u = strtoull(optarg + 2, &end, 16);
                if (errno || end == optarg + 2 || *end) {
                    fprintf(stderr, "morgul simulate: --daq-info '%s' is not a hexadecimal number\n", optarg);
                    bad = 1;
                }
            } else
                bad |= mg_opt_u64(cmd, "--daq-info", optarg, &u);
            if (u > 0xFFFFFFFFull) {
                fprintf(stderr, "morgul simulate: --daq-info '%s' does not fit 32 bits\n", optarg);
                bad = 1;
            }
            cfg.daq_info = (uint32_t)u;
            break;
        case O_CONTENT:
            if (!strcmp(optarg, "pattern"))
                cfg.content = MG_SIM_PATTERN;
            else if (!strcmp(optarg, "dark"))
                cfg.content = MG_SIM_DARK;
            else if (!strcmp(optarg, "photons"))
                cfg.content = MG_SIM_PHOTONS;
            else if (!strcmp(optarg, "frames"))
                cfg.content = MG_SIM_FRAMES;
            else {
                fprintf(stderr, "morgul simulate: --content is pattern, dark, photons or frames\n");
                bad = 1;
            }
            break;
        case O_GAIN:
            if (!strcmp(optarg, "g0") || !strcmp(optarg, "0"))
                cfg.gain = 0;
            else if (!strcmp(optarg, "g1") || !strcmp(optarg, "1"))
                cfg.gain = 1;
            else if (!strcmp(optarg, "g2") || !strcmp(optarg, "2"))
                cfg.gain = 2;
            else {
                fprintf(stderr, "morgul simulate: --gain is g0, g1 or g2\n");
                bad = 1;
            }
            break;
        case O_PMODE:
            if (sscanf(optarg, "%d,%d", &cfg.pedestal_mode_frames, &cfg.pedestal_mode_loops) != 2 ||
                cfg.pedestal_mode_frames < 1 || cfg.pedestal_mode_loops < 1) {
                fprintf(stderr, "morgul simulate: --pedestal-mode F,L with F frames >= 1 and L loops >= 1\n");
                bad = 1;
            }
            break;
        case O_NOISE: bad |= mg_opt_double(cmd, "--noise", optarg, 0, 10000, &cfg.noise[0]); break;
        case O_PED: cfg.pedestal_files = optarg; break;
        case O_NOISEF: cfg.noise_file = optarg; break;
        case O_BADLOG: cfg.bad_pixel_log = optarg; break;
        case O_BAD: {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            char *save = NULL;
            for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                char *eq = strchr(tok, '=');
                int *dst = NULL;
                if (eq) {
                    *eq = 0;
                    dst = !strcmp(tok, "noisy") ? &cfg.bad_noisy : !strcmp(tok, "wrong-gain") ? &cfg.bad_wrong_gain
                        : !strcmp(tok, "stuck") ? &cfg.bad_stuck : !strcmp(tok, "dead") ? &cfg.bad_dead : NULL;
                }
                if (!dst || mg_opt_int("simulate", "--bad-pixels", eq + 1, 0, 100000, dst)) {
                    fprintf(stderr, "morgul simulate: --bad-pixels takes noisy=N,wrong-gain=N,stuck=N,dead=N\n");
                    return 2;
                }
            }
            break;
        }
        case O_GMAP: cfg.gainmap_file = optarg; break;
        case O_ENERGY: bad |= mg_opt_double(cmd, "--energy", optarg, 0.1, 1000, &cfg.energy_kev); break;
        case O_SPOTS: bad |= mg_opt_int(cmd, "--spots", optarg, 0, 1000000, &cfg.spots); break;
        case O_EXPWRONG:
            fprintf(stderr, "morgul simulate: the exposure is given in microseconds: --exposure-us X\n");
            bad = 1;
            break;
        case O_SHUTTER: bad |= mg_opt_u64(cmd, "--shutter-opens", optarg, &cfg.shutter_frame); break;
        case O_CELLS: bad |= mg_opt_int(cmd, "--storage-cells", optarg, 1, MG_CELLS_MAX, &cfg.storage_cells); break;
        case O_READN:
            if (mg_opt_int(cmd, "--readnrows", optarg, 8, 512, &cfg.readnrows) || cfg.readnrows % 8) {
                if (cfg.readnrows % 8)
                    fprintf(stderr, "morgul simulate: --readnrows %s: rows are read in steps of 8\n", optarg);
                bad = 1;
            }
            break;
        case O_CTIME:
            if (mg_time_parse(optarg, &cfg.capture_time)) {
                fprintf(stderr, "morgul simulate: --capture-time '%s': give Unix seconds or ISO 8601 UTC\n", optarg);
                bad = 1;
            }
            break;
        case O_FFILE: cfg.frame_files = optarg; break;
        case O_DROP: bad |= mg_opt_double(cmd, "--drop", optarg, 0, 1, &cfg.drop); break;
        case O_DUP: bad |= mg_opt_double(cmd, "--duplicate", optarg, 0, 1, &cfg.duplicate); break;
        case O_REORDER: bad |= mg_opt_double(cmd, "--reorder", optarg, 0, 1, &cfg.reorder); break;
        case O_DELAY: bad |= mg_opt_double(cmd, "--delay", optarg, 0, 1, &cfg.delay); break;
        case O_DELAYF: bad |= mg_opt_int(cmd, "--delay-frames", optarg, 1, 1000, &cfg.delay_frames); break;
        case O_SEED: bad |= mg_opt_u64(cmd, "--seed", optarg, &cfg.seed); break;
        case O_FLOG: cfg.fault_log = optarg; break;
        case O_PCAP: cfg.pcap_path = optarg; break;
        case O_OVERWRITE: cfg.overwrite = 1; break;
        case O_DEST: cfg.dest_host = optarg; break;
        case O_TRUTH: cfg.truth_file = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            if (c >= O_DET && c < O_DET + 7) {
                if (mg_detopt_take(&dopt, cmd, mg_detopt_names[c - O_DET], optarg) < 0)
                    bad = 1;
                break;
            }
            fprintf(stderr, "morgul simulate: see 'morgul simulate --help'\n");
            return 2;
        }
    }
    if (bad)
        return 2;
    if (optind != argc) {
        fprintf(stderr, "morgul simulate: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    cfg.exposure_length = (uint32_t)(exp_us * 10 + 0.5);
    mg_error err = {0};
    if (mg_detopt_build(&dopt, &det, &err)) {
        fprintf(stderr, "morgul simulate: %s\n", err.message);
        return 2;
    }
    cfg.stop = mg_cli_stop_flag();
    mg_sim_stats st;
    int rc = mg_simulate(&cfg, &st, &err);
    fprintf(stderr,
            "simulate: %llu frames, %llu packets (%.3f GB) in %.2f s = %.0f frames/s, %.2f GB/s; injected: dropped %llu, "
            "duplicated %llu, reordered %llu, delayed %llu\n",
            (unsigned long long)st.frames, (unsigned long long)st.packets, (double)st.bytes / 1e9, st.seconds,
            st.seconds > 0 ? (double)st.frames / st.seconds : 0, st.seconds > 0 ? (double)st.bytes / st.seconds / 1e9 : 0,
            (unsigned long long)st.dropped, (unsigned long long)st.duplicated, (unsigned long long)st.reordered,
            (unsigned long long)st.delayed);
    if (rc) {
        fprintf(stderr, "morgul simulate: %s\n", err.message);
        return 1;
    }
    return 0;
}
