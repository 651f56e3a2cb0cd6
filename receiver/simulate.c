/* simulate.c - the detector simulator's sending loop and fault injection
 * (contract in morgul/simulate.h). */
#include "morgul/assembler.h"
#include "morgul/simulate.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "morgul/capture.h"
#include "morgul/jungfrau.h"
#include "sim_content.h"

#define BATCH 64

typedef struct held {
    int link;
    uint64_t release_frame; /* send once this frame has begun */
    uint8_t pkt[MG_PACKET_BYTES];
} held;

typedef struct sim {
    const mg_sim_config *cfg;
    mg_sim_stats *st;
    int nlinks;
    int lmod[MG_MAX_LINKS], lif[MG_MAX_LINKS];
    unsigned lrow[MG_MAX_LINKS], lcol[MG_MAX_LINKS];
    struct sockaddr_in dest[MG_MAX_LINKS];
    int fd;
    mg_capture_writer *pcap;
    uint64_t ts_ns; /* capture time */
    /* UDP batch */
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH][2];
    mg_jf_header hdrs[BATCH];
    int nbatch;
    /* held back packets */
    held *hold;
    int nhold, cap_hold;
    uint64_t rng;
    FILE *log;
    mg_error *err;
} sim;

static inline double urand(sim *s)
{
    uint64_t x = s->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    s->rng = x;
    return (double)((x * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
}

static int flush_batch(sim *s)
{
    int done = 0;
    while (done < s->nbatch) {
        int n = sendmmsg(s->fd, s->msgs + done, (unsigned)(s->nbatch - done), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOBUFS || errno == EAGAIN) {
                /* loopback sender outran the kernel: retry, it is not a loss */
                struct timespec ts = {0, 20000};
                nanosleep(&ts, NULL);
                continue;
            }
            s->st->send_errors += (uint64_t)(s->nbatch - done);
            mg_error_set(s->err, MG_ESYS, "sending to port %u failed: %s",
                         ntohs(((struct sockaddr_in *)s->msgs[done].msg_hdr.msg_name)->sin_port), strerror(errno));
            s->nbatch = 0;
            return -1;
        }
        done += n;
    }
    s->nbatch = 0;
    return 0;
}

/* Sends (or records) one packet: header h, pixels px. */
static int emit(sim *s, int l, const mg_jf_header *h, const void *px)
{
    s->st->packets++;
    s->st->bytes += MG_PACKET_BYTES;
    if (s->pcap) {
        s->ts_ns += 1000;
        return mg_capture_write2(s->pcap, 0x7F000002u, ntohl(s->dest[l].sin_addr.s_addr), 32410,
                                 ntohs(s->dest[l].sin_port), h, MG_HEADER_BYTES, px, MG_PACKET_DATA_BYTES, s->ts_ns,
                                 s->err);
    }
    int i = s->nbatch++;
    s->hdrs[i] = *h;
    s->iov[i][0].iov_base = &s->hdrs[i];
    s->iov[i][0].iov_len = MG_HEADER_BYTES;
    s->iov[i][1].iov_base = (void *)px;
    s->iov[i][1].iov_len = MG_PACKET_DATA_BYTES;
    memset(&s->msgs[i], 0, sizeof s->msgs[i]);
    s->msgs[i].msg_hdr.msg_name = &s->dest[l];
    s->msgs[i].msg_hdr.msg_namelen = sizeof s->dest[l];
    s->msgs[i].msg_hdr.msg_iov = s->iov[i];
    s->msgs[i].msg_hdr.msg_iovlen = 2;
    if (s->nbatch == BATCH)
        return flush_batch(s);
    return 0;
}

static int hold(sim *s, int l, uint64_t release, const mg_jf_header *h, const void *px)
{
    if (s->nhold == s->cap_hold) {
        int cap = s->cap_hold ? 2 * s->cap_hold : 64;
        held *n = realloc(s->hold, sizeof(held) * (size_t)cap);
        if (!n)
            return mg_error_set(s->err, MG_ENOMEM, "out of memory holding delayed packets");
        s->hold = n;
        s->cap_hold = cap;
    }
    held *x = &s->hold[s->nhold++];
    x->link = l;
    x->release_frame = release;
    memcpy(x->pkt, h, MG_HEADER_BYTES);
    memcpy(x->pkt + MG_HEADER_BYTES, px, MG_PACKET_DATA_BYTES);
    return 0;
}

/* Sends held packets due at frame k (all of them if k == UINT64_MAX).
 * Sent packets are copied into the batch's header; the pixel pointer refers
 * to the held copy, so the batch is flushed before the hold list changes. */
static int release_held(sim *s, uint64_t k)
{
    int any = 0;
    for (int i = 0; i < s->nhold; i++)
        if (s->hold[i].release_frame <= k) {
            if (emit(s, s->hold[i].link, (const mg_jf_header *)s->hold[i].pkt, s->hold[i].pkt + MG_HEADER_BYTES))
                return -1;
            any = 1;
        }
    if (!any)
        return 0;
    if (!s->pcap && flush_batch(s))
        return -1;
    int j = 0;
    for (int i = 0; i < s->nhold; i++)
        if (s->hold[i].release_frame > k)
            s->hold[j++] = s->hold[i];
    s->nhold = j;
    return 0;
}

static void log_fault(sim *s, const char *kind, int l, uint64_t fn, unsigned p)
{
    if (s->log)
        fprintf(s->log, "%s,%d,%d,%llu,%u\n", kind, s->lmod[l], s->lif[l], (unsigned long long)fn, p);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int check_rates(const mg_sim_config *cfg, mg_error *err)
{
    const double r[4] = {cfg->drop, cfg->duplicate, cfg->reorder, cfg->delay};
    const char *n[4] = {"--drop", "--duplicate", "--reorder", "--delay"};
    for (int i = 0; i < 4; i++)
        if (!(r[i] >= 0 && r[i] <= 1))
            return mg_error_set(err, MG_EINVAL, "%s %g: a fault rate is a probability per packet, 0 to 1", n[i], r[i]);
    if (cfg->rate < 0)
        return mg_error_set(err, MG_EINVAL, "--rate %g: give frames per second, or 0 for as fast as possible", cfg->rate);
    return 0;
}

int mg_simulate(const mg_sim_config *cfg, mg_sim_stats *stats, mg_error *err)
{
    mg_sim_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    const mg_detector *d = cfg->det;
    if (mg_detector_validate(d, err) || check_rates(cfg, err))
        return err ? err->code : MG_EINVAL;
    uint64_t t0 = now_ns();
    FILE *truth = NULL;
    sim s;
    memset(&s, 0, sizeof s);
    s.cfg = cfg;
    s.st = stats;
    s.err = err;
    s.fd = -1;
    s.rng = cfg->seed * 0xD1B54A32D192ED03ull + 0x9E3779B97F4A7C15ull;
    s.nlinks = mg_detector_links(d);
    for (int l = 0; l < s.nlinks; l++) {
        mg_detector_link(d, l, &s.lmod[l], &s.lif[l]);
        mg_detector_link_position(d, l, &s.lrow[l], &s.lcol[l]);
        const mg_module *m = &d->modules[s.lmod[l]];
        const char *host = cfg->dest_host ? cfg->dest_host : m->bind;
        if (!strcmp(host, "0.0.0.0"))
            host = "127.0.0.1";
        s.dest[l].sin_family = AF_INET;
        s.dest[l].sin_port = htons(m->ports[s.lif[l]]);
        if (inet_pton(AF_INET, host, &s.dest[l].sin_addr) != 1)
            return mg_error_set(err, MG_EINVAL, "destination '%s' is not an IPv4 address", host);
    }
    int rc = 0;
    sim_content *content = sim_content_new(cfg, err);
    uint16_t *frames = calloc((size_t)d->nmodules, MG_MODULE_BYTES);
    uint32_t *daq = calloc((size_t)d->nmodules, sizeof(uint32_t));
    if (!content || !frames || !daq) {
        rc = content ? mg_error_set(err, MG_ENOMEM, "out of memory") : (err ? err->code : MG_EINVAL);
        goto done;
    }
    if (cfg->truth_file && *cfg->truth_file) {
        if (cfg->content != MG_SIM_PHOTONS) {
            rc = mg_error_set(err, MG_EINVAL, "--truth is for --content photons: other content has no photon counts");
            goto done;
        }
        truth = fopen(cfg->truth_file, "wb");
        if (!truth) {
            rc = mg_error_set(err, MG_EIO, "cannot write the truth file %s: %s", cfg->truth_file, strerror(errno));
            goto done;
        }
    }
    if (cfg->fault_log && *cfg->fault_log) {
        s.log = fopen(cfg->fault_log, "w");
        if (!s.log) {
            rc = mg_error_set(err, MG_EIO, "cannot write the fault log %s: %s", cfg->fault_log, strerror(errno));
            goto done;
        }
        fprintf(s.log, "kind,module,interface,frame_number,packet\n");
    }
    if (cfg->pcap_path) {
        s.pcap = mg_capture_create(cfg->pcap_path, cfg->overwrite, err);
        if (!s.pcap) {
            rc = err ? err->code : MG_EIO;
            goto done;
        }
    } else {
        s.fd = socket(AF_INET, SOCK_DGRAM, 0);
        int sz = 64 << 20;
        if (s.fd < 0) {
            rc = mg_error_set(err, MG_ESYS, "cannot open a UDP socket: %s", strerror(errno));
            goto done;
        }
        if (setsockopt(s.fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz))
            setsockopt(s.fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    }
    const uint64_t first = cfg->first_frame ? cfg->first_frame : 1;
    const double rate = cfg->rate;
    const uint64_t period_ticks = rate > 0 ? (uint64_t)llround(1e7 / rate) : 5000;
    const int delay_frames = cfg->delay_frames > 0 ? cfg->delay_frames : 2;
    uint8_t readout[16];
    mg_readout_mask(cfg->readnrows ? cfg->readnrows : d->readnrows, readout);
    unsigned max_ppi = 0;
    for (int l = 0; l < s.nlinks; l++)
        if (mg_detector_packets_per_interface(d, s.lmod[l]) > max_ppi)
            max_ppi = mg_detector_packets_per_interface(d, s.lmod[l]);
    t0 = now_ns();
    const uint64_t ts0 = cfg->capture_time > 0 ? (uint64_t)llround(cfg->capture_time * 1e9) : 1700000000ull * 1000000000ull;
    s.ts_ns = ts0;
    for (uint64_t k = 0; k < cfg->frames; k++) {
        if (cfg->stop && atomic_load(cfg->stop))
            break;
        if (rate > 0) {
            uint64_t due = t0 + (uint64_t)((double)k * 1e9 / rate);
            if (s.pcap)
                s.ts_ns = ts0 + (due - t0);
            else
                while (now_ns() < due) {
                    uint64_t left = due - now_ns();
                    if (left > 200000) {
                        struct timespec ts = {0, (long)(left - 100000)};
                        nanosleep(&ts, NULL);
                    }
                }
        }
        for (int m = 0; m < d->nmodules; m++) {
            daq[m] = sim_content_frame(content, m, k, frames + (size_t)m * MG_MODULE_PIXELS);
            if (truth && fwrite(sim_content_truth(content), sizeof(int32_t), MG_MODULE_PIXELS, truth) !=
                             MG_MODULE_PIXELS) {
                rc = mg_error_set(err, MG_EIO, "writing the truth file %s failed (disk full?)", cfg->truth_file);
                goto done;
            }
        }
        if (release_held(&s, k)) {
            rc = err ? err->code : MG_ESYS;
            goto done;
        }
        uint64_t fn = first + k;
        /* a packet swapped with the next one of its link waits here */
        int pending_l[MG_MAX_LINKS];
        mg_jf_header pend_h[MG_MAX_LINKS];
        const void *pend_px[MG_MAX_LINKS];
        for (int l = 0; l < s.nlinks; l++)
            pending_l[l] = 0;
        for (unsigned p = 0; p < max_ppi; p++)
            for (int l = 0; l < s.nlinks; l++) {
                int m = s.lmod[l];
                unsigned ppi = mg_detector_packets_per_interface(d, m);
                if (p >= ppi)
                    continue;
                unsigned q = (unsigned)s.lif[l] * ppi + p; /* partial readout: only the rows read are sent */
                if (!(readout[q >> 3] >> (q & 7) & 1))
                    continue;
                mg_jf_header h;
                memset(&h, 0, sizeof h);
                h.frame_number = fn;
                h.exposure_length = cfg->exposure_length;
                h.packet_number = p;
                h.bunch_id = cfg->bunch_id + k;
                h.timestamp = cfg->timestamp + k * period_ticks;
                h.module_id = mg_module_id_of(d->modules[m].name, (uint16_t)m);
                h.row = (uint16_t)s.lrow[l];
                h.column = (uint16_t)s.lcol[l];
                h.daq_info = cfg->daq_info | daq[m];
                h.detector_type = MG_DETECTOR_TYPE_JUNGFRAU;
                h.version = MG_HEADER_VERSION;
                const uint16_t *px = frames + (size_t)m * MG_MODULE_PIXELS +
                                     ((size_t)s.lif[l] * 256 + (size_t)p * MG_ROWS_PER_PACKET) * MG_MODULE_COLS;
                int sent = 0;
                if (cfg->drop > 0 && urand(&s) < cfg->drop) {
                    stats->dropped++;
                    log_fault(&s, "drop", l, fn, p);
                    sent = 1;
                } else if (cfg->delay > 0 && urand(&s) < cfg->delay) {
                    stats->delayed++;
                    log_fault(&s, "delay", l, fn, p);
                    if (hold(&s, l, k + (uint64_t)delay_frames, &h, px)) {
                        rc = err ? err->code : MG_ENOMEM;
                        goto done;
                    }
                    sent = 1;
                } else if (cfg->reorder > 0 && !pending_l[l] && p + 1 < ppi && urand(&s) < cfg->reorder) {
                    stats->reordered++;
                    log_fault(&s, "reorder", l, fn, p);
                    pending_l[l] = 1;
                    pend_h[l] = h;
                    pend_px[l] = px;
                    continue;
                }
                if (!sent) {
                    if (emit(&s, l, &h, px)) {
                        rc = err ? err->code : MG_ESYS;
                        goto done;
                    }
                    if (cfg->duplicate > 0 && urand(&s) < cfg->duplicate) {
                        stats->duplicated++;
                        log_fault(&s, "duplicate", l, fn, p);
                        if (emit(&s, l, &h, px)) {
                            rc = err ? err->code : MG_ESYS;
                            goto done;
                        }
                    }
                }
                if (pending_l[l]) {
                    pending_l[l] = 0;
                    if (emit(&s, l, &pend_h[l], pend_px[l])) {
                        rc = err ? err->code : MG_ESYS;
                        goto done;
                    }
                }
            }
        for (int l = 0; l < s.nlinks; l++) /* a swap partner that was dropped */
            if (pending_l[l] && emit(&s, l, &pend_h[l], pend_px[l])) {
                rc = err ? err->code : MG_ESYS;
                goto done;
            }
        if (!s.pcap && flush_batch(&s)) { /* frame buffers are reused next frame */
            rc = err ? err->code : MG_ESYS;
            goto done;
        }
        stats->frames++;
    }
    if (release_held(&s, UINT64_MAX))
        rc = err ? err->code : MG_ESYS;
done:
    stats->seconds = (double)(now_ns() - t0) / 1e9;
    if (s.pcap) {
        mg_error e2;
        if (mg_capture_finish(s.pcap, &e2) && !rc) {
            rc = e2.code;
            if (err)
                *err = e2;
        }
    }
    if (s.fd >= 0)
        close(s.fd);
    if (s.log)
        fclose(s.log);
    if (truth && fclose(truth) && !rc)
        rc = mg_error_set(err, MG_EIO, "closing the truth file %s failed (disk full?)", cfg->truth_file);
    free(s.hold);
    free(frames);
    free(daq);
    sim_content_free(content);
    return rc;
}
