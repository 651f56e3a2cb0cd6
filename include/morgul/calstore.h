/* morgul/calstore.h - a calibration store: a directory where a detector's
 * calibration files accumulate, each valid from the time its dark runs were
 * taken, for the exposure time they were taken at.
 *
 *   DIR/<detector>_<YYYYmmddTHHMMSSZ>_<exposure>us.h5   calibration files
 *   DIR/store.log                                       one line per operation
 *
 * Adding copies a calibration file in (never replacing one), after checking
 * it reads as a calibration file and knows when it was taken and at which
 * exposure.  Finding picks, among the files holding every module of the
 * detector, the newest taken at or before the given time with the same
 * exposure (equal within 1 ns); the age of the pick (time minus taken) is
 * returned so the caller can warn when it is old.  The store's state is
 * the files themselves: there is no index to fall out of step, and a file
 * that no longer reads is reported by `list` and refused by `find` if it
 * would be the pick (never silently passed over for older constants).
 *
 * Log lines: "<ISO time> <operation> <file> key=value ..."; operations
 * add, pick.  A store whose log cannot be written still works (reading a
 * store needs no write access); the functions say so through `warn`.
 */
#ifndef MORGUL_CALSTORE_H
#define MORGUL_CALSTORE_H

#include <stddef.h>
#include <stdio.h>

#include "morgul/calibration.h"
#include "morgul/detector.h"
#include "morgul/error.h"

typedef struct mg_store_entry {
    char file[256];                 /* name inside the store */
    char path[1280];                /* DIR/file */
    mg_calib_header h;              /* detector, taken, exposure, modules */
    char problem[256];              /* "" or why the file is not usable */
} mg_store_entry;

/* Every *.h5 file of the store, oldest first (files that do not read
 * come last, with `problem` set).  *out is malloc'd (free it); *n may be 0. */
int mg_store_list(const char *dir, mg_store_entry **out, size_t *n, mg_error *err);

/* Copies calibration file `src` into the store.  taken/exposure_s override
 * the file's own (pass 0 / NaN to keep them); the stored file records
 * them.  A file without a time taken or an exposure (and no override) is
 * refused.  The stored name goes to `stored`. */
int mg_store_add(const char *dir, const char *src, double taken, double exposure_s, char *stored, size_t cap,
                 FILE *warn, mg_error *err);

typedef struct mg_store_query {
    double time;               /* Unix s: the constants valid at this time */
    double exposure_s;         /* NaN: any exposure */
    const mg_detector *det;    /* NULL: any file; else one holding all its modules */
    const char *who;           /* for the log: "receive", "correct run7_master.h5", ... */
} mg_store_query;

/* The pick for q: its entry into *pick.  MG_ENOENT-style error (MG_ECONFIG)
 * naming what was looked for when nothing fits; MG_EFORMAT when the pick
 * does not read as a calibration file.  Logs the pick. */
int mg_store_find(const char *dir, const mg_store_query *q, mg_store_entry *pick, FILE *warn, mg_error *err);

/* Appends one line to the store's log; -1 if it cannot be written. */
int mg_store_log(const char *dir, const char *op, const char *file, const char *details);

/* Times as users type them: "now", Unix seconds, or ISO 8601 UTC
 * ("2026-11-21T07:16:00Z", "2026-11-21 07:16", "2026-11-21").  -1 if not one. */
int mg_time_parse(const char *s, double *t);

#endif
