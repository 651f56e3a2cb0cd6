/* morgul/nxmx.h - corrected frames as NXmx files that DIALS and XDS (with
 * Durin or Neggia) read (layout in docs/file-formats.md).
 *
 * The frame files (morgul/rawfile.h) take the layout from mg_nxmx_layout:
 * data files hold /entry/data/data (frames, height, width) with one
 * bitshuffle/LZ4 chunk per frame, and the per-frame records of the packet
 * path under /entry/instrument/detector/jungfrau/frames.  The master file
 * gets, through the layout's hook, the NXmx description: the detector with
 * its pixel mask, saturation and underload values, pixel size, sensor,
 * times, beam centre, distance, the depends_on chain and the module's
 * axes; the beam's wavelength; the sample and the source by name; start,
 * end and estimated end times from the data (morgul/rawfile.h's
 * mg_master_facts); and an NXcollection "jungfrau"
 * with module names and the calibration file used.
 *
 * The sample: for a rotation series, /entry/sample/depends_on points to an
 * omega axis (transformations/omega, degrees per frame, about -x as at most
 * MX beamlines); otherwise it is "." (stills, e.g. serial crystallography).
 */
#ifndef MORGUL_NXMX_H
#define MORGUL_NXMX_H

#include "morgul/convert.h"
#include "morgul/geometry.h"
#include "morgul/rawfile.h"

typedef struct mg_nxmx_info {
    const mg_geometry *geom;
    const mg_detector *det;
    mg_out_type type;
    int kev;                       /* values are keV, not photons */
    const uint32_t *pixel_mask;    /* height x width */
    double energy_kev;             /* photon energy: gives incident_wavelength */
    double distance_m;             /* sample to detector */
    double beam_x, beam_y;         /* beam centre, pixels (fast, slow) */
    double count_time, frame_time; /* seconds */
    double sensor_thickness_m;     /* 320 um unless told */
    const char *calibration_file;
    int rotation;                  /* a rotation series: omega per frame from start and increment */
    double omega_start, omega_increment; /* degrees */
    char start_time[32];           /* ISO 8601, filled by mg_nxmx_layout: when the files began, the start
                                      until a frame's arrival time is known (mg_rawfile_time) */
    const char *sample_name;       /* /entry/sample/name; NULL or "": "unknown" */
    const char *source_name;       /* /entry/source/name (the facility's source); NULL or "": "unknown" */
    /* the run-time pedestal, if one was used (runtime_mode non-NULL): recorded
     * under jungfrau/runtime_pedestal with each module's G0 pedestal */
    const char *runtime_mode;      /* "auto" or "fixed" */
    uint64_t runtime_frames;       /* dark frames averaged */
    int64_t runtime_onset;         /* frame index of the first frame with signal, -1 none */
    const float *const *runtime_p0; /* per module (det order), [cells,] 512 x 1024 */
    int runtime_cells;             /* storage cells of runtime_p0, 0 or 1: none */
} mg_nxmx_info;

/* The sample name used when none is given: the output prefix's last part
 * ("/data/run1/lyso" -> "lyso"), a pointer into `prefix` (NULL: NULL). */
const char *mg_nxmx_default_sample(const char *prefix);

/* Fills the frame-file layout for corrected images of `info` (which must
 * outlive the file: the master hook reads it). */
void mg_nxmx_layout(mg_nxmx_info *info, mg_frame_layout *layout);

#endif
