// SPDX-License-Identifier: MIT
// Thread exit through a POSIX thread-specific key: its destructor hands the heap over. Neither
// pthread_key_create nor pthread_setspecific (for the first keys) allocates, in glibc or musl.
#include "md_internal.h"
#include "prim.h"

#include <pthread.h>

static pthread_key_t md_thread_key;
static _Atomic int md_key_state; // 0: none, 1: being created, 2: ready, 3: unavailable

// The destructor already put the heap back once, to run after the program's destructors.
static __thread bool md_tls_exit_deferred __attribute__((tls_model("initial-exec")));

// glibc and musl run key destructors in key order, and mdalloc's key is usually the first one
// (made by a constructor before the program's own: md_thread_key_early): the program's own
// destructors, which free per-thread caches (OpenSSL's error state, GPrivate data, pools), would
// all come after the heap was handed over, each call borrowing a heap and collecting it again
// (28 s instead of 0.5 s for 128 threads freeing 50000 blocks each). Storing the heap again asks
// for another round of destructors (up to PTHREAD_DESTRUCTOR_ITERATIONS), which comes after
// theirs; the heap is handed over then.
static void md_thread_done(void *heap)
{
    if (!md_tls_exit_deferred) {
        md_tls_exit_deferred = true;
        if (pthread_setspecific(md_thread_key, heap) == 0)
            return;
    }
    md_heap_thread_exit(heap);
}

static int md_key_ready(void)
{
    int st = atomic_load_explicit(&md_key_state, memory_order_acquire);
    if (st >= 2)
        return st;
    int expected = 0;
    if (atomic_compare_exchange_strong(&md_key_state, &expected, 1)) {
        st = pthread_key_create(&md_thread_key, md_thread_done) == 0 ? 2 : 3;
        atomic_store_explicit(&md_key_state, st, memory_order_release);
        return st;
    }
    while ((st = atomic_load_explicit(&md_key_state, memory_order_acquire)) == 1)
        md_prim_yield();
    return st;
}

// The key is made before the program's constructors run (priority 101 comes before the default in
// a static link, and a preloaded library's constructors run before the program's), not at the
// first malloc: a program whose constructor takes every key (PTHREAD_KEYS_MAX, 1024 in glibc, 128
// in musl) before it allocates left mdalloc without one, and no exiting thread's heap was handed
// over (300 threads one after the other: 301 heaps, 318 MB resident). A library loaded before a
// preloaded mdalloc is initialised can still do that; its threads' heaps then stay theirs.
__attribute__((constructor(101))) static void md_thread_key_early(void)
{
    md_key_ready();
}

// In a forked child. A thread that was creating the key when another thread forked does not exist
// in the child, so "being created" would never end and the child's first heap would wait forever:
// let the child create the key again (a key the parent got but did not record yet stays unused).
void md_thread_fork_child(void)
{
    int creating = 1;
    atomic_compare_exchange_strong(&md_key_state, &creating, 0);
}

void md_glue_thread_bind(md_heap_t *h)
{
    if (md_key_ready() == 2)
        pthread_setspecific(md_thread_key, h);
}
