// SPDX-License-Identifier: MIT
// Randomized multithreaded stress test: every block is filled with a pattern derived from its
// address and size and checked before it is freed or reallocated. Half of the operations go
// through a shared slot table, so blocks are freed by other threads (including threads created
// after the allocating one exited); threads are created and exit in waves.
//
// usage: stress THREADS WAVES OPS_PER_THREAD [SEED]
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARED_SLOTS 4096
#define LOCAL_SLOTS 512

static _Atomic(unsigned char *) shared[SHARED_SLOTS];
static long ops_per_thread;
static _Atomic long corruptions;

static uint64_t next_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static size_t pick_size(uint64_t *rng)
{
    unsigned r = (unsigned)(next_rand(rng) % 1000);
    uint64_t v = next_rand(rng);
    if (r < 700)
        return 8 + v % 249;
    if (r < 900)
        return 256 + v % 8000;
    if (r < 985)
        return 8192 + v % (512 * 1024 - 8192);
    return 512 * 1024 + v % (4 << 20);
}

static unsigned char pattern_byte(const unsigned char *p, size_t n, size_t k)
{
    return (unsigned char)(((uintptr_t)p >> 4) * 131 + n * 7 + k);
}

static size_t stride(size_t n)
{
    return n <= 4096 ? 1 : 61;
}

// Fill bytes [from, n); the first 8 bytes hold the size.
static void fill(unsigned char *p, size_t n, size_t from)
{
    memcpy(p, &n, sizeof(n));
    size_t st = stride(n);
    size_t k = from < 8 ? 8 : from;
    k = 8 + (k - 8 + st - 1) / st * st; // positions the checks look at
    for (; k < n; k += st)
        p[k] = pattern_byte(p, n, k);
    if (n > 8)
        p[n - 1] = pattern_byte(p, n, n - 1);
}

static int check(const unsigned char *p, size_t *n_out)
{
    size_t n;
    memcpy(&n, p, sizeof(n));
    *n_out = n;
    if (n < 8 || n > (8u << 20))
        return 0;
    for (size_t k = 8; k < n; k += stride(n))
        if (p[k] != pattern_byte(p, n, k))
            return 0;
    return p[n - 1] == pattern_byte(p, n, n - 1) || n == 8;
}

// Report the first few problems only.
static void report(const char *what, const void *p, size_t n)
{
    if (atomic_fetch_add(&corruptions, 1) < 10)
        fprintf(stderr, "stress: %s: block %p, size %zu\n", what, p, n);
}

static void verify_and_free(unsigned char *p)
{
    size_t n;
    if (!check(p, &n)) {
        report("corrupted block", p, n);
    }
    free(p);
}

static unsigned char *new_block(uint64_t *rng)
{
    size_t n = pick_size(rng);
    unsigned char *p;
    unsigned kind = (unsigned)(next_rand(rng) % 10);
    if (kind == 0) {
        p = calloc(1, n);
        if (p != NULL)
            for (size_t k = 0; k < n; k += stride(n))
                if (p[k] != 0) {
                    report("calloc block not zero", p, n);
                    break;
                }
    } else if (kind == 1) {
        size_t align = (size_t)16 << (next_rand(rng) % 9);
        if (posix_memalign((void **)&p, align, n) != 0)
            p = NULL;
        if (p != NULL && ((uintptr_t)p & (align - 1)) != 0) {
            report("misaligned block", p, align);
        }
    } else {
        p = malloc(n);
    }
    if (p == NULL) {
        fprintf(stderr, "stress: out of memory for %zu bytes\n", n);
        exit(1);
    }
    fill(p, n, 0);
    return p;
}

// Grow or shrink a checked block; the kept prefix must survive.
static unsigned char *resize(unsigned char *p, uint64_t *rng)
{
    size_t n;
    if (!check(p, &n)) {
        report("corrupted block before realloc", p, n);
        return p;
    }
    size_t m = pick_size(rng);
    uintptr_t old_addr = (uintptr_t)p; // the pattern depends on the old address
    unsigned char *q = realloc(p, m);
    if (q == NULL) {
        fprintf(stderr, "stress: realloc failed\n");
        exit(1);
    }
    size_t keep = n < m ? n : m;
    for (size_t k = 8; k < keep - 1; k += stride(n))
        if (q[k] != pattern_byte((const unsigned char *)old_addr, n, k)) {
            report("realloc lost data", q, k);
            break;
        }
    fill(q, m, 0);
    return q;
}

static void *worker(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    unsigned char *local[LOCAL_SLOTS] = {0};
    for (long i = 0; i < ops_per_thread; i++) {
        uint64_t r = next_rand(&rng);
        if (r & 1) {
            unsigned char **slot = &local[(r >> 8) % LOCAL_SLOTS];
            if (*slot != NULL && (r & 6) == 0)
                *slot = resize(*slot, &rng);
            else {
                if (*slot != NULL)
                    verify_and_free(*slot);
                *slot = new_block(&rng);
            }
        } else {
            unsigned char *old = atomic_exchange(&shared[(r >> 8) % SHARED_SLOTS], new_block(&rng));
            if (old != NULL)
                verify_and_free(old);
        }
    }
    // Leave some local blocks to the next waves through the shared table.
    for (size_t k = 0; k < LOCAL_SLOTS; k++) {
        if (local[k] == NULL)
            continue;
        if (k % 4 == 0) {
            unsigned char *old =
                atomic_exchange(&shared[(k * 7 + (uintptr_t)arg) % SHARED_SLOTS], local[k]);
            if (old != NULL)
                verify_and_free(old);
        } else {
            verify_and_free(local[k]);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: stress THREADS WAVES OPS_PER_THREAD [SEED]\n");
        return 2;
    }
    int threads = atoi(argv[1]), waves = atoi(argv[2]);
    ops_per_thread = atol(argv[3]);
    uintptr_t seed = argc > 4 ? (uintptr_t)atol(argv[4]) : 1;
    pthread_t *tids = calloc((size_t)threads, sizeof(*tids));
    for (int w = 0; w < waves; w++) {
        for (int t = 0; t < threads; t++)
            if (pthread_create(&tids[t], NULL, worker,
                               (void *)(seed + (uintptr_t)(w * threads + t)))) {
                fprintf(stderr, "stress: pthread_create failed\n");
                return 1;
            }
        for (int t = 0; t < threads; t++)
            pthread_join(tids[t], NULL);
    }
    for (size_t k = 0; k < SHARED_SLOTS; k++) {
        unsigned char *p = atomic_exchange(&shared[k], NULL);
        if (p != NULL)
            verify_and_free(p);
    }
    free(tids);
    long bad = atomic_load(&corruptions);
    if (bad != 0) {
        fprintf(stderr, "stress: %ld corrupted blocks\n", bad);
        return 1;
    }
    printf("ok %d threads x %d waves x %ld ops\n", threads, waves, ops_per_thread);
    return 0;
}
