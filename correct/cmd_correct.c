/* cmd_correct.c - `morgul correct`: raw frames written by morgul to
 * photons (or keV) in NXmx files, offline: the same conversion, geometry
 * and files as the inline path. */
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "morgul/bitshuffle.h"
#include "morgul/calibration.h"
#include "morgul/checksum.h"
#include "morgul/cli.h"
#include "morgul/convert.h"
#include "morgul/geometry.h"
#include "morgul/h5filter.h"
#include "morgul/jungfrau.h"
#include "morgul/nxmx.h"
#include "morgul/rawfile.h"
#include "morgul/rawread.h"
#include "morgul/runped.h"

#define P ((size_t)MG_MODULE_PIXELS)

/* The frames are corrected by several threads, each taking the next frame,
 * converting, laying out and compressing it on its own, and writing it when
 * every earlier frame has been written.  The HDF5 library is not
 * thread-safe: taking a frame's stored bytes and writing one happen under
 * one lock; decompressing it (mg_rawread_decode) does not.  A frame that
 * cannot be read, compressed or written stops the run there: every frame
 * before it is still written, as when one thread does it all. */
typedef struct corrector {
    mg_rawread *in;
    mg_rawfile *out;
    const mg_module_tables *tables;
    const mg_geometry *geom;
    mg_out_type type;
    size_t nmod, img_px, cap;
    pthread_mutex_t io;       /* HDF5 calls and the fields below */
    pthread_cond_t turn_cv;
    size_t next, turn, stop;  /* next frame to take, next to write, first not to write */
    mg_error err;             /* the error of frame `stop` */
    int rc;
    uint64_t uncalibrated;
} corrector;

/* Frame i goes no further: it and every later frame are not written. */
static void stop_at(corrector *c, size_t i, int rc, const mg_error *e)
{
    if (i < c->stop) {
        c->stop = i;
        c->rc = rc;
        c->err = *e;
    }
    pthread_cond_broadcast(&c->turn_cv);
}

static void *correct_frames(void *arg)
{
    corrector *c = arg;
    const size_t es = mg_out_size(c->type);
    uint16_t *raw = malloc(c->nmod * P * 2);
    void *conv = malloc(MG_PACKET_DATA_BYTES / 2 * es), *img = malloc(c->img_px * es);
    uint8_t *chunk = malloc(c->cap);
    mg_error e = {0};
    mg_bshuf_ctx *bs = mg_bshuf_ctx_new(es, MG_BSHUF_AUTO, &e);
    mg_rawread_buf *rb = bs ? mg_rawread_buf_new(&e) : NULL;
    pthread_mutex_lock(&c->io);
    if (!raw || !conv || !img || !chunk || !bs || !rb) {
        if (rb)
            mg_error_set(&e, MG_ENOMEM, "out of memory for a correcting thread");
        stop_at(c, c->next, e.code, &e); /* the frames taken so far are still written */
    } else
        mg_geometry_fill_gaps(c->geom, img, c->type);
    uint64_t uncalibrated = 0;
    while (c->next < c->stop) {
        const size_t i = c->next++;
        int r = mg_rawread_fetch(c->in, i, rb, raw, &e);
        if (r) { /* no frame after it is read (the earlier ones taken are still written) */
            stop_at(c, i, r, &e);
            break;
        }
        const mg_module_frame *rec = mg_rawread_records(c->in, i);
        const int64_t index = mg_rawread_index(c->in, i);
        pthread_mutex_unlock(&c->io);
        if ((r = mg_rawread_decode(rb, raw, &e))) {
            pthread_mutex_lock(&c->io);
            stop_at(c, i, r, &e);
            break;
        }
        for (size_t m = 0; m < c->nmod; m++) {
            /* the tables of the storage cell the frame was stored in; packets the records say did not come
             * are invalid, as inline */
            const mg_conv_tables *t = mg_module_tables_pick(&c->tables[m], rec[m].daq_info);
            const uint16_t *blocks[MG_PACKETS_PER_MODULE];
            for (int q = 0; q < MG_PACKETS_PER_MODULE; q++)
                blocks[q] = raw + m * P + (size_t)q * (MG_PACKET_DATA_BYTES / 2);
            uncalibrated += !t;
            mg_geometry_convert_module(c->geom, (int)m, t, blocks, rec[m].mask, c->type, conv, img);
        }
        const int64_t n = mg_bshuf_compress(bs, img, c->img_px, chunk, c->cap, &e);
        if (n < 0)
            r = e.code ? e.code : MG_EINVAL;
        const uint32_t crc = n > 0 ? mg_crc32c(0, chunk, (size_t)n) : 0; /* before the turn: in parallel */
        pthread_mutex_lock(&c->io);
        while (c->turn != i && i < c->stop)
            pthread_cond_wait(&c->turn_cv, &c->io);
        if (i >= c->stop)
            break;
        if (!r && mg_rawfile_write(c->out, index, rec, chunk, crc, (size_t)n, &e))
            r = e.code ? e.code : MG_EIO;
        if (r) {
            stop_at(c, i, r, &e);
            break;
        }
        c->turn++;
        pthread_cond_broadcast(&c->turn_cv);
    }
    c->uncalibrated += uncalibrated;
    pthread_mutex_unlock(&c->io);
    mg_bshuf_ctx_free(bs);
    mg_rawread_buf_free(rb);
    free(raw), free(conv), free(img), free(chunk);
    return NULL;
}

/* Corrects every frame of c->in into c->out with `threads` threads (at
 * least one: this one). */
static int correct_all(corrector *c, int threads)
{
    pthread_t th[256];
    int started = 0;
    pthread_mutex_init(&c->io, NULL);
    pthread_cond_init(&c->turn_cv, NULL);
    for (int k = 1; k < threads && k < 256; k++)
        if (!pthread_create(&th[started], NULL, correct_frames, c))
            started++;
    correct_frames(c);
    for (int k = 0; k < started; k++)
        pthread_join(th[k], NULL);
    pthread_cond_destroy(&c->turn_cv);
    pthread_mutex_destroy(&c->io);
    return c->rc;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: morgul correct RAW_master.h5 -c CALIBRATION.h5 (--energy KEV | --wavelength A) -o PREFIX [options]\n"
            "       morgul correct MODULE_A.h5 MODULE_B.h5 ... -c CALIBRATION.h5 ... (original morgul raw files)\n\n"
            "Converts raw frames written by morgul receive/replay, or the original morgul's per-module raw files\n"
            "(root dataset data (frames, 512, 1024) and scalars exptime, gainmode, timestamp, row, column; their\n"
            "modules are named from --config by row and column, or by --module-names in file order), to photons\n"
            "and writes NXmx files (PREFIX_master.h5, PREFIX_data_NNNNNN.h5) for DIALS and XDS.\n\n"
            "  --type int16|int32|float32  output values (default int16: saturated 32767, invalid -32768)\n"
            "  --keV                       energy deposited in keV instead of photons\n"
            "  --raw-layout                modules stacked 512 x 1024, no expansion, gaps or flip\n"
            "  --mask-big                  mask the big pixels instead of splitting them\n"
            "  --gap-rows N --gap-cols N   gaps between modules (default 36 and 8)\n"
            "  --no-flip                   keep raw row 0 at the top of each module\n"
            "  --distance MM               sample to detector distance (default 100 mm)\n"
            "  --beam-center X,Y           beam centre in pixels (default: the image centre)\n"
            "  --omega START,INCREMENT     a rotation series: omega of the first frame and per frame, degrees\n"
            "  --sample NAME --source NAME NXmx sample name (default: the output's name) and X-ray source\n"
            "                              (default: stills, no goniometer axis)\n"
            "  --calibration-store DIR     instead of -c: the store's constants valid when the raw data were taken\n"
            "                              at their exposure (morgul calib add); --max-age S: warn if older\n"
            "                              (default 3600)\n"
            "  --runtime-pedestal N|auto[:MAX]  the G0 pedestal from the run's own first N dark frames, or\n"
            "                              from the frames before signal shows (auto; searched in the first MAX,\n"
            "                              default 200); recorded in the output\n"
            "  --frames-per-file N         data files roll over every N frames (default 1000)\n"
            "  --threads N                 frames corrected at once (default: one per core)\n"
            "  --overwrite                 replace existing output files\n");
}

enum { O_FPF = 1000, O_OVER, O_CONFIG, O_NAMES, O_THREADS, O_CORR /* + mg_corropt index */ };

/* Each module's id from the raw records against the name that picked its
 * calibration: a module whose headers name another module is reported (its
 * constants may be another module's). */
static void check_module_ids(mg_rawread *in, const mg_detector *det)
{
    const size_t nframes = mg_rawread_frames(in);
    for (int m = 0; m < det->nmodules; m++) {
        uint16_t id = 0;
        for (size_t i = 0; i < nframes && !id; i++)
            id = mg_rawread_records(in, i)[m].packets ? mg_rawread_records(in, i)[m].module_id : 0;
        if (mg_module_id_fits(det->modules[m].name, id) == 0)
            fprintf(stderr, "warning: module %s's packet headers say module id %u: check that the calibration of %s "
                            "is this module's\n", det->modules[m].name, (unsigned)id, det->modules[m].name);
    }
}

int mg_cmd_correct(int argc, char **argv)
{
    struct option opts[9 + MG_CORROPT_COUNT] = {
        {"output", required_argument, 0, 'o'},      {"frames-per-file", required_argument, 0, O_FPF},
        {"overwrite", no_argument, 0, O_OVER},      {"help", no_argument, 0, 'h'},
        {"config", required_argument, 0, O_CONFIG}, {"module-names", required_argument, 0, O_NAMES},
        {"threads", required_argument, 0, O_THREADS}};
    for (int i = 0; i < MG_CORROPT_COUNT; i++)
        opts[7 + i] = (struct option){mg_corropt_names[i], mg_corropt_has_arg[i] ? required_argument : no_argument, 0,
                                      O_CORR + i};
    const char *out = NULL, *config = NULL, *mnames = NULL;
    mg_corropt co;
    mg_corropt_init(&co);
    int overwrite = 0, c;
    uint64_t fpf = 0, threads = 0;
    optind = 1;
    static char command_line[8192]; /* as typed: getopt reorders argv */
    mg_cli_command_line(argc, argv, command_line, sizeof command_line);
    while ((c = getopt_long(argc, argv, "c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': co.calibration = optarg; break;
        case 'o': out = optarg; break;
        case O_FPF:
            if (mg_opt_u64("correct", "--frames-per-file", optarg, &fpf))
                return 2;
            break;
        case O_OVER: overwrite = 1; break;
        case O_THREADS:
            if (mg_opt_u64("correct", "--threads", optarg, &threads))
                return 2;
            if (threads < 1 || threads > 256) {
                fprintf(stderr, "morgul correct: --threads takes 1 to 256\n");
                return 2;
            }
            break;
        case O_CONFIG: config = optarg; break;
        case O_NAMES: mnames = optarg; break;
        case 'h': usage(stdout); return 0;
        default:
            if (c >= O_CORR && c < O_CORR + MG_CORROPT_COUNT) {
                if (mg_corropt_take(&co, "correct", c - O_CORR, optarg))
                    return 2;
                break;
            }
            return 2;
        }
    }
    if (mg_corropt_energy(&co, "correct"))
        return 2;
    const double energy = co.energy_kev;
    const mg_out_type type = (mg_out_type)co.type;
    const int kev = co.kev;
    if (optind >= argc || argc - optind > MG_MAX_MODULES || !(co.calibration || co.store) || !out) {
        fprintf(stderr, "morgul correct: give the raw file(s), -c CALIBRATION.h5 (or --calibration-store DIR) and "
                        "-o PREFIX (see --help)\n");
        return 2;
    }
    if (!(energy > 0)) {
        fprintf(stderr, "morgul correct: the photon energy is needed: --energy KEV or --wavelength A\n");
        return 2;
    }
    mg_error err = {0};
    int rc = 0;
    /* everything is released at `done`, whatever happens */
    mg_calibration cb;
    mg_calib_init(&cb);
    mg_module_tables tables[MG_MAX_MODULES];
    memset(tables, 0, sizeof tables);
    uint64_t uncalibrated = 0;
    uint32_t *pmask = NULL;
    mg_rawfile *o = NULL;
    uint64_t written = 0;
    mg_geometry geom;
    float *runtime_p0[MG_MAX_MODULES] = {0};
    uint64_t runtime_frames = 0;
    int runtime_cells = 1;
    int64_t runtime_onset = -1;
    mg_rawread_naming naming = {.config = config, .names = mnames};
    mg_rawread *in = mg_rawread_open((const char *const *)argv + optind, argc - optind, &naming, &err);
    if (!in) {
        rc = err.code;
        goto done;
    }
    const mg_detector *det = mg_rawread_detector(in);
    const size_t nframes = mg_rawread_frames(in), nmod = (size_t)det->nmodules;
    if (co.store) {
        /* the constants valid when the raw data were taken, at their exposure */
        double t = mg_rawread_start(in);
        if (!(t > 0)) {
            rc = mg_error_set(&err, MG_EINVAL, "%s does not say when it was taken: name the calibration with -c",
                              argv[optind]);
            goto done;
        }
        char who[1100];
        snprintf(who, sizeof who, "correct:%s", argv[optind]);
        int r = mg_corropt_pick(&co, "correct", det, t, mg_rawread_exposure(in), who);
        if (r) {
            mg_rawread_close(in);
            return r;
        }
    }
    const char *cal = co.calibration;
    /* everything about the calibration and geometry is checked before any frame is read */
    if ((rc = mg_calib_read(cal, &cb, &err)) || (rc = mg_calib_check(&cb, det, &err)) ||
        (rc = mg_calib_validate_detector(&cb, det, stderr, &err)))
        goto done;
    if (co.runtime) {
        /* the run's own first frames give its G0 pedestal before any frame is converted */
        mg_runped *rp = mg_runped_for(&cb, det, co.runtime_frames, co.runtime_max, &err);
        rc = rp ? 0 : err.code;
        for (size_t i = 0; !rc && i < nframes; i++) {
            if ((rc = mg_rawread_frame(in, i, mg_runped_module(rp, 0), &err)))
                break;
            if (mg_runped_offer(rp, mg_rawread_complete(in, i), mg_rawread_records(in, i)[0].daq_info) !=
                MG_RUNPED_MORE)
                break;
        }
        if (!rc)
            rc = mg_runped_apply(rp, &cb, det, runtime_p0, stdout, &err);
        if (!rc) {
            runtime_frames = mg_runped_frames(rp);
            runtime_onset = mg_runped_onset(rp);
            runtime_cells = mg_runped_cells(rp);
        }
        mg_runped_free(rp);
        if (rc)
            goto done;
    }
    for (size_t m = 0; m < nmod; m++)
        if ((rc = mg_calib_tables(mg_calib_find(&cb, det->modules[m].name), kev ? 1.0 : energy, NULL, -1, &tables[m],
                                  &err)))
            goto done;
    if ((rc = mg_geometry_init(&geom, det, &co.geometry, &err)))
        goto done;
    pmask = malloc((size_t)geom.width * (size_t)geom.height * 4);
    if (!pmask) {
        rc = mg_error_set(&err, MG_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = mg_calib_geometry_mask(&cb, det, &geom, pmask, &err)))
        goto done;
    const mg_module_frame *first = nframes ? mg_rawread_records(in, 0) : NULL;
    const mg_module_frame *second = nframes > 1 ? mg_rawread_records(in, 1) : NULL;
    mg_nxmx_info info = {
        .geom = &geom,
        .det = det,
        .type = type,
        .kev = kev,
        .pixel_mask = pmask,
        .energy_kev = energy,
        .distance_m = co.distance_mm / 1000,
        .beam_x = isnan(co.beam_x) ? geom.width / 2.0 : co.beam_x,
        .beam_y = isnan(co.beam_y) ? geom.height / 2.0 : co.beam_y,
        .count_time = first ? first->exposure_length * 1e-7 : 0,
        .frame_time = second && second->timestamp > first->timestamp
                          ? (double)(second->timestamp - first->timestamp) * 1e-7
                          : 0,
        .sensor_thickness_m = 320e-6,
        .calibration_file = cal,
        .rotation = co.rotation,
        .omega_start = co.omega_start,
        .omega_increment = co.omega_increment,
        .runtime_mode = co.runtime ? (co.runtime_frames ? "fixed" : "auto") : NULL,
        .runtime_frames = runtime_frames,
        .runtime_onset = runtime_onset,
        .runtime_p0 = (const float *const *)runtime_p0,
        .runtime_cells = runtime_cells,
        .sample_name = co.sample ? co.sample : mg_nxmx_default_sample(out),
        .source_name = co.source,
    };
    mg_frame_layout layout;
    mg_nxmx_layout(&info, &layout);
    mg_rawfile_config rcfg = {.prefix = out, .det = det, .command_line = command_line, .frames_per_file = fpf,
                              .overwrite = overwrite, .layout = &layout};
    if (!(o = mg_rawfile_create(&rcfg, &err))) {
        rc = err.code;
        goto done;
    }
    /* the data were taken when the raw run says, not now */
    mg_rawfile_time(o, mg_rawread_start(in));
    mg_rawfile_time(o, mg_rawread_end(in));
    check_module_ids(in, det);
    if (!threads) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        threads = ncpu > 0 ? (uint64_t)ncpu : 1;
    }
    if (threads > nframes)
        threads = nframes ? nframes : 1;
    {
        const size_t img_px = (size_t)geom.width * (size_t)geom.height;
        corrector cr = {.in = in, .out = o, .tables = tables, .geom = &geom, .type = type, .nmod = nmod,
                        .img_px = img_px, .cap = mg_bshuf_bound(img_px, mg_out_size(type)), .stop = nframes};
        if ((rc = correct_all(&cr, (int)threads)))
            err = cr.err;
        uncalibrated = cr.uncalibrated;
    }
    /* close the files whatever happened: what was written stays readable */
    written = mg_rawfile_frames(o);
    {
        /* this run's counters, and the raw run's (its losses) carried as raw_NAME */
        mg_counter counters[2 + 64];
        char names[64][80];
        int n = 0;
        counters[n++] = (mg_counter){"frames_written", written};
        counters[n++] = (mg_counter){"module_frames_uncalibrated_cell", uncalibrated};
        const mg_counter *rawc;
        int nraw = mg_rawread_counters(in, &rawc);
        for (int i = 0; i < nraw && i < 64; i++) {
            snprintf(names[i], sizeof names[i], "raw_%s", rawc[i].name);
            counters[n++] = (mg_counter){names[i], rawc[i].value};
        }
        mg_error cerr = {0};
        if (mg_rawfile_close(o, counters, n, &cerr) && !rc) {
            rc = cerr.code;
            err = cerr;
        }
    }
done:
    for (size_t m = 0; m < MG_MAX_MODULES; m++) {
        mg_module_tables_free(&tables[m]);
        free(runtime_p0[m]);
    }
    mg_calib_free(&cb);
    free(pmask);
    if (!rc)
        printf("corrected %llu frame(s) of %d module(s) at %.4g keV into %s_master.h5 (%d x %d %s)\n",
               (unsigned long long)written, mg_rawread_detector(in)->nmodules, energy, out, geom.width, geom.height,
               type == MG_OUT_INT16 ? "int16" : type == MG_OUT_INT32 ? "int32" : "float32");
    if (!rc && uncalibrated)
        fprintf(stderr, "warning: %llu module-frame(s) came from a storage cell the calibration has no constants for: "
                        "their pixels are written invalid\n", (unsigned long long)uncalibrated);
    mg_rawread_close(in);
    if (rc) {
        fprintf(stderr, "morgul correct: %s\n", err.message);
        return 1;
    }
    return 0;
}
