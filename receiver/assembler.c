/* assembler.c - frames from packets (contract in morgul/assembler.h).
 *
 * How the threads stay out of each other's way:
 *
 *  - Frame index k lives in slot k % S.  A link may write frame k into its
 *    slot only once the collector has released frame k - S from it
 *    (slot->released >= k - S); otherwise the packet is an overrun.
 *  - Within a slot each link writes only its own rows and its own
 *    link_frame record, so links never share a cache line of pixels.
 *  - A link publishes `base`, its lowest open frame, with a release store
 *    after the data of lower frames is written.  Frame k is closed
 *    everywhere once every link's base is above k; only then does the
 *    collector read the slot.  Nobody closes a link's frames but the link
 *    itself: the lag limit (`floor`) is a request each link honours at its
 *    next packet or tick, so the collector never reads rows a link may
 *    still be writing.
 *  - Only the collector writes slot->released, in frame order, after the
 *    downstream thread has marked the frame done (slot->done).  A frame of
 *    which nothing arrived and that is no image is released at once unless
 *    the slot still holds an older frame downstream, in which case the
 *    release waits for it (release_to).
 *  - Acquisitions are created and joined under one mutex, by the link
 *    threads, at most a few times per acquisition; each link keeps a copy of
 *    its acquisition's constants, so the packet path takes no lock.
 *
 * Frame indices k run on over the whole run: an acquisition starts
 * MG_ASM_MARGIN frames after the newest frame of the one before (room for
 * its stragglers) and its first frame with evidence is MG_ASM_MARGIN frames
 * after its start (room for modules whose first frame came a little
 * earlier); frames without data at either end are not images.
 */
#include "morgul/assembler.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NCAND 4                       /* candidates a link holds at once */
#define MAX_NUMBER (1ull << 62)       /* frame numbers from here on are refused as implausible */
#define WRITING(kk) (-2 - (kk))       /* a slot's tframe while frame kk's first-packet record is written */

typedef struct link_frame {
    int64_t frame;      /* frame index this record describes, -1 none */
    uint32_t packets;   /* accepted */
    uint32_t expected;  /* of which expected with the readout */
    uint64_t mask[2];
    uint64_t frame_number, bunch_id, timestamp;
    uint32_t exposure_length, daq_info;
    uint16_t module_id;
    uint64_t t_open;    /* arrival of the link's first packet of the frame */
} link_frame;

typedef struct slot {
    _Atomic int64_t released; /* every frame <= this that maps here is done with */
    _Atomic int done;         /* downstream finished with the in-flight frame */
    int64_t inflight;         /* frame handed on and not yet released, -1 none (collector) */
    int64_t release_to;       /* release this far once the in-flight frame is done (collector) */
    /* the first packet any link took for frame `tframe`: the reference for pairing modules */
    _Atomic int64_t tframe;
    _Atomic uint64_t tfirst, tbunch, tstamp;
    _Atomic int64_t overrun;  /* a frame whose packets came while the buffer was busy: it is an image */
    uint16_t *data;           /* all modules contiguous, if they share one pool */
    uint16_t **mod;           /* each module's rows */
    const uint16_t **blocks;  /* where each module packet's rows are */
    link_frame *lf;           /* one per link */
    mg_module_frame *modules; /* built by the collector */
} slot;

typedef struct staged {
    const uint8_t *buf;       /* the datagram (a copy in the link's stage, or the caller's with by_reference) */
    size_t len;
    uint64_t t, fn;           /* arrival, frame number (with an offline source's frame_add) */
    int64_t behind;           /* the closed frame of the link's it belongs to, if it came behind them; -1 */
} staged;

/* Packets of one numbering held until there are enough of them. */
typedef struct cand {
    int n;                    /* packets held; 0 = unused */
    uint64_t fn_first, fn_last, t_first, bunch, stamp, seq;
    uint64_t pmask[2];        /* packet numbers held of fn_last */
    staged pk[MG_ASM_EVIDENCE];
} cand;

typedef struct link {
    int module, iface;
    unsigned ppi;             /* packets per interface */
    unsigned hdr_row, hdr_col;
    uint64_t expect[2];       /* packet numbers of this interface expected with the readout */
    unsigned expect_n;
    /* the acquisition the link is in, and a copy of its constants */
    int acq;                  /* -1: none yet */
    int64_t K, base_fn, off;
    int64_t base;             /* lowest open frame */
    int64_t hi;               /* newest frame with an accepted packet */
    int64_t lag_to;           /* frames below this were closed at the others' request */
    int64_t last_frame;       /* for out-of-order detection */
    uint32_t last_packet;
    uint64_t last_arrival;    /* time of the newest accepted packet, 0 = never */
    uint64_t open_t;          /* when the link's newest frame began (its first packet) */
    int64_t last_open;        /* ... and which frame that was */
    _Atomic uint64_t period;  /* the link's frame period, a running estimate (0: not known yet) */
    uint64_t wait_since;      /* no packet yet: when data was first seen elsewhere */
    int flushed;
    cand c[NCAND];
    uint64_t cand_seq;
    uint8_t *stage;           /* NCAND x EVIDENCE datagram copies (not with by_reference) */
    mg_link_stats st;
    _Atomic int64_t base_pub __attribute__((aligned(64)));
    _Atomic uint64_t arrival_pub;
    char pad[64];
} link;

typedef struct acq {
    int64_t K;                /* index of its start (MG_ASM_MARGIN before its first frame with evidence) */
    int64_t base_fn;          /* acquisition numbering at K */
    _Atomic int64_t end;      /* one past its last index; INT64_MAX while it is the newest */
    _Atomic int64_t limit;    /* with max_frames: no frame from here on is an image; INT64_MAX: not known */
    int64_t off[MG_MAX_MODULES];
    mg_pairing pairing[MG_MAX_MODULES];
    /* the collector's (read by others under the mutex) */
    int started;
    int64_t k0;               /* index of its first image */
    mg_acq_info info;
} acq;

/* The index of frame number fn of a module with offset off in acquisition q's frames, and the same through
 * the copy of its constants a link keeps. */
static inline int64_t acq_index(const acq *q, int64_t off, uint64_t fn)
{
    return q->K + ((int64_t)fn - off - q->base_fn);
}

static inline int64_t link_index(const link *k, uint64_t fn)
{
    return k->K + ((int64_t)fn - k->off - k->base_fn);
}

/* ... and back: the acquisition's number of its frame k (a module's own is that plus its offset). */
static inline int64_t acq_number(const acq *q, int64_t k) { return q->base_fn + (k - q->K); }

struct mg_assembler {
    mg_asm_config cfg;
    const mg_detector *det;
    int nlinks, nmod, S, D, R;
    int64_t span;             /* frames older than newest - span are closed for everybody */
    size_t frame_words;
    unsigned expect_module;   /* packets a module sends per frame */
    uint8_t expect_mask[16];
    link *links;
    slot *slots;
    uint16_t *pool;           /* one pool for all modules ... */
    size_t pool_bytes;
    uint16_t *mpool[MG_MAX_MODULES]; /* ... or one per module, on its receivers' node */
    int split;
    uint16_t *missing;        /* one packet's worth of MG_WORD_MISSING */
    pthread_mutex_t mu;       /* acquisitions: creating, joining, their collector counts */
    acq *acq;
    _Atomic int nacq;
    _Atomic int64_t newest;   /* newest frame with an accepted packet, any link */
    _Atomic int64_t floor;    /* links close their frames below this */
    _Atomic int done;         /* max_frames images handed on: every packet is after the end */
    _Atomic int nflushed;
    /* collector state */
    int64_t next;
    int cur;                  /* acquisition of `next` */
    int64_t last_image;       /* index of the last image handed on */
    int64_t *fifo;            /* in-flight frames in order */
    int fifo_head, fifo_len;
    _Atomic int in_use;
    mg_asm_totals tot;
};

unsigned mg_readout_mask(int readnrows, uint8_t mask[16])
{
    /* the rows read are centred on the module: readnrows/2 below row 256 and as many above, so module packets
     * 64 - readnrows/8 .. 64 + readnrows/8 - 1 (4 rows each) */
    int half = readnrows > 0 && readnrows < MG_MODULE_ROWS ? readnrows / 8 : 64;
    memset(mask, 0, 16);
    for (int q = 64 - half; q < 64 + half; q++)
        mask[q >> 3] |= (uint8_t)(1u << (q & 7));
    return (unsigned)(2 * half);
}

static void free_slots(mg_assembler *a)
{
    if (!a->slots)
        return;
    for (int s = 0; s < a->S; s++) {
        free(a->slots[s].lf);
        free(a->slots[s].modules);
        free(a->slots[s].blocks);
        free(a->slots[s].mod);
    }
}

void mg_asm_free(mg_assembler *a)
{
    if (!a)
        return;
    free_slots(a);
    if (a->pool && a->pool != a->cfg.pool)
        mg_numa_free(a->cfg.topo, a->pool, a->pool_bytes);
    for (int m = 0; m < MG_MAX_MODULES; m++)
        if (a->mpool[m])
            mg_numa_free(a->cfg.topo, a->mpool[m], (size_t)a->S * MG_MODULE_BYTES);
    if (a->links)
        for (int l = 0; l < a->nlinks; l++)
            free(a->links[l].stage);
    free(a->missing);
    free(a->slots);
    free(a->links);
    free(a->fifo);
    free(a->acq);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static int stopped(const mg_asm_config *c) { return c->stop && atomic_load(c->stop); }

mg_assembler *mg_asm_new(const mg_asm_config *cfg, mg_error *err)
{
    const mg_detector *d = cfg->det;
    if (mg_detector_validate(d, err))
        return NULL;
    if (cfg->readnrows && (cfg->readnrows < 8 || cfg->readnrows > MG_MODULE_ROWS || cfg->readnrows % 8)) {
        mg_error_set(err, MG_EINVAL, "readnrows %d: give 8 to 512 rows in steps of 8", cfg->readnrows);
        return NULL;
    }
    mg_assembler *a = calloc(1, sizeof *a);
    if (!a)
        goto nomem;
    pthread_mutex_init(&a->mu, NULL);
    a->cfg = *cfg;
    a->det = d;
    a->nlinks = mg_detector_links(d);
    a->nmod = d->nmodules;
    if (!(a->cfg.rate_hz > 0))
        a->cfg.rate_hz = 2000;
    if (!a->cfg.frame_timeout_ns)
        a->cfg.frame_timeout_ns = 100000000ull;
    if (!a->cfg.quiet_ns)
        a->cfg.quiet_ns = 2000000ull;
    a->R = cfg->reorder > 0 ? cfg->reorder : 16;
    if (cfg->slots > 0)
        a->S = cfg->slots;
    else
        a->S = 64 + (int)(a->cfg.rate_hz * (double)a->cfg.frame_timeout_ns / 1e9 + 0.999);
    a->D = cfg->downstream > 0 ? cfg->downstream : (a->S / 4 < 64 ? a->S / 4 : 64);
    a->span = a->S - a->D;
    /* the lag limit must pass an acquisition's stragglers before a link ahead needs their buffers */
    if (a->D < MG_ASM_MARGIN + 1 && cfg->downstream <= 0)
        a->D = MG_ASM_MARGIN + 1;
    a->span = a->S - a->D;
    if (a->span < a->R + 2 || a->D < MG_ASM_MARGIN + 1) {
        mg_error_set(err, MG_EINVAL, "%d frame buffers are too few for frames reordered over %d frames; give at "
                     "least %d", a->S, a->R, a->R + 2 + 2 * (MG_ASM_MARGIN + 1));
        pthread_mutex_destroy(&a->mu);
        free(a);
        return NULL;
    }
    a->expect_module = mg_readout_mask(cfg->readnrows, a->expect_mask);
    a->frame_words = (size_t)a->nmod * MG_MODULE_PIXELS;
    a->links = aligned_alloc(64, sizeof(link) * (size_t)a->nlinks);
    a->slots = calloc((size_t)a->S, sizeof(slot));
    a->fifo = calloc((size_t)a->S, sizeof(int64_t));
    a->acq = calloc(MG_ASM_MAX_ACQ, sizeof(acq));
    if (!a->links || !a->slots || !a->fifo || !a->acq)
        goto nomem;
    memset(a->links, 0, sizeof(link) * (size_t)a->nlinks);
    /* by reference the slots hold pointers only; modules received on different
     * NUMA nodes get a pool each, on their node */
    if (cfg->module_node && !cfg->by_reference)
        for (int m = 1; m < a->nmod; m++)
            a->split |= cfg->module_node[m] != cfg->module_node[0];
    if (a->split) {
        for (int m = 0; m < a->nmod && !stopped(cfg); m++)
            if (!(a->mpool[m] = mg_numa_alloc_until(cfg->topo, (size_t)a->S * MG_MODULE_BYTES, cfg->module_node[m],
                                                    cfg->stop)) && !stopped(cfg))
                goto nomem;
    } else {
        a->pool_bytes = cfg->by_reference ? 4096 : (size_t)a->S * a->frame_words * 2;
        int node = cfg->module_node ? cfg->module_node[0] : cfg->numa_node;
        if (cfg->pool && !cfg->by_reference && cfg->pool_bytes >= a->pool_bytes)
            a->pool = cfg->pool; /* kept by the caller: ready, nothing to touch */
        else if (!(a->pool = mg_numa_alloc_until(cfg->topo, a->pool_bytes, node, cfg->stop)) && !stopped(cfg))
            goto nomem;
    }
    if (stopped(cfg)) {
        mg_error_set(err, MG_EINVAL, "stopped during set-up (while the frame buffers were made); nothing was written");
        mg_asm_free(a);
        return NULL;
    }
    a->missing = malloc(MG_PACKET_DATA_BYTES);
    if (!a->missing)
        goto nomem;
    for (int i = 0; i < MG_PACKET_DATA_BYTES / 2; i++)
        a->missing[i] = MG_WORD_MISSING;
    for (int l = 0; l < a->nlinks; l++) {
        link *k = &a->links[l];
        mg_detector_link(d, l, &k->module, &k->iface);
        k->ppi = mg_detector_packets_per_interface(d, k->module);
        mg_detector_link_position(d, l, &k->hdr_row, &k->hdr_col);
        for (unsigned p = 0; p < k->ppi; p++) {
            unsigned q = (unsigned)k->iface * k->ppi + p;
            if (a->expect_mask[q >> 3] >> (q & 7) & 1) {
                k->expect[p >> 6] |= 1ull << (p & 63);
                k->expect_n++;
            }
        }
        k->acq = -1;
        k->last_frame = -1;
        k->hi = -1;
        if (!cfg->by_reference && !(k->stage = malloc((size_t)NCAND * MG_ASM_EVIDENCE * MG_LEGACY_PACKET_BYTES)))
            goto nomem;
        atomic_init(&k->base_pub, 0);
        atomic_init(&k->arrival_pub, 0);
        atomic_init(&k->period, 0);
    }
    for (int s = 0; s < a->S; s++) {
        slot *sl = &a->slots[s];
        atomic_init(&sl->released, (int64_t)s - a->S);
        atomic_init(&sl->done, 0);
        atomic_init(&sl->tframe, -1);
        atomic_init(&sl->tfirst, 0);
        atomic_init(&sl->tbunch, 0);
        atomic_init(&sl->tstamp, 0);
        atomic_init(&sl->overrun, -1);
        sl->inflight = -1;
        sl->release_to = -1;
        sl->data = cfg->by_reference || a->split ? NULL : a->pool + (size_t)s * a->frame_words;
        sl->mod = calloc((size_t)a->nmod, sizeof(uint16_t *));
        if (!sl->mod)
            goto nomem;
        for (int m = 0; m < a->nmod; m++)
            sl->mod[m] = cfg->by_reference ? NULL
                         : a->split        ? a->mpool[m] + (size_t)s * MG_MODULE_PIXELS
                                           : sl->data + (size_t)m * MG_MODULE_PIXELS;
        sl->lf = calloc((size_t)a->nlinks, sizeof(link_frame));
        sl->modules = calloc((size_t)a->nmod, sizeof(mg_module_frame));
        sl->blocks = calloc((size_t)a->nmod * MG_PACKETS_PER_MODULE, sizeof(uint16_t *));
        if (!sl->lf || !sl->modules || !sl->blocks)
            goto nomem;
        for (int l = 0; l < a->nlinks; l++)
            sl->lf[l].frame = -1;
    }
    atomic_init(&a->nacq, 0);
    atomic_init(&a->newest, -1);
    atomic_init(&a->floor, 0);
    atomic_init(&a->done, 0);
    a->last_image = -1;
    return a;
nomem:
    mg_error_set(err, MG_ENOMEM,
                 "out of memory for %d frame buffers of %d module(s) (%.1f GiB); lower --buffer-frames, "
                 "--frame-timeout or --rate", a ? a->S : cfg->slots, d->nmodules,
                 (double)(a ? a->S : cfg->slots) * d->nmodules / 1024.0);
    mg_asm_free(a);
    return NULL;
}

static inline slot *slot_of(mg_assembler *a, int64_t k) { return &a->slots[k % a->S]; }

static inline int frame_complete(mg_assembler *a, int l, int64_t k)
{
    const link_frame *f = &slot_of(a, k)->lf[l];
    return f->frame == k && f->expected == a->links[l].expect_n;
}

/* Moves the link's base to at least `to`, then past frames already complete. */
static void advance(mg_assembler *a, int l, int64_t to)
{
    link *k = &a->links[l];
    int64_t b = k->base > to ? k->base : to;
    while (b < INT64_MAX && frame_complete(a, l, b))
        b++;
    if (b != k->base) {
        k->base = b;
        atomic_store_explicit(&k->base_pub, b, memory_order_release);
    }
}

static inline void raise_to(_Atomic int64_t *v, int64_t x)
{
    int64_t cur = atomic_load_explicit(v, memory_order_relaxed);
    while (x > cur && !atomic_compare_exchange_weak(v, &cur, x))
        ;
}

/* The others asked for frames below `floor` to be closed (a lagging link). */
static inline void honour_floor(mg_assembler *a, int l)
{
    link *k = &a->links[l];
    int64_t fl = atomic_load_explicit(&a->floor, memory_order_relaxed);
    if (fl > k->base) {
        advance(a, l, fl);
        if (fl > k->lag_to)
            k->lag_to = fl;
    }
}

/* ---- accepting a packet into its frame ---- */

/* The link has evidence of frame kk (a packet taken, or one that found the
 * buffer busy): the detector is sending on it (what tells a counter reset
 * from stray packets), and its newest frame moves on, and with it what it
 * has passed. */
static void note_frame(mg_assembler *a, int l, int64_t kk, uint64_t t)
{
    link *k = &a->links[l];
    if (!k->st.first_ns)
        k->st.first_ns = t;
    if (t > k->last_arrival) {
        k->last_arrival = t;
        k->st.last_ns = t;
        atomic_store_explicit(&k->arrival_pub, t, memory_order_relaxed);
    }
    if (kk <= k->hi)
        return;
    /* the frame period: time between the first packets of successive frames, a running estimate (a pause
     * longer than the frame timeout is the detector stopped, not its period) */
    if (k->open_t && t > k->open_t && kk > k->last_open &&
        (t - k->open_t) / (uint64_t)(kk - k->last_open) < a->cfg.frame_timeout_ns) {
        uint64_t x = (t - k->open_t) / (uint64_t)(kk - k->last_open);
        uint64_t p = atomic_load_explicit(&k->period, memory_order_relaxed);
        atomic_store_explicit(&k->period, p ? p - p / 8 + x / 8 : x, memory_order_relaxed);
    }
    k->open_t = t;
    k->last_open = kk;
    k->hi = kk;
    raise_to(&a->newest, kk);
    /* frames older than span behind the newest close for everybody (a lagging link keeps the rest) */
    if (kk - a->span + 1 > atomic_load_explicit(&a->floor, memory_order_relaxed))
        raise_to(&a->floor, kk - a->span + 1);
    advance(a, l, kk - a->R + 1);
}

static int accept(mg_assembler *a, int l, int64_t kk, const mg_jf_header *h, const uint8_t *px, size_t len,
                  uint64_t t, uint64_t fn)
{
    link *k = &a->links[l];
    slot *s = slot_of(a, kk);
    if (atomic_load_explicit(&s->released, memory_order_acquire) < kk - a->S) {
        if (a->cfg.lossless) {
            k->st.bytes -= len;
            return MG_ASM_RETRY;
        }
        /* the stages downstream are behind: the packet is lost, but it is evidence of its frame, which is an
         * image (missing) and which the link passes as if it had kept it, so that frames go on being handed
         * on and buffers given back */
        k->st.overrun++;
        atomic_store_explicit(&s->overrun, kk, memory_order_relaxed);
        note_frame(a, l, kk, t);
        return 0;
    }
    link_frame *lf = &s->lf[l];
    if (lf->frame != kk) {
        lf->frame = kk;
        lf->packets = lf->expected = 0;
        lf->mask[0] = lf->mask[1] = 0;
        lf->frame_number = fn;
        lf->bunch_id = h->bunch_id;
        lf->timestamp = h->timestamp;
        lf->exposure_length = h->exposure_length;
        lf->daq_info = h->daq_info;
        lf->module_id = h->module_id;
        lf->t_open = t;
        /* the frame's first packet anywhere: what other modules are paired with */
        int64_t tf = atomic_load_explicit(&s->tframe, memory_order_acquire);
        if (tf != kk && tf != WRITING(kk) && atomic_compare_exchange_strong(&s->tframe, &tf, WRITING(kk))) {
            /* marked while the record is written: nobody reads a previous frame's time as this one's */
            atomic_store(&s->tfirst, t);
            atomic_store(&s->tbunch, h->bunch_id);
            atomic_store(&s->tstamp, h->timestamp);
            atomic_store_explicit(&s->tframe, kk, memory_order_release);
        }
    }
    unsigned p = h->packet_number;
    uint64_t bit = 1ull << (p & 63);
    if (lf->mask[p >> 6] & bit) {
        k->st.duplicates++;
        return 0;
    }
    size_t q = (size_t)k->iface * k->ppi + p; /* module packet index */
    if (a->cfg.by_reference)
        s->blocks[(size_t)k->module * MG_PACKETS_PER_MODULE + q] = (const uint16_t *)px;
    else
        memcpy(s->mod[k->module] + q * MG_ROWS_PER_PACKET * MG_MODULE_COLS, px, MG_PACKET_DATA_BYTES);
    /* out of order: accepted after a later packet of this link */
    if (kk < k->last_frame || (kk == k->last_frame && p < k->last_packet))
        k->st.out_of_order++;
    else {
        k->last_frame = kk;
        k->last_packet = p;
    }
    lf->mask[p >> 6] |= bit;
    lf->packets++;
    if (k->expect[p >> 6] & bit)
        lf->expected++;
    k->st.packets++;
    note_frame(a, l, kk, t);
    if (lf->expected == k->expect_n && kk == k->base)
        advance(a, l, kk + 1);
    return 0;
}

/* ---- candidates ---- */

/* Held packets that never became evidence of anything: those that came
 * behind the link's open frames are late (or duplicates, or lagged), the
 * others stray. */
static void count_unplaced(mg_assembler *a, link *k, const cand *c)
{
    for (int i = 0; i < c->n; i++) {
        int64_t kk = c->pk[i].behind;
        if (atomic_load_explicit(&a->done, memory_order_relaxed)) { /* the run has all it asked for */
            k->st.after_end++;
            continue;
        }
        if (kk < 0) {
            k->st.stray++;
            continue;
        }
        const mg_jf_header *h;
        const uint8_t *px;
        mg_packet_check(c->pk[i].buf, c->pk[i].len, k->ppi, &h, &px);
        const link_frame *old = &slot_of(a, kk)->lf[k - a->links];
        unsigned p = h->packet_number;
        if (old->frame == kk && (old->mask[p >> 6] >> (p & 63) & 1))
            k->st.duplicates++;
        else if (kk < k->lag_to)
            k->st.lagged++;
        else
            k->st.late++;
    }
}

static void drop_cand(mg_assembler *a, link *k, cand *c)
{
    count_unplaced(a, k, c);
    c->n = 0;
}

static void drop_all(mg_assembler *a, link *k)
{
    for (int i = 0; i < NCAND; i++)
        if (k->c[i].n)
            drop_cand(a, k, &k->c[i]);
}

/* Whether every link has been quiet before t for q, and for twice its own
 * frame period (a detector at 100 Hz is silent for most of every 10 ms
 * between its frames: that is not a stop). */
static int all_quiet(mg_assembler *a, uint64_t t, uint64_t q)
{
    for (int j = 0; j < a->nlinks; j++) {
        uint64_t p2 = 2 * atomic_load_explicit(&a->links[j].period, memory_order_relaxed);
        uint64_t need = q > p2 ? q : p2;
        uint64_t since = t > need ? t - need : 0;
        if (atomic_load_explicit(&a->links[j].arrival_pub, memory_order_relaxed) > since)
            return 0;
    }
    return 1;
}

/* Where the link's other held candidates' first frames lie in acquisition
 * n's frames (module offset off): the lowest that is at most `reorder`
 * frames before kk, else kk.  A stream's first frames may have come with
 * too few packets each to be evidence on their own (a lossy start); once a
 * later frame is evidence, they are its stream's too. */
static int64_t earliest(mg_assembler *a, const link *k, const acq *q, int64_t off, int64_t kk)
{
    int64_t low = kk;
    for (int i = 0; i < NCAND; i++) {
        const cand *x = &k->c[i];
        int64_t kx = acq_index(q, off, x->fn_first);
        if (x->n && kx < low && kx >= kk - a->R && kx >= q->K)
            low = kx;
    }
    return low;
}

/* The link takes the constants of acquisition n, its first frame being kk
 * (and its frames open from `low` <= kk on). */
static void join(mg_assembler *a, int l, int n, int64_t kk, int64_t low)
{
    link *k = &a->links[l];
    acq *q = &a->acq[n];
    k->acq = n;
    k->K = q->K;
    k->base_fn = q->base_fn;
    k->off = q->off[k->module];
    k->last_frame = -1;
    /* the link's stream starts here: everything before (earlier acquisitions, and frames of this one it never
     * sent) is closed for it */
    advance(a, l, low);
    k->hi = (kk > k->base ? kk : k->base) - 1;
}

/* Acquisition n's frame for module m's first candidate frame: its bunch id,
 * else its timestamp, else its arrival time, matched against the frames the
 * acquisition's other modules sent.  Returns the index, or -1 if nothing
 * matches unambiguously. */
static int64_t pair_frame(mg_assembler *a, const cand *c, int n, mg_pairing *how)
{
    const acq *q = &a->acq[n];
    int64_t newest = atomic_load(&a->newest);
    int64_t lo = newest - a->S + 1 > q->K ? newest - a->S + 1 : q->K;
    for (int pass = 0; pass < 2; pass++) {
        uint64_t want = pass == 0 ? c->bunch : c->stamp;
        if (!want)
            continue;
        for (int64_t k = lo; k <= newest; k++) {
            slot *s = slot_of(a, k);
            if (atomic_load(&s->tframe) == k && atomic_load(pass == 0 ? &s->tbunch : &s->tstamp) == want) {
                *how = pass == 0 ? MG_PAIRED_BUNCH : MG_PAIRED_TIMESTAMP;
                return k;
            }
        }
    }
    int64_t best = -1;
    uint64_t d1 = UINT64_MAX, d2 = UINT64_MAX;
    for (int64_t k = lo; k <= newest; k++) {
        slot *s = slot_of(a, k);
        if (atomic_load(&s->tframe) != k)
            continue;
        uint64_t tf = atomic_load(&s->tfirst);
        uint64_t d = tf > c->t_first ? tf - c->t_first : c->t_first - tf;
        if (d < d1) {
            d2 = d1;
            d1 = d;
            best = k;
        } else if (d < d2)
            d2 = d;
    }
    /* unambiguous: clearly nearer than the next frame, and within the frame timeout */
    if (best >= 0 && d1 <= a->cfg.frame_timeout_ns && (d2 == UINT64_MAX || d1 < d2 / 2)) {
        *how = MG_PAIRED_ARRIVAL;
        return best;
    }
    return -1;
}

/* Module m's numbering in acquisition n: sets q->off[m] and q->pairing[m]
 * the first time one of its links has evidence.  Returns 0 if the module's
 * frames can be placed, -1 if not (refused, or nothing to pair with yet). */
static int module_numbering(mg_assembler *a, int n, int m, const cand *c)
{
    acq *q = &a->acq[n];
    if (q->pairing[m] != MG_PAIRED_NONE)
        return q->pairing[m] == MG_PAIRED_REFUSED ? -1 : 0;
    int64_t newest = atomic_load(&a->newest);
    int64_t reach = (newest > q->K + MG_ASM_MARGIN ? newest : q->K + MG_ASM_MARGIN) + a->span;
    int64_t kk = acq_index(q, 0, c->fn_first);
    if (kk >= q->K && kk <= reach) {
        q->off[m] = 0;
        q->pairing[m] = MG_PAIRED_NUMBER;
        return 0;
    }
    if (a->cfg.align == MG_ALIGN_NUMBER) {
        q->pairing[m] = MG_PAIRED_REFUSED;
        return -1;
    }
    mg_pairing how;
    int64_t k = pair_frame(a, c, n, &how);
    if (k < 0)
        return -1;
    q->off[m] = (int64_t)c->fn_first - acq_number(q, k);
    q->pairing[m] = how;
    return 0;
}

/* A new acquisition whose numbering is this candidate's (link l's module
 * offset 0); returns its number, or -1 if the run has no room for more. */
static int create_acq(mg_assembler *a, int l, const cand *c)
{
    int n = atomic_load(&a->nacq);
    if (n == MG_ASM_MAX_ACQ)
        return -1;
    acq *q = &a->acq[n];
    memset(q, 0, sizeof *q);
    if (n == 0)
        q->K = 0;
    else {
        /* the one before ends MG_ASM_MARGIN frames after its newest frame: room for its stragglers */
        int64_t newest = atomic_load(&a->newest);
        acq *p = &a->acq[n - 1];
        int64_t pk = p->K + MG_ASM_MARGIN;
        q->K = (newest > pk ? newest : pk) + 1 + MG_ASM_MARGIN;
        atomic_store(&p->end, q->K);
    }
    q->base_fn = (int64_t)c->fn_first - MG_ASM_MARGIN;
    atomic_init(&q->end, INT64_MAX);
    atomic_init(&q->limit, INT64_MAX);
    if (a->cfg.max_frames) /* until the collector knows the first image: at most MG_ASM_MARGIN frames too many */
        atomic_store(&q->limit, q->K + 2 * MG_ASM_MARGIN + (int64_t)(a->cfg.max_frames - a->tot.images));
    q->pairing[a->links[l].module] = MG_PAIRED_NUMBER;
    q->info.skipped = -1;
    atomic_store(&a->nacq, n + 1);
    return n;
}

/* The link's own stream going on after a pause - the detector or the
 * network stopping for longer than the frame timeout, or this link's thread
 * kept from running - rather than a counter that restarted: the candidate
 * starts within the frame buffers' reach before the link's newest frame and
 * not after it, and each of its packets in a frame the link has is one that
 * frame lacks.  A restarted counter brings again packets the link has (its
 * frames' numbers were taken before), so it is never mistaken for this; where
 * a frame's record is gone (its buffer reused) nothing can be told and the
 * answer is no.  Such packets are late: their frames were closed. */
static int continues(mg_assembler *a, int l, const cand *c)
{
    const link *k = &a->links[l];
    if (k->acq < 0)
        return 0;
    int64_t kf = link_index(k, c->fn_first);
    if (kf <= k->hi - (int64_t)a->S || kf > k->hi)
        return 0;
    for (int i = 0; i < c->n; i++) {
        int64_t kk = link_index(k, c->pk[i].fn);
        if (kk > k->hi)
            continue; /* new frames of the same stream */
        const link_frame *lf = &slot_of(a, kk)->lf[l];
        if (lf->frame != kk)
            return 0;
        const mg_jf_header *h;
        const uint8_t *px;
        mg_packet_check(c->pk[i].buf, c->pk[i].len, k->ppi, &h, &px);
        unsigned p = h->packet_number;
        if (lf->mask[p >> 6] >> (p & 63) & 1)
            return 0;
    }
    return 1;
}

/* Enough evidence: what the candidate's packets are, decided under the
 * mutex.  Returns 1 if the link now takes them as its frames. */
static int decide(mg_assembler *a, int l, const cand *c)
{
    link *k = &a->links[l];
    int taken = 0;
    pthread_mutex_lock(&a->mu);
    int nacq = atomic_load(&a->nacq), cur = nacq - 1;
    /* 1. a forward gap in the link's own acquisition that the time since its last packet allows */
    if (k->acq >= 0) {
        int64_t kk = link_index(k, c->fn_first);
        int64_t end = atomic_load(&a->acq[k->acq].end);
        double dt = c->t_first > k->last_arrival ? (double)(c->t_first - k->last_arrival) / 1e9 : 0;
        int64_t reach = k->hi + a->R + 2 + (int64_t)(dt * a->cfg.rate_hz * 1.25);
        if (kk > k->hi && kk < end && kk <= reach) {
            k->hi = kk - 1;
            advance(a, l, k->hi - a->R + 1);
            taken = 1;
        }
    }
    /* 1b. the link's own stream going on after a pause: its packets in closed frames are late, its later
     *     frames go on as before */
    if (!taken && continues(a, l, c))
        taken = 1;
    /* 2. the current acquisition, which other links started */
    if (!taken && cur >= 0 && k->acq != cur && module_numbering(a, cur, k->module, c) == 0) {
        acq *q = &a->acq[cur];
        int64_t kk = acq_index(q, q->off[k->module], c->fn_first);
        int64_t newest = atomic_load(&a->newest);
        int64_t reach = (newest > q->K + MG_ASM_MARGIN ? newest : q->K + MG_ASM_MARGIN) + a->span;
        if (kk >= q->K && kk <= reach) {
            join(a, l, cur, kk, earliest(a, k, q, q->off[k->module], kk));
            taken = 1;
        }
    }
    /* 3. a new acquisition: the first of the run, or a counter that restarted or jumped on a link of the
     *    current acquisition while every link was quiet (or, from a link that is not in it, once the whole
     *    detector has been silent for the frame timeout: that acquisition is over) */
    if (!taken && (cur < 0 || all_quiet(a, c->t_first, k->acq == cur ? a->cfg.quiet_ns : a->cfg.frame_timeout_ns))) {
        int n = create_acq(a, l, c);
        if (n >= 0) {
            int64_t kk = a->acq[n].K + MG_ASM_MARGIN;
            join(a, l, n, kk, earliest(a, k, &a->acq[n], 0, kk));
            taken = 1;
        }
    }
    pthread_mutex_unlock(&a->mu);
    return taken;
}

static int place(mg_assembler *a, int l, const mg_jf_header *h, const uint8_t *px, const void *buf, size_t len,
                 uint64_t t, uint64_t fn, int replaying);

/* Lossless (an offline source driving every link from this thread): a
 * frame's buffer is still downstream.  Every link honours the lag limit so
 * the collector can hand the frame on; then wait a little. */
static void wait_lossless(mg_assembler *a)
{
    for (int j = 0; j < a->nlinks; j++)
        if (!a->links[j].flushed)
            honour_floor(a, j);
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
}

/* Held packets placed now that the link's frames take them (its own
 * thread; an offline source waits for buffers here). */
static void place_held(mg_assembler *a, int l, const cand *c)
{
    for (int i = 0; i < c->n; i++) {
        const mg_jf_header *h;
        const uint8_t *px;
        mg_packet_check(c->pk[i].buf, c->pk[i].len, a->links[l].ppi, &h, &px);
        while (place(a, l, h, px, c->pk[i].buf, c->pk[i].len, c->pk[i].t, c->pk[i].fn, 1) == MG_ASM_RETRY)
            wait_lossless(a);
    }
}

/* A packet the link cannot place yet: held with others of its numbering
 * until there is evidence enough to act on. */
static int candidate(mg_assembler *a, int l, const mg_jf_header *h, const void *buf, size_t len, uint64_t t,
                     uint64_t fn, int64_t behind)
{
    link *k = &a->links[l];
    unsigned p = h->packet_number;
    cand *c = NULL, *oldest = &k->c[0], *free_c = NULL;
    for (int i = 0; i < NCAND; i++) {
        cand *x = &k->c[i];
        if (!x->n) {
            if (!free_c)
                free_c = x;
            continue;
        }
        if ((fn == x->fn_last && !(x->pmask[p >> 6] >> (p & 63) & 1)) || fn == x->fn_last + 1) {
            c = x;
            break;
        }
        if (!oldest->n || x->seq < oldest->seq)
            oldest = x;
    }
    if (!c) {
        c = free_c ? free_c : oldest;
        if (c->n)
            drop_cand(a, k, c);
        c->fn_first = c->fn_last = fn;
        c->t_first = t;
        c->bunch = h->bunch_id;
        c->stamp = h->timestamp;
        c->seq = ++k->cand_seq;
        c->pmask[0] = c->pmask[1] = 0;
    }
    if (fn != c->fn_last) {
        c->fn_last = fn;
        c->pmask[0] = c->pmask[1] = 0;
    }
    c->pmask[p >> 6] |= 1ull << (p & 63);
    staged *s = &c->pk[c->n];
    if (a->cfg.by_reference)
        s->buf = buf;
    else {
        uint8_t *copy = k->stage + ((size_t)(c - k->c) * MG_ASM_EVIDENCE + (size_t)c->n) * MG_LEGACY_PACKET_BYTES;
        memcpy(copy, buf, len);
        s->buf = copy;
    }
    s->len = len;
    s->t = t;
    s->fn = fn;
    s->behind = behind;
    c->n++;
    if (c->n < MG_ASM_EVIDENCE)
        return 0;
    cand taken = *c; /* its packets are placed from the copy; the entry is free again */
    c->n = 0;
    if (!decide(a, l, &taken)) {
        count_unplaced(a, k, &taken);
        return 0;
    }
    /* held packets of the same stream that fit now (earlier frames with too few packets to be evidence, or
     * frames of a gap) go in first; candidates of other numberings stay */
    for (int j = 0; j < NCAND; j++) {
        cand *x = &k->c[j];
        int64_t kx = link_index(k, x->fn_first);
        if (!x->n || kx < k->base || kx > k->hi + 1)
            continue;
        cand early = *x;
        x->n = 0;
        place_held(a, l, &early);
    }
    /* then the evidence itself */
    place_held(a, l, &taken);
    return 0;
}

/* Where a checked packet goes: straight into an open frame of the link, or
 * counted as behind it, or held as a candidate. */
static int place(mg_assembler *a, int l, const mg_jf_header *h, const uint8_t *px, const void *buf, size_t len,
                 uint64_t t, uint64_t fn, int replaying)
{
    link *k = &a->links[l];
    if (atomic_load_explicit(&a->done, memory_order_relaxed)) {
        k->st.after_end++;
        return 0;
    }
    honour_floor(a, l);
    int64_t behind = -1;
    if (k->acq >= 0) {
        const acq *q = &a->acq[k->acq];
        int64_t kk = link_index(k, fn);
        int64_t end = atomic_load_explicit(&q->end, memory_order_acquire);
        if (kk >= k->base && kk <= k->hi + 1 && kk < end) {
            if (kk >= atomic_load_explicit(&q->limit, memory_order_relaxed)) {
                k->st.after_end++;
                return 0;
            }
            /* an accepted packet breaks the run of any candidate of this link */
            if (!replaying)
                drop_all(a, k);
            return accept(a, l, kk, h, px, len, t, fn);
        }
        /* behind the link's open frames: a late packet (or a duplicate), unless it is the first of a counter
         * that restarted - which only evidence can tell; it is held like any other candidate, and counted
         * as late if it turns out to be nothing else */
        if (kk < k->base && kk >= k->K && k->base - kk <= (int64_t)a->S)
            behind = kk;
    }
    if (replaying) { /* held packets that did not fit after all: behind the link's frames (closed meanwhile) */
        cand one = {.n = 1};
        one.pk[0] = (staged){.buf = buf, .len = len, .t = t, .fn = fn, .behind = behind};
        count_unplaced(a, k, &one);
        return 0;
    }
    return candidate(a, l, h, buf, len, t, fn, behind);
}

static int push(mg_assembler *a, int l, const void *buf, size_t len, uint64_t t, uint64_t frame_add)
{
    link *k = &a->links[l];
    const mg_jf_header *h;
    const uint8_t *px;
    k->st.bytes += len;
    mg_packet_verdict v = mg_packet_check(buf, len, k->ppi, &h, &px);
    if (v == MG_PACKET_OK && a->cfg.check_position && (h->row != k->hdr_row || h->column != k->hdr_col))
        v = MG_PACKET_BAD_POSITION;
    if (v == MG_PACKET_OK && (h->frame_number >= MAX_NUMBER || frame_add >= MAX_NUMBER - h->frame_number))
        v = MG_PACKET_BAD_FRAME;
    if (v != MG_PACKET_OK || k->flushed) {
        if (k->flushed && v == MG_PACKET_OK)
            k->st.after_end++;
        else
            k->st.rejected[v]++;
        return 0;
    }
    return place(a, l, h, px, buf, len, t, h->frame_number + frame_add, 0);
}

int mg_asm_push(mg_assembler *a, int l, const void *buf, size_t len, uint64_t t_ns)
{
    return push(a, l, buf, len, t_ns, 0);
}

int mg_asm_push_offline(mg_assembler *a, int l, const void *buf, size_t len, uint64_t t_ns, uint64_t frame_add)
{
    return push(a, l, buf, len, t_ns, frame_add);
}

/* The first frame from `base` on that a link silent for the frame timeout
 * keeps open: one whose first packet anywhere came at `before` or later (or
 * is being recorded); newest + 1 if none.  A frame begun elsewhere since may
 * still come whole from this link (a detector that paused and goes on, where
 * this link's thread runs a little later than another's).  A frame with no
 * record - nobody took a packet of it: a gap, or one known only from packets
 * lost to a busy buffer - began nowhere and is given up with the rest. */
static int64_t keep_from(mg_assembler *a, int64_t base, int64_t newest, uint64_t before)
{
    for (int64_t kk = base; kk <= newest; kk++) {
        slot *s = slot_of(a, kk);
        int64_t tf = atomic_load_explicit(&s->tframe, memory_order_acquire);
        if (tf == WRITING(kk) || (tf == kk && atomic_load_explicit(&s->tfirst, memory_order_relaxed) >= before))
            return kk;
    }
    return newest + 1;
}

void mg_asm_tick(mg_assembler *a, int l, uint64_t now)
{
    link *k = &a->links[l];
    if (k->flushed)
        return;
    /* candidates that gathered no evidence within the frame timeout are stray */
    for (int i = 0; i < NCAND; i++)
        if (k->c[i].n && now > k->c[i].t_first && now - k->c[i].t_first > a->cfg.frame_timeout_ns)
            drop_cand(a, k, &k->c[i]);
    honour_floor(a, l);
    int64_t newest = atomic_load_explicit(&a->newest, memory_order_relaxed);
    if (newest < 0)
        return;
    /* No packet for a while: frames others have seen will not be finished
     * here.  (A link that never had a packet counts its silence from the
     * first tick after data started elsewhere.) */
    uint64_t ref = k->last_arrival;
    if (!ref) {
        if (!k->wait_since)
            k->wait_since = now;
        ref = k->wait_since;
    }
    if (now > ref && now - ref > a->cfg.frame_timeout_ns && newest + 1 > k->base)
        advance(a, l, keep_from(a, k->base, newest, now - a->cfg.frame_timeout_ns));
}

void mg_asm_flush(mg_assembler *a, int l)
{
    link *k = &a->links[l];
    if (k->flushed)
        return;
    k->flushed = 1;
    drop_all(a, k);
    /* this link takes nothing more: its base goes to "infinity" and the
     * collector waits only for the others */
    k->base = INT64_MAX;
    atomic_store_explicit(&k->base_pub, INT64_MAX, memory_order_release);
    atomic_fetch_add(&a->nflushed, 1);
}

/* ---- the collector ---- */

/* Gives slots back in frame order once downstream is done. */
static void reap(mg_assembler *a)
{
    while (a->fifo_len) {
        int64_t k = a->fifo[a->fifo_head];
        slot *s = slot_of(a, k);
        if (!atomic_load_explicit(&s->done, memory_order_acquire))
            break;
        atomic_store_explicit(&s->done, 0, memory_order_relaxed);
        s->inflight = -1;
        int64_t r = s->release_to > k ? s->release_to : k;
        s->release_to = -1;
        atomic_store_explicit(&s->released, r, memory_order_release);
        a->fifo_head = (a->fifo_head + 1) % a->S;
        a->fifo_len--;
        atomic_fetch_sub_explicit(&a->in_use, 1, memory_order_relaxed);
    }
}

/* Whether packets came for frame k (kept, or lost to a busy buffer). */
static int has_data(mg_assembler *a, int64_t k)
{
    slot *s = slot_of(a, k);
    for (int l = 0; l < a->nlinks; l++)
        if (s->lf[l].frame == k)
            return 1;
    return atomic_load_explicit(&s->overrun, memory_order_relaxed) == k;
}

/* Frame k is no image: its slot is free as soon as what it holds is. */
static void skip(mg_assembler *a, int64_t k)
{
    slot *s = slot_of(a, k);
    if (s->inflight >= 0)
        s->release_to = k;
    else
        atomic_store_explicit(&s->released, k, memory_order_release);
}

static void build_frame(mg_assembler *a, int64_t k, const acq *q, slot *s, mg_frame *f)
{
    int complete = 1;
    memset(s->modules, 0, sizeof(mg_module_frame) * (size_t)a->nmod);
    for (int m = 0; m < a->nmod; m++)
        s->modules[m].frame_number = (uint64_t)(acq_number(q, k) + q->off[m]);
    int seen[MG_MAX_MODULES] = {0}, any = 0;
    for (int l = 0; l < a->nlinks; l++) {
        link *lk = &a->links[l];
        link_frame *lf = &s->lf[l];
        mg_module_frame *mf = &s->modules[lk->module];
        uint16_t *mod = s->mod[lk->module];
        const uint16_t **blk = s->blocks + (size_t)lk->module * MG_PACKETS_PER_MODULE;
        int have = lf->frame == k;
        any |= have;
        if (have && !seen[lk->module]) {
            seen[lk->module] = 1;
            mf->frame_number = lf->frame_number;
            mf->bunch_id = lf->bunch_id;
            mf->timestamp = lf->timestamp;
            mf->exposure_length = lf->exposure_length;
            mf->daq_info = lf->daq_info;
            mf->module_id = lf->module_id;
        }
        for (unsigned p = 0; p < lk->ppi; p++) {
            unsigned qn = (unsigned)lk->iface * lk->ppi + p;
            if (have && (lf->mask[p >> 6] >> (p & 63) & 1)) {
                mf->mask[qn >> 3] |= (uint8_t)(1u << (qn & 7));
                mf->packets++;
                if (mod)
                    blk[qn] = mod + (size_t)qn * MG_ROWS_PER_PACKET * MG_MODULE_COLS;
            } else {
                if (lk->expect[p >> 6] >> (p & 63) & 1) {
                    complete = 0;
                    a->tot.packets_missing++;
                }
                blk[qn] = a->missing;
                if (mod)
                    memcpy(mod + (size_t)qn * MG_ROWS_PER_PACKET * MG_MODULE_COLS, a->missing, MG_PACKET_DATA_BYTES);
            }
        }
    }
    f->slot = (int)(k % a->S);
    f->complete = complete;
    f->missing = !any;
    f->data = s->data;
    f->module_data = s->mod;
    f->blocks = s->blocks;
    f->nblocks = a->nmod * MG_PACKETS_PER_MODULE;
    f->modules = s->modules;
}

int mg_asm_next_frame(mg_assembler *a, mg_frame *f)
{
    reap(a);
    if (atomic_load(&a->done))
        return -1;
    /* newest first: an acquisition created after this read cannot have frames below it */
    int64_t newest = atomic_load(&a->newest);
    int64_t minb = INT64_MAX;
    for (int l = 0; l < a->nlinks; l++) {
        int64_t b = atomic_load_explicit(&a->links[l].base_pub, memory_order_acquire);
        if (b < minb)
            minb = b;
    }
    int all_flushed = atomic_load(&a->nflushed) == a->nlinks;
    int nacq = atomic_load(&a->nacq);
    int64_t end = all_flushed ? newest + 1 : INT64_MAX;
    while (nacq > 0 && a->next < minb && a->next < end) {
        int64_t k = a->next;
        while (a->cur + 1 < nacq && k >= a->acq[a->cur + 1].K)
            a->cur++;
        acq *q = &a->acq[a->cur];
        slot *s = slot_of(a, k);
        int data = has_data(a, k);
        if (!data) {
            /* between two frames with data it keeps its place; before the acquisition's first and after its
             * last it is none */
            int image = 0;
            if (q->started) {
                int64_t qend = atomic_load(&q->end);
                if (qend == INT64_MAX) /* the newest acquisition: its newest frame has data */
                    image = newest > k;
                else {
                    int64_t stop = qend < minb ? qend : minb;
                    for (int64_t j = k + 1; j < stop && !image; j++)
                        image = has_data(a, j);
                    if (!image && minb < qend)
                        return 0; /* a link may still bring a later frame of this acquisition */
                }
            }
            if (!image) {
                skip(a, k);
                a->next++;
                continue;
            }
        }
        if (s->inflight >= 0)
            return 0; /* its buffer still holds a frame downstream */
        if (!q->started) {
            pthread_mutex_lock(&a->mu);
            q->started = 1;
            q->k0 = k;
            q->info.first_number = (uint64_t)acq_number(q, k);
            if (a->cur > 0) {
                const acq *p = &a->acq[a->cur - 1];
                if (p->started && q->info.first_number > p->info.last_number)
                    q->info.skipped = (int64_t)(q->info.first_number - p->info.last_number - 1);
            }
            if (a->cfg.max_frames)
                atomic_store(&q->limit, k + (int64_t)(a->cfg.max_frames - a->tot.images));
            pthread_mutex_unlock(&a->mu);
        }
        build_frame(a, k, q, s, f);
        { /* how far apart the links began this frame: what a lagging link made it wait */
            uint64_t lo = UINT64_MAX, hi = 0;
            for (int l = 0; l < a->nlinks; l++)
                if (s->lf[l].frame == k) {
                    lo = s->lf[l].t_open < lo ? s->lf[l].t_open : lo;
                    hi = s->lf[l].t_open > hi ? s->lf[l].t_open : hi;
                }
            if (hi > lo && hi - lo > a->tot.max_skew_ns)
                a->tot.max_skew_ns = hi - lo;
            f->arrival_ns = lo == UINT64_MAX ? 0 : lo;
        }
        f->index = k - q->k0;
        f->acquisition = a->cur;
        s->inflight = k;
        a->fifo[(a->fifo_head + a->fifo_len) % a->S] = k;
        a->fifo_len++;
        atomic_fetch_add_explicit(&a->in_use, 1, memory_order_relaxed);
        pthread_mutex_lock(&a->mu);
        if (f->missing) {
            a->tot.frames_missing++;
            q->info.missing++;
        } else if (f->complete) {
            a->tot.frames_complete++;
            q->info.complete++;
        } else {
            a->tot.frames_partial++;
            q->info.partial++;
        }
        q->info.images++;
        q->info.last_number = (uint64_t)acq_number(q, k);
        a->tot.images++;
        pthread_mutex_unlock(&a->mu);
        a->last_image = k;
        a->next++;
        if (a->cfg.max_frames && a->tot.images >= a->cfg.max_frames)
            atomic_store(&a->done, 1);
        return 1;
    }
    if (all_flushed && a->next >= end)
        return -1;
    return 0;
}

void mg_asm_release(mg_assembler *a, const mg_frame *f)
{
    atomic_store_explicit(&a->slots[f->slot].done, 1, memory_order_release);
}

uint64_t mg_link_stats_rejected(const mg_link_stats *s)
{
    uint64_t n = 0;
    for (int v = 1; v < MG_PACKET_VERDICT_COUNT; v++)
        n += s->rejected[v];
    return n;
}

void mg_asm_link_stats(const mg_assembler *a, int l, mg_link_stats *out) { *out = a->links[l].st; }

void mg_asm_get_totals(const mg_assembler *a, mg_asm_totals *out)
{
    mg_assembler *m = (mg_assembler *)a;
    pthread_mutex_lock(&m->mu);
    *out = a->tot;
    out->acquisitions = atomic_load(&m->nacq);
    pthread_mutex_unlock(&m->mu);
    /* packets accepted into frames after the last image of a run that reached max_frames: once every link
     * has stopped, they are still in their buffers' records */
    out->after_end = 0;
    if (atomic_load(&m->done) && atomic_load(&m->nflushed) == a->nlinks)
        for (int s = 0; s < a->S; s++)
            for (int l = 0; l < a->nlinks; l++)
                if (a->slots[s].lf[l].frame > a->last_image)
                    out->after_end += a->slots[s].lf[l].packets;
}

void mg_asm_acquisition(const mg_assembler *a, int i, mg_acq_info *out)
{
    mg_assembler *m = (mg_assembler *)a;
    pthread_mutex_lock(&m->mu);
    const acq *q = &a->acq[i];
    *out = q->info;
    for (int k = 0; k < a->nmod; k++) {
        out->offset[k] = q->off[k];
        out->pairing[k] = q->pairing[k];
    }
    pthread_mutex_unlock(&m->mu);
}

void mg_asm_set_kernel_drops(mg_assembler *a, int l, uint64_t drops) { a->links[l].st.kernel_drops = drops; }

int mg_asm_slots_in_use(const mg_assembler *a) { return atomic_load_explicit(&a->in_use, memory_order_relaxed); }

int mg_asm_slot_count(const mg_assembler *a) { return a->S; }

int mg_asm_modules(const mg_assembler *a) { return a->nmod; }

int mg_asm_link_count(const mg_assembler *a) { return a->nlinks; }

unsigned mg_asm_expected_packets(const mg_assembler *a) { return a->expect_module; }
