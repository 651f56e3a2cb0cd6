/* morgul/service.h - `morgul serve`: a persistent receiver driven over HTTP.
 *
 * A service owns one detector.  It binds the detector's UDP sockets once and
 * keeps them between runs, so nothing sent while it is up is refused by the
 * kernel (ICMP port unreachable) and a run starts without binding anything.
 * Between runs it drains the sockets every 50 ms and counts what it threw
 * away (packets_unarmed): nothing from before a run enters it.  With
 * auto_arm, data arriving unarmed starts a run instead (it is not drained)
 * and the run ends after auto_idle seconds of silence.
 *
 * Every run is a run of morgul/run.h (the code `morgul receive` uses) with
 * output prefix DATA_DIR/NAME: NAME given on arming or the next number
 * ("run_000001", ...).  Its plan, warnings and summary go to DATA_DIR/NAME.log.
 * The run log DATA_DIR/runs.jsonl gets a line when a run starts and one when
 * it ends (reason, verdict, exit status, counters, files), each written and
 * synced before the request that caused it is answered.  A service started
 * over a run log whose last run never ended (the service was killed) finishes
 * that run's files (mg_rawfile_repair), logs its end as "interrupted", and
 * is ready.
 *
 * Thread safety: every function may be called from any thread (the HTTP
 * server calls them from one thread per connection); a mutex guards the
 * state, and no call holds it while a run sets up or ends.
 */
#ifndef MORGUL_SERVICE_H
#define MORGUL_SERVICE_H

#include <jansson.h>
#include <stdio.h>

#include "morgul/error.h"
#include "morgul/run.h"

typedef struct mg_service mg_service;

typedef struct mg_service_config {
    mg_run_config run;     /* the detector and every run's defaults; output, max_frames, stop, observe and
                              sockets are the service's, set per run */
    const char *data_dir;  /* made if missing */
    int auto_arm;          /* a run starts when data arrives unarmed */
    double auto_idle;      /* seconds of silence that end an automatic run; 0: 2 */
    double min_free;       /* bytes that must stay free besides a run's frames; 0: 1 GiB */
    const char *stream;    /* ZeroMQ endpoint of the image stream (morgul/stream.h), NULL: none */
    FILE *log;             /* the service's own messages (arming, ending, refusals); stderr if NULL */
} mg_service_config;

/* HTTP-like outcome of a request: status 200..599 and a JSON body (owned by
 * the caller) that is {"error": "..."} for 4xx/5xx. */
typedef struct mg_reply {
    int status;
    json_t *body;
} mg_reply;

/* Binds the sockets, makes the data directory, reads the run log and
 * finishes an interrupted run.  NULL with err set when a port is taken, the
 * directory cannot be made or the run log cannot be read. */
mg_service *mg_service_open(const mg_service_config *cfg, mg_error *err);

/* Starts a run with `settings` (a JSON object; NULL = all defaults):
 *   name (string: letters, digits, '.', '_', '-', not starting with '.'),
 *   frames (integer >= 0, 0 = until disarmed or idle), idle_timeout (seconds),
 *   max_loss (fraction), frames_per_file, sample (string),
 *   corrected (bool), calibration (path of a calibration file), energy_kev,
 *   type ("int16", "int32", "float32"), distance_mm.
 * Unknown fields, wrong types and values out of range give 400; arming while
 * a run is on gives 409, a name already used 409, too little free space 507
 * (free space below min_free plus, with frames, the frames uncompressed),
 * a run that cannot set up (a calibration that does not fit) 422; in every
 * such case nothing changes.  Returns once the run listens (200, the run's
 * record) or failed to set up. */
mg_reply mg_service_arm(mg_service *s, const json_t *settings);

/* Starts a dark run: its frames go into pedestal sums (nothing else is
 * written) and at its end pedestals, noise and bad-pixel masks go into a
 * calibration file, as `morgul receive --pedestal` does.  Settings: name,
 * frames (required), idle_timeout, gain (0 dynamic, 1, 2 forced),
 * storage_cells, calibration (required: the file to create or update).
 * Replies as mg_service_arm; the run's record has kind "dark". */
mg_reply mg_service_pedestal(mg_service *s, const json_t *settings);

/* Ends the current run with valid files and waits for its end (200, its
 * record); 409 when no run is on. */
mg_reply mg_service_disarm(mg_service *s);

/* State (idle, armed, receiving, ending, error), the current run and its
 * counters and rates, unarmed packets, free disk space, settings in use,
 * the stream's consumers and counts. */
mg_reply mg_service_status(mg_service *s);

/* The runs of the run log, oldest first (200), or one by name (404 if
 * none). */
mg_reply mg_service_runs(mg_service *s);
mg_reply mg_service_run(mg_service *s, const char *name);

/* The latest image as a PNG (malloc'ed into *png): binned to at most 512
 * pixels a side by the maximum, coloured with a scale bar, captioned with
 * the run and image.  MG_EDATA when no image has been written yet. */
int mg_service_preview(mg_service *s, uint8_t **png, size_t *len, mg_error *err);

/* The counters in Prometheus' text exposition format (version 0.0.4),
 * malloc'ed; NULL when out of memory. */
char *mg_service_metrics(mg_service *s);

/* Goes up by one each time the service's watcher has gone round (every
 * 20 ms, taking the service's lock): a caller that sees it stand still for
 * seconds knows the service is stuck (the systemd watchdog ping uses it). */
uint64_t mg_service_heartbeat(mg_service *s);

/* Ends the current run (as disarm), stops the watcher, closes the sockets,
 * frees everything. */
void mg_service_close(mg_service *s);

/* The OpenAPI 3 document of the HTTP API (a static JSON text), and the web
 * page served at / (HTML and JavaScript, no other resources: it polls
 * /api/status every second, plots rates and loss, shows the preview and the
 * runs; ?token=TOKEN passes the token on). */
extern const char mg_service_openapi[];
extern const char mg_service_page[];

/* The HTTP server in front of a service: listens on `addr` ("HOST:PORT"),
 * one thread per connection.  With `token` (non-NULL) every request needs
 * "Authorization: Bearer TOKEN" (the web page may pass ?token=TOKEN) or
 * gets 401; binding to an address other than loopback without a token is
 * refused.  Bodies over 64 KiB get 413. */
typedef struct mg_http mg_http;
mg_http *mg_http_start(mg_service *s, const char *addr, const char *token, mg_error *err);
void mg_http_stop(mg_http *h);

#endif
