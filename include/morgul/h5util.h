/* morgul/h5util.h - the few HDF5 attribute helpers every file morgul
 * writes or reads uses (raw frames, NXmx, calibration), and the probe that
 * keeps a damaged file from crashing the process that reads it.  Writers
 * return 0 or -1. */
#ifndef MORGUL_H5UTIL_H
#define MORGUL_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>

#include "morgul/error.h"

/* A scalar string attribute (NUL-terminated, exactly as long as v),
 * replacing one of the same name. */
int mg_h5_attr_str(hid_t loc, const char *name, const char *v);

/* A scalar 32-bit integer attribute. */
int mg_h5_attr_int(hid_t loc, const char *name, int v);

/* A scalar float64 attribute. */
int mg_h5_attr_double(hid_t loc, const char *name, double v);

/* Reading: a numeric attribute as double (`dflt` if absent or unreadable);
 * a fixed-length string attribute into dst ("" if absent). */
double mg_h5_attr_get_double(hid_t loc, const char *name, double dflt);
void mg_h5_attr_get_str(hid_t loc, const char *name, char *dst, size_t cap);

/* A scalar string dataset `name` of loc (exactly as long as v), replacing
 * one of that name, with a "description" attribute unless description is
 * NULL.  0 or -1. */
int mg_h5_put_string(hid_t loc, const char *name, const char *v, const char *description);

/* Whether a dataset creation property list has filter `id`. */
int mg_h5_has_filter(hid_t dcpl, H5Z_filter_t id);

/* Unix seconds as the files write times: ISO 8601 UTC with `decimals`
 * (0..6) digits of the second, "2026-12-07T06:20:01.123456Z". */
void mg_h5_time_iso(double t, int decimals, char *out, size_t cap);

/* Whether reading the HDF5 file at `path` is safe.  The HDF5 library
 * trusts the structure of the files it reads: some damaged files (bytes
 * overwritten in a header, a B-tree, a heap) make it read out of bounds and
 * crash, which no error check of ours can catch.  So a child process (fork)
 * opens the file and walks all of it, as the real read will: every object,
 * every attribute read, every dataset's type, space, layout and chunk index,
 * and the data of each dataset whose storage is at most `read_max` bytes
 * (0: none; virtual datasets are never read: their sources are probed when
 * they are opened).  Returns 0 if the walk ended, crashed or not, without a
 * crash, errors included: the real read then reports those with their own
 * message.  Returns MG_EDATA naming the file and the signal if the child
 * died, MG_ESYS if it could not be started.  Costs a fork and a read of the
 * metadata (and of the data up to read_max): milliseconds for a raw file.
 * Call it before any threads that use HDF5 are started. */
int mg_h5_probe(const char *path, size_t read_max, mg_error *err);

#endif
