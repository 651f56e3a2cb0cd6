/* pipeline.c - collector and compressing, writing workers
 * (contract in morgul/pipeline.h).
 *
 * The collector deals frames with a sequence number to the worker with the
 * fewest frames queued (a worker that shares its core with the receivers
 * or the collector gets fewer).  A worker compresses its frame into one of its own output
 * buffers, gives the frame buffer back and posts the chunk under its
 * sequence number.  Chunks are written strictly in sequence order by
 * whichever worker finds the next one posted: it takes the write lock and
 * writes every consecutive posted chunk, so no worker sits idle waiting for
 * its turn while a slower frame ahead of it is still being compressed (that
 * wait cost a tenth of the workers' time).  A worker has up to MAX_OUTBUFS
 * buffers (fewer for big detectors: at most OUTBUF_BYTES in all), so it
 * runs at most that many frames ahead of the writing, and the posting
 * table has NPOSTED entries, so no chunk is posted further ahead than that.  There is no writer
 * thread: the chunk is usually written by the worker that compressed it,
 * while still in its cache.  The HDF5 library is not thread-safe; the write
 * lock makes its calls strictly one at a time. */
#include "morgul/pipeline.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "morgul/convert.h"
#include "morgul/darkrun.h"
#include "morgul/geometry.h"
#include "morgul/jungfrau.h"
#include "morgul/checksum.h"
#include "morgul/pedestal.h"
#include "morgul/ring.h"
#include "morgul/runped.h"
#include "morgul/threads.h"

typedef struct job {
    int end;
    uint64_t seq;
    mg_frame frame;
} job;

/* Output buffers per worker: with 2 the worker on the free core waited for
 * the turn of a frame still being compressed on the core it shares with
 * the capture reader (corrected replay: the two cores were 79 % busy
 * against 88 % with 8, 4 runs each); 8 let it run ahead. */
#define MAX_OUTBUFS 8
#define OUTBUF_BYTES ((size_t)64 << 20)
#define NPOSTED 256

/* A compressed frame waiting to be written. */
typedef struct outbuf {
    uint8_t *chunk;
    mg_module_frame *modules; /* the frame's records */
    int64_t n;                /* chunk bytes; 0: nothing to write (failed) */
    int64_t index;
    uint64_t arrival_ns;      /* its first packet's arrival (0: none came) */
    uint32_t crc;             /* CRC-32C of the chunk */
    int acq;                  /* the frame's acquisition */
    uint64_t seq;
    _Atomic int busy;         /* posted and not yet written */
} outbuf;

typedef struct worker {
    mg_pipeline *p;
    int id;
    mg_thread th;
    mg_ring in;
    mg_bshuf_ctx *ctx;
    outbuf out[MAX_OUTBUFS];
    unsigned next_out;
    void *conv, *image;       /* corrected output: one module converted, the detector image */
    mg_pedestal_acc **acc;    /* dark runs: the accumulators this worker adds to */
    int own_acc;              /* ... its own (merged into the configured ones at the end) */
} worker;

struct mg_pipeline {
    mg_pipeline_config cfg;
    int nmod, nw;
    int outbufs;              /* per worker */
    int nacc;                 /* dark runs: accumulators per set (modules x cells) */
    size_t chunk_cap, frame_elems;
    size_t es, img_px;        /* element size and pixels of what is compressed */
    worker *w;
    mg_thread collector;
    _Atomic uint64_t turn;     /* sequence number of the next frame to write */
    int acq;                   /* acquisition of the frames written (under the write lock) */
    _Atomic uint32_t turn_gen; /* futex word: changes whenever turn does */
    _Atomic(outbuf *) posted[NPOSTED]; /* [seq % NPOSTED]: chunks waiting for their turn */
    pthread_mutex_t write_lock;
    _Atomic uint64_t written, discarded, raw, comp, dark, other_cell, uncalibrated;
    _Atomic uint32_t cells_seen;
    _Atomic uint32_t dark_exposure;
    _Atomic uint32_t fill_max;
    _Atomic int collector_done;
    _Atomic int failed;
    pthread_mutex_t err_lock;
    mg_error err;
};

static void fail(mg_pipeline *p, const mg_error *e)
{
    pthread_mutex_lock(&p->err_lock);
    if (!atomic_load(&p->failed)) {
        p->err = *e;
        atomic_store(&p->failed, 1);
    }
    pthread_mutex_unlock(&p->err_lock);
    if (p->cfg.stop)
        atomic_store(p->cfg.stop, 1);
}

static void bind_core(mg_pipeline *p, int core)
{
    if (p->cfg.plan && core >= 0)
        mg_topology_bind_thread(p->cfg.topo, core, NULL);
}

/* Module m of frame f into dst (512 x 1024 words), packet block by block. */
static void copy_module(const mg_frame *f, int m, uint16_t *dst)
{
    for (int q = 0; q < MG_PACKETS_PER_MODULE; q++)
        memcpy(dst + (size_t)q * (MG_PACKET_DATA_BYTES / 2), f->blocks[m * MG_PACKETS_PER_MODULE + q],
               MG_PACKET_DATA_BYTES);
}

/* The next frame from the assembler: 1, or 0 once it has no more (-1 from
 * it); sleeps while nothing is ready - 200 us, then 1 ms once idle.
 * Frames wait in their buffers meanwhile; waking more often only costs
 * context switches on the cores the receivers need. */
static void sync_files(mg_pipeline *p);

static int next_frame(mg_pipeline *p, mg_frame *f)
{
    unsigned idle = 0;
    for (;;) {
        int r = mg_asm_next_frame(p->cfg.assembler, f);
        if (r)
            return r > 0;
        struct timespec ts = {0, (long)(idle < 20 ? 200000 : 1000000)};
        idle++;
        nanosleep(&ts, NULL);
        if (idle % 100 == 20) /* no frame for a while: what was written reaches the disk and the master */
            sync_files(p);
    }
}

/* Hands frame f to the worker with the least-filled queue, looking from
 * the one after the last pick. */
static void deal(mg_pipeline *p, const mg_frame *f, uint64_t *seq)
{
    worker *w;
    if (p->cfg.pedestal && p->cfg.pedestal_cells > 1) /* a cell's accumulators belong to one worker */
        w = &p->w[MG_DAQ_STORAGE_CELL(f->modules[0].daq_info) % (unsigned)p->nw];
    else {
        w = &p->w[*seq % (uint64_t)p->nw];
        for (int k = 1; k < p->nw; k++) {
            worker *o = &p->w[(*seq + (uint64_t)k) % (uint64_t)p->nw];
            if (mg_ring_fill(&o->in) < mg_ring_fill(&w->in))
                w = o;
        }
    }
    job *j;
    while (!(j = mg_ring_claim(&w->in, 100000)))
        ;
    j->end = 0;
    j->seq = (*seq)++;
    j->frame = *f;
    mg_ring_publish(&w->in);
    uint32_t fill = mg_ring_fill(&w->in);
    if (fill > atomic_load(&p->fill_max))
        atomic_store(&p->fill_max, fill);
}

/* The run-time pedestal: the first frames held and offered until it is
 * known, the tables updated, the held frames dealt.  Returns 0 once the
 * assembler has no more frames. */
static int prelude(mg_pipeline *p, uint64_t *seq)
{
    int cap = p->cfg.runped_hold > 0 ? p->cfg.runped_hold : 1, n = 0, more = 1;
    mg_frame *held = malloc((size_t)cap * sizeof *held);
    if (!held) {
        mg_error e = {0};
        mg_error_set(&e, MG_ENOMEM, "out of memory for the run-time pedestal");
        fail(p, &e);
    }
    while (held && n < cap && (more = next_frame(p, &held[n]))) {
        const mg_frame *f = &held[n++];
        if (f->complete)
            for (int m = 0; m < p->nmod; m++)
                copy_module(f, m, mg_runped_module(p->cfg.runped, m));
        if (mg_runped_offer(p->cfg.runped, f->complete, f->modules[0].daq_info) != MG_RUNPED_MORE)
            break;
    }
    mg_error e = {0};
    if (held && p->cfg.runped_ready(p->cfg.runped_ctx, &e))
        fail(p, &e); /* the held frames still go to the workers, which count them as not written */
    for (int i = 0; i < n; i++)
        deal(p, &held[i], seq);
    free(held);
    return more;
}

static void *collector_main(void *arg)
{
    mg_pipeline *p = arg;
    bind_core(p, p->cfg.plan ? p->cfg.plan->collector_core : -1);
    uint64_t seq = 0;
    int more = p->cfg.runped ? prelude(p, &seq) : 1;
    mg_frame f;
    while (more && next_frame(p, &f))
        deal(p, &f, &seq);
    for (int i = 0; i < p->nw; i++) {
        job *e;
        while (!(e = mg_ring_claim(&p->w[i].in, 100000)))
            ;
        e->end = 1;
        mg_ring_publish(&p->w[i].in);
    }
    atomic_store(&p->collector_done, 1);
    return NULL;
}

/* Waits until `b` has been written (turn_gen changes after every write). */
static void wait_written(mg_pipeline *p, outbuf *b)
{
    while (atomic_load(&b->busy)) {
        uint32_t g = atomic_load(&p->turn_gen);
        if (!atomic_load(&b->busy))
            break;
        mg_futex_wait(&p->turn_gen, g, 2000);
    }
}

/* Waits until the posting entry of `seq` is free: it holds seq - NPOSTED
 * until that is written, which needs nothing from this worker. */
static void wait_post_free(mg_pipeline *p, uint64_t seq)
{
    while (atomic_load(&p->posted[seq % NPOSTED])) {
        uint32_t g = atomic_load(&p->turn_gen);
        if (!atomic_load(&p->posted[seq % NPOSTED]))
            break;
        mg_futex_wait(&p->turn_gen, g, 2000);
    }
}

static void write_one(mg_pipeline *p, outbuf *b)
{
    mg_error e = {0};
    if (b->acq != p->acq && !atomic_load(&p->failed)) {
        p->acq = b->acq;
        if (p->cfg.acquisition && p->cfg.acquisition(p->cfg.acquisition_ctx, b->acq, &e))
            fail(p, &e);
    }
    if (b->n > 0 && !atomic_load(&p->failed)) {
        if (p->cfg.out && b->arrival_ns)
            mg_rawfile_time(p->cfg.out, (double)b->arrival_ns * 1e-9);
        if (p->cfg.out && mg_rawfile_write(p->cfg.out, b->index, b->modules, b->chunk, b->crc, (size_t)b->n, &e))
            fail(p, &e);
        else {
            atomic_fetch_add(&p->written, 1);
            atomic_fetch_add(&p->raw, p->img_px * p->es);
            atomic_fetch_add(&p->comp, (uint64_t)b->n);
            if (p->cfg.written) {
                mg_image_written w = {b->acq, b->index, b->chunk, (size_t)b->n, b->modules, p->nmod, b->arrival_ns};
                p->cfg.written(p->cfg.written_ctx, &w);
            }
        }
    } else
        atomic_fetch_add(&p->discarded, 1);
}

static void drain(mg_pipeline *p);

/* The files synced (mg_rawfile_sync) unless a worker is writing: it syncs
 * as it writes.  Like every holder of the write lock it drains after
 * unlocking: a worker that posted its chunk meanwhile found the lock taken
 * and left the chunk to the holder (a run's last chunks were once left
 * unwritten this way when the sync came just before them). */
static void sync_files(mg_pipeline *p)
{
    if (!p->cfg.out || atomic_load(&p->failed) || pthread_mutex_trylock(&p->write_lock))
        return;
    mg_error e = {0};
    if (mg_rawfile_sync(p->cfg.out, 0, &e))
        fail(p, &e);
    pthread_mutex_unlock(&p->write_lock);
    drain(p);
}

/* Writes every posted chunk from the turn on, in order, if no other thread
 * is doing so.  The check after unlocking closes the race with a chunk
 * posted while the lock was held: its poster failed to take the lock, so the
 * holder must look again (every taker of write_lock must drain after
 * unlocking it). */
static void drain(mg_pipeline *p)
{
    for (;;) {
        uint64_t t = atomic_load(&p->turn);
        outbuf *b = atomic_load(&p->posted[t % NPOSTED]);
        if (!b || b->seq != t || pthread_mutex_trylock(&p->write_lock))
            return;
        int wrote = 0;
        for (;;) {
            t = atomic_load(&p->turn);
            b = atomic_load(&p->posted[t % NPOSTED]);
            if (!b || b->seq != t)
                break;
            atomic_store(&p->posted[t % NPOSTED], NULL);
            write_one(p, b);
            atomic_store(&p->turn, t + 1);
            atomic_store(&b->busy, 0);
            wrote = 1;
        }
        pthread_mutex_unlock(&p->write_lock);
        if (wrote) {
            atomic_fetch_add(&p->turn_gen, 1);
            mg_futex_wake_all(&p->turn_gen);
        }
    }
}

/* Dark runs: every module of a complete frame into the worker's
 * accumulator of that module (and cell), the packet blocks copied straight
 * into the batch.  With storage cells the frame's cell is its first
 * module's; a frame whose modules name different cells, or a cell beyond
 * the count, is left out (its cell's accumulators belong to one worker). */
static void accumulate(mg_pipeline *p, worker *w, const mg_frame *f)
{
    if (!f->complete) {
        atomic_fetch_add(&p->discarded, 1);
        return;
    }
    const int cells = p->cfg.pedestal_cells > 1 ? p->cfg.pedestal_cells : 1;
    uint32_t seen = 0;
    const int cell = mg_dark_frame_cell(f->modules, p->nmod, cells, &seen);
    atomic_fetch_or(&p->cells_seen, seen);
    if (cell < 0) {
        atomic_fetch_add(&p->other_cell, 1);
        return;
    }
    for (int m = 0; m < p->nmod; m++) {
        mg_pedestal_acc *a = w->acc[(size_t)m * (size_t)cells + (size_t)cell];
        uint16_t *dst = mg_pedestal_next(a, mg_dark_frame_gain(f->modules[m].daq_info, f->index, p->cfg.pedestal_gain,
                                                               p->cfg.pedestal_frames, p->cfg.pedestal_loops));
        if (!dst)
            continue;
        copy_module(f, m, dst);
        mg_pedestal_commit(a);
    }
    if (!atomic_load(&p->dark_exposure))
        atomic_store(&p->dark_exposure, f->modules[0].exposure_length);
    atomic_fetch_add(&p->dark, 1);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    mg_pipeline *p = w->p;
    bind_core(p, p->cfg.plan ? p->cfg.plan->worker_core[w->id] : -1);
    for (;;) {
        job *j;
        while (!(j = mg_ring_peek(&w->in, 100000)))
            ;
        if (j->end) {
            mg_ring_consume(&w->in);
            return NULL;
        }
        uint64_t seq = j->seq;
        mg_frame f = j->frame;
        mg_ring_consume(&w->in);
        if (p->cfg.pedestal) {
            accumulate(p, w, &f);
            mg_asm_release(p->cfg.assembler, &f);
            continue;
        }
        if (p->cfg.no_compress) { /* receiving alone: the frame is counted and given back */
            mg_asm_release(p->cfg.assembler, &f);
            atomic_fetch_add(&p->discarded, 1);
            continue;
        }
        outbuf *b = &w->out[w->next_out];
        w->next_out = (w->next_out + 1) % (unsigned)p->outbufs;
        wait_written(p, b);
        memcpy(b->modules, f.modules, sizeof(mg_module_frame) * (size_t)p->nmod);
        mg_error e = {0};
        int64_t n = 0;
        const mg_module_tables *tables = p->cfg.worker_tables ? p->cfg.worker_tables[w->id] : p->cfg.tables;
        if (!atomic_load(&p->failed) && tables) {
            /* convert each module from its packet blocks, lay it out, compress the image */
            const mg_out_type type = (mg_out_type)p->cfg.type;
            for (int m = 0; m < p->nmod; m++) {
                const mg_conv_tables *t = mg_module_tables_pick(&tables[m], f.modules[m].daq_info);
                if (!t)
                    atomic_fetch_add(&p->uncalibrated, 1);
                const uint16_t *const *blocks = (const uint16_t *const *)f.blocks + m * MG_PACKETS_PER_MODULE;
                mg_geometry_convert_module(p->cfg.geom, m, t, blocks, f.modules[m].mask, type, w->conv, w->image);
            }
            n = mg_bshuf_compress(w->ctx, w->image, p->img_px, b->chunk, p->chunk_cap, &e);
        } else if (!atomic_load(&p->failed))
            n = mg_bshuf_compress_blocks(w->ctx, (const void *const *)f.blocks, (size_t)f.nblocks, b->chunk,
                                         p->chunk_cap, &e);
        mg_asm_release(p->cfg.assembler, &f);
        if (n < 0) {
            mg_error_prefix(&e, "compressing frame %lld", (long long)f.index);
            fail(p, &e);
        }
        b->n = n > 0 ? n : 0;
        b->crc = n > 0 && p->cfg.out ? mg_crc32c(0, b->chunk, (size_t)n) : 0;
        b->index = f.index;
        b->arrival_ns = f.arrival_ns;
        b->acq = f.acquisition;
        b->seq = seq;
        atomic_store(&b->busy, 1);
        wait_post_free(p, seq);
        atomic_store(&p->posted[seq % NPOSTED], b);
        drain(p);
    }
}

static void destroy(mg_pipeline *p)
{
    for (int i = 0; i < p->nw; i++) {
        mg_ring_destroy(&p->w[i].in);
        mg_bshuf_ctx_free(p->w[i].ctx);
        for (int k = 0; k < p->outbufs; k++) {
            mg_numa_free(p->cfg.topo, p->w[i].out[k].chunk, p->chunk_cap);
            free(p->w[i].out[k].modules);
        }
        if (p->w[i].conv)
            mg_numa_free(p->cfg.topo, p->w[i].conv, (size_t)MG_MODULE_PIXELS * p->es);
        if (p->w[i].image)
            mg_numa_free(p->cfg.topo, p->w[i].image, p->img_px * p->es);
        if (p->w[i].own_acc) {
            mg_dark_accs_free(p->w[i].acc, p->nacc);
            free(p->w[i].acc);
        }
    }
    pthread_mutex_destroy(&p->err_lock);
    pthread_mutex_destroy(&p->write_lock);
    free(p->w);
    free(p);
}

mg_pipeline *mg_pipeline_start(const mg_pipeline_config *cfg, mg_error *err)
{
    mg_pipeline *p = calloc(1, sizeof *p);
    if (!p) {
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    p->cfg = *cfg;
    pthread_mutex_init(&p->err_lock, NULL);
    pthread_mutex_init(&p->write_lock, NULL);
    p->nw = cfg->workers > 0 ? cfg->workers : 1;
    if (p->nw > MG_MAX_THREADS)
        p->nw = MG_MAX_THREADS;
    int depth = cfg->queue_depth > 0 ? cfg->queue_depth : 4;
    p->nmod = mg_asm_modules(cfg->assembler);
    p->frame_elems = (size_t)p->nmod * MG_MODULE_PIXELS;
    const int correcting = cfg->tables || cfg->worker_tables;
    p->es = correcting ? mg_out_size((mg_out_type)cfg->type) : 2;
    p->img_px = correcting ? (size_t)cfg->geom->width * (size_t)cfg->geom->height : p->frame_elems;
    p->chunk_cap = mg_bshuf_bound(p->img_px, p->es);
    p->outbufs = (int)(OUTBUF_BYTES / p->chunk_cap);
    p->outbufs = p->outbufs < 2 ? 2 : p->outbufs > MAX_OUTBUFS ? MAX_OUTBUFS : p->outbufs;
    p->w = calloc((size_t)p->nw, sizeof(worker));
    if (!p->w) {
        destroy(p);
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < p->nw; i++) {
        worker *w = &p->w[i];
        w->p = p;
        w->id = i;
        int node = cfg->plan ? cfg->plan->worker_node[i] : -1;
        int bufs_ok = 1;
        for (int k = 0; k < p->outbufs; k++) {
            w->out[k].chunk = mg_numa_alloc(cfg->topo, p->chunk_cap, node);
            w->out[k].modules = calloc((size_t)p->nmod, sizeof(mg_module_frame));
            bufs_ok &= w->out[k].chunk && w->out[k].modules;
        }
        if (correcting) {
            w->conv = mg_numa_alloc(cfg->topo, (size_t)MG_MODULE_PIXELS * p->es, node);
            w->image = mg_numa_alloc(cfg->topo, p->img_px * p->es, node);
            if (w->image)
                mg_geometry_fill_gaps(cfg->geom, w->image, (mg_out_type)cfg->type);
        }
        if (!bufs_ok || (correcting && (!w->conv || !w->image))) {
            destroy(p);
            mg_error_set(err, MG_ENOMEM, "out of memory for compression buffers");
            return NULL;
        }
        if (cfg->pedestal) {
            /* without storage cells every worker adds frames to a set of its own, merged at the end;
             * with them each cell's frames go to one worker, which adds them to the configured set */
            p->nacc = p->nmod * (cfg->pedestal_cells > 1 ? cfg->pedestal_cells : 1);
            w->acc = (mg_pedestal_acc **)cfg->pedestal;
            if (i > 0 && cfg->pedestal_cells <= 1) {
                w->acc = calloc((size_t)p->nacc, sizeof *w->acc);
                w->own_acc = w->acc != NULL;
                if (!w->acc || mg_dark_accs_new(w->acc, p->nacc, err)) {
                    if (!w->acc)
                        mg_error_set(err, MG_ENOMEM, "out of memory for the pedestal sums of worker %d", i);
                    destroy(p);
                    return NULL;
                }
            }
        }
        if (mg_ring_init(&w->in, (uint32_t)depth, sizeof(job), cfg->topo, node, err) ||
            !(w->ctx = mg_bshuf_ctx_new(p->es, cfg->impl, err))) {
            destroy(p);
            return NULL;
        }
        if (cfg->lz4_acceleration > 0)
            mg_bshuf_ctx_set_acceleration(w->ctx, cfg->lz4_acceleration);
    }
    int bad = 0;
    for (int i = 0; i < p->nw && !bad; i++)
        bad = mg_thread_start(cfg->threads, &p->w[i].th, worker_main, &p->w[i], NULL);
    if (!bad)
        bad = mg_thread_start(cfg->threads, &p->collector, collector_main, p, NULL);
    if (bad) {
        /* refuse cleanly: end the workers already running, then free */
        for (int i = 0; i < p->nw; i++)
            if (p->w[i].th.started) {
                job *e;
                while (!(e = mg_ring_claim(&p->w[i].in, 100000)))
                    ;
                e->end = 1;
                mg_ring_publish(&p->w[i].in);
                mg_thread_join(&p->w[i].th);
            }
        destroy(p);
        mg_error_set(err, MG_ESYS, "cannot start the compression threads");
        return NULL;
    }
    return p;
}

int mg_pipeline_finish(mg_pipeline *p, mg_pipeline_stats *final_stats, mg_error *err)
{
    mg_thread_join(&p->collector);
    for (int i = 0; i < p->nw; i++)
        mg_thread_join(&p->w[i].th);
    drain(p); /* nothing posted may stay behind; the run's outcome counts any frame still missing as lost */
    for (int i = 0; i < p->nw; i++) /* the other workers' dark frames into the configured sums */
        for (int k = 0; p->w[i].own_acc && k < p->nacc; k++)
            mg_pedestal_merge(p->cfg.pedestal[k], p->w[i].acc[k]);
    if (final_stats)
        mg_pipeline_get_stats(p, final_stats);
    int rc = 0;
    if (atomic_load(&p->failed)) {
        if (err)
            *err = p->err;
        rc = p->err.code ? p->err.code : MG_EIO;
    }
    destroy(p);
    return rc;
}

void mg_pipeline_get_stats(mg_pipeline *p, mg_pipeline_stats *s)
{
    memset(s, 0, sizeof *s);
    s->frames_written = atomic_load(&p->written);
    s->frames_discarded = atomic_load(&p->discarded);
    s->frames_dark = atomic_load(&p->dark);
    s->dark_exposure = atomic_load(&p->dark_exposure);
    s->frames_other_cell = atomic_load(&p->other_cell);
    s->cells_seen = atomic_load(&p->cells_seen);
    s->uncalibrated = atomic_load(&p->uncalibrated);
    s->bytes_raw = atomic_load(&p->raw);
    s->bytes_compressed = atomic_load(&p->comp);
    for (int i = 0; i < p->nw; i++) {
        s->queue_fill += mg_ring_fill(&p->w[i].in);
        s->queue_capacity += p->w[i].in.cap;
    }
    s->queue_fill_max = atomic_load(&p->fill_max);
}

int mg_pipeline_collector_done(mg_pipeline *p) { return atomic_load(&p->collector_done); }
