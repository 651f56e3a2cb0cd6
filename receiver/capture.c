/* capture.c - pcap reading and writing through libpcap
 * (contract in morgul/capture.h). */
#include "morgul/capture.h"
#include "morgul/jungfrau.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define IO_BUFFER (4 << 20)

struct mg_capture {
    /* classic pcap files are read in place from a mapping: no copies */
    const uint8_t *map;
    size_t map_size, pos;
    int swapped, nano;
    /* anything else (pcapng) through libpcap */
    pcap_t *p;
    char *iobuf; /* the FILE's buffer: glibc ignores setvbuf's size without one */
    int dlt;
    char path[1024];
    mg_capture_stats st;
};

static uint32_t rd32(const uint8_t *p, int swapped)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swapped ? __builtin_bswap32(v) : v;
}

/* The DLT_ value of a file's LINKTYPE_ value, for the few that differ. */
static int dlt_of_linktype(uint32_t lt)
{
    switch (lt & 0xFFFF) {
    case 101: return DLT_RAW;
#ifdef DLT_IPV4
    case 228: return DLT_IPV4;
    case 229: return DLT_IPV6;
#endif
    default: return (int)(lt & 0xFFFF);
    }
}

static int check_dlt(mg_capture *c, const char *path, mg_error *err)
{
    switch (c->dlt) {
    case DLT_EN10MB: case DLT_LINUX_SLL: case DLT_RAW: case DLT_NULL:
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
#endif
#ifdef DLT_IPV4
    case DLT_IPV4: case DLT_IPV6:
#endif
        return 0;
    default:
        return mg_error_set(err, MG_EFORMAT,
                            "capture %s has link type %s, which morgul does not read (Ethernet, Linux cooked, raw "
                            "IP, loopback)",
                            path, pcap_datalink_val_to_name(c->dlt) ? pcap_datalink_val_to_name(c->dlt) : "?");
    }
}

/* Maps a classic pcap file; returns 1 if it is one, 0 if not (try libpcap), <0 on error. */
static int open_mapped(mg_capture *c, const char *path, mg_error *err)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return mg_error_set(err, MG_EIO, "cannot open capture %s: %s", path, strerror(errno));
    struct stat st;
    uint8_t head[24];
    if (fstat(fd, &st) || pread(fd, head, 24, 0) != 24) {
        close(fd);
        return 0; /* too short for pcap: libpcap gives the error */
    }
    uint32_t magic;
    memcpy(&magic, head, 4);
    int swapped = 0, nano = 0;
    if (magic == 0xA1B2C3D4u || magic == 0xA1B23C4Du)
        nano = magic == 0xA1B23C4Du;
    else if (magic == 0xD4C3B2A1u || magic == 0x4D3CB2A1u)
        swapped = 1, nano = magic == 0x4D3CB2A1u;
    else {
        close(fd);
        return 0;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return 0;
    /* two calls: advice values are not flags (SEQUENTIAL | WILLNEED would be WILLNEED alone) */
    madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
    madvise(m, (size_t)st.st_size, MADV_WILLNEED);
    c->map = m;
    c->map_size = (size_t)st.st_size;
    c->pos = 24;
    c->swapped = swapped;
    c->nano = nano;
    c->dlt = dlt_of_linktype(rd32(head + 20, swapped));
    return 1;
}

/* The next record of a mapped file: 1, 0 at the end, <0 if corrupt. */
static int next_mapped(mg_capture *c, const uint8_t **data, size_t *caplen, size_t *len, uint64_t *ts, mg_error *err)
{
    if (c->pos == c->map_size)
        return 0;
    if (c->map_size - c->pos < 16)
        return mg_error_set(err, MG_EFORMAT, "capture %s is truncated after %llu records (a record header is cut)",
                            c->path, (unsigned long long)c->st.records);
    const uint8_t *h = c->map + c->pos;
    uint32_t sec = rd32(h, c->swapped), frac = rd32(h + 4, c->swapped);
    uint32_t incl = rd32(h + 8, c->swapped), orig = rd32(h + 12, c->swapped);
    if (incl > 262144)
        return mg_error_set(err, MG_EFORMAT, "capture %s is corrupt after %llu records (a record claims %u bytes)",
                            c->path, (unsigned long long)c->st.records, incl);
    if (c->map_size - c->pos - 16 < incl)
        return mg_error_set(err, MG_EFORMAT, "capture %s is truncated after %llu records (the last record is cut)",
                            c->path, (unsigned long long)c->st.records);
    *data = h + 16;
    *caplen = incl;
    *len = orig;
    /* records are mostly alike in size: ask for the header a few records on */
    size_t ahead = c->pos + 8 * (16 + (size_t)incl);
    if (ahead + 64 < c->map_size)
        __builtin_prefetch(c->map + ahead);
    *ts = (uint64_t)sec * 1000000000ull + (uint64_t)frac * (c->nano ? 1u : 1000u);
    c->pos += 16 + incl;
    return 1;
}

mg_capture *mg_capture_open(const char *path, mg_error *err)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    {
        mg_capture *c = calloc(1, sizeof *c);
        if (!c) {
            mg_error_set(err, MG_ENOMEM, "out of memory");
            return NULL;
        }
        snprintf(c->path, sizeof c->path, "%s", path);
        int r = open_mapped(c, path, err);
        if (r < 0 || (r == 1 && check_dlt(c, path, err))) {
            mg_capture_close(c);
            return NULL;
        }
        if (r == 1)
            return c;
        free(c);
    }
    /* our own FILE with a big buffer: libpcap's reads then cost one system
     * call per few hundred packets instead of several per packet */
    mg_capture *c = calloc(1, sizeof *c);
    char *iobuf = malloc(IO_BUFFER);
    if (!c || !iobuf) {
        free(c);
        free(iobuf);
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        free(c);
        free(iobuf);
        mg_error_set(err, MG_EIO, "cannot open capture %s: %s", path, strerror(errno));
        return NULL;
    }
    setvbuf(fp, iobuf, _IOFBF, IO_BUFFER);
    pcap_t *p = pcap_fopen_offline_with_tstamp_precision(fp, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    if (!p) {
        fclose(fp);
        free(c);
        free(iobuf);
        mg_error_set(err, MG_EFORMAT, "cannot read capture %s: %s", path, ebuf);
        return NULL;
    }
    c->p = p;
    c->iobuf = iobuf;
    c->dlt = pcap_datalink(p);
    snprintf(c->path, sizeof c->path, "%s", path);
    if (check_dlt(c, path, err)) {
        mg_capture_close(c);
        return NULL;
    }
    return c;
}

void mg_capture_close(mg_capture *c)
{
    if (!c)
        return;
    if (c->map)
        munmap((void *)c->map, c->map_size);
    if (c->p)
        pcap_close(c->p); /* closes the FILE: only then may its buffer go */
    free(c->iobuf);
    free(c);
}

const char *mg_capture_link_type(const mg_capture *c)
{
    const char *n = pcap_datalink_val_to_name(c->dlt);
    return n ? n : "?";
}

void mg_capture_get_stats(const mg_capture *c, mg_capture_stats *s) { *s = c->st; }

int mg_capture_stable(const mg_capture *c) { return c->map != NULL; }

int mg_capture_rewind(mg_capture *c)
{
    if (!c->map)
        return MG_EINVAL;
    c->pos = 24;
    return 0;
}

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
        const u_char *d = NULL;
        size_t n = 0, wire = 0;
        uint64_t when = 0;
        if (c->map) {
            int r = next_mapped(c, &d, &n, &wire, &when, err);
            if (r <= 0)
                return r;
        } else {
            struct pcap_pkthdr *h;
            int r = pcap_next_ex(c->p, &h, &d);
            if (r == PCAP_ERROR_BREAK || r == -2)
                return 0;
            if (r != 1)
                return mg_error_set(err, MG_EFORMAT, "capture %s is corrupt or truncated after %llu records: %s",
                                    c->path, (unsigned long long)c->st.records, pcap_geterr(c->p));
            n = h->caplen;
            wire = h->len;
            when = (uint64_t)h->ts.tv_sec * 1000000000ull + (uint64_t)h->ts.tv_usec; /* nano precision */
        }
        (void)wire;
        c->st.records++;
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
        *ts_ns = when;
        c->st.udp++;
        return 1;
    }
}

struct mg_capture_writer {
    pcap_t *p;
    char *iobuf;
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
    if (!w || !(w->buf = malloc(65536)) || !(w->iobuf = malloc(IO_BUFFER))) {
        if (w)
            free(w->buf);
        free(w);
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    snprintf(w->path, sizeof w->path, "%s", path);
    w->p = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 65535, PCAP_TSTAMP_PRECISION_NANO);
    FILE *fp = w->p ? fopen(path, "wb") : NULL;
    if (fp)
        setvbuf(fp, w->iobuf, _IOFBF, IO_BUFFER); /* few, large writes */
    w->d = fp ? pcap_dump_fopen(w->p, fp) : NULL;
    if (!w->d) {
        mg_error_set(err, MG_EIO, "cannot create capture %s: %s", path, w->p && fp ? pcap_geterr(w->p) : strerror(errno));
        if (fp)
            fclose(fp);
        if (w->p)
            pcap_close(w->p);
        free(w->buf);
        free(w->iobuf);
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
    pcap_dump_close(w->d); /* closes the FILE before its buffer goes */
    pcap_close(w->p);
    free(w->buf);
    free(w->iobuf);
    free(w);
    return rc;
}

int mg_capture_first_packet(const char *path, double *t, struct mg_jf_header *h)
{
    mg_error e = {0};
    mg_capture *c = mg_capture_open(path, &e);
    if (!c)
        return -1;
    const uint8_t *pl, *px;
    size_t len;
    uint16_t port;
    uint64_t ts = 0;
    int rc = -1;
    for (int k = 0; k < 1000 && rc && mg_capture_next(c, &pl, &len, &port, &ts, &e) == 1; k++) {
        const mg_jf_header *hp;
        if (mg_packet_check(pl, len, MG_PACKETS_PER_MODULE, &hp, &px) == MG_PACKET_OK) {
            memcpy(h, hp, sizeof *h);
            *t = (double)ts * 1e-9;
            rc = 0;
        }
    }
    mg_capture_close(c);
    return rc;
}
