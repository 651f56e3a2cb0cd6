/* morgul/stream.h - the image stream of `morgul serve --stream`: every
 * image as the chunk that was written, in CBOR messages after DECTRIS'
 * Stream V2 (start, image, end) on a ZeroMQ PUSH socket, so that several
 * consumers (PULL) share the images round-robin.
 *
 * Messages (one ZeroMQ message each, a CBOR map whose first key is "type"):
 *   start: series_id, series_unique_id, arm_date (tag 0), channels
 *     ["default"], image_size_x/y, incident_energy (eV) and
 *     incident_wavelength (A) when known, detector_description,
 *     detector_serial_number (the detector's name), detector_translation
 *     [0, 0, distance m], beam_center_x/y, pixel_size_x/y (m),
 *     sensor_material, sensor_thickness (m), saturation_value,
 *     number_of_images (0: open-ended), pixel_mask and pixel_mask_enabled
 *     (corrected output), user_data {"format": "raw" | "corrected",
 *     "modules": N}.
 *   image: series_id, series_unique_id, series_date, image_id (the image's
 *     index in its run), real_time [exposure in 0.1 us, 10^7], start_time
 *     and stop_time [ns after arm_date, 10^9] from the first packet's
 *     arrival, data {"default": tag 40 [[height, width], typed array tag
 *     (69 uint16, 77 int16, 78 int32, 85 float32, little endian) over tag
 *     56500 ["bslz4", element size, chunk]]} - the chunk exactly as in the
 *     HDF5 file (bitshuffle filter framing); user_data {"acquisition",
 *     "frame_numbers" (per module), "packets" (per module), "complete"}.
 *   end: series_id, series_unique_id, user_data {"images", "not_streamed"}.
 *
 * Streaming never holds up the receivers: an image is sent without
 * waiting; when the consumers' queues are full (ZeroMQ's send high-water
 * mark, at most ~256 MiB of images) the image is counted as not streamed
 * and is in the files all the same.  Start and end wait up to 0.2 s for a
 * consumer; without one they too are counted as not streamed (a consumer
 * connects before arming to see a series from its start).
 *
 * Thread safety: start and end come from the run's thread, images from the
 * writing worker, counts from any thread; a mutex orders the sends.
 */
#ifndef MORGUL_STREAM_H
#define MORGUL_STREAM_H

#include <stdint.h>

#include "morgul/error.h"
#include "morgul/pipeline.h"
#include "morgul/run.h"

typedef struct mg_stream mg_stream;

/* Binds a PUSH socket at `endpoint` (e.g. tcp://127.0.0.1:31001). */
mg_stream *mg_stream_open(const char *endpoint, mg_error *err);

typedef struct mg_stream_series {
    uint64_t id;                  /* the run's number */
    const char *unique_id;        /* the run's name */
    double arm_time;              /* Unix seconds */
    const mg_run_images *images;
    int nmodules;
    const char *detector;         /* name */
    double energy_kev;            /* 0: unknown */
    double distance_mm, beam_x, beam_y; /* beam centre NaN: the image centre */
    uint64_t number_of_images;    /* 0: until disarmed */
} mg_stream_series;

void mg_stream_start(mg_stream *st, const mg_stream_series *series);
void mg_stream_image(mg_stream *st, const mg_image_written *w);
void mg_stream_end(mg_stream *st);

typedef struct mg_stream_counts {
    uint64_t sent, not_streamed, bytes;
    int consumers;                /* connected PULL sockets */
} mg_stream_counts;
void mg_stream_get_counts(mg_stream *st, mg_stream_counts *out);

void mg_stream_close(mg_stream *st);

#endif
