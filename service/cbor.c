/* cbor.c - CBOR items into a growing buffer (see cbor.h). */
#include "cbor.h"

#include <stdlib.h>
#include <string.h>

static int room(mg_cbor *c, size_t k)
{
    if (c->bad)
        return 0;
    if (c->n + k <= c->cap)
        return 1;
    size_t cap = c->cap ? c->cap : 256;
    while (cap < c->n + k)
        cap *= 2;
    uint8_t *p = realloc(c->p, cap);
    if (!p) {
        c->bad = 1;
        return 0;
    }
    c->p = p;
    c->cap = cap;
    return 1;
}

void mg_cbor_raw(mg_cbor *c, const void *p, size_t n)
{
    if (n && room(c, n)) {
        memcpy(c->p + c->n, p, n);
        c->n += n;
    }
}

/* major type (0..7) and argument, shortest form */
static void head(mg_cbor *c, unsigned major, uint64_t v)
{
    uint8_t b[9];
    size_t k;
    b[0] = (uint8_t)(major << 5);
    if (v < 24) {
        b[0] |= (uint8_t)v;
        k = 1;
    } else if (v <= 0xFF) {
        b[0] |= 24;
        b[1] = (uint8_t)v;
        k = 2;
    } else if (v <= 0xFFFF) {
        b[0] |= 25;
        b[1] = (uint8_t)(v >> 8);
        b[2] = (uint8_t)v;
        k = 3;
    } else if (v <= 0xFFFFFFFFu) {
        b[0] |= 26;
        for (int i = 0; i < 4; i++)
            b[1 + i] = (uint8_t)(v >> (24 - 8 * i));
        k = 5;
    } else {
        b[0] |= 27;
        for (int i = 0; i < 8; i++)
            b[1 + i] = (uint8_t)(v >> (56 - 8 * i));
        k = 9;
    }
    mg_cbor_raw(c, b, k);
}

void mg_cbor_uint(mg_cbor *c, uint64_t v) { head(c, 0, v); }
void mg_cbor_int(mg_cbor *c, int64_t v) { v >= 0 ? head(c, 0, (uint64_t)v) : head(c, 1, (uint64_t)(-(v + 1))); }
void mg_cbor_bytes_head(mg_cbor *c, size_t n) { head(c, 2, n); }
void mg_cbor_bytes(mg_cbor *c, const void *p, size_t n)
{
    head(c, 2, n);
    mg_cbor_raw(c, p, n);
}
void mg_cbor_text(mg_cbor *c, const char *s)
{
    size_t n = strlen(s);
    head(c, 3, n);
    mg_cbor_raw(c, s, n);
}
void mg_cbor_array(mg_cbor *c, size_t n) { head(c, 4, n); }
void mg_cbor_map(mg_cbor *c, size_t n) { head(c, 5, n); }
void mg_cbor_tag(mg_cbor *c, uint64_t tag) { head(c, 6, tag); }
void mg_cbor_bool(mg_cbor *c, int v)
{
    uint8_t b = v ? 0xF5 : 0xF4;
    mg_cbor_raw(c, &b, 1);
}
void mg_cbor_double(mg_cbor *c, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    uint8_t b[9] = {0xFB};
    for (int i = 0; i < 8; i++)
        b[1 + i] = (uint8_t)(u >> (56 - 8 * i));
    mg_cbor_raw(c, b, 9);
}
void mg_cbor_rational(mg_cbor *c, uint64_t num, uint64_t den)
{
    mg_cbor_array(c, 2);
    mg_cbor_uint(c, num);
    mg_cbor_uint(c, den);
}
