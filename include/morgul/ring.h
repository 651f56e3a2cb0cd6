/* morgul/ring.h - a bounded single-producer/single-consumer queue.
 *
 * Entries live inside the ring (no pointers to chase, no allocation after
 * init) in memory bound to the NUMA node of the threads that use it.  The
 * producer claims an entry, fills it in place and publishes it; the consumer
 * peeks at the oldest entry, uses it in place and consumes it.  Exactly one
 * producer thread and one consumer thread.
 *
 * Waiting: the *_wait calls spin briefly and then sleep on a futex, so an
 * idle stage costs no CPU and a busy one pays no system call.  They give up
 * after `timeout_us` (0 = do not wait) and return NULL.
 */
#ifndef MORGUL_RING_H
#define MORGUL_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "morgul/error.h"
#include "morgul/topology.h"

typedef struct mg_ring {
    _Atomic uint32_t head __attribute__((aligned(64))); /* consumed so far */
    _Atomic uint32_t head_waiters;
    _Atomic uint32_t tail __attribute__((aligned(64))); /* published so far */
    _Atomic uint32_t tail_waiters;
    uint32_t cap __attribute__((aligned(64))); /* a power of two */
    size_t entry_bytes;
    uint8_t *buf;
    mg_topology *topo;
} mg_ring;

/* capacity is rounded up to a power of two; entry_bytes is rounded up to 64. */
int mg_ring_init(mg_ring *r, uint32_t capacity, size_t entry_bytes, mg_topology *topo, int numa_node,
                 mg_error *err);
void mg_ring_destroy(mg_ring *r);

/* Producer: the next free entry, or NULL if the ring stays full for timeout_us. */
void *mg_ring_claim(mg_ring *r, unsigned timeout_us);
void mg_ring_publish(mg_ring *r);

/* Consumer: the oldest entry, or NULL if the ring stays empty for timeout_us. */
void *mg_ring_peek(mg_ring *r, unsigned timeout_us);
void mg_ring_consume(mg_ring *r);

/* The futex underneath, for other waits between threads: sleeps while
 * *addr == seen (at most timeout_us), and wakes every sleeper on addr. */
void mg_futex_wait(_Atomic uint32_t *addr, uint32_t seen, unsigned timeout_us);
void mg_futex_wake_all(_Atomic uint32_t *addr);

/* Entries published and not yet consumed (any thread, approximate). */
uint32_t mg_ring_fill(const mg_ring *r);

#endif
