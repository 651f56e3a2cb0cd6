/* morgul/topology.h - where threads run and where their memory lives.
 *
 * A thin layer over hwloc.  The topology is this machine's, or one loaded
 * from an hwloc XML file or a synthetic description ("pack:2 numa:1 core:8
 * pu:1"), so placement plans for big two-socket servers can be made and
 * tested anywhere.
 *
 * Plan: every link's receiving thread gets its own core close to the network
 * interface that receives the link's packets (the NIC's NUMA node, found from
 * the bind address); compression workers get the remaining cores of the same
 * node first; buffers are bound to the node of the threads that touch them.
 * `--cpus` overrides the automatic choice.
 */
#ifndef MORGUL_TOPOLOGY_H
#define MORGUL_TOPOLOGY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "morgul/error.h"

typedef struct mg_topology mg_topology;

/* source: NULL for this machine; a path ending in .xml for an hwloc XML
 * export; anything else is an hwloc synthetic description. */
mg_topology *mg_topology_open(const char *source, mg_error *err);
void mg_topology_close(mg_topology *t);

/* True if the topology is this machine's (threads can really be bound). */
int mg_topology_is_this_system(const mg_topology *t);
int mg_topology_cores(const mg_topology *t);
int mg_topology_numa_nodes(const mg_topology *t);
/* Workers to start when the user gives none: the cores left after one per
 * receiving thread (`nlinks`; 0 when replaying), at least 1. */
int mg_topology_default_workers(const mg_topology *t, int nlinks);
/* Bytes of memory NUMA node `node` (logical index) has; 0 when the
 * topology does not say (synthetic ones without sizes). */
uint64_t mg_topology_node_memory(const mg_topology *t, int node);
/* NUMA node (logical index) of a core (logical index), or 0. */
int mg_topology_core_node(const mg_topology *t, int core);

/* Memory bound to a NUMA node (-1: no preference), zeroed and touched so its
 * pages exist before the hot path runs.  NULL on failure. */
void *mg_numa_alloc(mg_topology *t, size_t bytes, int node);
/* The same, giving up (freeing what it had, returning NULL) once *stop is
 * raised while the pages are touched; stop may be NULL. */
void *mg_numa_alloc_until(mg_topology *t, size_t bytes, int node, _Atomic int *stop);
void mg_numa_free(mg_topology *t, void *p, size_t bytes);

/* The NUMA node and cores near the network interface named `ifname` (e.g.
 * "enp65s0f0"), found through hwloc's OS devices.  Returns the number of cores
 * written to cores[] (logical indexes, at most max) and sets *node; when the
 * interface has no locality (loopback, virtual) every core is near. */
int mg_topology_cores_near_nic(const mg_topology *t, const char *ifname, int *cores, int max, int *node);

/* The interface that holds IPv4 address `addr` ("lo" for 127.x, "" for
 * 0.0.0.0 or unknown). */
void mg_interface_of_address(const char *addr, char *ifname, size_t cap);

#define MG_MAX_THREADS 256

typedef struct mg_thread_plan {
    int nlinks, nworkers;
    int link_core[MG_MAX_THREADS];   /* logical core index, -1 = not pinned */
    int worker_core[MG_MAX_THREADS];
    int collector_core;                 /* the collector (frames to workers) */
    int link_node[MG_MAX_THREADS];   /* NUMA node of each link's core */
    int worker_node[MG_MAX_THREADS];
    char why[512];                   /* one line on how the plan was made */
} mg_thread_plan;

/* Makes a plan for `nlinks` receiving threads whose NICs are `ifnames[l]`
 * (NULL or "" = unknown) and `nworkers` workers.  `cpus` (may be NULL) is a
 * user's list "2,3,8-11": links take the first, workers the next, the
 * collector the next; with fewer cores than threads, threads share. */
int mg_topology_plan(const mg_topology *t, int nlinks, const char *const *ifnames, int nworkers,
                     const char *cpus, mg_thread_plan *plan, mg_error *err);
void mg_topology_print_plan(const mg_thread_plan *plan, FILE *out);

/* Binds the calling thread to a core of the plan (this system only). */
int mg_topology_bind_thread(mg_topology *t, int core, mg_error *err);

#endif
