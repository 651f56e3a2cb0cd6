/* morgul/threads.h - threads kept between runs.
 *
 * A run starts a thread per link, a thread per compression worker and a
 * collector, and ends them when it ends.  A caller that runs many runs in
 * one process (the service) keeps them instead: a mg_threads set hands each
 * start to a kept thread that is idle, and makes a new one only when none
 * is, so the second run of the same shape starts no thread at all.  Without
 * a set (NULL) the same two calls create and join a thread of the system.
 *
 * A kept thread runs one function at a time.  What a function changes in
 * its thread stays for the next function there, except the CPU binding:
 * after each function the thread is bound again to the CPUs the process had
 * when the set was made, so a function that binds its thread to a core
 * (mg_topology_bind_thread) does not leave the next one, which may not bind,
 * on that core.  A set is not copied; it may be used from several threads.
 */
#ifndef MORGUL_THREADS_H
#define MORGUL_THREADS_H

#include <pthread.h>
#include <stdint.h>

#include "morgul/error.h"

typedef struct mg_threads mg_threads;

/* One started function: what mg_thread_start fills in and mg_thread_join
 * takes.  Opaque; zero it before use if you test `started`. */
typedef struct mg_thread {
    int started;              /* 1 from a successful start until the join */
    pthread_t th;             /* without a set */
    struct mg_kept_thread *kept; /* with one */
} mg_thread;

/* An empty set (threads are made as they are first needed).  NULL on error. */
mg_threads *mg_threads_new(mg_error *err);

/* Ends and joins every kept thread.  Each function started must have been
 * joined first (a running one would be waited for).  NULL is allowed. */
void mg_threads_free(mg_threads *set);

/* Runs fn(arg) on a kept thread of `set` that is idle (a new one if none
 * is), or on a new system thread when set is NULL.  Returns 0, or MG_ESYS
 * when no thread could be made (nothing was started then). */
int mg_thread_start(mg_threads *set, mg_thread *t, void *(*fn)(void *), void *arg, mg_error *err);

/* Waits until the function started in t has returned and gives its return
 * value; the kept thread is idle again.  Once per successful start. */
void *mg_thread_join(mg_thread *t);

/* The threads a set holds now, and the functions it has run: a run of the
 * same shape as the one before makes the first stay and the second grow. */
int mg_threads_count(const mg_threads *set);
uint64_t mg_threads_jobs(const mg_threads *set);

#endif
