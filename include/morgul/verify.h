/* morgul/verify.h - checking files against the checksums recorded when they
 * were written (`morgul verify`).
 *
 * Frame files (raw and NXmx data files, morgul/rawfile.h) record the
 * CRC-32C of every frame's stored chunk in frames/chunk_crc32c; each chunk
 * is read as stored, its CRC compared and the chunk decoded (its header and
 * every block's length checked).  Calibration files (and every other HDF5
 * file) carry HDF5's Fletcher-32 checksum on each chunk: every dataset is
 * read whole, so HDF5 checks them.  Before any of that each file is walked
 * in a child process (mg_h5_probe), so a damaged file is named, never a
 * crash.
 */
#ifndef MORGUL_VERIFY_H
#define MORGUL_VERIFY_H

#include <stdint.h>
#include <stdio.h>

#include "morgul/error.h"

typedef struct mg_verify_result {
    int files;                  /* HDF5 files looked at */
    int files_damaged;          /* whose structure does not read (or crashes the HDF5 library) */
    int files_unfinished;       /* masters of a run that did not end (morgul repair finishes them) */
    uint64_t frames;            /* frames checked */
    uint64_t frames_damaged;    /* checksum mismatch, or a chunk that does not decode */
    uint64_t frames_unchecked;  /* no checksum recorded (files written before there was one): decoded only */
    uint64_t datasets;          /* datasets read whole (other files) */
    uint64_t datasets_damaged;  /* that failed their checksum or did not read */
    uint64_t datasets_unchecked; /* without a checksum */
} mg_verify_result;

/* Checks `path`: a run (its master file, or the prefix given with -o: every
 * acquisition's master and data files), one data file, a calibration file
 * or any HDF5 file.  Each damaged frame or dataset is named on `out` (at
 * most `max_list` of each, then a count; out may be NULL) and counted in
 * `res`.  Returns 0 when the checking could be done (damage or not: see
 * res), or an error code when `path` is neither a file nor a run's prefix. */
int mg_verify(const char *path, FILE *out, int max_list, mg_verify_result *res, mg_error *err);

/* 1 if res found anything damaged or unfinished. */
int mg_verify_damaged(const mg_verify_result *res);

#endif
