/* sizing.c - cost profiles and what a detector at a rate needs of a server
 * (contract in morgul/sizing.h). */
#include "morgul/sizing.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "morgul/convert.h"
#include "morgul/jungfrau.h"

const char *const mg_cost_names[MG_COST_COUNT] = {
    "receive",        "convert_int16",  "convert_int32",  "convert_float32", "compress_raw",
    "compress_int16", "compress_int32", "compress_float32", "write"};

void mg_cost_profile_builtin(mg_cost_profile *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->machine, sizeof p->machine, "built in: morgul bench profile on the development machine (a 2-core "
                                            "VM, 2026-12-07)");
    /* `morgul bench profile --scratch /mnt/hp` there (docs/performance.md): receiving over loopback with the
     * kernel's copies, conversion with the layout, compression with the checksum, writing raw chunks.  The
     * compression stages from a run after noise planes went in as literals (session 14), the others from
     * the run before it (session 12; their code has not changed, and the later run's machine was slower) */
    const double ns[MG_COST_COUNT] = {446e3, 519e3, 686e3, 611e3, 540e3, 412e3, 674e3, 691e3, 170e3};
    const double mib = 1 << 20;
    /* memory traffic by the data sizes: the kernel's copy and the receiver's (in, out); raw words, the G0
     * tables (4 MiB) and the image; the image and the chunk; the chunk */
    const double bytes[MG_COST_COUNT] = {4.02 * mib, 6.01 * mib, 7.02 * mib, 7.02 * mib, 1.79 * mib, 1.19 * mib,
                                         2.21 * mib, 3.91 * mib, 0.79 * mib};
    memcpy(p->ns, ns, sizeof ns);
    memcpy(p->bytes, bytes, sizeof bytes);
}

int mg_cost_profile_write(const char *path, const mg_cost_profile *p, mg_error *err)
{
    json_t *stages = json_object();
    for (int k = 0; k < MG_COST_COUNT; k++)
        json_object_set_new(stages, mg_cost_names[k], json_pack("{s:f,s:f}", "ns", p->ns[k], "bytes", p->bytes[k]));
    json_t *doc = json_pack("{s:s,s:s,s:o}", "format", "morgul cost profile 1", "machine", p->machine, "stages",
                            stages);
    /* the directory first (~/.config/morgul may not exist yet) */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        for (char *q = dir + 1; *q; q++)
            if (*q == '/') {
                *q = 0;
                mkdir(dir, 0755);
                *q = '/';
            }
        mkdir(dir, 0755);
    }
    int rc = json_dump_file(doc, path, JSON_INDENT(2) | JSON_SORT_KEYS)
                 ? mg_error_set(err, MG_EIO, "cannot write the profile %s: %s", path, strerror(errno))
                 : 0;
    json_decref(doc);
    return rc;
}

int mg_cost_profile_read(const char *path, mg_cost_profile *p, mg_error *err)
{
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return mg_error_set(err, MG_EFORMAT, "cannot read the profile %s: %s (line %d); make one with morgul "
                                             "bench profile", path, je.text, je.line);
    memset(p, 0, sizeof *p);
    const char *machine = json_string_value(json_object_get(doc, "machine"));
    snprintf(p->machine, sizeof p->machine, "%s", machine ? machine : path);
    json_t *stages = json_object_get(doc, "stages");
    int rc = 0;
    for (int k = 0; k < MG_COST_COUNT && !rc; k++) {
        json_t *st = json_object_get(stages, mg_cost_names[k]);
        p->ns[k] = json_number_value(json_object_get(st, "ns"));
        p->bytes[k] = json_number_value(json_object_get(st, "bytes"));
        if (!(p->ns[k] > 0) || !(p->bytes[k] > 0))
            rc = mg_error_set(err, MG_EFORMAT, "the profile %s has no positive figures for stage '%s'; make it "
                                               "again with morgul bench profile", path, mg_cost_names[k]);
    }
    json_decref(doc);
    return rc;
}

const char *mg_cost_profile_default_path(char *buf, size_t cap)
{
    const char *env = getenv("MORGUL_PROFILE"), *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (env && *env)
        snprintf(buf, cap, "%s", env);
    else if (xdg && *xdg)
        snprintf(buf, cap, "%s/morgul/profile.json", xdg);
    else
        snprintf(buf, cap, "%s/.config/morgul/profile.json", home && *home ? home : ".");
    return buf;
}

static void note(mg_sizing *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(mg_sizing *s, const char *fmt, ...)
{
    if (s->nnotes >= MG_SIZING_NOTES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->notes[s->nnotes++], sizeof s->notes[0], fmt, ap);
    va_end(ap);
}

/* The stages after assembly, per module-frame. */
static double work_ns(const mg_sizing_input *in, const mg_cost_profile *p)
{
    int t = in->type == MG_OUT_INT32 ? 1 : in->type == MG_OUT_FLOAT32 ? 2 : 0;
    return in->corrected ? p->ns[MG_COST_CONVERT_INT16 + t] + p->ns[MG_COST_COMPRESS_INT16 + t] + p->ns[MG_COST_WRITE]
                         : p->ns[MG_COST_COMPRESS_RAW] + p->ns[MG_COST_WRITE];
}

static double work_bytes(const mg_sizing_input *in, const mg_cost_profile *p)
{
    int t = in->type == MG_OUT_INT32 ? 1 : in->type == MG_OUT_FLOAT32 ? 2 : 0;
    return p->bytes[MG_COST_RECEIVE] +
           (in->corrected ? p->bytes[MG_COST_CONVERT_INT16 + t] + p->bytes[MG_COST_COMPRESS_INT16 + t]
                          : p->bytes[MG_COST_COMPRESS_RAW]) +
           p->bytes[MG_COST_WRITE];
}

int mg_size(const mg_sizing_input *in, const mg_cost_profile *p, const mg_topology *t, mg_sizing *s, mg_error *err)
{
    memset(s, 0, sizeof *s);
    const mg_detector *d = in->det;
    if (!(in->rate_hz > 0) || in->rate_hz > 1e6)
        return mg_error_set(err, MG_EINVAL, "a frame rate of %g Hz: give the detector's rate (e.g. --rate 2000)",
                            in->rate_hz);
    if (d->nmodules < 1)
        return mg_error_set(err, MG_EINVAL, "a detector without modules");
    s->nmodules = d->nmodules;
    s->nlinks = mg_detector_links(d);
    s->module_frames_per_s = in->rate_hz * d->nmodules;
    int min_ifaces = 2;
    for (int m = 0; m < d->nmodules; m++)
        if (d->modules[m].interfaces < min_ifaces)
            min_ifaces = d->modules[m].interfaces;
    s->link_load = in->rate_hz * p->ns[MG_COST_RECEIVE] / 1e9 / min_ifaces;
    const double wns = work_ns(in, p);
    s->worker_cores = s->module_frames_per_s * wns / 1e9;
    /* CPU time in all: every link's receiving thread (busy link_load of its core, less where a module has two
     * interfaces more than one), and the workers' */
    double receive_cores = s->module_frames_per_s * p->ns[MG_COST_RECEIVE] / 1e9;
    s->cores_needed = receive_cores + s->worker_cores;
    s->memory_bandwidth = s->module_frames_per_s * work_bytes(in, p);
    s->link_bytes_per_s = in->rate_hz * MG_PACKETS_PER_MODULE * (double)MG_PACKET_BYTES / min_ifaces;
    double timeout = in->frame_timeout_ms > 0 ? in->frame_timeout_ms : 100;
    int slots = in->buffer_frames > 0 ? in->buffer_frames : 64 + (int)ceil(in->rate_hz * timeout / 1000);
    s->buffer_bytes = (double)slots * d->nmodules * MG_MODULE_BYTES;
    /* a pedestal and a factor plane per gain, float32, for every module, on every node with workers */
    s->table_bytes = in->corrected ? (double)d->nmodules * 6 * MG_MODULE_PIXELS * 4 : 0;
    if (s->link_load >= 1)
        note(s, "one link at %g Hz needs %.2f cores to receive: no core can take it; use two interfaces per module "
                "(numinterfaces 2) or a lower rate", in->rate_hz, s->link_load);
    else if (s->link_load >= 0.7)
        note(s, "a receiving thread is %.0f %% busy at %g Hz: little room for bursts or other work on its core",
             100 * s->link_load, in->rate_hz);
    if (!t) {
        s->servers = 1;
        s->modules_per_server = d->nmodules;
        return 0;
    }
    s->cores = mg_topology_cores(t);
    s->nodes = mg_topology_numa_nodes(t);
    if (s->nodes < 1)
        s->nodes = 1;
    if (s->nodes > MG_MAX_THREADS)
        s->nodes = MG_MAX_THREADS;
    s->workers_available = s->cores > s->nlinks ? s->cores - s->nlinks : 0;
    s->margin = s->cores_needed > 0 ? s->cores / s->cores_needed : 0;
    int workers_needed = (int)ceil(s->worker_cores);
    /* every link needs a core of its own (its thread is pinned there); the CPU time in all must fit */
    s->keeps_up = s->link_load < 1 && s->nlinks <= s->cores && s->cores_needed <= s->cores;
    /* memory per node: the frame buffers with the receivers (spread over the nodes as links are), the tables
     * on every node (workers go on every node where cores are left) */
    for (int n = 0; n < s->nodes; n++) {
        s->node_memory[n] = (double)mg_topology_node_memory(t, n);
        s->node_need[n] = s->buffer_bytes / s->nodes + s->table_bytes;
        if (s->node_memory[n] > 0 && s->node_need[n] > 0.8 * s->node_memory[n])
            note(s, "NUMA node %d needs %.1f GiB for buffers and tables of its %.1f GiB", n,
                 s->node_need[n] / (1 << 30), s->node_memory[n] / (1 << 30));
    }
    if (s->nlinks > s->cores)
        note(s, "%d links on %d cores: receiving threads would share cores (%.1f links a core) and drop packets; "
                "every link needs a core of its own", s->nlinks, s->cores, (double)s->nlinks / s->cores);
    else if (s->workers_available < workers_needed && s->cores_needed <= s->cores)
        note(s, "the workers need %.1f cores and %d %s free of receiving threads: they share cores with the "
                "receivers, which holds only while those are far from busy (%.0f %% each here)", s->worker_cores,
             s->workers_available, s->workers_available == 1 ? "is" : "are", 100 * s->link_load);
    /* the arithmetic is a bound: runs on the development machine reached 0.5-0.8 of the rate it allows
     * (docs/performance.md, "the plan against reality"), so a thin margin is said */
    if (s->keeps_up && s->margin < 1.5)
        note(s, "a thin margin (x%.2f): measured runs reach 0.5-0.8 of the rate this arithmetic allows (the "
                "receiving thread's wake-ups, memory and scheduling are not in the profile); check with `morgul "
                "bench loopback` or a replay at this rate", s->margin);
    /* how many such servers would do, each owning whole modules */
    s->servers = 1;
    s->modules_per_server = d->nmodules;
    if (!s->keeps_up && s->link_load < 1) {
        int per = 0;
        double links_per_module = (double)s->nlinks / d->nmodules;
        double per_module = receive_cores / d->nmodules + in->rate_hz * wns / 1e9;
        for (int m = 1; m <= d->nmodules; m++)
            if (ceil(m * links_per_module) <= s->cores && m * per_module <= s->cores)
                per = m;
        if (per > 0) {
            s->modules_per_server = per;
            s->servers = (d->nmodules + per - 1) / per;
            char list[300] = "";
            size_t used = 0;
            for (int k = 0; k < s->servers && used + 40 < sizeof list; k++) {
                int a = k * per, b = (k + 1) * per - 1 < d->nmodules - 1 ? (k + 1) * per - 1 : d->nmodules - 1;
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%d: modules %d-%d", k ? "; " : "", k + 1,
                                         a, b);
            }
            note(s, "this machine is too small: %.1f cores needed, %d here; %d servers like it would keep up, each "
                    "owning up to %d modules (%s), or one with %d cores", s->cores_needed, s->cores, s->servers, per,
                 list, (int)ceil(s->cores_needed));
        } else
            note(s, "not even one module fits on %d cores at %g Hz: a server needs at least %d cores", s->cores,
                 in->rate_hz, (int)fmax(ceil(links_per_module), ceil(per_module)));
    }
    return 0;
}

void mg_sizing_print(const mg_sizing *s, const mg_cost_profile *p, FILE *out)
{
    const double gib = 1 << 30;
    fprintf(out, "sizing: %d module(s), %d link(s), %.0f module-frames/s; costs from %s\n", s->nmodules, s->nlinks,
            s->module_frames_per_s, p->machine);
    fprintf(out, "  receiving  1 core per link, each %.0f %% busy; %.2f GB/s per link on the network\n",
            100 * s->link_load, s->link_bytes_per_s / 1e9);
    fprintf(out, "  workers    %.2f cores (conversion, compression, writing)\n", s->worker_cores);
    fprintf(out, "  in all     %.2f cores of CPU time, and a core of its own for each link; memory bandwidth %.1f "
                 "GB/s\n", s->cores_needed, s->memory_bandwidth / 1e9);
    fprintf(out, "  memory     frame buffers %.2f GiB%s\n", s->buffer_bytes / gib,
            s->table_bytes > 0 ? "" : " (raw: no conversion tables)");
    if (s->table_bytes > 0)
        fprintf(out, "             conversion tables %.2f GiB on every NUMA node with workers\n", s->table_bytes / gib);
    if (s->cores) {
        for (int n = 0; n < s->nodes; n++)
            if (s->node_memory[n] > 0)
                fprintf(out, "  node %d     needs %.2f GiB of %.1f GiB\n", n, s->node_need[n] / gib,
                        s->node_memory[n] / gib);
            else
                fprintf(out, "  node %d     needs %.2f GiB (its memory is not in the topology)\n", n,
                        s->node_need[n] / gib);
        fprintf(out, "  verdict    %s: %d cores for %d links and %.2f cores of work (margin x%.2f)\n",
                s->keeps_up ? "keeps up" : "TOO SMALL", s->cores, s->nlinks, s->cores_needed, s->margin);
    }
    for (int i = 0; i < s->nnotes; i++)
        fprintf(out, "  warning    %s\n", s->notes[i]);
}

double mg_size_top_rate(const mg_sizing_input *in, const mg_cost_profile *p, int cores, double extra_ns,
                        int one_reader, mg_error *err)
{
    /* every need is proportional to the rate: work them out at 1 Hz */
    mg_sizing_input one = *in;
    one.rate_hz = 1;
    mg_sizing s;
    if (mg_size(&one, p, NULL, &s, err))
        return 0;
    if (cores < 1) {
        mg_error_set(err, MG_EINVAL, "no cores");
        return 0;
    }
    double cpu_per_hz = s.cores_needed + s.nmodules * extra_ns / 1e9;
    double reader_per_hz = one_reader ? s.nmodules * p->ns[MG_COST_RECEIVE] / 1e9 : s.link_load;
    double by_cpu = cores / cpu_per_hz, by_reader = reader_per_hz > 0 ? 1 / reader_per_hz : by_cpu;
    return by_cpu < by_reader ? by_cpu : by_reader;
}
