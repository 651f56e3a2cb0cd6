/* receive.c - live receiving: one thread per link on its UDP socket
 * (see morgul/run.h).
 *
 * The sockets are bound before anything else is set up, so a port in use
 * or a wrong address fails the run before any file exists.  Each thread is
 * pinned to its core near the NIC, reads up to `batch` datagrams per
 * recvmmsg into its own staging buffers and offers them to the assembler,
 * which copies the pixels into place.  Every datagram carries the kernel's
 * receive time (SO_TIMESTAMPNS): the assembler's clock, so a thread that was
 * not scheduled for a while still sees when its packets really came.  A
 * 2 ms receive timeout gives it a heartbeat; when a read finds the socket
 * drained, the link's timeouts are looked at.  The kernel's drop counter for
 * the socket (SO_RXQ_OVFL) arrives with every batch and is reported as
 * kernel drops. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "run_internal.h"

#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif

#define DGRAM_CAP 9216 /* anything longer than a jumbo frame is cut and counted as wrong size */

/* CLOCK_REALTIME in ns: the clock of the kernel's receive time stamps. */
static uint64_t wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

typedef struct rx_link {
    run *r;
    int link;
    int fd;
    int core;
    mg_thread th;
    _Atomic int *stop;
    _Atomic uint64_t last_ns;
    uint64_t drops0;           /* the socket's kernel drops before the run (a socket kept between runs) */
} rx_link;

/* The kernel's drop count of a UDP socket from /proc/net/udp: the cmsg
 * counter arrives only with the next datagram, so drops after the last
 * datagram of a run would otherwise go unreported.  0 if not found. */
static uint64_t socket_drops(int fd)
{
    struct stat st;
    if (fstat(fd, &st))
        return 0;
    FILE *f = fopen("/proc/net/udp", "r");
    if (!f)
        return 0;
    char line[512];
    uint64_t drops = 0;
    while (fgets(line, sizeof line, f)) {
        unsigned long long inode = 0, d = 0;
        /* sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops */
        if (sscanf(line, " %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu %*s %*s %llu", &inode, &d) == 2 &&
            inode == (unsigned long long)st.st_ino) {
            drops = d;
            break;
        }
    }
    fclose(f);
    return drops;
}

/* The kernel's count (32 bits in the message, wrapping) since the run began. */
static uint64_t drops_since(const rx_link *x, uint64_t d)
{
    return (uint32_t)(d - x->drops0);
}

static void *rx_main(void *arg)
{
    rx_link *x = arg;
    run *r = x->r;
    if (r->pin)
        mg_topology_bind_thread(r->topo, x->core, NULL);
    int batch = r->cfg->batch > 0 ? r->cfg->batch : 64;
    if (batch > 1024)
        batch = 1024;
    uint8_t *bufs = malloc((size_t)batch * DGRAM_CAP);
    struct mmsghdr *msgs = calloc((size_t)batch, sizeof *msgs);
    struct iovec *iov = calloc((size_t)batch, sizeof *iov);
    char (*ctl)[CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(struct timespec))] =
        calloc((size_t)batch, sizeof *ctl);
    if (!bufs || !msgs || !iov || !ctl) {
        atomic_store(&r->stop_internal, 1);
        fprintf(r->log, "link %d: out of memory for receive buffers; stopping\n", x->link);
        goto out;
    }
    for (int i = 0; i < batch; i++) {
        iov[i].iov_base = bufs + (size_t)i * DGRAM_CAP;
        iov[i].iov_len = DGRAM_CAP;
    }
    uint64_t last_proc = mg_now_ns(), drain_until = 0;
    for (;;) {
        /* A stop request: what the kernel has already delivered to the socket is still taken (for at most
         * 50 ms, in case the detector goes on sending), then the link is flushed. */
        int flags = MSG_WAITFORONE;
        if (atomic_load_explicit(x->stop, memory_order_relaxed)) {
            if (!drain_until)
                drain_until = mg_now_ns() + 50000000ull;
            else if (mg_now_ns() > drain_until)
                break;
            flags = MSG_DONTWAIT;
        }
        for (int i = 0; i < batch; i++) {
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctl[i];
            msgs[i].msg_hdr.msg_controllen = sizeof ctl[i];
            msgs[i].msg_hdr.msg_flags = 0;
        }
        /* Whatever arrived before this moment is taken by this call if it returns less than a batch: the
         * time up to which the link is then known silent.  (A time taken after the call could be much later
         * if the thread is kept from running in between, and what arrived meanwhile would not be in it: the
         * link would give up frames whose packets are waiting in its socket.) */
        uint64_t asked = wall_ns();
        int n = recvmmsg(x->fd, msgs, (unsigned)batch, flags, NULL);
        if (n <= 0 && flags == MSG_DONTWAIT)
            break; /* drained */
        uint64_t now = mg_now_ns(), wall = wall_ns();
        if (n > 0) {
            for (int i = 0; i < n; i++) {
                size_t len = msgs[i].msg_len;
                /* a datagram cut at DGRAM_CAP is longer than any packet: passing
                 * the larger length gets it refused as wrong size (only the
                 * length is looked at for such a datagram) */
                if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
                    len = DGRAM_CAP + 1;
                uint64_t t = wall;
                struct msghdr *h = &msgs[i].msg_hdr;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
                    if (c->cmsg_level != SOL_SOCKET)
                        continue;
                    if (c->cmsg_type == SCM_TIMESTAMPNS) {
                        struct timespec ts;
                        memcpy(&ts, CMSG_DATA(c), sizeof ts);
                        t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
                    } else if (c->cmsg_type == SO_RXQ_OVFL && i == n - 1) {
                        uint32_t drops;
                        memcpy(&drops, CMSG_DATA(c), sizeof drops);
                        mg_asm_set_kernel_drops(r->a, x->link, drops_since(x, drops));
                    }
                }
                mg_asm_push(r->a, x->link, iov[i].iov_base, len, t);
            }
            atomic_store_explicit(&x->last_ns, now, memory_order_relaxed);
        }
        if (n < batch) /* the socket is drained: nothing more is waiting for this link */
            mg_asm_tick(r->a, x->link, asked);
        if (now - last_proc > 1000000000ull) { /* drops while no datagram brings the counter */
            last_proc = now;
            uint64_t d = socket_drops(x->fd);
            if (d)
                mg_asm_set_kernel_drops(r->a, x->link, drops_since(x, d));
        }
    }
    {
        uint64_t d = socket_drops(x->fd);
        if (d)
            mg_asm_set_kernel_drops(r->a, x->link, drops_since(x, d));
    }
out:
    mg_asm_flush(r->a, x->link);
    free(bufs);
    free(msgs);
    free(iov);
    free(ctl);
    return NULL;
}

int mg_run_bind(const mg_run_config *cfg, int link, FILE *log, int *fd_out, mg_error *err)
{
    const mg_detector *d = &cfg->det;
    int m, i;
    mg_detector_link(d, link, &m, &i);
    const mg_module *mod = &d->modules[m];
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(mod->ports[i]);
    if (inet_pton(AF_INET, mod->bind, &a.sin_addr) != 1)
        return mg_error_set(err, MG_ECONFIG, "module %s: bind address '%s' is not an IPv4 address", mod->name,
                            mod->bind);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return mg_error_set(err, MG_ESYS, "cannot open a UDP socket: %s", strerror(errno));
    int want = (cfg->rcvbuf_mb > 0 ? cfg->rcvbuf_mb : 256) << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof want))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
    int got = 0;
    socklen_t gl = sizeof got;
    getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &gl);
    if (got / 2 < want && !cfg->quiet) /* the kernel reports twice what it accounts */
        fprintf(log,
                "warning: port %u: the kernel capped the receive buffer at %d MiB of %d MiB asked; packets may be "
                "dropped at high rates. Run as root, or raise net.core.rmem_max (sysctl -w "
                "net.core.rmem_max=%d)\n",
                mod->ports[i], got / 2 >> 20, want >> 20, want);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    struct timeval tv = {0, 2000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (bind(fd, (struct sockaddr *)&a, sizeof a)) {
        int e = errno;
        close(fd);
        return mg_error_set(err, MG_ESYS, "module %s interface %d: cannot listen on %s:%u: %s%s", mod->name, i,
                            mod->bind, mod->ports[i], strerror(e),
                            e == EADDRINUSE ? " (is another receiver running?)"
                            : e == EADDRNOTAVAIL ? " (no interface has this address)" : "");
    }
    *fd_out = fd;
    return 0;
}

int mg_run_receive(const mg_run_config *cfg, mg_run_summary *sum, mg_error *err)
{
    run r;
    memset(&r, 0, sizeof r);
    int nlinks = mg_detector_links(&cfg->det);
    rx_link *rx = calloc((size_t)nlinks, sizeof *rx);
    _Atomic int stop_rx;
    atomic_init(&stop_rx, 0);
    if (!rx)
        return mg_error_set(err, MG_ENOMEM, "out of memory");
    for (int l = 0; l < nlinks; l++)
        rx[l].fd = -1;
    FILE *log = cfg->log ? cfg->log : stderr;
    /* every socket is bound first: a port in use or a wrong address fails the run before anything is made */
    int rc = mg_detector_validate(&cfg->det, err);
    for (int l = 0; l < nlinks && !rc; l++)
        if (cfg->sockets) /* kept by the caller between runs: what waits in it from before is the caller's */
            rx[l].drops0 = socket_drops(rx[l].fd = cfg->sockets[l]);
        else
            rc = mg_run_bind(cfg, l, log, &rx[l].fd, err);
    if (!rc)
        rc = run_setup(&r, cfg, 0, 0, err);
    int ended = MG_END_ERROR;
    for (int l = 0; l < nlinks && !rc; l++) {
        rx[l].r = &r;
        rx[l].link = l;
        rx[l].core = r.plan.link_core[l];
        rx[l].stop = &stop_rx;
        atomic_init(&rx[l].last_ns, 0);
        if (mg_thread_start(cfg->kept ? cfg->kept->threads : NULL, &rx[l].th, rx_main, &rx[l], NULL))
            rc = mg_error_set(err, MG_ESYS, "cannot start receiving thread %d (the system's thread limit?)", l);
    }
    if (!rc) {
        run_ready(&r);
        if (!cfg->quiet)
            fprintf(r.log, "receiving on %d port(s)%s; Ctrl-C ends the run with valid files\n", nlinks,
                    cfg->max_frames ? "" : " until stopped");
        fflush(r.log);
    }
    /* the idle timeout counts from when the sockets listen, or from the last packet */
    uint64_t idle_ns = (uint64_t)(cfg->idle_timeout * 1e9);
    while (!rc) {
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
        if (cfg->stop && atomic_load(cfg->stop)) {
            ended = MG_END_SIGNAL;
            break;
        }
        if (atomic_load(&r.stop_internal)) {
            ended = MG_END_ERROR;
            break;
        }
        if (mg_pipeline_collector_done(r.pipe)) {
            ended = MG_END_FRAMES;
            break;
        }
        if (idle_ns) {
            uint64_t last = r.t_ready;
            for (int l = 0; l < nlinks; l++) {
                uint64_t t = atomic_load(&rx[l].last_ns);
                if (t > last)
                    last = t;
            }
            uint64_t now = mg_now_ns(); /* after reading `last`: a packet in between makes it newer, not older */
            if (now > last && now - last > idle_ns) {
                ended = MG_END_IDLE;
                break;
            }
        }
        run_progress(&r, 0);
    }
    /* stop the receivers; each flushes its link, so the collector can finish */
    atomic_store(&stop_rx, 1);
    for (int l = 0; l < nlinks; l++)
        if (rx[l].th.started)
            mg_thread_join(&rx[l].th);
        else if (r.a)
            mg_asm_flush(r.a, l);
    for (int l = 0; l < nlinks && !cfg->sockets; l++)
        if (rx[l].fd >= 0)
            close(rx[l].fd);
    run_progress(&r, 1);
    if (r.topo || r.a)
        rc = run_finish(&r, sum, ended, rc, err);
    free(rx);
    return rc;
}
