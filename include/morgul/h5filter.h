/* morgul/h5filter.h - morgul's own implementation of HDF5 filter 32008
 * (bitshuffle + LZ4), registered with the HDF5 library in this process.
 *
 * Why register one: morgul writes pre-compressed chunks and must give the
 * dataset exactly the cd_values it chose ({0, 3, elem_size, 0, 2}).  If the
 * library loaded the external plugin at dataset creation instead, the
 * plugin's set_local would rewrite them.  Registering morgul's filter first
 * keeps the values, and lets morgul read bitshuffle files (its own or
 * anybody's) without any plugin installed.  Other programs read morgul's
 * files with the standard plugin.
 *
 * Idempotent and safe to call from any thread before HDF5 is used.
 */
#ifndef MORGUL_H5FILTER_H
#define MORGUL_H5FILTER_H

#include "morgul/error.h"

int mg_h5_register_bitshuffle(mg_error *err);

#endif
