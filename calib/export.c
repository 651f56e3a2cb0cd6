/* export.c - a calibration as whole-detector arrays (3, modules, 512,
 * 1024), the layout other facilities' correction software reads, with a
 * leading storage-cell dimension on the per-cell arrays when the modules
 * have cells (contract in morgul/calibration.h). */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "morgul/calibration.h"
#include "morgul/h5util.h"
#include "morgul/jungfrau.h"

#define P ((size_t)MG_MODULE_PIXELS)

static int write_array(hid_t f, const char *name, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                       const void *buf, const char *units, const char *what)
{
    hid_t s = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[5] = {1, 1, 1, MG_MODULE_ROWS, MG_MODULE_COLS};
    H5Pset_chunk(dcpl, rank, chunk + (5 - rank));
    H5Pset_deflate(dcpl, 1);
    H5Pset_fletcher32(dcpl); /* a checksum per chunk: every HDF5 reader checks it */
    hid_t d = H5Dcreate2(f, name, ftype, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    int rc = d < 0 || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0;
    if (d >= 0) {
        if (units)
            rc |= mg_h5_attr_str(d, "units", units) < 0;
        rc |= mg_h5_attr_str(d, "description", what) < 0;
        H5Dclose(d);
    }
    H5Pclose(dcpl);
    H5Sclose(s);
    return rc ? -1 : 0;
}

int mg_calib_export(const mg_calibration *c, const mg_detector *det, const char *path, int overwrite, mg_error *err)
{
    const int n = det->nmodules;
    const mg_module_calib *mods[MG_MAX_MODULES];
    for (int m = 0; m < n; m++) {
        mods[m] = mg_calib_find(c, det->modules[m].name);
        if (!mods[m] || !mods[m]->pedestal || !mods[m]->gain)
            return mg_error_set(err, MG_ECONFIG, "module %s has %s in the calibration: export needs pedestals and gain "
                                "maps of every module", det->modules[m].name, !mods[m] ? "no entry" : !mods[m]->gain
                                ? "no gain map" : "no pedestals");
    }
    if (n < 1)
        return mg_error_set(err, MG_EINVAL, "no modules to export");
    const int cells = mg_calib_cells(mods[0]);
    for (int m = 1; m < n; m++)
        if (mg_calib_cells(mods[m]) != cells)
            return mg_error_set(err, MG_ECONFIG, "module %s has %d storage cell(s), module %s %d: whole-detector arrays "
                                "need the same count in every module", det->modules[0].name, cells,
                                det->modules[m].name, mg_calib_cells(mods[m]));
    if (!overwrite && access(path, F_OK) == 0)
        return mg_error_set(err, MG_EEXIST, "%s exists; use --overwrite to replace it", path);
    const size_t total = 3 * (size_t)n * P, C = (size_t)cells;
    float *gain = malloc(total * sizeof(float)), *offset = calloc(total, sizeof(float));
    float *ped = malloc(C * total * sizeof(float)), *rms = malloc(C * total * sizeof(float));
    uint32_t *status = malloc(C * total * sizeof(uint32_t));
    int rc = 0;
    if (!gain || !offset || !ped || !rms || !status)
        rc = mg_error_set(err, MG_ENOMEM, "out of memory for the exported arrays");
    for (size_t k = 0; k < C && !rc; k++)
        for (int g = 0; g < 3; g++)
            for (int m = 0; m < n; m++) {
                const mg_module_calib *x = mods[m];
                const size_t at = ((k * 3 + (size_t)g) * (size_t)n + (size_t)m) * P, from = (k * 3 + (size_t)g) * P;
                for (size_t i = 0; i < P; i++) {
                    if (k == 0)
                        gain[at + i] = (float)x->gain[g * P + i];
                    ped[at + i] = x->pedestal[from + i];
                    rms[at + i] = x->pedestal_rms ? x->pedestal_rms[from + i] : NAN;
                    status[at + i] = x->mask ? x->mask[k * P + i] : 0;
                }
            }
    if (!rc) {
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.writing", path);
        hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
        if (f < 0)
            rc = mg_error_set(err, MG_EIO, "cannot create %s: %s", tmp, strerror(errno));
        else {
            hsize_t dims[4] = {3, (hsize_t)n, MG_MODULE_ROWS, MG_MODULE_COLS};
            hsize_t cdims[5] = {C, 3, (hsize_t)n, MG_MODULE_ROWS, MG_MODULE_COLS};
            /* per-cell arrays: (cells, 3, modules, 512, 1024) with storage cells */
            const int cr = cells > 1 ? 5 : 4;
            const hsize_t *cd = cells > 1 ? cdims : dims;
            int bad = 0;
            bad |= write_array(f, "pixel_gain", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, dims, gain, "ADU/keV",
                               "gain per gain stage (G0, G1, G2), module (in module_name order) and pixel; G1 and G2 "
                               "negative as in PSI gain maps");
            bad |= write_array(f, "pixel_offset", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, dims, offset, "ADU",
                               "offset applied after the pedestal: zero, morgul's conversion has none");
            bad |= write_array(f, "pedestals", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, cr, cd, ped, "ADU",
                               "pedestal per [storage cell,] gain stage, module and pixel; NaN unknown");
            bad |= write_array(f, "pixel_rms", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, cr, cd, rms, "ADU",
                               "dark noise per [storage cell,] gain stage, module and pixel; NaN unknown");
            bad |= write_array(f, "pixel_status", H5T_STD_U32LE, H5T_NATIVE_UINT32, cr, cd, status, NULL,
                               "bad-pixel bits (morgul mask, docs/file-formats.md) per [storage cell,] module and "
                               "pixel, the same for every gain stage");
            bad |= mg_h5_attr_int(f, "storage_cells", cells) < 0;
            hsize_t nm = (hsize_t)n;
            hid_t st = H5Tcopy(H5T_C_S1);
            H5Tset_size(st, MG_NAME_MAX);
            char names[MG_MAX_MODULES][MG_NAME_MAX];
            memset(names, 0, sizeof names);
            for (int m = 0; m < n; m++)
                snprintf(names[m], MG_NAME_MAX, "%s", det->modules[m].name);
            hid_t sp = H5Screate_simple(1, &nm, NULL);
            hid_t d = H5Dcreate2(f, "module_name", st, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
            bad |= d < 0 || H5Dwrite(d, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, names) < 0;
            if (d >= 0)
                H5Dclose(d);
            H5Sclose(sp);
            H5Tclose(st);
            bad |= mg_h5_attr_str(f, "detector", c->detector[0] ? c->detector : "jungfrau") < 0;
            bad |= mg_h5_attr_str(f, "morgul_version", MG_VERSION) < 0;
            if (c->exposure_s == c->exposure_s)
                bad |= mg_h5_attr_double(f, "exposure_time", c->exposure_s) < 0;
            if (c->taken > 0)
                bad |= mg_h5_attr_double(f, "time_taken", c->taken) < 0;
            bad |= H5Fclose(f) < 0;
            if (bad)
                rc = mg_error_set(err, MG_EIO, "writing %s failed (disk full?)", tmp);
            else if (rename(tmp, path))
                rc = mg_error_set(err, MG_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
            if (rc)
                unlink(tmp);
        }
    }
    free(gain), free(offset), free(ped), free(rms), free(status);
    return rc;
}
