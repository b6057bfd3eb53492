// SPDX-License-Identifier: MIT
// Embedded musl glue: mdalloc as the malloc of a static musl libc.a. The file is compiled once
// per musl archive member it replaces (-DMD_MEMBER_<name>), so that each object defines exactly
// the symbols of that member: `malloc-doctor patch` swaps members one for one, and a member left
// in place can never clash with one of ours.
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
#define _GNU_SOURCE
#include "md_fast.h"

#include <errno.h>
#include <stdlib.h>

// musl: realloc(p, 0) returns a minimal block and keeps nothing of p.
#define MD_MUSL_ZERO_FREES false

#if defined(MD_MEMBER_malloc)
const char md_glue_target[] = "musl-embedded";

MD_EXPORT void *__libc_malloc_impl(size_t n);
MD_EXPORT int __malloc_allzerop(void *p);
MD_EXPORT void __malloc_atfork(int who);

void *__libc_malloc_impl(size_t n)
{
    return md_malloc_fast(n);
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
#elif defined(MD_MEMBER_lite_malloc)
MD_EXPORT void *__libc_malloc(size_t n);
MD_EXPORT void *malloc(size_t n);

void *__libc_malloc(size_t n)
{
    return md_malloc_fast(n);
}

void *malloc(size_t n)
{
    return md_malloc_fast(n);
}
#elif defined(MD_MEMBER_free)
MD_EXPORT void __libc_free(void *p);
MD_EXPORT void free(void *p);

void __libc_free(void *p)
{
    md_free_fast(p, MD_OP_FREE);
}

void free(void *p)
{
    md_free_fast(p, MD_OP_FREE);
}
#elif defined(MD_MEMBER_realloc)
MD_EXPORT void *__libc_realloc(void *p, size_t n);
MD_EXPORT void *realloc(void *p, size_t n);

void *__libc_realloc(void *p, size_t n)
{
    return md_realloc(p, n, MD_MUSL_ZERO_FREES);
}

void *realloc(void *p, size_t n)
{
    return md_realloc(p, n, MD_MUSL_ZERO_FREES);
}
#elif defined(MD_MEMBER_calloc)
MD_EXPORT void *calloc(size_t count, size_t size);

void *calloc(size_t count, size_t size)
{
    return md_calloc(count, size);
}
#elif defined(MD_MEMBER_libc_calloc)
MD_EXPORT void *__libc_calloc(size_t count, size_t size);

void *__libc_calloc(size_t count, size_t size)
{
    return md_calloc(count, size);
}
#elif defined(MD_MEMBER_donate)
MD_EXPORT void __malloc_donate(char *start, char *end);

// The dynamic linker offers its leftover pages; mdalloc only allocates aligned segments, so the
// gift is declined (the memory stays mapped, as with musl's own allocator before it is used).
void __malloc_donate(char *start, char *end)
{
    (void)start;
    (void)end;
}
#elif defined(MD_MEMBER_aligned_alloc)
MD_EXPORT void *aligned_alloc(size_t align, size_t n);

void *aligned_alloc(size_t align, size_t n)
{
    return md_aligned_alloc(align, n);
}
#elif defined(MD_MEMBER_memalign)
MD_EXPORT void *memalign(size_t align, size_t n);

void *memalign(size_t align, size_t n)
{
    return md_memalign(align, n);
}
#elif defined(MD_MEMBER_posix_memalign)
MD_EXPORT int posix_memalign(void **out, size_t align, size_t n);

int posix_memalign(void **out, size_t align, size_t n)
{
    return md_posix_memalign(out, align, n);
}
#elif defined(MD_MEMBER_reallocarray)
MD_EXPORT void *reallocarray(void *p, size_t count, size_t size);

void *reallocarray(void *p, size_t count, size_t size)
{
    return md_reallocarray(p, count, size, MD_MUSL_ZERO_FREES);
}
#elif defined(MD_MEMBER_malloc_usable_size)
MD_EXPORT size_t malloc_usable_size(void *p);

size_t malloc_usable_size(void *p)
{
    return md_usable_size(p);
}
#elif defined(MD_MEMBER_valloc)
MD_EXPORT void *valloc(size_t n);

void *valloc(size_t n)
{
    return md_valloc(n);
}
#elif defined(MD_MEMBER_extra)
MD_EXPORT void *pvalloc(size_t n);
MD_EXPORT void free_sized(void *p, size_t size);
MD_EXPORT void free_aligned_sized(void *p, size_t align, size_t size);

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
#else
#error "compile with -DMD_MEMBER_<musl member name>"
#endif
