// SPDX-License-Identifier: MIT
// The two hot paths, inlined into every exported entry point: pop a block from the current page
// of the size class, push a block back on its page when the caller owns it. Everything else is
// a call into the slow paths.
//
// Misuse checks on the free fast path (see check.c): the segment map says the pointer lies in a
// segment of ours before any metadata is read; one multiply says it is the start of a block that
// was carved; the block's mark says it is not free already. Anything unexpected goes to
// md_free_generic, which diagnoses precisely (and aborts on misuse).
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

static inline void *md_malloc_fast(size_t n)
{
    md_heap_t *h = md_tls_heap;
    if (MD_LIKELY(h != NULL)) {
        md_page_t *pg;
        if (MD_LIKELY(n <= MD_DIRECT_MAX)) {
            pg = h->direct[(n + 15) / MD_ALIGNMENT];
        } else if (n <= MD_LARGE_MAX) {
            pg = h->queues[md_class_of(n)].first;
            if (pg == NULL)
                return md_malloc_generic(n);
        } else {
            return md_malloc_generic(n);
        }
        md_block_t *b = pg->free;
        if (MD_LIKELY(b != NULL)) {
            md_debug_block_taken(pg, b);
            pg->free = b->next;
            b->mark = 0; // handed out: a later free must not look like a double free
            pg->used++;
            return b;
        }
    }
    return md_malloc_generic(n);
}

static inline void md_free_fast(void *p, enum md_op op)
{
    if (MD_UNLIKELY(p == NULL))
        return;
    if (MD_UNLIKELY(!md_segmap_has((uintptr_t)p - 1)))
        md_misuse_unowned(p, op);
    md_segment_t *seg = md_segment_of(p);
    md_page_t *pg = md_page_of(seg, p);
    if (MD_LIKELY(pg->flags == 0)) {
        md_block_t *b = p;
        uintptr_t mark = md_free_mark(b);
        if (MD_LIKELY(md_block_index(pg, p) < pg->carved && (b->mark ^ mark) > 1)) {
            md_debug_block_freed(pg, b);
            b->mark = mark;
            if (MD_LIKELY(pg->heap == md_tls_heap)) {
                b->next = pg->free;
                pg->free = b;
                if (MD_UNLIKELY(--pg->used == 0))
                    md_page_on_empty(pg->heap, pg);
                return;
            }
            md_page_free_remote_block(pg, b); // another heap's page, checked like ours
            return;
        }
    }
    md_free_generic(p, op);
}

#endif
