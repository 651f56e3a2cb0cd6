/* cmd_bench.c - `morgul bench`: throughput of morgul's stages against
 * baselines on the same data in the same run, reported as ratios.
 *
 *   compress   bitshuffle/LZ4 of real frames: morgul AVX2 and scalar vs the
 *              reference bitshuffle library (Debian's HDF5 plugin, loaded
 *              with dlopen) and vs memcpy
 *   replay     a 2-module capture through assembly, compression and writing
 *              to tmpfs, vs reading the same capture alone
 *   loopback   simulate -> receive over UDP on loopback: the sender's highest
 *              rate, packets lost, the receiver's CPU use
 *
 * Results go to standard output as a table and, with --markdown, as the
 * rows docs/performance.md keeps. */
#include <dlfcn.h>
#include <errno.h>
#include <immintrin.h>
#include <getopt.h>
#include <glob.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "morgul/bitshuffle.h"
#include "morgul/calibration.h"
#include "morgul/capture.h"
#include "morgul/cli.h"
#include "morgul/convert.h"
#include "morgul/jungfrau.h"
#include "morgul/pedestal.h"
#include "morgul/run.h"
#include "morgul/simulate.h"
#include "morgul/topology.h"

#define REFERENCE_PLUGIN "/usr/lib/x86_64-linux-gnu/hdf5/serial/plugins/libh5bshuf.so"

double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Loads every mod5_raw*.bin (or any *.bin of 1 MiB frames) in `dir`. */
uint16_t *bench_load_frames(const char *dir, size_t *nframes)
{
    char pat[1024];
    snprintf(pat, sizeof pat, "%s/*raw*.bin", dir);
    glob_t g;
    *nframes = 0;
    if (glob(pat, 0, NULL, &g))
        return NULL;
    uint16_t *all = malloc(g.gl_pathc * MG_MODULE_BYTES);
    for (size_t i = 0; all && i < g.gl_pathc; i++) {
        FILE *f = fopen(g.gl_pathv[i], "rb");
        if (f && fread(all + *nframes * MG_MODULE_PIXELS, 1, MG_MODULE_BYTES, f) == MG_MODULE_BYTES)
            (*nframes)++;
        if (f)
            fclose(f);
    }
    globfree(&g);
    return all;
}

typedef int64_t (*ref_compress_fn)(const void *in, void *out, size_t size, size_t elem_size, size_t block_size);
typedef int64_t (*ref_decompress_fn)(const void *in, void *out, size_t size, size_t elem_size, size_t block_size);

static int bench_compress(const char *dir, int seconds_x10, const char *ref_path, int markdown)
{
    size_t n = 0;
    uint16_t *frames = bench_load_frames(dir, &n);
    if (!n) {
        fprintf(stderr, "morgul bench compress: no raw frames (*raw*.bin, 512x1024 uint16) in %s; give --frames-dir\n",
                dir);
        free(frames);
        return 1;
    }
    void *lib = dlopen(ref_path, RTLD_NOW | RTLD_LOCAL);
    ref_compress_fn ref = lib ? (ref_compress_fn)dlsym(lib, "bshuf_compress_lz4") : NULL;
    if (!ref)
        fprintf(stderr, "note: reference compressor not available (%s): %s\n", ref_path, dlerror());
    size_t cap = mg_bshuf_bound(MG_MODULE_PIXELS, 2);
    uint8_t *out = malloc(cap);
    uint8_t *copy = malloc(MG_MODULE_BYTES);
    typedef int (*using_fn)(void);
    using_fn ref_avx2 = lib ? (using_fn)dlsym(lib, "bshuf_using_AVX2") : NULL;
    using_fn ref_sse2 = lib ? (using_fn)dlsym(lib, "bshuf_using_SSE2") : NULL;
    const char *ref_isa = !lib ? "-" : ref_avx2 && ref_avx2() ? "AVX2" : ref_sse2 && ref_sse2() ? "SSE2" : "scalar";
    /* the contenders: morgul's kernels at LZ4 acceleration 1 (the reference's fixed setting) and at morgul's
     * default, the reference, and memcpy as the floor of any pass over the frames */
    enum { C_MEMCPY, C_REF, C_SCALAR1, C_AVX2_1, C_AVX512_1, C_AVX2_D, C_AVX512_D, C_PLAIN_D, C_COUNT };
    mg_bshuf_ctx *ctx[C_COUNT] = {0};
    ctx[C_SCALAR1] = mg_bshuf_ctx_new(2, MG_BSHUF_SCALAR, NULL);
    if (mg_cpu_has_avx2())
        ctx[C_AVX2_1] = mg_bshuf_ctx_new(2, MG_BSHUF_AVX2, NULL), ctx[C_AVX2_D] = mg_bshuf_ctx_new(2, MG_BSHUF_AVX2, NULL);
    if (mg_cpu_has_avx512())
        ctx[C_AVX512_1] = mg_bshuf_ctx_new(2, MG_BSHUF_AVX512, NULL),
        ctx[C_AVX512_D] = mg_bshuf_ctx_new(2, MG_BSHUF_AVX512, NULL);
    /* the default acceleration with LZ4 searching every plane: what the noise planes as literals bring */
    ctx[C_PLAIN_D] = mg_bshuf_ctx_new(2, MG_BSHUF_AUTO, NULL);
    mg_bshuf_ctx_set_noise_literals(ctx[C_PLAIN_D], 0);
    for (int k = C_SCALAR1; k <= C_AVX512_1; k++)
        if (ctx[k])
            mg_bshuf_ctx_set_acceleration(ctx[k], 1);
    const char *names[C_COUNT] = {"memcpy (baseline: read + write)", NULL, "morgul scalar, acceleration 1",
                                  "morgul AVX2, acceleration 1", "morgul AVX-512, acceleration 1",
                                  "morgul AVX2, acceleration 8 (default)", "morgul AVX-512, acceleration 8 (default)",
                                  NULL};
    char plainname[96];
    snprintf(plainname, sizeof plainname, "morgul %s, acceleration 8, noise searched",
             mg_bshuf_impl_name(mg_bshuf_ctx_impl(ctx[C_PLAIN_D])));
    names[C_PLAIN_D] = plainname;
    char refname[96];
    snprintf(refname, sizeof refname, "reference (Debian plugin, %s), accel. 1", ref_isa);
    names[C_REF] = refname;
    double best[C_COUNT] = {0}, bytes_out[C_COUNT] = {0};
    /* interleave the contenders round by round so they see the same machine state; the order alternates so
     * that an AVX path leaving the upper registers dirty would slow the SSE code after it in both orders */
    double budget = seconds_x10 / 10.0, t_end = bench_now_s() + budget;
    int rounds = 0;
    while (bench_now_s() < t_end || rounds < 3) {
        for (int kk = 0; kk < C_COUNT; kk++) {
            int k = rounds & 1 ? C_COUNT - 1 - kk : kk;
            if ((k == C_REF && !ref) || (k >= C_SCALAR1 && !ctx[k]))
                continue;
            double t0 = bench_now_s(), total = 0;
            for (size_t i = 0; i < n; i++) {
                const uint16_t *fr = frames + i * MG_MODULE_PIXELS;
                if (k == C_MEMCPY) {
                    memcpy(copy, fr, MG_MODULE_BYTES);
                    total += MG_MODULE_BYTES;
                    __asm__ volatile("" ::"r"(copy) : "memory");
                } else if (k == C_REF)
                    total += (double)ref(fr, out, MG_MODULE_PIXELS, 2, 0) + MG_BSHUF_HEADER_BYTES;
                else
                    total += (double)mg_bshuf_compress(ctx[k], fr, MG_MODULE_PIXELS, out, cap, NULL);
            }
            double rate = (double)n * MG_MODULE_BYTES / (bench_now_s() - t0) / 1e9;
            if (rate > best[k])
                best[k] = rate;
            bytes_out[k] = total / (double)n;
        }
        rounds++;
    }
    printf("compress: %zu real frames from %s, best of %d rounds (GB/s of raw input, 1 thread)\n", n, dir, rounds);
    for (int k = 0; k < C_COUNT; k++)
        if (best[k] > 0)
            printf("  %-44s %6.2f GB/s  %8.0f bytes/frame\n", names[k], best[k], bytes_out[k]);
    int top1 = ctx[C_AVX512_1] ? C_AVX512_1 : C_AVX2_1, topd = ctx[C_AVX512_D] ? C_AVX512_D : C_AVX2_D;
    if (ref && ctx[top1]) {
        printf("  against the reference: equal acceleration 1: %s x%.2f (size %+.2f%%); %s x%.2f; scalar x%.2f\n",
               mg_bshuf_impl_name(mg_bshuf_ctx_impl(ctx[top1])), best[top1] / best[C_REF],
               100 * (bytes_out[top1] - bytes_out[C_REF]) / bytes_out[C_REF],
               top1 == C_AVX512_1 ? "AVX2" : "-", top1 == C_AVX512_1 ? best[C_AVX2_1] / best[C_REF] : 0,
               best[C_SCALAR1] / best[C_REF]);
        printf("  against the reference: morgul's default (acceleration 8): %s x%.2f (size %+.2f%%)\n",
               mg_bshuf_impl_name(mg_bshuf_ctx_impl(ctx[topd])), best[topd] / best[C_REF],
               100 * (bytes_out[topd] - bytes_out[C_REF]) / bytes_out[C_REF]);
        printf("  of that, noise planes as literals against LZ4 searching them (both acceleration 8): x%.2f (size "
               "%+.2f%%); acceleration 8 with every plane searched against the reference: x%.2f\n",
               best[topd] / best[C_PLAIN_D], 100 * (bytes_out[topd] - bytes_out[C_PLAIN_D]) / bytes_out[C_PLAIN_D],
               best[C_PLAIN_D] / best[C_REF]);
    }
    if (markdown && ref && ctx[top1]) {
        printf("| compress real frames, acceleration 1 both | %.2f GB/s (%s) | reference %.2f GB/s (%s) | x%.2f | size "
               "%+.2f %% |\n", best[top1], mg_bshuf_impl_name(mg_bshuf_ctx_impl(ctx[top1])), best[C_REF], ref_isa,
               best[top1] / best[C_REF], 100 * (bytes_out[top1] - bytes_out[C_REF]) / bytes_out[C_REF]);
        printf("| compress real frames, morgul's default acceleration 8 | %.2f GB/s (%s) | reference %.2f GB/s at 1 | "
               "x%.2f | size %+.2f %% |\n", best[topd], mg_bshuf_impl_name(mg_bshuf_ctx_impl(ctx[topd])), best[C_REF],
               best[topd] / best[C_REF], 100 * (bytes_out[topd] - bytes_out[C_REF]) / bytes_out[C_REF]);
        printf("| compress real frames, acceleration 8, LZ4 searching the noise planes too | %.2f GB/s (%s) | "
               "reference %.2f GB/s at 1 | x%.2f | size %+.2f %% |\n", best[C_PLAIN_D],
               mg_bshuf_impl_name(mg_bshuf_ctx_impl(ctx[C_PLAIN_D])), best[C_REF], best[C_PLAIN_D] / best[C_REF],
               100 * (bytes_out[C_PLAIN_D] - bytes_out[C_REF]) / bytes_out[C_REF]);
    }
    /* the transposes alone, block by block (4096 elements, as in the chunks): the reference's (with the
     * buffer it allocates per call, as its compression does) and morgul's kernels, both directions */
    typedef int64_t (*ref_trans_fn)(const void *in, void *out, size_t size, size_t elem_size);
    ref_trans_fn rt = lib ? (ref_trans_fn)dlsym(lib, "bshuf_trans_bit_elem") : NULL;
    ref_trans_fn rut = lib ? (ref_trans_fn)dlsym(lib, "bshuf_untrans_bit_elem") : NULL;
    mg_bshuf_ctx *tctx[3] = {ctx[C_SCALAR1], ctx[C_AVX2_1], ctx[C_AVX512_1]};
    double tbest[2][4] = {{0}};
    const size_t blk = 4096;
    for (rounds = 0, t_end = bench_now_s() + budget / 2; bench_now_s() < t_end || rounds < 3; rounds++)
        for (int dir2 = 0; dir2 < 2; dir2++)
            for (int k = 0; k < 4; k++) {
                if ((k == 0 && !(dir2 ? rut : rt)) || (k > 0 && !tctx[k - 1]))
                    continue;
                double t0 = bench_now_s();
                for (size_t i = 0; i < n; i++)
                    for (size_t b = 0; b + blk <= MG_MODULE_PIXELS; b += blk) {
                        const uint16_t *src = frames + i * MG_MODULE_PIXELS + b;
                        if (k == 0)
                            (dir2 ? rut : rt)(src, copy, blk, 2);
                        else if (dir2)
                            mg_bshuf_untranspose(tctx[k - 1], src, copy, blk);
                        else
                            mg_bshuf_transpose(tctx[k - 1], src, copy, blk);
                        __asm__ volatile("" ::"r"(copy) : "memory");
                    }
                double rate = (double)n * MG_MODULE_BYTES / (bench_now_s() - t0) / 1e9;
                if (rate > tbest[dir2][k])
                    tbest[dir2][k] = rate;
            }
    printf("bit transposes alone, 8 KiB blocks of the same frames (GB/s, 1 thread): reference (%s), morgul scalar, "
           "AVX2, AVX-512\n", ref_isa);
    for (int dir2 = 0; dir2 < 2; dir2++)
        printf("  %-10s %6.2f  %6.2f  %6.2f  %6.2f\n", dir2 ? "inverse" : "forward", tbest[dir2][0], tbest[dir2][1],
               tbest[dir2][2], tbest[dir2][3]);
    if (markdown)
        for (int dir2 = 0; dir2 < 2; dir2++)
            printf("| bit transpose %s, 8 KiB blocks | AVX-512 %.2f GB/s, AVX2 %.2f | reference (%s) %.2f GB/s | x%.2f "
                   "| scalar %.2f |\n", dir2 ? "inverse" : "forward", tbest[dir2][3], tbest[dir2][2], ref_isa,
                   tbest[dir2][0], tbest[dir2][0] > 0 ? tbest[dir2][3] / tbest[dir2][0] : 0, tbest[dir2][1]);
    mg_bshuf_ctx *avx = ctx[C_AVX512_D] ? ctx[C_AVX512_D] : ctx[C_AVX2_D], *sca = ctx[C_SCALAR1];
    /* decompression of the same frames, compressed once by morgul: what reading them back costs (morgul
     * correct, any reader through the plugin) */
    ref_decompress_fn unref = lib ? (ref_decompress_fn)dlsym(lib, "bshuf_decompress_lz4") : NULL;
    uint8_t *chunks = malloc(n * cap);
    size_t *clen = malloc(n * sizeof *clen);
    uint16_t *back = malloc(MG_MODULE_BYTES);
    double dbest[3] = {0};
    int ok = chunks && clen && back;
    for (size_t i = 0; ok && i < n; i++) {
        int64_t c = mg_bshuf_compress(sca, frames + i * MG_MODULE_PIXELS, MG_MODULE_PIXELS, chunks + i * cap, cap, NULL);
        ok = c > 0;
        clen[i] = (size_t)c;
    }
    const char *dnames[3] = {"reference bitshuffle (Debian plugin)", "morgul scalar",
                             avx && mg_bshuf_ctx_impl(avx) == MG_BSHUF_AVX512 ? "morgul AVX-512" : "morgul AVX2"};
    for (rounds = 0, t_end = bench_now_s() + budget; ok && (bench_now_s() < t_end || rounds < 3); rounds++)
        for (int k = 0; k < 3 && ok; k++) {
            if ((k == 0 && !unref) || (k == 2 && !avx))
                continue;
            double t0 = bench_now_s();
            for (size_t i = 0; i < n && ok; i++) {
                const uint8_t *z = chunks + i * cap;
                int64_t got = k == 0 ? unref(z + MG_BSHUF_HEADER_BYTES, back, MG_MODULE_PIXELS, 2, 0)
                                     : mg_bshuf_decompress(k == 1 ? sca : avx, z, clen[i], back, MG_MODULE_BYTES, NULL);
                /* the reference returns the compressed bytes it consumed, morgul the bytes it wrote */
                ok = got == (k == 0 ? (int64_t)(clen[i] - MG_BSHUF_HEADER_BYTES) : (int64_t)MG_MODULE_BYTES);
                if (rounds == 0)
                    ok = ok && !memcmp(back, frames + i * MG_MODULE_PIXELS, MG_MODULE_BYTES);
            }
            double rate = (double)n * MG_MODULE_BYTES / (bench_now_s() - t0) / 1e9;
            if (rate > dbest[k])
                dbest[k] = rate;
        }
    if (!ok)
        fprintf(stderr, "morgul bench compress: decompressing gave other frames than were compressed\n");
    else {
        printf("decompress: the same frames, compressed by morgul, best of %d rounds (GB/s of raw output, 1 thread)\n",
               rounds);
        for (int k = 0; k < 3; k++)
            if (dbest[k] > 0)
                printf("  %-38s %6.2f GB/s\n", dnames[k], dbest[k]);
        if (unref && avx)
            printf("  %s / reference: x%.2f; / scalar: x%.2f\n", dnames[2], dbest[2] / dbest[0], dbest[2] / dbest[1]);
        if (markdown && unref && avx)
            printf("| decompress real frames | %.2f GB/s | reference %.2f GB/s, morgul scalar %.2f | x%.2f | |\n",
                   dbest[2], dbest[0], dbest[1], dbest[2] / dbest[0]);
    }
    free(chunks);
    free(clen);
    free(back);
    for (int k = 0; k < C_COUNT; k++)
        mg_bshuf_ctx_free(ctx[k]);
    free(out);
    free(copy);
    free(frames);
    if (lib)
        dlclose(lib);
    return 0;
}

/* Touches and frees `gb` GiB so a virtual machine whose memory the host backs
 * lazily has real pages behind it before anything is timed; on such a machine
 * the first use of a page costs more than the work measured (seen here:
 * writing to tmpfs at 0.3 GB/s instead of 2.2 GB/s).  A real server does not
 * need it; it changes no result there. */
void bench_warm_memory(int gb)
{
    for (int i = 0; i < gb; i++) {
        size_t n = (size_t)1 << 30;
        char *p = malloc(n);
        if (!p)
            return;
        memset(p, 1, n);
        __asm__ volatile("" ::"r"(p) : "memory");
        free(p);
    }
}

/* A scratch directory for captures and outputs under `base` (a tmpfs). */
int bench_scratch_dir(const char *base, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s/morgul-bench-%d", base, (int)getpid());
    if (mkdir(dir, 0700) && errno != EEXIST) {
        fprintf(stderr, "morgul bench: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

void bench_remove_prefix(const char *prefix)
{
    char pat[1100];
    snprintf(pat, sizeof pat, "%s*", prefix);
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            unlink(g.gl_pathv[i]);
        globfree(&g);
    }
}

/* The raw frame files in `dir` as the comma-separated list `morgul simulate
 * --frames-file` takes; empty if there are none. */
void bench_frame_file_list(const char *dir, char *files, size_t cap)
{
    char pat[1024];
    files[0] = 0;
    snprintf(pat, sizeof pat, "%s/*raw*.bin", dir);
    glob_t g;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++)
            snprintf(files + strlen(files), cap - strlen(files), "%s%s", i ? "," : "", g.gl_pathv[i]);
        globfree(&g);
    }
}

/* Builds a capture of `frames` frames of `nmod` modules from real frames
 * (or photons when there are none). */
int bench_make_capture(const char *path, int nmod, uint64_t frames, const char *frames_dir, mg_detector *det)
{
    mg_error e = {0};
    if (mg_detector_simple(det, "bench", nmod, 1, "127.0.0.1", 50001, NULL, &e))
        return fprintf(stderr, "%s\n", e.message), -1;
    char files[8192];
    bench_frame_file_list(frames_dir, files, sizeof files);
    mg_sim_config sc = {.det = det, .content = files[0] ? MG_SIM_FRAMES : MG_SIM_PHOTONS, .frames = frames,
                        .first_frame = 1, .frame_files = files, .seed = 1, .pcap_path = path, .overwrite = 1};
    if (mg_simulate(&sc, NULL, &e))
        return fprintf(stderr, "morgul bench: making the capture failed: %s\n", e.message), -1;
    return 0;
}

/* One replay of the capture through the whole path; returns module-frames/s
 * (0 on failure).  `out` NULL: no files; `cal`: inline correction to int16
 * photons at 12.4 keV. */
double bench_replay_pass(const mg_detector *det, const char *cap, const char *out, int loops, const char *cal,
                         const mg_run_config *hooks, mg_run_summary *sum)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (out)
        bench_remove_prefix(out);
    mg_run_config rc;
    memset(&rc, 0, sizeof rc);
    rc.det = *det;
    rc.check_position = 1;
    rc.output = out;
    rc.overwrite = 1;
    rc.workers = ncpu > 1 ? (int)ncpu : 1;
    rc.quiet = 1;
    rc.pcap = cap;
    rc.loops = loops;
    rc.log = stderr;
    rc.calibration = cal;
    rc.energy_kev = 12.4;
    mg_geometry_defaults(&rc.geometry);
    rc.beam_x = rc.beam_y = NAN;
    if (hooks) {
        rc.no_compress = hooks->no_compress;
        rc.on_images = hooks->on_images;
        rc.written = hooks->written;
        rc.written_ctx = hooks->written_ctx;
    }
    mg_error e = {0};
    memset(sum, 0, sizeof *sum);
    if (mg_run_replay(&rc, sum, &e)) {
        fprintf(stderr, "morgul bench replay: %s\n", e.message);
        return 0;
    }
    return (double)(sum->frames.frames_complete + sum->frames.frames_partial) * det->nmodules / sum->seconds;
}

/* A calibration file at `path` for det's modules (up to 2) from the PSI pedestals and gain map in
 * frames_dir; 0, or -1 when they are not there. */
int bench_make_calibration(const char *frames_dir, const char *path, const mg_detector *det)
{
    mg_calibration cb;
    mg_calib_init(&cb);
    int have_cal = 1;
    for (int m = 0; m < det->nmodules && have_cal; m++) {
        mg_module_calib *x = mg_calib_module(&cb, det->modules[m].name, det->modules[m].row, 0);
        x->pedestal = malloc(3 * (size_t)MG_MODULE_PIXELS * sizeof(float));
        x->gain = malloc(3 * (size_t)MG_MODULE_PIXELS * sizeof(double));
        char p[1200];
        mg_error e = {0};
        for (int g = 0; g < 3 && have_cal; g++) {
            snprintf(p, sizeof p, "%s/mod5_pedeG%d.bin", frames_dir, g);
            have_cal = !mg_plane_read_f32(p, x->pedestal + (size_t)g * MG_MODULE_PIXELS, &e);
        }
        snprintf(p, sizeof p, "%s/gainmap_mod5_derived.bin", frames_dir);
        have_cal = have_cal && !mg_gainmap_read_bin(p, x->gain, &e);
    }
    if (have_cal)
        have_cal = !mg_calib_write(path, &cb, NULL);
    mg_calib_free(&cb);
    return have_cal ? 0 : -1;
}

static int bench_replay(const char *frames_dir, const char *base, int loops, int warm_gb, int markdown)
{
    char dir[256], cap[512], out[512];
    if (bench_scratch_dir(base, dir, sizeof dir))
        return 1;
    snprintf(cap, sizeof cap, "%s/replay.pcap", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    mg_detector det;
    const uint64_t frames = 1000;
    bench_warm_memory(warm_gb);
    if (bench_make_capture(cap, 2, frames, frames_dir, &det))
        return 1;
    /* baseline: the same capture read alone, every payload copied once (what assembly must do at least) */
    double best_read = 0;
    uint8_t *scratch = malloc(MG_LEGACY_PACKET_BYTES);
    for (int pass = 0; pass < 3; pass++) {
        mg_error e = {0};
        mg_capture *c = mg_capture_open(cap, &e);
        double t0 = bench_now_s();
        const uint8_t *pl;
        size_t len;
        uint16_t port;
        uint64_t ts, packets = 0;
        for (int l = 0; l < loops; l++) {
            while (mg_capture_next(c, &pl, &len, &port, &ts, &e) == 1) {
                memcpy(scratch, pl, len < MG_LEGACY_PACKET_BYTES ? len : MG_LEGACY_PACKET_BYTES);
                __asm__ volatile("" ::"r"(scratch) : "memory");
                packets++;
            }
            mg_capture_close(c);
            c = l + 1 < loops ? mg_capture_open(cap, &e) : NULL;
        }
        double rate = (double)packets / 128 / (bench_now_s() - t0);
        if (rate > best_read)
            best_read = rate;
    }
    free(scratch);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    double best[2] = {0, 0}, first = 0;
    mg_run_summary sum;
    /* pass 0-2 write files, 3-4 do not: the difference is what tmpfs costs */
    for (int pass = 0; pass < 5; pass++) {
        int write = pass < 3;
        mg_run_summary s1;
        double mf = bench_replay_pass(&det, cap, write ? out : NULL, loops, NULL, NULL, &s1);
        if (mf <= 0)
            return 1;
        if (write)
            sum = s1;
        if (pass == 0)
            first = mf;
        if (mf > best[!write])
            best[!write] = mf;
    }
    /* inline correction of the same capture: a calibration from the PSI pedestals and gain map for both
     * modules, converted to int16 photons at 12.4 keV, laid out and written as NXmx */
    double best_corr = 0;
    char cal[600];
    snprintf(cal, sizeof cal, "%s/calibration.h5", dir);
    int have_cal = !bench_make_calibration(frames_dir, cal, &det);
    /* offline: the raw files of the last pass with files corrected by `morgul correct`, one thread and one
     * per core, alternating (the first run after the replay meets memory the VM has not backed yet) */
    double corr_mf[2] = {0, 0};
    char corr_out[600], th[16];
    snprintf(corr_out, sizeof corr_out, "%s/offline", dir);
    for (int round = 0; round < 4 && have_cal; round++) { /* alternating, best of 2 each */
        const int k = round & 1;
        char master[700];
        snprintf(master, sizeof master, "%s_master.h5", out);
        snprintf(th, sizeof th, "%ld", k ? ncpu : 1L);
        char *av[] = {"correct", master, "-c", cal, "--energy", "12.4", "-o", corr_out, "--threads", th,
                      "--overwrite", NULL};
        fflush(stdout);
        double t0 = bench_now_s();
        int bad = mg_cmd_correct(11, av);
        double mf = bad ? 0 : (double)sum.frames_written * 2 / (bench_now_s() - t0);
        if (mf > corr_mf[k])
            corr_mf[k] = mf;
        bench_remove_prefix(corr_out);
    }
    for (int pass = 0; pass < 3 && have_cal; pass++) {
        mg_run_summary s1;
        double mf = bench_replay_pass(&det, cap, out, loops, cal, NULL, &s1);
        if (mf > best_corr)
            best_corr = mf;
    }
    unlink(cal);
    /* the kernel's side of writing: the same bytes in the same pieces to a new tmpfs file */
    double best_wr = 0;
    size_t piece = (size_t)(sum.bytes_compressed / (sum.frames_written ? sum.frames_written : 1));
    uint8_t *buf = malloc(piece ? piece : 1);
    if (buf && piece) {
        memset(buf, 7, piece);
        for (int pass = 0; pass < 3; pass++) {
            char path[600];
            snprintf(path, sizeof path, "%s/write-alone.bin", dir);
            FILE *f = fopen(path, "wb");
            double t0 = bench_now_s();
            for (uint64_t i = 0; f && i < sum.frames_written; i++)
                if (fwrite(buf, 1, piece, f) != piece)
                    break;
            if (f)
                fclose(f);
            double mf = (double)sum.frames_written * 2 / (bench_now_s() - t0);
            if (mf > best_wr)
                best_wr = mf;
            unlink(path);
        }
    }
    free(buf);
    bench_remove_prefix(out);
    unlink(cap);
    rmdir(dir);
    printf("replay: 2-module capture of %llu frames x %d loop(s) from %s frames, raw to tmpfs, %ld workers\n",
           (unsigned long long)frames, loops, frames_dir, ncpu);
    printf("  morgul replay: assemble + compress + write  %8.0f module-frames/s (best of 3; first pass %.0f)\n",
           best[0], first);
    printf("  morgul replay: assemble + compress only     %8.0f module-frames/s (no files)\n", best[1]);
    printf("  morgul replay: convert + lay out + compress + write NXmx  %8.0f module-frames/s (int16 photons)\n",
           best_corr);
    printf("  morgul correct of the raw files (offline)   %8.0f module-frames/s with %ld threads, %.0f with 1 "
           "(x%.2f)\n",
           corr_mf[1], ncpu, corr_mf[0], corr_mf[0] > 0 ? corr_mf[1] / corr_mf[0] : 0);
    printf("  capture read alone (baseline)               %8.0f module-frames/s\n", best_read);
    printf("  writing the compressed bytes alone (tmpfs)  %8.0f module-frames/s\n", best_wr);
    printf("  ratios to reading alone: %.2f with files, %.2f without; compression ratio %.2f\n", best[0] / best_read,
           best[1] / best_read, sum.bytes_compressed ? (double)sum.bytes_raw / (double)sum.bytes_compressed : 0);
    if (markdown) {
        printf("| replay 2 modules to tmpfs | %.0f module-frames/s | capture read alone %.0f | x%.2f | |\n", best[0],
               best_read, best[0] / best_read);
        printf("| replay 2 modules, no files | %.0f module-frames/s | capture read alone %.0f | x%.2f | |\n", best[1],
               best_read, best[1] / best_read);
        printf("| writing the same bytes to tmpfs, nothing else | %.0f module-frames/s | | | |\n", best_wr);
        printf("| replay 2 modules, corrected to int16 NXmx on tmpfs | %.0f module-frames/s | capture read alone %.0f | x%.2f | |\n",
               best_corr, best_read, best_corr / best_read);
        printf("| morgul correct of the raw files, %ld threads | %.0f module-frames/s | 1 thread %.0f | x%.2f | |\n", ncpu,
               corr_mf[1], corr_mf[0], corr_mf[0] > 0 ? corr_mf[1] / corr_mf[0] : 0);
    }
    return 0;
}



static uint64_t field_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : UINT64_MAX;
}

/* One trial: a receiver process (this binary) and the simulator here. */
int bench_loopback_trial(const char *self, int nmod, uint64_t frames, double rate, const char *files, int write,
                          const char *dir, int port, lb_result *res)
{
    memset(res, 0, sizeof *res);
    char out[600], nm[16], np[16], nf[32];
    snprintf(out, sizeof out, "%s/lb", dir);
    snprintf(nm, sizeof nm, "%d", nmod);
    snprintf(np, sizeof np, "%d", port);
    snprintf(nf, sizeof nf, "%llu", (unsigned long long)frames);
    int pipefd[2];
    if (pipe(pipefd))
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        close(pipefd[1]);
        if (write)
            execl(self, self, "receive", "--modules", nm, "--port", np, "-n", nf, "--idle-timeout", "2", "-o", out,
                  "--overwrite", (char *)NULL);
        else
            execl(self, self, "receive", "--modules", nm, "--port", np, "-n", nf, "--idle-timeout", "2",
                  "--no-write", (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    FILE *f = fdopen(pipefd[0], "r");
    char line[1024];
    size_t cap = 1 << 16, used = 0;
    char *text = calloc(1, cap);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "receiving on", 12))
            break;
    mg_detector det;
    mg_detector_simple(&det, "bench", nmod, 1, "127.0.0.1", port, NULL, NULL);
    mg_sim_config sc = {.det = &det, .content = files[0] ? MG_SIM_FRAMES : MG_SIM_PATTERN, .frames = frames,
                        .first_frame = 1, .frame_files = files, .seed = 1, .rate = rate};
    mg_sim_stats st;
    mg_error e = {0};
    int rc = mg_simulate(&sc, &st, &e);
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (used + n + 1 < cap) {
            memcpy(text + used, line, n + 1);
            used += n;
        }
    }
    fclose(f);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    res->send_fps = st.seconds > 0 ? (double)st.frames / st.seconds : 0;
    res->send_gbps = st.seconds > 0 ? (double)st.bytes / st.seconds / 1e9 : 0;
    res->rx_cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                  (double)ru.ru_stime.tv_usec / 1e6;
    res->rx_wall = st.seconds;
    res->received = field_after(text, "received ");
    res->lost = field_after(text, "  lost ");
    res->kdrops = field_after(text, "kernel drops ");
    /* exit status 3 (data lost) is a result here, measured in `lost` */
    res->ok = !rc && WIFEXITED(status) && (WEXITSTATUS(status) == MG_EXIT_OK || WEXITSTATUS(status) == MG_EXIT_LOSS) &&
              res->lost != UINT64_MAX;
    if (!res->ok)
        fprintf(stderr, "loopback trial failed (sender: %s; receiver status %d):\n%s\n", rc ? e.message : "ok",
                status, text);
    free(text);
    if (write)
        bench_remove_prefix(out);
    return res->ok ? 0 : -1;
}

static int bench_loopback(const char *frames_dir, const char *base, int nmod, int warm_gb, int markdown)
{
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = 0;
    char dir[256];
    if (bench_scratch_dir(base, dir, sizeof dir))
        return 1;
    char files[8192];
    bench_frame_file_list(frames_dir, files, sizeof files);
    const uint64_t frames = 2000;
    bench_warm_memory(warm_gb);
    int port = 47000 + (int)(getpid() % 1000) * 8;
    printf("loopback: simulate (this process, one core) -> receive (another process) over UDP on 127.0.0.1,\n"
           "  %d module(s) x 1 interface, %llu frames per trial, %s content\n", nmod, (unsigned long long)frames,
           files[0] ? "real frames" : "pattern");
    for (int write = 0; write <= 1; write++) {
        lb_result r;
        /* the sender's top speed first, then lower rates until nothing is lost */
        if (bench_loopback_trial(self, nmod, frames, 0, files, write, dir, port, &r))
            return 1;
        double top = r.send_fps;
        printf("  %s: sender top rate %.0f frames/s (%.2f GB/s): received %llu, lost %llu (kernel drops %llu), "
               "receiver CPU %.0f%% of one core\n",
               write ? "receive + compress + write to tmpfs" : "receive alone (--no-write), no compression", top,
               r.send_gbps,
               (unsigned long long)r.received, (unsigned long long)r.lost, (unsigned long long)r.kdrops,
               100 * r.rx_cpu / r.rx_wall);
        double best = r.lost == 0 ? top : 0;
        lb_result at = r;
        for (double f = 0.9; best == 0 && f > 0.05; f -= 0.1) {
            port += 8;
            if (bench_loopback_trial(self, nmod, frames, top * f, files, write, dir, port, &r))
                return 1;
            if (r.lost == 0) {
                best = r.send_fps;
                at = r;
            }
        }
        printf("    highest rate without loss: %.0f frames/s (%.2f GB/s), receiver CPU %.0f%% of one core\n", best,
               at.send_gbps, 100 * at.rx_cpu / at.rx_wall);
        if (markdown)
            printf("| loopback %s | %.0f frames/s lossless | sender top %.0f frames/s | x%.2f | receiver CPU %.0f %% |\n",
                   write ? "with writing" : "receiving alone", best, top, best / top, 100 * at.rx_cpu / at.rx_wall);
        port += 8;
    }
    rmdir(dir);
    return 0;
}

/* Conversion of the real frames to int16 photons: AVX2 vs the scalar
 * reference vs a plain memcpy of the same raw frames (read + write), on two
 * working sets: the real frames alone (10 of 1 MiB stay in the last-level
 * cache, where memcpy is fastest) and the same frames repeated to 256 MiB
 * (each read once per pass, as frames are in a run). */
enum { CV_MEMCPY, CV_SCALAR, CV_AVX2, CV_ARITH, CV_TOUCH, CV_KINDS };

/* The G0 loop's reads and writes without its arithmetic: per 16 pixels the
 * raw words, 64 bytes of G0 offsets and factors and the output, xor'ed
 * together.  No conversion of these tables can be faster than this; its
 * ratio to memcpy is the bound the table size sets (called only where AVX2
 * is there). */
__attribute__((target("avx2"))) static void touch_g0(const mg_conv_tables *t, const uint16_t *raw, int16_t *out)
{
    const float *o = t->offset[0], *f = t->factor[0];
    for (size_t i = 0; i < MG_MODULE_PIXELS; i += 16) {
        __m256i x = _mm256_xor_si256(_mm256_castps_si256(_mm256_loadu_ps(o + i)),
                                     _mm256_castps_si256(_mm256_loadu_ps(o + i + 8)));
        __m256i y = _mm256_xor_si256(_mm256_castps_si256(_mm256_loadu_ps(f + i)),
                                     _mm256_castps_si256(_mm256_loadu_ps(f + i + 8)));
        x = _mm256_xor_si256(_mm256_xor_si256(x, y), _mm256_loadu_si256((const __m256i *)(raw + i)));
        _mm256_storeu_si256((__m256i *)(out + i), x);
    }
}

static void convert_pass(int kind, const mg_conv_tables *t, const uint16_t *frames, size_t n, int16_t *out)
{
    for (size_t i = 0; i < n; i++) {
        const uint16_t *fr = frames + i * MG_MODULE_PIXELS;
        if (kind == CV_MEMCPY)
            memcpy(out, fr, MG_MODULE_BYTES);
        else if (kind == CV_TOUCH)
            touch_g0(t, fr, out);
        else if (kind == CV_SCALAR || kind == CV_AVX2)
            mg_convert(t, 0, MG_MODULE_PIXELS, fr, out, MG_OUT_INT16, kind == CV_SCALAR ? MG_CONV_SCALAR : MG_CONV_AVX2);
        else /* the arithmetic alone: 1024 pixels converted 8 times in a row, their tables (8 KiB), raw words
                * and output in the first-level cache */
            for (size_t b = 0; b < MG_MODULE_PIXELS; b += 1024)
                for (int rep = 0; rep < 8; rep++)
                    mg_convert(t, b, 1024, fr + b, out + b, MG_OUT_INT16, MG_CONV_AVX2);
        __asm__ volatile("" ::"r"(out) : "memory");
    }
}

static int bench_convert(const char *dir, double secs, int markdown)
{
    size_t n = 0;
    uint16_t *frames = bench_load_frames(dir, &n);
    float *ped[3];
    double *gain = malloc(3 * (size_t)MG_MODULE_PIXELS * sizeof(double));
    char path[1200];
    int ok = n > 0 && gain;
    for (int g = 0; g < 3; g++) {
        ped[g] = malloc((size_t)MG_MODULE_PIXELS * sizeof(float));
        snprintf(path, sizeof path, "%s/mod5_pedeG%d.bin", dir, g);
        FILE *f = ped[g] ? fopen(path, "rb") : NULL;
        ok &= f && fread(ped[g], sizeof(float), MG_MODULE_PIXELS, f) == MG_MODULE_PIXELS;
        if (f)
            fclose(f);
    }
    snprintf(path, sizeof path, "%s/gainmap_mod5_derived.bin", dir);
    FILE *f = fopen(path, "rb");
    ok &= f && fread(gain, sizeof(double), 3 * (size_t)MG_MODULE_PIXELS, f) == 3 * (size_t)MG_MODULE_PIXELS;
    if (f)
        fclose(f);
    /* frames and output in page-aligned memory, as the pipeline's buffers
     * are (mg_numa_alloc): glibc's memcpy runs at 0.5-0.9 times its speed
     * in cache on malloc's buffers, 16 bytes past a page start */
    const size_t nbig = 256; /* 256 MiB: far beyond any last-level cache */
    uint16_t *small = ok ? mg_numa_alloc(NULL, n * MG_MODULE_BYTES, -1) : NULL;
    uint16_t *strong = ok ? mg_numa_alloc(NULL, n * MG_MODULE_BYTES, -1) : NULL;
    uint16_t *big = ok ? mg_numa_alloc(NULL, nbig * MG_MODULE_BYTES, -1) : NULL;
    int16_t *out = mg_numa_alloc(NULL, MG_MODULE_BYTES, -1);
    if (!ok || !small || !strong || !big || !out) {
        fprintf(stderr, "morgul bench convert: needs the raw frames, mod5_pedeG{0,1,2}.bin and "
                        "gainmap_mod5_derived.bin in %s (and 270 MiB of memory)\n", dir);
        free(frames);
        free(gain);
        mg_numa_free(NULL, small, n * MG_MODULE_BYTES);
        mg_numa_free(NULL, strong, n * MG_MODULE_BYTES);
        mg_numa_free(NULL, big, nbig * MG_MODULE_BYTES);
        for (int g = 0; g < 3; g++)
            free(ped[g]);
        mg_numa_free(NULL, out, MG_MODULE_BYTES);
        return 1;
    }
    memcpy(small, frames, n * MG_MODULE_BYTES);
    /* a strong signal: 5 % of the pixels, scattered, switched to G1 (their ADC
     * value kept; 0 would be the invalid word 0x4000) */
    uint64_t x = 1;
    for (size_t i = 0; i < n * MG_MODULE_PIXELS; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        strong[i] = small[i];
        if ((x >> 33) % 100 < 5 && (small[i] & 0x3FFF))
            strong[i] = (uint16_t)((small[i] & 0x3FFF) | 0x4000);
    }
    for (size_t i = 0; i < nbig; i++)
        memcpy(big + i * MG_MODULE_PIXELS, frames + i % n * MG_MODULE_PIXELS, MG_MODULE_BYTES);
    const float *pp[3] = {ped[0], ped[1], ped[2]};
    const double *gp[3] = {gain, gain + MG_MODULE_PIXELS, gain + 2 * (size_t)MG_MODULE_PIXELS};
    mg_conv_tables *t = mg_conv_tables_new(MG_MODULE_PIXELS, pp, gp, NULL, 12.4, NULL, -1, NULL);
    const int avx = mg_conv_best() == MG_CONV_AVX2;
    /* [0]: the real frames (in cache), [1]: 256 MiB of them (streamed), [2]: with a strong signal */
    double best[3][CV_KINDS] = {{0}};
    double t_end = bench_now_s() + secs;
    int rounds = 0;
    while (bench_now_s() < t_end || rounds < 3) {
        for (int set = 0; set < 3; set++)
            for (int k = 0; k < CV_KINDS; k++) {
                if ((k >= CV_AVX2 && !avx) || (set == 1 && (k == CV_SCALAR || k == CV_ARITH)) ||
                    (set == 2 && (k == CV_MEMCPY || k == CV_ARITH || k == CV_TOUCH)))
                    continue;
                const uint16_t *fr = set == 2 ? strong : set ? big : small;
                size_t nf = set == 1 ? nbig : n;
                /* each contender's first pass warms the caches for it (the one before has filled them with
                 * its own data); the second is timed: the steady state of a worker converting frame after
                 * frame */
                convert_pass(k, t, fr, nf, out);
                double t0 = bench_now_s();
                convert_pass(k, t, fr, nf, out);
                double rate = (double)nf * (k == CV_ARITH ? 8 : 1) / (bench_now_s() - t0);
                if (rate > best[set][k])
                    best[set][k] = rate;
            }
        rounds++;
    }
    const char *names[CV_KINDS] = {"memcpy of the raw frames (baseline)", "scalar reference", "AVX2",
                                   "AVX2, arithmetic alone (all in L1)", "G0 table reads + raw + output alone"};
    printf("convert: real frames to int16 photons at 12.4 keV, best of %d rounds, 1 thread\n", rounds);
    for (int set = 0; set < 2; set++) {
        if (set)
            printf("  the same frames repeated to %zu MiB (streamed from memory, as in a run):\n", nbig);
        else
            printf("  the %zu real frames (%zu MiB, in cache if it holds them):\n", n, n);
        for (int k = 0; k < CV_KINDS; k++)
            if (best[set][k] > 0)
                printf("    %-42s %8.0f module-frames/s\n", names[k], best[set][k]);
        if (avx) {
            printf("    memcpy is %.2fx faster than AVX2, %.2fx faster than the G0 loop's reads and writes alone "
                   "(AVX2 is %.2fx slower than those)\n",
                   best[set][CV_MEMCPY] / best[set][CV_AVX2], best[set][CV_MEMCPY] / best[set][CV_TOUCH],
                   best[set][CV_TOUCH] / best[set][CV_AVX2]);
            /* a G0 pixel's table entries (offset and factor, float32) are read with its raw word */
            printf("    bytes moved: AVX2 %.1f GB/s (raw word, G0 table entries, output: 12 B/pixel), "
                   "memcpy %.1f GB/s (4 B/pixel)\n",
                   best[set][CV_AVX2] * MG_MODULE_PIXELS * 12 / 1e9, best[set][CV_MEMCPY] * MG_MODULE_PIXELS * 4 / 1e9);
        }
    }
    if (avx)
        printf("  AVX2 / scalar: x%.2f; memcpy is %.2fx faster than the arithmetic alone\n",
               best[0][CV_AVX2] / best[0][CV_SCALAR], best[0][CV_MEMCPY] / best[0][CV_ARITH]);
    /* the other output types, AVX2, the real frames in cache */
    double wide[2] = {0, 0};
    void *out32 = avx ? mg_numa_alloc(NULL, 2 * MG_MODULE_BYTES, -1) : NULL;
    for (int r = 0; out32 && r < 3 * rounds; r++)
        for (int k = 0; k < 2; k++) {
            const mg_out_type type = k ? MG_OUT_FLOAT32 : MG_OUT_INT32;
            double t0 = bench_now_s();
            for (size_t i = 0; i < n; i++)
                mg_convert(t, 0, MG_MODULE_PIXELS, small + i * MG_MODULE_PIXELS, out32, type, MG_CONV_AVX2);
            double rate = (double)n / (bench_now_s() - t0);
            wide[k] = rate > wide[k] ? rate : wide[k];
        }
    mg_numa_free(NULL, out32, 2 * MG_MODULE_BYTES);
    if (avx)
        printf("  AVX2 to int32 %.0f, to float32 %.0f module-frames/s (the real frames, in cache)\n", wide[0], wide[1]);
    printf("  the real frames with 5 %% of their pixels switched to G1, scattered (a strong signal):\n");
    for (int k = CV_SCALAR; k <= CV_AVX2; k++)
        if (best[2][k] > 0)
            printf("    %-42s %8.0f module-frames/s\n", names[k], best[2][k]);
    if (avx)
        printf("    AVX2 / scalar: x%.2f; %.2f of the rate on the real frames\n", best[2][CV_AVX2] / best[2][CV_SCALAR],
               best[2][CV_AVX2] / best[0][CV_AVX2]);
    if (markdown && avx) {
        for (int set = 0; set < 2; set++)
            printf("| convert real frames to int16, %s (%zu frames) | AVX2 %.0f module-frames/s | memcpy %.0f; "
                   "G0 table reads + raw + output alone %.0f | memcpy/AVX2 %.2f; memcpy/reads-and-writes-alone %.2f |\n",
                   set ? "streamed" : "in cache", set ? nbig : n, best[set][CV_AVX2], best[set][CV_MEMCPY],
                   best[set][CV_TOUCH], best[set][CV_MEMCPY] / best[set][CV_AVX2],
                   best[set][CV_MEMCPY] / best[set][CV_TOUCH]);
        printf("| convert: AVX2 vs scalar, arithmetic alone | scalar %.0f, arithmetic alone (L1) %.0f | | x%.2f; "
               "memcpy/arithmetic %.2f |\n",
               best[0][CV_SCALAR], best[0][CV_ARITH], best[0][CV_AVX2] / best[0][CV_SCALAR],
               best[0][CV_MEMCPY] / best[0][CV_ARITH]);
        printf("| convert real frames to int32 / float32, in cache | AVX2 %.0f / %.0f module-frames/s | | |\n", wide[0],
               wide[1]);
        printf("| convert real frames to int16, 5 %% of the pixels switched to G1 | AVX2 %.0f module-frames/s | "
               "scalar %.0f | x%.2f; %.2f of the real frames' rate |\n",
               best[2][CV_AVX2], best[2][CV_SCALAR], best[2][CV_AVX2] / best[2][CV_SCALAR],
               best[2][CV_AVX2] / best[0][CV_AVX2]);
    }
    mg_conv_tables_free(t);
    mg_numa_free(NULL, out, MG_MODULE_BYTES);
    mg_numa_free(NULL, big, nbig * MG_MODULE_BYTES);
    mg_numa_free(NULL, small, n * MG_MODULE_BYTES);
    mg_numa_free(NULL, strong, n * MG_MODULE_BYTES);
    free(frames);
    free(gain);
    for (int g = 0; g < 3; g++)
        free(ped[g]);
    return 0;
}

static int bench_pedestal(const char *dir, double secs, int markdown)
{
    enum { NF = 32 };
    const size_t P = MG_MODULE_PIXELS;
    uint16_t *frames = malloc(NF * P * sizeof(uint16_t)), *copy = malloc(P * sizeof(uint16_t));
    float *ped = malloc(P * sizeof(float)), *rms = malloc(P * sizeof(float));
    if (!frames || !copy || !ped || !rms)
        return 1;
    char path[1200];
    mg_error e = {0};
    snprintf(path, sizeof path, "%s/mod5_pedeG0.bin", dir);
    int real = !mg_plane_read_f32(path, ped, &e);
    snprintf(path, sizeof path, "%s/mod5_pedeG0_RMS.bin", dir);
    real = real && !mg_plane_read_f32(path, rms, &e);
    uint64_t r = 12345;
    for (size_t i = 0; i < NF * P; i++) {
        size_t p = i % P;
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        double u = ((double)(r >> 11) / 9007199254740992.0 - 0.5) * 3.4641; /* unit variance */
        double v = real ? ped[p] + rms[p] * u : 2500 + 20 * u;
        frames[i] = (uint16_t)(v < 0 ? 0 : v > 16383 ? 16383 : v);
    }
    enum { CELLS = 16, NC = CELLS * MG_PEDESTAL_BATCH };
    const char *names[4] = {"memcpy of the frames (baseline)", "scalar", "AVX2", "AVX2, 16 storage cells"};
    double best[4] = {0};
    mg_pedestal_acc *acc[3] = {NULL, mg_pedestal_acc_new(P, MG_PED_SCALAR, &e),
                               mg_cpu_has_avx2() ? mg_pedestal_acc_new(P, MG_PED_AVX2, &e) : NULL};
    mg_pedestal_acc *cell[CELLS] = {0};
    int cells_ok = acc[2] != NULL;
    for (int c = 0; c < CELLS && cells_ok; c++)
        cells_ok = (cell[c] = mg_pedestal_acc_new(P, MG_PED_AVX2, &e)) != NULL;
    double t_end = bench_now_s() + secs;
    int rounds = 0;
    while (bench_now_s() < t_end || rounds < 3) {
        for (int k = 0; k < 3; k++) {
            if (k && !acc[k])
                continue;
            double t0 = bench_now_s();
            for (int f = 0; f < NF; f++) {
                if (k == 0)
                    memcpy(copy, frames + (size_t)f * P, P * sizeof(uint16_t));
                else
                    mg_pedestal_add(acc[k], frames + (size_t)f * P, 0);
                __asm__ volatile("" ::"r"(copy) : "memory");
            }
            if (k)
                mg_pedestal_flush(acc[k]);
            double rate = NF / (bench_now_s() - t0);
            if (rate > best[k])
                best[k] = rate;
        }
        if (cells_ok) { /* frame f of the run to cell f mod 16, as a burst-mode dark run deals them */
            double t0 = bench_now_s();
            for (int f = 0; f < NC; f++)
                mg_pedestal_add(cell[f % CELLS], frames + (size_t)(f % NF) * P, 0);
            double rate = NC / (bench_now_s() - t0);
            if (rate > best[3])
                best[3] = rate;
        }
        rounds++;
    }
    printf("pedestal: %d dark frames (%s), accumulated per gain, best of %d rounds, 1 thread\n", NF,
           real ? "PSI G0 pedestals and noise" : "synthetic", rounds);
    for (int k = 0; k < 4; k++)
        if (best[k] > 0)
            printf("  %-38s %8.0f module-frames/s\n", names[k], best[k]);
    if (best[2] > 0) {
        printf("  AVX2 / scalar: x%.2f; memcpy is %.2fx faster than AVX2\n", best[2] / best[1], best[0] / best[2]);
        if (best[3] > 0)
            printf("  16 storage cells / one: x%.2f\n", best[3] / best[2]);
        if (markdown)
            printf("| pedestal accumulation, 1 thread | %.0f module-frames/s | scalar %.0f, memcpy %.0f | x%.2f over "
                   "scalar | target 4000 |\n", best[2], best[1], best[0], best[2] / best[1]);
        if (markdown && best[3] > 0)
            printf("| same, 16 storage cells (frame k to cell k mod 16) | %.0f module-frames/s | one cell %.0f | "
                   "x%.2f | |\n", best[3], best[2], best[3] / best[2]);
    }
    mg_pedestal_acc_free(acc[1]);
    mg_pedestal_acc_free(acc[2]);
    for (int c = 0; c < CELLS; c++)
        mg_pedestal_acc_free(cell[c]);
    free(frames), free(copy), free(ped), free(rms);
    return 0;
}

static int bench_usage(FILE *out)
{
    fprintf(out, "usage: morgul bench [compress|convert|pedestal|replay|loopback|service|all|profile] [options]\n\n"
                 "  profile: the CPU time of every stage per module-frame on this machine, saved for morgul plan\n"
                 "  --profile-out FILE where profile saves it (default $MORGUL_PROFILE, else\n"
                 "                     $XDG_CONFIG_HOME/morgul/profile.json, else ~/.config/morgul/profile.json)\n"
                 "  --frames-dir DIR   real raw frames (default ../shared/data/psi-mod5)\n"
                 "  --seconds S        time per measurement (default 3)\n"
                 "  --reference FILE   reference bitshuffle library (default " REFERENCE_PLUGIN ")\n"
                 "  --loops N          replay: passes over the 1000-frame capture (default 3: a run's start-up,\n"
                 "                     0.2 s with correction, is then a twentieth of it)\n"
                 "  --modules N        loopback: modules of the simulated detector (default 1)\n"
                 "  --warm-memory GB   touch this much memory before timing (default 8; see docs/performance.md)\n"
                 "  --scratch DIR      where captures and outputs go (default /dev/shm; a tmpfs)\n"
                 "  --markdown         also print table rows for docs/performance.md\n");
    return 0;
}

int mg_cmd_bench(int argc, char **argv)
{
    static struct option opts[] = {{"frames-dir", required_argument, 0, 'd'}, {"seconds", required_argument, 0, 's'},
                                   {"reference", required_argument, 0, 'r'}, {"markdown", no_argument, 0, 'm'},
                                   {"loops", required_argument, 0, 'l'}, {"modules", required_argument, 0, 'M'},
                                   {"warm-memory", required_argument, 0, 'W'}, {"scratch", required_argument, 0, 'S'},
                                   {"profile-out", required_argument, 0, 'P'},
                                   {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *dir = "../shared/data/psi-mod5", *ref = REFERENCE_PLUGIN, *base = "/dev/shm", *profile_out = NULL;
    double secs = 3;
    int md = 0, c, loops = 3, nmod = 1, warm = 8;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 's':
            if (mg_opt_double("bench", "--seconds", optarg, 0.1, 3600, &secs))
                return 2;
            break;
        case 'r': ref = optarg; break;
        case 'S': base = optarg; break;
        case 'P': profile_out = optarg; break;
        case 'm': md = 1; break;
        case 'l':
            if (mg_opt_int("bench", "--loops", optarg, 1, 100000, &loops))
                return 2;
            break;
        case 'M':
            if (mg_opt_int("bench", "--modules", optarg, 1, 8, &nmod))
                return 2;
            break;
        case 'W':
            if (mg_opt_int("bench", "--warm-memory", optarg, 0, 1024, &warm))
                return 2;
            break;
        case 'h': return bench_usage(stdout);
        default: return 2;
        }
    }
    const char *what = optind < argc ? argv[optind] : "all";
    int rc = 0;
    if (!strcmp(what, "compress") || !strcmp(what, "all"))
        rc |= bench_compress(dir, (int)(secs * 10), ref, md);
    if (!strcmp(what, "convert") || !strcmp(what, "all"))
        rc |= bench_convert(dir, secs, md);
    if (!strcmp(what, "pedestal") || !strcmp(what, "all"))
        rc |= bench_pedestal(dir, secs, md);
    if (!strcmp(what, "replay") || !strcmp(what, "all"))
        rc |= bench_replay(dir, base, loops, warm, md);
    if (!strcmp(what, "loopback") || !strcmp(what, "all"))
        rc |= bench_loopback(dir, base, nmod, warm, md);
    if (!strcmp(what, "service") || !strcmp(what, "all"))
        rc |= bench_service(dir, base, loops, warm, md);
    if (!strcmp(what, "profile"))
        rc |= bench_profile(dir, base, profile_out, warm, secs);
    return rc;
}
