/* test_ring.c - the SPSC queue under two threads: every entry arrives, in
 * order, exactly once; full and empty rings time out. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "morgul/ring.h"

#define N 200000

static void *producer(void *arg)
{
    mg_ring *r = arg;
    for (uint64_t i = 0; i < N; i++) {
        uint64_t *e;
        while (!(e = mg_ring_claim(r, 100000)))
            ;
        e[0] = i;
        e[1] = i * 3;
        mg_ring_publish(r);
    }
    return NULL;
}

static void test_threads(void)
{
    mg_ring r;
    CHECK_EQ(mg_ring_init(&r, 5, 16, NULL, -1, NULL), 0);
    CHECK_EQ(r.cap, 8);
    pthread_t t;
    pthread_create(&t, NULL, producer, &r);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < N; i++) {
        uint64_t *e;
        while (!(e = mg_ring_peek(&r, 100000)))
            ;
        bad += e[0] != i || e[1] != i * 3;
        mg_ring_consume(&r);
    }
    pthread_join(t, NULL);
    CHECK_EQ(bad, 0);
    CHECK_EQ(mg_ring_fill(&r), 0);
    mg_ring_destroy(&r);
}

static void test_timeouts(void)
{
    mg_ring r;
    mg_ring_init(&r, 2, 8, NULL, -1, NULL);
    CHECK(mg_ring_peek(&r, 0) == NULL);
    CHECK(mg_ring_peek(&r, 3000) == NULL);
    CHECK(mg_ring_claim(&r, 0) != NULL);
    mg_ring_publish(&r);
    CHECK(mg_ring_claim(&r, 0) != NULL);
    mg_ring_publish(&r);
    CHECK(mg_ring_claim(&r, 3000) == NULL); /* full */
    CHECK_EQ(mg_ring_fill(&r), 2);
    mg_ring_destroy(&r);
}

int main(void)
{
    RUN(test_threads);
    RUN(test_timeouts);
    return CHECK_DONE();
}
