/* morgul/assembler.h - frames from packets.
 *
 * The assembler owns a pool of frame buffers ("slots"), each holding one
 * whole detector frame (all modules, raw 512 x 1024 words each).  Packets go
 * straight into their place, found from the link's module and interface and
 * the packet number, never from arrival order.
 *
 * Threads and ownership.  Each link is driven by exactly one thread (its
 * receiving thread, or the one replay thread for all links) through
 * mg_asm_push / mg_asm_tick / mg_asm_flush.  A link keeps a window of
 * `window` frames open: packets may arrive in any order within it; a packet
 * for a frame at or beyond base + window closes the oldest open frames; a
 * packet for a closed frame is counted as late and dropped.  One collector
 * thread calls mg_asm_next_frame to take frames, in frame order, once every
 * link has closed them; any thread gives a frame's buffer back with
 * mg_asm_release.  Nothing allocates after mg_asm_new.
 *
 * Frame numbering.  Frame numbers of different modules may disagree (a module
 * that ran an earlier acquisition).  With MG_ALIGN_FIRST each module's first
 * frame number seen becomes its frame index 0; with MG_ALIGN_NONE frame
 * numbers must agree and the first one seen is index 0.  Outputs record the
 * aligned index and every module's own frame number.
 *
 * Nothing is dropped silently: a frame with missing packets is handed on as
 * partial with its missing pixels set to MG_WORD_MISSING and the per-module
 * packet count and bitmask saying which; every refused datagram is counted
 * by reason.  Only a frame of which not one packet arrived is not handed on;
 * it is counted as missing.
 */
#ifndef MORGUL_ASSEMBLER_H
#define MORGUL_ASSEMBLER_H

#include <stdatomic.h>
#include <stdint.h>

#include "morgul/detector.h"
#include "morgul/error.h"
#include "morgul/jungfrau.h"
#include "morgul/topology.h"

typedef enum mg_align { MG_ALIGN_FIRST = 0, MG_ALIGN_NONE = 1 } mg_align;

typedef struct mg_asm_config {
    const mg_detector *det;
    int window;             /* frames open per link for reordering; default 16 */
    int slots;              /* frame buffers in all; default max(64, 4 * window) */
    mg_align align;
    int check_position;     /* refuse packets whose header row/column differ from the configuration */
    uint64_t max_frames;    /* hand on frame indices 0..max_frames-1 only; 0 = no limit */
    uint64_t max_jump;      /* refuse frame numbers this far beyond the newest; default 100000 */
    uint64_t frame_timeout_ns; /* mg_asm_tick closes a link's open frames after this long without a packet; default 100 ms */
    mg_topology *topo;      /* where buffers are placed (may be NULL) */
    int numa_node;          /* NUMA node for the buffers, -1 = no preference */
    const int *module_node; /* or per module (nmodules entries, may be NULL): each module's rows of every
                               frame buffer on the node of the threads that receive it */
    int lossless;           /* offline sources: wait for buffers instead of counting overruns */
    int by_reference;       /* offline sources whose packets stay in memory: keep pointers, copy nothing */
} mg_asm_config;

/* Per-link counters.  Written only by the link's thread; read by others as a
 * snapshot (mg_asm_link_stats), so progress lines can be printed live. */
typedef struct mg_link_stats {
    uint64_t packets;        /* accepted into a frame */
    uint64_t duplicates;     /* same packet again for an open frame */
    uint64_t late;           /* for a frame this link had already closed */
    uint64_t out_of_order;   /* arrived after a later packet of this link */
    uint64_t before_start;   /* frame number below the module's first one */
    uint64_t after_end;      /* frame index past max_frames */
    uint64_t overrun;        /* no free buffer: the stages downstream were behind */
    uint64_t rejected[MG_PACKET_VERDICT_COUNT]; /* refused datagrams by reason */
    uint64_t kernel_drops;   /* set by the receiver from SO_RXQ_OVFL */
    uint64_t bytes;          /* datagram bytes seen, accepted or not */
} mg_link_stats;

/* What a frame says about one module. */
typedef struct mg_module_frame {
    uint64_t frame_number;    /* the module's own frame number (expected one if no packet came) */
    uint64_t bunch_id;
    uint64_t timestamp;
    uint32_t exposure_length;
    uint32_t daq_info;
    uint16_t packets;         /* packets received, of 128 */
    uint8_t mask[16];         /* bit q%8 of byte q/8: module packet q arrived (rows 4q..4q+3) */
} mg_module_frame;

/* A frame handed to the collector. */
typedef struct mg_frame {
    int64_t index;            /* aligned frame index, 0 = first frame */
    int slot;
    int complete;             /* every packet of every module arrived */
    uint16_t *data;           /* nmodules x 512 x 1024 words, module by module; NULL with by_reference, or
                                 when the modules' rows live on different NUMA nodes (see module_data) */
    uint16_t *const *module_data; /* each module's 512 x 1024 words (NULL entries with by_reference) */
    const uint16_t *const *blocks; /* nblocks pointers to 4 rows (4096 words) each: module m's rows
                                      4q..4q+3 at [m * 128 + q]; missing packets point to MG_WORD_MISSING words */
    int nblocks;
    mg_module_frame *modules; /* nmodules entries */
} mg_frame;

typedef struct mg_asm_totals {
    uint64_t frames_complete, frames_partial, frames_missing;
    uint64_t packets_missing; /* in frames handed on, plus all of every missing frame */
    int64_t first_index, last_index; /* -1 if none */
} mg_asm_totals;

typedef struct mg_assembler mg_assembler;

mg_assembler *mg_asm_new(const mg_asm_config *cfg, mg_error *err);
void mg_asm_free(mg_assembler *a);

/* Offers one datagram of `len` bytes to `link` at time now_ns (CLOCK_MONOTONIC,
 * used for timeouts).  Every datagram ends up accepted or counted (refused by
 * reason, duplicate, late, overrun ...).  Returns 0, or with `lossless` set,
 * MG_ASM_RETRY when the frame's buffer is still busy downstream: nothing was
 * counted, and the caller (an offline source) offers it again later.  Link
 * thread only. */
#define MG_ASM_RETRY 1
int mg_asm_push(mg_assembler *a, int link, const void *buf, size_t len, uint64_t now_ns);

/* Offline sources (replay): as mg_asm_push, with `frame_add` added to the
 * packet's frame number (replaying a capture again continues its
 * numbering).  With cfg.by_reference the pixels are not copied: `buf` must
 * stay valid and unchanged until the frame is released. */
int mg_asm_push_offline(mg_assembler *a, int link, const void *buf, size_t len, uint64_t now_ns, uint64_t frame_add);

/* Housekeeping for a link with or without traffic: closes frames the
 * detector-wide window has passed and, after frame_timeout_ns without a
 * packet, every frame some link has seen.  Link thread only; call it at least
 * every few milliseconds. */
void mg_asm_tick(mg_assembler *a, int link, uint64_t now_ns);

/* End of data for this link: closes all its frames up to the newest any link
 * has seen.  Call once per link, after which the link takes no packets. */
void mg_asm_flush(mg_assembler *a, int link);

/* Collector: takes the next frame in order if every link has closed it.
 * Returns 1 and fills *f, 0 if none is ready yet, or -1 when no frame will
 * ever come (all links flushed and everything handed on, or max_frames
 * reached).  Collector thread only. */
int mg_asm_next_frame(mg_assembler *a, mg_frame *f);

/* Gives the frame's buffer back.  Any thread; once per frame. */
void mg_asm_release(mg_assembler *a, const mg_frame *f);

/* Counter snapshots (any thread; may be a few packets stale). */
void mg_asm_link_stats(const mg_assembler *a, int link, mg_link_stats *out);
void mg_asm_get_totals(const mg_assembler *a, mg_asm_totals *out);
/* Receiver: records the kernel's drop count for a link (link thread only). */
void mg_asm_set_kernel_drops(mg_assembler *a, int link, uint64_t drops);
/* Frames currently held (being assembled or downstream), for queue fill. */
int mg_asm_slots_in_use(const mg_assembler *a);
int mg_asm_slot_count(const mg_assembler *a);
int mg_asm_modules(const mg_assembler *a);
int mg_asm_link_count(const mg_assembler *a);
/* Newest aligned frame index seen by any link, -1 if none. */
int64_t mg_asm_newest(const mg_assembler *a);
/* Frame number of the module's frame index 0, or -1 if none seen yet. */
int64_t mg_asm_module_first(const mg_assembler *a, int module);

#endif
