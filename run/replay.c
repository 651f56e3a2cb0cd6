/* replay.c - a pcap capture as the packet source: fed through the same
 * assembly and writing as live data, or sent out again over UDP
 * (see morgul/run.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "morgul/capture.h"
#include "run_internal.h"

/* Sleeps until monotonic time t in steps of at most 50 ms, so a stop request
 * is honoured within 50 ms however far t is.  Returns 1 if stopped. */
static int sleep_until(uint64_t t, _Atomic int *stop)
{
    for (;;) {
        if (stop && atomic_load(stop))
            return 1;
        uint64_t now = mg_now_ns();
        if (now >= t)
            return 0;
        uint64_t d = t - now;
        if (d > 50000000ull)
            d = 50000000ull;
        struct timespec ts = {(time_t)(d / 1000000000ull), (long)(d % 1000000000ull)};
        nanosleep(&ts, NULL);
    }
}

/* Pacing by capture time: the first record sets the origin. */
typedef struct pacer {
    int on;
    double speed;
    uint64_t t0, ts0, prev;
    int started, told;
    FILE *log;
    _Atomic int *stop;
} pacer;

/* Waits for record time ts; returns 1 if a stop request came meanwhile. */
static int pace(pacer *p, uint64_t ts)
{
    if (!p->on)
        return 0;
    double speed = p->speed > 0 ? p->speed : 1;
    if (!p->started) {
        p->started = 1;
        p->t0 = mg_now_ns();
        p->ts0 = p->prev = ts;
        return 0;
    }
    if (ts <= p->ts0)
        return 0;
    uint64_t now = mg_now_ns();
    /* A pause in the capture (more than 1 ms) stays a pause even when sending has fallen behind the capture's
     * pace: the lag is forgiven before it, not made up by sending through it (a detector stopped between two
     * acquisitions must look stopped). */
    if (ts > p->prev && (double)(ts - p->prev) / speed > 1e6) {
        uint64_t prev_at = p->t0 + (uint64_t)((double)(p->prev - p->ts0) / speed);
        if (now > prev_at)
            p->t0 += now - prev_at;
    }
    if (ts > p->prev)
        p->prev = ts;
    uint64_t at = p->t0 + (uint64_t)((double)(ts - p->ts0) / speed);
    if (at > now + 10000000000ull && !p->told && p->log) {
        p->told = 1;
        fprintf(p->log, "replay: the next record is %.0f s later in the capture; waiting for it (Ctrl-C ends)\n",
                (double)(at - now) / 1e9);
    }
    return sleep_until(at, p->stop);
}

/* Frame-number shifting for --loops: pass L adds L x span to every packet's
 * frame number, span being the longest run of frame numbers any port has in
 * the capture, so every module advances by the same amount. */
typedef struct looper {
    int loops, pass;
    uint64_t span;
    uint16_t ports[MG_MAX_LINKS];
    uint64_t lo[MG_MAX_LINKS], hi[MG_MAX_LINKS];
    int nports;
} looper;

static void loop_note(looper *lp, uint16_t port, const uint8_t *pl, size_t len)
{
    const mg_jf_header *h;
    const uint8_t *px;
    if (mg_packet_check(pl, len, 128, &h, &px) != MG_PACKET_OK)
        return;
    int i = 0;
    while (i < lp->nports && lp->ports[i] != port)
        i++;
    if (i == lp->nports) {
        if (i == MG_MAX_LINKS)
            return;
        lp->ports[i] = port;
        lp->lo[i] = lp->hi[i] = h->frame_number;
        lp->nports++;
    }
    if (h->frame_number < lp->lo[i])
        lp->lo[i] = h->frame_number;
    if (h->frame_number > lp->hi[i])
        lp->hi[i] = h->frame_number;
}

int mg_run_replay(const mg_run_config *cfg, mg_run_summary *sum, mg_error *err)
{
    run r;
    mg_capture *cap = mg_capture_open(cfg->pcap, err);
    if (!cap)
        return err ? err->code : MG_EFORMAT;
    looper *lp = calloc(1, sizeof *lp);
    if (!lp) {
        mg_capture_close(cap);
        return mg_error_set(err, MG_ENOMEM, "out of memory");
    }
    lp->loops = cfg->loops > 0 ? cfg->loops : 1;
    /* a mapped capture stays in memory: frames point into it, nothing is copied */
    int rc = run_setup(&r, cfg, !cfg->realtime, mg_capture_stable(cap), err);
    int ended = MG_END_ERROR;
    int nlinks = mg_detector_links(&cfg->det);
    pacer pc = {.on = cfg->realtime, .speed = cfg->speed, .log = cfg->quiet ? NULL : r.log, .stop = cfg->stop};
    uint64_t n = 0, skipped = 0;
    /* the assembler's clock is the capture's: time stamps, each pass after the one before */
    uint64_t t_first = 0, t_last = 0, t_shift = 0;
    if (!rc)
        run_ready(&r);
    while (!rc) {
        const uint8_t *pl;
        size_t len;
        uint16_t port;
        uint64_t ts;
        int got = mg_capture_next(cap, &pl, &len, &port, &ts, err);
        if (got < 0) {
            /* corrupt from here on: keep everything read so far, say so */
            fprintf(r.log, "error: %s; the frames read before are written\n", err ? err->message : "corrupt capture");
            rc = err ? err->code : MG_EFORMAT;
            break;
        }
        if (got == 0) {
            if (++lp->pass >= lp->loops) {
                ended = MG_END_EOF;
                break;
            }
            /* next pass: frame numbers continue after this one's, and so does time */
            for (int i = 0; i < lp->nports; i++)
                if (lp->hi[i] - lp->lo[i] + 1 > lp->span)
                    lp->span = lp->hi[i] - lp->lo[i] + 1;
            t_shift = t_last + 1000000 - t_first;
            if (mg_capture_rewind(cap)) { /* counts go on across a rewind, not across a reopen */
                mg_capture_stats cs;
                mg_capture_get_stats(cap, &cs);
                skipped += cs.not_udp + cs.fragments + cs.truncated;
                mg_capture_close(cap);
                cap = mg_capture_open(cfg->pcap, err);
                if (!cap) {
                    rc = err ? err->code : MG_EFORMAT;
                    break;
                }
            }
            continue;
        }
        if ((cfg->stop && atomic_load(cfg->stop)) || pace(&pc, ts)) {
            ended = MG_END_SIGNAL;
            break;
        }
        if (atomic_load(&r.stop_internal))
            break;
        if (!t_first) {
            t_first = ts;
            r.t_data = mg_now_ns();
        }
        uint64_t now = ts + t_shift;
        if (now > t_last)
            t_last = now;
        int link = mg_detector_link_of_port(&cfg->det, port);
        if (link < 0) {
            r.unexpected_port++;
            continue;
        }
        if (lp->loops > 1 && lp->pass == 0)
            loop_note(lp, port, pl, len);
        while (mg_asm_push_offline(r.a, link, pl, len, now, (uint64_t)lp->pass * lp->span) == MG_ASM_RETRY) {
            /* the frame buffer is still downstream: let the window move and wait */
            for (int l = 0; l < nlinks; l++)
                mg_asm_tick(r.a, l, now);
            if (atomic_load(&r.stop_internal))
                break;
            struct timespec t = {0, 200000};
            nanosleep(&t, NULL);
        }
        if ((++n & 255) == 0) {
            for (int l = 0; l < nlinks; l++)
                mg_asm_tick(r.a, l, now);
            run_progress(&r, 0);
        }
        if (mg_pipeline_collector_done(r.pipe)) {
            ended = MG_END_FRAMES;
            break;
        }
    }
    if (r.a)
        for (int l = 0; l < nlinks; l++)
            mg_asm_flush(r.a, l);
    if (cap) {
        mg_capture_stats cs;
        mg_capture_get_stats(cap, &cs);
        skipped += cs.not_udp + cs.fragments + cs.truncated;
    }
    r.capture_skipped = skipped;
    free(lp);
    run_progress(&r, 1);
    rc = run_finish(&r, sum, ended, rc, err);
    /* only now: frames in flight point into the capture's mapping */
    mg_capture_close(cap);
    return rc;
}

int mg_detector_from_capture(mg_detector *det, const char *pcap, FILE *log, mg_error *err)
{
    mg_capture *cap = mg_capture_open(pcap, err);
    if (!cap)
        return err ? err->code : MG_EFORMAT;
    struct {
        uint16_t port;
        unsigned row, col, maxp;
        uint64_t n;
    } seen[MG_MAX_LINKS];
    int nports = 0, rc = 0;
    const uint8_t *pl;
    size_t len;
    uint16_t port;
    uint64_t ts;
    int got;
    while ((got = mg_capture_next(cap, &pl, &len, &port, &ts, err)) > 0) {
        const mg_jf_header *h;
        const uint8_t *px;
        if (mg_packet_check(pl, len, 128, &h, &px) != MG_PACKET_OK)
            continue;
        int i = 0;
        while (i < nports && seen[i].port != port)
            i++;
        if (i == nports) {
            if (nports == MG_MAX_LINKS)
                continue;
            seen[nports].port = port;
            seen[nports].row = h->row;
            seen[nports].col = h->column;
            seen[nports].maxp = 0;
            seen[nports].n = 0;
            nports++;
        }
        if (h->packet_number > seen[i].maxp)
            seen[i].maxp = h->packet_number;
        seen[i].n++;
    }
    mg_capture_close(cap);
    if (got < 0)
        return err ? err->code : MG_EFORMAT;
    if (!nports)
        return mg_error_set(err, MG_EFORMAT, "%s holds no JUNGFRAU packets (8240-byte UDP payloads)", pcap);
    /* ports in increasing order */
    for (int i = 1; i < nports; i++)
        for (int j = i; j > 0 && seen[j].port < seen[j - 1].port; j--) {
            __typeof__(seen[0]) t = seen[j];
            seen[j] = seen[j - 1];
            seen[j - 1] = t;
        }
    unsigned maxp = 0;
    for (int i = 0; i < nports; i++)
        if (seen[i].maxp > maxp)
            maxp = seen[i].maxp;
    int ifaces = (maxp < 64 && nports % 2 == 0) ? 2 : 1;
    memset(det, 0, sizeof *det);
    snprintf(det->name, sizeof det->name, "replay");
    det->nmodules = nports / ifaces;
    for (int m = 0; m < det->nmodules; m++) {
        mg_module *mod = &det->modules[m];
        snprintf(mod->name, sizeof mod->name, "M%03d", m);
        mod->interfaces = ifaces;
        mod->row = (int)seen[m * ifaces].row / ifaces;
        mod->column = (int)seen[m * ifaces].col;
        for (int i = 0; i < ifaces; i++)
            mod->ports[i] = seen[m * ifaces + i].port;
        snprintf(mod->bind, sizeof mod->bind, "capture");
    }
    /* positions must be unique; if the headers do not make them so, stack the modules */
    if (mg_detector_validate(det, NULL))
        for (int m = 0; m < det->nmodules; m++) {
            det->modules[m].row = m;
            det->modules[m].column = 0;
        }
    rc = mg_detector_validate(det, err);
    if (!rc && log) {
        fprintf(log, "capture %s: %d port(s) with JUNGFRAU packets, highest packet number %u -> %d module(s) x %d "
                     "interface(s) (override with --config or --modules/--interfaces/--port)\n",
                pcap, nports, maxp, det->nmodules, ifaces);
    }
    return rc;
}

int mg_replay_send(const char *pcap, const char *dest, int realtime, double speed, FILE *log, _Atomic int *stop,
                   mg_error *err)
{
    char host[256];
    int base = -1;
    snprintf(host, sizeof host, "%s", dest);
    char *colon = strrchr(host, ':');
    if (colon) {
        *colon = 0;
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (*end || p < 1 || p > 65535)
            return mg_error_set(err, MG_EINVAL, "--send %s: the port must be 1-65535", dest);
        base = (int)p;
    }
    struct sockaddr_in to;
    memset(&to, 0, sizeof to);
    to.sin_family = AF_INET;
    if (inet_pton(AF_INET, host, &to.sin_addr) != 1)
        return mg_error_set(err, MG_EINVAL, "--send %s: '%s' is not an IPv4 address", dest, host);
    /* the capture's lowest port, to shift ports by */
    int lowest = 65536;
    if (base >= 0) {
        mg_capture *c = mg_capture_open(pcap, err);
        if (!c)
            return err ? err->code : MG_EFORMAT;
        const uint8_t *pl;
        size_t len;
        uint16_t port;
        uint64_t ts;
        int got;
        while ((got = mg_capture_next(c, &pl, &len, &port, &ts, err)) > 0)
            if (port < lowest)
                lowest = port;
        mg_capture_close(c);
        if (got < 0)
            return err ? err->code : MG_EFORMAT;
    }
    mg_capture *c = mg_capture_open(pcap, err);
    if (!c)
        return err ? err->code : MG_EFORMAT;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        mg_capture_close(c);
        return mg_error_set(err, MG_ESYS, "cannot open a UDP socket: %s", strerror(errno));
    }
    int sz = 64 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz))
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    pacer pc = {.on = realtime, .speed = speed, .log = log, .stop = stop};
    uint64_t sent = 0, bytes = 0, t0 = mg_now_ns();
    int rc = 0;
    for (;;) {
        const uint8_t *pl;
        size_t len;
        uint16_t port;
        uint64_t ts;
        int got = mg_capture_next(c, &pl, &len, &port, &ts, err);
        if (got <= 0) {
            rc = got;
            break;
        }
        if ((stop && atomic_load(stop)) || pace(&pc, ts))
            break;
        to.sin_port = htons((uint16_t)(base >= 0 ? base + (port - lowest) : port));
        while (sendto(fd, pl, len, 0, (struct sockaddr *)&to, sizeof to) < 0) {
            if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) {
                struct timespec t = {0, 20000};
                nanosleep(&t, NULL);
                continue;
            }
            rc = mg_error_set(err, MG_ESYS, "sending to %s:%u failed: %s", host, ntohs(to.sin_port), strerror(errno));
            break;
        }
        if (rc)
            break;
        sent++;
        bytes += len;
    }
    close(fd);
    mg_capture_close(c);
    double dt = (double)(mg_now_ns() - t0) / 1e9;
    if (log)
        fprintf(log, "sent %llu datagrams (%.3f GB) to %s in %.2f s\n", (unsigned long long)sent, (double)bytes / 1e9,
                host, dt);
    return rc;
}
