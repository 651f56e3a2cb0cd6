/* cmd_calib.c - `morgul gainmap` and `morgul calib import`: bringing the
 * calibration constants in use elsewhere into the detector's calibration
 * file (morgul/calibration.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "morgul/calibration.h"
#include "morgul/cli.h"
#include "morgul/jungfrau.h"

#define P ((size_t)MG_MODULE_PIXELS)

enum { O_DIR = 1000, O_GMAP, O_MODULE, O_PED, O_RMS, O_ROW, O_COL, O_DET };

/* The existing calibration file, or an empty one for the detector. */
int mg_cmd_gainmap(int argc, char **argv)
{
    static struct option opts[] = {
        {"calibration", required_argument, 0, 'c'}, {"dir", required_argument, 0, O_DIR},
        {"gainmap", required_argument, 0, O_GMAP}, {"help", no_argument, 0, 'h'},
        MG_DETOPT_LONG_OPTIONS(O_DET), {0, 0, 0, 0}};
    const char *cal = NULL, *dir = NULL, *given[MG_MAX_MODULES * 2];
    int ngiven = 0, c;
    mg_detopt dopt;
    mg_detopt_init(&dopt);
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cal = optarg; break;
        case O_DIR: dir = optarg; break;
        case O_GMAP:
            if (ngiven < MG_MAX_MODULES * 2)
                given[ngiven++] = optarg;
            break;
        case 'h':
            printf("usage: morgul gainmap -c CALIBRATION.h5 [--dir GAINMAP_DIR] [--gainmap M420=FILE ...] DETECTOR\n\n"
                   "Reads every module's PSI gain map (.bin, 3 or 6 float64 planes) and stores the G0, G1, G2 gains\n"
                   "in the detector's calibration file (created if missing, updated otherwise).  A module's map is\n"
                   "--gainmap NAME=FILE, or found under --dir (default: the INI's calibration =) as\n"
                   "gainMaps_NAME*.bin, directly or in a subdirectory NAME*.\n\n");
            fputs(mg_detopt_help, stdout);
            return 0;
        default:
            if (c >= O_DET && c < O_DET + 7) {
                if (mg_detopt_take(&dopt, "gainmap", mg_detopt_names[c - O_DET], optarg) < 0)
                    return 2;
                break;
            }
            return 2;
        }
    }
    if (!cal) {
        fprintf(stderr, "morgul gainmap: say which calibration file to write (-c FILE.h5)\n");
        return 2;
    }
    mg_detector det;
    mg_error err = {0};
    if (mg_detopt_build(&dopt, &det, &err)) {
        fprintf(stderr, "morgul gainmap: %s\n", err.message);
        return 2;
    }
    if (!dir && det.calibration[0])
        dir = det.calibration;
    mg_calibration cb;
    if (mg_calib_load_or_new(cal, &cb, det.name, &err)) {
        fprintf(stderr, "morgul gainmap: %s\n", err.message);
        return 1;
    }
    int rc = 0;
    for (int m = 0; m < det.nmodules && !rc; m++) {
        const mg_module *mod = &det.modules[m];
        char path[1024] = "";
        size_t nl = strlen(mod->name);
        for (int k = 0; k < ngiven; k++)
            if (!strncmp(given[k], mod->name, nl) && given[k][nl] == '=')
                snprintf(path, sizeof path, "%s", given[k] + nl + 1);
        if (!path[0]) {
            if (!dir) {
                err.code = mg_error_set(&err, MG_ECONFIG, "no gain map for module %s: give --dir DIR or --gainmap "
                                                          "%s=FILE", mod->name, mod->name);
                rc = 1;
                break;
            }
            if (mg_gainmap_find(dir, mod->name, path, sizeof path, &err)) {
                rc = 1;
                break;
            }
        }
        double *gain = malloc(3 * P * sizeof(double));
        mg_module_calib *x = mg_calib_module(&cb, mod->name, mod->row, mod->column);
        if (!gain || !x || mg_gainmap_read_bin(path, gain, &err)) {
            if (!gain || !x)
                mg_error_set(&err, MG_ENOMEM, "out of memory");
            free(gain);
            rc = 1;
            break;
        }
        free(x->gain);
        x->gain = gain;
        x->row = mod->row;
        x->column = mod->column;
        printf("module %s: gain map %s\n", mod->name, path);
        /* every gain checked: unusable ones masked with their reason, a map mostly unusable refused */
        mg_calib_issues is;
        rc = mg_calib_validate(x, MG_CALIB_MAX_UNUSABLE, &is, &err) ? 1 : 0;
        mg_calib_issues_print(mod->name, &is, stdout);
    }
    if (!rc && mg_calib_write(cal, &cb, &err))
        rc = 1;
    mg_calib_free(&cb);
    if (rc) {
        fprintf(stderr, "morgul gainmap: %s\n", err.message);
        return 1;
    }
    printf("wrote %s\n", cal);
    return 0;
}

static int import_planes(const char *list, float *dst, mg_error *err)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    int g = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save), g++) {
        if (g == 3)
            return mg_error_set(err, MG_EINVAL, "give at most 3 planes (G0,G1,G2), not '%s'", list);
        if (mg_plane_read_f32(tok, dst + (size_t)g * P, err))
            return err->code;
    }
    for (; g < 3; g++) /* gains not given are unknown */
        for (size_t i = 0; i < P; i++)
            dst[(size_t)g * P + i] = __builtin_nanf("");
    return 0;
}

static int calib_import(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: morgul calib import -c CALIBRATION.h5 --module NAME --pedestal FILE [options]\n\n"
                "Brings a module's pedestals into the calibration file (created if missing):\n"
                "  --pedestal FILE.h5           PSI (/gains, /gainsRMS, /pixel_mask), the original morgul (/p0../p2\n"
                "                               or /NAME/pedestal_0..2) or a morgul calibration file\n"
                "  --pedestal G0.bin[,G1,G2]    raw float32 512x1024 planes, G0 first\n"
                "  --rms R0.bin[,R1,R2]         with raw planes: their noise, likewise\n"
                "  --row R --column C           the module's place, for a new module (default 0 0)\n");
        return argc < 2 ? 2 : 0;
    }
    static struct option opts[] = {{"calibration", required_argument, 0, 'c'}, {"module", required_argument, 0, O_MODULE},
                                   {"pedestal", required_argument, 0, O_PED},    {"rms", required_argument, 0, O_RMS},
                                   {"row", required_argument, 0, O_ROW},         {"column", required_argument, 0, O_COL},
                                   {0, 0, 0, 0}};
    const char *cal = NULL, *module = NULL, *ped = NULL, *rms = NULL;
    int row = 0, col = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cal = optarg; break;
        case O_MODULE: module = optarg; break;
        case O_PED: ped = optarg; break;
        case O_RMS: rms = optarg; break;
        case O_ROW:
            if (mg_opt_int("calib import", "--row", optarg, 0, 255, &row))
                return 2;
            break;
        case O_COL:
            if (mg_opt_int("calib import", "--column", optarg, 0, 255, &col))
                return 2;
            break;
        default: return 2;
        }
    }
    if (!cal || !module || !ped) {
        fprintf(stderr, "morgul calib import: give -c CALIBRATION.h5, --module NAME and --pedestal FILE\n");
        return 2;
    }
    mg_calibration cb;
    mg_error err = {0};
    if (mg_calib_load_or_new(cal, &cb, NULL, &err)) {
        fprintf(stderr, "morgul calib import: %s\n", err.message);
        return 1;
    }
    mg_module_calib *x = mg_calib_module(&cb, module, row, col);
    int rc = x ? 0 : mg_error_set(&err, MG_ECONFIG, "the calibration file is full (%d modules)", MG_MAX_MODULES);
    if (!rc && mg_calib_cells(x) > 1)
        rc = mg_error_set(&err, MG_ECONFIG, "module %s in %s is calibrated per storage cell (%d cells); imported "
                          "pedestals have none: import them into a new calibration file", module, cal, x->cells);
    size_t n = strlen(ped);
    if (!rc && n > 3 && (!strcmp(ped + n - 3, ".h5") || !strcmp(ped + n - 5, ".hdf5") || !strcmp(ped + n - 4, ".nxs")))
        rc = mg_pedestal_import_h5(ped, module, x, &err);
    else if (!rc) {
        float *p = malloc(3 * P * sizeof(float)), *r = rms ? malloc(3 * P * sizeof(float)) : NULL;
        if (!p || (rms && !r))
            rc = mg_error_set(&err, MG_ENOMEM, "out of memory");
        if (!rc)
            rc = import_planes(ped, p, &err);
        if (!rc && rms)
            rc = import_planes(rms, r, &err);
        if (!rc) {
            free(x->pedestal);
            x->pedestal = p;
            p = NULL;
            if (r) {
                free(x->pedestal_rms);
                x->pedestal_rms = r;
                r = NULL;
            }
        }
        free(p);
        free(r);
    }
    /* every constant checked: PSI's bad pixels (pedestal 0 or >= 16383) and unusable gains masked with their
     * reason, a module mostly unusable refused */
    mg_calib_issues is;
    memset(&is, 0, sizeof is);
    if (!rc)
        rc = mg_calib_validate(x, MG_CALIB_MAX_UNUSABLE, &is, &err);
    if (!rc)
        rc = mg_calib_write(cal, &cb, &err);
    mg_calib_free(&cb);
    if (rc) {
        fprintf(stderr, "morgul calib import: %s (%s left as it was)\n", err.message, cal);
        return 1;
    }
    printf("module %s: pedestals from %s into %s\n", module, ped, cal);
    mg_calib_issues_print(module, &is, stdout);
    return 0;
}

static int merge_cmd(int argc, char **argv)
{
    static struct option opts[] = {{"output", required_argument, 0, 'o'}, {"overwrite", no_argument, 0, 'f'},
                                   {"detector-name", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'},
                                   {"quiet", no_argument, 0, 'q'}, {0, 0, 0, 0}};
    const char *out = NULL, *name = NULL;
    int overwrite = 0, quiet = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:hq", opts, NULL)) != -1) {
        if (c == 'o')
            out = optarg;
        else if (c == 'f')
            overwrite = 1;
        else if (c == 'd')
            name = optarg;
        else if (c == 'q')
            quiet = 1;
        else if (c == 'h') {
            printf("usage: morgul calib merge -o DETECTOR.h5 A.h5 B.h5 ... [--detector-name NAME] [--overwrite]\n\n"
                   "Joins calibration files into one detector file: per-module files, or files holding parts of a\n"
                   "module's constants (gain maps in one, a dark run in another).  Later files win: a gain map\n"
                   "replaces the one before; a dark run of a gain replaces that gain's pedestal, noise and counts.\n"
                   "Masks are joined and their dark-run bits recomputed from the merged statistics (default\n"
                   "criteria; user-mask bits kept).  Files of different exposure times are refused.\n");
            return 0;
        } else
            return 2;
    }
    if (!out || argc - optind < 1) {
        fprintf(stderr, "morgul calib merge: give -o OUTPUT.h5 and the files to merge\n");
        return 2;
    }
    if (!overwrite && access(out, F_OK) == 0) {
        fprintf(stderr, "morgul calib merge: %s exists; use --overwrite to replace it\n", out);
        return 1;
    }
    mg_calibration dst;
    mg_calib_init(&dst);
    mg_error err = {0};
    int rc = 0;
    for (int i = optind; i < argc && !rc; i++) {
        mg_calibration src;
        if ((rc = mg_calib_read(argv[i], &src, &err)))
            break;
        rc = mg_calib_merge(&dst, &src, argv[i], quiet ? NULL : stdout, &err);
        mg_calib_free(&src);
    }
    if (!rc && name)
        snprintf(dst.detector, sizeof dst.detector, "%s", name);
    if (!rc)
        rc = mg_calib_write(out, &dst, &err);
    mg_calib_free(&dst);
    if (rc) {
        fprintf(stderr, "morgul calib merge: %s (nothing written)\n", err.message);
        return 1;
    }
    if (!quiet)
        printf("wrote %s\n", out);
    return 0;
}

static int export_cmd(int argc, char **argv)
{
    struct option opts[4 + 7 + 1] = {{"output", required_argument, 0, 'o'}, {"overwrite", no_argument, 0, 'f'},
                                     {"help", no_argument, 0, 'h'}};
    for (int i = 0; i < 7; i++)
        opts[3 + i] = (struct option){mg_detopt_names[i], required_argument, 0, O_DET + i};
    const char *out = NULL;
    int overwrite = 0, c;
    mg_detopt dopt;
    mg_detopt_init(&dopt);
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        if (c == 'o')
            out = optarg;
        else if (c == 'f')
            overwrite = 1;
        else if (c >= O_DET && c < O_DET + 7) {
            if (mg_detopt_take(&dopt, "calib export", mg_detopt_names[c - O_DET], optarg) < 0)
                return 2;
        } else if (c == 'h') {
            printf("usage: morgul calib export CALIBRATION.h5 -o ARRAYS.h5 [--config INI | --module-names A,B]\n\n"
                   "Writes the detector's constants as whole-detector arrays shaped (3, modules, 512, 1024), the\n"
                   "layout other facilities' correction software reads: pixel_gain (ADU/keV) and pixel_offset\n"
                   "(ADU, zero) float32, pedestals and pixel_rms float32, pixel_status uint32 (the mask), and\n"
                   "module_name.  Modules in the detector's order (default: the file's).\n\n");
            fputs(mg_detopt_help, stdout);
            return 0;
        } else
            return 2;
    }
    if (!out || argc - optind != 1) {
        fprintf(stderr, "morgul calib export: give the calibration file and -o OUTPUT.h5\n");
        return 2;
    }
    mg_calibration cb;
    mg_error err = {0};
    if (mg_calib_read(argv[optind], &cb, &err)) {
        fprintf(stderr, "morgul calib export: %s\n", err.message);
        return 1;
    }
    mg_detector det;
    memset(&det, 0, sizeof det);
    int rc = 0;
    if (dopt.given)
        rc = mg_detopt_build(&dopt, &det, &err);
    else {
        det.nmodules = cb.nmodules;
        for (int m = 0; m < cb.nmodules; m++)
            snprintf(det.modules[m].name, MG_NAME_MAX, "%s", cb.modules[m].name);
    }
    if (!rc)
        rc = mg_calib_export(&cb, &det, out, overwrite, &err);
    mg_calib_free(&cb);
    if (rc) {
        fprintf(stderr, "morgul calib export: %s\n", err.message);
        return 1;
    }
    printf("wrote %s: %d module(s) as (3, %d, 512, 1024)\n", out, det.nmodules, det.nmodules);
    return 0;
}


static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} subs[] = {
    {"import", calib_import, "bring pedestals from PSI, original morgul or raw float32 files into a calibration"},
    {"merge", merge_cmd, "join per-module or partial calibration files into one detector file"},
    {"show", mg_cmd_calib_show, "print per-module statistics; --png DIR: maps and histograms"},
    {"export", export_cmd, "whole-detector arrays (3, modules, 512, 1024) for other software"},
    {"add", mg_cmd_calib_add, "copy a calibration into a store, valid from the time it was taken"},
    {"list", mg_cmd_calib_list, "the store's calibrations"},
    {"find", mg_cmd_calib_find, "the store's calibration valid for a time and exposure"},
};

int mg_cmd_calib(int argc, char **argv)
{
    for (size_t i = 0; argc >= 2 && i < sizeof subs / sizeof *subs; i++)
        if (!strcmp(argv[1], subs[i].name))
            return subs[i].fn(argc - 1, argv + 1);
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    FILE *out = help ? stdout : stderr;
    if (argc >= 2 && !help)
        fprintf(stderr, "morgul calib: unknown subcommand '%s'\n\n", argv[1]);
    fprintf(out, "usage: morgul calib SUBCOMMAND [options]   (morgul calib SUBCOMMAND --help)\n\n");
    for (size_t i = 0; i < sizeof subs / sizeof *subs; i++)
        fprintf(out, "  %-7s %s\n", subs[i].name, subs[i].what);
    return help ? 0 : 2;
}
