/* run.c - what every run does around its packet source: set up placement,
 * assembler, writer and pipeline; report progress; end cleanly; summarise
 * (contract in morgul/run.h).  The sources are receive.c and replay.c. */
#include "run_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

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
    case MG_END_IDLE: return "idle timeout: no packets for --idle-timeout";
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
    /* the last corrected run's tables, when they are of this very file at this energy (a kept set is
     * reused, else this run's are left for the next; the run-time pedestal changes tables: none of that) */
    struct mg_kept_tables *kt = cfg->kept && !cfg->runtime ? cfg->kept->tables : NULL;
    int cacheable = cfg->kept && !cfg->runtime && stat(cfg->calibration, &r->cal_stat) == 0;
    if (cacheable && kt && !strcmp(kt->path, cfg->calibration) && kt->st.st_dev == r->cal_stat.st_dev &&
        kt->st.st_ino == r->cal_stat.st_ino && kt->st.st_size == r->cal_stat.st_size &&
        kt->st.st_mtim.tv_sec == r->cal_stat.st_mtim.tv_sec && kt->st.st_mtim.tv_nsec == r->cal_stat.st_mtim.tv_nsec &&
        kt->energy_kev == cfg->energy_kev && kt->kev == cfg->kev) {
        r->calib = kt->calib;
        memcpy(r->node_tables, kt->node_tables, sizeof r->node_tables);
        r->tables_kept = 1;
        if (!cfg->quiet)
            fprintf(r->log, "calibration %s: the conversion tables of the previous run (the same file, unchanged, "
                            "at %g keV)\n", cfg->calibration, cfg->energy_kev);
    } else if (mg_calib_read(cfg->calibration, &r->calib, err))
        return err ? err->code : MG_ECONFIG;
    r->leave_tables = cacheable && !r->tables_kept;
    if (mg_calib_check(&r->calib, &cfg->det, err) ||
        mg_calib_validate_detector(&r->calib, &cfg->det, cfg->quiet ? NULL : r->log, err))
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
        .sample_name = cfg->sample_name ? cfg->sample_name : mg_nxmx_default_sample(cfg->output),
        .source_name = cfg->source_name,
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

/* Memory the kernel could give without swapping (MemAvailable), bytes; 0 if unknown. */
static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

static int stop_asked(const mg_run_config *cfg) { return cfg->stop && atomic_load(cfg->stop); }

#define STOPPED_IN_SETUP(err) mg_error_set(err, MG_EINVAL, "stopped during set-up; nothing was written")

/* A set of files ends: the acquisition before `acq` is complete (called by
 * the pipeline's writing worker, in order). */
static int next_acquisition(void *ctx, int acq, mg_error *err)
{
    run *r = ctx;
    if (!r->out) /* nothing is written: the summary lists the acquisitions */
        return 0;
    mg_acq_info qi;
    mg_asm_acquisition(r->a, acq - 1, &qi);
    mg_run_summary s;
    memset(&s, 0, sizeof s);
    mg_counter c[40];
    int n = run_counters(r, &s, &qi, acq - 1, c);
    char prefix[4200] = "";
    if (r->cfg->acquisition_begins)
        r->cfg->acquisition_begins(r->cfg->acquisition_ctx, acq, &qi, prefix, sizeof prefix);
    if (!prefix[0])
        snprintf(prefix, sizeof prefix, "%s_acq%03d", r->cfg->output, acq + 1);
    if (!r->cfg->quiet)
        fprintf(r->log, "acquisition %d ended (%llu images); the next one is written to %s_master.h5\n", acq,
                (unsigned long long)qi.images, prefix);
    if (mg_rawfile_next_acquisition(r->out, prefix, c, n, err))
        return err ? err->code : MG_EIO;
    return 0;
}

/* The thread plan for cfg's links (receivers near their NICs, workers on the other cores). */
static int thread_plan(mg_topology *topo, const mg_run_config *cfg, mg_thread_plan *plan, int *workers, mg_error *err)
{
    int nlinks = mg_detector_links(&cfg->det);
    *workers = cfg->workers > 0 ? cfg->workers : mg_topology_default_workers(topo, cfg->pcap ? 0 : nlinks);
    char ifn[MG_MAX_LINKS][32];
    const char *ifp[MG_MAX_LINKS];
    for (int l = 0; l < nlinks; l++) {
        int m, i;
        mg_detector_link(&cfg->det, l, &m, &i);
        mg_interface_of_address(cfg->pcap ? NULL : cfg->det.modules[m].bind, ifn[l], sizeof ifn[l]);
        ifp[l] = ifn[l];
    }
    return mg_topology_plan(topo, nlinks, ifp, *workers, cfg->cpus, plan, err);
}

/* The frame buffers: frames stay open for a lagging link up to the frame timeout, so the detector's rate x
 * the timeout of them, plus 64 for compression and writing - or what --buffer-frames says. */
static int frame_slots(const mg_run_config *cfg, double *rate, double *timeout_ms)
{
    *rate = cfg->rate_hz > 0 ? cfg->rate_hz : cfg->det.rate_hz > 0 ? cfg->det.rate_hz : 2000;
    *timeout_ms = cfg->frame_timeout_ms > 0 ? cfg->frame_timeout_ms : 100;
    return cfg->buffer_frames > 0 ? cfg->buffer_frames : 64 + (int)ceil(*rate * *timeout_ms / 1000);
}

int mg_run_keep(const mg_run_config *cfg, mg_run_kept *k, mg_error *err)
{
    memset(k, 0, sizeof *k);
    if (!(k->threads = mg_threads_new(err)))
        return err ? err->code : MG_ENOMEM;
    if (!(k->topo = mg_topology_open(cfg->topology, err))) {
        mg_run_kept_free(k);
        return err ? err->code : MG_ESYS;
    }
    mg_thread_plan plan;
    int workers;
    if (thread_plan(k->topo, cfg, &plan, &workers, err)) {
        mg_run_kept_free(k);
        return err ? err->code : MG_EINVAL;
    }
    /* one pool, on the node of the first link's receiver (modules received on other nodes get buffers of
     * their own at each run, on their node) */
    double rate, timeout_ms;
    int slots = frame_slots(cfg, &rate, &timeout_ms);
    k->pool_bytes = (size_t)slots * (size_t)cfg->det.nmodules * MG_MODULE_BYTES;
    uint64_t avail = mem_available();
    if (avail && k->pool_bytes > avail) {
        mg_error_set(err, MG_ENOMEM, "%d frame buffers of %d module(s) need %.1f GiB and this machine has %.1f GiB "
                     "available: lower --buffer-frames, --frame-timeout (%g ms) or --rate (%g Hz)", slots,
                     cfg->det.nmodules, (double)k->pool_bytes / (1 << 30), (double)avail / (1 << 30), timeout_ms, rate);
        mg_run_kept_free(k);
        return MG_ENOMEM;
    }
    int node = mg_detector_links(&cfg->det) ? plan.link_node[0] : -1;
    if (!(k->pool = mg_numa_alloc_until(k->topo, k->pool_bytes, node, cfg->stop))) {
        int stopped = stop_asked(cfg);
        mg_run_kept_free(k);
        return stopped ? STOPPED_IN_SETUP(err)
                       : mg_error_set(err, MG_ENOMEM, "out of memory for %.0f MiB of frame buffers",
                                      (double)(slots * cfg->det.nmodules));
    }
    return 0;
}

void mg_kept_tables_free(struct mg_kept_tables *kt)
{
    if (!kt)
        return;
    for (int n = 0; n < MG_MAX_THREADS; n++)
        if (kt->node_tables[n]) {
            for (int m = 0; m < MG_MAX_MODULES; m++)
                mg_module_tables_free(&kt->node_tables[n][m]);
            free(kt->node_tables[n]);
        }
    mg_calib_free(&kt->calib);
    free(kt);
}

void mg_run_kept_free(mg_run_kept *k)
{
    mg_kept_tables_free(k->tables);
    if (k->pool)
        mg_numa_free(k->topo, k->pool, k->pool_bytes);
    mg_topology_close(k->topo);
    mg_threads_free(k->threads);
    memset(k, 0, sizeof *k);
}

int run_setup(run *r, const mg_run_config *cfg, int lossless, int by_reference, mg_error *err)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->log = cfg->log ? cfg->log : stderr;
    r->t0 = mg_now_ns();
    atomic_init(&r->stop_internal, 0);
    const mg_run_kept *kept = cfg->kept;
    r->topo = kept && kept->topo ? kept->topo : mg_topology_open(cfg->topology, err);
    if (!r->topo)
        return err ? err->code : MG_ESYS;
    r->topo_kept = kept && r->topo == kept->topo;
    int nlinks = mg_detector_links(&cfg->det);
    int workers;
    if (thread_plan(r->topo, cfg, &r->plan, &workers, err))
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
    double rate, timeout_ms;
    int base_slots = frame_slots(cfg, &rate, &timeout_ms);
    int slots = base_slots + hold;
    uint64_t need = (uint64_t)slots * (uint64_t)cfg->det.nmodules * MG_MODULE_BYTES;
    uint64_t avail = mem_available();
    if (!by_reference && avail && need > avail)
        return mg_error_set(err, MG_ENOMEM,
                            "%d frame buffers of %d module(s) need %.1f GiB and this machine has %.1f GiB "
                            "available: lower --buffer-frames%s, or --frame-timeout (%g ms) or --rate (%g Hz)",
                            slots, cfg->det.nmodules, (double)need / (1 << 30), (double)avail / (1 << 30),
                            hold ? " or the run-time pedestal's frames" : "", timeout_ms, rate);
    if (!cfg->quiet) {
        if (cfg->buffer_frames > 0)
            fprintf(r->log, "frame buffers: %d (--buffer-frames)", base_slots);
        else
            fprintf(r->log, "frame buffers: %d (%g Hz x %g ms frame timeout + 64 for compression and writing)",
                    base_slots, rate, timeout_ms);
        if (hold)
            fprintf(r->log, " + %d held for the run-time pedestal", hold);
        fprintf(r->log, " x %d MiB = %.0f MiB%s\n", cfg->det.nmodules, (double)need / (1 << 20),
                by_reference ? " (not taken: a mapped capture is read in place)" : "");
    }
    if (stop_asked(cfg))
        return STOPPED_IN_SETUP(err);
    mg_asm_config ac = {
        .det = &cfg->det,
        .reorder = cfg->reorder,
        .slots = slots,
        .downstream = hold ? hold + (slots - hold) / 4 : 0,
        .align = cfg->align,
        .check_position = cfg->check_position,
        .max_frames = cfg->max_frames,
        .rate_hz = rate,
        .frame_timeout_ns = (uint64_t)(timeout_ms * 1e6),
        .readnrows = cfg->readnrows ? cfg->readnrows : cfg->det.readnrows,
        .topo = r->topo,
        .numa_node = nlinks ? r->plan.link_node[0] : -1,
        .module_node = r->pin ? module_node : NULL,
        .lossless = lossless,
        .by_reference = by_reference,
        .stop = cfg->stop,
        .pool = kept ? kept->pool : NULL,
        .pool_bytes = kept ? kept->pool_bytes : 0,
    };
    r->a = mg_asm_new(&ac, err);
    if (!r->a)
        return err ? err->code : MG_ENOMEM;
    if (stop_asked(cfg))
        return STOPPED_IN_SETUP(err);
    if (cfg->calibration && setup_correction(r, cfg, err))
        return err ? err->code : MG_ECONFIG;
    if (hold) {
        if (!(r->runped = mg_runped_for(&r->calib, &cfg->det, cfg->runtime_frames, cfg->runtime_max ? cfg->runtime_max
                                                                                                   : 200, err)))
            return err ? err->code : MG_ENOMEM;
        r->nx.runtime_mode = cfg->runtime_frames ? "fixed" : "auto";
        r->nx.runtime_onset = -1;
    }
    if (stop_asked(cfg))
        return STOPPED_IN_SETUP(err);
    /* the files last: a run that cannot start leaves nothing behind */
    if (cfg->output) {
        mg_rawfile_config rc = {.prefix = cfg->output, .det = &cfg->det, .command_line = cfg->command_line,
                                .frames_per_file = cfg->frames_per_file,
                                .overwrite = cfg->overwrite, .layout = cfg->calibration ? &r->layout : NULL};
        r->out = mg_rawfile_create(&rc, err);
        if (!r->out)
            return err ? err->code : MG_EIO;
    }
    mg_pipeline_config pc = {
        .assembler = r->a,
        .out = r->out,
        .no_compress = !cfg->output && cfg->no_compress && !cfg->pedestal,
        .acquisition = next_acquisition,
        .acquisition_ctx = r,
        .workers = workers,
        .impl = cfg->impl,
        .lz4_acceleration = cfg->lz4_acceleration,
        .topo = r->topo,
        .plan = r->pin ? &r->plan : NULL,
        .threads = cfg->kept ? cfg->kept->threads : NULL,
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
        .written = cfg->written,
        .written_ctx = cfg->written_ctx,
    };
    r->pipe = mg_pipeline_start(&pc, err);
    if (!r->pipe || stop_asked(cfg)) {
        if (r->pipe) {
            mg_error_set(err, MG_EINVAL, "stopped during set-up; nothing was written");
            /* no packet came: the collector ends once every link is flushed */
            for (int l = 0; l < nlinks; l++)
                mg_asm_flush(r->a, l);
            mg_pipeline_finish(r->pipe, NULL, NULL);
            r->pipe = NULL;
        }
        mg_rawfile_abandon(r->out);
        r->out = NULL;
        return err ? err->code : MG_ESYS;
    }
    r->last_progress = r->t0;
    /* before any packet is taken: the images' shape goes out ahead of the first image */
    if (cfg->on_images && !cfg->pedestal) {
        mg_run_images im = {.corrected = cfg->calibration != NULL, .type = cfg->out_type};
        if (im.corrected) {
            im.width = r->geom.width;
            im.height = r->geom.height;
            im.pixel_mask = r->pixel_mask;
        } else {
            im.width = MG_MODULE_COLS;
            im.height = MG_MODULE_ROWS * cfg->det.nmodules;
        }
        cfg->on_images(cfg->written_ctx, &im);
    }
    return 0;
}

void run_ready(run *r)
{
    r->t_ready = mg_now_ns();
    const mg_run_config *cfg = r->cfg;
    if (cfg->ready)
        atomic_store(cfg->ready, 1);
    if (cfg->ready_file) {
        /* written whole under another name, then renamed: a watcher never sees half a file */
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp%d", cfg->ready_file, (int)getpid());
        FILE *f = fopen(tmp, "w");
        int ok = f != NULL;
        if (f) {
            fprintf(f, "ready pid %d\n", (int)getpid());
            for (int m = 0; m < cfg->det.nmodules; m++)
                for (int i = 0; i < cfg->det.modules[m].interfaces; i++)
                    fprintf(f, "listening %s:%u module %s interface %d\n", cfg->pcap ? "capture" : cfg->det.modules[m].bind,
                            cfg->det.modules[m].ports[i], cfg->det.modules[m].name, i);
            ok = fclose(f) == 0 && rename(tmp, cfg->ready_file) == 0;
        }
        if (!ok) {
            fprintf(r->log, "warning: cannot write the ready file %s: %s\n", cfg->ready_file, strerror(errno));
            unlink(tmp);
        }
    }
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
        t->lagged += x->lagged;
        t->out_of_order += x->out_of_order;
        t->stray += x->stray;
        t->after_end += x->after_end;
        t->overrun += x->overrun;
        t->kernel_drops += x->kernel_drops;
        t->bytes += x->bytes;
        for (int v = 0; v < MG_PACKET_VERDICT_COUNT; v++)
            t->rejected[v] += x->rejected[v];
        if (x->first_ns && (!t->first_ns || x->first_ns < t->first_ns))
            t->first_ns = x->first_ns;
        if (x->last_ns > t->last_ns)
            t->last_ns = x->last_ns;
    }
    mg_asm_get_totals(r->a, &s->frames);
    /* packets taken into frames after the last image of a run that reached -n: after the end, not received */
    s->total.packets -= s->frames.after_end;
    s->total.after_end += s->frames.after_end;
    s->packets_lost = s->frames.packets_missing;
    s->expected_packets = mg_asm_expected_packets(r->a);
    s->packets_expected = s->frames.images * (uint64_t)s->nmodules * s->expected_packets;
    s->acquisitions = s->frames.acquisitions;
    for (int i = 0; i < s->acquisitions && i < MG_RUN_ACQ_KEPT; i++)
        mg_asm_acquisition(r->a, i, &s->acq[i]);
    for (int m = 0; m < s->nmodules; m++)
        snprintf(s->module_names[m], sizeof s->module_names[m], "%s", r->cfg->det.modules[m].name);
    s->max_frames = r->cfg->max_frames;
}

/* The counters stored in a master file's /run: the run's packet counters
 * (as they stand now) and acquisition `acq`'s frame counters. */
int run_counters(run *r, mg_run_summary *s, const mg_acq_info *qi, int acq, mg_counter *c)
{
    if (!s->nlinks)
        sum_links(r, s);
    int n = 0;
#define C(name, v) c[n++] = (mg_counter){name, (uint64_t)(v)}
    C("packets_received", s->total.packets);
    C("packets_lost", s->packets_lost);
    C("packets_duplicated", s->total.duplicates);
    C("packets_out_of_order", s->total.out_of_order);
    C("packets_late", s->total.late);
    C("packets_lagged", s->total.lagged);
    C("packets_overrun", s->total.overrun);
    C("packets_stray", s->total.stray);
    C("packets_after_end", s->total.after_end);
    C("kernel_drops", s->total.kernel_drops);
    C("rejected_wrong_size", s->total.rejected[MG_PACKET_BAD_SIZE]);
    C("rejected_wrong_detector_type", s->total.rejected[MG_PACKET_BAD_TYPE]);
    C("rejected_wrong_version", s->total.rejected[MG_PACKET_BAD_VERSION]);
    C("rejected_packet_number", s->total.rejected[MG_PACKET_BAD_NUMBER]);
    C("rejected_position", s->total.rejected[MG_PACKET_BAD_POSITION]);
    C("rejected_frame_number", s->total.rejected[MG_PACKET_BAD_FRAME]);
    C("unexpected_port", s->unexpected_port);
    C("acquisition", acq + 1);
    C("acquisitions", s->acquisitions);
    C("frames_complete", qi->complete);
    C("frames_partial", qi->partial);
    C("frames_missing", qi->missing);
    C("frames_written", r->out ? mg_rawfile_set_frames(r->out) : qi->images);
    C("frames_skipped_before", qi->skipped > 0 ? (uint64_t)qi->skipped : 0);
    C("expected_packets_per_module", s->expected_packets);
    if (r->cfg->calibration)
        C("module_frames_uncalibrated_cell", s->uncalibrated);
#undef C
    return n;
}

/* The pipeline's counters into a summary. */
static void sum_pipeline(mg_run_summary *s, const mg_pipeline_stats *ps)
{
    s->frames_written = ps->frames_written;
    s->frames_discarded = ps->frames_discarded;
    s->frames_dark = ps->frames_dark;
    s->dark_exposure = ps->dark_exposure;
    s->frames_other_cell = ps->frames_other_cell;
    s->cells_seen = ps->cells_seen;
    s->uncalibrated = ps->uncalibrated;
    s->bytes_raw = ps->bytes_raw;
    s->bytes_compressed = ps->bytes_compressed;
    s->queue_fill_max = ps->queue_fill_max;
    s->queue_capacity = ps->queue_capacity;
}

/* The counters so far to whoever watches (cfg->observe), at most every 100 ms. */
static void observe(run *r, int force)
{
    const mg_run_config *cfg = r->cfg;
    uint64_t now = mg_now_ns();
    if (!cfg || !cfg->observe || !r->a || (!force && now - r->last_observed < 100000000ull))
        return;
    if (!r->live && !(r->live = malloc(sizeof *r->live)))
        return; /* no memory for a snapshot: the watcher waits for the next */
    r->last_observed = now;
    mg_run_summary *s = r->live;
    memset(s, 0, sizeof *s);
    s->started = r->t_ready != 0;
    sum_links(r, s);
    if (r->pipe) {
        mg_pipeline_stats ps;
        mg_pipeline_get_stats(r->pipe, &ps);
        sum_pipeline(s, &ps);
        s->queue_fill_max = ps.queue_fill; /* now, not the most */
    }
    s->unexpected_port = r->unexpected_port;
    s->capture_skipped = r->capture_skipped;
    s->seconds = r->t_ready ? (double)(now - r->t_ready) / 1e9 : 0;
    s->setup_seconds = r->t_ready > r->t0 ? (double)(r->t_ready - r->t0) / 1e9 : 0;
    if (r->out) {
        snprintf(s->master, sizeof s->master, "%s", mg_rawfile_master_path(r->out));
        s->frames_synced = mg_rawfile_synced(r->out);
    }
    cfg->observe(cfg->observe_ctx, s);
}

void run_progress(run *r, int force)
{
    observe(r, force);
    if (!r->cfg || !r->cfg->progress || !r->a)
        return;
    uint64_t now = mg_now_ns();
    if (!force && now - r->last_progress < 1000000000ull)
        return;
    mg_run_summary s;
    memset(&s, 0, sizeof s);
    sum_links(r, &s);
    mg_pipeline_stats ps;
    memset(&ps, 0, sizeof ps);
    if (r->pipe)
        mg_pipeline_get_stats(r->pipe, &ps);
    double dt = (double)(now - r->last_progress) / 1e9;
    double rate = dt > 0 ? (double)(s.total.bytes - r->last_bytes) / dt / 1e9 : 0;
    uint64_t rejected = mg_link_stats_rejected(&s.total);
    fprintf(r->log,
            "[%6.1fs] frames %llu (complete %llu, partial %llu, missing %llu) written %llu | packets %llu lost %llu "
            "dup %llu ooo %llu late %llu lag %llu kdrop %llu stray %llu bad %llu | %.2f GB/s | queue %u/%u buffers "
            "%d/%d",
            (double)(now - r->t0) / 1e9, (unsigned long long)s.frames.images,
            (unsigned long long)s.frames.frames_complete, (unsigned long long)s.frames.frames_partial,
            (unsigned long long)s.frames.frames_missing, (unsigned long long)ps.frames_written,
            (unsigned long long)s.total.packets, (unsigned long long)s.packets_lost,
            (unsigned long long)s.total.duplicates, (unsigned long long)s.total.out_of_order,
            (unsigned long long)s.total.late, (unsigned long long)s.total.lagged,
            (unsigned long long)s.total.kernel_drops, (unsigned long long)s.total.stray, (unsigned long long)rejected,
            rate, ps.queue_fill, ps.queue_capacity, mg_asm_slots_in_use(r->a), mg_asm_slot_count(r->a));
    if (s.acquisitions > 1)
        fprintf(r->log, " | acquisition %d", s.acquisitions);
    fprintf(r->log, "\n");
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
        sum_pipeline(sum, &ps);
        if (prc) {
            ended = MG_END_ERROR;
            if (!rc) {
                rc = prc;
                if (err)
                    *err = perr;
            }
        }
    }
    sum->unexpected_port = r->unexpected_port;
    sum->capture_skipped = r->capture_skipped;
    if (r->a) {
        sum_links(r, sum);
        /* every image the assembler handed on must be in the files: any fewer is data lost here */
        if (r->out && sum->frames.images > sum->frames_written)
            sum->frames_unwritten = sum->frames.images - sum->frames_written;
        /* asked for N frames and the run ended early: the frames never seen at
         * the end are missing too (the detector was told to send them) */
        if (r->cfg->max_frames && ended != MG_END_FRAMES && sum->frames.images < r->cfg->max_frames &&
            sum->frames.images > 0) {
            uint64_t tail = r->cfg->max_frames - sum->frames.images;
            uint64_t per = (uint64_t)sum->nmodules * sum->expected_packets;
            sum->packets_lost += tail * per;
            sum->packets_expected += tail * per;
            sum->frames_missing_at_end = tail;
        }
    }
    uint64_t now = mg_now_ns();
    sum->started = r->t_ready != 0;
    sum->setup_seconds = r->t_ready > r->t0 ? (double)(r->t_ready - r->t0) / 1e9 : 0;
    /* speed from the first packet rather than from process start (set-up takes seconds with large
     * buffers): live, the span of the kernel's receive times; replay, the time it took from its first record */
    if (r->t_data)
        sum->seconds = (double)(now - r->t_data) / 1e9;
    else if (sum->total.first_ns && sum->total.last_ns > sum->total.first_ns)
        sum->seconds = (double)(sum->total.last_ns - sum->total.first_ns) / 1e9;
    else
        sum->seconds = r->t_ready ? (double)(now - r->t_ready) / 1e9 : (double)(now - r->t0) / 1e9;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    sum->cpu_seconds = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                       (double)ru.ru_stime.tv_usec / 1e6;
    sum->stopped_by = ended;
    if (r->out) {
        int nacq = sum->acquisitions;
        int last = mg_rawfile_acquisition(r->out);
        snprintf(sum->last_master, sizeof sum->last_master, "%s", mg_rawfile_master_path(r->out));
        if (last == 0)
            snprintf(sum->master, sizeof sum->master, "%s", mg_rawfile_master_path(r->out));
        else
            snprintf(sum->master, sizeof sum->master, "%s_master.h5", r->cfg->output);
        mg_acq_info qi;
        memset(&qi, 0, sizeof qi);
        if (nacq > last)
            mg_asm_acquisition(r->a, last, &qi);
        mg_counter c[40];
        int n = run_counters(r, sum, &qi, last, c);
        /* the modules' ids from their headers against the names that picked their constants */
        const uint16_t *ids = mg_rawfile_module_ids(r->out);
        for (int m = 0; r->cfg->calibration && m < r->cfg->det.nmodules; m++)
            if (mg_module_id_fits(r->cfg->det.modules[m].name, ids[m]) == 0 && r->log)
                fprintf(r->log, "warning: module %s's packet headers say module id %u: check that the calibration "
                                "of %s is this module's\n", r->cfg->det.modules[m].name, (unsigned)ids[m],
                        r->cfg->det.modules[m].name);
        mg_error ferr = {0};
        uint64_t in_files = mg_rawfile_frames(r->out);
        int frc = mg_rawfile_close(r->out, c, n, &ferr);
        if (!frc)
            sum->frames_synced = in_files;
        r->out = NULL;
        if (frc && !rc) {
            rc = frc;
            if (err)
                *err = ferr;
        }
    }
    free(r->live);
    r->live = NULL;
    mg_asm_free(r->a);
    r->a = NULL;
    if (r->leave_tables && !rc) { /* this run's calibration and tables stay for the next run */
        struct mg_kept_tables *kt = calloc(1, sizeof *kt);
        if (kt) {
            mg_kept_tables_free(r->cfg->kept->tables);
            snprintf(kt->path, sizeof kt->path, "%s", r->cfg->calibration);
            kt->st = r->cal_stat;
            kt->energy_kev = r->cfg->energy_kev;
            kt->kev = r->cfg->kev;
            kt->calib = r->calib;
            memcpy(kt->node_tables, r->node_tables, sizeof kt->node_tables);
            r->cfg->kept->tables = kt;
            r->tables_kept = 1;
        }
    }
    if (r->tables_kept) { /* they belong to cfg->kept (but a node's set made here for a node it had none for) */
        const struct mg_kept_tables *kt = r->cfg->kept->tables;
        for (int n = 0; n < MG_MAX_THREADS; n++)
            if (r->node_tables[n] == kt->node_tables[n])
                r->node_tables[n] = NULL;
        mg_calib_init(&r->calib);
    }
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
    if (!r->topo_kept)
        mg_topology_close(r->topo);
    r->topo = NULL;
    return rc;
}

uint64_t mg_run_refused(const mg_run_summary *s)
{
    return s->total.stray + s->unexpected_port + mg_link_stats_rejected(&s->total);
}

int mg_run_outcome(const mg_run_summary *s, int rc, double max_loss, char *why, size_t cap)
{
    double frac = s->packets_expected ? (double)s->packets_lost / (double)s->packets_expected : 0;
    uint64_t refused = mg_run_refused(s);
    if (rc) {
        snprintf(why, cap, "FAILED: the run stopped on an error; the files hold what came before it");
        return MG_EXIT_FAILED;
    }
    if (s->frames_unwritten) {
        snprintf(why, cap, "DATA LOST: %llu of the %llu frames received were not written to the files",
                 (unsigned long long)s->frames_unwritten, (unsigned long long)s->frames.images);
        return MG_EXIT_LOSS;
    }
    if (!s->frames.images && !s->frames_dark) {
        snprintf(why, cap, "NO DATA: not one frame was received%s", refused ? " (only datagrams that fit none)" : "");
        return MG_EXIT_LOSS;
    }
    if (s->frames_missing_at_end || (s->max_frames && s->frames.images < s->max_frames)) {
        snprintf(why, cap, "ENDED EARLY: %llu of the %llu frames asked for; %llu of %llu packets lost (%.3g %%)",
                 (unsigned long long)s->frames.images, (unsigned long long)s->max_frames,
                 (unsigned long long)s->packets_lost, (unsigned long long)s->packets_expected, 100 * frac);
        if (frac > max_loss || !s->frames_missing_at_end)
            return MG_EXIT_LOSS;
    }
    if (s->packets_lost) {
        snprintf(why, cap, "%s: %llu of %llu packets lost (%.3g %%) in %llu partial and %llu missing frames%s",
                 frac > max_loss ? "DATA LOST" : "loss within --max-loss", (unsigned long long)s->packets_lost,
                 (unsigned long long)s->packets_expected, 100 * frac,
                 (unsigned long long)s->frames.frames_partial, (unsigned long long)s->frames.frames_missing,
                 s->frames_missing_at_end ? " and at the end" : "");
        if (frac > max_loss)
            return MG_EXIT_LOSS;
    }
    if (refused) {
        snprintf(why, cap, "%s, but %llu datagrams were refused or stray: something else sends to the detector's "
                 "ports, or a module's numbering did not fit", s->packets_lost ? "loss within --max-loss" :
                 "every frame complete", (unsigned long long)refused);
        return MG_EXIT_REFUSED;
    }
    if (!s->packets_lost)
        snprintf(why, cap, "complete: %llu frames, nothing lost", (unsigned long long)s->frames.images);
    return MG_EXIT_OK;
}

static const char *pairing_name(mg_pairing p)
{
    switch (p) {
    case MG_PAIRED_BUNCH: return "by equal bunch id";
    case MG_PAIRED_TIMESTAMP: return "by equal timestamp";
    case MG_PAIRED_ARRIVAL: return "by arrival time";
    default: return "";
    }
}

void mg_run_print_summary(const mg_run_summary *s, int rc, double max_loss, FILE *out)
{
    const mg_link_stats *t = &s->total;
    char why[512];
    int status = mg_run_outcome(s, rc, max_loss, why, sizeof why);
    fprintf(out, "---- run ended: %s ----\n", mg_run_end_reason(s->stopped_by));
    fprintf(out, "result    %s (exit status %d)\n", why, status);
    /* each cause of loss, with what to do about it */
    uint64_t explained = t->kernel_drops + t->overrun + t->late + t->lagged;
    if (t->kernel_drops)
        fprintf(out, "  cause   kernel drops %llu: the receiving threads fell behind and the kernel dropped packets at "
                     "morgul's sockets. Check that each has a core of its own (the thread plan, --cpus) and that the "
                     "socket buffers were not capped (see the start of the run)\n", (unsigned long long)t->kernel_drops);
    if (t->overrun)
        fprintf(out, "  cause   buffer overruns %llu: every frame buffer was still waiting to be compressed or written: "
                     "the writing fell behind the detector. For bursts give more buffers (--buffer-frames; 1 MiB per "
                     "module each), otherwise faster storage or more workers\n", (unsigned long long)t->overrun);
    if (t->lagged)
        fprintf(out, "  cause   lagged %llu: a link fell further behind the others than the frame buffers hold "
                     "(--frame-timeout at --rate); its frames were written without those packets. Give a longer "
                     "--frame-timeout or more --buffer-frames, and check that link's cable, switch and core\n",
                (unsigned long long)t->lagged);
    if (t->late)
        fprintf(out, "  cause   late %llu: packets came after their frame had closed (reordered by more than --window "
                     "frames, or after their link was silent for --frame-timeout)\n", (unsigned long long)t->late);
    if (s->frames.frames_missing)
        fprintf(out, "  cause   %llu frames of which not one packet came, between frames that did: written as "
                     "all-invalid images to keep every image in its place\n",
                (unsigned long long)s->frames.frames_missing);
    uint64_t in_frames = s->frames.packets_missing;
    if (in_frames > explained)
        fprintf(out, "  cause   %llu packets never arrived: lost on the way (cabling, switch, the network card's "
                     "rings) or never sent (in a replay: not in the capture)\n",
                (unsigned long long)(in_frames - explained));
    if (s->frames_unwritten)
        fprintf(out, "  cause   %llu frames were received and assembled but never reached the files (written %llu "
                     "of %llu): report this as a bug in morgul, with this summary\n",
                (unsigned long long)s->frames_unwritten, (unsigned long long)s->frames_written,
                (unsigned long long)s->frames.images);
    if (s->frames_missing_at_end)
        fprintf(out, "  cause   %llu frames asked for never came: the run ended (%s) before the detector sent them\n",
                (unsigned long long)s->frames_missing_at_end, mg_run_end_reason(s->stopped_by));
    if (t->stray)
        fprintf(out, "  refused stray %llu: JUNGFRAU packets on the detector's ports that fit no frame (single stray "
                     "packets, another sender, or a numbering no acquisition has; see below)\n",
                (unsigned long long)t->stray);
    uint64_t rejected = mg_link_stats_rejected(t);
    if (rejected || s->unexpected_port || s->capture_skipped) {
        fprintf(out, "  refused %llu datagrams", (unsigned long long)rejected);
        for (int v = 1; v < MG_PACKET_VERDICT_COUNT; v++)
            if (t->rejected[v])
                fprintf(out, "; %s: %llu", mg_packet_verdict_name((mg_packet_verdict)v),
                        (unsigned long long)t->rejected[v]);
        if (s->unexpected_port)
            fprintf(out, "; on ports not in the detector description: %llu", (unsigned long long)s->unexpected_port);
        if (s->capture_skipped)
            fprintf(out, "; capture records not usable: %llu", (unsigned long long)s->capture_skipped);
        fprintf(out, "\n");
    }
    /* the acquisitions */
    for (int i = 0; i < s->acquisitions && i < MG_RUN_ACQ_KEPT; i++) {
        const mg_acq_info *q = &s->acq[i];
        if (s->acquisitions > 1 || q->skipped > 0) {
            fprintf(out, "acquisition %d: frame numbers %llu..%llu, %llu images (complete %llu, partial %llu, missing "
                         "%llu)", i + 1, (unsigned long long)q->first_number, (unsigned long long)q->last_number,
                    (unsigned long long)q->images, (unsigned long long)q->complete, (unsigned long long)q->partial,
                    (unsigned long long)q->missing);
            if (i > 0)
                fprintf(out, q->skipped < 0 ? "; the counter restarted" : "; the counter jumped %lld frame numbers",
                        (long long)q->skipped);
            fprintf(out, "\n");
        }
        for (int m = 0; m < s->nmodules; m++) {
            if (q->pairing[m] == MG_PAIRED_BUNCH || q->pairing[m] == MG_PAIRED_TIMESTAMP ||
                q->pairing[m] == MG_PAIRED_ARRIVAL)
                fprintf(out, "  module  %s: its frame numbers differ from the acquisition's by %+lld; its frames "
                             "were paired %s\n", s->module_names[m], (long long)q->offset[m],
                        pairing_name(q->pairing[m]));
            else if (q->pairing[m] == MG_PAIRED_REFUSED)
                fprintf(out, "  module  %s: its frame numbers are not the others' (--align number): its packets are "
                             "counted as stray; --align auto pairs such a module with the others' frames\n",
                        s->module_names[m]);
        }
    }
    if (s->acquisitions > MG_RUN_ACQ_KEPT)
        fprintf(out, "acquisitions: %d in all (the first %d listed)\n", s->acquisitions, MG_RUN_ACQ_KEPT);
    fprintf(out, "frames    complete %llu  partial %llu  missing %llu  written %llu; links up to %.1f ms apart\n",
            (unsigned long long)s->frames.frames_complete, (unsigned long long)s->frames.frames_partial,
            (unsigned long long)s->frames.frames_missing, (unsigned long long)s->frames_written,
            (double)s->frames.max_skew_ns / 1e6);
    if (s->frames_dark)
        fprintf(out, "dark      %llu complete frames into the pedestals, %llu partial ones left out\n",
                (unsigned long long)s->frames_dark, (unsigned long long)s->frames_discarded);
    if (s->frames_other_cell)
        fprintf(out, "          %llu frames of storage cells beyond --storage-cells left out\n",
                (unsigned long long)s->frames_other_cell);
    if (s->uncalibrated)
        fprintf(out, "warning   %llu module-frames came from a storage cell the calibration has no constants for: "
                     "their pixels are written invalid\n", (unsigned long long)s->uncalibrated);
    fprintf(out, "packets   received %llu  lost %llu  duplicated %llu  out of order %llu  late %llu  lagged %llu\n",
            (unsigned long long)t->packets, (unsigned long long)s->packets_lost, (unsigned long long)t->duplicates,
            (unsigned long long)t->out_of_order, (unsigned long long)t->late, (unsigned long long)t->lagged);
    fprintf(out, "          kernel drops %llu  buffer overruns %llu  stray %llu  after end %llu  refused %llu\n",
            (unsigned long long)t->kernel_drops, (unsigned long long)t->overrun, (unsigned long long)t->stray,
            (unsigned long long)t->after_end, (unsigned long long)rejected);
    for (int l = 0; l < s->nlinks && s->nlinks > 1; l++)
        fprintf(out, "  link %d: received %llu dup %llu ooo %llu late %llu lagged %llu stray %llu kdrop %llu\n", l,
                (unsigned long long)s->link[l].packets, (unsigned long long)s->link[l].duplicates,
                (unsigned long long)s->link[l].out_of_order, (unsigned long long)s->link[l].late,
                (unsigned long long)s->link[l].lagged, (unsigned long long)s->link[l].stray,
                (unsigned long long)s->link[l].kernel_drops);
    double gb = (double)t->bytes / 1e9;
    fprintf(out, "speed     %.2f s from the first packet, %.3g GB in, %.2f GB/s, %.0f module-frames/s; CPU %.2f s; "
                 "set-up %.2f s\n",
            s->seconds, gb, s->seconds > 0 ? gb / s->seconds : 0,
            s->seconds > 0 ? (double)(s->frames.frames_complete + s->frames.frames_partial) * s->nmodules / s->seconds
                           : 0,
            s->cpu_seconds, s->setup_seconds);
    if (s->bytes_compressed)
        fprintf(out, "output    %.3f GB raw -> %.3f GB compressed (ratio %.2f); queue fill max %u of %u\n",
                (double)s->bytes_raw / 1e9, (double)s->bytes_compressed / 1e9,
                (double)s->bytes_raw / (double)s->bytes_compressed, s->queue_fill_max, s->queue_capacity);
    if (s->master[0]) {
        fprintf(out, "files     %s", s->master);
        if (s->acquisitions > 1 && strcmp(s->master, s->last_master))
            fprintf(out, " ... %s", s->last_master);
        fprintf(out, "\n");
    }
}
