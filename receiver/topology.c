/* topology.c - thread placement and NUMA memory through hwloc
 * (contract in morgul/topology.h). */
#include "morgul/topology.h"

#include <arpa/inet.h>
#include <hwloc.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct mg_topology {
    hwloc_topology_t h;
    int this_system;
};

mg_topology *mg_topology_open(const char *source, mg_error *err)
{
    mg_topology *t = calloc(1, sizeof *t);
    if (!t) {
        mg_error_set(err, MG_ENOMEM, "out of memory for the topology");
        return NULL;
    }
    if (hwloc_topology_init(&t->h)) {
        free(t);
        mg_error_set(err, MG_ESYS, "hwloc could not start");
        return NULL;
    }
    hwloc_topology_set_io_types_filter(t->h, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
    /* Only the components morgul needs (cores, NUMA nodes, PCI and network devices).  The GPU ones would probe
     * for X displays and device libraries at every start - some 30 connection attempts - and tell nothing
     * about where packets arrive. */
    hwloc_topology_set_components(t->h, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "gl");
    hwloc_topology_set_components(t->h, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "opencl");
    hwloc_topology_set_components(t->h, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "cuda");
    hwloc_topology_set_components(t->h, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "nvml");
    hwloc_topology_set_components(t->h, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "rsmi");
    hwloc_topology_set_components(t->h, HWLOC_TOPOLOGY_COMPONENTS_FLAG_BLACKLIST, "levelzero");
    int rc = 0;
    if (source && *source) {
        size_t n = strlen(source);
        if (n > 4 && !strcmp(source + n - 4, ".xml"))
            rc = hwloc_topology_set_xml(t->h, source);
        else
            rc = hwloc_topology_set_synthetic(t->h, source);
    }
    if (rc || hwloc_topology_load(t->h)) {
        hwloc_topology_destroy(t->h);
        free(t);
        mg_error_set(err, MG_EINVAL,
                     "cannot load the topology '%s': give an hwloc XML file (*.xml) or a synthetic description "
                     "such as \"pack:2 numa:1 core:8 pu:1\"",
                     source);
        return NULL;
    }
    t->this_system = hwloc_topology_is_thissystem(t->h);
    return t;
}

void mg_topology_close(mg_topology *t)
{
    if (!t)
        return;
    hwloc_topology_destroy(t->h);
    free(t);
}

int mg_topology_is_this_system(const mg_topology *t) { return t && t->this_system; }

int mg_topology_cores(const mg_topology *t) { return hwloc_get_nbobjs_by_type(t->h, HWLOC_OBJ_CORE); }

int mg_topology_numa_nodes(const mg_topology *t)
{
    int n = hwloc_get_nbobjs_by_type(t->h, HWLOC_OBJ_NUMANODE);
    return n > 0 ? n : 1;
}

uint64_t mg_topology_node_memory(const mg_topology *t, int node)
{
    hwloc_obj_t n = hwloc_get_obj_by_type(t->h, HWLOC_OBJ_NUMANODE, (unsigned)node);
    return n && n->attr ? (uint64_t)n->attr->numanode.local_memory : 0;
}

int mg_topology_core_node(const mg_topology *t, int core)
{
    hwloc_obj_t c = hwloc_get_obj_by_type(t->h, HWLOC_OBJ_CORE, (unsigned)core);
    if (!c || !c->nodeset)
        return 0;
    int os = hwloc_bitmap_first(c->nodeset);
    hwloc_obj_t n = os >= 0 ? hwloc_get_numanode_obj_by_os_index(t->h, (unsigned)os) : NULL;
    return n ? (int)n->logical_index : 0;
}

void *mg_numa_alloc(mg_topology *t, size_t bytes, int node) { return mg_numa_alloc_until(t, bytes, node, NULL); }

void *mg_numa_alloc_until(mg_topology *t, size_t bytes, int node, _Atomic int *stop)
{
    void *p = NULL;
    if (t && t->this_system) {
        hwloc_obj_t n = node >= 0 ? hwloc_get_obj_by_type(t->h, HWLOC_OBJ_NUMANODE, (unsigned)node) : NULL;
        if (n)
            p = hwloc_alloc_membind(t->h, bytes, n->nodeset, HWLOC_MEMBIND_BIND, HWLOC_MEMBIND_BYNODESET);
        else
            p = hwloc_alloc(t->h, bytes);
    } else {
        p = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    }
    /* first touch: the pages exist before the hot path - in pieces, so that a stop request (Ctrl-C while
     * gigabytes are touched) is honoured within a fraction of a second.  The kernel populates them itself
     * where it can (half the time of writing zeros from here); else they are written. */
    int populate = 1;
    for (size_t done = 0; p && done < bytes; done += (size_t)64 << 20) {
        if (stop && atomic_load(stop)) {
            mg_numa_free(t, p, bytes);
            return NULL;
        }
        size_t n = bytes - done < ((size_t)64 << 20) ? bytes - done : (size_t)64 << 20;
#ifdef MADV_POPULATE_WRITE
        if (populate && madvise((char *)p + done, n, MADV_POPULATE_WRITE) == 0)
            continue;
        populate = 0;
#endif
        memset((char *)p + done, 0, n);
    }
    (void)populate;
    return p;
}

void mg_numa_free(mg_topology *t, void *p, size_t bytes)
{
    if (!p)
        return;
    if (t && t->this_system)
        hwloc_free(t->h, p, bytes);
    else
        free(p);
}

void mg_interface_of_address(const char *addr, char *ifname, size_t cap)
{
    ifname[0] = 0;
    struct in_addr want;
    if (!addr || inet_pton(AF_INET, addr, &want) != 1 || want.s_addr == htonl(INADDR_ANY))
        return;
    if ((ntohl(want.s_addr) >> 24) == 127) {
        snprintf(ifname, cap, "lo");
        return;
    }
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs))
        return;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET &&
            ((struct sockaddr_in *)i->ifa_addr)->sin_addr.s_addr == want.s_addr) {
            snprintf(ifname, cap, "%s", i->ifa_name);
            break;
        }
    freeifaddrs(ifs);
}

static int cores_in_set(const mg_topology *t, hwloc_const_cpuset_t set, int *cores, int max)
{
    int n = 0;
    hwloc_obj_t c = NULL;
    while (n < max && (c = hwloc_get_next_obj_inside_cpuset_by_type(t->h, set, HWLOC_OBJ_CORE, c)))
        cores[n++] = (int)c->logical_index;
    return n;
}

int mg_topology_cores_near_nic(const mg_topology *t, const char *ifname, int *cores, int max, int *node)
{
    hwloc_obj_t os = NULL, anc = NULL;
    if (ifname && *ifname)
        while ((os = hwloc_get_next_osdev(t->h, os)))
            if (os->name && !strcmp(os->name, ifname)) {
                anc = hwloc_get_non_io_ancestor_obj(t->h, os);
                break;
            }
    hwloc_const_cpuset_t set = anc ? anc->cpuset : hwloc_topology_get_topology_cpuset(t->h);
    int n = cores_in_set(t, set, cores, max);
    *node = anc && n ? mg_topology_core_node(t, cores[0]) : -1;
    return n;
}

/* "2,3,8-11" -> cores[] */
static int parse_cpus(const char *s, int *cores, int max, int ncores, mg_error *err)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p)
            return mg_error_set(err, MG_EINVAL, "--cpus '%s': expected a list like 2,3,8-11", s);
        if (*end == '-') {
            p = end + 1;
            b = strtol(p, &end, 10);
            if (end == p || b < a)
                return mg_error_set(err, MG_EINVAL, "--cpus '%s': bad range", s);
        }
        for (long c = a; c <= b; c++) {
            if (c < 0 || c >= ncores)
                return mg_error_set(err, MG_EINVAL, "--cpus '%s': core %ld does not exist (this topology has %d)",
                                    s, c, ncores);
            if (n < max)
                cores[n++] = (int)c;
        }
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return mg_error_set(err, MG_EINVAL, "--cpus '%s': expected a list like 2,3,8-11", s);
    }
    return n;
}

int mg_topology_plan(const mg_topology *t, int nlinks, const char *const *ifnames, int nworkers,
                     const char *cpus, mg_thread_plan *plan, mg_error *err)
{
    memset(plan, 0, sizeof *plan);
    if (nlinks > MG_MAX_THREADS || nworkers > MG_MAX_THREADS)
        return mg_error_set(err, MG_EINVAL, "too many threads for a plan (%d links, %d workers)", nlinks, nworkers);
    plan->nlinks = nlinks;
    plan->nworkers = nworkers;
    int ncores = mg_topology_cores(t);
    if (ncores < 1)
        return mg_error_set(err, MG_ESYS, "the topology has no cores");
    int *used = calloc((size_t)ncores, sizeof(int));
    int *near = calloc((size_t)ncores, sizeof(int));
    if (!used || !near) {
        free(used);
        free(near);
        return mg_error_set(err, MG_ENOMEM, "out of memory making a thread plan");
    }
    if (cpus && *cpus) {
        int list[MG_MAX_THREADS * 2 + 1];
        int n = parse_cpus(cpus, list, (int)(sizeof list / sizeof *list), ncores, err);
        if (n <= 0) {
            free(used);
            free(near);
            return n < 0 ? n : mg_error_set(err, MG_EINVAL, "--cpus '%s' names no core", cpus);
        }
        int i = 0;
        for (int l = 0; l < nlinks; l++)
            plan->link_core[l] = list[i++ % n];
        for (int w = 0; w < nworkers; w++)
            plan->worker_core[w] = list[i++ % n];
        plan->collector_core = list[i % n];
        snprintf(plan->why, sizeof plan->why, "cores given by --cpus %s", cpus);
    } else {
        int nic_nodes = 0;
        for (int l = 0; l < nlinks; l++) {
            int node;
            int nn = mg_topology_cores_near_nic(t, ifnames ? ifnames[l] : NULL, near, ncores, &node);
            if (node >= 0)
                nic_nodes++;
            /* the least used core near the NIC, lowest index first */
            int best = -1;
            for (int i = 0; i < nn; i++)
                if (best < 0 || used[near[i]] < used[best])
                    best = near[i];
            plan->link_core[l] = best;
            used[best]++;
        }
        /* workers: least used cores, preferring the links' nodes */
        for (int w = 0; w < nworkers; w++) {
            int best = -1, want = nlinks ? mg_topology_core_node(t, plan->link_core[w % nlinks]) : 0;
            for (int c = 0; c < ncores; c++) {
                int better = best < 0 || used[c] < used[best] ||
                             (used[c] == used[best] && mg_topology_core_node(t, c) == want &&
                              mg_topology_core_node(t, best) != want);
                if (better)
                    best = c;
            }
            plan->worker_core[w] = best;
            used[best]++;
        }
        int best = 0;
        for (int c = 0; c < ncores; c++)
            if (used[c] < used[best])
                best = c;
        plan->collector_core = best;
        snprintf(plan->why, sizeof plan->why,
                 "%d core(s) in %d NUMA node(s); %d of %d link(s) have a NIC with known locality, the others "
                 "use any core",
                 ncores, mg_topology_numa_nodes(t), nic_nodes, nlinks);
    }
    for (int l = 0; l < nlinks; l++)
        plan->link_node[l] = mg_topology_core_node(t, plan->link_core[l]);
    for (int w = 0; w < nworkers; w++)
        plan->worker_node[w] = mg_topology_core_node(t, plan->worker_core[w]);
    free(used);
    free(near);
    return 0;
}

void mg_topology_print_plan(const mg_thread_plan *plan, FILE *out)
{
    fprintf(out, "thread plan: %s\n", plan->why);
    for (int l = 0; l < plan->nlinks; l++)
        fprintf(out, "  link %d receiver -> core %d (NUMA node %d)\n", l, plan->link_core[l], plan->link_node[l]);
    for (int w = 0; w < plan->nworkers; w++)
        fprintf(out, "  worker %d -> core %d (NUMA node %d)\n", w, plan->worker_core[w], plan->worker_node[w]);
    fprintf(out, "  collector -> core %d\n", plan->collector_core);
}

int mg_topology_bind_thread(mg_topology *t, int core, mg_error *err)
{
    if (!t || !t->this_system || core < 0)
        return 0;
    hwloc_obj_t c = hwloc_get_obj_by_type(t->h, HWLOC_OBJ_CORE, (unsigned)core);
    if (!c)
        return mg_error_set(err, MG_EINVAL, "core %d does not exist", core);
    if (hwloc_set_cpubind(t->h, c->cpuset, HWLOC_CPUBIND_THREAD))
        return mg_error_set(err, MG_ESYS, "cannot bind a thread to core %d (cgroup or container limits?)", core);
    return 0;
}

int mg_topology_default_workers(const mg_topology *t, int nlinks)
{
    int n = mg_topology_cores(t) - nlinks;
    return n < 1 ? 1 : n > MG_MAX_THREADS ? MG_MAX_THREADS : n;
}
