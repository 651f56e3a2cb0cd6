/* bench.h - private: what the benchmarks (cmd_bench.c, bench_service.c)
 * share: a clock, a scratch directory, captures of real frames, and warming
 * the VM's memory before timing. */
#ifndef MORGUL_BENCH_H
#define MORGUL_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "morgul/detector.h"
#include "morgul/run.h"

double bench_now_s(void);
void bench_warm_memory(int gb);
int bench_scratch_dir(const char *base, char *dir, size_t cap);
void bench_remove_prefix(const char *prefix);
/* A capture of nmod modules x frames frames, cycling the real frames of
 * frames_dir (or a pattern); det describes it. */
int bench_make_capture(const char *path, int nmod, uint64_t frames, const char *frames_dir, mg_detector *det);
/* One replay of cap through the run code (out NULL: no files; cal: corrected), every core a worker, the
 * observers of `hooks` (on_images, written, written_ctx) if given: module-frames per second, 0 on error. */
double bench_replay_pass(const mg_detector *det, const char *cap, const char *out, int loops, const char *cal,
                         const mg_run_config *hooks, mg_run_summary *sum);
/* A calibration file for det's modules from the PSI constants in frames_dir: 0, or -1 without them. */
int bench_make_calibration(const char *frames_dir, const char *path, const mg_detector *det);
/* The real raw frames (*raw*.bin, 512 x 1024 uint16) of dir, malloc'ed; *nframes of them (0: none). */
uint16_t *bench_load_frames(const char *dir, size_t *nframes);
/* The raw frame files of dir as the simulator's --frames list (comma-separated), "" if none. */
void bench_frame_file_list(const char *dir, char *files, size_t cap);
/* One loopback trial: `morgul receive` (this binary, `self`) in a child, the simulator here sending `frames`
 * frames of nmod modules at `rate` (0: as fast as it can) from `files` (or a pattern); write: the receiver
 * compresses and writes to dir, else --no-write. */
typedef struct lb_result {
    double send_fps, send_gbps, rx_cpu, rx_wall;
    uint64_t received, lost, kdrops;
    int ok;
} lb_result;
int bench_loopback_trial(const char *self, int nmod, uint64_t frames, double rate, const char *files, int write,
                         const char *dir, int port, lb_result *res);
/* `morgul bench profile`: every stage's cost per module-frame here, saved as a profile (morgul/sizing.h). */
int bench_profile(const char *frames_dir, const char *base, const char *out_path, int warm_gb, double seconds);
/* `morgul bench service`: arming against receive's set-up; streaming's cost. */
int bench_service(const char *frames_dir, const char *base, int loops, int warm_gb, int markdown);

#endif
