// SPDX-License-Identifier: MIT
// glibc glue (the preload library and the archive for static glibc programs): glibc's internal
// entry points (used by libc itself and by programs that call them directly) and fork handlers.
#include "md_fast.h"

#include <pthread.h>

const char md_glue_target[] = "glibc";

MD_EXPORT void *__libc_malloc(size_t n);
MD_EXPORT void __libc_free(void *p);
MD_EXPORT void *__libc_calloc(size_t count, size_t size);
MD_EXPORT void *__libc_realloc(void *p, size_t n);
MD_EXPORT void *__libc_memalign(size_t align, size_t n);
MD_EXPORT void *__libc_valloc(size_t n);
MD_EXPORT void *__libc_pvalloc(size_t n);
MD_EXPORT int malloc_trim(size_t pad);

void *__libc_malloc(size_t n)
{
    return md_malloc_fast(n);
}

void __libc_free(void *p)
{
    md_free_fast(p, MD_OP_FREE);
}

void *__libc_calloc(size_t count, size_t size)
{
    return md_calloc(count, size);
}

void *__libc_realloc(void *p, size_t n)
{
    return md_realloc(p, n, true);
}

void *__libc_memalign(size_t align, size_t n)
{
    return md_memalign(align, n);
}

void *__libc_valloc(size_t n)
{
    return md_valloc(n);
}

void *__libc_pvalloc(size_t n)
{
    return md_pvalloc(n);
}

// glibc's extension, which servers call after a burst: without it the call would reach glibc's
// own, which trims arenas mdalloc never used. pad (memory to keep at the top of the heap) has no
// meaning here: mdalloc keeps what its live blocks use.
int malloc_trim(size_t pad)
{
    (void)pad;
    return md_heap_trim();
}

// A constructor, not the first malloc: pthread_atfork may itself allocate. The earliest one:
// parent and child handlers run in the order they were registered, and one registered before
// ours that allocates would wait forever for the locks our prepare handler took (in a static
// link the program's constructors otherwise run before those of the archive linked after it).
// Prepare handlers run in reverse order, so ours also runs after every other one that allocates.
__attribute__((constructor(101))) static void md_glibc_init(void)
{
    pthread_atfork(md_fork_prepare, md_fork_parent, md_fork_child);
}
