/* test_sizing.c - the sizing arithmetic on synthetic profiles and
 * topologies: a detector that fits, 16 links on 2 cores and too few cores
 * for the workers (both must warn and say what would do), the servers a
 * detector needs and which modules each owns, the memory per node, a link
 * no core can receive, and profiles read back as written (and refused when
 * incomplete). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "morgul/convert.h"
#include "morgul/sizing.h"

/* Round figures: receiving 200 us a module-frame, converting 100, compressing 400 (raw) or 500
 * (corrected, int16), writing 100. */
static void profile(mg_cost_profile *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->machine, sizeof p->machine, "test");
    for (int k = 0; k < MG_COST_COUNT; k++)
        p->ns[k] = 100e3, p->bytes[k] = 1 << 20;
    p->ns[MG_COST_RECEIVE] = 200e3;
    p->ns[MG_COST_COMPRESS_RAW] = 400e3;
    p->ns[MG_COST_COMPRESS_INT16] = 500e3;
}

static int has_note(const mg_sizing *s, const char *words)
{
    for (int i = 0; i < s->nnotes; i++)
        if (strstr(s->notes[i], words))
            return 1;
    return 0;
}

static mg_topology *topo(const char *src)
{
    mg_error e = {0};
    mg_topology *t = mg_topology_open(src, &e);
    if (!t)
        fprintf(stderr, "topology %s: %s\n", src, e.message);
    return t;
}

static void test_one_module_fits(void)
{
    mg_cost_profile p;
    profile(&p);
    mg_detector d;
    mg_detector_simple(&d, "t", 1, 2, "127.0.0.1", 50001, NULL, NULL);
    mg_topology *t = topo("pack:1 numa:1 core:8 pu:1");
    mg_sizing_input in = {.det = &d, .rate_hz = 1000};
    mg_sizing s;
    CHECK_EQ(mg_size(&in, &p, t, &s, NULL), 0);
    CHECK(fabs(s.link_load - 0.1) < 1e-9);            /* 1000/s x 200 us, half a module per link */
    CHECK(fabs(s.worker_cores - 0.5) < 1e-9);         /* 1000/s x (400 + 100) us */
    CHECK(fabs(s.cores_needed - 0.7) < 1e-9);         /* 2 links x 0.1 + 0.5 */
    CHECK_EQ(s.cores, 8);
    CHECK_EQ(s.workers_available, 6);
    CHECK(s.keeps_up && fabs(s.margin - 8 / 0.7) < 1e-9);
    CHECK_EQ(s.servers, 1);
    CHECK_EQ(s.nnotes, 0);
    CHECK(fabs(s.buffer_bytes - (64 + 100) * 1048576.0) < 1); /* 1000 Hz x 100 ms + 64 buffers of 1 MiB */
    CHECK(fabs(s.link_bytes_per_s - 1000 * 128 * 8240 / 2.0) < 1);
    CHECK(fabs(s.memory_bandwidth - 1000 * 3.0 * 1048576) < 1); /* receive, compress, write */
    mg_topology_close(t);
}

static void test_sixteen_links_on_two_cores(void)
{
    mg_cost_profile p;
    profile(&p);
    mg_detector d;
    mg_detector_simple(&d, "t", 8, 2, "127.0.0.1", 50001, NULL, NULL);
    mg_topology *t = topo("pack:1 numa:1 core:2 pu:1");
    mg_sizing_input in = {.det = &d, .rate_hz = 1000};
    mg_sizing s;
    CHECK_EQ(mg_size(&in, &p, t, &s, NULL), 0);
    CHECK(!s.keeps_up);
    CHECK(has_note(&s, "16 links on 2 cores"));
    /* one module a server: its 2 links take both cores, 0.7 cores of work fit beside them */
    CHECK_EQ(s.modules_per_server, 1);
    CHECK_EQ(s.servers, 8);
    CHECK(has_note(&s, "8 servers like it would keep up"));
    mg_topology_close(t);
}

static void test_servers_and_their_modules(void)
{
    mg_cost_profile p;
    profile(&p);
    mg_detector d;
    mg_detector_simple(&d, "t", 8, 2, "127.0.0.1", 50001, NULL, NULL);
    mg_topology *t = topo("pack:2 numa:1 core:8 pu:1"); /* 16 cores */
    mg_sizing_input in = {.det = &d, .rate_hz = 3000, .corrected = 1, .type = MG_OUT_INT16};
    mg_sizing s;
    CHECK_EQ(mg_size(&in, &p, t, &s, NULL), 0);
    /* per module: 2 links at 0.3 of a core, 3000 x (100 + 500 + 100) us = 2.1 worker cores: 2.7 in all */
    CHECK(fabs(s.link_load - 0.3) < 1e-9);
    CHECK(fabs(s.worker_cores - 8 * 2.1) < 1e-9);
    CHECK(fabs(s.cores_needed - 8 * 2.7) < 1e-9);
    CHECK(!s.keeps_up);
    /* m modules: 2m links <= 16 and 2.7m <= 16: m = 5 */
    CHECK_EQ(s.modules_per_server, 5);
    CHECK_EQ(s.servers, 2);
    CHECK(has_note(&s, "1: modules 0-4; 2: modules 5-7"));
    /* the tables of 8 modules (6 float planes of 512 x 1024) on every node */
    CHECK(fabs(s.table_bytes - 8 * 6 * 524288 * 4.0) < 1);
    CHECK_EQ(s.nodes, 2);
    CHECK(fabs(s.node_need[1] - (s.buffer_bytes / 2 + s.table_bytes)) < 1);
    /* at 1 kHz it fits (0.9 a module), the workers sharing the receivers' cores: said */
    in.rate_hz = 1000;
    CHECK_EQ(mg_size(&in, &p, t, &s, NULL), 0);
    CHECK(s.keeps_up && s.workers_available == 0);
    CHECK(has_note(&s, "share cores with the receivers"));
    mg_topology_close(t);
}

static void test_a_link_no_core_can_take(void)
{
    mg_cost_profile p;
    profile(&p);
    p.ns[MG_COST_RECEIVE] = 800e3;
    mg_detector d;
    mg_detector_simple(&d, "t", 1, 1, "127.0.0.1", 50001, NULL, NULL);
    mg_sizing_input in = {.det = &d, .rate_hz = 2000};
    mg_sizing s;
    CHECK_EQ(mg_size(&in, &p, NULL, &s, NULL), 0); /* no topology: the needs alone */
    CHECK(fabs(s.link_load - 1.6) < 1e-9);
    CHECK(has_note(&s, "two interfaces per module"));
    in.rate_hz = 0;
    CHECK_EQ(mg_size(&in, &p, NULL, &s, NULL), MG_EINVAL);
}

static void test_profile_file(void)
{
    mg_cost_profile p, q;
    profile(&p);
    p.ns[MG_COST_WRITE] = 12345.5;
    char dir[] = "/tmp/mg_sizing_XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/sub/profile.json", dir); /* the directory is made */
    CHECK_EQ(mg_cost_profile_write(path, &p, NULL), 0);
    CHECK_EQ(mg_cost_profile_read(path, &q, NULL), 0);
    for (int k = 0; k < MG_COST_COUNT; k++)
        CHECK(q.ns[k] == p.ns[k] && q.bytes[k] == p.bytes[k]);
    CHECK(!strcmp(q.machine, "test"));
    FILE *f = fopen(path, "w");
    fputs("{\"machine\": \"x\", \"stages\": {\"receive\": {\"ns\": 1, \"bytes\": 1}}}", f);
    fclose(f);
    mg_error e = {0};
    CHECK(mg_cost_profile_read(path, &q, &e) == MG_EFORMAT && strstr(e.message, "convert_int16"));
    unlink(path);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    rmdir(sub);
    rmdir(dir);
    mg_cost_profile b;
    mg_cost_profile_builtin(&b);
    for (int k = 0; k < MG_COST_COUNT; k++)
        CHECK(b.ns[k] > 0 && b.bytes[k] > 0);
}

/* The top rate: where the CPU in all, or one receiving thread, runs out; consistent with mg_size's verdict. */
static void test_top_rate(void)
{
    mg_cost_profile p;
    profile(&p);
    mg_detector d1, d4;
    mg_detector_simple(&d1, "t", 1, 1, "127.0.0.1", 50001, NULL, NULL);
    mg_detector_simple(&d4, "t", 4, 1, "127.0.0.1", 50001, NULL, NULL);
    mg_sizing_input in = {.det = &d1};
    /* 1 module on 2 cores: 200 + 400 + 100 us a module-frame; the CPU runs out at 2 / 700 us */
    CHECK(fabs(mg_size_top_rate(&in, &p, 2, 0, 0, NULL) - 2 / 700e-6) < 1e-6);
    /* a sender on the same cores taking 300 us a frame */
    CHECK(fabs(mg_size_top_rate(&in, &p, 2, 300e3, 0, NULL) - 2 / 1000e-6) < 1e-6);
    /* on 8 cores the receiving thread runs out first: 1 / 200 us */
    CHECK(fabs(mg_size_top_rate(&in, &p, 8, 0, 0, NULL) - 5000) < 1e-6);
    /* 4 modules read by one thread (a replay): 1 / (4 x 200 us) */
    in.det = &d4;
    CHECK(fabs(mg_size_top_rate(&in, &p, 8, 0, 1, NULL) - 1250) < 1e-6);
    CHECK(fabs(mg_size_top_rate(&in, &p, 8, 0, 0, NULL) - 8 / (4 * 700e-6)) < 1e-6);
    /* the plan agrees: just below the top rate it keeps up, just above it does not */
    mg_topology *t = topo("pack:1 numa:1 core:2 pu:1");
    in.det = &d1;
    double top = mg_size_top_rate(&in, &p, 2, 0, 0, NULL);
    mg_sizing s;
    in.rate_hz = top * 0.99;
    CHECK_EQ(mg_size(&in, &p, t, &s, NULL), 0);
    CHECK(s.keeps_up);
    in.rate_hz = top * 1.01;
    CHECK_EQ(mg_size(&in, &p, t, &s, NULL), 0);
    CHECK(!s.keeps_up);
    mg_topology_close(t);
    CHECK_EQ(mg_size_top_rate(&in, &p, 0, 0, 0, NULL), 0); /* no cores */
}

int main(void)
{
    RUN(test_top_rate);
    RUN(test_one_module_fits);
    RUN(test_sixteen_links_on_two_cores);
    RUN(test_servers_and_their_modules);
    RUN(test_a_link_no_core_can_take);
    RUN(test_profile_file);
    return CHECK_DONE();
}
