// SPDX-License-Identifier: MIT
// The C/POSIX allocation API on top of heaps, pages and huge segments: the slow paths of
// malloc/free and everything with a contract (errno, overflow, alignment, usable size).
#include "md_fast.h"
#include "prim.h"

#include <errno.h>
#include <string.h>

static void *md_enomem(void)
{
    errno = ENOMEM;
    return NULL;
}

MD_NOINLINE void *md_malloc_generic(size_t n)
{
    md_heap_t *h = md_tls_heap;
    bool borrowed = false;
    if (MD_UNLIKELY(h == NULL)) {
        borrowed = md_tls_exited;
        h = md_heap_get_slow();
        if (h == NULL)
            return md_enomem();
    }
    void *p;
    if (n <= MD_LARGE_MAX) {
        p = md_page_malloc_slow(h, n);
        // No segment fits in the address space left (`ulimit -v`): a block of its own, which
        // needs a page or a few instead of 4 MiB (before, malloc(10) failed there while
        // malloc(1000000) then succeeded).
        if (p == NULL)
            p = md_huge_alloc(n, MD_ALIGNMENT, 0, false);
    } else {
        md_heap_maintain(h); // a program that only makes huge blocks still purges its pages
        p = n > MD_MAX_REQUEST ? NULL : md_huge_alloc(n, MD_ALIGNMENT, 0, false);
    }
    md_heap_give_back(h, borrowed);
    return p != NULL ? p : md_enomem();
}

// Everything free's fast path did not take: huge blocks, pages that are full or hand out
// interior pointers, other threads' pages, and every kind of misuse (md_block_locate and
// md_block_check_mark abort).
MD_NOINLINE void md_free_generic(void *p, enum md_op op)
{
    if (p == NULL)
        return;
    md_block_t *b = md_block_locate(p, op); // everything but the free mark: b is not read yet
    md_segment_t *seg = md_segment_of(p);
    md_page_t *pg = md_page_head(md_page_of(seg, p));
    if (pg->flags & MD_PAGE_HUGE) {
        md_huge_free(seg);
        return;
    }
    md_heap_t *h = md_tls_heap;
    bool borrowed = false;
    if (h == NULL) { // a thread that only frees gets a heap for its outbox (maybe b's owner's)
        borrowed = md_tls_exited;
        h = md_heap_get_slow();
        if (h == NULL)
            return; // out of memory: the block leaks
    }
    if (pg->heap == h) {
        md_block_check_mark(b, p, op);
        md_page_free_slow(pg, b);
    } else {
        md_free_remote(pg->heap, b, pg->block_size); // the owner checks the mark when it drains
    }
    md_heap_give_back(h, borrowed); // hands the outbox over too
}

static size_t md_usable_size_checked(const void *p, enum md_op op)
{
    const uint8_t *b = (const uint8_t *)md_block_resolve(p, op);
    md_segment_t *seg = md_segment_of(p);
    md_page_t *pg = md_page_head(md_page_of(seg, p));
    if (pg->flags & MD_PAGE_HUGE)
        return pg->block_size - (size_t)((const uint8_t *)p - pg->start);
    return pg->block_size - (size_t)((const uint8_t *)p - b);
}

// The checks of free's fast path, for realloc's common case (a block start in a normal page);
// anything else gets the full check.
static inline size_t md_usable_size_fast(const void *p, enum md_op op)
{
    if (MD_LIKELY(md_segmap_has((uintptr_t)p - 1))) {
        md_page_t *pg = md_page_of(md_segment_of(p), p);
        const md_block_t *b = p;
        if (MD_LIKELY(pg->flags == 0 && md_block_index(pg, p) < pg->carved && !md_block_is_free(b)))
            return pg->block_size;
    }
    return md_usable_size_checked(p, op);
}

size_t md_usable_size(const void *p)
{
    return p == NULL ? 0 : md_usable_size_checked(p, MD_OP_USABLE_SIZE);
}

bool md_allzero(const void *p)
{
    md_segment_t *seg = md_segment_of(p);
    return (seg->pages[0].flags & MD_PAGE_HUGE) && seg->zeroed;
}

void *md_calloc(size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n))
        return md_enomem();
    if (n > MD_LARGE_MAX) {
        if (n > MD_MAX_REQUEST)
            return md_enomem();
        if (md_tls_heap == NULL && !md_heap_ready())
            return md_enomem();
        void *p = md_huge_alloc(n, MD_ALIGNMENT, 0, true);
        return p != NULL ? p : md_enomem();
    }
    void *p = md_malloc_fast(n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

// Over-aligned request: a normal block big enough to contain an aligned pointer, or a huge
// segment placed so the block is aligned.
static void *md_alloc_aligned(size_t align, size_t n)
{
    if (align <= MD_ALIGNMENT) // every block of at least 16 bytes is 16-byte aligned
        return md_malloc_fast(n < align ? align : n);
    if (n > MD_MAX_REQUEST || align > MD_MAX_REQUEST)
        return md_enomem();
    // After the thread's exit hook, md_malloc_fast borrows a heap and gives it back before it
    // returns: the page's flags may belong to another thread by then, so such a call (rare: glibc
    // freeing its thread state, a destructor past mdalloc's) gets a huge block instead.
    bool borrowing = md_tls_heap == NULL && md_tls_exited;
    if (n + align - 1 <= MD_LARGE_MAX && !borrowing) {
        uint8_t *p = md_malloc_fast(n + align - 1);
        if (p == NULL)
            return NULL;
        uint8_t *q = (uint8_t *)md_align_up((uintptr_t)p, align);
        md_page_t *pg = md_page_head(md_page_of(md_segment_of(p), p));
        if (q == p)
            return q;
        if (!(pg->flags & MD_PAGE_HUGE)) {
            pg->flags |= MD_PAGE_HAS_ALIGNED;
            return q;
        }
        // malloc's fallback under `ulimit -v` gave a huge block, whose only valid address is its
        // start: one placed at the alignment instead
        md_free_generic(p, MD_OP_FREE);
    }
    if (md_tls_heap == NULL && !md_heap_ready())
        return md_enomem();
    void *p = md_huge_alloc(n, align, 0, false);
    return p != NULL ? p : md_enomem();
}

// glibc semantics: alignments that are not a power of two are rounded up.
void *md_memalign(size_t align, size_t n)
{
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!md_is_pow2(align))
        align = align <= 1 ? 1 : (size_t)1 << (64 - __builtin_clzl(align - 1));
    return md_alloc_aligned(align, n);
}

// C11/C17 with the resolution of DR 460: a non-power-of-two alignment fails with EINVAL.
void *md_aligned_alloc(size_t align, size_t n)
{
    if (!md_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return md_alloc_aligned(align, n);
}

int md_posix_memalign(void **out, size_t align, size_t n)
{
    if (align < sizeof(void *) || !md_is_pow2(align))
        return EINVAL;
    int saved = errno;
    void *p = md_alloc_aligned(align, n);
    if (p == NULL) {
        errno = saved;
        return ENOMEM;
    }
    *out = p;
    return 0;
}

void *md_valloc(size_t n)
{
    return md_alloc_aligned(md_prim_os_page_size(), n);
}

void *md_pvalloc(size_t n)
{
    size_t ps = md_prim_os_page_size();
    if (n > SIZE_MAX - ps)
        return md_enomem();
    return md_alloc_aligned(ps, n == 0 ? ps : md_align_up(n, ps));
}

// Growing by small steps (appending): leave 25% headroom so the next steps stay in place.
size_t md_realloc_target(size_t old_usable, size_t n)
{
    if (n > old_usable && n - old_usable < old_usable / 4 && n <= MD_LARGE_MAX - n / 4)
        return n + n / 4;
    return n;
}

// A huge block that must move gets room to grow in place next time: realloc growth is usually
// repeated, and the extra address space costs no memory until touched.
static void *md_realloc_move(void *p, size_t old_usable, size_t n)
{
    void *q;
    if (n > MD_LARGE_MAX) {
        if (n > MD_MAX_REQUEST)
            return md_enomem();
        if (md_tls_heap == NULL && !md_heap_ready())
            return md_enomem();
        size_t slack = n > old_usable ? n / 2 : 0;
        q = md_huge_alloc(n, MD_ALIGNMENT, slack, false);
        if (q == NULL)
            q = md_huge_alloc(n, MD_ALIGNMENT, 0, false);
        if (q == NULL)
            return md_enomem();
    } else {
        q = md_malloc_fast(md_realloc_target(old_usable, n));
        if (q == NULL)
            return NULL;
    }
    memcpy(q, p, old_usable < n ? old_usable : n);
    md_free_fast(p, MD_OP_REALLOC);
    return q;
}

void *md_realloc(void *p, size_t n, bool zero_frees)
{
    if (p == NULL)
        return md_malloc_fast(n);
    if (n == 0 && zero_frees) {
        md_free_fast(p, MD_OP_REALLOC);
        return NULL;
    }
    size_t usable = md_usable_size_fast(p, MD_OP_REALLOC);
    md_segment_t *seg = md_segment_of(p);
    if (n <= usable && n > MD_LARGE_MAX && (seg->pages[0].flags & MD_PAGE_HUGE) &&
        md_huge_shrink(seg, n))
        return p; // a huge block that stays huge gives its tail back, without a copy
    if (n <= usable && n >= usable / 2)
        return p; // fits, and shrinking in place wastes at most half the block
    if (n > usable && (seg->pages[0].flags & MD_PAGE_HUGE)) {
        // Growth by realloc is usually repeated: half as much again as room (address space
        // only until touched), in place if the space after the block is free, else by moving
        // the mapping, which copies nothing.
        if (md_huge_resize_in_place(seg, n, n / 2))
            return p;
        void *q = md_huge_move(seg, n, n / 2);
        if (q != NULL)
            return q;
    }
    if (n > usable && n <= MD_LARGE_MAX && usable > MD_MULTI_BLOCK_MAX) {
        // The block of a one-block page grows in place when the slices after it are free (only
        // the owner; FULL just means the page is out of its class queue).
        md_page_t *pg = md_page_head(md_page_of(seg, p));
        if (pg->heap == md_tls_heap && (pg->flags & ~MD_PAGE_FULL) == 0 && pg->capacity == 1 &&
            (uint8_t *)p == pg->start && md_page_grow_block(pg->heap, pg, n))
            return p;
    }
    return md_realloc_move(p, usable, n);
}

void *md_reallocarray(void *p, size_t count, size_t size, bool zero_frees)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n))
        return md_enomem();
    return md_realloc(p, n, zero_frees);
}

void md_free_sized(void *p, size_t size)
{
    md_assert(p == NULL || md_usable_size_checked(p, MD_OP_FREE_SIZED) >= size);
    (void)size;
    md_free_fast(p, MD_OP_FREE_SIZED);
}

void md_free_aligned_sized(void *p, size_t align, size_t size)
{
    md_assert(p == NULL || ((uintptr_t)p & (align - 1)) == 0);
    md_assert(p == NULL || md_usable_size_checked(p, MD_OP_FREE_ALIGNED_SIZED) >= size);
    (void)align;
    (void)size;
    md_free_fast(p, MD_OP_FREE_ALIGNED_SIZED);
}
