// SPDX-License-Identifier: MIT
// A library whose constructor registers fork handlers that allocate, as libraries that re-create
// per-process state after fork do. It is loaded as the program's dependency, so its constructor
// runs, and registers, before a preloaded mdalloc's: its parent and child handlers then run while
// mdalloc's prepare handler still holds the allocator's locks (tests/alloc/fork_lib.c).
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void allocate_big_blocks(void)
{
    void *keep[16];
    for (int i = 0; i < 16; i++) { // large and huge blocks: the segment cache and the heap lock
        keep[i] = malloc((size_t)(i + 1) * 100 * 1024);
        if (keep[i] == NULL)
            abort();
        memset(keep[i], 1, 64);
    }
    for (int i = 0; i < 16; i++)
        free(keep[i]);
}

__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(NULL, allocate_big_blocks, allocate_big_blocks);
}

// Referenced by the program, so that the link keeps the library.
int atfork_lib_loaded(void);
int atfork_lib_loaded(void)
{
    return 1;
}
