/* morgul/simulate.h - a JUNGFRAU detector in software: real packets over UDP
 * or into a pcap file, with chosen content and injected faults.
 *
 * Packets leave in the order a real detector's links would interleave them:
 * for each frame, packet 0 of every link, then packet 1, ...  Frames are
 * paced at `rate` Hz (0: as fast as possible).
 *
 * Faults are drawn per packet from a seeded generator, so a run is exactly
 * repeatable; each injected fault can be logged (one CSV line per fault:
 * kind,module,interface,frame_number,packet) so tests know precisely which
 * packets the receiver must report missing.
 */
#ifndef MORGUL_SIMULATE_H
#define MORGUL_SIMULATE_H

#include <stdatomic.h>
#include <stdint.h>

#include "morgul/detector.h"
#include "morgul/error.h"

typedef enum mg_sim_content {
    MG_SIM_PATTERN = 0, /* words encoding module, frame and pixel (mg_sim_pattern_word) */
    MG_SIM_DARK,        /* pedestal + gaussian noise in one gain, or the firmware pedestal mode */
    MG_SIM_PHOTONS,     /* Bragg spots on a smooth background, converted with gain map and pedestals */
    MG_SIM_FRAMES,      /* raw frames from files */
} mg_sim_content;

typedef struct mg_sim_config {
    const mg_detector *det;
    mg_sim_content content;
    uint64_t frames;            /* how many frames to send */
    uint64_t first_frame;       /* frame number of the first frame (default 1) */
    double rate;                /* frames per second, 0 = as fast as possible */
    /* header fields */
    uint32_t exposure_length;   /* 0.1 us units */
    uint64_t bunch_id;          /* of the first frame; +1 per frame */
    uint64_t timestamp;         /* of the first frame; + frame period per frame (10 MHz) */
    uint32_t daq_info;          /* or'ed into every packet's DAQ info */
    int storage_cells;          /* > 1: frame k in cell k mod N (DAQ bits 8-11), pedestals shifted per
                                 * cell by mg_sim_cell_offset */
    int readnrows;              /* partial readout: only the packets of the rows read around each module's centre
                                 * are sent (8..512); 0: the detector description's, else all */
    /* dark and photons content */
    int gain;                   /* dark: 0, 1, 2 (forced switching) */
    int pedestal_mode_frames;   /* firmware pedestal mode F (0 = off) */
    int pedestal_mode_loops;    /* ... and L */
    double noise[3];            /* ADU per gain; 0 = defaults 12, 4, 3 */
    const char *pedestal_files; /* "G0.bin[,G1.bin,G2.bin]": float32 512x1024 per module */
    const char *noise_file;     /* float32 512x1024 G0 RMS per module */
    /* dark: planted bad pixels per module, the same pixels in every run (whatever the seed):
     * noisy (10x the noise), wrong gain (another gain in every 10th frame), stuck (the
     * pedestal without noise), dead (always 0x0000) */
    int bad_noisy, bad_wrong_gain, bad_stuck, bad_dead;
    const char *bad_pixel_log;  /* CSV module,row,column,kind of the planted pixels, or NULL */
    const char *gainmap_file;   /* PSI gain map .bin (3 or 6 float64 planes) */
    double energy_kev;          /* photons: photon energy, default 12.4 */
    int spots;                  /* photons: Bragg spots per frame, default 200 */
    uint64_t shutter_frame;     /* photons: frames before this one (0-based) are dark (no photons) */
    const char *truth_file;     /* photons: write the true whole photons, int32 (frames, modules, 512, 1024) */
    const char *frame_files;    /* MG_SIM_FRAMES: comma-separated raw uint16 files */
    /* faults, probabilities per packet */
    double drop, duplicate, reorder, delay;
    int delay_frames;           /* a delayed packet arrives after this many later frames began; default 2 */
    uint64_t seed;
    const char *fault_log;      /* CSV of injected faults, or NULL */
    /* where to */
    const char *pcap_path;      /* write a capture instead of sending */
    double capture_time;        /* the capture's first packet time, Unix s (0: 1700000000) */
    int overwrite;
    const char *dest_host;      /* UDP destination; NULL = each module's bind address (127.0.0.1 for 0.0.0.0) */
    _Atomic int *stop;          /* may be NULL */
} mg_sim_config;

typedef struct mg_sim_stats {
    uint64_t frames, packets, bytes;
    uint64_t dropped, duplicated, reordered, delayed;
    uint64_t send_errors;
    double seconds;
} mg_sim_stats;

int mg_simulate(const mg_sim_config *cfg, mg_sim_stats *stats, mg_error *err);

/* What the simulator adds to every gain's pedestal of pixel p in storage
 * cell c (burst mode), ADU: cells differ by tens of ADU, and per pixel. */
static inline float mg_sim_cell_offset(unsigned cell, uint32_t pixel)
{
    return cell ? 25.0f * (float)cell + (float)((pixel * cell) % 7u) - 3.0f : 0.0f;
}

/* The `pattern` word of pixel `pixel` (row * 1024 + column) of module m in
 * the frame with number `frame_number`. */
static inline uint16_t mg_sim_pattern_word(unsigned module, uint64_t frame_number, uint32_t pixel)
{
    uint32_t x = pixel + ((uint32_t)(frame_number & 0xFF) << 19) + ((uint32_t)(module & 0x1F) << 27);
    return (uint16_t)((x * 2654435761u) >> 16);
}

#endif
