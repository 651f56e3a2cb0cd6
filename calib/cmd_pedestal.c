/* cmd_pedestal.c - `morgul pedestal`: pedestals, noise and masks from dark
 * runs recorded as captures, into the detector's calibration file.  The
 * captures go through the same assembly as `morgul replay` (and `morgul
 * receive --pedestal` does the same live), so every input path gives the
 * same constants for the same packets. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "morgul/capture.h"
#include "morgul/cli.h"
#include "morgul/darkrun.h"
#include "morgul/jungfrau.h"
#include "morgul/pedestal.h"
#include "morgul/rawread.h"
#include "morgul/run.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: morgul pedestal -c CALIBRATION.h5 --g0 RUN [--g1 RUN] [--g2 RUN] [options]\n"
                 "       morgul pedestal -c CALIBRATION.h5 --pedestal-mode F,L RUN [options]\n\n"
                 "A RUN is a pcap capture, a raw file written by morgul (RUN_master.h5), or the original\n"
                 "morgul's per-module raw files, comma-separated (A.h5,B.h5; modules named by --config\n"
                 "through their row and column, or by --module-names).\n\n"
                 "Pedestals (mean ADC), noise (RMS), frames used and wrong-gain counts per pixel and gain from\n"
                 "dark runs, and the bad-pixel mask, into the detector's calibration file (created if absent;\n"
                 "gains not given keep what the file has).  Prints a summary per module.  Live: `morgul\n"
                 "receive --pedestal CALIBRATION.h5 --gain G`.\n\n"
                 "  -c, --calibration FILE  the calibration file\n"
                 "      --g0 FILE --g1 FILE --g2 FILE   the dark runs in dynamic gain and forced G1, G2\n"
                 "  -q, --quiet             no summary\n");
    fputs(mg_detopt_help, out);
    fputs(mg_darkopt_help, out);
}

enum { O_G = 1000, O_DET = 1010, O_DARK = 1030 };

/* A run's files: one capture or raw file, or the original morgul's
 * per-module files separated by commas.  Returns how many. */
static int split_run(const char *run, char paths[][1024], const char **pp)
{
    int n = 0;
    for (const char *s = run; n < MG_MAX_MODULES;) {
        size_t len = strcspn(s, ",");
        snprintf(paths[n], 1024, "%.*s", (int)(len < 1023 ? len : 1023), s);
        pp[n] = paths[n];
        n++;
        if (!s[len])
            break;
        s += len + 1;
    }
    return n;
}

/* A dark run from raw files: they must hold the detector's modules, and
 * an original file's gain mode must be the run's. */
static int raw_run(const char *const *pp, int np, const mg_rawread_naming *naming, const mg_detector *det,
                   mg_pedestal_acc *const *acc, int gain, const mg_darkopt *dk, mg_dark_info *info, uint64_t *frames,
                   uint64_t *partial, mg_error *err)
{
    mg_rawread *r = mg_rawread_open(pp, np, naming, err);
    if (!r)
        return err->code;
    const mg_detector *fd = mg_rawread_detector(r);
    int rc = 0, fg = mg_rawread_gain(r);
    for (int m = 0; m < det->nmodules && !rc; m++)
        if (fd->nmodules != det->nmodules || strcmp(fd->modules[m].name, det->modules[m].name))
            rc = mg_error_set(err, MG_ECONFIG, "these files hold %d module(s) (first %s), the first run %d (first %s): "
                              "give runs of the same detector", fd->nmodules, fd->modules[0].name, det->nmodules,
                              det->modules[0].name);
    if (!rc && !dk->mode_frames && fg >= 0 && fg != gain)
        rc = mg_error_set(err, MG_EINVAL, "the file's gainmode says G%d, but it was given as the G%d run (--g%d)", fg,
                          gain, gain);
    if (!rc)
        rc = mg_dark_rawread(r, acc, gain, dk->mode_frames, dk->mode_loops, info, frames, partial, err);
    mg_rawread_close(r);
    return rc;
}

int mg_cmd_pedestal(int argc, char **argv)
{
    struct option opts[3 + 1 + 7 + MG_DARKOPT_COUNT + 3] = {
        {"calibration", required_argument, 0, 'c'}, {"help", no_argument, 0, 'h'}, {"quiet", no_argument, 0, 'q'},
        {"g0", required_argument, 0, O_G + 0}, {"g1", required_argument, 0, O_G + 1},
        {"g2", required_argument, 0, O_G + 2}};
    int k = 6;
    for (int i = 0; i < 7; i++)
        opts[k++] = (struct option){mg_detopt_names[i], required_argument, 0, O_DET + i};
    for (int i = 0; i < MG_DARKOPT_COUNT; i++)
        opts[k++] = (struct option){mg_darkopt_names[i], required_argument, 0, O_DARK + i};
    opts[k] = (struct option){0, 0, 0, 0};
    const char *cal = NULL, *runs[3] = {NULL, NULL, NULL};
    int quiet = 0, c, bad = 0;
    mg_detopt dopt;
    mg_detopt_init(&dopt);
    mg_darkopt dk;
    mg_darkopt_init(&dk);
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:hq", opts, NULL)) != -1) {
        if (c == 'c')
            cal = optarg;
        else if (c == 'h')
            return usage(stdout), 0;
        else if (c == 'q')
            quiet = 1;
        else if (c >= O_G && c < O_G + 3)
            runs[c - O_G] = optarg;
        else if (c >= O_DET && c < O_DET + 7)
            bad |= mg_detopt_take(&dopt, "pedestal", mg_detopt_names[c - O_DET], optarg) < 0;
        else if (c >= O_DARK && c < O_DARK + MG_DARKOPT_COUNT)
            bad |= mg_darkopt_take(&dk, "pedestal", c - O_DARK, optarg) != 0;
        else
            return fprintf(stderr, "morgul pedestal: see 'morgul pedestal --help'\n"), 2;
    }
    if (bad)
        return 2;
    if (dk.mode_frames) {
        if (runs[0] || runs[1] || runs[2] || optind != argc - 1) {
            fprintf(stderr, "morgul pedestal: with --pedestal-mode give the one run as the argument, no --g0/1/2\n");
            return 2;
        }
        runs[0] = argv[optind];
    } else if (optind != argc || (!runs[0] && !runs[1] && !runs[2])) {
        fprintf(stderr, "morgul pedestal: give the dark runs with --g0/--g1/--g2 (or one run with --pedestal-mode)\n");
        return 2;
    }
    if (!cal) {
        fprintf(stderr, "morgul pedestal: say which calibration file to write (-c CALIBRATION.h5)\n");
        return 2;
    }
    mg_error err = {0};
    mg_detector det;
    const char *first = runs[0] ? runs[0] : runs[1] ? runs[1] : runs[2];
    mg_rawread_naming naming = {.config = dopt.config, .names = dopt.names};
    char paths[MG_MAX_MODULES][1024];
    const char *pp[MG_MAX_MODULES];
    int np = split_run(first, paths, pp);
    int det_rc;
    if (mg_file_is_hdf5(pp[0])) {
        mg_rawread *r = mg_rawread_open(pp, np, &naming, &err);
        if (r)
            det = *mg_rawread_detector(r);
        mg_rawread_close(r);
        det_rc = r ? 0 : 1;
    } else if (dopt.given)
        det_rc = mg_detopt_build(&dopt, &det, &err) ? 2 : 0;
    else
        det_rc = mg_detector_from_capture(&det, first, NULL, &err) ? 1 : 0;
    if (det_rc) {
        fprintf(stderr, "morgul pedestal: %s\n", err.message);
        return det_rc;
    }
    const int nacc = det.nmodules * mg_dark_cells(&dk.info);
    mg_pedestal_acc *acc[MG_MAX_MODULES * MG_CELLS_MAX];
    if (mg_dark_accs_new(acc, nacc, &err)) {
        fprintf(stderr, "morgul pedestal: %s\n", err.message);
        return 1;
    }
    mg_dark_info info = dk.info;
    char sources[1024] = "";
    int rc = 0;
    for (int g = 0; g < 3 && !rc; g++) {
        if (!runs[g])
            continue;
        uint64_t frames = 0, partial = 0;
        np = split_run(runs[g], paths, pp);
        if (mg_file_is_hdf5(pp[0]))
            rc = raw_run(pp, np, &naming, &det, acc, dk.mode_frames ? 0 : g, &dk, &info, &frames, &partial, &err);
        else if (np > 1)
            rc = mg_error_set(&err, MG_EINVAL, "only raw files come as a comma-separated list; give one capture");
        else {
            mg_run_config cfg;
            memset(&cfg, 0, sizeof cfg);
            cfg.det = det;
            cfg.check_position = 1;
            cfg.pcap = runs[g];
            cfg.quiet = 1;
            cfg.log = stderr;
            cfg.stop = mg_cli_stop_flag();
            mg_run_summary sum;
            rc = mg_dark_run(&cfg, 0, acc, dk.mode_frames ? 0 : g, dk.mode_frames, dk.mode_loops, &info, &sum, &err);
            frames = sum.frames_dark;
            partial = sum.frames_discarded;
            double t0;
            mg_jf_header h0;
            if (!rc && !info.taken && !mg_capture_first_packet(runs[g], &t0, &h0))
                info.taken = t0;
        }
        if (rc) {
            fprintf(stderr, "morgul pedestal: %s: %s\n", runs[g], err.message);
            rc = 1;
            break;
        }
        if (!quiet)
            fprintf(stderr, "%s: %llu complete dark frames%s, %llu partial left out\n", runs[g],
                    (unsigned long long)frames, dk.mode_frames ? "" : g == 0 ? " (G0)" : g == 1 ? " (G1)" : " (G2)",
                    (unsigned long long)partial);
        snprintf(sources + strlen(sources), sizeof sources - strlen(sources), "%s%s", sources[0] ? "," : "", runs[g]);
    }
    if (!rc) {
        info.sources = sources;
        mg_dark_cells_report(&info, stderr);
        if (mg_dark_save(cal, &det, acc, &info, quiet ? NULL : stdout, &err)) {
            fprintf(stderr, "morgul pedestal: %s\n", err.message);
            rc = 1;
        } else if (!quiet)
            printf("wrote %s\n", cal);
    }
    mg_dark_accs_free(acc, nacc);
    return rc;
}
