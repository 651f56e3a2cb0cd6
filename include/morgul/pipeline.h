/* morgul/pipeline.h - assembled frames to files: a collector thread and
 * compressing, writing workers.
 *
 *   collector thread   takes frames from the assembler in frame order and
 *                      deals them round-robin to the workers' input queues
 *   worker threads     compress a frame (bitshuffle/LZ4, one chunk per frame)
 *                      straight from its packet blocks, give the frame buffer
 *                      back, then wait for their turn and append the chunk
 *                      and its records to the file, so frames reach the file
 *                      in order and one HDF5 call runs at a time
 *
 * The input queues are mg_ring SPSC queues placed on the NUMA node of their
 * workers.  A write error stops the run (the stop flag is raised) and is
 * returned by mg_pipeline_finish; frames still arriving are counted, not
 * written, so the producers never block forever.
 */
#ifndef MORGUL_PIPELINE_H
#define MORGUL_PIPELINE_H

#include <stdatomic.h>
#include <stdint.h>

#include "morgul/assembler.h"
#include "morgul/bitshuffle.h"
#include "morgul/error.h"
#include "morgul/rawfile.h"
#include "morgul/topology.h"

/* An image as written (see mg_pipeline_config.written). */
typedef struct mg_image_written {
    int acquisition;             /* 0, 1, ... (counter restarts) */
    int64_t index;               /* image index within its acquisition */
    const void *chunk;           /* the bitshuffle/LZ4 chunk (HDF5 filter framing) */
    size_t bytes;
    const mg_module_frame *modules; /* per module: frame number, packets, bunch id, exposure, ... */
    int nmodules;
    uint64_t arrival_ns;         /* the frame's first packet (Unix ns), 0 if unknown */
} mg_image_written;

typedef struct mg_pipeline_config {
    mg_assembler *assembler;
    mg_rawfile *out;             /* NULL: compress and count, write nothing.  Each frame's arrival_ns,
                                    taken as Unix ns (the kernel's receive time stamps and a capture's
                                    record times are), goes to mg_rawfile_time */
    int no_compress;             /* with out NULL: not even compress (receiving alone, for comparisons) */
    /* the first frame of acquisition `acq` (> 0) is about to be written: called by the writing worker,
     * in order, after every frame of the acquisitions before; returns 0 or an error (which stops the run) */
    int (*acquisition)(void *ctx, int acq, mg_error *err);
    void *acquisition_ctx;
    /* every image once its chunk is in the files (or, with out NULL, compressed): called in image order by
     * the writing worker, holding the write turn, so it must not block (the stream hands the chunk on or
     * counts it as not streamed); `chunk` is valid during the call only */
    void (*written)(void *ctx, const struct mg_image_written *w);
    void *written_ctx;
    int workers;                 /* compression threads, default 1 */
    int queue_depth;             /* frames per worker queue, default 4 */
    mg_bshuf_impl impl;
    int lz4_acceleration;        /* 0 = MG_BSHUF_DEFAULT_ACCELERATION */
    mg_topology *topo;
    const mg_thread_plan *plan;  /* where to bind threads; NULL = do not bind */
    struct mg_threads *threads;  /* kept threads to run the workers and collector on; NULL: new threads */
    _Atomic int *stop;           /* raised on a fatal error so the receivers stop */
    /* corrected output: with tables, each frame is converted module by module
     * (blocks straight from the packets) with the tables of the storage cell
     * its DAQ info names (a module without tables for that cell gives invalid
     * pixels, counted), laid out by geom and compressed as `type`; without,
     * raw frames are written */
    const struct mg_module_tables *tables; /* one per module, or NULL */
    const struct mg_module_tables *const *worker_tables; /* or a set per worker (tables on its NUMA node) */
    const struct mg_geometry *geom;
    int type;                    /* mg_out_type */
    /* dark runs: with pedestal accumulators (one per module, or with
     * pedestal_cells > 1 one per module and storage cell: [m * cells + c])
     * frames are added to them instead of being compressed or written, by
     * all workers: without cells each worker but the first adds to a set of
     * its own (another module's worth of memory per worker) that is merged
     * into these when the pipeline finishes; with cells each cell's frames
     * go to one worker.  The sums are exact, so the result is the same
     * whatever worker took which frame.  A frame's gain: its DAQ info's
     * forcing bits if set, else the firmware pedestal mode's position
     * (pedestal_frames > 0), else pedestal_gain; its cell: its first
     * module's DAQ bits 8-11.  Partial frames, frames of a cell >=
     * pedestal_cells and frames whose modules name different cells are
     * left out and counted. */
    struct mg_pedestal_acc *const *pedestal;
    int pedestal_gain, pedestal_frames, pedestal_loops, pedestal_cells;
    /* run-time pedestal (morgul/runped.h): the collector holds the first
     * frames (at most runped_hold) and offers them to runped until it has
     * its pedestal (or the frames end), then calls runped_ready - which
     * updates the tables; no worker has a frame yet - and deals the held
     * frames and all later ones as usual.  The assembler needs runped_hold
     * frame buffers beyond its usual ones. */
    struct mg_runped *runped;
    int runped_hold;
    int (*runped_ready)(void *ctx, mg_error *err);
    void *runped_ctx;
} mg_pipeline_config;

typedef struct mg_pipeline_stats {
    uint64_t frames_written;
    uint64_t frames_discarded;   /* after a write error; with pedestals: partial frames left out */
    uint64_t frames_dark;        /* with pedestals: frames added to them */
    uint32_t dark_exposure;      /* ... the first one's exposure length (0.1 us), 0 if none */
    uint64_t frames_other_cell;  /* with pedestals: frames of a cell without accumulator, left out */
    uint32_t cells_seen;         /* bit c: a frame (complete, any module) named storage cell c */
    uint64_t uncalibrated;       /* corrected: module-frames of a storage cell the calibration lacks */
    uint64_t bytes_raw, bytes_compressed;
    uint32_t queue_fill, queue_capacity; /* frames waiting in worker queues now */
    uint32_t queue_fill_max;
} mg_pipeline_stats;

typedef struct mg_pipeline mg_pipeline;

mg_pipeline *mg_pipeline_start(const mg_pipeline_config *cfg, mg_error *err);

/* Waits until every frame the assembler will give has been written, stops the
 * threads and frees the pipeline (not the assembler or the file).  Returns
 * the first error of any stage. */
int mg_pipeline_finish(mg_pipeline *p, mg_pipeline_stats *final_stats, mg_error *err);

void mg_pipeline_get_stats(mg_pipeline *p, mg_pipeline_stats *s);

/* True once the assembler has said no more frames will come (max_frames
 * reached, or every link flushed) and the collector has passed that on. */
int mg_pipeline_collector_done(mg_pipeline *p);

#endif
