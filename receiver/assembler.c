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
 *    everywhere once every link's base is above k; the collector then reads
 *    the slot, builds the per-module record, fills missing packets and hands
 *    the frame on.
 *  - Only the collector writes slot->released, in frame order, after the
 *    downstream thread has marked the frame done (slot->done).  A frame of
 *    which nothing arrived is released at once unless the slot still holds an
 *    older frame downstream, in which case the release waits for it
 *    (release_to).
 */
#include "morgul/assembler.h"

#include <stdlib.h>
#include <string.h>

typedef struct link_frame {
    int64_t frame;      /* frame index this record describes, -1 none */
    uint32_t packets;
    uint64_t mask[2];
    uint64_t frame_number, bunch_id, timestamp;
    uint32_t exposure_length, daq_info;
} link_frame;

typedef struct slot {
    _Atomic int64_t released; /* every frame <= this that maps here is done with */
    _Atomic int done;         /* downstream finished with the in-flight frame */
    int64_t inflight;         /* frame handed on and not yet released, -1 none (collector) */
    int64_t release_to;       /* release this far once the in-flight frame is done (collector) */
    uint16_t *data;           /* all modules contiguous, if they share one pool */
    uint16_t **mod;           /* each module's rows */
    const uint16_t **blocks;  /* where each module packet's rows are */
    link_frame *lf;           /* one per link */
    mg_module_frame *modules; /* built by the collector */
} slot;

typedef struct link {
    int module, iface;
    unsigned ppi;            /* packets per interface */
    unsigned hdr_row, hdr_col;
    int64_t base;            /* lowest open frame */
    int64_t last_frame;      /* for out-of-order detection */
    uint32_t last_packet;
    uint64_t last_ns;        /* time of the last accepted packet, 0 = never */
    int flushed;
    mg_link_stats st;
    _Atomic int64_t base_pub __attribute__((aligned(64)));
    char pad[64];
} link;

struct mg_assembler {
    mg_asm_config cfg;
    const mg_detector *det;
    int nlinks, nmod, S, W;
    size_t frame_words;
    link *links;
    slot *slots;
    uint16_t *pool;           /* one pool for all modules ... */
    size_t pool_bytes;
    uint16_t *mpool[MG_MAX_MODULES]; /* ... or one per module, on its receivers' node */
    int split;
    uint16_t *missing;        /* one packet's worth of MG_WORD_MISSING */
    _Atomic int64_t module_first[MG_MAX_MODULES]; /* frame number of index 0, -1 unset */
    _Atomic int64_t newest;                       /* newest frame index seen */
    _Atomic int nflushed;
    /* collector state */
    int64_t next;
    int64_t *fifo; /* in-flight frames in order */
    int fifo_head, fifo_len;
    _Atomic int in_use;
    mg_asm_totals tot;
};

mg_assembler *mg_asm_new(const mg_asm_config *cfg, mg_error *err)
{
    const mg_detector *d = cfg->det;
    if (mg_detector_validate(d, err))
        return NULL;
    mg_assembler *a = calloc(1, sizeof *a);
    if (!a)
        goto nomem;
    a->cfg = *cfg;
    a->det = d;
    a->nlinks = mg_detector_links(d);
    a->nmod = d->nmodules;
    a->W = cfg->window > 0 ? cfg->window : 16;
    a->S = cfg->slots > 0 ? cfg->slots : (4 * a->W > 64 ? 4 * a->W : 64);
    if (a->S < 2 * a->W) {
        mg_error_set(err, MG_EINVAL, "%d frame buffers are too few for a window of %d frames; give at least %d",
                     a->S, a->W, 2 * a->W);
        free(a);
        return NULL;
    }
    if (!a->cfg.max_jump)
        a->cfg.max_jump = 100000;
    if (!a->cfg.frame_timeout_ns)
        a->cfg.frame_timeout_ns = 100000000ull;
    a->frame_words = (size_t)a->nmod * MG_MODULE_PIXELS;
    a->links = aligned_alloc(64, sizeof(link) * (size_t)a->nlinks);
    a->slots = calloc((size_t)a->S, sizeof(slot));
    a->fifo = calloc((size_t)a->S, sizeof(int64_t));
    /* by reference the slots hold pointers only; modules received on different
     * NUMA nodes get a pool each, on their node */
    if (cfg->module_node && !cfg->by_reference)
        for (int m = 1; m < a->nmod; m++)
            a->split |= cfg->module_node[m] != cfg->module_node[0];
    if (a->split) {
        for (int m = 0; m < a->nmod; m++)
            if (!(a->mpool[m] = mg_numa_alloc(cfg->topo, (size_t)a->S * MG_MODULE_BYTES, cfg->module_node[m])))
                goto nomem;
    } else {
        a->pool_bytes = cfg->by_reference ? 4096 : (size_t)a->S * a->frame_words * 2;
        int node = cfg->module_node ? cfg->module_node[0] : cfg->numa_node;
        if (!(a->pool = mg_numa_alloc(cfg->topo, a->pool_bytes, node)))
            goto nomem;
    }
    a->missing = malloc(MG_PACKET_DATA_BYTES);
    if (!a->links || !a->slots || !a->fifo || !a->missing)
        goto nomem;
    for (int i = 0; i < MG_PACKET_DATA_BYTES / 2; i++)
        a->missing[i] = MG_WORD_MISSING;
    memset(a->links, 0, sizeof(link) * (size_t)a->nlinks);
    for (int l = 0; l < a->nlinks; l++) {
        link *k = &a->links[l];
        mg_detector_link(d, l, &k->module, &k->iface);
        k->ppi = mg_detector_packets_per_interface(d, k->module);
        mg_detector_link_position(d, l, &k->hdr_row, &k->hdr_col);
        k->last_frame = -1;
        atomic_init(&k->base_pub, 0);
    }
    for (int s = 0; s < a->S; s++) {
        slot *sl = &a->slots[s];
        atomic_init(&sl->released, (int64_t)s - a->S);
        atomic_init(&sl->done, 0);
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
    for (int m = 0; m < MG_MAX_MODULES; m++)
        atomic_init(&a->module_first[m], -1);
    atomic_init(&a->newest, -1);
    a->tot.first_index = a->tot.last_index = -1;
    return a;
nomem:
    mg_error_set(err, MG_ENOMEM,
                 "out of memory for %d frame buffers of %d module(s); lower --buffer-frames", cfg->slots,
                 d->nmodules);
    mg_asm_free(a);
    return NULL;
}

void mg_asm_free(mg_assembler *a)
{
    if (!a)
        return;
    if (a->slots)
        for (int s = 0; s < a->S; s++) {
            free(a->slots[s].lf);
            free(a->slots[s].modules);
            free(a->slots[s].blocks);
            free(a->slots[s].mod);
        }
    if (a->pool)
        mg_numa_free(a->cfg.topo, a->pool, a->pool_bytes);
    for (int m = 0; m < MG_MAX_MODULES; m++)
        if (a->mpool[m])
            mg_numa_free(a->cfg.topo, a->mpool[m], (size_t)a->S * MG_MODULE_BYTES);
    free(a->missing);
    free(a->slots);
    free(a->links);
    free(a->fifo);
    free(a);
}

static inline slot *slot_of(mg_assembler *a, int64_t k) { return &a->slots[k % a->S]; }

static inline int frame_complete(mg_assembler *a, int l, int64_t k)
{
    const link_frame *f = &slot_of(a, k)->lf[l];
    return f->frame == k && f->packets == a->links[l].ppi;
}

/* Moves the link's base to at least `to`, then past frames already complete. */
static void advance(mg_assembler *a, int l, int64_t to)
{
    link *k = &a->links[l];
    int64_t b = k->base > to ? k->base : to;
    while (frame_complete(a, l, b))
        b++;
    if (b != k->base) {
        k->base = b;
        atomic_store_explicit(&k->base_pub, b, memory_order_release);
    }
}

static inline void note_newest(mg_assembler *a, int64_t k)
{
    int64_t cur = atomic_load_explicit(&a->newest, memory_order_relaxed);
    while (k > cur && !atomic_compare_exchange_weak(&a->newest, &cur, k))
        ;
}

static int push(mg_assembler *a, int l, const void *buf, size_t len, uint64_t now_ns, uint64_t frame_add)
{
    link *k = &a->links[l];
    const mg_jf_header *h;
    const uint8_t *px;
    k->st.bytes += len;
    mg_packet_verdict v = mg_packet_check(buf, len, k->ppi, &h, &px);
    if (v == MG_PACKET_OK && a->cfg.check_position && (h->row != k->hdr_row || h->column != k->hdr_col))
        v = MG_PACKET_BAD_POSITION;
    if (v != MG_PACKET_OK || k->flushed) {
        if (k->flushed && v == MG_PACKET_OK)
            v = MG_PACKET_BAD_FRAME;
        k->st.rejected[v]++;
        return 0;
    }
    /* frame index */
    int mslot = a->cfg.align == MG_ALIGN_NONE ? 0 : k->module;
    uint64_t frame_number = h->frame_number + frame_add;
    int64_t fn = (int64_t)(frame_number & 0x7FFFFFFFFFFFFFFFull);
    int64_t first = atomic_load_explicit(&a->module_first[mslot], memory_order_acquire);
    if (first < 0) {
        int64_t expect = -1;
        if (atomic_compare_exchange_strong(&a->module_first[mslot], &expect, fn))
            first = fn;
        else
            first = expect;
    }
    if (fn < first) {
        k->st.before_start++;
        return 0;
    }
    int64_t f = fn - first;
    int64_t newest = atomic_load_explicit(&a->newest, memory_order_relaxed);
    if (newest >= 0 && f > newest + (int64_t)a->cfg.max_jump) {
        k->st.rejected[MG_PACKET_BAD_FRAME]++;
        return 0;
    }
    if (a->cfg.max_frames && (uint64_t)f >= a->cfg.max_frames) {
        k->st.after_end++;
        return 0;
    }
    unsigned p = h->packet_number;
    if (f < k->base) {
        /* a second copy of a packet of a frame this link has closed is a
         * duplicate, not a late packet (the record still says so until the
         * buffer is reused) */
        const link_frame *old = &slot_of(a, f)->lf[l];
        if (old->frame == f && (old->mask[p >> 6] >> (p & 63) & 1))
            k->st.duplicates++;
        else
            k->st.late++;
        return 0;
    }
    if (f >= k->base + a->W)
        advance(a, l, f - a->W + 1);
    note_newest(a, f);
    k->last_ns = now_ns;
    slot *s = slot_of(a, f);
    if (atomic_load_explicit(&s->released, memory_order_acquire) < f - a->S) {
        if (a->cfg.lossless) {
            k->st.bytes -= len;
            return MG_ASM_RETRY;
        }
        k->st.overrun++;
        return 0;
    }
    link_frame *lf = &s->lf[l];
    if (lf->frame != f) {
        lf->frame = f;
        lf->packets = 0;
        lf->mask[0] = lf->mask[1] = 0;
        lf->frame_number = frame_number;
        lf->bunch_id = h->bunch_id;
        lf->timestamp = h->timestamp;
        lf->exposure_length = h->exposure_length;
        lf->daq_info = h->daq_info;
    }
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
    if (f < k->last_frame || (f == k->last_frame && p < k->last_packet))
        k->st.out_of_order++;
    else {
        k->last_frame = f;
        k->last_packet = p;
    }
    lf->mask[p >> 6] |= bit;
    lf->packets++;
    k->st.packets++;
    if (lf->packets == k->ppi && f == k->base)
        advance(a, l, f + 1);
    return 0;
}

int mg_asm_push(mg_assembler *a, int l, const void *buf, size_t len, uint64_t now_ns)
{
    return push(a, l, buf, len, now_ns, 0);
}

int mg_asm_push_offline(mg_assembler *a, int l, const void *buf, size_t len, uint64_t now_ns, uint64_t frame_add)
{
    return push(a, l, buf, len, now_ns, frame_add);
}

void mg_asm_tick(mg_assembler *a, int l, uint64_t now_ns)
{
    link *k = &a->links[l];
    if (k->flushed)
        return;
    int64_t newest = atomic_load_explicit(&a->newest, memory_order_relaxed);
    if (newest < 0)
        return;
    if (newest - a->W + 1 > k->base)
        advance(a, l, newest - a->W + 1);
    /* No packet for a while: frames others have seen will not be finished
     * here.  (A link that never had a packet counts its silence from the
     * first tick after data started elsewhere.) */
    if (!k->last_ns)
        k->last_ns = now_ns;
    else if (now_ns - k->last_ns > a->cfg.frame_timeout_ns && newest + 1 > k->base)
        advance(a, l, newest + 1);
}

void mg_asm_flush(mg_assembler *a, int l)
{
    link *k = &a->links[l];
    if (k->flushed)
        return;
    k->flushed = 1;
    int64_t newest = atomic_load_explicit(&a->newest, memory_order_acquire);
    advance(a, l, newest + 1);
    /* frames beyond newest may still be claimed by other links that see
     * more data later: this link takes nothing more, so its base goes to
     * "infinity" and the collector waits only for the others */
    k->base = INT64_MAX;
    atomic_store_explicit(&k->base_pub, INT64_MAX, memory_order_release);
    atomic_fetch_add(&a->nflushed, 1);
}

/* Collector: gives slots back in frame order once downstream is done. */
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

static void build_frame(mg_assembler *a, int64_t k, slot *s, mg_frame *f)
{
    int complete = 1;
    memset(s->modules, 0, sizeof(mg_module_frame) * (size_t)a->nmod);
    for (int m = 0; m < a->nmod; m++) {
        int mslot = a->cfg.align == MG_ALIGN_NONE ? 0 : m;
        int64_t first = atomic_load_explicit(&a->module_first[mslot], memory_order_acquire);
        s->modules[m].frame_number = first >= 0 ? (uint64_t)(first + k) : 0;
    }
    int seen[MG_MAX_MODULES] = {0};
    for (int l = 0; l < a->nlinks; l++) {
        link *lk = &a->links[l];
        link_frame *lf = &s->lf[l];
        mg_module_frame *mf = &s->modules[lk->module];
        uint16_t *mod = s->mod[lk->module];
        const uint16_t **blk = s->blocks + (size_t)lk->module * MG_PACKETS_PER_MODULE;
        int have = lf->frame == k;
        if (have && !seen[lk->module]) {
            seen[lk->module] = 1;
            mf->frame_number = lf->frame_number;
            mf->bunch_id = lf->bunch_id;
            mf->timestamp = lf->timestamp;
            mf->exposure_length = lf->exposure_length;
            mf->daq_info = lf->daq_info;
        }
        for (unsigned p = 0; p < lk->ppi; p++) {
            unsigned q = (unsigned)lk->iface * lk->ppi + p;
            if (have && (lf->mask[p >> 6] >> (p & 63) & 1)) {
                mf->mask[q >> 3] |= (uint8_t)(1u << (q & 7));
                mf->packets++;
                if (mod)
                    blk[q] = mod + (size_t)q * MG_ROWS_PER_PACKET * MG_MODULE_COLS;
            } else {
                complete = 0;
                a->tot.packets_missing++;
                blk[q] = a->missing;
                if (mod)
                    memcpy(mod + (size_t)q * MG_ROWS_PER_PACKET * MG_MODULE_COLS, a->missing, MG_PACKET_DATA_BYTES);
            }
        }
    }
    f->index = k;
    f->slot = (int)(k % a->S);
    f->complete = complete;
    f->data = s->data;
    f->module_data = s->mod;
    f->blocks = s->blocks;
    f->nblocks = a->nmod * MG_PACKETS_PER_MODULE;
    f->modules = s->modules;
}

int mg_asm_next_frame(mg_assembler *a, mg_frame *f)
{
    reap(a);
    int64_t minb = INT64_MAX;
    for (int l = 0; l < a->nlinks; l++) {
        int64_t b = atomic_load_explicit(&a->links[l].base_pub, memory_order_acquire);
        if (b < minb)
            minb = b;
    }
    int all_flushed = atomic_load(&a->nflushed) == a->nlinks;
    int64_t newest = atomic_load_explicit(&a->newest, memory_order_acquire);
    int64_t end = a->cfg.max_frames ? (int64_t)a->cfg.max_frames : INT64_MAX;
    if (all_flushed && newest + 1 < end)
        end = newest + 1;
    while (a->next < minb && a->next < end) {
        int64_t k = a->next;
        slot *s = slot_of(a, k);
        int any = 0;
        for (int l = 0; l < a->nlinks && !any; l++)
            any = s->lf[l].frame == k;
        if (any && s->inflight < 0) {
            build_frame(a, k, s, f);
            s->inflight = k;
            a->fifo[(a->fifo_head + a->fifo_len) % a->S] = k;
            a->fifo_len++;
            atomic_fetch_add_explicit(&a->in_use, 1, memory_order_relaxed);
            if (f->complete)
                a->tot.frames_complete++;
            else
                a->tot.frames_partial++;
            if (a->tot.first_index < 0)
                a->tot.first_index = k;
            a->tot.last_index = k;
            a->next++;
            return 1;
        }
        /* nothing arrived for frame k (or everything was an overrun) */
        a->tot.frames_missing++;
        a->tot.packets_missing += (uint64_t)a->nmod * MG_PACKETS_PER_MODULE;
        if (s->inflight >= 0)
            s->release_to = k;
        else
            atomic_store_explicit(&s->released, k, memory_order_release);
        a->next++;
    }
    if (a->next >= end && (all_flushed || a->cfg.max_frames))
        return -1;
    return 0;
}

void mg_asm_release(mg_assembler *a, const mg_frame *f)
{
    atomic_store_explicit(&a->slots[f->slot].done, 1, memory_order_release);
}

void mg_asm_link_stats(const mg_assembler *a, int l, mg_link_stats *out) { *out = a->links[l].st; }

void mg_asm_get_totals(const mg_assembler *a, mg_asm_totals *out) { *out = a->tot; }

void mg_asm_set_kernel_drops(mg_assembler *a, int l, uint64_t drops) { a->links[l].st.kernel_drops = drops; }

int mg_asm_slots_in_use(const mg_assembler *a) { return atomic_load_explicit(&a->in_use, memory_order_relaxed); }

int mg_asm_slot_count(const mg_assembler *a) { return a->S; }

int mg_asm_modules(const mg_assembler *a) { return a->nmod; }

int mg_asm_link_count(const mg_assembler *a) { return a->nlinks; }

int64_t mg_asm_newest(const mg_assembler *a) { return atomic_load_explicit(&a->newest, memory_order_relaxed); }

int64_t mg_asm_module_first(const mg_assembler *a, int module)
{
    return atomic_load(&a->module_first[a->cfg.align == MG_ALIGN_NONE ? 0 : module]);
}
