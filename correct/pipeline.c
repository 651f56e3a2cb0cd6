/* pipeline.c - collector, compression workers and writer
 * (contract in morgul/pipeline.h). */
#include "morgul/pipeline.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "morgul/ring.h"

typedef struct job {
    int end;
    mg_frame frame;
} job;

typedef struct result {
    int end;
    int64_t index;
    size_t bytes;
    size_t raw_bytes;
    /* followed by nmod mg_module_frame, then the chunk */
} result;

typedef struct worker {
    mg_pipeline *p;
    int id;
    pthread_t th;
    mg_ring in, out;
    mg_bshuf_ctx *ctx;
    int started;
} worker;

struct mg_pipeline {
    mg_pipeline_config cfg;
    int nmod, nw;
    size_t chunk_cap, result_bytes, frame_elems;
    worker *w;
    pthread_t collector, writer;
    int collector_started, writer_started;
    _Atomic uint64_t written, discarded, raw, comp;
    _Atomic uint32_t fill_max;
    _Atomic int collector_done;
    pthread_mutex_t err_lock;
    mg_error err;
    int failed;
};

static void fail(mg_pipeline *p, const mg_error *e)
{
    pthread_mutex_lock(&p->err_lock);
    if (!p->failed) {
        p->failed = 1;
        p->err = *e;
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

static void *collector_main(void *arg)
{
    mg_pipeline *p = arg;
    bind_core(p, p->cfg.plan ? p->cfg.plan->writer_core : -1);
    uint64_t seq = 0;
    unsigned idle = 0;
    for (;;) {
        mg_frame f;
        int r = mg_asm_next_frame(p->cfg.assembler, &f);
        if (r == 0) {
            /* nothing ready: sleep 200 us, then 1 ms once idle.  Frames wait
             * in their buffers meanwhile; waking more often only costs
             * context switches on the cores the receivers need. */
            struct timespec ts = {0, (long)(idle < 20 ? 200000 : 1000000)};
            idle++;
            nanosleep(&ts, NULL);
            continue;
        }
        idle = 0;
        worker *w = &p->w[seq % (uint64_t)p->nw];
        job *j;
        while (!(j = mg_ring_claim(&w->in, 100000)))
            ;
        if (r < 0) {
            /* the end: tell every worker, in round-robin order */
            for (int i = 0; i < p->nw; i++) {
                worker *x = &p->w[(seq + (uint64_t)i) % (uint64_t)p->nw];
                job *e = i == 0 ? j : NULL;
                while (!e)
                    e = mg_ring_claim(&x->in, 100000);
                e->end = 1;
                mg_ring_publish(&x->in);
            }
            atomic_store(&p->collector_done, 1);
            return NULL;
        }
        j->end = 0;
        j->frame = f;
        mg_ring_publish(&w->in);
        uint32_t fill = mg_ring_fill(&w->in);
        if (fill > atomic_load(&p->fill_max))
            atomic_store(&p->fill_max, fill);
        seq++;
    }
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
        result *r;
        while (!(r = mg_ring_claim(&w->out, 100000)))
            ;
        if (j->end) {
            r->end = 1;
            mg_ring_consume(&w->in);
            mg_ring_publish(&w->out);
            return NULL;
        }
        mg_frame *f = &j->frame;
        mg_module_frame *mods = (mg_module_frame *)(r + 1);
        uint8_t *chunk = (uint8_t *)(mods + p->nmod);
        r->end = 0;
        r->index = f->index;
        r->raw_bytes = p->frame_elems * 2;
        memcpy(mods, f->modules, sizeof(mg_module_frame) * (size_t)p->nmod);
        mg_error e = {0};
        int64_t n = 0;
        if (!p->failed)
            n = mg_bshuf_compress_blocks(w->ctx, (const void *const *)f->blocks, (size_t)f->nblocks, chunk,
                                         p->chunk_cap, &e);
        mg_asm_release(p->cfg.assembler, f);
        mg_ring_consume(&w->in);
        if (n < 0) {
            mg_error_prefix(&e, "compressing frame %lld", (long long)f->index);
            fail(p, &e);
            n = 0;
        }
        r->bytes = (size_t)n;
        mg_ring_publish(&w->out);
    }
}

static void *writer_main(void *arg)
{
    mg_pipeline *p = arg;
    bind_core(p, p->cfg.plan ? p->cfg.plan->writer_core : -1);
    for (uint64_t seq = 0;; seq++) {
        worker *w = &p->w[seq % (uint64_t)p->nw];
        result *r;
        while (!(r = mg_ring_peek(&w->out, 100000)))
            ;
        if (r->end) {
            mg_ring_consume(&w->out);
            /* drain the other workers' end markers */
            for (int i = 1; i < p->nw; i++) {
                worker *x = &p->w[(seq + (uint64_t)i) % (uint64_t)p->nw];
                while (!(r = mg_ring_peek(&x->out, 100000)))
                    ;
                mg_ring_consume(&x->out);
            }
            return NULL;
        }
        mg_module_frame *mods = (mg_module_frame *)(r + 1);
        if (!p->failed && r->bytes) {
            mg_error e = {0};
            if (p->cfg.out && mg_rawfile_write(p->cfg.out, r->index, mods, mods + p->nmod, r->bytes, &e))
                fail(p, &e);
            else {
                atomic_fetch_add(&p->written, 1);
                atomic_fetch_add(&p->raw, r->raw_bytes);
                atomic_fetch_add(&p->comp, r->bytes);
            }
        } else
            atomic_fetch_add(&p->discarded, 1);
        mg_ring_consume(&w->out);
    }
}

static void destroy(mg_pipeline *p)
{
    for (int i = 0; i < p->nw; i++) {
        mg_ring_destroy(&p->w[i].in);
        mg_ring_destroy(&p->w[i].out);
        mg_bshuf_ctx_free(p->w[i].ctx);
    }
    pthread_mutex_destroy(&p->err_lock);
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
    p->nw = cfg->workers > 0 ? cfg->workers : 1;
    if (p->nw > MG_MAX_THREADS)
        p->nw = MG_MAX_THREADS;
    int depth = cfg->queue_depth > 0 ? cfg->queue_depth : 4;
    p->nmod = mg_asm_modules(cfg->assembler);
    p->frame_elems = (size_t)p->nmod * MG_MODULE_PIXELS;
    p->chunk_cap = mg_bshuf_bound(p->frame_elems, 2);
    p->result_bytes = sizeof(result) + sizeof(mg_module_frame) * (size_t)p->nmod + p->chunk_cap;
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
        if (mg_ring_init(&w->in, (uint32_t)depth, sizeof(job), cfg->topo, node, err) ||
            mg_ring_init(&w->out, (uint32_t)depth, p->result_bytes, cfg->topo, node, err) ||
            !(w->ctx = mg_bshuf_ctx_new(2, cfg->impl, err))) {
            destroy(p);
            return NULL;
        }
        if (cfg->lz4_acceleration > 0)
            mg_bshuf_ctx_set_acceleration(w->ctx, cfg->lz4_acceleration);
    }
    int bad = 0;
    for (int i = 0; i < p->nw && !bad; i++) {
        bad = pthread_create(&p->w[i].th, NULL, worker_main, &p->w[i]);
        p->w[i].started = !bad;
    }
    if (!bad)
        p->writer_started = !(bad = pthread_create(&p->writer, NULL, writer_main, p));
    if (!bad)
        p->collector_started = !(bad = pthread_create(&p->collector, NULL, collector_main, p));
    if (bad) {
        /* cannot happen in practice; refuse cleanly rather than half-run */
        mg_error_set(err, MG_ESYS, "cannot start pipeline threads");
        if (p->cfg.stop)
            atomic_store(p->cfg.stop, 1);
        return NULL; /* threads already started keep their memory: a leak on a fatal path */
    }
    return p;
}

int mg_pipeline_finish(mg_pipeline *p, mg_pipeline_stats *final_stats, mg_error *err)
{
    pthread_join(p->collector, NULL);
    for (int i = 0; i < p->nw; i++)
        pthread_join(p->w[i].th, NULL);
    pthread_join(p->writer, NULL);
    if (final_stats)
        mg_pipeline_get_stats(p, final_stats);
    int rc = 0;
    if (p->failed) {
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
    s->bytes_raw = atomic_load(&p->raw);
    s->bytes_compressed = atomic_load(&p->comp);
    for (int i = 0; i < p->nw; i++) {
        s->queue_fill += mg_ring_fill(&p->w[i].in);
        s->queue_capacity += p->w[i].in.cap;
    }
    s->queue_fill_max = atomic_load(&p->fill_max);
}

int mg_pipeline_collector_done(mg_pipeline *p) { return atomic_load(&p->collector_done); }
