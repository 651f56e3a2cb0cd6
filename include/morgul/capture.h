/* morgul/capture.h - pcap files of detector traffic: reading UDP payloads
 * out of them and writing them.
 *
 * Reading understands the link types captures of detector traffic come in:
 * Ethernet (with or without a VLAN tag), Linux cooked (v1 and v2), raw IP
 * and BSD loopback; IPv4 and IPv6; UDP.  Anything else in the file (ARP,
 * TCP, fragments, frames cut short by the snap length) is counted and
 * skipped.  A corrupt or truncated file ends the reading with an error that
 * says how far it got; everything read before stays valid.
 */
#ifndef MORGUL_CAPTURE_H
#define MORGUL_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

#include "morgul/error.h"

typedef struct mg_capture_stats {
    uint64_t records;      /* pcap records read */
    uint64_t udp;          /* UDP datagrams handed out */
    uint64_t not_udp;      /* other protocols, skipped */
    uint64_t fragments;    /* IP fragments, skipped (not reassembled) */
    uint64_t truncated;    /* cut short by the capture's snap length, skipped */
} mg_capture_stats;

typedef struct mg_capture mg_capture;

mg_capture *mg_capture_open(const char *path, mg_error *err);
void mg_capture_close(mg_capture *c);

/* The next UDP datagram: 1 and its payload (valid until the next call),
 * length, destination port and capture time in ns; 0 at the end; a negative
 * code if the file is corrupt from here on. */
int mg_capture_next(mg_capture *c, const uint8_t **payload, size_t *len, uint16_t *dst_port, uint64_t *ts_ns,
                    mg_error *err);

void mg_capture_get_stats(const mg_capture *c, mg_capture_stats *s);

/* True if payloads stay valid, unchanged, until mg_capture_close (classic
 * pcap files are read in place from a mapping; pcapng through libpcap is
 * not). */
int mg_capture_stable(const mg_capture *c);

/* Starts again from the first record; payloads already handed out stay
 * valid.  Returns 0, or MG_EINVAL if the capture cannot rewind (not
 * stable): open it again instead. */
int mg_capture_rewind(mg_capture *c);
/* The first JUNGFRAU packet of the capture at `path`: its capture time
 * (Unix s) and header.  0 if there is one, -1 if not (or unreadable). */
struct mg_jf_header;
int mg_capture_first_packet(const char *path, double *t, struct mg_jf_header *h);

/* Name of the file's link type ("EN10MB"). */
const char *mg_capture_link_type(const mg_capture *c);

/* Writing: Ethernet/IPv4/UDP records with nanosecond time stamps, readable by
 * tshark and by mg_capture_open. */
typedef struct mg_capture_writer mg_capture_writer;

mg_capture_writer *mg_capture_create(const char *path, int overwrite, mg_error *err);
int mg_capture_write(mg_capture_writer *w, uint32_t src_ip, uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
                     const void *payload, size_t len, uint64_t ts_ns, mg_error *err);
/* Same, with the payload in two pieces (header + pixels), as the simulator has it. */
int mg_capture_write2(mg_capture_writer *w, uint32_t src_ip, uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
                      const void *a, size_t alen, const void *b, size_t blen, uint64_t ts_ns, mg_error *err);
int mg_capture_finish(mg_capture_writer *w, mg_error *err);

#endif
