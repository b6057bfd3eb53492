// SPDX-License-Identifier: MIT
// Embedded musl glue: mdalloc as the malloc of a static musl libc.a. The build links this file
// and the core into one relocatable object (alloc/alloc.mk: ld -r, then objcopy
// --localize-hidden --strip-debug), so that the only global names it adds to a program are the
// ones below: every md_* internal is local, and a program may use such names for itself.
//
// It replaces these musl members (src/malloc/...), with their symbols:
//
//   musl member (src/malloc/...)    symbols
//   mallocng/malloc.lo             -> __libc_malloc_impl __malloc_allzerop __malloc_atfork
//   lite_malloc.lo                 -> malloc __libc_malloc
//   free.lo (both)                 -> free __libc_free
//   realloc.lo (both)              -> realloc __libc_realloc
//   calloc.lo                      -> calloc
//   libc_calloc.lo                 -> __libc_calloc
//   mallocng/donate.lo             -> __malloc_donate
//   mallocng/aligned_alloc.lo      -> aligned_alloc
//   memalign.lo                    -> memalign
//   posix_memalign.lo              -> posix_memalign
//   reallocarray.lo                -> reallocarray
//   mallocng/malloc_usable_size.lo -> malloc_usable_size
//   legacy/valloc.lo               -> valloc
//   (new)                          -> pvalloc free_sized free_aligned_sized
//
// The public names are weak, the __libc_* and __malloc_* ones strong. A program may define its
// own malloc, free, calloc and realloc with musl: its malloc wins over lite_malloc.lo's weak one,
// and libc's internals (setlocale, dlerror, aio, ...) keep calling __libc_malloc and __libc_free,
// which musl keeps in other members than the public free and realloc. Here all names share one
// object, which such a program pulls in for __libc_malloc: the program's strong definitions must
// win over ours, as they win over musl's. __malloc_atfork must stay strong to override fork.lo's
// weak stub.
#define _GNU_SOURCE
#include "md_fast.h"

#include <errno.h>
#include <stdlib.h>

// musl: realloc(p, 0) returns a minimal block and keeps nothing of p.
#define MD_MUSL_ZERO_FREES false

// A public allocator name: a program's own definition replaces it.
#define MD_PUBLIC MD_EXPORT __attribute__((weak))

const char md_glue_target[] = "musl-embedded";

// What the rest of musl's libc calls.
MD_EXPORT void *__libc_malloc_impl(size_t n);
MD_EXPORT void *__libc_malloc(size_t n);
MD_EXPORT void __libc_free(void *p);
MD_EXPORT void *__libc_realloc(void *p, size_t n);
MD_EXPORT void *__libc_calloc(size_t count, size_t size);
MD_EXPORT int __malloc_allzerop(void *p);
MD_EXPORT void __malloc_atfork(int who);
MD_EXPORT void __malloc_donate(char *start, char *end);

// What programs call.
MD_PUBLIC void *malloc(size_t n);
MD_PUBLIC void free(void *p);
MD_PUBLIC void *realloc(void *p, size_t n);
MD_PUBLIC void *calloc(size_t count, size_t size);
MD_PUBLIC void *aligned_alloc(size_t align, size_t n);
MD_PUBLIC void *memalign(size_t align, size_t n);
MD_PUBLIC int posix_memalign(void **out, size_t align, size_t n);
MD_PUBLIC void *reallocarray(void *p, size_t count, size_t size);
MD_PUBLIC size_t malloc_usable_size(void *p);
MD_PUBLIC void *valloc(size_t n);
MD_PUBLIC void *pvalloc(size_t n);
MD_PUBLIC void free_sized(void *p, size_t size);
MD_PUBLIC void free_aligned_sized(void *p, size_t align, size_t size);

void *__libc_malloc_impl(size_t n)
{
    return md_malloc_fast(n);
}

void *__libc_malloc(size_t n)
{
    return md_malloc_fast(n);
}

void __libc_free(void *p)
{
    md_free_fast(p, MD_OP_FREE);
}

void *__libc_realloc(void *p, size_t n)
{
    return md_realloc(p, n, MD_MUSL_ZERO_FREES);
}

void *__libc_calloc(size_t count, size_t size)
{
    return md_calloc(count, size);
}

// musl's calloc skips its memset when this says the block is known to be zero.
int __malloc_allzerop(void *p)
{
    return md_allzero(p);
}

// musl's fork calls this with who < 0 before forking, then 0 in the parent, 1 in the child.
void __malloc_atfork(int who)
{
    if (who < 0)
        md_fork_prepare();
    else if (who == 0)
        md_fork_parent();
    else
        md_fork_child();
}

// The dynamic linker offers its leftover pages; mdalloc only allocates aligned segments, so the
// gift is declined (the memory stays mapped, as with musl's own allocator before it is used).
void __malloc_donate(char *start, char *end)
{
    (void)start;
    (void)end;
}

void *malloc(size_t n)
{
    return md_malloc_fast(n);
}

void free(void *p)
{
    md_free_fast(p, MD_OP_FREE);
}

void *realloc(void *p, size_t n)
{
    return md_realloc(p, n, MD_MUSL_ZERO_FREES);
}

void *calloc(size_t count, size_t size)
{
    return md_calloc(count, size);
}

void *aligned_alloc(size_t align, size_t n)
{
    return md_aligned_alloc(align, n);
}

void *memalign(size_t align, size_t n)
{
    return md_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    return md_posix_memalign(out, align, n);
}

void *reallocarray(void *p, size_t count, size_t size)
{
    return md_reallocarray(p, count, size, MD_MUSL_ZERO_FREES);
}

size_t malloc_usable_size(void *p)
{
    return md_usable_size(p);
}

void *valloc(size_t n)
{
    return md_valloc(n);
}

void *pvalloc(size_t n)
{
    return md_pvalloc(n);
}

void free_sized(void *p, size_t size)
{
    md_free_sized(p, size);
}

void free_aligned_sized(void *p, size_t align, size_t size)
{
    md_free_aligned_sized(p, align, size);
}
