// SPDX-License-Identifier: MIT
// The two hot paths, inlined into every exported entry point: pop a block from the current page
// of the size class, push a block back on its page when the caller owns it. Everything else is
// a call into the slow paths.
//
// Misuse checks on the free fast path (see check.c): the segment map says the pointer lies in a
// segment of ours before any metadata is read; one multiply says it is the start of a block that
// was carved; for a block of the caller's own heap, the block's link word says it is not free
// already (for another heap's block, its owner checks that when it drains the free). Anything
// unexpected goes to md_free_generic, which diagnoses precisely (and aborts on misuse).
#ifndef MD_FAST_H
#define MD_FAST_H

#include "md_internal.h"

#ifdef MDALLOC_DEBUG
void md_debug_block_taken(const md_page_t *pg, md_block_t *b);
void md_debug_block_freed(const md_page_t *pg, md_block_t *b);
#else
static inline void md_debug_block_taken(const md_page_t *pg, md_block_t *b)
{
    (void)pg;
    (void)b;
}
static inline void md_debug_block_freed(const md_page_t *pg, md_block_t *b)
{
    (void)pg;
    (void)b;
}
#endif

static MD_ALWAYS_INLINE void *md_malloc_fast(size_t n)
{
    md_heap_t *h = md_tls_heap;
    if (MD_LIKELY(h != NULL)) {
        md_page_t *pg;
        if (MD_LIKELY(n <= MD_DIRECT_MAX)) {
            pg = h->direct[(n + MD_DIRECT_STEP - 1) / MD_DIRECT_STEP];
        } else if (n <= MD_LARGE_MAX) {
            pg = h->queues[md_class_of(n)].first;
            if (pg == NULL)
                return md_malloc_generic(n);
        } else {
            return md_malloc_generic(n);
        }
        md_block_t *b = pg->free;
        if (MD_LIKELY(!md_list_end(b))) {
            md_debug_block_taken(pg, b);
            md_block_t *next = md_link_next(b);
            pg->free = next;
            // The next malloc of the class reads and writes the next block: start fetching it
            // now (it may be cold, or in the cache of a thread that wrote it while it was live).
            md_prefetch_write(next);
            b->link = 0; // handed out: a later free must not look like a double free
            pg->used++;
            return b;
        }
    }
    return md_malloc_generic(n);
}

// Local or remote is decided from the page descriptor's first line alone (read-mostly, shared by
// every thread that frees into the page): a remote free must not read, write or prefetch the
// block, whose cache line is usually in the owner's cache (see md_free_remote). A full page takes
// remote frees like any other: only its owner cares.
static MD_ALWAYS_INLINE void md_free_fast(void *p, enum md_op op)
{
    if (MD_UNLIKELY(p == NULL))
        return;
    if (MD_UNLIKELY(!md_segmap_has((uintptr_t)p - 1)))
        md_misuse_unowned(p, op);
    md_segment_t *seg = md_segment_of(p);
    md_page_t *pg = md_page_of(seg, p);
    uint8_t flags = pg->flags;
    if (MD_LIKELY((flags & ~MD_PAGE_FULL) == 0 && md_block_index(pg, p) < pg->carved)) {
        md_heap_t *owner = pg->heap;
        if (MD_LIKELY(owner == md_tls_heap)) {
            md_block_t *b = p;
            // The link word is read and then written: one exclusive fetch instead of a read and
            // an upgrade when the line is elsewhere.
            md_prefetch_write(p);
            if (MD_LIKELY(flags == 0 && !md_block_is_free(b))) {
                md_debug_block_freed(pg, b);
                b->link = md_link_encode(b, pg->free);
                pg->free = b;
                if (MD_UNLIKELY(--pg->used == 0))
                    md_page_emptied_by_free(owner, pg);
                return;
            }
        } else {
            md_free_remote(owner, p, pg->block_size); // checked when the owner drains it
            return;
        }
    }
    md_free_generic(p, op);
}

#endif
