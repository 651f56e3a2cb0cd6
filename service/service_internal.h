/* service_internal.h - private: the service's state, shared by service.c
 * (runs, run log, watcher), report.c (status, metrics) and http.c. */
#ifndef MORGUL_SERVICE_INTERNAL_H
#define MORGUL_SERVICE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "morgul/service.h"
#include "morgul/stream.h"
#include "morgul/threads.h"

typedef struct mg_preview mg_preview;

enum { MG_SV_IDLE, MG_SV_ARMED, MG_SV_RECEIVING, MG_SV_ENDING, MG_SV_ERROR };

struct mg_service {
    mg_service_config cfg;
    FILE *log;
    const char *command_line;
    int nlinks;
    int fds[MG_MAX_LINKS];     /* bound at open, kept until close */
    mg_run_kept kept;          /* topology and frame buffers, made at open, kept until close */
    char runlog_path[4200];
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* a run became ready or finished */
    /* under mu: */
    int state;
    char error[1200];          /* state error: why the last run failed */
    uint64_t unarmed;          /* datagrams drained between runs */
    json_t *runs;              /* every run's record, oldest first */
    int next_number;
    /* the current run (under mu) */
    int running, finished;     /* a thread exists / it has ended (join it: reap) */
    mg_thread th;              /* on a kept thread, like the run's own */
    mg_run_images shape;       /* the images of the current run (set when it listens) */
    json_t *current;           /* its record (held by runs once it listens) */
    int number_in_use;
    char run_name[128];
    double arm_time;
    mg_run_config rc;
    double max_loss;
    int dark, dark_gain, dark_cells; /* the current run is a dark run: its gain and storage cells */
    const char *dark_calibration;    /* ... and the calibration file it writes */
    const char *stop_why;      /* what raised stop: "disarmed", "the service was stopped" */
    FILE *run_log;
    char prefix[4200], run_log_path[4300];
    int setup_rc;
    mg_error setup_err;
    mg_run_summary *live;      /* the latest counters (observed, or the last run's final ones) */
    int have_live;
    mg_run_summary *final;     /* written by the run's thread only */
    double rate_t, frames_per_s, bytes_per_s;
    uint64_t rate_images, rate_bytes;
    _Atomic int stop, ready, quit;
    _Atomic uint64_t heartbeat; /* the watcher's rounds, with the lock taken: the service is not stuck */
    pthread_t watcher;
    int watching;
    mg_stream *stream;         /* or NULL */
    mg_preview *preview;
    mg_stream_counts stream_at_arm; /* its counts when the current run was armed */
};

/* The live preview (preview.c): the latest image's chunk, drawn on request. */
mg_preview *mg_preview_new(void);
void mg_preview_free(mg_preview *p);
void mg_preview_shape(mg_preview *p, const mg_run_images *im, const char *run);
void mg_preview_offer(mg_preview *p, const mg_image_written *w); /* never waits */
/* The PNG (malloc'ed); MG_EDATA when no run has written an image yet. */
int mg_preview_png(mg_preview *p, uint8_t **png, size_t *len, mg_error *err);

mg_reply mg_reply_error(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mg_service_name_ok(const char *name);
void mg_service_disk(mg_service *s, uint64_t *free_bytes, uint64_t *total_bytes);
json_t *mg_service_counters(const mg_run_summary *m);
void mg_service_set_command_line(mg_service *s, const char *line);

#endif
