/* morgul/h5util.h - the few HDF5 attribute helpers every file morgul
 * writes or reads uses (raw frames, NXmx, calibration).  Writers return 0
 * or -1. */
#ifndef MORGUL_H5UTIL_H
#define MORGUL_H5UTIL_H

#include <hdf5.h>
#include <stddef.h>

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

#endif
