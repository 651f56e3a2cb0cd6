/* morgul/rawread.h - reading raw frames back: morgul's own raw files and
 * the original morgul's per-module files, as one detector frame after
 * another.  `morgul correct` and `morgul pedestal` read through it, so both
 * accept the same inputs.
 *
 *   morgul raw (morgul/rawfile.h): one master file (or one data file) with
 *     /data (frames, modules, 512, 1024), /frames/... records, /detector
 *     names and positions, attribute start_time.
 *   original morgul: one HDF5 file per module, root dataset data (frames,
 *     512, 1024) uint16 and scalars exptime (s), gainmode ("dynamic",
 *     "forceswitchg1", "forceswitchg2", ...), timestamp (Unix s), row,
 *     column.  All files must hold the same number of frames.  Their modules
 *     are named from a detector description (`config`, matched by row and
 *     column), else from `names` in file order, else M000, M001, ...; their
 *     frames count as complete (the files record no packets).
 *
 * Reading is sequential or random; a frame that cannot be read (a corrupt
 * chunk, a data file gone since the run was opened) is an error naming the
 * frame and file, never zeros.  morgul's own
 * chunks are read as stored and decompressed by morgul's bitshuffle (not
 * through HDF5's filter), which lets threads decompress in parallel.
 */
#ifndef MORGUL_RAWREAD_H
#define MORGUL_RAWREAD_H

#include <stddef.h>
#include <stdint.h>

#include "morgul/assembler.h"
#include "morgul/rawfile.h"
#include "morgul/detector.h"
#include "morgul/error.h"

typedef struct mg_rawread mg_rawread;

typedef struct mg_rawread_naming {
    const char *config; /* detector INI for the original files' modules, or NULL */
    const char *names;  /* "M420,M418" in file order, or NULL */
} mg_rawread_naming;

/* Opens the files: one morgul raw file, or 1..MG_MAX_MODULES original
 * per-module files.  `naming` may be NULL.  The error says which file is
 * not a raw file and why. */
mg_rawread *mg_rawread_open(const char *const *paths, int npaths, const mg_rawread_naming *naming, mg_error *err);
void mg_rawread_close(mg_rawread *r);

/* The detector the files describe (names, rows, columns; one interface
 * per module, ports 1..N as placeholders). */
const mg_detector *mg_rawread_detector(const mg_rawread *r);
size_t mg_rawread_frames(const mg_rawread *r);
int mg_rawread_original(const mg_rawread *r); /* 1: original morgul files */

/* Frame i's per-module records (modules of them) and its aligned index.
 * Files without records give frame_number i+1, all packets, the file's
 * exposure and timestamp. */
const mg_module_frame *mg_rawread_records(const mg_rawread *r, size_t i);
int64_t mg_rawread_index(const mg_rawread *r, size_t i);
/* 1 if every module of frame i has all its packets. */
int mg_rawread_complete(const mg_rawread *r, size_t i);

/* Reads frame i of every module into raw (modules x 512 x 1024 words). */
int mg_rawread_frame(mg_rawread *r, size_t i, uint16_t *raw, mg_error *err);

/* The same in two steps, so that threads decompress frames side by side:
 * the HDF5 library is not thread-safe, decompression need not wait for it.
 *
 *   mg_rawread_fetch   (HDF5 calls: under the caller's lock, like every
 *                      other call here) takes frame i's stored bytes into
 *                      b as they are in the file: morgul's one-frame
 *                      bitshuffle/LZ4 chunks.  A frame stored otherwise
 *                      (original files, other filters or chunk shapes, a
 *                      chunk never written) it reads whole into raw.
 *   mg_rawread_decode  (no HDF5 call: b and raw the calling thread's own)
 *                      then decompresses b into raw, checking every length;
 *                      after a whole read there is nothing left to do.
 *
 * Together they give what mg_rawread_frame gives, and fail where it fails:
 * a corrupt chunk is an MG_EIO error naming the frame and the data file,
 * never zeros.  A buffer holds one fetched frame at a time. */
typedef struct mg_rawread_buf mg_rawread_buf;
mg_rawread_buf *mg_rawread_buf_new(mg_error *err);
void mg_rawread_buf_free(mg_rawread_buf *b);
int mg_rawread_fetch(mg_rawread *r, size_t i, mg_rawread_buf *b, uint16_t *raw, mg_error *err);
int mg_rawread_decode(mg_rawread_buf *b, uint16_t *raw, mg_error *err);

/* The run's gain as the files say (original files' gainmode: 0 dynamic/G0,
 * 1 forced G1, 2 forced G2), -1 if they do not say. */
int mg_rawread_gain(const mg_rawread *r);
/* Start of the run, Unix s (0 if unknown); exposure of the first frame, s
 * (NaN if unknown). */
double mg_rawread_start(const mg_rawread *r);
double mg_rawread_exposure(const mg_rawread *r);
/* End of the run (its last frame's arrival), Unix s (0 if unknown). */
double mg_rawread_end(const mg_rawread *r);
/* The raw run's counters (its master's /run integers), valid while r is
 * open; returns how many. */
int mg_rawread_counters(const mg_rawread *r, const mg_counter **counters);

/* 1 if the file at path starts with the HDF5 signature, 0 otherwise
 * (a pcap capture, say). */
int mg_file_is_hdf5(const char *path);

#endif
