/* morgul/assembler.h - frames from packets.
 *
 * The assembler owns a pool of frame buffers ("slots"), each holding one
 * whole detector frame (all modules, raw 512 x 1024 words each).  Packets go
 * straight into their place, found from the link's module and interface and
 * the packet number, never from arrival order.
 *
 * Threads and ownership.  Each link is driven by exactly one thread (its
 * receiving thread, or the one replay thread for all links) through
 * mg_asm_push / mg_asm_tick / mg_asm_flush.  One collector thread calls
 * mg_asm_next_frame to take frames, in order, once every link has closed
 * them; any thread gives a frame's buffer back with mg_asm_release.
 * Nothing allocates after mg_asm_new.
 *
 * Evidence before trust.  No single packet moves a window, starts the run,
 * sets a module's alignment or starts an acquisition.  A link accepts a
 * packet directly only for a frame it has open or the frame right after its
 * newest one.  Anything else is a candidate: it is held (copied, or pointed
 * to with by_reference) until EVIDENCE packets have come one after another
 * on that link, of one frame number or of consecutive ones, with no accepted
 * packet in between.  Only then does the link act on them:
 *
 *  - a forward gap the time since the link's last packet allows at rate_hz
 *    (frames lost on the way): the link goes on there, the frames in
 *    between are missing on it;
 *  - the first numbering of the run, or of a module in the current
 *    acquisition: the link joins it (alignment below);
 *  - a counter that restarted or jumped further than the time allows: a new
 *    acquisition, but only if every link has been quiet for quiet_ns before
 *    the first of these packets (a detector is stopped to reset its
 *    counter; a stream that goes on elsewhere means the packets are someone
 *    else's).
 *
 * Candidates that never gather their evidence, or that fit nothing, are
 * counted as stray (per link) and never create a frame.
 *
 * Alignment.  An acquisition's numbering is that of the module whose link
 * first had evidence; a module whose frame numbers lie within the frame
 * buffers' reach of it takes them as they are (offset 0).  With
 * MG_ALIGN_AUTO a module whose numbers lie elsewhere (a module that ran other
 * acquisitions) is paired with the frame of the others that has the same
 * bunch id, or else the same timestamp, or else arrived closest in time;
 * the pairing is recorded and reported by module name.  With
 * MG_ALIGN_NUMBER such a module is not joined: its packets are counted as
 * stray and the module is reported.
 *
 * When a frame closes.  A link closes its frames itself: a frame once all
 * its expected packets arrived, every frame more than `reorder` frames
 * older than its newest one, and - when its socket is drained and nothing
 * came for frame_timeout_ns - every frame any link has seen.  A link that
 * lags behind the others keeps its frames open: frames close for
 * everybody only when the newest frame is `span` frames ahead of them
 * (span = slots - downstream, the frame buffers not kept for compression and
 * writing), which the links are asked to honour at their next packet or
 * tick.  Lagging links lose packets only beyond that (counted as lagged).
 *
 * Acquisitions and images.  Every acquisition's frames are handed on as
 * images 0, 1, ... of that acquisition: image i is its first frame + i.  A
 * frame of which nothing arrived between two frames that did is handed on as
 * missing (no packet, every word MG_WORD_MISSING) so that it keeps its place;
 * frames before an acquisition's first and after its last frame with data
 * are not frames at all.  max_frames counts images over all acquisitions.
 *
 * Nothing is dropped silently: every datagram ends up in exactly one
 * counter, and a frame with missing packets is handed on as partial with
 * its missing pixels set to MG_WORD_MISSING and the per-module packet count
 * and bitmask saying which packets came.
 */
#ifndef MORGUL_ASSEMBLER_H
#define MORGUL_ASSEMBLER_H

#include <stdatomic.h>
#include <stdint.h>

#include "morgul/detector.h"
#include "morgul/error.h"
#include "morgul/jungfrau.h"
#include "morgul/topology.h"

typedef enum mg_align { MG_ALIGN_AUTO = 0, MG_ALIGN_NUMBER = 1 } mg_align;

/* Packets of one numbering a candidate needs before a link acts on it. */
#define MG_ASM_EVIDENCE 8
/* Frames kept before the first frame of an acquisition (modules whose first
 * frame came a little earlier) and after its newest (stragglers). */
#define MG_ASM_MARGIN 16
/* Acquisitions one run can hold; packets of further ones are stray. */
#define MG_ASM_MAX_ACQ 1024

typedef struct mg_asm_config {
    const mg_detector *det;
    int reorder;            /* frames a link's packets may arrive out of order; default 16 */
    int slots;              /* frame buffers in all; default downstream + rate_hz x frame_timeout */
    int downstream;         /* of these, kept for compression and writing; default min(64, slots / 4) */
    mg_align align;
    int check_position;     /* refuse packets whose header row/column differ from the configuration */
    uint64_t max_frames;    /* hand on this many images in all; 0 = no limit */
    double rate_hz;         /* the detector's highest frame rate: how far numbers may advance in a given time;
                               default 2000 */
    uint64_t frame_timeout_ns; /* a drained link silent this long closes its frames; default 100 ms */
    uint64_t quiet_ns;      /* silence on every link before a counter reset or jump is believed; default 2 ms */
    int readnrows;          /* partial readout: rows read per module around its centre (8..512, multiple of 8);
                               0 = 512, all.  Only the packets of those rows are expected */
    mg_topology *topo;      /* where buffers are placed (may be NULL) */
    int numa_node;          /* NUMA node for the buffers, -1 = no preference */
    const int *module_node; /* or per module (nmodules entries, may be NULL): each module's rows of every
                               frame buffer on the node of the threads that receive it */
    int lossless;           /* offline sources: wait for buffers instead of counting overruns */
    int by_reference;       /* offline sources whose packets stay in memory: keep pointers, copy nothing */
    _Atomic int *stop;      /* may be NULL: raised, mg_asm_new stops touching memory and fails */
    /* frame buffers the caller keeps between assemblers (NULL: made and freed here): used when they hold
     * slots x modules x 1 MiB and the modules share one node (module_node all equal or NULL); left as
     * they are at mg_asm_free.  Their old contents do no harm: every packet a frame lacks is overwritten */
    void *pool;
    size_t pool_bytes;
} mg_asm_config;

/* Per-link counters.  Written only by the link's thread; read by others as a
 * snapshot (mg_asm_link_stats), so progress lines can be printed live. */
typedef struct mg_link_stats {
    uint64_t packets;        /* accepted into a frame */
    uint64_t duplicates;     /* same packet again for an open frame */
    uint64_t late;           /* for a frame this link had closed (reordered beyond `reorder`, or after its
                                silence timeout) */
    uint64_t lagged;         /* for a frame closed because the other links were `span` frames ahead */
    uint64_t out_of_order;   /* arrived after a later packet of this link */
    uint64_t stray;          /* fitted no frame: no evidence, or a numbering no acquisition has */
    uint64_t after_end;      /* beyond the max_frames images, or after the end of their acquisition */
    uint64_t overrun;        /* no free buffer: the stages downstream were behind */
    uint64_t rejected[MG_PACKET_VERDICT_COUNT]; /* refused datagrams by reason */
    uint64_t kernel_drops;   /* set by the receiver from SO_RXQ_OVFL */
    uint64_t bytes;          /* datagram bytes seen, accepted or not */
    uint64_t first_ns, last_ns; /* arrival of the first and the newest accepted packet (0: none) */
} mg_link_stats;

/* What a frame says about one module. */
typedef struct mg_module_frame {
    uint64_t frame_number;    /* the module's own frame number (expected one if no packet came) */
    uint64_t bunch_id;
    uint64_t timestamp;
    uint32_t exposure_length;
    uint32_t daq_info;
    uint16_t module_id;       /* the header's module id (0 if no packet came) */
    uint16_t packets;         /* packets received, of 128 */
    uint8_t mask[16];         /* bit q%8 of byte q/8: module packet q arrived (rows 4q..4q+3) */
} mg_module_frame;

/* A frame handed to the collector. */
typedef struct mg_frame {
    int64_t index;            /* image within its acquisition, 0 = its first frame */
    int acquisition;          /* 0, 1, ... */
    int slot;
    int complete;             /* every expected packet of every module arrived */
    int missing;              /* not a packet arrived (handed on to keep its place) */
    uint64_t arrival_ns;      /* when its first packet arrived, on the clock of mg_asm_push (0: none did) */
    uint16_t *data;           /* nmodules x 512 x 1024 words, module by module; NULL with by_reference, or
                                 when the modules' rows live on different NUMA nodes (see module_data) */
    uint16_t *const *module_data; /* each module's 512 x 1024 words (NULL entries with by_reference) */
    const uint16_t *const *blocks; /* nblocks pointers to 4 rows (4096 words) each: module m's rows
                                      4q..4q+3 at [m * 128 + q]; missing packets point to MG_WORD_MISSING words */
    int nblocks;
    mg_module_frame *modules; /* nmodules entries */
} mg_frame;

typedef struct mg_asm_totals {
    uint64_t frames_complete, frames_partial;
    uint64_t frames_missing;  /* handed on without a packet (keeping their place) */
    uint64_t packets_missing; /* expected packets that did not come, in frames handed on */
    uint64_t images;          /* frames handed on, all acquisitions */
    uint64_t after_end;       /* packets of frames past max_frames found by the collector */
    uint64_t max_skew_ns;     /* the most the links' first packets of one frame were apart: how long a frame
                                 waited for its slowest link (a delayed module, a stalled receiving thread) */
    int acquisitions;
} mg_asm_totals;

/* How a module's frames were paired with the acquisition's numbering. */
typedef enum mg_pairing {
    MG_PAIRED_NONE = 0,   /* no evidence from this module in the acquisition */
    MG_PAIRED_NUMBER,     /* its frame numbers are the acquisition's */
    MG_PAIRED_BUNCH,      /* by equal bunch id */
    MG_PAIRED_TIMESTAMP,  /* by equal timestamp */
    MG_PAIRED_ARRIVAL,    /* by arrival time */
    MG_PAIRED_REFUSED,    /* its numbers lie elsewhere and --align number: not joined */
} mg_pairing;

/* One acquisition (a counter restart or jump begins the next). */
typedef struct mg_acq_info {
    uint64_t images;                      /* handed on so far */
    uint64_t complete, partial, missing;  /* of those */
    int64_t offset[MG_MAX_MODULES];       /* module frame number - acquisition frame number */
    mg_pairing pairing[MG_MAX_MODULES];
    uint64_t first_number, last_number;   /* acquisition numbering of its first and last image */
    int64_t skipped;                      /* frame numbers between the previous acquisition's last image and
                                             this one's first when they continue upward (-1: restarted) */
} mg_acq_info;

typedef struct mg_assembler mg_assembler;

mg_assembler *mg_asm_new(const mg_asm_config *cfg, mg_error *err);
void mg_asm_free(mg_assembler *a);

/* Offers one datagram of `len` bytes to `link`, which arrived at t_ns
 * (nanoseconds on any clock the caller keeps to for the whole run: the
 * kernel's receive time, or a capture's time stamps).  Every datagram ends
 * up accepted, held as a candidate, or counted (refused by reason,
 * duplicate, late, stray, overrun ...).  Returns 0, or with `lossless` set,
 * MG_ASM_RETRY when the frame's buffer is still busy downstream: nothing was
 * counted, and the caller (an offline source) offers it again later.  Link
 * thread only. */
#define MG_ASM_RETRY 1
int mg_asm_push(mg_assembler *a, int link, const void *buf, size_t len, uint64_t t_ns);

/* Offline sources (replay): as mg_asm_push, with `frame_add` added to the
 * packet's frame number (replaying a capture again continues its
 * numbering).  With cfg.by_reference the pixels are not copied: `buf` must
 * stay valid and unchanged until the frame is released. */
int mg_asm_push_offline(mg_assembler *a, int link, const void *buf, size_t len, uint64_t t_ns, uint64_t frame_add);

/* Housekeeping for a link whose socket has just been found empty (or that
 * an offline source has no packet for): now_ns, on the same clock, is a time
 * before which every datagram of the link has been offered (a receiver takes
 * it before the read that found the socket empty).  Honours the others'
 * request to close lagging frames and, after frame_timeout_ns without a
 * packet, closes its frames in order up to the first that another link
 * began within frame_timeout_ns before now_ns (that one may still come whole
 * from this link: a detector that paused and goes on, read by this link's
 * thread a little later than by another's); frames nobody took a packet of
 * close with the rest.  Link thread only; call it at least every few
 * milliseconds. */
void mg_asm_tick(mg_assembler *a, int link, uint64_t now_ns);

/* End of data for this link: its held candidates count as stray and it
 * closes all its frames.  Call once per link, after which the link takes no
 * packets. */
void mg_asm_flush(mg_assembler *a, int link);

/* Collector: takes the next image if every link has closed it.  Returns 1
 * and fills *f, 0 if none is ready yet, or -1 when no image will ever come
 * (all links flushed and everything handed on, or max_frames reached).
 * Collector thread only. */
int mg_asm_next_frame(mg_assembler *a, mg_frame *f);

/* Gives the frame's buffer back.  Any thread; once per frame. */
void mg_asm_release(mg_assembler *a, const mg_frame *f);

/* Counter snapshots (any thread; may be a few packets stale). */
void mg_asm_link_stats(const mg_assembler *a, int link, mg_link_stats *out);
/* The datagrams refused for any reason (the sum of rejected[], MG_PACKET_OK excepted). */
uint64_t mg_link_stats_rejected(const mg_link_stats *s);
void mg_asm_get_totals(const mg_assembler *a, mg_asm_totals *out);
/* Acquisition i (0 <= i < totals.acquisitions); collector's view. */
void mg_asm_acquisition(const mg_assembler *a, int i, mg_acq_info *out);
/* Receiver: records the kernel's drop count for a link (link thread only). */
void mg_asm_set_kernel_drops(mg_assembler *a, int link, uint64_t drops);
/* Frames currently held (being assembled or downstream), for queue fill. */
int mg_asm_slots_in_use(const mg_assembler *a);
int mg_asm_slot_count(const mg_assembler *a);
int mg_asm_modules(const mg_assembler *a);
int mg_asm_link_count(const mg_assembler *a);
/* Packets a module sends per frame with the configured readout (128 unless
 * readnrows is set). */
unsigned mg_asm_expected_packets(const mg_assembler *a);
/* Module packets q expected with `readnrows` rows read (0 or 512: all):
 * bit q%8 of byte q/8 of mask[16]; returns their number. */
unsigned mg_readout_mask(int readnrows, uint8_t mask[16]);

#endif
