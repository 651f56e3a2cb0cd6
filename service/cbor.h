/* cbor.h - private: the few CBOR (RFC 8949) items the stream's messages
 * need, encoded into a growing buffer.  Heads use the shortest form, as
 * deterministic encoding asks; a failed allocation marks the buffer bad
 * and later calls do nothing. */
#ifndef MORGUL_CBOR_H
#define MORGUL_CBOR_H

#include <stddef.h>
#include <stdint.h>

typedef struct mg_cbor {
    uint8_t *p;
    size_t n, cap;
    int bad;
} mg_cbor;

void mg_cbor_uint(mg_cbor *c, uint64_t v);
void mg_cbor_int(mg_cbor *c, int64_t v);
void mg_cbor_bytes_head(mg_cbor *c, size_t n); /* then n bytes of content (mg_cbor_raw) */
void mg_cbor_bytes(mg_cbor *c, const void *p, size_t n);
void mg_cbor_text(mg_cbor *c, const char *s);
void mg_cbor_array(mg_cbor *c, size_t n);
void mg_cbor_map(mg_cbor *c, size_t n);
void mg_cbor_tag(mg_cbor *c, uint64_t tag);
void mg_cbor_double(mg_cbor *c, double v);
void mg_cbor_bool(mg_cbor *c, int v);
void mg_cbor_raw(mg_cbor *c, const void *p, size_t n);
/* [numerator, denominator]: the Rational of DECTRIS' Stream V2 */
void mg_cbor_rational(mg_cbor *c, uint64_t num, uint64_t den);

#endif
