/* stream.c - images to ZeroMQ consumers in Stream V2 CBOR messages (see
 * morgul/stream.h).  Each image message is built as one ZeroMQ message: a
 * small CBOR head whose last item is the chunk's byte string, then the chunk
 * copied once behind it; the chunk's buffer goes back to its worker at once. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "cbor.h"
#include "morgul/convert.h"
#include "morgul/h5util.h"
#include "morgul/jungfrau.h"
#include "morgul/stream.h"

#define QUEUED_IMAGES 64 /* per consumer: ZeroMQ's send high-water mark */

struct mg_stream {
    void *ctx, *sock, *mon;
    pthread_mutex_t mu;      /* the PUSH socket and the series */
    pthread_mutex_t mon_mu;  /* the monitor socket and the consumer count */
    int consumers;
    /* the series (under mu) */
    int on;
    uint64_t id;
    char unique_id[128], date[64];
    uint64_t t0_ns;
    int width, height, es, array_tag;
    uint64_t images, series_not_streamed;
    /* counts (under mu) */
    uint64_t sent, not_streamed, bytes;
};

mg_stream *mg_stream_open(const char *endpoint, mg_error *err)
{
    mg_stream *st = calloc(1, sizeof *st);
    if (!st) {
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&st->mu, NULL);
    pthread_mutex_init(&st->mon_mu, NULL);
    st->ctx = zmq_ctx_new();
    st->sock = st->ctx ? zmq_socket(st->ctx, ZMQ_PUSH) : NULL;
    if (!st->sock) {
        mg_error_set(err, MG_ESYS, "cannot make a ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        mg_stream_close(st);
        return NULL;
    }
    int hwm = QUEUED_IMAGES, linger = 0, timeo = 200;
    zmq_setsockopt(st->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(st->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(st->sock, ZMQ_SNDTIMEO, &timeo, sizeof timeo);
    char mon[64];
    snprintf(mon, sizeof mon, "inproc://morgul-stream-%p", (void *)st);
    if (zmq_socket_monitor(st->sock, mon, ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) == 0 &&
        (st->mon = zmq_socket(st->ctx, ZMQ_PAIR)) && zmq_connect(st->mon, mon)) {
        zmq_close(st->mon);
        st->mon = NULL;
    }
    if (zmq_bind(st->sock, endpoint)) {
        mg_error_set(err, MG_ESYS, "--stream %s: cannot bind: %s (give tcp://ADDRESS:PORT with a free port)",
                     endpoint, zmq_strerror(zmq_errno()));
        mg_stream_close(st);
        return NULL;
    }
    return st;
}

void mg_stream_close(mg_stream *st)
{
    if (!st)
        return;
    if (st->mon)
        zmq_close(st->mon);
    if (st->sock)
        zmq_close(st->sock);
    if (st->ctx)
        zmq_ctx_term(st->ctx);
    pthread_mutex_destroy(&st->mu);
    pthread_mutex_destroy(&st->mon_mu);
    free(st);
}

/* Sends (under mu) what c holds; waits up to 1 s unless `dontwait`.  0 sent. */
static int send_msg(mg_stream *st, mg_cbor *c, int dontwait)
{
    if (c->bad)
        return -1;
    if (zmq_send(st->sock, c->p, c->n, dontwait ? ZMQ_DONTWAIT : 0) < 0)
        return -1;
    st->sent++;
    st->bytes += c->n;
    return 0;
}

void mg_stream_start(mg_stream *st, const mg_stream_series *s)
{
    const mg_run_images *im = s->images;
    pthread_mutex_lock(&st->mu);
    st->on = 1;
    st->id = s->id;
    snprintf(st->unique_id, sizeof st->unique_id, "%s", s->unique_id);
    mg_h5_time_iso(s->arm_time, 3, st->date, sizeof st->date);
    st->t0_ns = (uint64_t)(s->arm_time * 1e9);
    st->width = im->width;
    st->height = im->height;
    st->images = st->series_not_streamed = 0;
    int type = im->corrected ? im->type : -1;
    st->es = type == MG_OUT_INT32 || type == MG_OUT_FLOAT32 ? 4 : 2;
    st->array_tag = type == MG_OUT_INT16 ? 77 : type == MG_OUT_INT32 ? 78 : type == MG_OUT_FLOAT32 ? 85 : 69;
    mg_cbor c = {0};
    int saturation = type == MG_OUT_INT16 || type == MG_OUT_INT32; /* raw words and floats have none */
    int nkeys = 21 + saturation + (s->energy_kev > 0 ? 2 : 0) + (im->pixel_mask ? 2 : 0);
    mg_cbor_map(&c, (size_t)nkeys);
    mg_cbor_text(&c, "type");
    mg_cbor_text(&c, "start");
    mg_cbor_text(&c, "series_id");
    mg_cbor_uint(&c, s->id);
    mg_cbor_text(&c, "series_unique_id");
    mg_cbor_text(&c, st->unique_id);
    mg_cbor_text(&c, "arm_date");
    mg_cbor_tag(&c, 0);
    mg_cbor_text(&c, st->date);
    mg_cbor_text(&c, "channels");
    mg_cbor_array(&c, 1);
    mg_cbor_text(&c, "default");
    mg_cbor_text(&c, "image_size_x");
    mg_cbor_uint(&c, (uint64_t)im->width);
    mg_cbor_text(&c, "image_size_y");
    mg_cbor_uint(&c, (uint64_t)im->height);
    if (s->energy_kev > 0) {
        mg_cbor_text(&c, "incident_energy");
        mg_cbor_double(&c, s->energy_kev * 1000);
        mg_cbor_text(&c, "incident_wavelength");
        mg_cbor_double(&c, 12.398419843320026 / s->energy_kev);
    }
    mg_cbor_text(&c, "detector_description");
    mg_cbor_text(&c, "PSI JUNGFRAU (morgul)");
    mg_cbor_text(&c, "detector_serial_number");
    mg_cbor_text(&c, s->detector);
    mg_cbor_text(&c, "detector_translation");
    mg_cbor_array(&c, 3);
    mg_cbor_double(&c, 0);
    mg_cbor_double(&c, 0);
    mg_cbor_double(&c, (s->distance_mm > 0 ? s->distance_mm : 100) / 1000);
    mg_cbor_text(&c, "beam_center_x");
    mg_cbor_double(&c, isnan(s->beam_x) ? im->width / 2.0 : s->beam_x);
    mg_cbor_text(&c, "beam_center_y");
    mg_cbor_double(&c, isnan(s->beam_y) ? im->height / 2.0 : s->beam_y);
    mg_cbor_text(&c, "pixel_size_x");
    mg_cbor_double(&c, 75e-6);
    mg_cbor_text(&c, "pixel_size_y");
    mg_cbor_double(&c, 75e-6);
    mg_cbor_text(&c, "sensor_material");
    mg_cbor_text(&c, "Si");
    mg_cbor_text(&c, "sensor_thickness");
    mg_cbor_double(&c, 320e-6);
    if (saturation) { /* as in the NXmx master: one below the saturated marker */
        mg_cbor_text(&c, "saturation_value");
        mg_cbor_uint(&c, type == MG_OUT_INT16 ? MG_INT16_SATURATED - 1 : MG_INT32_SATURATED - 1);
    }
    mg_cbor_text(&c, "number_of_images");
    mg_cbor_uint(&c, s->number_of_images);
    if (im->pixel_mask) {
        size_t n = (size_t)im->width * (size_t)im->height;
        mg_cbor_text(&c, "pixel_mask_enabled");
        mg_cbor_bool(&c, 1);
        mg_cbor_text(&c, "pixel_mask");
        mg_cbor_map(&c, 1);
        mg_cbor_text(&c, "default");
        mg_cbor_tag(&c, 40);
        mg_cbor_array(&c, 2);
        mg_cbor_array(&c, 2);
        mg_cbor_uint(&c, (uint64_t)im->height);
        mg_cbor_uint(&c, (uint64_t)im->width);
        mg_cbor_tag(&c, 70); /* uint32, little endian */
        mg_cbor_bytes(&c, im->pixel_mask, n * 4);
    }
    mg_cbor_text(&c, "user_data");
    mg_cbor_map(&c, 2);
    mg_cbor_text(&c, "format");
    mg_cbor_text(&c, im->corrected ? "corrected" : "raw");
    mg_cbor_text(&c, "modules");
    mg_cbor_uint(&c, (uint64_t)s->nmodules);
    mg_cbor_text(&c, "countrate_correction_enabled");
    mg_cbor_bool(&c, 0);
    mg_cbor_text(&c, "flatfield_enabled");
    mg_cbor_bool(&c, 0);
    mg_cbor_text(&c, "virtual_pixel_interpolation_enabled");
    mg_cbor_bool(&c, 0);
    if (send_msg(st, &c, 0))
        st->not_streamed++;
    free(c.p);
    pthread_mutex_unlock(&st->mu);
}

void mg_stream_image(mg_stream *st, const mg_image_written *w)
{
    pthread_mutex_lock(&st->mu);
    if (!st->on) {
        pthread_mutex_unlock(&st->mu);
        return;
    }
    st->images++;
    mg_cbor c = {0};
    mg_cbor_map(&c, 10);
    mg_cbor_text(&c, "type");
    mg_cbor_text(&c, "image");
    mg_cbor_text(&c, "series_id");
    mg_cbor_uint(&c, st->id);
    mg_cbor_text(&c, "series_unique_id");
    mg_cbor_text(&c, st->unique_id);
    mg_cbor_text(&c, "series_date");
    mg_cbor_tag(&c, 0);
    mg_cbor_text(&c, st->date);
    mg_cbor_text(&c, "image_id");
    mg_cbor_uint(&c, (uint64_t)w->index);
    uint64_t exposure = w->nmodules ? w->modules[0].exposure_length : 0; /* 0.1 us */
    uint64_t t = w->arrival_ns > st->t0_ns ? w->arrival_ns - st->t0_ns : 0;
    mg_cbor_text(&c, "real_time");
    mg_cbor_rational(&c, exposure, 10000000);
    mg_cbor_text(&c, "start_time");
    mg_cbor_rational(&c, t, 1000000000);
    mg_cbor_text(&c, "stop_time");
    mg_cbor_rational(&c, t + exposure * 100, 1000000000);
    int complete = 1;
    mg_cbor_text(&c, "user_data");
    mg_cbor_map(&c, 4);
    mg_cbor_text(&c, "acquisition");
    mg_cbor_uint(&c, (uint64_t)w->acquisition);
    mg_cbor_text(&c, "frame_numbers");
    mg_cbor_array(&c, (size_t)w->nmodules);
    for (int m = 0; m < w->nmodules; m++)
        mg_cbor_uint(&c, w->modules[m].frame_number);
    mg_cbor_text(&c, "packets");
    mg_cbor_array(&c, (size_t)w->nmodules);
    for (int m = 0; m < w->nmodules; m++) {
        mg_cbor_uint(&c, w->modules[m].packets);
        complete &= w->modules[m].packets == MG_PACKETS_PER_MODULE;
    }
    mg_cbor_text(&c, "complete");
    mg_cbor_bool(&c, complete);
    /* the data last: the chunk follows the head in the message */
    mg_cbor_text(&c, "data");
    mg_cbor_map(&c, 1);
    mg_cbor_text(&c, "default");
    mg_cbor_tag(&c, 40);
    mg_cbor_array(&c, 2);
    mg_cbor_array(&c, 2);
    mg_cbor_uint(&c, (uint64_t)st->height);
    mg_cbor_uint(&c, (uint64_t)st->width);
    mg_cbor_tag(&c, (uint64_t)st->array_tag);
    mg_cbor_tag(&c, 56500);
    mg_cbor_array(&c, 3);
    mg_cbor_text(&c, "bslz4");
    mg_cbor_uint(&c, (uint64_t)st->es);
    mg_cbor_bytes_head(&c, w->bytes);
    zmq_msg_t msg;
    int ok = !c.bad && zmq_msg_init_size(&msg, c.n + w->bytes) == 0;
    if (ok) {
        memcpy(zmq_msg_data(&msg), c.p, c.n);
        memcpy((char *)zmq_msg_data(&msg) + c.n, w->chunk, w->bytes);
        if (zmq_msg_send(&msg, st->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            ok = 0;
        }
    }
    if (ok) {
        st->sent++;
        st->bytes += c.n + w->bytes;
    } else {
        st->not_streamed++;
        st->series_not_streamed++;
    }
    free(c.p);
    pthread_mutex_unlock(&st->mu);
}

void mg_stream_end(mg_stream *st)
{
    pthread_mutex_lock(&st->mu);
    if (st->on) {
        mg_cbor c = {0};
        mg_cbor_map(&c, 4);
        mg_cbor_text(&c, "type");
        mg_cbor_text(&c, "end");
        mg_cbor_text(&c, "series_id");
        mg_cbor_uint(&c, st->id);
        mg_cbor_text(&c, "series_unique_id");
        mg_cbor_text(&c, st->unique_id);
        mg_cbor_text(&c, "user_data");
        mg_cbor_map(&c, 2);
        mg_cbor_text(&c, "images");
        mg_cbor_uint(&c, st->images);
        mg_cbor_text(&c, "not_streamed");
        mg_cbor_uint(&c, st->series_not_streamed);
        if (send_msg(st, &c, 0))
            st->not_streamed++;
        free(c.p);
        st->on = 0;
    }
    pthread_mutex_unlock(&st->mu);
}

void mg_stream_get_counts(mg_stream *st, mg_stream_counts *out)
{
    pthread_mutex_lock(&st->mon_mu);
    for (;;) { /* the monitor's events so far: 6 bytes (event, value), then the peer's address */
        uint8_t ev[6];
        char addr[256];
        if (!st->mon || zmq_recv(st->mon, ev, sizeof ev, ZMQ_DONTWAIT) < 0)
            break;
        zmq_recv(st->mon, addr, sizeof addr, 0);
        uint16_t e;
        memcpy(&e, ev, 2);
        if (e == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            st->consumers++;
        else if (e == ZMQ_EVENT_DISCONNECTED && st->consumers > 0)
            st->consumers--;
    }
    out->consumers = st->consumers;
    pthread_mutex_unlock(&st->mon_mu);
    pthread_mutex_lock(&st->mu);
    out->sent = st->sent;
    out->not_streamed = st->not_streamed;
    out->bytes = st->bytes;
    pthread_mutex_unlock(&st->mu);
}
