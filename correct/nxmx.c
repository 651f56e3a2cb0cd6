/* nxmx.c - the NXmx description of corrected data (see morgul/nxmx.h). */
#include "morgul/nxmx.h"

#include <float.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "morgul/h5util.h"
#include "morgul/jungfrau.h"

#define PIXEL_M 75e-6
#define DET "entry/instrument/detector"

static void attr_vec(hid_t loc, const char *name, const double *v, int n)
{
    hsize_t d = (hsize_t)n;
    hid_t s = H5Screate_simple(1, &d, NULL);
    hid_t a = H5Acreate2(loc, name, H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_DOUBLE, v);
    H5Aclose(a);
    H5Sclose(s);
}

static hid_t group(hid_t f, const char *path, const char *nx_class)
{
    hid_t g = H5Lexists(f, path, H5P_DEFAULT) > 0 ? H5Gopen2(f, path, H5P_DEFAULT) : -1;
    if (g < 0) {
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        g = H5Gcreate2(f, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        H5Pclose(lcpl);
    }
    if (g >= 0)
        mg_h5_attr_str(g, "NX_class", nx_class);
    return g;
}

/* A scalar dataset with optional units; returns it open (for attributes) or -1. */
static hid_t scalar_f64(hid_t g, const char *name, double v, const char *units)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(g, name, H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
        H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, &v);
        if (units)
            mg_h5_attr_str(d, "units", units);
    }
    H5Sclose(s);
    return d;
}

static void put_f64(hid_t g, const char *name, double v, const char *units)
{
    hid_t d = scalar_f64(g, name, v, units);
    if (d >= 0)
        H5Dclose(d);
}

static void put_scalar(hid_t g, const char *name, hid_t file_type, hid_t mem_type, const void *v)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t d = H5Dcreate2(g, name, file_type, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d >= 0) {
        H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        H5Dclose(d);
    }
    H5Sclose(s);
}

static void put_i64(hid_t g, const char *name, long long v)
{
    put_scalar(g, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &v);
}

static void put_u64(hid_t g, const char *name, uint64_t v)
{
    put_scalar(g, name, H5T_STD_U64LE, H5T_NATIVE_UINT64, &v);
}

static void put_i32_vec(hid_t g, const char *name, const int *v, int n)
{
    hsize_t d = (hsize_t)n;
    hid_t s = H5Screate_simple(1, &d, NULL);
    hid_t ds = H5Dcreate2(g, name, H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (ds >= 0) {
        H5Dwrite(ds, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        H5Dclose(ds);
    }
    H5Sclose(s);
}

/* A translation axis of the depends_on chain. */
static void axis(hid_t g, const char *name, double value, const char *depends_on, const double vector[3],
                 const double offset[3])
{
    hid_t d = scalar_f64(g, name, value, "m");
    if (d < 0)
        return;
    mg_h5_attr_str(d, "depends_on", depends_on);
    mg_h5_attr_str(d, "transformation_type", "translation");
    attr_vec(d, "vector", vector, 3);
    if (offset) {
        attr_vec(d, "offset", offset, 3);
        mg_h5_attr_str(d, "offset_units", "m");
    }
    H5Dclose(d);
}

static int write_master(int64_t file, const mg_master_facts *facts, void *ctx)
{
    const mg_nxmx_info *in = ctx;
    hid_t f = (hid_t)file;
    const mg_geometry *g = in->geom;
    const uint64_t frames = facts->frames;
    hid_t entry = group(f, "entry", "NXentry");
    if (entry < 0)
        return -1;
    mg_h5_attr_str(entry, "default", "data");
    mg_h5_put_string(entry, "definition", "NXmx", NULL);
    /* times from the data: the first frame's arrival (the capture's record time in a replay, the raw run's
     * for correct); until a frame came, when the files began */
    char start[40], end[40];
    if (facts->start > 0)
        mg_h5_time_iso(facts->start, 3, start, sizeof start);
    else
        snprintf(start, sizeof start, "%s", in->start_time);
    mg_h5_put_string(entry, "start_time", start, NULL);
    /* NXmx requires an estimate of the end; while the run goes on it is the latest frame's arrival */
    if (facts->end > 0)
        mg_h5_time_iso(facts->end, 3, end, sizeof end);
    else
        snprintf(end, sizeof end, "%s", start);
    mg_h5_put_string(entry, "end_time_estimated", end, NULL);
    if (facts->ended && facts->end > 0)
        mg_h5_put_string(entry, "end_time", end, NULL);
    hid_t src = group(f, "entry/source", "NXsource");
    mg_h5_put_string(src, "name", in->source_name && *in->source_name ? in->source_name : "unknown", NULL);
    H5Gclose(src);
    hid_t data = group(f, "entry/data", "NXdata");
    mg_h5_attr_str(data, "signal", "data");
    H5Gclose(data);
    hid_t instr = group(f, "entry/instrument", "NXinstrument");
    mg_h5_put_string(instr, "name", "JUNGFRAU (morgul)", NULL);
    H5Gclose(instr);
    hid_t beam = group(f, "entry/instrument/beam", "NXbeam");
    put_f64(beam, "incident_wavelength", 12.398419843320026 / in->energy_kev, "angstrom");
    H5Gclose(beam);

    hid_t det = group(f, DET, "NXdetector");
    char desc[128];
    snprintf(desc, sizeof desc, "JUNGFRAU %d module%s (%s)", in->det->nmodules, in->det->nmodules == 1 ? "" : "s",
             in->det->name);
    mg_h5_put_string(det, "description", desc, NULL);
    mg_h5_put_string(det, "type", "pixel", NULL);
    mg_h5_put_string(det, "depends_on", "/" DET "/transformations/translation", NULL);
    mg_h5_put_string(det, "sensor_material", "Si", NULL);
    put_f64(det, "sensor_thickness", in->sensor_thickness_m, "m");
    put_f64(det, "x_pixel_size", PIXEL_M, "m");
    put_f64(det, "y_pixel_size", PIXEL_M, "m");
    /* given (correct: from the raw run's records), else from the frames' headers as they were written */
    put_f64(det, "count_time", in->count_time > 0 ? in->count_time : facts->count_time, "s");
    put_f64(det, "frame_time", in->frame_time > 0 ? in->frame_time : facts->frame_time, "s");
    put_f64(det, "beam_center_x", in->beam_x, "pixel");
    put_f64(det, "beam_center_y", in->beam_y, "pixel");
    put_f64(det, "distance", in->distance_m, "m");
    put_i64(det, "bit_depth_readout", 16);
    put_i64(det, "bit_depth_image", in->type == MG_OUT_INT16 ? 16 : 32);
    /* NXmx: valid pixels lie from underload_value to saturation_value.
     * Readers differ on whether the ends are included (dxtbx before 3.13
     * trusts underload <= v < saturation, later ones underload <= v <=
     * saturation), so each end is one step inside the values that mark a
     * pixel: the saturated value is above saturation_value and the invalid
     * value below underload_value, and every reader leaves both out. */
    if (in->type == MG_OUT_INT16) {
        put_i64(det, "saturation_value", MG_INT16_SATURATED - 1);
        put_i64(det, "underload_value", MG_INT16_INVALID + 1);
    } else if (in->type == MG_OUT_INT32) {
        put_i64(det, "saturation_value", MG_INT32_SATURATED - 1);
        put_i64(det, "underload_value", 0);
    } else { /* finite (dxtbx converts it to a number): saturated is +inf, invalid NaN */
        put_f64(det, "saturation_value", FLT_MAX, NULL);
        put_f64(det, "underload_value", -FLT_MAX, NULL);
    }
    /* the pixel mask, contiguous and uncompressed: XDS's Neggia plugin reads
     * no other layout (and the master is rewritten only per data file) */
    hsize_t dims[2] = {(hsize_t)g->height, (hsize_t)g->width};
    hid_t s = H5Screate_simple(2, dims, NULL);
    hid_t m = H5Dcreate2(det, "pixel_mask", H5T_STD_U32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    int bad = m < 0 || H5Dwrite(m, H5T_NATIVE_UINT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, in->pixel_mask) < 0;
    if (m >= 0)
        H5Dclose(m);
    H5Sclose(s);
    put_i64(det, "pixel_mask_applied", 0);
    /* what XDS's plugins read besides NXmx (the Eiger layout): the number of
     * images and triggers, the same mask (a second name for it) and the
     * image size; the frames are linked file by file as /entry/data/data_NNNNNN.
     * Not for float32: Neggia would take the float bits for counts; without
     * this group it refuses the file, saying it has no pixel mask. */
    hid_t ds = in->type == MG_OUT_FLOAT32 ? 0 : group(f, DET "/detectorSpecific", "NXcollection");
    if (ds == 0)
        ;
    else if (ds < 0)
        bad = 1;
    else {
        put_u64(ds, "nimages", frames);
        put_u64(ds, "ntrigger", 1);
        put_u64(ds, "x_pixels_in_detector", (uint64_t)g->width);
        put_u64(ds, "y_pixels_in_detector", (uint64_t)g->height);
        bad |= H5Lcreate_hard(det, "pixel_mask", ds, "pixel_mask", H5P_DEFAULT, H5P_DEFAULT) < 0;
        H5Gclose(ds);
    }

    /* the depends_on chain: detector translation along the beam, the module
     * placed so that the beam centre pixel lies on the beam, pixels running
     * along -x (fast) and -y (slow) as seen from the sample */
    hid_t tr = group(f, DET "/transformations", "NXtransformations");
    const double z[3] = {0, 0, 1}, x[3] = {1, 0, 0}, mx[3] = {-1, 0, 0}, my[3] = {0, -1, 0}, zero[3] = {0, 0, 0};
    axis(tr, "translation", in->distance_m, ".", z, NULL);
    H5Gclose(tr);
    hid_t mod = group(f, DET "/module", "NXdetector_module");
    int origin[2] = {0, 0}, size[2] = {g->height, g->width};
    put_i32_vec(mod, "data_origin", origin, 2);
    put_i32_vec(mod, "data_size", size, 2);
    const double off[3] = {in->beam_x * PIXEL_M, in->beam_y * PIXEL_M, 0};
    axis(mod, "module_offset", 0, "/" DET "/transformations/translation", x, off);
    axis(mod, "fast_pixel_direction", PIXEL_M, "/" DET "/module/module_offset", mx, zero);
    axis(mod, "slow_pixel_direction", PIXEL_M, "/" DET "/module/module_offset", my, zero);
    H5Gclose(mod);

    hid_t jf = group(f, DET "/jungfrau", "NXcollection");
    mg_h5_put_string(jf, "calibration_file", in->calibration_file ? in->calibration_file : "", NULL);
    put_f64(jf, "photon_energy", in->energy_kev, "keV");
    mg_h5_put_string(jf, "values", in->kev ? "keV" : "photons", NULL);
    mg_h5_put_string(jf, "layout", g->cfg.raw_layout ? "raw: modules stacked, 512 x 1024 each"
                          : g->cfg.mask_big ? "expanded 514 x 1030, big pixels masked"
                                            : "expanded 514 x 1030, big pixels split", NULL);
    if (in->runtime_mode) {
        hid_t rp = group(f, DET "/jungfrau/runtime_pedestal", "NXcollection");
        mg_h5_put_string(rp, "mode", in->runtime_mode, NULL);
        put_i64(rp, "frames", (long long)in->runtime_frames);
        put_i64(rp, "onset", (long long)in->runtime_onset);
        /* per module (cells, 512, 1024) with storage cells, else (512, 1024) */
        const int cells = in->runtime_cells > 1 ? in->runtime_cells : 1, rank = cells > 1 ? 3 : 2;
        hsize_t dims[3] = {(hsize_t)cells, MG_MODULE_ROWS, MG_MODULE_COLS}, chunk[3] = {1, MG_MODULE_ROWS, MG_MODULE_COLS};
        hid_t sp = H5Screate_simple(rank, dims + (3 - rank), NULL);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, rank, chunk + (3 - rank));
        H5Pset_deflate(dcpl, 1);
        for (int m = 0; m < in->det->nmodules && in->runtime_p0; m++) {
            hid_t d = H5Dcreate2(rp, in->det->modules[m].name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
            if (d >= 0) {
                H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, in->runtime_p0[m]);
                H5Dclose(d);
            }
        }
        H5Pclose(dcpl);
        H5Sclose(sp);
        H5Gclose(rp);
    }
    H5Gclose(jf);
    H5Gclose(det);

    hid_t sample = group(f, "entry/sample", "NXsample");
    mg_h5_put_string(sample, "name", in->sample_name && *in->sample_name ? in->sample_name : "unknown", NULL);
    if (in->rotation) { /* (with no frame yet: an empty omega whose start morgul repair can extend) */
        mg_h5_put_string(sample, "depends_on", "/entry/sample/transformations/omega", NULL);
        hid_t tr2 = group(f, "entry/sample/transformations", "NXtransformations");
        hsize_t n = (hsize_t)frames;
        hid_t sp = H5Screate_simple(1, &n, NULL);
        double *om = malloc(sizeof(double) * (frames + 1)), *inc = malloc(sizeof(double) * (frames + 1));
        for (uint64_t i = 0; om && inc && i < frames; i++) {
            om[i] = in->omega_start + (double)i * in->omega_increment;
            inc[i] = in->omega_increment;
        }
        hid_t od = om && inc ? H5Dcreate2(tr2, "omega", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
        if (od >= 0) {
            H5Dwrite(od, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, om);
            const double axis_vec[3] = {-1, 0, 0};
            mg_h5_attr_str(od, "units", "deg");
            mg_h5_attr_str(od, "depends_on", ".");
            mg_h5_attr_str(od, "transformation_type", "rotation");
            attr_vec(od, "vector", axis_vec, 3);
            mg_h5_attr_double(od, "morgul_start", in->omega_start);
            H5Dclose(od);
            hid_t id = scalar_f64(tr2, "omega_increment_set", in->omega_increment, "deg");
            if (id >= 0)
                H5Dclose(id);
        } else
            bad = 1;
        free(om);
        free(inc);
        H5Sclose(sp);
        H5Gclose(tr2);
    } else
        mg_h5_put_string(sample, "depends_on", ".", NULL);
    H5Gclose(sample);
    H5Gclose(entry);
    return bad ? -1 : 0;
}

const char *mg_nxmx_default_sample(const char *prefix)
{
    if (!prefix)
        return NULL;
    const char *slash = strrchr(prefix, '/');
    return slash ? slash + 1 : prefix;
}

void mg_nxmx_layout(mg_nxmx_info *info, mg_frame_layout *layout)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(info->start_time, sizeof info->start_time, "%Y-%m-%dT%H:%M:%SZ", &tm);
    memset(layout, 0, sizeof *layout);
    layout->data_path = "entry/data/data";
    layout->group = DET "/jungfrau";
    layout->rank = 2;
    layout->dims[0] = (uint64_t)info->geom->height;
    layout->dims[1] = (uint64_t)info->geom->width;
    layout->elem = info->type == MG_OUT_INT16 ? MG_ELEM_I16 : info->type == MG_OUT_INT32 ? MG_ELEM_I32 : MG_ELEM_F32;
    layout->description = info->type == MG_OUT_INT16
                              ? (info->kev ? "keV; -32768 invalid, 32767 saturated" : "photons; -32768 invalid, 32767 saturated")
                          : info->type == MG_OUT_INT32
                              ? (info->kev ? "keV; -1 invalid, 2147483647 saturated" : "photons; -1 invalid, 2147483647 saturated")
                              : (info->kev ? "keV; NaN invalid, +inf saturated" : "photons; NaN invalid, +inf saturated");
    layout->link_files = 1;
    layout->master_extra = write_master;
    layout->ctx = info;
}
