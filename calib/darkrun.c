/* darkrun.c - dark runs into the calibration file (contract in
 * morgul/darkrun.h). */
#include "morgul/darkrun.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "morgul/calibration.h"
#include "morgul/h5util.h"
#include "morgul/jungfrau.h"
#include "morgul/pedestal.h"
#include "morgul/rawread.h"

#define P ((size_t)MG_MODULE_PIXELS)

void mg_dark_info_defaults(mg_dark_info *d)
{
    memset(d, 0, sizeof *d);
    mg_mask_criteria_defaults(&d->criteria);
    d->exposure_s = NAN;
}

/* The user mask of module `name` from an HDF5 file into user (P bytes). */
static int read_user_mask(const char *path, const char *name, uint8_t *user, mg_error *err)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    if (access(path, F_OK) == 0 && mg_h5_probe(path, SIZE_MAX, err))
        return err ? err->code : MG_EDATA;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return mg_error_set(err, MG_EIO, "cannot open the user mask %s (missing, or not HDF5)", path);
    char ds[MG_NAME_MAX + 8];
    snprintf(ds, sizeof ds, "%s/mask", name);
    const char *use = H5Lexists(f, name, H5P_DEFAULT) > 0 && H5Lexists(f, ds, H5P_DEFAULT) > 0 ? ds
                      : H5Lexists(f, "mask", H5P_DEFAULT) > 0                                 ? "mask"
                                                                                              : NULL;
    int rc = 0;
    if (!use)
        rc = mg_error_set(err, MG_EFORMAT, "the user mask %s has neither /%s/mask nor /mask", path, name);
    else {
        hid_t d = H5Dopen2(f, use, H5P_DEFAULT);
        hid_t s = H5Dget_space(d);
        hsize_t dims[2] = {0};
        int ok = H5Sget_simple_extent_ndims(s) == 2;
        if (ok)
            H5Sget_simple_extent_dims(s, dims, NULL);
        ok = ok && dims[0] == MG_MODULE_ROWS && dims[1] == MG_MODULE_COLS;
        uint32_t *v = ok ? malloc(P * sizeof(uint32_t)) : NULL;
        if (!ok)
            rc = mg_error_set(err, MG_EFORMAT, "the user mask %s: /%s is not (512, 1024)", path, use);
        else if (!v || H5Dread(d, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
            rc = mg_error_set(err, MG_EIO, "reading the user mask %s failed", path);
        else
            for (size_t p = 0; p < P; p++)
                user[p] = v[p] != 0;
        free(v);
        H5Sclose(s);
        H5Dclose(d);
    }
    H5Fclose(f);
    return rc;
}

static void *alloc_planes(void **slot, size_t bytes, int fill_nan)
{
    if (!*slot) {
        *slot = malloc(bytes);
        if (*slot && fill_nan)
            for (size_t i = 0; i < bytes / sizeof(float); i++)
                ((float *)*slot)[i] = NAN;
        else if (*slot)
            memset(*slot, 0, bytes);
    }
    return *slot;
}

int mg_dark_mask(mg_module_calib *x, const mg_mask_criteria *c, const uint8_t *user, mg_mask_summary *sum)
{
    const int cells = mg_calib_cells(x);
    for (int k = 0; k < cells; k++) {
        const size_t o = (size_t)k * 3 * P;
        mg_dark_stats st = {.pixels = P, .mean = x->pedestal + o, .rms = x->pedestal_rms + o,
                            .frames_used = x->frames_used + o, .wrong_gain = x->wrong_gain + o};
        memcpy(st.frames, cells > 1 ? x->cell_frames[k] : x->dark_frames, sizeof st.frames);
        if (mg_mask_compute(c, &st, user, x->mask + (size_t)k * P, sum ? sum + k : NULL))
            return -1;
    }
    return 0;
}

int mg_dark_save(const char *cal, const mg_detector *det, struct mg_pedestal_acc *const *acc,
                 const mg_dark_info *info, FILE *report, mg_error *err)
{
    mg_calibration cb;
    int rc = mg_calib_load_or_new(cal, &cb, det->name, err);
    if (rc)
        return rc;
    const int cells = mg_dark_cells(info);
    const size_t C = (size_t)cells;
    float *mean = malloc(3 * P * sizeof(float)), *rms = malloc(3 * P * sizeof(float));
    uint32_t *used = malloc(3 * P * sizeof(uint32_t)), *wrong = malloc(3 * P * sizeof(uint32_t));
    uint8_t *user = info->user_mask ? malloc(P) : NULL;
    mg_mask_summary *sum = malloc(C * sizeof *sum);
    if (!mean || !rms || !used || !wrong || !sum || (info->user_mask && !user))
        rc = mg_error_set(err, MG_ENOMEM, "out of memory for the dark-run results");
    for (int m = 0; m < det->nmodules && !rc; m++) {
        const mg_module *mod = &det->modules[m];
        mg_module_calib *x = mg_calib_module(&cb, mod->name, mod->row, mod->column);
        if (!x) {
            rc = mg_error_set(err, MG_ECONFIG, "the calibration file is full (%d modules)", MG_MAX_MODULES);
            break;
        }
        if (x->pedestal && mg_calib_cells(x) != cells) {
            rc = mg_error_set(err, MG_ECONFIG, "%s holds module %s with %d storage cell(s), these dark runs have %d: "
                              "write them to a new calibration file", cal, mod->name, mg_calib_cells(x), cells);
            break;
        }
        if (mg_calib_set_cells(x, cells)) {
            rc = mg_error_set(err, MG_ENOMEM, "out of memory for module %s", mod->name);
            break;
        }
        x->row = mod->row;
        x->column = mod->column;
        if (!alloc_planes((void **)&x->pedestal, C * 3 * P * sizeof(float), 1) ||
            !alloc_planes((void **)&x->pedestal_rms, C * 3 * P * sizeof(float), 1) ||
            !alloc_planes((void **)&x->frames_used, C * 3 * P * sizeof(uint32_t), 0) ||
            !alloc_planes((void **)&x->wrong_gain, C * 3 * P * sizeof(uint32_t), 0) ||
            !alloc_planes((void **)&x->mask, C * P * sizeof(uint32_t), 0)) {
            rc = mg_error_set(err, MG_ENOMEM, "out of memory for module %s", mod->name);
            break;
        }
        uint64_t zero = 0;
        for (int k = 0; k < cells; k++) {
            struct mg_pedestal_acc *a = acc[(size_t)m * C + (size_t)k];
            const size_t o = (size_t)k * 3 * P;
            mg_pedestal_result(a, mean, rms, used, wrong);
            zero += mg_pedestal_zero_frames(a);
            for (int g = 0; g < 3; g++) {
                uint64_t n = mg_pedestal_frames(a, g);
                if (!n)
                    continue; /* that gain's run was not taken now (or not in this cell): keep what the file has */
                memcpy(x->pedestal + o + g * P, mean + g * P, P * sizeof(float));
                memcpy(x->pedestal_rms + o + g * P, rms + g * P, P * sizeof(float));
                memcpy(x->frames_used + o + g * P, used + g * P, P * sizeof(uint32_t));
                memcpy(x->wrong_gain + o + g * P, wrong + g * P, P * sizeof(uint32_t));
                x->cell_frames[k][g] = n;
            }
        }
        /* a gain's run taken now replaces the frame counts of all cells */
        for (int g = 0; g < 3; g++) {
            uint64_t n = 0;
            for (int k = 0; k < cells; k++)
                n += mg_pedestal_frames(acc[(size_t)m * C + (size_t)k], g);
            if (n)
                x->dark_frames[g] = n;
        }
        if (info->exposure_s == info->exposure_s)
            x->exposure_s = info->exposure_s;
        if (info->taken > 0)
            x->taken = info->taken;
        if (info->sources)
            snprintf(x->sources, sizeof x->sources, "%s", info->sources);
        if (user && (rc = read_user_mask(info->user_mask, mod->name, user, err)))
            break;
        if (mg_dark_mask(x, &info->criteria, user, sum)) {
            rc = mg_error_set(err, MG_ENOMEM, "out of memory for the mask of module %s", mod->name);
            break;
        }
        if (report) {
            fprintf(report, "dark frames G0 %llu  G1 %llu  G2 %llu  (all-zero frames skipped: %llu)%s\n",
                    (unsigned long long)x->dark_frames[0], (unsigned long long)x->dark_frames[1],
                    (unsigned long long)x->dark_frames[2], (unsigned long long)zero,
                    cells > 1 ? ", all cells" : "");
            if (cells > 1)
                mg_mask_summary_print_cells(mod->name, sum, cells, report);
            else
                mg_mask_summary_print(mod->name, sum, report);
        }
    }
    if (!rc) {
        if (info->exposure_s == info->exposure_s)
            cb.exposure_s = info->exposure_s;
        if (info->taken > 0)
            cb.taken = info->taken;
        rc = mg_calib_write(cal, &cb, err);
    }
    free(mean), free(rms), free(used), free(wrong), free(user), free(sum);
    mg_calib_free(&cb);
    return rc;
}

int mg_dark_frame_cell(const mg_module_frame *rec, int nmod, int cells, uint32_t *seen)
{
    const unsigned cell = MG_DAQ_STORAGE_CELL(rec[0].daq_info);
    int other = 0;
    for (int m = 0; m < nmod; m++) {
        unsigned c = MG_DAQ_STORAGE_CELL(rec[m].daq_info);
        *seen |= 1u << c;
        other |= c != cell || c >= (unsigned)cells;
    }
    return cells <= 1 ? 0 : other ? -1 : (int)cell;
}

int mg_dark_frame_gain(uint32_t daq_info, int64_t index, int gain, int mode_frames, int mode_loops)
{
    int g = mg_pedestal_gain_of_daq(daq_info);
    if (!g)
        g = mode_frames > 0 ? mg_pedestal_mode_gain((uint64_t)index, mode_frames, mode_loops) : gain;
    return g;
}

void mg_dark_cells_report(const mg_dark_info *info, FILE *out)
{
    const int cells = mg_dark_cells(info);
    const int seen = __builtin_popcount(info->cells_seen);
    if (cells > 1) {
        if (info->frames_other_cell)
            fprintf(out, "warning: %llu frame(s) named a storage cell beyond --storage-cells %d and were left out\n",
                    (unsigned long long)info->frames_other_cell, cells);
        for (int k = 0; k < cells; k++)
            if (!(info->cells_seen >> k & 1))
                fprintf(out, "warning: no frame of storage cell %d: its constants are unknown and its pixels will be "
                             "invalid\n", k);
    } else if (seen > 1)
        fprintf(out, "warning: the frames name %d different storage cells but were averaged as one: for a burst-mode "
                     "run give --storage-cells N\n", seen);
}

int mg_dark_accs_new(struct mg_pedestal_acc **acc, int n, mg_error *err)
{
    memset(acc, 0, (size_t)n * sizeof *acc);
    for (int m = 0; m < n; m++)
        if (!(acc[m] = mg_pedestal_acc_new(P, MG_PED_AUTO, err))) {
            mg_dark_accs_free(acc, n);
            return err ? err->code : MG_ENOMEM;
        }
    return 0;
}

void mg_dark_accs_free(struct mg_pedestal_acc **acc, int n)
{
    for (int m = 0; m < n; m++) {
        mg_pedestal_acc_free(acc[m]);
        acc[m] = NULL;
    }
}

int mg_dark_run(mg_run_config *cfg, int live, struct mg_pedestal_acc *const *acc, int gain, int mode_frames,
                int mode_loops, mg_dark_info *info, mg_run_summary *sum, mg_error *err)
{
    cfg->pedestal = acc;
    cfg->pedestal_cells = mg_dark_cells(info);
    cfg->pedestal_gain = gain;
    cfg->pedestal_frames = mode_frames;
    cfg->pedestal_loops = mode_loops;
    memset(sum, 0, sizeof *sum);
    int rc = live ? mg_run_receive(cfg, sum, err) : mg_run_replay(cfg, sum, err);
    info->frames_other_cell += sum->frames_other_cell;
    info->cells_seen |= sum->cells_seen;
    if (rc)
        return rc;
    if (!sum->frames_dark)
        /* why the run ended and what did come, so that a stop, an empty capture and frames that never
         * completed are told apart */
        return mg_error_set(err, MG_EINVAL,
                            "no complete frame came: nothing to average (the run ended: %s; %llu packets taken, %llu "
                            "frames incomplete, %llu datagrams refused or stray)",
                            mg_run_end_reason(sum->stopped_by), (unsigned long long)sum->total.packets,
                            (unsigned long long)(sum->frames.frames_partial + sum->frames.frames_missing),
                            (unsigned long long)mg_run_refused(sum));
    if (info->exposure_s != info->exposure_s && sum->dark_exposure)
        info->exposure_s = sum->dark_exposure * 1e-7;
    return 0;
}

int mg_dark_rawread(struct mg_rawread *r, struct mg_pedestal_acc *const *acc, int gain, int mode_frames,
                    int mode_loops, mg_dark_info *info, uint64_t *frames, uint64_t *partial, mg_error *err)
{
    const int nmod = mg_rawread_detector(r)->nmodules, cells = mg_dark_cells(info);
    const size_t n = mg_rawread_frames(r);
    uint16_t *raw = malloc((size_t)nmod * P * sizeof(uint16_t));
    if (!raw)
        return mg_error_set(err, MG_ENOMEM, "out of memory for a frame of %d modules", nmod);
    *frames = *partial = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!mg_rawread_complete(r, i)) {
            (*partial)++;
            continue;
        }
        if ((rc = mg_rawread_frame(r, i, raw, err)))
            break;
        const mg_module_frame *rec = mg_rawread_records(r, i);
        const int cell = mg_dark_frame_cell(rec, nmod, cells, &info->cells_seen);
        if (cell < 0) {
            info->frames_other_cell++;
            continue;
        }
        for (int m = 0; m < nmod; m++)
            mg_pedestal_add(acc[(size_t)m * (size_t)cells + (size_t)cell], raw + (size_t)m * P,
                            mg_dark_frame_gain(rec[m].daq_info, mg_rawread_index(r, i), gain, mode_frames, mode_loops));
        (*frames)++;
    }
    free(raw);
    if (!rc && !*frames)
        rc = mg_error_set(err, MG_EINVAL, "no complete frame in the file(s): nothing to average");
    if (!rc && info->exposure_s != info->exposure_s)
        info->exposure_s = mg_rawread_exposure(r);
    if (!rc && !(info->taken > 0))
        info->taken = mg_rawread_start(r);
    return rc;
}
