/* morgul/rawfile.h - raw frames to HDF5: data files that roll over every N
 * frames and a master file that joins them (format in docs/file-formats.md).
 *
 *   <prefix>_data_000001.h5, _000002.h5, ...   up to frames_per_file each
 *       /data                     uint16 (frames, modules, 512, 1024),
 *                                 one frame per chunk, bitshuffle/LZ4 (32008)
 *       /frames/index             uint64 (frames)          aligned frame index
 *       /frames/frame_number      uint64 (frames, modules) the module's own
 *       /frames/packets_received  uint16 (frames, modules) of 128
 *       /frames/packet_mask       uint8  (frames, modules, 16) bit q%8 of byte q/8
 *       /frames/chunk_crc32c      uint32 (frames)          CRC-32C of the stored chunk
 *       /frames/bunch_id, timestamp (uint64), exposure_length, daq_info (uint32),
 *               module_id (uint16)  from the packet headers (units, description attributes)
 *       /detector/...             names, positions, ports of the modules and the description
 *                                 as text; in the master also module_id from the headers
 *   <prefix>_master.h5
 *       the same paths as virtual datasets over all data files, plus /run
 *       (counters of the run, start_time and end_time in ISO 8601 from the
 *       data, the command line, the software) and /detector.
 *
 * A run may hold several acquisitions (a detector whose frame counter was
 * reset): the first one's files are named as above, acquisition n (n >= 2)
 * has its own set, <prefix>_acqNNN_master.h5 with <prefix>_acqNNN_data_...
 * (mg_rawfile_next_acquisition).
 *
 * Crash safety: the master file exists from the start and is replaced whole
 * (written under a temporary name, then renamed) whenever a data file
 * begins; while the run goes on it maps the growing data file with an
 * unlimited extent and its attribute morgul_status is "writing" ("complete"
 * at the end).  Data files are written in SWMR mode and synced at least
 * every half second; when closed they are converted to the format HDF5 1.8
 * reads.  A run that died is finished by mg_rawfile_repair.
 *
 * Chunks arrive already compressed (mg_bshuf_compress) and are written with
 * H5Dwrite_chunk.  Nothing is ever overwritten unless `overwrite` is set;
 * then exactly the names above that exist for this prefix are removed first
 * (names are compared character by character: no pattern matching).  The
 * prefix's directory is created if it is missing.  Metadata is buffered and
 * written in blocks; mg_rawfile_close leaves every file complete and valid.
 * Single-threaded: the writer thread owns it.
 */
#ifndef MORGUL_RAWFILE_H
#define MORGUL_RAWFILE_H

#include <stddef.h>
#include <stdint.h>

#include "morgul/assembler.h"
#include "morgul/detector.h"
#include "morgul/error.h"

/* Element types of the frames. */
enum { MG_ELEM_U16 = 0, MG_ELEM_I16, MG_ELEM_I32, MG_ELEM_F32 };

/* What the data told of an acquisition so far, for its master file. */
typedef struct mg_master_facts {
    uint64_t frames;        /* written */
    double start, end;      /* Unix s: arrival of its first and last frame (mg_rawfile_time); 0: not known */
    double count_time;      /* s: the first frame's exposure length from its headers; 0: not known */
    double frame_time;      /* s: from the detector time stamps of the frames written; 0: not known */
    int ended;              /* the files are complete (not the master of a run that goes on) */
    const uint16_t *module_id; /* per module: the first id its headers gave (0: none) */
} mg_master_facts;

/* Where and what the frames are, for files other than the raw layout above
 * (the NXmx files of corrected data use this). */
typedef struct mg_frame_layout {
    const char *data_path;  /* frames dataset, in data files and master: "entry/data/data" */
    const char *group;      /* the per-frame records go to GROUP/frames/..., the module description to
                               GROUP/detector (NULL: the root) */
    int rank;               /* of one frame: 2 or 3 */
    uint64_t dims[3];
    int elem;               /* MG_ELEM_* */
    const char *description; /* of the frames dataset (attribute "description"); NULL: none */
    int link_files;         /* the master also links each data file's frames as DATA_PATH_NNNNNN (NNNNNN the
                               file's number): the Eiger layout XDS's plugin Neggia reads frames from */
    /* called with the open master file (an HDF5 hid_t) and what the data
     * told of the acquisition (mg_master_facts), before the master is closed */
    int (*master_extra)(int64_t master, const struct mg_master_facts *facts, void *ctx);
    void *ctx;
} mg_frame_layout;

typedef struct mg_rawfile_config {
    const char *prefix;         /* "/data/run1/lyso" -> lyso_master.h5, lyso_data_000001.h5 */
    const mg_detector *det;
    const char *command_line;   /* recorded in the master (/run/command_line); NULL: none */
    uint64_t frames_per_file;   /* 0 = 1000 */
    int overwrite;
    const mg_frame_layout *layout; /* NULL: raw frames as above */
} mg_rawfile_config;

/* One counter of the run, stored in the master file under /run. */
typedef struct mg_counter {
    const char *name;
    uint64_t value;
} mg_counter;

typedef struct mg_rawfile mg_rawfile;

/* Checks that no output exists (unless overwrite) and creates the first data
 * file.  The error names the file in the way and the option to use. */
mg_rawfile *mg_rawfile_create(const mg_rawfile_config *cfg, mg_error *err);

/* What has been written reaches the disk and the master file, in two
 * steps.  First, with nothing waiting for the disk: the records buffered
 * and HDF5's metadata flushed (a data file is written in SWMR mode: readers
 * open it while it grows, and whatever kills the process, what was flushed
 * stays readable), and the master file replaced if a data file began since.
 * Then the open data file, every data file closed since the last sync and
 * the new master are synced to the disk (a power loss keeps them); a slow
 * disk delays only this step, so a process killed meanwhile still finds the
 * new master.  Done by mg_rawfile_write at least every half second; call it
 * (force 0) when no frame comes for a while, so the last frames are not left
 * behind.  force: now. */
int mg_rawfile_sync(mg_rawfile *f, int force, mg_error *err);

/* Closes the current acquisition's files (its master file with these `n`
 * counters) and starts the next acquisition's set, named by `prefix` (as
 * mg_rawfile_open's), or NULL for <prefix>_acqNNN. */
int mg_rawfile_next_acquisition(mg_rawfile *f, const char *prefix, const mg_counter *counters, int n, mg_error *err);

/* A run that could not start: closes and removes every file and directory
 * this writer created (nothing that existed before).  Frees f. */
void mg_rawfile_abandon(mg_rawfile *f);

/* The Unix time (s) at which a frame of the current acquisition arrived
 * (its first packet; for a replay, the capture's record time; for correct,
 * the raw run's times): the first such time is the acquisition's start
 * (the master's start_time, rewritten at the next sync when it becomes
 * known), the latest its end. */
void mg_rawfile_time(mg_rawfile *f, double unix_s);

/* Appends one frame: its compressed chunk (all modules), the chunk's
 * CRC-32C (mg_crc32c of its chunk_bytes: taken by the caller, on the thread
 * that compressed it) and its records. */
int mg_rawfile_write(mg_rawfile *f, int64_t index, const mg_module_frame *modules, const void *chunk, uint32_t crc,
                     size_t chunk_bytes, mg_error *err);

/* Closes the data file and writes the master file with `n` run counters.
 * Frees f whatever happens. */
int mg_rawfile_close(mg_rawfile *f, const mg_counter *counters, int n, mg_error *err);

/* Finishes the files of a run that died (kill -9, out of memory, power
 * loss) with output prefix `prefix`: for every acquisition whose master
 * says "writing" (or that has data files and no master) each data file is
 * cut to the frames whose chunk and records it holds, its SWMR flags are
 * cleared and it is converted to the 1.8 format; the master's virtual
 * datasets and links are made over them, NXmx frame counts (nimages,
 * omega) set, /run holds frames_written and interrupted = 1 and its
 * status says "interrupted".  The reserve file and temporary masters are
 * removed, and so is a last data file that was begun when the run died and
 * holds no frames dataset (one that does not open as HDF5 at all is kept
 * aside as PATH.unreadable); any other data file without frames, or that does
 * not open, is an error.  Says what it did on `log` (may be NULL).  Returns 1 if there
 * was something to repair, 0 if not, or an error code. */
int mg_rawfile_repair(const char *prefix, FILE *log, mg_error *err);

uint64_t mg_rawfile_frames(const mg_rawfile *f);
/* Frames of the run on disk as of the last mg_rawfile_sync that succeeded
 * (flushed and synced, the master over them): what a crash keeps.  May be
 * called from any thread while another writes. */
uint64_t mg_rawfile_synced(const mg_rawfile *f); /* written in all acquisitions */
int mg_rawfile_acquisition(const mg_rawfile *f); /* the current one, 0-based */
uint64_t mg_rawfile_set_frames(const mg_rawfile *f); /* written in the current acquisition */
uint64_t mg_rawfile_bytes(const mg_rawfile *f);
/* Each module's first id from its packet headers in the current
 * acquisition (0: none yet), valid until close. */
const uint16_t *mg_rawfile_module_ids(const mg_rawfile *f);
/* Path of the current acquisition's master file (valid until close). */
const char *mg_rawfile_master_path(const mg_rawfile *f);

#endif
