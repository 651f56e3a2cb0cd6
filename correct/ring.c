/* ring.c - SPSC queue with futex sleeping (contract in morgul/ring.h). */
#include "morgul/ring.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void futex_wait(_Atomic uint32_t *addr, uint32_t seen, unsigned timeout_us)
{
    struct timespec ts = {timeout_us / 1000000u, (long)(timeout_us % 1000000u) * 1000};
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
}

static void futex_wake(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void mg_futex_wait(_Atomic uint32_t *addr, uint32_t seen, unsigned timeout_us) { futex_wait(addr, seen, timeout_us); }

void mg_futex_wake_all(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, 0x7FFFFFFF, NULL, NULL, 0);
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int mg_ring_init(mg_ring *r, uint32_t capacity, size_t entry_bytes, mg_topology *topo, int numa_node,
                 mg_error *err)
{
    uint32_t cap = 1;
    while (cap < capacity)
        cap <<= 1;
    r->cap = cap;
    r->entry_bytes = (entry_bytes + 63) / 64 * 64;
    r->topo = topo;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->head_waiters, 0);
    atomic_init(&r->tail_waiters, 0);
    r->buf = mg_numa_alloc(topo, r->entry_bytes * cap, numa_node);
    if (!r->buf)
        return mg_error_set(err, MG_ENOMEM, "out of memory for a queue of %u entries of %zu bytes", cap,
                            r->entry_bytes);
    return 0;
}

void mg_ring_destroy(mg_ring *r)
{
    if (r->buf)
        mg_numa_free(r->topo, r->buf, r->entry_bytes * r->cap);
    r->buf = NULL;
}

/* Waits until `*watch` differs from `seen` via spinning, then futex sleeps. */
static int wait_change(_Atomic uint32_t *watch, _Atomic uint32_t *waiters, uint32_t seen, unsigned timeout_us,
                       int (*ready)(mg_ring *), mg_ring *r)
{
    for (int i = 0; i < 200; i++) {
        if (ready(r))
            return 1;
        __builtin_ia32_pause();
    }
    if (!timeout_us)
        return ready(r);
    uint64_t end = now_us() + timeout_us;
    for (;;) {
        atomic_fetch_add(waiters, 1);
        if (ready(r)) {
            atomic_fetch_sub(waiters, 1);
            return 1;
        }
        uint64_t t = now_us();
        if (t >= end) {
            atomic_fetch_sub(waiters, 1);
            return 0;
        }
        unsigned left = (unsigned)(end - t);
        futex_wait(watch, seen, left < 2000 ? left : 2000);
        atomic_fetch_sub(waiters, 1);
        if (ready(r))
            return 1;
        seen = atomic_load(watch);
    }
}

static int has_room(mg_ring *r)
{
    return atomic_load_explicit(&r->tail, memory_order_relaxed) -
               atomic_load_explicit(&r->head, memory_order_acquire) < r->cap;
}

static int has_entry(mg_ring *r)
{
    return atomic_load_explicit(&r->tail, memory_order_acquire) !=
           atomic_load_explicit(&r->head, memory_order_relaxed);
}

void *mg_ring_claim(mg_ring *r, unsigned timeout_us)
{
    if (!has_room(r) && !wait_change(&r->head, &r->head_waiters, atomic_load(&r->head), timeout_us, has_room, r))
        return NULL;
    uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    return r->buf + (size_t)(t & (r->cap - 1)) * r->entry_bytes;
}

void mg_ring_publish(mg_ring *r)
{
    atomic_fetch_add_explicit(&r->tail, 1, memory_order_release);
    if (atomic_load(&r->tail_waiters))
        futex_wake(&r->tail);
}

void *mg_ring_peek(mg_ring *r, unsigned timeout_us)
{
    if (!has_entry(r) && !wait_change(&r->tail, &r->tail_waiters, atomic_load(&r->tail), timeout_us, has_entry, r))
        return NULL;
    uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    return r->buf + (size_t)(h & (r->cap - 1)) * r->entry_bytes;
}

void mg_ring_consume(mg_ring *r)
{
    atomic_fetch_add_explicit(&r->head, 1, memory_order_release);
    if (atomic_load(&r->head_waiters))
        futex_wake(&r->head);
}

uint32_t mg_ring_fill(const mg_ring *r)
{
    return atomic_load_explicit(&r->tail, memory_order_relaxed) - atomic_load_explicit(&r->head, memory_order_relaxed);
}
