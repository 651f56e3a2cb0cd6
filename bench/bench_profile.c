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
 * In-process stages are timed by the thread's CPU clock (a busy machine
 * does not inflate them); each is the best of three passes.  The memory traffic is what each stage
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
    for (int t = 0; t < 3 && !rc; t++) { /* conversion with the layout, per type */
        const size_t es = t ? 4 : 2;
        double best = 1e30;
        for (int pass = 0; pass < 3; pass++) {
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
            best = ns < best ? ns : best;
        }
        p.ns[MG_COST_CONVERT_INT16 + t] = best;
        p.bytes[MG_COST_CONVERT_INT16 + t] = MG_MODULE_BYTES + 4.0 * MG_MODULE_PIXELS * 2 + (double)px * es;
    }
    /* compression and its checksum (the workers take both): the raw frames, chunks kept for the writing */
    for (int pass = 0; pass < 3 && !rc; pass++) {
        double t0 = thread_cpu_s(), total = 0;
        for (int r = 0; r < reps / 2 && !rc; r++)
            for (size_t i = 0; i < n && !rc; i++) {
                int64_t m = mg_bshuf_compress(z2, frames + i * MG_MODULE_PIXELS, MG_MODULE_PIXELS, chunks + i * cap,
                                              cap, &err);
                if (m <= 0)
                    rc = 1;
                else {
                    volatile uint32_t crc = mg_crc32c(0, chunks + i * cap, (size_t)m);
                    (void)crc;
                    clen[i] = (size_t)m;
                    total += (double)m;
                }
            }
        double ns = (thread_cpu_s() - t0) * 1e9 / ((reps / 2) * (double)n);
        if (!pass || ns < p.ns[MG_COST_COMPRESS_RAW])
            p.ns[MG_COST_COMPRESS_RAW] = ns;
        chunk_bytes[0] = total / ((reps / 2) * (double)n);
        p.bytes[MG_COST_COMPRESS_RAW] = MG_MODULE_BYTES + chunk_bytes[0];
    }
    for (int k = 1; k < 4 && !rc; k++) { /* each type's images, into scratch */
        const size_t es = k == 1 ? 2 : 4;
        mg_bshuf_ctx *z = es == 2 ? z2 : z4;
        uint8_t *tmp = malloc(cap);
        double best = 1e30, total = 0;
        for (int pass = 0; pass < 3 && tmp && !rc; pass++) {
            double t0 = thread_cpu_s();
            total = 0;
            for (int r = 0; r < reps / 2 && !rc; r++)
                for (size_t i = 0; i < n && !rc; i++) {
                    int64_t m = mg_bshuf_compress(z, (const uint8_t *)images[k - 1] + i * px * es, px, tmp, cap, &err);
                    if (m <= 0)
                        rc = 1;
                    else {
                        volatile uint32_t crc = mg_crc32c(0, tmp, (size_t)m);
                        (void)crc;
                        total += (double)m;
                    }
                }
            double ns = (thread_cpu_s() - t0) * 1e9 / ((reps / 2) * (double)n);
            best = ns < best ? ns : best;
        }
        free(tmp);
        chunk_bytes[k] = total / ((reps / 2) * (double)n);
        p.ns[MG_COST_COMPRESS_INT16 + k - 1] = best;
        p.bytes[MG_COST_COMPRESS_INT16 + k - 1] = (double)px * es + chunk_bytes[k];
    }
    /* writing: the raw chunks through the raw writer, 3 runs of 2000 frames */
    for (int pass = 0; pass < 3 && !rc; pass++) {
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
        double ns = (thread_cpu_s() - t0) * 1e9 / frames_written;
        if (!pass || ns < p.ns[MG_COST_WRITE])
            p.ns[MG_COST_WRITE] = ns;
        p.bytes[MG_COST_WRITE] = chunk_bytes[0];
        bench_remove_prefix(prefix);
    }
    /* receiving: a loopback trial of the receiver alone, its CPU time per module-frame */
    if (!rc) {
        char self[1024], files[8192];
        ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
        self[k > 0 ? k : 0] = 0;
        bench_frame_file_list(frames_dir, files, sizeof files);
        lb_result lb;
        double best = 1e30;
        for (int pass = 0; pass < 3 && !rc; pass++) {
            if (bench_loopback_trial(self, 1, lb_frames, 0, files, 0, dir, det.modules[0].ports[0] + 16 * (pass + 1), &lb)) {
                rc = 1;
                break;
            }
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
