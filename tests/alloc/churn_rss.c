// SPDX-License-Identifier: MIT
// Thread create/exit churn with bounded memory: thousands of short-lived threads allocate, free
// most of their blocks and hand the rest to the main thread, which frees them later (remote frees
// into heaps whose threads are gone). The resident set must stop growing after a warm-up.
// usage: churn_rss THREADS [dlerror|tsd] ; prints RSS numbers and "ok" or fails. With "dlerror"
// each thread also leaves a dlerror() message, which glibc frees after the thread's TSD
// destructors ran (after mdalloc's exit hook): a heap taken for that free must not stay with the
// dead thread. With "tsd" each thread keeps a cache of blocks in a key of the program's, made
// after mdalloc's, whose destructor frees them: that must still happen before mdalloc's exit hook
// (MDALLOC_STATS' calls_after_thread_exit stays 0).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEEP 64
#define QUEUE 4096

static char *handed[QUEUE];
static size_t handed_count;
static pthread_mutex_t handed_lock = PTHREAD_MUTEX_INITIALIZER;

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f == NULL)
        return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int leave_dlerror, keep_tsd_cache;
static pthread_key_t cache_key;

struct cache {
    size_t count;
    void *blocks[200];
};

static void cache_free(void *arg)
{
    struct cache *c = arg;
    for (size_t i = 0; i < c->count; i++)
        free(c->blocks[i]);
    free(c);
}

static void *allocate_once(void *arg)
{
    free(malloc(1));
    return arg;
}

static void fill_cache(unsigned r)
{
    struct cache *c = malloc(sizeof *c);
    if (c == NULL)
        abort();
    c->count = sizeof c->blocks / sizeof c->blocks[0];
    for (size_t i = 0; i < c->count; i++) {
        r = r * 1103515245u + 12345u;
        c->blocks[i] = malloc(16 + (r >> 8) % 4000);
    }
    pthread_setspecific(cache_key, c);
}

static void *worker(void *arg)
{
    if (leave_dlerror && dlopen("/nonexistent/md-churn-rss.so", RTLD_NOW) != NULL)
        abort();
    unsigned r = (unsigned)(uintptr_t)arg;
    if (keep_tsd_cache)
        fill_cache(r);
    char *blocks[1000];
    for (int i = 0; i < 1000; i++) {
        r = r * 1103515245u + 12345u;
        size_t n = i % 50 == 0 ? 20000 + (r >> 8) % 100000 : 16 + (r >> 8) % 2000;
        blocks[i] = malloc(n);
        memset(blocks[i], 1, n);
    }
    pthread_mutex_lock(&handed_lock);
    for (int i = 0; i < 1000; i++) {
        if (i < KEEP && handed_count < QUEUE)
            handed[handed_count++] = blocks[i];
        else
            free(blocks[i]);
    }
    pthread_mutex_unlock(&handed_lock);
    return NULL;
}

static void drain(void)
{
    pthread_mutex_lock(&handed_lock);
    for (size_t i = 0; i < handed_count; i++)
        free(handed[i]);
    handed_count = 0;
    pthread_mutex_unlock(&handed_lock);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2000;
    leave_dlerror = argc > 2 && !strcmp(argv[2], "dlerror");
    keep_tsd_cache = argc > 2 && !strcmp(argv[2], "tsd");
    // mdalloc's key first (it is made when a thread first allocates), as in a program whose
    // libraries start a thread at start-up
    pthread_t first;
    if (pthread_create(&first, NULL, allocate_once, NULL) || pthread_join(first, NULL) ||
        pthread_key_create(&cache_key, cache_free))
        return 1;
    long warm = 0;
    for (int i = 0; i < threads; i += 2) {
        pthread_t a, b;
        pthread_create(&a, NULL, worker, (void *)(uintptr_t)(i + 1));
        pthread_create(&b, NULL, worker, (void *)(uintptr_t)(i + 2));
        pthread_join(a, NULL);
        pthread_join(b, NULL);
        if (i % 64 == 0)
            drain();
        if (i == 200)
            warm = rss_kb();
    }
    drain();
    long end = rss_kb();
    printf("rss after warm-up %ld KB, at end %ld KB\n", warm, end);
    // A heap leaked per thread would cost ~0.5 MB each: far above this bound.
    if (end > warm + 32 * 1024) {
        fprintf(stderr, "churn_rss: RSS grew from %ld KB to %ld KB\n", warm, end);
        return 1;
    }
    printf("ok\n");
    return 0;
}
