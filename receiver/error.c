/* error.c - the mg_error reporting convention (see morgul/error.h). */
#include "morgul/error.h"

#include <stdio.h>
#include <string.h>

int mg_error_set(mg_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

int mg_error_prefix(mg_error *err, const char *fmt, ...)
{
    if (!err)
        return MG_EINVAL;
    char head[MG_ERROR_MESSAGE_SIZE], old[MG_ERROR_MESSAGE_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    /* truncation is fine: the head and the start of the old message matter most */
    size_t h = strnlen(head, sizeof head - 3);
    memcpy(err->message, head, h);
    memcpy(err->message + h, ": ", 2);
    size_t room = sizeof err->message - h - 3;
    size_t o = strnlen(old, room);
    memcpy(err->message + h + 2, old, o);
    err->message[h + 2 + o] = '\0';
    return err->code;
}

void mg_error_clear(mg_error *err)
{
    if (err) {
        err->code = MG_OK;
        err->message[0] = '\0';
    }
}

const char *mg_error_name(int code)
{
    switch (code) {
    case MG_OK: return "success";
    case MG_EINVAL: return "invalid argument";
    case MG_ECONFIG: return "configuration error";
    case MG_EIO: return "I/O error";
    case MG_ENOMEM: return "out of memory";
    case MG_ESYS: return "system error";
    case MG_EFORMAT: return "format error";
    case MG_EEXIST: return "file exists";
    case MG_EDATA: return "data error";
    default: return "unknown error";
    }
}
