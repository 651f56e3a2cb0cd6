/* cmd_correct.c - `morgul correct`: raw frames written by morgul to
 * photons (or keV) in NXmx files, offline: the same conversion, geometry
 * and files as the inline path. */
#include <getopt.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "morgul/bitshuffle.h"
#include "morgul/calibration.h"
#include "morgul/cli.h"
#include "morgul/convert.h"
#include "morgul/geometry.h"
#include "morgul/h5filter.h"
#include "morgul/jungfrau.h"
#include "morgul/nxmx.h"
#include "morgul/rawfile.h"

#define P ((size_t)MG_MODULE_PIXELS)

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
            "                              (default: stills, no goniometer axis)\n"
            "  --frames-per-file N         data files roll over every N frames (default 1000)\n"
            "  --overwrite                 replace existing output files\n");
}

enum { O_FPF = 1000, O_OVER, O_CONFIG, O_NAMES, O_CORR /* + mg_corropt index */ };

/* A double scalar of the file, or `dflt`. */
static double scalar(hid_t f, const char *name, double dflt)
{
    double v = dflt;
    if (H5Lexists(f, name, H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
        hid_t s = H5Dget_space(d);
        if (H5Sget_simple_extent_npoints(s) == 1)
            H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
        H5Sclose(s);
        H5Dclose(d);
    }
    return v;
}

/* Reads dataset `path` of f into buf as `mtype` if it has n elements. */
static int read_all(hid_t f, const char *path, hid_t mtype, void *buf, size_t n)
{
    if (H5Lexists(f, path, H5P_DEFAULT) <= 0)
        return -1;
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    int ok = (size_t)H5Sget_simple_extent_npoints(s) == n && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0;
    H5Sclose(s);
    H5Dclose(d);
    return ok ? 0 : -1;
}

int mg_cmd_correct(int argc, char **argv)
{
    struct option opts[8 + MG_CORROPT_COUNT] = {
        {"output", required_argument, 0, 'o'},      {"frames-per-file", required_argument, 0, O_FPF},
        {"overwrite", no_argument, 0, O_OVER},      {"help", no_argument, 0, 'h'},
        {"config", required_argument, 0, O_CONFIG}, {"module-names", required_argument, 0, O_NAMES}};
    for (int i = 0; i < MG_CORROPT_COUNT; i++)
        opts[6 + i] = (struct option){mg_corropt_names[i], mg_corropt_has_arg[i] ? required_argument : no_argument, 0,
                                      O_CORR + i};
    const char *out = NULL, *config = NULL, *mnames = NULL;
    mg_corropt co;
    mg_corropt_init(&co);
    int overwrite = 0, c;
    uint64_t fpf = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': co.calibration = optarg; break;
        case 'o': out = optarg; break;
        case O_FPF:
            if (mg_opt_u64("correct", "--frames-per-file", optarg, &fpf))
                return 2;
            break;
        case O_OVER: overwrite = 1; break;
        case O_CONFIG: config = optarg; break;
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
    const char *cal = co.calibration;
    if (mg_corropt_energy(&co, "correct"))
        return 2;
    const double energy = co.energy_kev;
    const mg_out_type type = (mg_out_type)co.type;
    const int kev = co.kev;
    if (optind >= argc || argc - optind > MG_MAX_MODULES || !cal || !out) {
        fprintf(stderr, "morgul correct: give the raw file(s), -c CALIBRATION.h5 and -o PREFIX (see --help)\n");
        return 2;
    }
    if (!(energy > 0)) {
        fprintf(stderr, "morgul correct: the photon energy is needed: --energy KEV or --wavelength A\n");
        return 2;
    }
    const char *in = argv[optind];
    mg_error err = {0};
    int rc = 0;
    /* everything is released at `done`, whatever happens */
    hid_t f = -1, data = -1, fs = -1, ms = -1;
    hid_t pf[MG_MAX_MODULES], pd[MG_MAX_MODULES]; /* original morgul: a file per module */
    for (int m = 0; m < MG_MAX_MODULES; m++)
        pf[m] = pd[m] = -1;
    int per_module = 0;
    char(*names)[MG_NAME_MAX] = NULL;
    int *rows = NULL, *cols = NULL;
    mg_calibration cb;
    mg_calib_init(&cb);
    mg_conv_tables *tables[MG_MAX_MODULES] = {0};
    mg_module_frame *recs = NULL;
    uint64_t *u64 = NULL;
    int64_t *index = NULL;
    uint32_t *pmask = NULL;
    uint16_t *raw = NULL;
    void *conv = NULL, *img = NULL;
    uint8_t *chunk = NULL;
    mg_bshuf_ctx *bs = NULL;
    mg_rawfile *o = NULL;
    uint64_t written = 0;
    size_t nframes = 0, nmod = 0;
    mg_detector det;
    memset(&det, 0, sizeof det);
    mg_geometry geom;
    mg_h5_register_bitshuffle(NULL);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    f = H5Fopen(in, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        rc = mg_error_set(&err, MG_EIO, "cannot open %s (missing, or not HDF5)", in);
        goto done;
    }
    /* morgul's raw layout: /data (frames, modules, 512, 1024) and /detector; the original morgul's:
     * one file per module with /data (frames, 512, 1024) */
    hsize_t dims[4] = {0};
    int rank = 0;
    data = H5Lexists(f, "data", H5P_DEFAULT) > 0 ? H5Dopen2(f, "data", H5P_DEFAULT) : -1;
    if (data >= 0) {
        hid_t space = H5Dget_space(data);
        rank = H5Sget_simple_extent_ndims(space);
        if (rank == 3 || rank == 4)
            H5Sget_simple_extent_dims(space, dims, NULL);
        H5Sclose(space);
    }
    per_module = rank == 3 && H5Lexists(f, "detector", H5P_DEFAULT) <= 0;
    if (per_module) {
        dims[3] = dims[2];
        dims[2] = dims[1];
        dims[1] = (hsize_t)(argc - optind);
    } else if (argc - optind != 1) {
        rc = mg_error_set(&err, MG_EINVAL, "%s is a morgul raw master file: give it alone", in);
        goto done;
    }
    if (data < 0 || dims[2] != MG_MODULE_ROWS || dims[3] != MG_MODULE_COLS || dims[1] < 1 ||
        dims[1] > MG_MAX_MODULES) {
        rc = mg_error_set(&err, MG_EFORMAT, "%s has no /data of raw frames ((frames, modules, 512, 1024) from morgul, "
                                            "or (frames, 512, 1024) from the original morgul): not a raw file", in);
        goto done;
    }
    nframes = (size_t)dims[0];
    nmod = (size_t)dims[1];
    snprintf(det.name, sizeof det.name, "jungfrau");
    det.nmodules = (int)nmod;
    names = calloc(nmod, MG_NAME_MAX);
    rows = calloc(nmod, sizeof(int));
    cols = calloc(nmod, sizeof(int));
    if (!names || !rows || !cols) {
        rc = mg_error_set(&err, MG_ENOMEM, "out of memory");
        goto done;
    }
    if (per_module) {
        mg_detector known;
        int have_known = 0;
        if (config) {
            if ((rc = mg_detector_load(&known, config, &err)))
                goto done;
            have_known = 1;
        }
        const char *np = mnames;
        for (size_t m = 0; m < nmod; m++) {
            if (m > 0) {
                pf[m] = H5Fopen(argv[optind + m], H5F_ACC_RDONLY, H5P_DEFAULT);
                pd[m] = pf[m] >= 0 && H5Lexists(pf[m], "data", H5P_DEFAULT) > 0 ? H5Dopen2(pf[m], "data", H5P_DEFAULT)
                                                                                 : -1;
                hsize_t d3[3] = {0};
                if (pd[m] >= 0) {
                    hid_t sp = H5Dget_space(pd[m]);
                    if (H5Sget_simple_extent_ndims(sp) == 3)
                        H5Sget_simple_extent_dims(sp, d3, NULL);
                    H5Sclose(sp);
                }
                if (d3[0] != dims[0] || d3[1] != MG_MODULE_ROWS || d3[2] != MG_MODULE_COLS) {
                    rc = mg_error_set(&err, MG_EFORMAT, "%s has no /data of %llu frames of 512 x 1024 like %s",
                                      argv[optind + m], (unsigned long long)dims[0], in);
                    goto done;
                }
            } else {
                pf[0] = f;
                pd[0] = data;
            }
            rows[m] = (int)scalar(pf[m], "row", (double)m);
            cols[m] = (int)scalar(pf[m], "column", 0);
            if (have_known) {
                int found = -1;
                for (int k = 0; k < known.nmodules; k++)
                    if (known.modules[k].row == rows[m] && known.modules[k].column == cols[m])
                        found = k;
                if (found < 0) {
                    rc = mg_error_set(&err, MG_ECONFIG, "%s is the module at row %d column %d, which %s does not "
                                      "describe", argv[optind + m], rows[m], cols[m], config);
                    goto done;
                }
                snprintf(names[m], MG_NAME_MAX, "%s", known.modules[found].name);
            } else if (np && *np) {
                size_t len = strcspn(np, ",");
                snprintf(names[m], MG_NAME_MAX, "%.*s", (int)(len < MG_NAME_MAX - 1 ? len : MG_NAME_MAX - 1), np);
                np += len + (np[len] == ',');
            } else
                snprintf(names[m], MG_NAME_MAX, "M%03zu", m);
        }
    } else {
        hid_t st = H5Tcopy(H5T_C_S1);
        H5Tset_size(st, MG_NAME_MAX);
        int bad = read_all(f, "detector/module_name", st, names, nmod) ||
                  read_all(f, "detector/module_row", H5T_NATIVE_INT, rows, nmod) ||
                  read_all(f, "detector/module_column", H5T_NATIVE_INT, cols, nmod);
        H5Tclose(st);
        if (bad) {
            rc = mg_error_set(&err, MG_EFORMAT, "%s has no /detector description for its %zu module(s)", in, nmod);
            goto done;
        }
    }
    for (size_t m = 0; m < nmod; m++) {
        snprintf(det.modules[m].name, MG_NAME_MAX, "%s", names[m]);
        det.modules[m].row = rows[m];
        det.modules[m].column = cols[m];
        det.modules[m].interfaces = 1;
        det.modules[m].ports[0] = (uint16_t)(1 + m);
    }
    if ((rc = mg_detector_validate(&det, &err)))
        goto done;
    /* everything about the calibration and geometry is checked before any frame is read */
    if ((rc = mg_calib_read(cal, &cb, &err)) || (rc = mg_calib_check(&cb, &det, &err)))
        goto done;
    const uint32_t *masks[MG_MAX_MODULES] = {0};
    for (size_t m = 0; m < nmod; m++) {
        mg_module_calib *x = mg_calib_module(&cb, det.modules[m].name, 0, 0);
        tables[m] = mg_calib_tables(x, kev ? 1.0 : energy, NULL, -1, &err);
        masks[m] = x->mask;
        if (!tables[m]) {
            rc = err.code;
            goto done;
        }
    }
    if ((rc = mg_geometry_init(&geom, &det, &co.geometry, &err)))
        goto done;
    /* per-frame records and times from the raw file */
    recs = calloc(nframes * nmod + 1, sizeof *recs);
    u64 = malloc((nframes * nmod + 1) * 16);
    index = malloc((nframes + 1) * sizeof(int64_t));
    pmask = malloc((size_t)geom.width * (size_t)geom.height * 4);
    if (!recs || !u64 || !index || !pmask) {
        rc = mg_error_set(&err, MG_ENOMEM, "out of memory for %zu frames' records", nframes);
        goto done;
    }
    int have = !read_all(f, "frames/index", H5T_NATIVE_INT64, index, nframes);
#define REC(path, field, mtype, ctype)                                                  \
    if (have && !read_all(f, path, mtype, u64, nframes * nmod))                         \
        for (size_t i = 0; i < nframes * nmod; i++)                                     \
            recs[i].field = (ctype)((const ctype *)u64)[i];
    REC("frames/frame_number", frame_number, H5T_NATIVE_UINT64, uint64_t)
    REC("frames/bunch_id", bunch_id, H5T_NATIVE_UINT64, uint64_t)
    REC("frames/timestamp", timestamp, H5T_NATIVE_UINT64, uint64_t)
    REC("frames/exposure_length", exposure_length, H5T_NATIVE_UINT32, uint32_t)
    REC("frames/daq_info", daq_info, H5T_NATIVE_UINT32, uint32_t)
    REC("frames/packets_received", packets, H5T_NATIVE_UINT16, uint16_t)
#undef REC
    if (have && !read_all(f, "frames/packet_mask", H5T_NATIVE_UINT8, u64, nframes * nmod * 16))
        for (size_t i = 0; i < nframes * nmod; i++)
            memcpy(recs[i].mask, (const uint8_t *)u64 + i * 16, 16);
    if (!have)
        for (size_t i = 0; i < nframes; i++)
            index[i] = (int64_t)i;
    if (per_module) /* what the original files say: one exposure and timestamp per module */
        for (size_t i = 0; i < nframes; i++)
            for (size_t m = 0; m < nmod; m++) {
                mg_module_frame *rm = &recs[i * nmod + m];
                rm->frame_number = i + 1;
                rm->exposure_length = (uint32_t)llround(scalar(pf[m], "exptime", 0) * 1e7);
                rm->timestamp = (uint64_t)scalar(pf[m], "timestamp", 0);
                rm->packets = MG_PACKETS_PER_MODULE;
                memset(rm->mask, 0xFF, 16);
            }
    mg_geometry_mask(&geom, masks, pmask);
    mg_nxmx_info info = {
        .geom = &geom,
        .det = &det,
        .type = type,
        .kev = kev,
        .pixel_mask = pmask,
        .energy_kev = energy,
        .distance_m = co.distance_mm / 1000,
        .beam_x = isnan(co.beam_x) ? geom.width / 2.0 : co.beam_x,
        .beam_y = isnan(co.beam_y) ? geom.height / 2.0 : co.beam_y,
        .count_time = nframes ? recs[0].exposure_length * 1e-7 : 0,
        .frame_time = nframes > 1 && recs[nmod].timestamp > recs[0].timestamp
                          ? (double)(recs[nmod].timestamp - recs[0].timestamp) * 1e-7
                          : 0,
        .sensor_thickness_m = 320e-6,
        .calibration_file = cal,
        .rotation = co.rotation,
        .omega_start = co.omega_start,
        .omega_increment = co.omega_increment,
    };
    mg_frame_layout layout;
    mg_nxmx_layout(&info, &layout);
    mg_rawfile_config rcfg = {.prefix = out, .det = &det, .frames_per_file = fpf, .overwrite = overwrite,
                              .layout = &layout};
    if (!(o = mg_rawfile_create(&rcfg, &err))) {
        rc = err.code;
        goto done;
    }
    size_t es = mg_out_size(type), img_px = (size_t)geom.width * (size_t)geom.height;
    size_t cap = mg_bshuf_bound(img_px, es);
    raw = malloc(nmod * P * 2);
    conv = malloc(P * es);
    img = malloc(img_px * es);
    chunk = malloc(cap);
    bs = mg_bshuf_ctx_new(es, MG_BSHUF_AUTO, &err);
    if (!raw || !conv || !img || !chunk || !bs) {
        rc = bs ? mg_error_set(&err, MG_ENOMEM, "out of memory") : err.code;
        goto close;
    }
    mg_geometry_fill_gaps(&geom, img, type);
    fs = H5Dget_space(data);
    hsize_t cnt[4] = {1, nmod, MG_MODULE_ROWS, MG_MODULE_COLS};
    hsize_t cnt3[3] = {1, MG_MODULE_ROWS, MG_MODULE_COLS};
    ms = per_module ? H5Screate_simple(3, cnt3, NULL) : H5Screate_simple(4, cnt, NULL);
    for (size_t i = 0; i < nframes && !rc; i++) {
        int ok = 1;
        if (per_module)
            for (size_t m = 0; m < nmod && ok; m++) {
                hsize_t start[3] = {i, 0, 0};
                hid_t sp = H5Dget_space(pd[m]);
                H5Sselect_hyperslab(sp, H5S_SELECT_SET, start, NULL, cnt3, NULL);
                ok = H5Dread(pd[m], H5T_NATIVE_UINT16, ms, sp, H5P_DEFAULT, raw + m * P) >= 0;
                H5Sclose(sp);
            }
        else {
            hsize_t start[4] = {i, 0, 0, 0};
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
            ok = H5Dread(data, H5T_NATIVE_UINT16, ms, fs, H5P_DEFAULT, raw) >= 0;
        }
        if (!ok) {
            rc = mg_error_set(&err, MG_EIO, "reading frame %zu failed (corrupt chunk?)", i);
            break;
        }
        for (size_t m = 0; m < nmod; m++) {
            mg_convert(tables[m], 0, P, raw + m * P, conv, type, MG_CONV_AUTO);
            mg_geometry_place(&geom, (int)m, conv, img, type);
        }
        int64_t n = mg_bshuf_compress(bs, img, img_px, chunk, cap, &err);
        if (n < 0 || mg_rawfile_write(o, index[i], recs + i * nmod, chunk, (size_t)n, &err))
            rc = err.code ? err.code : MG_EIO;
    }
close:
    written = mg_rawfile_frames(o);
    {
        mg_counter counters[] = {{"frames_written", written}};
        mg_error cerr = {0};
        if (mg_rawfile_close(o, counters, 1, &cerr) && !rc) {
            rc = cerr.code;
            err = cerr;
        }
    }
done:
    if (ms >= 0)
        H5Sclose(ms);
    if (fs >= 0)
        H5Sclose(fs);
    for (int m = 1; m < MG_MAX_MODULES; m++) {
        if (pd[m] >= 0)
            H5Dclose(pd[m]);
        if (pf[m] >= 0)
            H5Fclose(pf[m]);
    }
    if (data >= 0)
        H5Dclose(data);
    if (f >= 0)
        H5Fclose(f);
    for (size_t m = 0; m < MG_MAX_MODULES; m++)
        mg_conv_tables_free(tables[m]);
    mg_calib_free(&cb);
    mg_bshuf_ctx_free(bs);
    free(names), free(rows), free(cols), free(recs), free(u64), free(index), free(pmask), free(raw), free(conv),
        free(img), free(chunk);
    if (rc) {
        fprintf(stderr, "morgul correct: %s\n", err.message);
        return 1;
    }
    printf("corrected %llu frame(s) of %zu module(s) at %.4g keV into %s_master.h5 (%d x %d %s)\n",
           (unsigned long long)written, nmod, energy, out, geom.width, geom.height,
           type == MG_OUT_INT16 ? "int16" : type == MG_OUT_INT32 ? "int32" : "float32");
    return 0;
}
