/* test_threads.c - threads kept between runs: functions run and return
 * their values; a second round of the same shape makes no thread; the
 * threads run at once (a round whose functions wait for each other ends);
 * a function that binds its thread leaves the next one unbound; and the
 * same calls without a set use system threads. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "check.h"
#include "morgul/threads.h"

static void *twice(void *arg)
{
    return (void *)(2 * (intptr_t)arg);
}

static void test_values_and_reuse(void)
{
    mg_threads *set = mg_threads_new(NULL);
    CHECK(set != NULL);
    for (int round = 0; round < 5; round++) {
        mg_thread t[6];
        for (int i = 0; i < 6; i++)
            CHECK_EQ(mg_thread_start(set, &t[i], twice, (void *)(intptr_t)(i + round), NULL), 0);
        for (int i = 0; i < 6; i++)
            CHECK_EQ((intptr_t)mg_thread_join(&t[i]), 2 * (i + round));
        CHECK_EQ(mg_threads_count(set), 6); /* the first round made them; the others made none */
        CHECK_EQ(mg_threads_jobs(set), 6 * (round + 1));
    }
    mg_threads_free(set);
}

/* Every function of a round waits until all have begun: they end only when
 * each runs on a thread of its own, at once. */
typedef struct {
    _Atomic int arrived;
    int n;
} barrier;

static void *meet(void *arg)
{
    barrier *b = arg;
    atomic_fetch_add(&b->arrived, 1);
    while (atomic_load(&b->arrived) < b->n)
        sched_yield();
    return NULL;
}

static void test_run_at_once(void)
{
    mg_threads *set = mg_threads_new(NULL);
    for (int round = 0; round < 3; round++) {
        barrier b = {.n = 4};
        atomic_init(&b.arrived, 0);
        mg_thread t[4];
        for (int i = 0; i < 4; i++)
            CHECK_EQ(mg_thread_start(set, &t[i], meet, &b, NULL), 0);
        for (int i = 0; i < 4; i++)
            mg_thread_join(&t[i]);
        CHECK_EQ(atomic_load(&b.arrived), 4);
    }
    CHECK_EQ(mg_threads_count(set), 4);
    mg_threads_free(set);
}

static void *bind_to_first_cpu(void *arg)
{
    (void)arg;
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++) {
        cpu_set_t all;
        sched_getaffinity(0, sizeof all, &all);
        if (CPU_ISSET(c, &all)) {
            CPU_SET(c, &one);
            break;
        }
    }
    pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    return NULL;
}

static void *count_cpus(void *arg)
{
    (void)arg;
    cpu_set_t s;
    pthread_getaffinity_np(pthread_self(), sizeof s, &s);
    return (void *)(intptr_t)CPU_COUNT(&s);
}

static void test_binding_is_undone(void)
{
    cpu_set_t all;
    sched_getaffinity(0, sizeof all, &all);
    mg_threads *set = mg_threads_new(NULL);
    mg_thread t;
    CHECK_EQ(mg_thread_start(set, &t, bind_to_first_cpu, NULL, NULL), 0);
    mg_thread_join(&t);
    CHECK_EQ(mg_thread_start(set, &t, count_cpus, NULL, NULL), 0);
    CHECK_EQ((intptr_t)mg_thread_join(&t), CPU_COUNT(&all));
    CHECK_EQ(mg_threads_count(set), 1); /* the same thread, bound and then unbound */
    mg_threads_free(set);
}

static void test_without_a_set(void)
{
    mg_thread t[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(mg_thread_start(NULL, &t[i], twice, (void *)(intptr_t)(10 + i), NULL), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ((intptr_t)mg_thread_join(&t[i]), 20 + 2 * i);
    CHECK_EQ(mg_threads_count(NULL), 0);
    mg_threads_free(NULL);
}

int main(void)
{
    RUN(test_values_and_reuse);
    RUN(test_run_at_once);
    RUN(test_binding_is_undone);
    RUN(test_without_a_set);
    return CHECK_DONE();
}
