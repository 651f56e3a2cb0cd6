/* run.c - what every run does around its packet source: set up placement,
 * assembler, writer and pipeline; report progress; end cleanly; summarise
 * (contract in morgul/run.h).  The sources are receive.c and replay.c. */
#include "run_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "morgul/runped.h"

uint64_t mg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *mg_run_end_reason(int s)
{
    switch (s) {
    case MG_END_FRAMES: return "all requested frames done";
    case MG_END_IDLE: return "idle timeout: no packets";
    case MG_END_SIGNAL: return "stopped by signal";
    case MG_END_EOF: return "end of capture";
    case MG_END_ERROR: return "stopped by an error";
    default: return "?";
    }
}

/* Inline correction: the calibration checked against the detector, the
 * conversion tables on the workers' node, the geometry and the NXmx
 * description - all before any packet is taken. */
static int setup_correction(run *r, const mg_run_config *cfg, mg_error *err)
{
    if (!(cfg->energy_kev > 0))
        return mg_error_set(err, MG_EINVAL, "correcting while receiving needs the photon energy: --energy KEV or "
                                            "--wavelength A");
    if (mg_calib_read(cfg->calibration, &r->calib, err) || mg_calib_check(&r->calib, &cfg->det, err))
        return err ? err->code : MG_ECONFIG;
    /* a set of tables on each NUMA node that has workers: every worker reads its own node's */
    int nw = r->plan.nworkers > 0 ? r->plan.nworkers : 1;
    for (int w = 0; w < nw; w++) {
        int node = r->plan.nworkers ? r->plan.worker_node[w] : 0;
        if (node < 0 || node >= MG_MAX_THREADS)
            node = 0;
        if (!r->node_tables[node]) {
            r->node_tables[node] = calloc(MG_MAX_MODULES, sizeof(mg_module_tables));
            if (!r->node_tables[node])
                return mg_error_set(err, MG_ENOMEM, "out of memory for conversion tables");
            for (int m = 0; m < cfg->det.nmodules; m++) {
                mg_module_calib *x = mg_calib_module(&r->calib, cfg->det.modules[m].name, 0, 0);
                if (mg_calib_tables(x, cfg->kev ? 1.0 : cfg->energy_kev, r->topo, r->pin ? node : -1,
                                    &r->node_tables[node][m], err))
                    return err ? err->code : MG_ENOMEM;
            }
        }
        r->worker_tables[w] = r->node_tables[node];
    }
    if (mg_geometry_init(&r->geom, &cfg->det, &cfg->geometry, err))
        return err ? err->code : MG_EINVAL;
    r->pixel_mask = malloc((size_t)r->geom.width * (size_t)r->geom.height * sizeof(uint32_t));
    if (!r->pixel_mask)
        return mg_error_set(err, MG_ENOMEM, "out of memory for the pixel mask");
    if (mg_calib_geometry_mask(&r->calib, &cfg->det, &r->geom, r->pixel_mask, err))
        return err ? err->code : MG_ENOMEM;
    r->nx = (mg_nxmx_info){
        .geom = &r->geom,
        .det = &cfg->det,
        .type = (mg_out_type)cfg->out_type,
        .kev = cfg->kev,
        .pixel_mask = r->pixel_mask,
        .energy_kev = cfg->energy_kev,
        .distance_m = (cfg->distance_mm > 0 ? cfg->distance_mm : 100) / 1000,
        .beam_x = isnan(cfg->beam_x) ? r->geom.width / 2.0 : cfg->beam_x,
        .beam_y = isnan(cfg->beam_y) ? r->geom.height / 2.0 : cfg->beam_y,
        .sensor_thickness_m = 320e-6,
        .calibration_file = cfg->calibration,
        .rotation = cfg->rotation,
        .omega_start = cfg->omega_start,
        .omega_increment = cfg->omega_increment,
    };
    mg_nxmx_layout(&r->nx, &r->layout);
    return 0;
}

/* The run-time pedestal is known (called by the collector before any frame
 * reaches a worker): the G0 pedestals into the calibration, every node's
 * tables rebuilt from it.  A run without a dark frame before the signal
 * keeps the calibration's pedestal and says so loudly - the frames are
 * corrected and written all the same, never dropped. */
static int runtime_ready(void *ctx, mg_error *err)
{
    run *r = ctx;
    const mg_run_config *cfg = r->cfg;
    mg_error e = {0};
    if (mg_runped_apply(r->runped, &r->calib, &cfg->det, r->runtime_p0, r->log, &e)) {
        fprintf(r->log, "warning: %s\nwarning: this run is corrected with the calibration's pedestal\n", e.message);
        r->nx.runtime_mode = "failed: the calibration's pedestal was used";
        return 0;
    }
    r->nx.runtime_frames = mg_runped_frames(r->runped);
    r->nx.runtime_onset = mg_runped_onset(r->runped);
    r->nx.runtime_p0 = (const float *const *)r->runtime_p0;
    r->nx.runtime_cells = mg_runped_cells(r->runped);
    for (int n = 0; n < MG_MAX_THREADS; n++)
        for (int m = 0; r->node_tables[n] && m < cfg->det.nmodules; m++) {
            mg_module_calib *x = mg_calib_module(&r->calib, cfg->det.modules[m].name, 0, 0);
            mg_module_tables t;
            if (mg_calib_tables(x, cfg->kev ? 1.0 : cfg->energy_kev, r->topo, r->pin ? n : -1, &t, err))
                return err ? err->code : MG_ENOMEM;
            mg_module_tables_free(&r->node_tables[n][m]);
            r->node_tables[n][m] = t;
        }
    return 0;
}

int run_setup(run *r, const mg_run_config *cfg, int lossless, int by_reference, mg_error *err)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->log = cfg->log ? cfg->log : stderr;
    r->t0 = mg_now_ns();
    atomic_init(&r->stop_internal, 0);
    r->topo = mg_topology_open(cfg->topology, err);
    if (!r->topo)
        return err ? err->code : MG_ESYS;
    int nlinks = mg_detector_links(&cfg->det);
    int workers = cfg->workers > 0 ? cfg->workers : mg_topology_default_workers(r->topo, cfg->pcap ? 0 : nlinks);
    char ifn[MG_MAX_LINKS][32];
    const char *ifp[MG_MAX_LINKS];
    for (int l = 0; l < nlinks; l++) {
        int m, i;
        mg_detector_link(&cfg->det, l, &m, &i);
        mg_interface_of_address(cfg->pcap ? NULL : cfg->det.modules[m].bind, ifn[l], sizeof ifn[l]);
        ifp[l] = ifn[l];
    }
    if (mg_topology_plan(r->topo, nlinks, ifp, workers, cfg->cpus, &r->plan, err))
        return err ? err->code : MG_EINVAL;
    r->pin = !cfg->no_pin && mg_topology_is_this_system(r->topo);
    if (!cfg->quiet) {
        mg_detector_print(&cfg->det, r->log);
        mg_topology_print_plan(&r->plan, r->log);
        if (!r->pin)
            fprintf(r->log, "  (threads are not pinned%s)\n", cfg->no_pin ? ": --no-pin" : ": not this machine's topology");
    }
    /* each module's rows of the frame buffers on the node of its first interface's receiver */
    int module_node[MG_MAX_MODULES];
    for (int l = nlinks - 1; l >= 0; l--) {
        int m, i;
        mg_detector_link(&cfg->det, l, &m, &i);
        module_node[m] = r->plan.link_node[l];
    }
    /* a run-time pedestal holds its frames: that many more frame buffers */
    int hold = 0;
    if (cfg->runtime && cfg->calibration)
        hold = cfg->runtime_frames ? (int)(cfg->runtime_frames < 100000 ? cfg->runtime_frames : 100000) + 16
                                   : (int)(cfg->runtime_max ? (cfg->runtime_max < 100000 ? cfg->runtime_max : 100000)
                                                            : 200);
    int window = cfg->window > 0 ? cfg->window : 16;
    int slots = hold ? (cfg->buffer_frames > 0 ? cfg->buffer_frames : (4 * window > 64 ? 4 * window : 64)) + hold
                     : cfg->buffer_frames;
    if (hold && !cfg->quiet)
        fprintf(r->log, "run-time pedestal: up to %d frames held (%d MiB more frame buffers)\n", hold,
                hold * cfg->det.nmodules);
    mg_asm_config ac = {
        .det = &cfg->det,
        .window = cfg->window,
        .slots = slots,
        .align = cfg->align,
        .check_position = cfg->check_position,
        .max_frames = cfg->max_frames,
        .topo = r->topo,
        .numa_node = nlinks ? r->plan.link_node[0] : -1,
        .module_node = r->pin ? module_node : NULL,
        .lossless = lossless,
        .by_reference = by_reference,
    };
    r->a = mg_asm_new(&ac, err);
    if (!r->a)
        return err ? err->code : MG_ENOMEM;
    if (cfg->calibration && setup_correction(r, cfg, err))
        return err ? err->code : MG_ECONFIG;
    if (hold) {
        if (!(r->runped = mg_runped_for(&r->calib, &cfg->det, cfg->runtime_frames, cfg->runtime_max ? cfg->runtime_max
                                                                                                   : 200, err)))
            return err ? err->code : MG_ENOMEM;
        r->nx.runtime_mode = cfg->runtime_frames ? "fixed" : "auto";
        r->nx.runtime_onset = -1;
    }
    if (cfg->output) {
        mg_rawfile_config rc = {.prefix = cfg->output, .det = &cfg->det, .frames_per_file = cfg->frames_per_file,
                                .overwrite = cfg->overwrite, .layout = cfg->calibration ? &r->layout : NULL};
        r->out = mg_rawfile_create(&rc, err);
        if (!r->out)
            return err ? err->code : MG_EIO;
    }
    mg_pipeline_config pc = {
        .assembler = r->a,
        .out = r->out,
        .workers = workers,
        .impl = cfg->impl,
        .lz4_acceleration = cfg->lz4_acceleration,
        .topo = r->topo,
        .plan = r->pin ? &r->plan : NULL,
        .stop = &r->stop_internal,
        .worker_tables = cfg->calibration ? r->worker_tables : NULL,
        .geom = &r->geom,
        .type = cfg->out_type,
        .pedestal = cfg->pedestal,
        .pedestal_gain = cfg->pedestal_gain,
        .pedestal_frames = cfg->pedestal_frames,
        .pedestal_loops = cfg->pedestal_loops,
        .pedestal_cells = cfg->pedestal_cells,
        .runped = r->runped,
        .runped_hold = hold,
        .runped_ready = runtime_ready,
        .runped_ctx = r,
    };
    r->pipe = mg_pipeline_start(&pc, err);
    if (!r->pipe)
        return err ? err->code : MG_ESYS;
    r->last_progress = r->t0;
    return 0;
}

static void sum_links(run *r, mg_run_summary *s)
{
    s->nlinks = mg_asm_link_count(r->a);
    s->nmodules = mg_asm_modules(r->a);
    memset(&s->total, 0, sizeof s->total);
    for (int l = 0; l < s->nlinks; l++) {
        mg_asm_link_stats(r->a, l, &s->link[l]);
        const mg_link_stats *x = &s->link[l];
        mg_link_stats *t = &s->total;
        t->packets += x->packets;
        t->duplicates += x->duplicates;
        t->late += x->late;
        t->out_of_order += x->out_of_order;
        t->before_start += x->before_start;
        t->after_end += x->after_end;
        t->overrun += x->overrun;
        t->kernel_drops += x->kernel_drops;
        t->bytes += x->bytes;
        for (int v = 0; v < MG_PACKET_VERDICT_COUNT; v++)
            t->rejected[v] += x->rejected[v];
    }
    mg_asm_get_totals(r->a, &s->frames);
    s->packets_lost = s->frames.packets_missing;
}

void run_progress(run *r, int force)
{
    if (!r->cfg->progress)
        return;
    uint64_t now = mg_now_ns();
    if (!force && now - r->last_progress < 1000000000ull)
        return;
    mg_run_summary s;
    memset(&s, 0, sizeof s);
    sum_links(r, &s);
    mg_pipeline_stats ps;
    mg_pipeline_get_stats(r->pipe, &ps);
    double dt = (double)(now - r->last_progress) / 1e9;
    double rate = dt > 0 ? (double)(s.total.bytes - r->last_bytes) / dt / 1e9 : 0;
    uint64_t rejected = 0;
    for (int v = 1; v < MG_PACKET_VERDICT_COUNT; v++)
        rejected += s.total.rejected[v];
    fprintf(r->log,
            "[%6.1fs] frames %llu (complete %llu, partial %llu, missing %llu) written %llu | packets %llu lost %llu "
            "dup %llu ooo %llu late %llu kdrop %llu bad %llu | %.2f GB/s | queue %u/%u buffers %d/%d\n",
            (double)(now - r->t0) / 1e9,
            (unsigned long long)(s.frames.frames_complete + s.frames.frames_partial),
            (unsigned long long)s.frames.frames_complete, (unsigned long long)s.frames.frames_partial,
            (unsigned long long)s.frames.frames_missing, (unsigned long long)ps.frames_written,
            (unsigned long long)s.total.packets, (unsigned long long)s.packets_lost,
            (unsigned long long)s.total.duplicates, (unsigned long long)s.total.out_of_order,
            (unsigned long long)s.total.late, (unsigned long long)s.total.kernel_drops,
            (unsigned long long)rejected, rate, ps.queue_fill, ps.queue_capacity, mg_asm_slots_in_use(r->a),
            mg_asm_slot_count(r->a));
    fflush(r->log);
    r->last_progress = now;
    r->last_bytes = s.total.bytes;
}

int run_finish(run *r, mg_run_summary *sum, int ended, int rc, mg_error *err)
{
    mg_run_summary local;
    if (!sum)
        sum = &local;
    memset(sum, 0, sizeof *sum);
    mg_error perr = {0};
    if (r->pipe) {
        mg_pipeline_stats ps;
        int prc = mg_pipeline_finish(r->pipe, &ps, &perr);
        r->pipe = NULL;
        sum->frames_written = ps.frames_written;
        sum->frames_discarded = ps.frames_discarded;
        sum->frames_dark = ps.frames_dark;
        sum->dark_exposure = ps.dark_exposure;
        sum->frames_other_cell = ps.frames_other_cell;
        sum->cells_seen = ps.cells_seen;
        sum->uncalibrated = ps.uncalibrated;
        sum->bytes_raw = ps.bytes_raw;
        sum->bytes_compressed = ps.bytes_compressed;
        sum->queue_fill_max = ps.queue_fill_max;
        sum->queue_capacity = ps.queue_capacity;
        if (prc) {
            ended = MG_END_ERROR;
            if (!rc) {
                rc = prc;
                if (err)
                    *err = perr;
            }
        }
    }
    if (r->a) {
        sum_links(r, sum);
        /* asked for N frames and the run ended early: the frames never seen at
         * the end are missing too (the detector was told to send them) */
        int64_t newest = mg_asm_newest(r->a);
        if (r->cfg->max_frames && ended != MG_END_FRAMES && newest + 1 < (int64_t)r->cfg->max_frames && newest >= 0) {
            uint64_t tail = r->cfg->max_frames - (uint64_t)(newest + 1);
            sum->frames.frames_missing += tail;
            sum->packets_lost += tail * (uint64_t)sum->nmodules * MG_PACKETS_PER_MODULE;
            sum->frames_missing_at_end = tail;
        }
    }
    sum->unexpected_port = r->unexpected_port;
    sum->capture_skipped = r->capture_skipped;
    sum->seconds = (double)(mg_now_ns() - r->t0) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    sum->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                       (double)ru.ru_stime.tv_usec / 1e6;
    sum->stopped_by = ended;
    if (r->out) {
        snprintf(sum->master, sizeof sum->master, "%s", mg_rawfile_master_path(r->out));
        mg_counter c[32];
        int n = 0;
#define C(name, v) c[n++] = (mg_counter){name, (uint64_t)(v)}
        C("packets_received", sum->total.packets);
        C("packets_lost", sum->packets_lost);
        C("packets_duplicated", sum->total.duplicates);
        C("packets_out_of_order", sum->total.out_of_order);
        C("packets_late", sum->total.late);
        C("packets_overrun", sum->total.overrun);
        C("packets_before_start", sum->total.before_start);
        C("packets_after_end", sum->total.after_end);
        C("kernel_drops", sum->total.kernel_drops);
        C("rejected_wrong_size", sum->total.rejected[MG_PACKET_BAD_SIZE]);
        C("rejected_wrong_detector_type", sum->total.rejected[MG_PACKET_BAD_TYPE]);
        C("rejected_wrong_version", sum->total.rejected[MG_PACKET_BAD_VERSION]);
        C("rejected_packet_number", sum->total.rejected[MG_PACKET_BAD_NUMBER]);
        C("rejected_position", sum->total.rejected[MG_PACKET_BAD_POSITION]);
        C("rejected_frame_number", sum->total.rejected[MG_PACKET_BAD_FRAME]);
        C("unexpected_port", sum->unexpected_port);
        C("frames_complete", sum->frames.frames_complete);
        C("frames_partial", sum->frames.frames_partial);
        C("frames_missing", sum->frames.frames_missing);
        C("frames_written", sum->frames_written);
        if (r->cfg->calibration)
            C("module_frames_uncalibrated_cell", sum->uncalibrated);
#undef C
        mg_error ferr = {0};
        int frc = mg_rawfile_close(r->out, c, n, &ferr);
        r->out = NULL;
        if (frc && !rc) {
            rc = frc;
            if (err)
                *err = ferr;
        }
    }
    mg_asm_free(r->a);
    r->a = NULL;
    for (int n = 0; n < MG_MAX_THREADS; n++)
        if (r->node_tables[n]) {
            for (int m = 0; m < MG_MAX_MODULES; m++)
                mg_module_tables_free(&r->node_tables[n][m]);
            free(r->node_tables[n]);
            r->node_tables[n] = NULL;
        }
    mg_calib_free(&r->calib);
    mg_runped_free(r->runped);
    r->runped = NULL;
    for (int m = 0; m < MG_MAX_MODULES; m++) {
        free(r->runtime_p0[m]);
        r->runtime_p0[m] = NULL;
    }
    free(r->pixel_mask);
    r->pixel_mask = NULL;
    mg_topology_close(r->topo);
    r->topo = NULL;
    return rc;
}

void mg_run_print_summary(const mg_run_summary *s, FILE *out)
{
    const mg_link_stats *t = &s->total;
    uint64_t rejected = 0;
    for (int v = 1; v < MG_PACKET_VERDICT_COUNT; v++)
        rejected += t->rejected[v];
    fprintf(out, "---- summary (%s) ----\n", mg_run_end_reason(s->stopped_by));
    fprintf(out, "frames    complete %llu  partial %llu  missing entirely %llu  written %llu\n",
            (unsigned long long)s->frames.frames_complete, (unsigned long long)s->frames.frames_partial,
            (unsigned long long)s->frames.frames_missing, (unsigned long long)s->frames_written);
    if (s->frames_dark)
        fprintf(out, "dark      %llu complete frames into the pedestals, %llu partial ones left out\n",
                (unsigned long long)s->frames_dark, (unsigned long long)s->frames_discarded);
    if (s->frames_other_cell)
        fprintf(out, "          %llu frames of storage cells beyond --storage-cells left out\n",
                (unsigned long long)s->frames_other_cell);
    if (s->uncalibrated)
        fprintf(out, "warning   %llu module-frames came from a storage cell the calibration has no constants for: "
                     "their pixels are written invalid\n", (unsigned long long)s->uncalibrated);
    if (s->frames_missing_at_end)
        fprintf(out, "          of the missing, %llu at the end: the run stopped before the frames asked for came\n",
                (unsigned long long)s->frames_missing_at_end);
    fprintf(out, "packets   received %llu  lost %llu  duplicated %llu  out of order %llu  late %llu\n",
            (unsigned long long)t->packets, (unsigned long long)s->packets_lost, (unsigned long long)t->duplicates,
            (unsigned long long)t->out_of_order, (unsigned long long)t->late);
    fprintf(out, "          kernel drops %llu  buffer overruns %llu  before start %llu  after end %llu\n",
            (unsigned long long)t->kernel_drops, (unsigned long long)t->overrun, (unsigned long long)t->before_start,
            (unsigned long long)t->after_end);
    if (t->overrun)
        fprintf(out, "warning   %llu packets found every frame buffer still waiting to be compressed or written: "
                     "the writing fell behind the detector. For bursts give more buffers (--buffer-frames; 1 MiB "
                     "per module each), otherwise faster storage or more workers\n",
                (unsigned long long)t->overrun);
    if (t->kernel_drops)
        fprintf(out, "warning   %llu packets were dropped by the kernel before morgul read them: the receiving "
                     "threads fell behind. Check that each has a core of its own (the thread plan, --cpus) and "
                     "that the socket buffers were not capped (see the start of the run)\n",
                (unsigned long long)t->kernel_drops);
    fprintf(out, "refused   %llu datagrams", (unsigned long long)rejected);
    for (int v = 1; v < MG_PACKET_VERDICT_COUNT; v++)
        if (t->rejected[v])
            fprintf(out, "; %s: %llu", mg_packet_verdict_name((mg_packet_verdict)v), (unsigned long long)t->rejected[v]);
    if (s->unexpected_port)
        fprintf(out, "; on ports not in the detector description: %llu", (unsigned long long)s->unexpected_port);
    if (s->capture_skipped)
        fprintf(out, "; capture records not usable: %llu", (unsigned long long)s->capture_skipped);
    fprintf(out, "\n");
    for (int l = 0; l < s->nlinks && s->nlinks > 1; l++)
        fprintf(out, "  link %d: received %llu dup %llu ooo %llu late %llu kdrop %llu\n", l,
                (unsigned long long)s->link[l].packets, (unsigned long long)s->link[l].duplicates,
                (unsigned long long)s->link[l].out_of_order, (unsigned long long)s->link[l].late,
                (unsigned long long)s->link[l].kernel_drops);
    double gb = (double)t->bytes / 1e9;
    fprintf(out, "speed     %.2f s, %.3f GB in, %.2f GB/s, %.0f module-frames/s; CPU %.2f s (%.0f%% of one core)\n",
            s->seconds, gb, s->seconds > 0 ? gb / s->seconds : 0,
            s->seconds > 0 ? (double)(s->frames.frames_complete + s->frames.frames_partial) * s->nmodules / s->seconds
                           : 0,
            s->cpu_seconds, s->seconds > 0 ? 100 * s->cpu_seconds / s->seconds : 0);
    if (s->bytes_compressed)
        fprintf(out, "output    %.3f GB raw -> %.3f GB compressed (ratio %.2f); queue fill max %u of %u\n",
                (double)s->bytes_raw / 1e9, (double)s->bytes_compressed / 1e9,
                (double)s->bytes_raw / (double)s->bytes_compressed, s->queue_fill_max, s->queue_capacity);
    if (s->master[0])
        fprintf(out, "files     %s\n", s->master);
}
