/* run_internal.h - private: the state a run shares between run.c and its
 * packet sources (receive.c, replay.c). */
#ifndef MORGUL_RUN_INTERNAL_H
#define MORGUL_RUN_INTERNAL_H

#include <stdatomic.h>
#include <sys/stat.h>

#include "morgul/calibration.h"
#include "morgul/convert.h"
#include "morgul/nxmx.h"
#include "morgul/pipeline.h"
#include "morgul/rawfile.h"
#include "morgul/run.h"
#include "morgul/threads.h"
#include "morgul/topology.h"

typedef struct run {
    const mg_run_config *cfg;
    FILE *log;
    mg_topology *topo;
    int topo_kept;             /* the caller's (cfg->kept): not closed at the end */
    mg_thread_plan plan;
    int pin;
    mg_assembler *a;
    mg_rawfile *out;
    mg_pipeline *pipe;
    _Atomic int stop_internal; /* raised by the pipeline on a fatal error */
    uint64_t t0, last_progress, last_bytes, last_observed;
    mg_run_summary *live;      /* the counters handed to cfg->observe (made at the first call) */
    uint64_t t_ready;          /* when the sockets listened (live) or replay began (monotonic ns) */
    uint64_t t_data;           /* replay: when its first record was taken (monotonic ns) */
    uint64_t unexpected_port, capture_skipped;
    /* inline correction */
    int tables_kept;           /* calib and node_tables are cfg->kept's: not freed at the end */
    int leave_tables;          /* ... or made here, to be left in cfg->kept at the end */
    struct stat cal_stat;      /* the calibration file as it was read */
    mg_calibration calib;
    mg_module_tables *node_tables[MG_MAX_THREADS]; /* per NUMA node: each module's tables there */
    const mg_module_tables *worker_tables[MG_MAX_THREADS]; /* per worker: its node's set */
    mg_geometry geom;
    uint32_t *pixel_mask;
    mg_nxmx_info nx;
    mg_frame_layout layout;
    struct mg_runped *runped;      /* run-time pedestal, or NULL */
    float *runtime_p0[MG_MAX_MODULES];
} run;

/* A corrected run's calibration and tables, left for the next run (morgul/run.h). */
struct mg_kept_tables {
    char path[4200];
    struct stat st;
    double energy_kev;
    int kev;
    mg_calibration calib;
    mg_module_tables *node_tables[MG_MAX_THREADS];
};

void mg_kept_tables_free(struct mg_kept_tables *kt);
uint64_t mg_now_ns(void);
/* lossless: offline source waiting for buffers; by_reference: its packets
 * stay in memory for the whole run (see mg_asm_config). */
int run_setup(run *r, const mg_run_config *cfg, int lossless, int by_reference, mg_error *err);
/* Every port listens (or replay begins): the readiness signals go out. */
void run_ready(run *r);
void run_progress(run *r, int force);
/* The counters of a master file's /run (at most 40): the run's packet
 * counters now and acquisition `acq`'s frame counters (qi). */
int run_counters(run *r, mg_run_summary *s, const mg_acq_info *qi, int acq, mg_counter *c);
/* Waits for the pipeline, closes the files, fills the summary, frees all. */
int run_finish(run *r, mg_run_summary *sum, int ended, int rc, mg_error *err);

#endif
