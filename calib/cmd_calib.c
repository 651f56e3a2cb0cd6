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

static const char *const det_names[] = {"config", "modules", "interfaces", "host", "port", "module-names",
                                        "detector-name"};
enum { O_DIR = 1000, O_GMAP, O_MODULE, O_PED, O_RMS, O_ROW, O_COL, O_DET };

/* The existing calibration file, or an empty one for the detector. */
int mg_cmd_gainmap(int argc, char **argv)
{
    static struct option opts[] = {
        {"calibration", required_argument, 0, 'c'}, {"dir", required_argument, 0, O_DIR},
        {"gainmap", required_argument, 0, O_GMAP}, {"help", no_argument, 0, 'h'},
        {"config", required_argument, 0, O_DET + 0}, {"modules", required_argument, 0, O_DET + 1},
        {"interfaces", required_argument, 0, O_DET + 2}, {"host", required_argument, 0, O_DET + 3},
        {"port", required_argument, 0, O_DET + 4}, {"module-names", required_argument, 0, O_DET + 5},
        {"detector-name", required_argument, 0, O_DET + 6}, {0, 0, 0, 0}};
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
                if (mg_detopt_take(&dopt, "gainmap", det_names[c - O_DET], optarg) < 0)
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

int mg_cmd_calib(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "import")) {
        fprintf(argc < 2 || !strcmp(argv[1], "--help") ? stdout : stderr,
                "usage: morgul calib import -c CALIBRATION.h5 --module NAME --pedestal FILE [options]\n\n"
                "Brings a module's pedestals into the calibration file (created if missing):\n"
                "  --pedestal FILE.h5           PSI (/gains, /gainsRMS, /pixel_mask), the original morgul (/p0../p2\n"
                "                               or /NAME/pedestal_0..2) or a morgul calibration file\n"
                "  --pedestal G0.bin[,G1,G2]    raw float32 512x1024 planes, G0 first\n"
                "  --rms R0.bin[,R1,R2]         with raw planes: their noise, likewise\n"
                "  --row R --column C           the module's place, for a new module (default 0 0)\n");
        return argc < 2 || !strcmp(argv[1], "--help") ? 0 : 2;
    }
    static struct option opts[] = {{"calibration", required_argument, 0, 'c'}, {"module", required_argument, 0, O_MODULE},
                                   {"pedestal", required_argument, 0, O_PED},    {"rms", required_argument, 0, O_RMS},
                                   {"row", required_argument, 0, O_ROW},         {"column", required_argument, 0, O_COL},
                                   {0, 0, 0, 0}};
    const char *cal = NULL, *module = NULL, *ped = NULL, *rms = NULL;
    int row = 0, col = 0, c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "c:", opts, NULL)) != -1) {
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
    if (!rc)
        rc = mg_calib_write(cal, &cb, &err);
    mg_calib_free(&cb);
    if (rc) {
        fprintf(stderr, "morgul calib import: %s\n", err.message);
        return 1;
    }
    printf("module %s: pedestals from %s into %s\n", module, ped, cal);
    return 0;
}
