/* morgul/run.h - a run from start to valid files: a packet source (live UDP
 * sockets or a pcap replay) feeding the assembler, the pipeline and the raw
 * writer, with live progress and an honest summary.
 *
 * Set-up order: the detector description and the options are checked, the
 * sockets are bound, the frame buffers (whose size follows from rate_hz and
 * frame_timeout_ms, printed) and the calibration are made ready, and only
 * then are output directories and files created; a run that cannot start
 * leaves nothing behind.  A raised *stop ends the set-up too.
 *
 * A run ends when max_frames images are done, when nothing arrived for
 * idle_timeout seconds (counted from when the sockets listen, or from the
 * last packet), when *stop is raised (SIGINT/SIGTERM/SIGHUP), when a replay
 * reaches the end of its file, or on a fatal error (a full disk, say).  In
 * every case the links are flushed, the frames already assembled are written
 * and the files closed, so the output is always valid; the summary and the
 * master file's /run group say exactly what was received and lost, and
 * mg_run_outcome turns the summary into an exit status.
 */
#ifndef MORGUL_RUN_H
#define MORGUL_RUN_H

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "morgul/assembler.h"
#include "morgul/bitshuffle.h"
#include "morgul/detector.h"
#include "morgul/error.h"
#include "morgul/geometry.h"

struct mg_run_summary;
struct mg_acq_info;
struct mg_image_written;
struct mg_topology;

/* What a caller keeps between runs (the service) so that a run starts in
 * milliseconds: the machine's topology, its threads, and the frame buffers, made and
 * touched once on the node of the first link's receiving thread; and the
 * last corrected run's calibration with its conversion tables.  A run
 * given them (cfg->kept) uses the buffers when they are large enough and
 * its modules share one node (else it makes its own, as without), runs its
 * receiving, compressing and collecting on the kept threads, reuses
 * the tables when its calibration is the same file, unchanged since (device,
 * inode, size, modification time), at the same energy and unit, and leaves
 * its own tables for the next run otherwise (a run-time pedestal changes
 * the tables: such a run neither takes nor leaves them).  One run at a time
 * may use a mg_run_kept. */
struct mg_kept_tables;
typedef struct mg_run_kept {
    struct mg_topology *topo;
    void *pool;
    size_t pool_bytes;
    struct mg_kept_tables *tables; /* NULL until a corrected run left its tables */
    struct mg_threads *threads;    /* see morgul/threads.h */
} mg_run_kept;

/* The images a run writes (see mg_run_config.on_images). */
typedef struct mg_run_images {
    int corrected;              /* 0: raw frames, modules stacked (uint16) */
    int type;                   /* corrected: mg_out_type */
    int width, height;          /* of one image: raw 1024 x 512 per module */
    const uint32_t *pixel_mask; /* corrected: width x height NXmx mask bits; valid during the call */
} mg_run_images;

typedef struct mg_run_config {
    mg_detector det;
    /* assembly (morgul/assembler.h) */
    int reorder;                /* frames a link's packets may be reordered over; 0: 16 */
    int buffer_frames;          /* frame buffers; 0: from rate_hz x frame_timeout_ms + 64 */
    double rate_hz;             /* the detector's highest frame rate; 0: the description's, else 2000 */
    double frame_timeout_ms;    /* 0: 100 */
    int readnrows;              /* partial readout: rows per module (8..512); 0: the description's, else all */
    mg_align align;
    int check_position;
    uint64_t max_frames;        /* images in all; 0 = no limit */
    /* output */
    const char *output;         /* prefix; NULL = no files (counting only) */
    int no_compress;            /* with output NULL: receive and assemble only, no compression */
    int overwrite;
    uint64_t frames_per_file;
    int workers;                /* 0: mg_topology_default_workers() */
    mg_bshuf_impl impl;
    int lz4_acceleration;       /* 0 = default */
    /* threads */
    const char *topology;       /* hwloc XML or synthetic, NULL = this machine */
    const char *cpus;           /* explicit cores */
    int no_pin;
    /* ending and reporting */
    double idle_timeout;        /* seconds, 0 = wait for ever */
    int progress;               /* a line per second on `log` */
    int quiet;
    FILE *log;                  /* messages and progress; stderr if NULL */
    _Atomic int *stop;          /* raised by a signal handler; may be NULL */
    _Atomic int *ready;         /* set once every port listens (may be NULL) */
    const char *ready_file;     /* written (atomically) once every port listens; NULL: none */
    /* whoever watches a run in progress (the service's status and metrics): called on the run's control
     * thread about every 100 ms, with the counters so far in the form of the summary (queue_fill_max is the
     * queue fill now, seconds count from listening, stopped_by is 0); the pointer is valid during the call */
    void (*observe)(void *ctx, const struct mg_run_summary *now);
    void *observe_ctx;
    /* whoever takes the images as they are written (the service's stream): on_images once, when the run
     * listens, with their shape; written for every image after its chunk is in the files, in order, on the
     * writing thread - it must not block (morgul/pipeline.h) */
    void (*on_images)(void *ctx, const struct mg_run_images *shape);
    void (*written)(void *ctx, const struct mg_image_written *w);
    void *written_ctx;
    /* a counter restart began acquisition `acq` (1, 2, ...): called on the writing thread after the last
     * image of the acquisition that ended (`ended`, its image counters) and before the new one's first;
     * write into `output` (cap bytes) the path prefix of the new acquisition's files, or leave it empty for
     * <output>_acqNNN.  The service with --auto makes each acquisition a run of its own this way, on the
     * same receiving: no datagram is missed between them. */
    void (*acquisition_begins)(void *ctx, int acq, const struct mg_acq_info *ended, char *output, size_t cap);
    void *acquisition_ctx;
    mg_run_kept *kept;          /* NULL: the run opens the topology and makes its buffers and tables */
    /* live receiving */
    const int *sockets;         /* bound UDP sockets, one per link in link order, that the caller keeps between
                                   runs (the service); the run reads them and leaves them open; kernel drops are
                                   counted from the run's start.  NULL: the run binds its own */
    int rcvbuf_mb;              /* socket receive buffer, MiB; default 256 */
    int batch;                  /* datagrams per recvmmsg; default 64 */
    /* replay */
    const char *pcap;
    int realtime;               /* pace by the capture's time stamps */
    double speed;               /* with realtime: 2 = twice as fast */
    int loops;                  /* replay the capture this many times (frame numbers continue); 0 = 1 */
    /* inline correction: with a calibration file, frames are converted while they
     * arrive and written as NXmx (morgul/nxmx.h) */
    const char *calibration;    /* NULL: raw frames */
    double energy_kev;          /* photon energy (required with a calibration) */
    int kev;                    /* keV instead of photons */
    int out_type;               /* mg_out_type */
    mg_geometry_config geometry; /* fill with mg_geometry_defaults first */
    double distance_mm;         /* 0: 100 mm */
    double beam_x, beam_y;      /* NaN: the image centre */
    int rotation;               /* omega per frame: start + i * increment (degrees) */
    double omega_start, omega_increment;
    const char *sample_name, *source_name; /* NXmx sample and source names; NULL: the output's name, "unknown" */
    const char *command_line;   /* recorded in the master files; NULL: none */
    /* run-time pedestal (morgul/runped.h), with a calibration: the G0 pedestal
     * from the run's first runtime_frames frames, or (0) from the frames before
     * signal shows, searched in the first runtime_max (0: 200) */
    int runtime;
    uint64_t runtime_frames, runtime_max;
    /* dark runs: frames go into these accumulators (one per module, or per
     * module and storage cell with pedestal_cells > 1) and nothing is written
     * (morgul/pipeline.h says how a frame's gain and cell are found) */
    struct mg_pedestal_acc *const *pedestal;
    int pedestal_gain, pedestal_frames, pedestal_loops, pedestal_cells;
} mg_run_config;

#define MG_RUN_ACQ_KEPT 64 /* acquisitions the summary describes one by one */

typedef struct mg_run_summary {
    int started;                /* set-up done: listening (live) or reading the capture; 0: nothing to sum up */
    int nlinks, nmodules;
    char module_names[MG_MAX_MODULES][MG_NAME_MAX];
    unsigned expected_packets;  /* per module and frame (readout) */
    uint64_t max_frames;        /* asked for, 0 = no limit */
    int acquisitions;
    mg_acq_info acq[MG_RUN_ACQ_KEPT];
    mg_link_stats link[MG_MAX_LINKS];
    mg_link_stats total;        /* sums over links */
    mg_asm_totals frames;
    uint64_t frames_written, frames_discarded;
    uint64_t frames_synced;     /* with files: frames known to be on disk (a crash keeps them) */
    uint64_t frames_unwritten;  /* with files: images handed on that did not reach them (a loss, never silent) */
    uint64_t frames_dark;       /* dark runs: complete frames added to the pedestals */
    uint32_t dark_exposure;     /* ... the first one's exposure length (0.1 us), 0 if none */
    uint64_t frames_other_cell; /* dark runs: frames of a storage cell beyond pedestal_cells, left out */
    uint32_t cells_seen;        /* dark runs: bit c set when a frame named storage cell c */
    uint64_t uncalibrated;      /* corrected: module-frames of a storage cell the calibration lacks (invalid) */
    uint64_t bytes_raw, bytes_compressed;
    uint64_t packets_lost;      /* expected but missing in the images, + those of the frames missing at the end */
    uint64_t packets_expected;  /* in the images handed on and the frames missing at the end */
    uint64_t frames_missing_at_end; /* with max_frames: never seen because the run ended first */
    uint64_t unexpected_port;   /* replay: datagrams on ports outside the detector */
    uint64_t capture_skipped;   /* replay: records that were not UDP, fragments, truncated */
    uint32_t queue_fill_max, queue_capacity;
    double seconds;             /* from the first packet to the end (0: no packet) */
    double setup_seconds;       /* from the start to listening (live) or the first record (replay) */
    double cpu_seconds;         /* user + system of the whole process */
    int stopped_by;             /* why the run ended: see mg_run_end_reason */
    char master[4200];          /* the first acquisition's master file */
    char last_master[4200];     /* the last one's */
} mg_run_summary;

enum { MG_END_FRAMES = 1, MG_END_IDLE, MG_END_SIGNAL, MG_END_EOF, MG_END_ERROR };
const char *mg_run_end_reason(int stopped_by);

/* Exit statuses of the commands that run (documented in docs/user-guide.md). */
enum {
    MG_EXIT_OK = 0,       /* received what was asked for, nothing lost or refused */
    MG_EXIT_FAILED = 1,   /* could not run, or stopped by an error (the files hold what came before) */
    MG_EXIT_USAGE = 2,    /* bad options or configuration */
    MG_EXIT_LOSS = 3,     /* ran, but lost more than max_loss of the packets, or ended before the frames asked
                             for, or received no frame at all */
    MG_EXIT_REFUSED = 4,  /* nothing lost, but datagrams were refused or stray (something else sends to the
                             detector's ports, or a module's numbering did not fit) */
};

/* The exit status a finished run earns with `max_loss` (a fraction of the
 * expected packets that may be lost and still count as complete), and the
 * verdict in words (one line) into `why`. */
int mg_run_outcome(const mg_run_summary *s, int rc, double max_loss, char *why, size_t cap);
/* The datagrams a run did not take: refused, stray, and (replay) on ports outside the detector. */
uint64_t mg_run_refused(const mg_run_summary *s);

/* Binds link `link`'s UDP socket the way a live run does (address and port
 * from the detector description, receive buffer cfg->rcvbuf_mb, kernel time
 * stamps and drop counts, a 2 ms receive timeout); warns on `log` when the
 * kernel caps the buffer.  For callers that keep sockets (cfg->sockets). */
int mg_run_bind(const mg_run_config *cfg, int link, FILE *log, int *fd, mg_error *err);

/* Makes k for runs of cfg's detector, rate, frame timeout and buffer count
 * (the frame buffers cfg's runs would make; refused when beyond the
 * machine's available memory).  mg_run_kept_free gives them back. */
int mg_run_keep(const mg_run_config *cfg, mg_run_kept *k, mg_error *err);
void mg_run_kept_free(mg_run_kept *k);

/* Live: receives on the detector's UDP ports. */
int mg_run_receive(const mg_run_config *cfg, mg_run_summary *sum, mg_error *err);

/* Offline: feeds cfg->pcap through the same assembly and writing. */
int mg_run_replay(const mg_run_config *cfg, mg_run_summary *sum, mg_error *err);

/* Retransmits a capture's UDP payloads to `dest` ("HOST" keeps each
 * datagram's port; "HOST:PORT" moves the capture's lowest port to PORT and
 * the others by the same offset), as fast as possible or paced by the
 * capture's time stamps.  Prints what it sent to `log`. */
int mg_replay_send(const char *pcap, const char *dest, int realtime, double speed, FILE *log, _Atomic int *stop,
                   mg_error *err);

/* Prints the summary block a person reads at the end of a run: first why it
 * ended and the verdict with each cause of loss and its remedy, then the
 * acquisitions, the counters and the speed. */
void mg_run_print_summary(const mg_run_summary *s, int rc, double max_loss, FILE *out);

/* Fills `det` from what a capture holds: one link per UDP port that carries
 * JUNGFRAU packets; two interfaces per module if no packet number exceeds 63;
 * module positions from the header rows and columns.  Prints what it found
 * to `log` (may be NULL). */
int mg_detector_from_capture(mg_detector *det, const char *pcap, FILE *log, mg_error *err);

#endif
