/* morgul/error.h - how every morgul function reports failure.
 *
 * A function that can fail takes an `mg_error *err` as its last argument and
 * returns 0 on success or a negative MG_E* code on failure.  On failure it
 * fills err->message with one sentence a beamline user can act on: what went
 * wrong, where (file, line, port, frame) and what to do about it.  `err` may
 * be NULL when the caller only wants the code.  No function keeps error
 * state anywhere else: there is no errno-like global.
 */
#ifndef MORGUL_ERROR_H
#define MORGUL_ERROR_H

#include <stdarg.h>

enum {
    MG_OK = 0,
    MG_EINVAL = -1,   /* a bad argument or option value */
    MG_ECONFIG = -2,  /* a detector description that cannot be used */
    MG_EIO = -3,      /* reading or writing a file failed */
    MG_ENOMEM = -4,   /* an allocation failed */
    MG_ESYS = -5,     /* a system call failed (sockets, threads, affinity) */
    MG_EFORMAT = -6,  /* a file is not in the expected format */
    MG_EEXIST = -7,   /* an output file exists and overwriting was not asked for */
    MG_EDATA = -8,    /* the data itself is inconsistent */
};

#define MG_ERROR_MESSAGE_SIZE 512

typedef struct mg_error {
    int code;
    char message[MG_ERROR_MESSAGE_SIZE];
} mg_error;

/* Sets err (if not NULL) and returns `code`, so callers can write
 * `return mg_error_set(err, MG_EIO, "cannot open %s: %s", path, strerror(errno));`. */
int mg_error_set(mg_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts `fmt ...: ` in front of an existing message, to add context
 * ("writing frame 12: ...").  Returns err->code. */
int mg_error_prefix(mg_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clears err to MG_OK with an empty message. */
void mg_error_clear(mg_error *err);

/* A short name of a code ("I/O error"), never NULL. */
const char *mg_error_name(int code);

#endif
