// SPDX-License-Identifier: MIT
// glibc glue (the preload library and the archive for static glibc programs): glibc's internal
// entry points (used by libc itself and by programs that call them directly) and fork handlers.
#include "md_fast.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>

const char md_glue_target[] = "glibc";

MD_EXPORT void *__libc_malloc(size_t n);
MD_EXPORT void __libc_free(void *p);
MD_EXPORT void *__libc_calloc(size_t count, size_t size);
MD_EXPORT void *__libc_realloc(void *p, size_t n);
MD_EXPORT void *__libc_memalign(size_t align, size_t n);
MD_EXPORT void *__libc_valloc(size_t n);
MD_EXPORT void *__libc_pvalloc(size_t n);
MD_EXPORT int malloc_trim(size_t pad);
MD_EXPORT int mallopt(int param, int value);
MD_EXPORT struct mallinfo mallinfo(void);
MD_EXPORT struct mallinfo2 mallinfo2(void);
MD_EXPORT void malloc_stats(void);
MD_EXPORT int malloc_info(int options, FILE *fp);

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

// glibc's tuning and reporting calls, which a program may make whatever its malloc is: without
// them here a static glibc program that makes one links glibc's malloc.o for it, whose malloc
// clashes with mdalloc's, and a preloaded mdalloc would leave them to glibc's arenas, which hold
// nothing. mdalloc has none of ptmalloc's tunables: mallopt accepts and ignores them, as
// tcmalloc's does. The reports give what mdalloc counts: the bytes it has mapped (arena) and of
// those the bytes committed (uordblks) and not (fordblks); it keeps no count of the bytes in use.
int mallopt(int param, int value)
{
    (void)param, (void)value;
    return 1;
}

struct mallinfo2 mallinfo2(void)
{
    int64_t mapped = atomic_load(&md_stats.mapped), committed = atomic_load(&md_stats.committed);
    mapped = mapped > 0 ? mapped : 0;
    committed = committed > 0 && committed < mapped ? committed : mapped;
    return (struct mallinfo2){.arena = (size_t)mapped,
                              .uordblks = (size_t)committed,
                              .fordblks = (size_t)(mapped - committed)};
}

// The int-sized report of old programs: each number capped at INT_MAX.
static int md_clamp_int(size_t v)
{
    return v > INT_MAX ? INT_MAX : (int)v;
}

struct mallinfo mallinfo(void)
{
    struct mallinfo2 wide = mallinfo2();
    return (struct mallinfo){.arena = md_clamp_int(wide.arena),
                             .uordblks = md_clamp_int(wide.uordblks),
                             .fordblks = md_clamp_int(wide.fordblks)};
}

void malloc_stats(void)
{
    md_print_stats_to(2);
}

int malloc_info(int options, FILE *fp)
{
    // glibc's own refuses every option, none being defined. The man page says -1 with errno
    // EINVAL (what this returned before), but glibc returns EINVAL itself (it always has: 2.36 is
    // Debian 12's) and leaves errno alone; a drop-in replacement does what the library does.
    if (options != 0)
        return EINVAL;
    struct mallinfo2 mi = mallinfo2();
    fprintf(fp,
            "<malloc version=\"mdalloc\">\n<total type=\"mapped\" size=\"%zu\"/>\n"
            "<total type=\"committed\" size=\"%zu\"/>\n</malloc>\n",
            mi.arena, mi.uordblks);
    return 0;
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
