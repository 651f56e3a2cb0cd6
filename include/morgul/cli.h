/* morgul/cli.h - the `morgul` command's subcommands and the option helpers
 * they share.  Each mg_cmd_* takes the subcommand's argv (argv[0] is the
 * subcommand name) and returns the process exit status: 0 success, 1 the run
 * failed or lost data it was asked not to, 2 bad usage. */
#ifndef MORGUL_CLI_H
#define MORGUL_CLI_H

#include <stdatomic.h>
#include <stdint.h>

#include "morgul/darkrun.h"
#include "morgul/detector.h"
#include "morgul/error.h"
#include "morgul/geometry.h"

int mg_cmd_simulate(int argc, char **argv);
int mg_cmd_receive(int argc, char **argv);
int mg_cmd_replay(int argc, char **argv);
int mg_cmd_plan(int argc, char **argv);
int mg_cmd_bench(int argc, char **argv);
int mg_cmd_gainmap(int argc, char **argv);
int mg_cmd_calib(int argc, char **argv);
int mg_cmd_correct(int argc, char **argv);
int mg_cmd_pedestal(int argc, char **argv);
int mg_cmd_repair(int argc, char **argv);
int mg_cmd_verify(int argc, char **argv);
int mg_cmd_serve(int argc, char **argv);
/* `morgul calib SUB`: mg_cmd_calib dispatches to these */
int mg_cmd_calib_add(int argc, char **argv);
int mg_cmd_calib_list(int argc, char **argv);
int mg_cmd_calib_find(int argc, char **argv);
int mg_cmd_calib_show(int argc, char **argv);

/* The calibration store's pick for a run at time t (Unix s) and exposure
 * (NaN: any) holding det's modules (det may be NULL): its path into
 * `path`; says what was picked (unless quiet) and warns when no exposure
 * was given or the pick is older than max_age seconds.  0, or 1 after
 * printing why nothing was picked ("morgul CMD: ..."). */
int mg_store_pick(const char *dir, const char *cmd, const mg_detector *det, double t, double exposure_s,
                  double max_age, const char *who, char *path, size_t cap, int quiet);

/* Numbers from option values; on a bad value they print "morgul NAME:
 * --opt VALUE: why" and return -1. */
int mg_opt_u64(const char *cmd, const char *opt, const char *v, uint64_t *out);
int mg_opt_int(const char *cmd, const char *opt, const char *v, long lo, long hi, int *out);
int mg_opt_double(const char *cmd, const char *opt, const char *v, double lo, double hi, double *out);

/* The detector options every subcommand shares:
 *   --config FILE | --modules N --interfaces N --host ADDR --port N
 *   --module-names A,B --detector-name NAME
 * mg_detopt_take returns 1 if it consumed the option (and its value),
 * 0 if the option is not a detector option, -1 on a bad value. */
typedef struct mg_detopt {
    const char *config;
    int modules, interfaces, port;
    const char *host, *names, *name;
    int given; /* any of them appeared */
} mg_detopt;

void mg_detopt_init(mg_detopt *o);
int mg_detopt_take(mg_detopt *o, const char *cmd, const char *opt, const char *val);
int mg_detopt_build(const mg_detopt *o, mg_detector *det, mg_error *err);
extern const char *const mg_detopt_help;
/* The detector options' names, for building getopt tables. */
#define MG_DETOPT_COUNT 7
extern const char *const mg_detopt_names[MG_DETOPT_COUNT];
/* ... and their entries of a getopt_long table (<getopt.h>), numbered from `base`: base + k is
 * mg_detopt_names[k], passed to mg_detopt_take as that name. */
#define MG_DETOPT_LONG_OPTIONS(base)                                                                              \
    {"config", required_argument, 0, (base) + 0}, {"modules", required_argument, 0, (base) + 1},                 \
        {"interfaces", required_argument, 0, (base) + 2}, {"host", required_argument, 0, (base) + 3},            \
        {"port", required_argument, 0, (base) + 4}, {"module-names", required_argument, 0, (base) + 5},          \
        {"detector-name", required_argument, 0, (base) + 6}

/* The command as typed ("morgul receive -o ..."), arguments with spaces or
 * quotes quoted for a shell, cut to `cap`; for the files' record of it.
 * argv[0] is the subcommand's name. */
void mg_cli_command_line(int argc, char **argv, char *out, size_t cap);

/* The correction options `morgul correct`, `receive` and `replay` share:
 *   --calibration FILE --energy KEV | --wavelength A --type T --keV
 *   --raw-layout --mask-big --gap-rows N --gap-cols N --no-flip
 *   --distance MM --beam-center X,Y --omega START,INCREMENT
 *   --calibration-store DIR --max-age S --runtime-pedestal N|auto[:MAX]
 *   --sample NAME --source NAME
 * mg_corropt_names[i] is option i's name, mg_corropt_has_arg[i] whether it
 * takes a value; mg_corropt_take(o, cmd, i, val) parses it (0, or -1 after
 * printing why not).  mg_corropt_energy turns a wavelength into the energy
 * and refuses both at once (-1 with a message). */
#define MG_CORROPT_COUNT 18
extern const char *const mg_corropt_names[MG_CORROPT_COUNT];
extern const int mg_corropt_has_arg[MG_CORROPT_COUNT];

typedef struct mg_corropt {
    const char *calibration;
    double energy_kev, wavelength;
    int kev, type; /* type: mg_out_type */
    mg_geometry_config geometry;
    double distance_mm, beam_x, beam_y; /* distance 100 mm, beam NaN (the image centre) unless given */
    int rotation;
    double omega_start, omega_increment;
    const char *store;  /* pick the calibration from this store (mg_corropt_pick) */
    double max_age_s;   /* warn when the pick is older than this (default 3600 s) */
    char picked[1400];  /* the store's pick; calibration points here */
    uint64_t runtime_frames; /* --runtime-pedestal N; 0 with runtime_auto */
    int runtime;             /* a run-time pedestal was asked for */
    uint64_t runtime_max;    /* auto: search at most this many frames (0: default) */
    const char *sample, *source; /* NXmx /entry/sample/name, /entry/source/name; NULL: not given */
} mg_corropt;

void mg_corropt_init(mg_corropt *o);
int mg_corropt_take(mg_corropt *o, const char *cmd, int i, const char *val);
int mg_corropt_energy(mg_corropt *o, const char *cmd);
/* With --calibration-store: picks the calibration for det at time t and
 * exposure (NaN: any) into o->calibration (--calibration and the store
 * together are refused).  0, or 2 on bad usage, 1 when nothing fits, after
 * printing why.  Without a store: 0, nothing done. */
int mg_corropt_pick(mg_corropt *o, const char *cmd, const mg_detector *det, double t, double exposure_s,
                    const char *who);

/* The dark-run options `morgul pedestal`, `receive --pedestal` and `replay
 * --pedestal` share (same scheme as mg_corropt):
 *   --gain G --pedestal-mode F,L --exposure S --user-mask FILE
 *   --max-wrong-g0 N --noisy-rms ADU --noisy-k K --min-valid F --pedestal-range LO,HI
 *   --storage-cells N */
#define MG_DARKOPT_COUNT 10
extern const char *const mg_darkopt_names[MG_DARKOPT_COUNT];
extern const char *const mg_darkopt_help;

typedef struct mg_darkopt {
    int gain;                    /* the run's forced gain, 0 = G0 (dynamic) */
    int mode_frames, mode_loops; /* firmware pedestal mode, 0 = off */
    mg_dark_info info;           /* mask criteria, user mask, exposure */
} mg_darkopt;

void mg_darkopt_init(mg_darkopt *o);
int mg_darkopt_take(mg_darkopt *o, const char *cmd, int i, const char *val);

/* SIGINT, SIGTERM and SIGHUP raise the returned flag instead of killing the
 * process (a second one kills it as usual); SIGPIPE is ignored.  The flag is
 * the process's one piece of global state: signal handlers can reach
 * nothing else. */
_Atomic int *mg_cli_stop_flag(void);

#endif
