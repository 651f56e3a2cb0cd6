/* morgul/sizing.h - what a detector at a frame rate asks of a server, and
 * whether a machine (or another machine's topology) gives it.
 *
 * A cost profile holds, per module-frame (one module's 1 MiB frame), the CPU
 * time and the memory traffic of each stage on one core: receiving and
 * assembling its packets, converting to each output type (with the layout),
 * compressing raw or corrected images, and writing the chunks.  `morgul
 * bench profile` measures one on the machine it runs on and saves it
 * (mg_cost_profile_default_path); without one, the built-in profile holds
 * the figures measured on the development machine (docs/performance.md).
 *
 * From a profile, a detector description, a rate and the output, mg_size
 * works out: the fraction of a core each link's receiving thread needs
 * (every link gets a core of its own, as the thread plan gives it; no link
 * can need more than one); the cores the compressing workers need (all
 * stages after assembly, spread over the workers, on the cores left or
 * sharing the receivers'); the machine keeps up when every link has a core
 * and the CPU time in all fits its cores; memory for the frame buffers (on the receivers' nodes) and
 * the conversion tables (on every node with workers); memory bandwidth;
 * network per link; and against a topology: whether it keeps up and with
 * what margin, and if not, how many such servers, each owning which modules,
 * would. */
#ifndef MORGUL_SIZING_H
#define MORGUL_SIZING_H

#include <stdio.h>

#include "morgul/detector.h"
#include "morgul/error.h"
#include "morgul/topology.h"

enum {
    MG_COST_RECEIVE,       /* socket receive and assembly of a module-frame's 128 packets */
    MG_COST_CONVERT_INT16, /* conversion to photons with the layout, per output type */
    MG_COST_CONVERT_INT32,
    MG_COST_CONVERT_FLOAT32,
    MG_COST_COMPRESS_RAW,  /* bitshuffle/LZ4 of a raw module-frame */
    MG_COST_COMPRESS_INT16, /* ... of a corrected one, per output type */
    MG_COST_COMPRESS_INT32,
    MG_COST_COMPRESS_FLOAT32,
    MG_COST_WRITE,         /* a compressed chunk into the files */
    MG_COST_COUNT
};
extern const char *const mg_cost_names[MG_COST_COUNT]; /* "receive", "convert_int16", ... (the JSON keys) */

typedef struct mg_cost_profile {
    char machine[256];              /* what the figures were measured on */
    double ns[MG_COST_COUNT];       /* CPU time per module-frame, one core */
    double bytes[MG_COST_COUNT];    /* memory read and written per module-frame */
} mg_cost_profile;

/* The figures measured on the development machine (a 2-core VM;
 * docs/performance.md says how). */
void mg_cost_profile_builtin(mg_cost_profile *p);

/* A profile as JSON: {"machine": ..., "stages": {"receive": {"ns": ...,
 * "bytes": ...}, ...}}.  Reading needs every stage, with positive figures. */
int mg_cost_profile_write(const char *path, const mg_cost_profile *p, mg_error *err);
int mg_cost_profile_read(const char *path, mg_cost_profile *p, mg_error *err);
/* Where `bench profile` saves and `plan` looks: $MORGUL_PROFILE, else
 * $XDG_CONFIG_HOME/morgul/profile.json, else ~/.config/morgul/profile.json. */
const char *mg_cost_profile_default_path(char *buf, size_t cap);

typedef struct mg_sizing_input {
    const mg_detector *det;
    double rate_hz;             /* frames per second of every module */
    int corrected;              /* converted while received */
    int type;                   /* mg_out_type when corrected */
    double frame_timeout_ms;    /* 0: 100 (sizes the frame buffers, as a run does) */
    int buffer_frames;          /* 0: rate x timeout + 64 */
} mg_sizing_input;

#define MG_SIZING_NOTES 8

typedef struct mg_sizing {
    int nmodules, nlinks;
    double module_frames_per_s;
    double link_load;           /* fraction of a core the busiest link's receiver needs */
    double worker_cores;        /* cores the compressing workers need in all */
    double cores_needed;        /* CPU time in all, in cores: the receivers' and the workers' */
    int cores;                  /* the topology's */
    int workers_available;      /* cores free of receiving threads (workers share the others) */
    double margin;              /* cores / cores_needed (keeps up: >= 1, and a core for every link) */
    int keeps_up;
    double buffer_bytes;        /* frame buffers, on the receivers' nodes */
    double table_bytes;         /* conversion tables, per node with workers */
    int nodes;                  /* NUMA nodes of the topology */
    double node_memory[MG_MAX_THREADS]; /* bytes each node has (0: unknown) */
    double node_need[MG_MAX_THREADS];   /* bytes each node needs (buffers spread by link, tables) */
    double memory_bandwidth;    /* bytes/s, every stage */
    double link_bytes_per_s;    /* network per link */
    int servers;                /* servers of this topology the detector needs (1: this one) */
    int modules_per_server;
    int nnotes;
    char notes[MG_SIZING_NOTES][400]; /* warnings and advice, in words */
} mg_sizing;

/* The sizing of `in` with profile `p` on topology `t` (NULL: this machine's
 * counts are not known; only the needs are worked out).  0, or MG_EINVAL for
 * a rate or detector that makes no sense. */
int mg_size(const mg_sizing_input *in, const mg_cost_profile *p, const mg_topology *t, mg_sizing *out,
            mg_error *err);
void mg_sizing_print(const mg_sizing *s, const mg_cost_profile *p, FILE *out);

/* The highest frame rate (per module, Hz) at which `in` keeps up on `cores`
 * cores by mg_size's arithmetic (in->rate_hz is not used): where the CPU time
 * in all, plus `extra_ns` of other work per module-frame on the same cores
 * (a sender on the same machine), reaches the cores, or where a receiving
 * thread is busy all the time - each link's, or with `one_reader` the one
 * thread that receives every link (a capture's replay).  0 on error. */
double mg_size_top_rate(const mg_sizing_input *in, const mg_cost_profile *p, int cores, double extra_ns,
                        int one_reader, mg_error *err);

#endif
