/* bench_profile.c - `morgul bench profile`: the CPU time of every stage
 * per module-frame on this machine, on the real frames, saved as a cost
 * profile (morgul/sizing.h) that `morgul plan` sizes servers with.
 *
 *   receive: a loopback trial of `morgul receive --no-write` (assembly, no
 *     compression) at the sender's top rate: the receiver's CPU time (user
 *     and system, so the kernel's copies count) per module-frame received;
 *   convert: mg_geometry_convert_module (conversion and layout, as the
 *     workers call it) with the PSI constants at 12.4 keV, per output type;
 *   compress: the fastest kernel at the default acceleration plus the
 *     chunk's CRC-32C (the workers take both), raw frames and each type's
 *     converted images;
 *   write: the raw chunks through the raw writer (mg_rawfile) into the
 *     scratch directory, per frame, closing included.
 * Then, in the same run, the plan is checked against reality: mg_size_top_rate
 * with this profile predicts the highest rate of two runs `morgul bench`
 * makes, and they are run:
 *   loopback: 1 module, `morgul receive` writing files, the simulator here
 *     sending on the same cores (its CPU time per frame, measured at its top
 *     rate, is added to the plan's); measured: the highest rate without
 *     loss, found as `bench loopback` finds it (top rate, then 10 % steps);
 *   replay: 2 modules of real frames from a capture to files, every core a
 *     worker; the capture's reading and assembly (one thread, its CPU per
 *     module-frame measured by a replay that does not compress) in place of
 *     the sockets' receiving; measured: the replay's module-frames/s.
 * Each prints measured / predicted.
 * In-process stages are timed by the thread's CPU clock (a busy machine
 * does not inflate them); each is the best of three rounds, the stages interleaved.  The memory traffic is what each stage
 * reads and writes by its data sizes (the kernel's copy counted twice for
 * receiving), not a counter reading. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "morgul/bitshuffle.h"
#include "morgul/calibration.h"
#include "morgul/checksum.h"
#include "morgul/convert.h"
#include "morgul/geometry.h"
#include "morgul/jungfrau.h"
#include "morgul/rawfile.h"
#include "morgul/sizing.h"

#include <sys/resource.h>

/* CPU time of the calling thread (user and system), seconds: unlike the wall clock it does not count the
 * time other processes had the core, so a profile taken on a busy machine stays right. */
static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void cpu_model(char *out, size_t cap)
{
    snprintf(out, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c += 2;
                c[strcspn(c, "\n")] = 0;
                snprintf(out, cap, "%s", c);
            }
            break;
        }
    if (f)
        fclose(f);
}

static void keep_best(mg_cost_profile *p, int stage, double ns, double bytes)
{
    if (ns < p->ns[stage])
        p->ns[stage] = ns;
    p->bytes[stage] = bytes;
}

static double process_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec * 1e-6;
}

/* The plan's top rates for a loopback and a replay run against what they reach (see the top). */
static int reality_check(const mg_cost_profile *p, double send_ns, const char *frames_dir, const char *dir,
                         uint64_t frames, int port)
{
    const int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    char self[1024], files[8192];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    self[k > 0 ? k : 0] = 0;
    bench_frame_file_list(frames_dir, files, sizeof files);
    mg_error err = {0};
    printf("the plan against reality (same run, this profile, %d cores): measured / predicted\n", cores);
    /* loopback, 1 module, files written, the sender on the same cores */
    mg_detector d1;
    mg_detector_simple(&d1, "check", 1, 1, "127.0.0.1", port, NULL, NULL);
    mg_sizing_input in = {.det = &d1};
    double plan = mg_size_top_rate(&in, p, cores, send_ns, 0, &err);
    double predicted = send_ns > 0 && 1e9 / send_ns < plan ? 1e9 / send_ns : plan; /* the sender is one thread */
    lb_result r;
    if (bench_loopback_trial(self, 1, frames, 0, files, 1, dir, port, &r))
        return 1;
    double top = r.send_fps, measured = r.lost == 0 ? top : 0;
    lb_result at = r;
    for (double f = 0.9; measured == 0 && f > 0.05; f -= 0.1) {
        port += 8;
        if (bench_loopback_trial(self, 1, frames, top * f, files, 1, dir, port, &r))
            return 1;
        if (r.lost == 0) {
            measured = r.send_fps;
            at = r;
        }
    }
    printf("  loopback, 1 module, receive + compress + write, sender on the same cores (%.1f us a frame):\n"
           "    predicted %.0f frames/s%s, measured %.0f without loss (sender's top %.0f): x%.2f\n",
           send_ns / 1e3, predicted, predicted < plan ? " (the sender's own top)" : "", measured, top,
           predicted > 0 ? measured / predicted : 0);
    double rx_per_frame = at.received ? at.rx_cpu * 1e9 / ((double)at.received / MG_PACKETS_PER_MODULE) : 0;
    double rx_profile = p->ns[MG_COST_RECEIVE] + p->ns[MG_COST_COMPRESS_RAW] + p->ns[MG_COST_WRITE];
    printf("    why: at that rate the receiver took %.0f us of CPU a frame where the profile's stages add up to %.0f "
           "(x%.2f); a lossless rate also needs the receiving thread to run before the socket's buffer fills\n",
           rx_per_frame / 1e3, rx_profile / 1e3, rx_per_frame > 0 ? rx_profile / rx_per_frame : 0);
    /* replay, 2 modules of real frames, to files */
    char cap[600], out[600];
    snprintf(cap, sizeof cap, "%s/check.pcap", dir);
    snprintf(out, sizeof out, "%s/check-out", dir);
    mg_detector d2;
    const uint64_t replay_frames = frames / 4 < 100 ? 100 : frames / 4; /* read twice: 2 x 2 x 500 frames at most */
    if (bench_make_capture(cap, 2, replay_frames, frames_dir, &d2))
        return 1;
    mg_run_config hooks;
    memset(&hooks, 0, sizeof hooks);
    hooks.no_compress = 1;
    double read_ns = 1e30, best = 0;
    mg_run_summary sum;
    for (int pass = 0; pass < 3; pass++) {
        double c0 = process_cpu_s();
        double mf = bench_replay_pass(&d2, cap, NULL, 2, NULL, &hooks, &sum);
        double module_frames = (double)(sum.frames.frames_complete + sum.frames.frames_partial) * d2.nmodules;
        if (mf <= 0 || module_frames <= 0)
            return 1;
        double ns = (process_cpu_s() - c0) * 1e9 / module_frames;
        read_ns = ns < read_ns ? ns : read_ns;
    }
    double cpu_per_mf = 0, busy = 0; /* of the best pass: CPU time per module-frame, the cores' busy share */
    for (int pass = 0; pass < 3; pass++) {
        double c0 = process_cpu_s();
        double mf = bench_replay_pass(&d2, cap, out, 2, NULL, NULL, &sum);
        double module_frames = (double)(sum.frames.frames_complete + sum.frames.frames_partial) * d2.nmodules;
        if (mf <= 0 || module_frames <= 0)
            return 1;
        if (mf > best) {
            best = mf;
            cpu_per_mf = (process_cpu_s() - c0) * 1e9 / module_frames;
            busy = cpu_per_mf * mf / 1e9 / cores;
        }
    }
    bench_remove_prefix(out);
    unlink(cap);
    mg_cost_profile rp = *p; /* a replay: the capture's reading in place of the sockets' receiving */
    rp.ns[MG_COST_RECEIVE] = read_ns;
    in.det = &d2;
    predicted = mg_size_top_rate(&in, &rp, cores, 0, 1, &err) * d2.nmodules;
    printf("  replay, 2 modules x %llu frames x 2 loops of real frames to files (reading and assembly %.1f us a "
           "module-frame):\n    predicted %.0f module-frames/s, measured %.0f: x%.2f\n", (unsigned long long)replay_frames,
           read_ns / 1e3, predicted, best, predicted > 0 ? best / predicted : 0);
    printf("    why: the run took %.0f us of CPU a module-frame where the profile's stages add up to %.0f (x%.2f), "
           "and kept the cores %.0f %% busy\n", cpu_per_mf / 1e3,
           (read_ns + p->ns[MG_COST_COMPRESS_RAW] + p->ns[MG_COST_WRITE]) / 1e3,
           (read_ns + p->ns[MG_COST_COMPRESS_RAW] + p->ns[MG_COST_WRITE]) / cpu_per_mf, 100 * busy);
    return 0;
}

int bench_profile(const char *frames_dir, const char *base, const char *out_path, int warm_gb, double seconds)
{
    size_t n = 0;
    uint16_t *frames = bench_load_frames(frames_dir, &n);
    if (!n) {
        fprintf(stderr, "morgul bench profile: no raw frames in %s; give --frames-dir\n", frames_dir);
        free(frames);
        return 1;
    }
    char dir[256];
    if (bench_scratch_dir(base, dir, sizeof dir)) {
        free(frames);
        return 1;
    }
    bench_warm_memory(warm_gb);
    mg_cost_profile p;
    mg_cost_profile_builtin(&p); /* every figure is replaced below */
    char cpu[200];
    cpu_model(cpu, sizeof cpu);
    snprintf(p.machine, sizeof p.machine, "%s, %ld cores (morgul bench profile)", cpu, sysconf(_SC_NPROCESSORS_ONLN));
    mg_error err = {0};
    int rc = 0;
    /* the calibration and the layout of one module */
    mg_detector det;
    mg_detector_simple(&det, "profile", 1, 1, "127.0.0.1", 47300 + (int)(getpid() % 500) * 4, NULL, NULL);
    char cal[600];
    snprintf(cal, sizeof cal, "%s/profile-calibration.h5", dir);
    mg_calibration c;
    mg_calib_init(&c);
    mg_module_tables tables;
    memset(&tables, 0, sizeof tables);
    mg_geometry g;
    mg_geometry_config gc;
    mg_geometry_defaults(&gc);
    if (bench_make_calibration(frames_dir, cal, &det) || mg_calib_read(cal, &c, &err) ||
        mg_calib_tables(mg_calib_module(&c, det.modules[0].name, 0, 0), 12.4, NULL, -1, &tables, &err) ||
        mg_geometry_init(&g, &det, &gc, &err)) {
        fprintf(stderr, "morgul bench profile: %s\n", err.message[0] ? err.message : "no PSI constants in the frames "
                                                                                      "directory");
        rc = 1;
    }
    unlink(cal);
    const size_t px = (size_t)g.width * (size_t)g.height;
    void *images[3] = {0}, *conv = malloc((size_t)MG_MODULE_PIXELS * 4);
    for (int t = 0; t < 3 && !rc; t++)
        images[t] = malloc(n * px * 4);
    mg_bshuf_ctx *z2 = mg_bshuf_ctx_new(2, MG_BSHUF_AUTO, NULL), *z4 = mg_bshuf_ctx_new(4, MG_BSHUF_AUTO, NULL);
    size_t cap = mg_bshuf_bound(px > MG_MODULE_PIXELS ? px : MG_MODULE_PIXELS, 4);
    uint8_t *chunks = malloc(n * cap);
    size_t *clen = calloc(n, sizeof *clen);
    double chunk_bytes[4] = {0};
    const uint8_t all[16] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                             0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    /* repetitions of the 10 frames per pass: 20 at the default --seconds 3, fewer for a quick look */
    const int reps = seconds >= 3 ? 20 : seconds >= 0.3 ? (int)(seconds * 20 / 3) * 2 + 2 : 2;
    const uint64_t lb_frames = seconds >= 3 ? 2000 : 500;
    double send_ns = 0;
    /* three rounds of every in-process stage, interleaved so that a slow phase of the machine (a VM's
     * memory being backed, a neighbour) does not take all three passes of one stage; each stage's best */
    for (int k = 0; k < MG_COST_COUNT; k++)
        if (k != MG_COST_RECEIVE)
            p.ns[k] = 1e30;
    uint8_t *tmp = malloc(cap);
    for (int round = 0; round < 3 && !rc; round++) {
        for (int t = 0; t < 3 && !rc; t++) { /* conversion with the layout, per type */
            const size_t es = t ? 4 : 2;
            double t0 = thread_cpu_s();
            for (int r = 0; r < reps; r++)
                for (size_t i = 0; i < n; i++) {
                    const uint16_t *blocks[MG_PACKETS_PER_MODULE];
                    for (int q = 0; q < MG_PACKETS_PER_MODULE; q++)
                        blocks[q] = frames + i * MG_MODULE_PIXELS + (size_t)q * (MG_PACKET_DATA_BYTES / 2);
                    mg_geometry_convert_module(&g, 0, mg_module_tables_pick(&tables, 0), blocks, all,
                                               (mg_out_type)t, conv, (uint8_t *)images[t] + i * px * es);
                }
            double ns = (thread_cpu_s() - t0) * 1e9 / (reps * (double)n);
            keep_best(&p, MG_COST_CONVERT_INT16 + t, ns, MG_MODULE_BYTES + 4.0 * MG_MODULE_PIXELS * 2 + (double)px * es);
        }
        /* compression and its checksum (the workers take both): the raw frames (their chunks kept for the
         * writing), then each type's images into scratch */
        for (int k = 0; k < 4 && !rc && tmp; k++) {
            const size_t es = k == 1 || k == 0 ? 2 : 4;
            const size_t elems = k ? px : MG_MODULE_PIXELS;
            mg_bshuf_ctx *z = es == 2 ? z2 : z4;
            double t0 = thread_cpu_s(), total = 0;
            for (int r = 0; r < reps / 2 && !rc; r++)
                for (size_t i = 0; i < n && !rc; i++) {
                    const void *src = k ? (const void *)((const uint8_t *)images[k - 1] + i * px * es)
                                        : (const void *)(frames + i * MG_MODULE_PIXELS);
                    uint8_t *dst = k ? tmp : chunks + i * cap;
                    int64_t m = mg_bshuf_compress(z, src, elems, dst, cap, &err);
                    if (m <= 0)
                        rc = 1;
                    else {
                        volatile uint32_t crc = mg_crc32c(0, dst, (size_t)m);
                        (void)crc;
                        if (!k)
                            clen[i] = (size_t)m;
                        total += (double)m;
                    }
                }
            double ns = (thread_cpu_s() - t0) * 1e9 / ((reps / 2) * (double)n);
            chunk_bytes[k] = total / ((reps / 2) * (double)n);
            keep_best(&p, k ? MG_COST_COMPRESS_INT16 + k - 1 : MG_COST_COMPRESS_RAW, ns,
                      (double)elems * es + chunk_bytes[k]);
        }
        if (!tmp)
            rc = 1;
        /* writing: the raw chunks through the raw writer */
        if (!rc) {
            char prefix[600];
            snprintf(prefix, sizeof prefix, "%s/profile-write", dir);
            mg_rawfile_config rfc = {.prefix = prefix, .det = &det, .overwrite = 1};
            const int frames_written = (int)lb_frames;
            double t0 = thread_cpu_s();
            mg_rawfile *f = mg_rawfile_create(&rfc, &err);
            mg_module_frame mf;
            memset(&mf, 0, sizeof mf);
            mf.packets = MG_PACKETS_PER_MODULE;
            memset(mf.mask, 0xFF, sizeof mf.mask);
            for (int i = 0; f && i < frames_written && !rc; i++) {
                mf.frame_number = (uint64_t)i + 1;
                rc = mg_rawfile_write(f, i, &mf, chunks + (size_t)(i % (int)n) * cap, 0, clen[i % (int)n], &err) != 0;
            }
            rc |= !f || mg_rawfile_close(f, NULL, 0, &err);
            keep_best(&p, MG_COST_WRITE, (thread_cpu_s() - t0) * 1e9 / frames_written, chunk_bytes[0]);
            bench_remove_prefix(prefix);
        }
    }
    free(tmp);
    /* receiving: a loopback trial of the receiver alone, its CPU time per module-frame */
    if (!rc) {
        char self[1024], files[8192];
        ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
        self[k > 0 ? k : 0] = 0;
        bench_frame_file_list(frames_dir, files, sizeof files);
        lb_result lb;
        double best = 1e30;
        for (int pass = 0; pass < 3 && !rc; pass++) {
            double t0 = thread_cpu_s(); /* the sender is this thread: its cost, for the check below */
            if (bench_loopback_trial(self, 1, lb_frames, 0, files, 0, dir, det.modules[0].ports[0] + 16 * (pass + 1), &lb)) {
                rc = 1;
                break;
            }
            double send = (thread_cpu_s() - t0) * 1e9 / (double)lb_frames;
            send_ns = pass == 0 || send < send_ns ? send : send_ns;
            double frames_in = (double)lb.received / MG_PACKETS_PER_MODULE;
            double ns = frames_in > 0 ? lb.rx_cpu * 1e9 / frames_in : 1e30;
            best = ns < best ? ns : best;
        }
        p.ns[MG_COST_RECEIVE] = best;
        p.bytes[MG_COST_RECEIVE] = 4.0 * MG_PACKETS_PER_MODULE * MG_PACKET_BYTES;
    }
    if (!rc) {
        char path[4096];
        const char *where = out_path ? out_path : mg_cost_profile_default_path(path, sizeof path);
        printf("profile of %s, per module-frame on one core:\n", p.machine);
        for (int k = 0; k < MG_COST_COUNT; k++)
            printf("  %-18s %9.1f us  %7.2f MiB moved  (%.0f module-frames/s a core)\n", mg_cost_names[k],
                   p.ns[k] / 1e3, p.bytes[k] / (1 << 20), 1e9 / p.ns[k]);
        if ((rc = mg_cost_profile_write(where, &p, &err)))
            fprintf(stderr, "morgul bench profile: %s\n", err.message);
        else
            printf("saved to %s (morgul plan reads it from there, or --profile FILE)\n", where);
        if (!rc)
            rc = reality_check(&p, send_ns, frames_dir, dir, lb_frames, det.modules[0].ports[0] + 64);
    } else if (err.message[0])
        fprintf(stderr, "morgul bench profile: %s\n", err.message);
    for (int t = 0; t < 3; t++)
        free(images[t]);
    free(conv);
    free(chunks);
    free(clen);
    mg_bshuf_ctx_free(z2);
    mg_bshuf_ctx_free(z4);
    mg_module_tables_free(&tables);
    mg_calib_free(&c);
    free(frames);
    rmdir(dir);
    return rc ? 1 : 0;
}
