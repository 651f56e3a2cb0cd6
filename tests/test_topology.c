/* test_topology.c - placement plans for real server shapes, from hwloc
 * synthetic and XML topologies: receivers go to cores near their NIC,
 * workers fill the rest of that node, --cpus overrides, bad lists are
 * refused; NUMA allocation on this machine returns touched memory. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "morgul/topology.h"

#ifndef TEST_DATA
#define TEST_DATA "tests/data"
#endif

static void test_two_socket_nics(void)
{
    mg_error e = {0};
    mg_topology *t = mg_topology_open(TEST_DATA "/two-socket-2nic.xml", &e);
    CHECK(t != NULL);
    if (!t) {
        fprintf(stderr, "%s\n", e.message);
        return;
    }
    CHECK_EQ(mg_topology_cores(t), 16);
    CHECK_EQ(mg_topology_numa_nodes(t), 2);
    CHECK(!mg_topology_is_this_system(t));
    int cores[32], node;
    CHECK_EQ(mg_topology_cores_near_nic(t, "enp65s0f0", cores, 32, &node), 8);
    CHECK_EQ(node, 1);
    CHECK_EQ(cores[0], 8);
    CHECK_EQ(mg_topology_cores_near_nic(t, "enp1s0f0", cores, 32, &node), 8);
    CHECK_EQ(node, 0);
    CHECK_EQ(mg_topology_cores_near_nic(t, "eth9", cores, 32, &node), 16); /* unknown: anywhere */
    CHECK_EQ(node, -1);

    /* a 4M: 8 modules x 2 interfaces; interfaces 0 on the socket-0 NIC, 1 on the socket-1 NIC */
    const char *nics[16];
    for (int l = 0; l < 16; l++)
        nics[l] = l % 2 ? "enp65s0f0" : "enp1s0f0";
    mg_thread_plan p;
    CHECK_EQ(mg_topology_plan(t, 16, nics, 4, NULL, &p, &e), 0);
    for (int l = 0; l < 16; l++) {
        CHECK_EQ(p.link_node[l], l % 2);
        CHECK(p.link_core[l] >= (l % 2) * 8 && p.link_core[l] < (l % 2) * 8 + 8);
    }
    /* 16 links on 16 cores: each has its own */
    int used[16] = {0};
    for (int l = 0; l < 16; l++)
        used[p.link_core[l]]++;
    for (int c = 0; c < 16; c++)
        CHECK_EQ(used[c], 1);

    /* a 1M on the socket-1 NIC: receivers on socket 1, workers next to them */
    const char *one[4] = {"enp65s0f0", "enp65s0f0", "enp65s0f0", "enp65s0f0"};
    CHECK_EQ(mg_topology_plan(t, 4, one, 4, NULL, &p, &e), 0);
    for (int l = 0; l < 4; l++)
        CHECK_EQ(p.link_node[l], 1);
    for (int w = 0; w < 4; w++) {
        CHECK_EQ(p.worker_node[w], 1);
        for (int l = 0; l < 4; l++)
            CHECK(p.worker_core[w] != p.link_core[l]);
    }
    mg_topology_close(t);
}

static void test_synthetic_and_cpus(void)
{
    mg_error e = {0};
    mg_topology *t = mg_topology_open("pack:2 numa:1 core:4 pu:1", &e);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK_EQ(mg_topology_cores(t), 8);
    CHECK_EQ(mg_topology_core_node(t, 5), 1);
    mg_thread_plan p;
    CHECK_EQ(mg_topology_plan(t, 2, NULL, 2, "6,7,2-3", &p, &e), 0);
    CHECK(p.link_core[0] == 6 && p.link_core[1] == 7 && p.worker_core[0] == 2 && p.worker_core[1] == 3);
    CHECK_EQ(p.collector_core, 6); /* the list wraps around */
    CHECK(mg_topology_plan(t, 2, NULL, 2, "9", &p, &e) == MG_EINVAL);
    CHECK(strstr(e.message, "core 9") != NULL);
    CHECK(mg_topology_plan(t, 2, NULL, 2, "1-x", &p, &e) == MG_EINVAL);
    /* more threads than cores: they share, least used first */
    CHECK_EQ(mg_topology_plan(t, 10, NULL, 1, NULL, &p, &e), 0);
    int used[8] = {0};
    for (int l = 0; l < 10; l++)
        used[p.link_core[l]]++;
    for (int c = 0; c < 8; c++)
        CHECK(used[c] >= 1 && used[c] <= 2);
    mg_topology_close(t);
    CHECK(mg_topology_open("no such topology", &e) == NULL);
}

static void test_this_machine(void)
{
    mg_error e = {0};
    mg_topology *t = mg_topology_open(NULL, &e);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK(mg_topology_is_this_system(t));
    uint8_t *m = mg_numa_alloc(t, 1 << 20, 0);
    CHECK(m != NULL);
    if (m) {
        CHECK(m[0] == 0 && m[(1 << 20) - 1] == 0);
        mg_numa_free(t, m, 1 << 20);
    }
    CHECK_EQ(mg_topology_bind_thread(t, 0, &e), 0);
    char ifn[32];
    mg_interface_of_address("127.0.0.1", ifn, sizeof ifn);
    CHECK(!strcmp(ifn, "lo"));
    mg_interface_of_address("0.0.0.0", ifn, sizeof ifn);
    CHECK(!strcmp(ifn, ""));
    mg_topology_close(t);
}

int main(void)
{
    RUN(test_two_socket_nics);
    RUN(test_synthetic_and_cpus);
    RUN(test_this_machine);
    return CHECK_DONE();
}
