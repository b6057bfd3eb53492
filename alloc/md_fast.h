// SPDX-License-Identifier: MIT
// The two hot paths, inlined into every exported entry point: pop a block from the current page
// of the size class, push a block back on its page when the caller owns it. Everything else is
// a call into the slow paths.
#ifndef MD_FAST_H
#define MD_FAST_H

#include "md_internal.h"

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
            pg->free = b->next;
            pg->used++;
            return b;
        }
    }
    return md_malloc_generic(n);
}

static inline void md_free_fast(void *p)
{
    if (MD_UNLIKELY(p == NULL))
        return;
    md_segment_t *seg = md_segment_of(p);
    md_page_t *pg = md_page_of(seg, p);
    if (MD_LIKELY(pg->heap == md_tls_heap && pg->flags == 0)) {
        md_block_t *b = p;
        b->next = pg->free;
        pg->free = b;
        if (MD_UNLIKELY(--pg->used == 0))
            md_page_on_empty(pg->heap, pg);
        return;
    }
    md_free_generic(p);
}

#endif
