// SPDX-License-Identifier: MIT
// Fast-path cost of malloc+free: one thread allocates batches of small blocks (16-512 B) and
// frees them in allocation order, so nearly every call takes the allocator's fast path. Prints
// "fastpath <nanoseconds per malloc+free pair>" (best of the rounds). Used to measure what
// mdalloc's misuse checks cost (run.sh compares two builds side by side).
// usage: fastpath [ROUNDS] [PAIRS_PER_ROUND]
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

// Through a volatile pointer: the compiler must not pair up or elide the calls.
static void *(*volatile malloc_fn)(size_t) = malloc;
static void (*volatile free_fn)(void *) = free;

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 10;
    long pairs = argc > 2 ? atol(argv[2]) : 4000000;
    enum { BATCH = 64 };
    void *blocks[BATCH];
    size_t sizes[BATCH];
    uint64_t s = 88172645463325252ull;
    for (int k = 0; k < BATCH; k++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        sizes[k] = 16 + s % 497;
    }
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_ns();
        for (long i = 0; i < pairs; i += BATCH) {
            for (int k = 0; k < BATCH; k++)
                blocks[k] = malloc_fn(sizes[k]);
            for (int k = 0; k < BATCH; k++)
                free_fn(blocks[k]);
        }
        double ns = (now_ns() - t0) / (double)pairs;
        if (ns < best)
            best = ns;
    }
    printf("fastpath %.2f\n", best);
    return 0;
}
