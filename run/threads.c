/* threads.c - threads kept between runs (see morgul/threads.h).
 *
 * Each kept thread has its own lock and condition: a start hands it a
 * function (ASSIGNED), it runs it and says DONE, the join takes the result
 * and leaves it IDLE.  The set's lock only guards the list and the choice
 * of an idle thread, so joins of different threads never wait for each other.
 */
#include "morgul/threads.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

enum { IDLE, ASSIGNED, DONE, QUIT };

struct mg_kept_thread {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;
    void *(*fn)(void *);
    void *arg, *ret;
    const mg_threads *set;
    struct mg_kept_thread *next;
};

struct mg_threads {
    pthread_mutex_t mu;
    struct mg_kept_thread *all;
    _Atomic int count;
    _Atomic uint64_t jobs;
    cpu_set_t cpus; /* the process's CPUs when the set was made */
    int have_cpus;
};

static void *kept_main(void *arg)
{
    struct mg_kept_thread *k = arg;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (k->state != ASSIGNED && k->state != QUIT)
            pthread_cond_wait(&k->cv, &k->mu);
        if (k->state == QUIT)
            break;
        pthread_mutex_unlock(&k->mu);
        void *ret = k->fn(k->arg);
        if (k->set->have_cpus) /* a function that bound the thread to a core leaves it there otherwise */
            pthread_setaffinity_np(pthread_self(), sizeof k->set->cpus, &k->set->cpus);
        pthread_mutex_lock(&k->mu);
        k->ret = ret;
        k->state = DONE;
        pthread_cond_broadcast(&k->cv);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

mg_threads *mg_threads_new(mg_error *err)
{
    mg_threads *s = calloc(1, sizeof *s);
    if (!s) {
        mg_error_set(err, MG_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->mu, NULL);
    atomic_init(&s->jobs, 0);
    atomic_init(&s->count, 0);
    s->have_cpus = sched_getaffinity(0, sizeof s->cpus, &s->cpus) == 0;
    return s;
}

void mg_threads_free(mg_threads *s)
{
    if (!s)
        return;
    for (struct mg_kept_thread *k = s->all, *next; k; k = next) {
        next = k->next;
        pthread_mutex_lock(&k->mu);
        while (k->state == ASSIGNED) /* a start not joined: its function ends first */
            pthread_cond_wait(&k->cv, &k->mu);
        k->state = QUIT;
        pthread_cond_broadcast(&k->cv);
        pthread_mutex_unlock(&k->mu);
        pthread_join(k->th, NULL);
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        free(k);
    }
    pthread_mutex_destroy(&s->mu);
    free(s);
}

int mg_thread_start(mg_threads *s, mg_thread *t, void *(*fn)(void *), void *arg, mg_error *err)
{
    memset(t, 0, sizeof *t);
    if (!s) {
        if (pthread_create(&t->th, NULL, fn, arg))
            return mg_error_set(err, MG_ESYS, "cannot start a thread (the system's thread limit?)");
        t->started = 1;
        return 0;
    }
    pthread_mutex_lock(&s->mu);
    struct mg_kept_thread *k;
    for (k = s->all; k; k = k->next) {
        pthread_mutex_lock(&k->mu);
        int idle = k->state == IDLE;
        if (idle) {
            k->fn = fn;
            k->arg = arg;
            k->state = ASSIGNED;
            pthread_cond_broadcast(&k->cv);
        }
        pthread_mutex_unlock(&k->mu);
        if (idle)
            break;
    }
    if (!k) {
        if (!(k = calloc(1, sizeof *k))) {
            pthread_mutex_unlock(&s->mu);
            return mg_error_set(err, MG_ENOMEM, "out of memory");
        }
        pthread_mutex_init(&k->mu, NULL);
        pthread_cond_init(&k->cv, NULL);
        k->set = s;
        k->fn = fn;
        k->arg = arg;
        k->state = ASSIGNED;
        if (pthread_create(&k->th, NULL, kept_main, k)) {
            pthread_cond_destroy(&k->cv);
            pthread_mutex_destroy(&k->mu);
            free(k);
            pthread_mutex_unlock(&s->mu);
            return mg_error_set(err, MG_ESYS, "cannot start a thread (the system's thread limit?)");
        }
        k->next = s->all;
        s->all = k;
        atomic_fetch_add(&s->count, 1);
    }
    atomic_fetch_add(&s->jobs, 1);
    pthread_mutex_unlock(&s->mu);
    t->kept = k;
    t->started = 1;
    return 0;
}

void *mg_thread_join(mg_thread *t)
{
    void *ret = NULL;
    if (!t->started)
        return NULL;
    if (!t->kept) {
        pthread_join(t->th, &ret);
    } else {
        struct mg_kept_thread *k = t->kept;
        pthread_mutex_lock(&k->mu);
        while (k->state != DONE)
            pthread_cond_wait(&k->cv, &k->mu);
        ret = k->ret;
        k->state = IDLE;
        pthread_mutex_unlock(&k->mu);
    }
    t->started = 0;
    return ret;
}

int mg_threads_count(const mg_threads *s)
{
    return s ? atomic_load(&s->count) : 0;
}

uint64_t mg_threads_jobs(const mg_threads *s)
{
    return s ? atomic_load(&s->jobs) : 0;
}
