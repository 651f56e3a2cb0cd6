/* cmd_store.c - `morgul calib add | list | find`: the calibration store
 * (morgul/calstore.h) from the command line. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "morgul/calstore.h"
#include "morgul/cli.h"

enum { O_TAKEN = 1000, O_EXPOSURE, O_TIME, O_MAXAGE, O_DET };

static int time_opt(const char *cmd, const char *opt, const char *v, double *t)
{
    if (mg_time_parse(v, t)) {
        fprintf(stderr, "morgul %s: %s '%s': give 'now', Unix seconds or ISO 8601 UTC (2026-11-21T07:16:00Z)\n", cmd,
                opt, v);
        return -1;
    }
    return 0;
}

int mg_cmd_calib_add(int argc, char **argv)
{
    static struct option opts[] = {{"taken", required_argument, 0, O_TAKEN},
                                   {"exposure", required_argument, 0, O_EXPOSURE},
                                   {"help", no_argument, 0, 'h'},
                                   {0, 0, 0, 0}};
    double taken = 0, exposure = NAN;
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == O_TAKEN)
            bad |= time_opt("calib add", "--taken", optarg, &taken) != 0;
        else if (c == O_EXPOSURE)
            bad |= mg_opt_double("calib add", "--exposure", optarg, 1e-9, 1e3, &exposure) != 0;
        else if (c == 'h') {
            printf("usage: morgul calib add STORE CALIBRATION.h5 ... [--taken TIME] [--exposure S]\n\n"
                   "Copies calibration files into the store (a directory, created if missing) under a name made of\n"
                   "the detector, the time the dark runs were taken (the start of validity) and the exposure.\n"
                   "--taken and --exposure set them for files that do not record them (or override them).\n"
                   "Nothing in the store is ever replaced; every addition is a line in STORE/store.log.\n");
            return 0;
        } else
            return 2;
    }
    if (bad)
        return 2;
    if (argc - optind < 2) {
        fprintf(stderr, "morgul calib add: give the store and at least one calibration file\n");
        return 2;
    }
    const char *dir = argv[optind];
    for (int i = optind + 1; i < argc; i++) {
        char stored[300];
        mg_error err = {0};
        if (mg_store_add(dir, argv[i], taken, exposure, stored, sizeof stored, stderr, &err)) {
            fprintf(stderr, "morgul calib add: %s\n", err.message);
            return 1;
        }
        printf("%s -> %s/%s\n", argv[i], dir, stored);
    }
    return 0;
}

int mg_cmd_calib_list(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr,
                "usage: morgul calib list STORE\n\nThe store's calibration files, oldest first: time taken, exposure, "
                "detector, modules; files that do not read are listed last with the reason.\n");
        return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
    }
    mg_store_entry *all;
    size_t n;
    mg_error err = {0};
    if (mg_store_list(argv[1], &all, &n, &err)) {
        fprintf(stderr, "morgul calib list: %s\n", err.message);
        return 1;
    }
    printf("%-20s  %12s  %-10s  %-7s  %s\n", "taken (UTC)", "exposure (s)", "detector", "modules", "file");
    double now = (double)time(NULL);
    for (size_t i = 0; i < n; i++) {
        const mg_store_entry *x = &all[i];
        if (x->problem[0]) {
            printf("%-20s  %12s  %-10s  %-7s  %s  UNUSABLE: %s\n", "?", "?", "?", "?", x->file, x->problem);
            continue;
        }
        char iso[64], mods[128] = "";
        mg_calib_time_iso(x->h.taken, iso, sizeof iso);
        for (int m = 0; m < x->h.nmodules && strlen(mods) < 100; m++)
            snprintf(mods + strlen(mods), sizeof mods - strlen(mods), "%s%s", m ? "," : "", x->h.modules[m]);
        printf("%-20s  %12g  %-10s  %-7d  %s  (%s; %.1f h old)\n", iso, x->h.exposure_s, x->h.detector, x->h.nmodules,
               x->file, mods, (now - x->h.taken) / 3600);
    }
    if (!n)
        printf("(the store holds no calibration files)\n");
    free(all);
    return 0;
}

int mg_store_pick(const char *dir, const char *cmd, const mg_detector *det, double t, double exposure_s,
                  double max_age, const char *who, char *path, size_t cap, int quiet)
{
    mg_store_query q = {.time = t, .exposure_s = exposure_s, .det = det, .who = who};
    mg_store_entry e;
    mg_error err = {0};
    if (mg_store_find(dir, &q, &e, stderr, &err)) {
        fprintf(stderr, "morgul %s: %s\n", cmd, err.message);
        return 1;
    }
    snprintf(path, cap, "%s", e.path);
    char iso[64];
    mg_calib_time_iso(e.h.taken, iso, sizeof iso);
    double age = t - e.h.taken;
    if (!quiet)
        fprintf(stderr, "calibration: %s (taken %s, exposure %g s, %.2f h before the run)\n", e.path, iso,
                e.h.exposure_s, age / 3600);
    if (exposure_s != exposure_s)
        fprintf(stderr, "warning: no exposure time given: picked the newest constants of any exposure "
                        "(give --exposure S)\n");
    if (age > max_age)
        fprintf(stderr, "warning: the calibration %s is %.1f h older than the run (more than %.1f h): take new "
                        "dark runs\n", e.file, age / 3600, max_age / 3600);
    return 0;
}

int mg_cmd_calib_find(int argc, char **argv)
{
    struct option opts[5 + 7] = {{"time", required_argument, 0, O_TIME},
                                 {"exposure", required_argument, 0, O_EXPOSURE},
                                 {"max-age", required_argument, 0, O_MAXAGE},
                                 {"help", no_argument, 0, 'h'}};
    for (int i = 0; i < 7; i++)
        opts[4 + i] = (struct option){mg_detopt_names[i], required_argument, 0, O_DET + i};
    opts[11] = (struct option){0, 0, 0, 0};
    double t = 0, exposure = NAN, max_age = 3600;
    int c, bad = 0, have_time = 0;
    mg_detopt dopt;
    mg_detopt_init(&dopt);
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == O_TIME)
            bad |= time_opt("calib find", "--time", optarg, &t) != 0, have_time = 1;
        else if (c == O_EXPOSURE)
            bad |= mg_opt_double("calib find", "--exposure", optarg, 1e-9, 1e3, &exposure) != 0;
        else if (c == O_MAXAGE)
            bad |= mg_opt_double("calib find", "--max-age", optarg, 0, 1e10, &max_age) != 0;
        else if (c >= O_DET && c < O_DET + 7)
            bad |= mg_detopt_take(&dopt, "calib find", mg_detopt_names[c - O_DET], optarg) < 0;
        else if (c == 'h') {
            printf("usage: morgul calib find STORE [--time TIME] [--exposure S] [--max-age S] [detector options]\n\n"
                   "Prints the path of the calibration valid at TIME (default now): the newest taken at or before\n"
                   "it with the same exposure (any, if not given), holding every module of the detector (if one\n"
                   "is described).  Warns when it is older than --max-age seconds (default 3600).\n\n");
            fputs(mg_detopt_help, stdout);
            return 0;
        } else
            return 2;
    }
    if (bad)
        return 2;
    if (argc - optind != 1) {
        fprintf(stderr, "morgul calib find: give the store directory\n");
        return 2;
    }
    if (!have_time)
        mg_time_parse("now", &t);
    mg_detector det;
    mg_error err = {0};
    if (dopt.given && mg_detopt_build(&dopt, &det, &err)) {
        fprintf(stderr, "morgul calib find: %s\n", err.message);
        return 2;
    }
    char path[1400];
    if (mg_store_pick(argv[optind], "calib find", dopt.given ? &det : NULL, t, exposure, max_age, "calib find", path,
                      sizeof path, 1))
        return 1;
    printf("%s\n", path);
    return 0;
}
