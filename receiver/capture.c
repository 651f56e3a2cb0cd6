/* capture.c - pcap reading and writing through libpcap
 * (contract in morgul/capture.h). */
#include "morgul/capture.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct mg_capture {
    pcap_t *p;
    int dlt;
    char path[1024];
    mg_capture_stats st;
};

mg_capture *mg_capture_open(const char *path, mg_error *err)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    if (!p) {
        mg_error_set(err, MG_EFORMAT, "cannot read capture %s: %s", path, ebuf);
        return NULL;
    }
    mg_capture *c = calloc(1, sizeof *c);
    if (!c) {
        pcap_close(p);
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    c->p = p;
    c->dlt = pcap_datalink(p);
    snprintf(c->path, sizeof c->path, "%s", path);
    switch (c->dlt) {
    case DLT_EN10MB: case DLT_LINUX_SLL: case DLT_RAW: case DLT_NULL:
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
#endif
#ifdef DLT_IPV4
    case DLT_IPV4: case DLT_IPV6:
#endif
        break;
    default:
        mg_error_set(err, MG_EFORMAT,
                     "capture %s has link type %s, which morgul does not read (Ethernet, Linux cooked, raw IP, "
                     "loopback)",
                     path, pcap_datalink_val_to_name(c->dlt) ? pcap_datalink_val_to_name(c->dlt) : "?");
        mg_capture_close(c);
        return NULL;
    }
    return c;
}

void mg_capture_close(mg_capture *c)
{
    if (!c)
        return;
    pcap_close(c->p);
    free(c);
}

const char *mg_capture_link_type(const mg_capture *c)
{
    const char *n = pcap_datalink_val_to_name(c->dlt);
    return n ? n : "?";
}

void mg_capture_get_stats(const mg_capture *c, mg_capture_stats *s) { *s = c->st; }

/* Finds the IP packet inside a link-layer frame: returns its offset and
 * version (4 or 6), or -1. */
static int ip_offset(int dlt, const uint8_t *d, size_t n, int *ver)
{
    size_t off = 0;
    unsigned proto = 0;
    switch (dlt) {
    case DLT_EN10MB:
        if (n < 14)
            return -1;
        proto = (unsigned)d[12] << 8 | d[13];
        off = 14;
        while ((proto == 0x8100 || proto == 0x88A8) && n >= off + 4) {
            proto = (unsigned)d[off + 2] << 8 | d[off + 3];
            off += 4;
        }
        break;
    case DLT_LINUX_SLL:
        if (n < 16)
            return -1;
        proto = (unsigned)d[14] << 8 | d[15];
        off = 16;
        break;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
        if (n < 20)
            return -1;
        proto = (unsigned)d[0] << 8 | d[1];
        off = 20;
        break;
#endif
    case DLT_NULL: {
        if (n < 4)
            return -1;
        uint32_t fam;
        memcpy(&fam, d, 4);
        if (fam > 0xFFFF)
            fam = ntohl(fam);
        proto = fam == 2 ? 0x0800 : (fam == 24 || fam == 28 || fam == 30) ? 0x86DD : 0;
        off = 4;
        break;
    }
    default: /* raw IP */
        if (n < 1)
            return -1;
        proto = (d[0] >> 4) == 4 ? 0x0800 : (d[0] >> 4) == 6 ? 0x86DD : 0;
        off = 0;
    }
    if (proto == 0x0800)
        *ver = 4;
    else if (proto == 0x86DD)
        *ver = 6;
    else
        return -1;
    return off <= n ? (int)off : -1;
}

int mg_capture_next(mg_capture *c, const uint8_t **payload, size_t *len, uint16_t *dst_port, uint64_t *ts_ns,
                    mg_error *err)
{
    for (;;) {
        struct pcap_pkthdr *h;
        const u_char *d;
        int r = pcap_next_ex(c->p, &h, &d);
        if (r == PCAP_ERROR_BREAK || r == -2)
            return 0;
        if (r != 1)
            return mg_error_set(err, MG_EFORMAT, "capture %s is corrupt or truncated after %llu records: %s", c->path,
                                (unsigned long long)c->st.records, pcap_geterr(c->p));
        c->st.records++;
        size_t n = h->caplen;
        int ver = 0;
        int off = ip_offset(c->dlt, d, n, &ver);
        if (off < 0) {
            c->st.not_udp++;
            continue;
        }
        const uint8_t *ip = d + off;
        size_t left = n - (size_t)off, ihl, udp_len;
        if (ver == 4) {
            if (left < 20 || (ip[0] >> 4) != 4 || (ihl = (size_t)(ip[0] & 15) * 4) < 20 || left < ihl) {
                c->st.not_udp++;
                continue;
            }
            if (ip[9] != 17) {
                c->st.not_udp++;
                continue;
            }
            unsigned frag = ((unsigned)ip[6] << 8 | ip[7]);
            if (frag & 0x3FFF) { /* more fragments, or an offset */
                c->st.fragments++;
                continue;
            }
        } else {
            ihl = 40;
            if (left < 40 || ip[6] != 17) { /* no extension headers on detector traffic */
                if (left >= 40 && ip[6] == 44)
                    c->st.fragments++;
                else
                    c->st.not_udp++;
                continue;
            }
        }
        const uint8_t *udp = ip + ihl;
        if (left < ihl + 8) {
            c->st.truncated++;
            continue;
        }
        udp_len = (size_t)udp[4] << 8 | udp[5];
        if (udp_len < 8) {
            c->st.not_udp++;
            continue;
        }
        if (left - ihl < udp_len) {
            c->st.truncated++;
            continue;
        }
        *payload = udp + 8;
        *len = udp_len - 8;
        *dst_port = (uint16_t)((unsigned)udp[2] << 8 | udp[3]);
        *ts_ns = (uint64_t)h->ts.tv_sec * 1000000000ull + (uint64_t)h->ts.tv_usec; /* nano precision */
        c->st.udp++;
        return 1;
    }
}

struct mg_capture_writer {
    pcap_t *p;
    pcap_dumper_t *d;
    uint8_t *buf;
    char path[1024];
};

mg_capture_writer *mg_capture_create(const char *path, int overwrite, mg_error *err)
{
    if (!overwrite && access(path, F_OK) == 0) {
        mg_error_set(err, MG_EEXIST, "%s exists; choose another name or pass --overwrite", path);
        return NULL;
    }
    mg_capture_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->buf = malloc(65536))) {
        free(w);
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(w->path, sizeof w->path, "%s", path);
    w->p = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 65535, PCAP_TSTAMP_PRECISION_NANO);
    w->d = w->p ? pcap_dump_open(w->p, path) : NULL;
    if (!w->d) {
        mg_error_set(err, MG_EIO, "cannot create capture %s: %s", path, w->p ? pcap_geterr(w->p) : strerror(errno));
        if (w->p)
            pcap_close(w->p);
        free(w->buf);
        free(w);
        return NULL;
    }
    return w;
}

static uint16_t ip_checksum(const uint8_t *h)
{
    uint32_t s = 0;
    for (int i = 0; i < 20; i += 2)
        s += (uint32_t)h[i] << 8 | h[i + 1];
    while (s >> 16)
        s = (s & 0xFFFF) + (s >> 16);
    return (uint16_t)~s;
}

int mg_capture_write2(mg_capture_writer *w, uint32_t src_ip, uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
                      const void *a, size_t alen, const void *b, size_t blen, uint64_t ts_ns, mg_error *err)
{
    size_t len = alen + blen;
    if (len > 65535 - 28 - 14)
        return mg_error_set(err, MG_EINVAL, "datagram of %zu bytes is too long for a capture record", len);
    uint8_t *f = w->buf;
    memset(f, 0, 14);
    f[0] = 0x02; /* locally administered MACs */
    f[6] = 0x02;
    f[5] = 1;
    f[11] = 2;
    f[12] = 0x08;
    f[13] = 0x00;
    uint8_t *ip = f + 14;
    size_t tot = 20 + 8 + len;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    ip[2] = (uint8_t)(tot >> 8);
    ip[3] = (uint8_t)tot;
    ip[6] = 0x40; /* don't fragment */
    ip[8] = 64;
    ip[9] = 17;
    uint32_t s = htonl(src_ip), d = htonl(dst_ip);
    memcpy(ip + 12, &s, 4);
    memcpy(ip + 16, &d, 4);
    uint16_t ck = ip_checksum(ip);
    ip[10] = (uint8_t)(ck >> 8);
    ip[11] = (uint8_t)ck;
    uint8_t *udp = ip + 20;
    size_t ul = 8 + len;
    udp[0] = (uint8_t)(src_port >> 8);
    udp[1] = (uint8_t)src_port;
    udp[2] = (uint8_t)(dst_port >> 8);
    udp[3] = (uint8_t)dst_port;
    udp[4] = (uint8_t)(ul >> 8);
    udp[5] = (uint8_t)ul;
    udp[6] = udp[7] = 0; /* no UDP checksum: allowed over IPv4 */
    memcpy(udp + 8, a, alen);
    if (blen)
        memcpy(udp + 8 + alen, b, blen);
    struct pcap_pkthdr h;
    h.ts.tv_sec = (time_t)(ts_ns / 1000000000ull);
    h.ts.tv_usec = (suseconds_t)(ts_ns % 1000000000ull); /* nanoseconds: the file is nano-precision */
    h.caplen = h.len = (bpf_u_int32)(14 + tot);
    pcap_dump((u_char *)w->d, &h, f);
    return 0;
}

int mg_capture_write(mg_capture_writer *w, uint32_t src_ip, uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
                     const void *payload, size_t len, uint64_t ts_ns, mg_error *err)
{
    return mg_capture_write2(w, src_ip, dst_ip, src_port, dst_port, payload, len, NULL, 0, ts_ns, err);
}

int mg_capture_finish(mg_capture_writer *w, mg_error *err)
{
    int rc = 0;
    if (pcap_dump_flush(w->d) != 0)
        rc = mg_error_set(err, MG_EIO, "writing capture %s failed (disk full?)", w->path);
    pcap_dump_close(w->d);
    pcap_close(w->p);
    free(w->buf);
    free(w);
    return rc;
}
