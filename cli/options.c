/* options.c - option parsing shared by the subcommands, and the signal flag. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "morgul/cli.h"
#include "morgul/convert.h"
#include "morgul/darkrun.h"

int mg_opt_u64(const char *cmd, const char *opt, const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!v || *v == '-' || !*v) {
        fprintf(stderr, "morgul %s: %s needs a whole number >= 0\n", cmd, opt);
        return -1;
    }
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end) {
        fprintf(stderr, "morgul %s: %s '%s' is not a whole number\n", cmd, opt, v);
        return -1;
    }
    *out = x;
    return 0;
}

int mg_opt_int(const char *cmd, const char *opt, const char *v, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "morgul %s: %s '%s' must be a whole number from %ld to %ld\n", cmd, opt, v ? v : "", lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int mg_opt_double(const char *cmd, const char *opt, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double x = v ? strtod(v, &end) : NAN;
    if (!v || errno || *end || end == v || !(x >= lo && x <= hi)) {
        fprintf(stderr, "morgul %s: %s '%s' must be a number from %g to %g\n", cmd, opt, v ? v : "", lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

const char *const mg_detopt_names[MG_DETOPT_COUNT] = {"config", "modules", "interfaces", "host", "port",
                                                       "module-names", "detector-name"};

const char *const mg_detopt_help =
    "detector (an INI file, or flags for modules stacked in one column):\n"
    "  --config FILE           detector description (see docs/detector-config.md)\n"
    "  --modules N             number of modules (default: one per --module-names name, else 1)\n"
    "  --interfaces N          1 or 2 interfaces per module (default 1)\n"
    "  --host ADDR             address to listen on / send to (default 127.0.0.1)\n"
    "  --port N                first UDP port; one per module interface (default 50001)\n"
    "  --module-names A,B      module names, e.g. M420,M418 (default M000, M001, ...)\n"
    "  --detector-name NAME    (default jungfrau)\n";

void mg_detopt_init(mg_detopt *o)
{
    memset(o, 0, sizeof *o);
    o->interfaces = 1; /* modules 0: as many as --module-names names, else 1 */
    o->port = MG_DEFAULT_PORT;
    o->host = "127.0.0.1";
}

int mg_detopt_take(mg_detopt *o, const char *cmd, const char *opt, const char *val)
{
    int r = 1;
    if (!strcmp(opt, "config"))
        o->config = val;
    else if (!strcmp(opt, "modules"))
        r = mg_opt_int(cmd, "--modules", val, 1, MG_MAX_MODULES, &o->modules) ? -1 : 1;
    else if (!strcmp(opt, "interfaces"))
        r = mg_opt_int(cmd, "--interfaces", val, 1, 2, &o->interfaces) ? -1 : 1;
    else if (!strcmp(opt, "port"))
        r = mg_opt_int(cmd, "--port", val, 1, 65535, &o->port) ? -1 : 1;
    else if (!strcmp(opt, "host"))
        o->host = val;
    else if (!strcmp(opt, "module-names"))
        o->names = val;
    else if (!strcmp(opt, "detector-name"))
        o->name = val;
    else
        return 0;
    o->given = 1;
    return r;
}

int mg_detopt_build(const mg_detopt *o, mg_detector *det, mg_error *err)
{
    if (o->config) {
        if (o->names || o->modules || o->interfaces != 1 || o->port != MG_DEFAULT_PORT)
            return mg_error_set(err, MG_EINVAL, "--config describes the detector; do not combine it with --modules, "
                                                "--interfaces, --port or --module-names");
        return mg_detector_load(det, o->config, err);
    }
    int modules = o->modules;
    if (!modules) { /* not given: one per name */
        modules = 1;
        for (const char *q = o->names; q && *q; q++)
            modules += *q == ',';
    }
    return mg_detector_simple(det, o->name, modules, o->interfaces, o->host, o->port, o->names, err);
}

const char *const mg_corropt_names[MG_CORROPT_COUNT] = {
    "calibration", "energy", "wavelength", "type", "keV", "raw-layout", "mask-big",
    "gap-rows", "gap-cols", "no-flip", "distance", "beam-center", "omega", "calibration-store", "max-age", "runtime-pedestal",
    "sample", "source"};
const int mg_corropt_has_arg[MG_CORROPT_COUNT] = {1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1};

void mg_corropt_init(mg_corropt *o)
{
    memset(o, 0, sizeof *o);
    mg_geometry_defaults(&o->geometry);
    o->distance_mm = 100;
    o->beam_x = o->beam_y = NAN;
    o->max_age_s = 3600;
}

static int pair(const char *cmd, const char *opt, const char *v, double *a, double *b)
{
    if (sscanf(v, "%lf,%lf", a, b) != 2 || !isfinite(*a) || !isfinite(*b)) {
        fprintf(stderr, "morgul %s: %s '%s': give two numbers, A,B\n", cmd, opt, v);
        return -1;
    }
    return 0;
}

int mg_corropt_take(mg_corropt *o, const char *cmd, int i, const char *v)
{
    switch (i) {
    case 0: o->calibration = v; return 0;
    case 1: return mg_opt_double(cmd, "--energy", v, 0.1, 1000, &o->energy_kev);
    case 2: return mg_opt_double(cmd, "--wavelength", v, 0.01, 100, &o->wavelength);
    case 3:
        if (!strcmp(v, "int16"))
            o->type = 0;
        else if (!strcmp(v, "int32"))
            o->type = 1;
        else if (!strcmp(v, "float32"))
            o->type = 2;
        else {
            fprintf(stderr, "morgul %s: --type is int16, int32 or float32\n", cmd);
            return -1;
        }
        return 0;
    case 4: o->kev = 1; return 0;
    case 5: o->geometry.raw_layout = 1; return 0;
    case 6: o->geometry.mask_big = 1; return 0;
    case 7: return mg_opt_int(cmd, "--gap-rows", v, 0, 10000, &o->geometry.gap_rows);
    case 8: return mg_opt_int(cmd, "--gap-cols", v, 0, 10000, &o->geometry.gap_cols);
    case 9: o->geometry.flip_rows = 0; return 0;
    case 10: return mg_opt_double(cmd, "--distance", v, 1, 1e6, &o->distance_mm);
    case 11: return pair(cmd, "--beam-center", v, &o->beam_x, &o->beam_y);
    case 12: o->rotation = 1; return pair(cmd, "--omega", v, &o->omega_start, &o->omega_increment);
    case 13: o->store = v; return 0;
    case 14: return mg_opt_double(cmd, "--max-age", v, 0, 1e10, &o->max_age_s);
    case 15:
        o->runtime = 1;
        if (!strncmp(v, "auto", 4) && (!v[4] || v[4] == ':')) {
            o->runtime_frames = 0;
            return v[4] ? mg_opt_u64(cmd, "--runtime-pedestal auto:MAX", v + 5, &o->runtime_max) : 0;
        }
        if (mg_opt_u64(cmd, "--runtime-pedestal", v, &o->runtime_frames))
            return -1;
        if (!o->runtime_frames) {
            fprintf(stderr, "morgul %s: --runtime-pedestal is a number of frames (1 or more) or auto[:MAX]\n", cmd);
            return -1;
        }
        return 0;
    case 16: o->sample = v; return 0;
    case 17: o->source = v; return 0;
    default: return -1;
    }
}

void mg_cli_command_line(int argc, char **argv, char *out, size_t cap)
{
    size_t n = 0;
    if (!cap)
        return;
    out[0] = 0;
    for (int i = -1; i < argc && n + 1 < cap; i++) {
        const char *a = i < 0 ? "morgul" : argv[i];
        int quote = !*a || strpbrk(a, " \t\n'\"\\$`*?[]()<>|&;#~") != NULL;
        int w;
        if (!quote)
            w = snprintf(out + n, cap - n, "%s%s", n ? " " : "", a);
        else { /* single quotes; a quote inside becomes '\'' */
            w = snprintf(out + n, cap - n, "%s'", n ? " " : "");
            for (const char *c = a; *c && w >= 0 && n + (size_t)w + 5 < cap; c++)
                w += *c == '\'' ? snprintf(out + n + w, cap - n - (size_t)w, "'\\''")
                                : snprintf(out + n + w, cap - n - (size_t)w, "%c", *c);
            if (w >= 0 && n + (size_t)w + 1 < cap)
                w += snprintf(out + n + w, cap - n - (size_t)w, "'");
        }
        if (w < 0 || n + (size_t)w >= cap)
            break;
        n += (size_t)w;
    }
}

int mg_corropt_energy(mg_corropt *o, const char *cmd)
{
    if (o->wavelength > 0) {
        if (o->energy_kev > 0) {
            fprintf(stderr, "morgul %s: give --energy or --wavelength, not both\n", cmd);
            return -1;
        }
        o->energy_kev = mg_energy_from_wavelength(o->wavelength);
    }
    return 0;
}

int mg_corropt_pick(mg_corropt *o, const char *cmd, const mg_detector *det, double t, double exposure_s,
                    const char *who)
{
    if (!o->store)
        return 0;
    if (o->calibration) {
        fprintf(stderr, "morgul %s: give --calibration FILE or --calibration-store DIR, not both\n", cmd);
        return 2;
    }
    if (mg_store_pick(o->store, cmd, det, t, exposure_s, o->max_age_s, who, o->picked, sizeof o->picked, 0))
        return 1;
    o->calibration = o->picked;
    return 0;
}

static _Atomic int stop_flag;

static void on_signal(int sig)
{
    if (atomic_load(&stop_flag)) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    atomic_store(&stop_flag, 1);
}

_Atomic int *mg_cli_stop_flag(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* the terminal or ssh session went away: end with valid files */
    /* a reader of --progress that went away (| tee, then tee killed) must not kill the run: the write fails
     * with EPIPE instead, and the files are closed as usual */
    signal(SIGPIPE, SIG_IGN);
    return &stop_flag;
}

const char *const mg_darkopt_names[MG_DARKOPT_COUNT] = {"gain", "pedestal-mode", "exposure", "user-mask",
                                                       "max-wrong-g0", "noisy-rms", "noisy-k", "min-valid",
                                                       "pedestal-range", "storage-cells"};

const char *const mg_darkopt_help =
    "dark runs:\n"
    "      --gain 0|1|2        the gain the run forces (0: dynamic gain, the G0 run; default 0)\n"
    "      --pedestal-mode F,L one run in the firmware pedestal mode (F frames x L loops); frames whose\n"
    "                          DAQ info has the forcing bits go by them\n"
    "      --exposure S        exposure time of the dark frames, seconds (default: the frames' header)\n"
    "      --user-mask FILE    HDF5 with /<module>/mask or /mask (512, 1024), nonzero = bad (bit 8)\n"
    "      --max-wrong-g0 N    mask pixels with wrong gain in more than N G0 frames (default 2)\n"
    "      --noisy-rms ADU     mask G0 RMS above ADU (default 100) ...\n"
    "      --noisy-k K         ... or above the module's median + K x MAD (default 10)\n"
    "      --min-valid F       mask pixels valid in fewer than F of a run's frames (default 0.5)\n"
    "      --pedestal-range LO,HI  plausible pedestals in ADU (default 1,16382)\n"
    "      --storage-cells N   burst mode: constants per storage cell 0..N-1 (2..16), each frame to the\n"
    "                          cell its DAQ info names (frames of other cells are left out); memory:\n"
    "                          about 80 MiB per module and cell while accumulating\n";

void mg_darkopt_init(mg_darkopt *o)
{
    memset(o, 0, sizeof *o);
    mg_dark_info_defaults(&o->info);
}

int mg_darkopt_take(mg_darkopt *o, const char *cmd, int i, const char *v)
{
    switch (i) {
    case 0: return mg_opt_int(cmd, "--gain", v, 0, 2, &o->gain);
    case 1: {
        double f, l;
        if (pair(cmd, "--pedestal-mode", v, &f, &l))
            return -1;
        if (!(f >= 1 && l >= 1 && f == (int)f && l == (int)l && f * l < 1e8)) {
            fprintf(stderr, "morgul %s: --pedestal-mode F,L takes whole numbers F >= 1 and L >= 1\n", cmd);
            return -1;
        }
        o->mode_frames = (int)f, o->mode_loops = (int)l;
        return 0;
    }
    case 2: return mg_opt_double(cmd, "--exposure", v, 1e-9, 1e6, &o->info.exposure_s);
    case 3: o->info.user_mask = v; return 0;
    case 4: {
        int n;
        if (mg_opt_int(cmd, "--max-wrong-g0", v, 0, 1 << 30, &n))
            return -1;
        o->info.criteria.max_wrong_g0 = (uint32_t)n;
        return 0;
    }
    case 5: return mg_opt_double(cmd, "--noisy-rms", v, 0, 1e6, &o->info.criteria.noisy_rms);
    case 6: return mg_opt_double(cmd, "--noisy-k", v, 0, 1e6, &o->info.criteria.noisy_k);
    case 7: return mg_opt_double(cmd, "--min-valid", v, 0, 1, &o->info.criteria.min_valid_fraction);
    case 8: return pair(cmd, "--pedestal-range", v, &o->info.criteria.pedestal_min, &o->info.criteria.pedestal_max);
    case 9: return mg_opt_int(cmd, "--storage-cells", v, 1, MG_CELLS_MAX, &o->info.cells);
    default: return -1;
    }
}
