// SPDX-License-Identifier: MIT
// Allocator benchmarks for mdalloc, run against every allocator by run.sh. Each benchmark runs
// for a fixed time with 2 threads (or 1 where noted) and prints "<name> <ops per second>".
// usage: bench NAME [SECONDS]
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef BENCH_CJSON
#include <cjson/cJSON.h>
#endif

static double seconds = 1.0;
static atomic_int stop_flag;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

// Run fn on `threads` threads for `seconds`; returns total ops/s.
typedef uint64_t (*bench_fn)(int idx);
static bench_fn current;
static _Atomic uint64_t total_ops;

static void *thread_main(void *arg)
{
    uint64_t ops = current((int)(intptr_t)arg);
    atomic_fetch_add(&total_ops, ops);
    return NULL;
}

static double run_threads(bench_fn fn, int threads)
{
    pthread_t t[16];
    current = fn;
    atomic_store(&stop_flag, 0);
    atomic_store(&total_ops, 0);
    double t0 = now_s();
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, thread_main, (void *)(intptr_t)i);
    struct timespec d = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&d, NULL);
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return (double)atomic_load(&total_ops) / (now_s() - t0);
}

static int stopped(void)
{
    return atomic_load_explicit(&stop_flag, memory_order_relaxed);
}

// ---- churn: glibc bench-malloc-thread style, each thread on its own working set ---------------
static uint64_t churn(int idx)
{
    enum { WS = 2000 };
    void *ws[WS] = {0};
    uint64_t s = (uint64_t)idx * 7919 + 1, ops = 0;
    while (!stopped()) {
        for (int k = 0; k < 1024; k++) {
            uint64_t r = rnd(&s);
            size_t i = r % WS;
            free(ws[i]);
            ws[i] = malloc(16 + (r >> 32) % 1008);
            *(char *)ws[i] = 1;
        }
        ops += 1024;
    }
    for (int i = 0; i < WS; i++)
        free(ws[i]);
    return ops;
}

// ---- larson: server-style churn where blocks outlive their thread's turn ----------------------
enum { LARSON_SLOTS = 8192 };
static _Atomic(void *) larson_slots[LARSON_SLOTS];

static uint64_t larson(int idx)
{
    uint64_t s = (uint64_t)idx * 104729 + 3, ops = 0;
    while (!stopped()) {
        for (int k = 0; k < 1024; k++) {
            uint64_t r = rnd(&s);
            // mostly this thread's half of the table, sometimes the other half: cross-thread frees
            size_t half = ((r & 7) == 0) ? (size_t)(1 - idx) : (size_t)idx;
            size_t i = half * (LARSON_SLOTS / 2) + (r >> 8) % (LARSON_SLOTS / 2);
            char *p = malloc(8 + (r >> 40) % 500);
            p[0] = 1;
            free(atomic_exchange_explicit(&larson_slots[i], p, memory_order_acq_rel));
        }
        ops += 1024;
    }
    return ops;
}

// ---- producer/consumer (xmalloc style): every block is freed by the other thread --------------
// Each thread fills batches of blocks and queues them (up to QLEN batches in flight) for the other
// thread, which frees them: both threads produce and consume, all frees are cross-thread.
enum { BATCH = 256, QLEN = 8 };
static void *batches[2][QLEN][BATCH]; // batches[t]: filled by thread t, freed by the other
static _Atomic uint64_t queue_head[2], queue_tail[2];

static uint64_t consume(int from)
{
    uint64_t tail = atomic_load_explicit(&queue_tail[from], memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&queue_head[from], memory_order_acquire);
    uint64_t freed = 0;
    if (tail == head)
        return 0;
    for (; tail < head; tail++, freed += BATCH)
        for (int k = 0; k < BATCH; k++)
            free(batches[from][tail % QLEN][k]);
    atomic_store_explicit(&queue_tail[from], tail, memory_order_release);
    return freed;
}

static uint64_t prodcons(int idx)
{
    uint64_t ops = 0, s = (uint64_t)idx * 7 + 99;
    while (!stopped()) {
        int progress = 0;
        uint64_t head = atomic_load_explicit(&queue_head[idx], memory_order_relaxed);
        if (head - atomic_load_explicit(&queue_tail[idx], memory_order_acquire) < QLEN) {
            void **batch = batches[idx][head % QLEN];
            for (int k = 0; k < BATCH; k++)
                batch[k] = malloc(16 + rnd(&s) % 240);
            atomic_store_explicit(&queue_head[idx], head + 1, memory_order_release);
            progress = 1;
        }
        uint64_t freed = consume(1 - idx);
        ops += freed;
        if (!progress && freed == 0)
            sched_yield(); // the other thread is not running: let it
    }
    return ops; // frees per second (all of them cross-thread)
}

// The same with thread i pinned to CPU i (not in run.sh's default list). prodcons alone runs either
// with the two threads on two cores (every block's cache line moves between them) or, when other
// programs keep a core busy, time-sliced on one core (no transfers, several times faster), so its
// rate is bimodal on a shared machine; pinned, it measures the cross-core path whenever both CPUs
// are free. Compare builds by operations per CPU second (tests/bench/alloc/ab.sh).
static uint64_t prodcons_pinned(int idx)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(idx, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set); // best effort: fewer CPUs, no pin
    return prodcons(idx);
}

// ---- mixed: small objects with occasional large ones ------------------------------------------
static uint64_t mixed(int idx)
{
    enum { WS = 1000 };
    void *ws[WS] = {0};
    uint64_t s = (uint64_t)idx * 31 + 5, ops = 0;
    while (!stopped()) {
        for (int k = 0; k < 256; k++) {
            uint64_t r = rnd(&s);
            size_t i = r % WS;
            size_t n = (r >> 20) % 100 < 97 ? 16 + (r >> 32) % 2000
                                            : 64 * 1024 + (r >> 32) % (1536 * 1024);
            free(ws[i]);
            ws[i] = malloc(n);
            memset(ws[i], 1, n < 4096 ? n : 4096);
        }
        ops += 256;
    }
    for (int i = 0; i < WS; i++)
        free(ws[i]);
    return ops;
}

// ---- realloc growth: build buffers by appending ----------------------------------------------
static uint64_t realloc_growth(int idx)
{
    uint64_t s = (uint64_t)idx + 11, ops = 0;
    while (!stopped()) {
        char *bufs[8] = {0};
        size_t len[8] = {0};
        size_t target = 1000 + rnd(&s) % (2 << 20);
        for (size_t step = 0; step < target; step += 64) {
            int b = (int)(step / 64) % 8;
            len[b] += 64 + (step & 63);
            bufs[b] = realloc(bufs[b], len[b]);
            bufs[b][len[b] - 1] = 1;
            ops++;
        }
        for (int b = 0; b < 8; b++)
            free(bufs[b]);
    }
    return ops;
}

// ---- big: allocations of 1-32 MiB, touched sparsely --------------------------------------------
static uint64_t big(int idx)
{
    uint64_t s = (uint64_t)idx * 3 + 17, ops = 0;
    void *keep[4] = {0};
    while (!stopped()) {
        size_t n = ((size_t)1 << 20) + rnd(&s) % ((size_t)31 << 20);
        char *p = malloc(n);
        for (size_t k = 0; k < n; k += 65536)
            p[k] = 1;
        size_t i = rnd(&s) % 4;
        free(keep[i]);
        keep[i] = p;
        ops++;
    }
    for (int i = 0; i < 4; i++)
        free(keep[i]);
    return ops;
}

// ---- hugechurn: random slots of 1-5 MB blocks replaced, 4 KiB of each touched -----------------
// An acceptance tester's program: every block is above the large classes, so each op is a huge
// free and a huge malloc; what matters is how cheaply freed big blocks are reused (system calls,
// page faults), with 1000 slots (about 3 GB of address space) live. One thread, seeded PRNG.
static uint64_t hugechurn(int idx)
{
    enum { SLOTS = 1000 };
    static char *slot[SLOTS];
    uint64_t s = (uint64_t)idx * 101 + 7, ops = 0;
    while (!stopped()) {
        for (int k = 0; k < 64; k++) {
            uint64_t r = rnd(&s);
            size_t i = r % SLOTS;
            size_t n = ((size_t)1 << 20) + (r >> 16) % ((size_t)4 << 20);
            free(slot[i]);
            slot[i] = malloc(n);
            memset(slot[i], 1, 4096);
        }
        ops += 64;
    }
    for (int i = 0; i < SLOTS; i++)
        free(slot[i]);
    return ops;
}

#ifdef BENCH_CJSON
// ---- cJSON: parse and free a large generated document -----------------------------------------
static char *json_doc;

static void make_json(void)
{
    size_t cap = 1 << 20, len = 0;
    json_doc = malloc(cap);
    len += (size_t)sprintf(json_doc + len, "{\"items\":[");
    for (int i = 0; len < cap - 4096; i++) {
        len += (size_t)sprintf(json_doc + len,
                               "%s{\"id\":%d,\"name\":\"item-%d\",\"price\":%d.%02d,"
                               "\"tags\":[\"a%d\",\"b%d\",\"c\"],\"ok\":%s,\"dims\":{\"w\":%d,"
                               "\"h\":%d}}",
                               i ? "," : "", i, i, i % 1000, i % 100, i % 7, i % 13,
                               i % 2 ? "true" : "false", i % 50, i % 70);
    }
    sprintf(json_doc + len, "]}");
}

static uint64_t cjson(int idx)
{
    (void)idx;
    uint64_t ops = 0;
    while (!stopped()) {
        cJSON *root = cJSON_Parse(json_doc);
        if (root == NULL) {
            fprintf(stderr, "cjson: parse failed\n");
            exit(1);
        }
        cJSON_Delete(root);
        ops++;
    }
    return ops;
}
#endif

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(
            stderr,
            "usage: bench churn|larson|prodcons|prodcons-pinned|mixed|realloc|big|hugechurn|cjson "
            "[SECONDS]\n");
        return 2;
    }
    if (argc > 2)
        seconds = atof(argv[2]);
    const char *name = argv[1];
    double rate;
    if (strcmp(name, "churn") == 0)
        rate = run_threads(churn, 2);
    else if (strcmp(name, "larson") == 0)
        rate = run_threads(larson, 2);
    else if (strcmp(name, "prodcons") == 0)
        rate = run_threads(prodcons, 2);
    else if (strcmp(name, "prodcons-pinned") == 0)
        rate = run_threads(prodcons_pinned, 2);
    else if (strcmp(name, "mixed") == 0)
        rate = run_threads(mixed, 2);
    else if (strcmp(name, "realloc") == 0)
        rate = run_threads(realloc_growth, 2);
    else if (strcmp(name, "big") == 0)
        rate = run_threads(big, 2);
    else if (strcmp(name, "hugechurn") == 0)
        rate = run_threads(hugechurn, 1);
#ifdef BENCH_CJSON
    else if (strcmp(name, "cjson") == 0) {
        make_json();
        rate = run_threads(cjson, 2);
    }
#endif
    else {
        fprintf(stderr, "bench: unknown or unavailable benchmark %s\n", name);
        return 2;
    }
    if (strcmp(name, "larson") == 0)
        for (int i = 0; i < LARSON_SLOTS; i++)
            free(atomic_exchange(&larson_slots[i], NULL));
    for (int i = 0; i < 2; i++) // batches still in flight
        consume(i);
    printf("%s %.0f\n", name, rate);
    return 0;
}
