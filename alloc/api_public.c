// SPDX-License-Identifier: MIT
// The standard allocation API exported by the preload libraries (glibc and musl). The embedded
// musl build exports the same functions weak, beside musl's __libc_* entries (glue_musl_embed.c).
#define _GNU_SOURCE
#include "md_fast.h"

#include <stdlib.h>

#ifndef MD_REALLOC_ZERO_FREES
#error "the glue decides what realloc(p, 0) does: define MD_REALLOC_ZERO_FREES to 0 or 1"
#endif

// Prototypes as the C library declares them (not all headers declare all of them).
MD_EXPORT void *malloc(size_t n);
MD_EXPORT void free(void *p);
MD_EXPORT void *calloc(size_t count, size_t size);
MD_EXPORT void *realloc(void *p, size_t n);
MD_EXPORT void *reallocarray(void *p, size_t count, size_t size);
MD_EXPORT void *aligned_alloc(size_t align, size_t n);
MD_EXPORT int posix_memalign(void **out, size_t align, size_t n);
MD_EXPORT void *memalign(size_t align, size_t n);
MD_EXPORT void *valloc(size_t n);
MD_EXPORT void *pvalloc(size_t n);
MD_EXPORT size_t malloc_usable_size(void *p);
MD_EXPORT void free_sized(void *p, size_t size);
MD_EXPORT void free_aligned_sized(void *p, size_t align, size_t size);

void *malloc(size_t n)
{
    return md_malloc_fast(n);
}

void free(void *p)
{
    md_free_fast(p, MD_OP_FREE);
}

void *calloc(size_t count, size_t size)
{
    return md_calloc(count, size);
}

void *realloc(void *p, size_t n)
{
    return md_realloc(p, n, MD_REALLOC_ZERO_FREES);
}

void *reallocarray(void *p, size_t count, size_t size)
{
    return md_reallocarray(p, count, size, MD_REALLOC_ZERO_FREES);
}

void *aligned_alloc(size_t align, size_t n)
{
    return md_aligned_alloc(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
    return md_posix_memalign(out, align, n);
}

void *memalign(size_t align, size_t n)
{
    return md_memalign(align, n);
}

void *valloc(size_t n)
{
    return md_valloc(n);
}

void *pvalloc(size_t n)
{
    return md_pvalloc(n);
}

size_t malloc_usable_size(void *p)
{
    return md_usable_size(p);
}

void free_sized(void *p, size_t size)
{
    md_free_sized(p, size);
}

void free_aligned_sized(void *p, size_t align, size_t size)
{
    md_free_aligned_sized(p, align, size);
}
