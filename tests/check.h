/* check.h - the unit tests' few assertions.  A failed CHECK prints the
 * file, line and expression and marks the test failed; the test goes on so
 * one run shows every failure.  main() returns the number of failures. */
#ifndef MORGUL_TEST_CHECK_H
#define MORGUL_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_failures;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (!(cond)) {                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            check_failures++;                                                      \
        }                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                                 \
    do {                                                                                               \
        long long a_ = (long long)(a), b_ = (long long)(b);                                            \
        if (a_ != b_) {                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__, #a, #b, \
                    a_, b_);                                                                           \
            check_failures++;                                                                          \
        }                                                                                              \
    } while (0)

#define RUN(test)                                                    \
    do {                                                             \
        int before_ = check_failures;                                \
        test();                                                      \
        printf("%s %s\n", check_failures == before_ ? "ok  " : "FAIL", #test); \
    } while (0)

#define CHECK_DONE() (check_failures ? (printf("%d check(s) failed\n", check_failures), 1) : 0)

#endif
