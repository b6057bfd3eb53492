// SPDX-License-Identifier: MIT
// Pages: per-class queues of pages with free blocks, lazy carving of fresh pages, and the
// cross-thread free protocol.
//
// Cross-thread free: a remote freer pushes its blocks onto page->xfree with one CAS (batched per
// page in the freeing thread, see md_page_free_remote). The low bits
// of xfree carry a state: if the owner unlinked the page as full (MD_XSTATE_FULL), the first
// remote freer flips it to NOTIFIED and pushes the page on heap->delayed (a lock-free stack that
// the owner empties with one exchange), so full pages come back without the owner ever scanning.
// The notifier pushes the page before its block, so the page cannot become empty (and be reused)
// while the notifier still touches it.
#include "md_fast.h"
#include "prim.h"

// Never in a queue and never with a free block: the fast path's miss target.
md_page_t md_page_empty;

// ---- queues -------------------------------------------------------------------------------------

// Point the direct slots of a small class at the queue's first page.
static void md_direct_update(md_heap_t *h, unsigned cls)
{
    size_t hi = md_class_size[cls] / MD_DIRECT_STEP;
    if (hi >= MD_DIRECT_SLOTS)
        return;
    size_t lo = cls == 0 ? 0 : md_class_size[cls - 1] / MD_DIRECT_STEP + 1;
    md_page_t *pg = h->queues[cls].first != NULL ? h->queues[cls].first : &md_page_empty;
    for (size_t s = lo; s <= hi; s++)
        h->direct[s] = pg;
}

static void md_queue_push(md_heap_t *h, md_page_t *pg, bool front)
{
    md_page_queue_t *q = &h->queues[pg->class_idx];
    if (front) {
        pg->prev = NULL;
        pg->next = q->first;
        if (q->first != NULL)
            q->first->prev = pg;
        else
            q->last = pg;
        q->first = pg;
        md_direct_update(h, pg->class_idx);
    } else {
        pg->next = NULL;
        pg->prev = q->last;
        if (q->last != NULL)
            q->last->next = pg;
        else
            q->first = pg;
        q->last = pg;
        if (q->first == pg)
            md_direct_update(h, pg->class_idx);
    }
}

void md_queue_remove(md_heap_t *h, md_page_t *pg)
{
    md_page_queue_t *q = &h->queues[pg->class_idx];
    bool was_first = q->first == pg;
    if (pg->prev != NULL)
        pg->prev->next = pg->next;
    else
        q->first = pg->next;
    if (pg->next != NULL)
        pg->next->prev = pg->prev;
    else
        q->last = pg->prev;
    pg->next = pg->prev = NULL;
    if (was_first)
        md_direct_update(h, pg->class_idx);
}

// ---- page contents ------------------------------------------------------------------------------

#ifdef MDALLOC_DEBUG
// Debug build: every free block lies on a block boundary inside the carved part of its page and is
// marked free, the list has no cycle, and the free blocks plus the blocks counted as used (handed
// out, or freed by other threads and not yet collected) are exactly the blocks carved.
static void md_page_check(const md_page_t *pg)
{
    md_assert(pg->in_use && !(pg->flags & (MD_PAGE_TAIL | MD_PAGE_UNUSED | MD_PAGE_HUGE)));
    md_assert(pg->block_size == md_class_size[pg->class_idx]);
    md_assert(pg->carved <= pg->capacity && pg->used <= pg->carved);
    uint32_t n = 0;
    for (const md_block_t *b = pg->free; !md_list_end(b); b = md_link_next(b)) {
        size_t off = (size_t)((const uint8_t *)b - pg->start);
        md_assert((const uint8_t *)b >= pg->start && off < (size_t)pg->carved * pg->block_size);
        md_assert(off % pg->block_size == 0);
        md_assert(md_block_is_free(b));
        md_assert(++n + pg->used <= pg->carved);
    }
    md_assert(n + pg->used == pg->carved);
    md_assert(md_xfree_count(atomic_load(&pg->xfree)) <= pg->used);
}

// Debug build: the whole heap. Queues are well linked and hold exactly the heap's in-use pages
// that are not marked full, each with a consistent free list; the direct table points at the
// queue heads; every segment is ours (cookie, segment map, owner) and its free mask, in-use count
// and tail slices agree with the page descriptors.
static void md_heap_check_segment(md_heap_t *h, md_segment_t *seg, size_t *listed)
{
    md_assert(seg->cookie == (MD_SEGMENT_COOKIE ^ (uintptr_t)seg) && seg->heap == h);
    md_assert(seg->kind == MD_SEG_SLICED && md_segmap_has((uintptr_t)seg));
    md_assert(seg->in_avail == (seg->free_mask != 0));
    size_t heads = 0;
    for (size_t i = 0; i < seg->page_count; i++) {
        md_page_t *pg = &seg->pages[i];
        md_assert(((seg->free_mask >> i) & 1) == !pg->in_use);
        md_assert(!pg->in_use == !!(pg->flags & MD_PAGE_UNUSED));
        if (!pg->in_use)
            continue;
        if (pg->flags & MD_PAGE_TAIL) {
            md_page_t *head = pg->head;
            md_assert(head >= seg->pages && head < pg && head->in_use);
            md_assert((size_t)(pg - head) < head->slices && !(head->flags & MD_PAGE_TAIL));
            continue;
        }
        heads++;
        md_assert(pg->heap == h && pg->head == pg && pg->slices >= 1);
        md_assert(i + pg->slices <= seg->page_count);
        md_page_check(pg);
        if (!(pg->flags & MD_PAGE_FULL))
            (*listed)++;
    }
    md_assert(heads == seg->pages_in_use);
}

static void md_heap_check(md_heap_t *h)
{
    size_t queued = 0, listed = 0;
    for (unsigned cls = 0; cls < MD_CLASS_COUNT; cls++) {
        md_page_queue_t *q = &h->queues[cls];
        md_page_t *prev = NULL;
        for (md_page_t *pg = q->first; pg != NULL; prev = pg, pg = pg->next, queued++) {
            md_assert(pg->prev == prev && pg->heap == h && pg->class_idx == cls);
            md_assert(pg->in_use && !(pg->flags & (MD_PAGE_FULL | MD_PAGE_TAIL | MD_PAGE_HUGE)));
        }
        md_assert(q->last == prev);
    }
    for (size_t s = 0; s < MD_DIRECT_SLOTS; s++) {
        md_page_t *first = h->queues[md_direct_class[s]].first;
        md_assert(h->direct[s] == (first != NULL ? first : &md_page_empty));
    }
    md_segment_t *prev = NULL;
    for (md_segment_t *seg = h->segments; seg != NULL; prev = seg, seg = seg->next) {
        md_assert(seg->prev == prev);
        md_heap_check_segment(h, seg, &listed);
    }
    md_assert(queued == listed);
}

// Often enough to catch corruption near where it happens, rarely enough for the stress test.
#define MD_HEAP_CHECK_PERIOD 64
static void md_heap_check_sometimes(md_heap_t *h)
{
    if (++h->debug_ticks % MD_HEAP_CHECK_PERIOD == 0)
        md_heap_check(h);
}
#else
static inline void md_page_check(const md_page_t *pg)
{
    (void)pg;
}

static inline void md_heap_check_sometimes(md_heap_t *h)
{
    (void)h;
}
#endif

static void md_page_setup(md_heap_t *h, md_page_t *pg, unsigned cls)
{
    md_assert(pg->in_use && !(pg->flags & MD_PAGE_TAIL));
    uint8_t *start, *end;
    md_page_area(pg, &start, &end);
    pg->free = NULL;
    pg->used = 0;
    pg->flags = 0;
    pg->class_idx = (uint8_t)cls;
    pg->heap = h;
    pg->block_size = md_class_size[cls];
    pg->start = start;
    pg->capacity = (uint32_t)((size_t)(end - start) / pg->block_size);
    pg->carved = 0;
    pg->div_inv = md_class_div[cls].inv;
    pg->div_shift = md_class_div[cls].shift;
    pg->next = pg->prev = NULL;
    atomic_store_explicit(&pg->xfree, MD_XSTATE_NORMAL, memory_order_relaxed);
    pg->delayed_next = NULL;
    h->class_pages[cls]++;
}

// Turn never-used page memory into free blocks, about one OS page at a time, so untouched memory
// stays out of the RSS.
static bool md_page_extend(md_page_t *pg)
{
    size_t left = pg->capacity - pg->carved;
    if (left == 0)
        return false;
    size_t bs = pg->block_size;
    size_t n = MD_OS_PAGE / bs;
    if (n < 4)
        n = 4;
    if (n > left)
        n = left;
    uint8_t *first = pg->start + (size_t)pg->carved * bs;
    pg->carved += (uint32_t)n;
    uint8_t *p = first;
    for (size_t i = 0; i < n; i++, p += bs) {
        md_block_t *b = (md_block_t *)p;
        // Free from the start, and marked as never handed out: freeing it before malloc is misuse.
        b->link = md_link_encode(b, i + 1 < n ? (md_block_t *)(p + bs) : pg->free) | MD_LINK_CARVED;
        md_debug_block_freed(pg, b);
    }
    pg->free = (md_block_t *)first;
    return true;
}

// Move blocks freed by other threads onto the owner's free list.
static void md_page_collect(md_page_t *pg)
{
    uintptr_t x = atomic_load_explicit(&pg->xfree, memory_order_relaxed);
    if (md_xfree_list(x) == NULL)
        return;
    while (!atomic_compare_exchange_weak_explicit(&pg->xfree, &x, md_xfree_state(x),
                                                  memory_order_acq_rel, memory_order_relaxed))
        ;
    md_block_t *list = md_xfree_list(x);
    uint32_t count = md_xfree_count(x);
    md_assert(count > 0 && count <= pg->used);
    if (!md_list_end(pg->free)) { // rare: splice in front of the blocks the owner still has
        md_block_t *tail = list;
        for (md_block_t *next = md_link_next(tail); !md_list_end(next); next = md_link_next(tail))
            tail = next;
        tail->link = md_link_encode(tail, pg->free);
    }
    pg->free = list;
    pg->used -= count;
}

// Unlink a page that has no free block. Fails if remote frees arrived meanwhile.
static bool md_page_try_mark_full(md_heap_t *h, md_page_t *pg)
{
    uintptr_t x = atomic_load_explicit(&pg->xfree, memory_order_acquire);
    if (md_xfree_list(x) != NULL)
        return false;
    // NOTIFIED: a notification is on its way; the delayed list will bring the page back.
    if (md_xfree_state(x) == MD_XSTATE_NORMAL &&
        !atomic_compare_exchange_strong_explicit(&pg->xfree, &x, MD_XSTATE_FULL,
                                                 memory_order_acq_rel, memory_order_relaxed))
        return false;
    md_queue_remove(h, pg);
    pg->flags |= MD_PAGE_FULL;
    return true;
}

static void md_page_unmark_full(md_heap_t *h, md_page_t *pg)
{
    pg->flags &= (uint8_t)~MD_PAGE_FULL;
    md_queue_push(h, pg, false);
    uintptr_t x = atomic_load_explicit(&pg->xfree, memory_order_relaxed);
    while (md_xfree_state(x) == MD_XSTATE_FULL &&
           !atomic_compare_exchange_weak_explicit(
               &pg->xfree, &x, (x & ~(uintptr_t)MD_XSTATE_MASK) | MD_XSTATE_NORMAL,
               memory_order_acq_rel, memory_order_relaxed))
        ;
}

// A page whose blocks are all free goes back to its segment, unless it is the page its class
// allocates from (cheap hysteresis against alloc/free ping-pong; not for pages of a few big blocks,
// whose memory matters more) or a remote notifier may still reference it.
void md_page_on_empty(md_heap_t *h, md_page_t *pg)
{
    md_assert(pg->used == 0 && !(pg->flags & MD_PAGE_FULL));
    if (h->queues[pg->class_idx].first == pg && pg->block_size <= MD_KEEP_EMPTY_MAX)
        return;
    uintptr_t x = atomic_load_explicit(&pg->xfree, memory_order_acquire);
    if (md_xfree_state(x) != MD_XSTATE_NORMAL)
        return;
    md_queue_remove(h, pg);
    md_segment_page_free(h, pg);
}

// realloc growing the block of a one-block page (classes above MD_MULTI_BLOCK_MAX): the page takes
// the class of the new size and, if that needs more slices, the free slices right after it. No
// copy, and no second page alive during the move. Owner only (the block is live and being
// reallocated by its owner, so no other thread reads the shape fields changed here).
bool md_page_grow_block(md_heap_t *h, md_page_t *pg, size_t n)
{
    md_assert(pg->heap == h && pg->capacity == 1 && pg->used == 1 &&
              (pg->flags & ~MD_PAGE_FULL) == 0);
    unsigned cls = md_class_of(md_realloc_target(pg->block_size, n));
    size_t size = md_class_size[cls];
    if (size <= pg->block_size)
        return false;
    // Slices from the page's first to the end of the grown block, counted from the segment start
    // (the first slice of a segment is shorter by the header).
    uintptr_t seg = (uintptr_t)md_page_segment(pg);
    size_t end = (size_t)((uintptr_t)pg->start - seg) + size;
    size_t slices = ((end + MD_SLICE_SIZE - 1) >> MD_SLICE_SHIFT) - md_page_index(pg);
    if (slices > pg->slices && !md_segment_page_extend(h, pg, (unsigned)slices))
        return false;
    md_assert(!(pg->next != NULL || pg->prev != NULL || h->queues[pg->class_idx].first == pg));
    pg->class_idx = (uint8_t)cls; // one-block pages are never queued (full once handed out)
    pg->block_size = size;
    pg->div_inv = md_class_div[cls].inv;
    pg->div_shift = md_class_div[cls].shift;
    return true;
}

// ---- allocation slow path -----------------------------------------------------------------------

// First page of the class queue with a free block, unlinking full pages met on the way; a fresh
// page if none.
static md_page_t *md_queue_find(md_heap_t *h, unsigned cls)
{
    md_page_queue_t *q = &h->queues[cls];
    md_page_t *pg = q->first;
    while (pg != NULL) {
        if (md_list_end(pg->free))
            md_page_collect(pg);
        if (!md_list_end(pg->free) || md_page_extend(pg)) {
            md_page_check(pg);
            if (pg != q->first) {
                md_queue_remove(h, pg);
                md_queue_push(h, pg, true);
            }
            return pg;
        }
        md_page_t *next = pg->next;
        if (md_page_try_mark_full(h, pg))
            pg = next;
    }
    pg = md_segment_page_alloc(h, md_class_slices[cls], md_class_size[cls]);
    if (pg == NULL)
        return NULL;
    md_page_setup(h, pg, cls);
    md_page_extend(pg);
    md_page_check(pg);
    if (pg->capacity == 1) {
        // A one-block page is full as soon as it is handed out: keep it out of the queue so the
        // next allocation does not have to unlink it.
        pg->flags |= MD_PAGE_FULL;
        atomic_store_explicit(&pg->xfree, MD_XSTATE_FULL, memory_order_relaxed);
        return pg;
    }
    md_queue_push(h, pg, true);
    return pg;
}

void *md_page_malloc_slow(md_heap_t *h, size_t n)
{
    md_assert(n <= MD_LARGE_MAX && h == md_tls_heap);
    md_heap_check_sometimes(h);
    if (atomic_load_explicit(&h->delayed, memory_order_relaxed) != NULL)
        md_heap_process_delayed(h);
    md_heap_maintain(h);
    unsigned cls = n <= MD_DIRECT_MAX ? md_direct_class[(n + MD_DIRECT_STEP - 1) / MD_DIRECT_STEP]
                                      : md_class_of(n);
    md_page_t *pg = md_queue_find(h, cls);
    if (pg == NULL)
        return NULL;
    md_block_t *b = pg->free;
    md_debug_block_taken(pg, b);
    pg->free = md_link_next(b);
    b->link = 0;
    pg->used++;
    return b;
}

// ---- free slow paths ----------------------------------------------------------------------------

// Owner frees into a page that is full or hands out interior pointers.
void md_page_free_slow(md_page_t *pg, md_block_t *b)
{
    md_heap_t *h = pg->heap;
    md_assert(h == md_tls_heap && md_block_index(pg, b) < pg->carved);
    b->link = md_link_encode(b, pg->free);
    pg->free = b;
    md_assert(pg->used > 0);
    pg->used--;
    if (pg->flags & MD_PAGE_FULL)
        md_page_unmark_full(h, pg);
    if (pg->used == 0)
        md_page_on_empty(h, pg);
}

static void md_heap_push_delayed(md_heap_t *h, md_page_t *pg)
{
    md_page_t *head = atomic_load_explicit(&h->delayed, memory_order_relaxed);
    do {
        pg->delayed_next = head;
    } while (!atomic_compare_exchange_weak_explicit(&h->delayed, &head, pg, memory_order_release,
                                                    memory_order_relaxed));
}

// Hand a chain of blocks (head..tail, all of page pg) to the page's owner: one CAS, plus one more
// and a push on the owner's delayed stack if the owner had unlinked the page as full.
static void md_page_push_remote(md_page_t *pg, md_block_t *head, md_block_t *tail, uint32_t count)
{
    uintptr_t added = (uintptr_t)count << MD_XFREE_COUNT_SHIFT;
    md_assert(((uintptr_t)head >> MD_XFREE_COUNT_SHIFT) == 0 && count < (1u << 16));
    uintptr_t x = atomic_load_explicit(&pg->xfree, memory_order_relaxed);
    for (;;) {
        if (md_xfree_state(x) == MD_XSTATE_FULL) {
            uintptr_t notified = (x & ~(uintptr_t)MD_XSTATE_MASK) | MD_XSTATE_NOTIFIED;
            if (atomic_compare_exchange_weak_explicit(&pg->xfree, &x, notified,
                                                      memory_order_acq_rel, memory_order_relaxed)) {
                md_heap_push_delayed(pg->heap, pg);
                x = notified;
            }
            continue;
        }
        tail->link = md_link_encode(tail, md_xfree_list(x));
        uintptr_t counted = (x & ~MD_XFREE_PTR_MASK & ~(uintptr_t)MD_XSTATE_MASK) + added;
        if (atomic_compare_exchange_weak_explicit(&pg->xfree, &x,
                                                  counted | (uintptr_t)head | md_xfree_state(x),
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
}

static void md_rfree_flush(md_rfree_t *e)
{
    md_page_push_remote(e->page, e->head, e->tail, e->count);
    e->page = NULL;
}

// Free a block of another heap's page. With a heap of our own the block waits in a small per-page
// batch (the page cannot be reused meanwhile: its used count still includes the block).
void md_page_free_remote(md_heap_t *h, md_page_t *pg, md_block_t *b)
{
    if (h == NULL) {
        b->link = md_link_encode(b, NULL);
        md_page_push_remote(pg, b, b, 1);
        return;
    }
    md_rfree_t *e = &h->rfree[md_page_index(pg) % MD_RFREE_SLOTS];
    if (e->page != pg) {
        if (e->page != NULL)
            md_rfree_flush(e);
        e->page = pg;
        e->tail = b;
        e->count = 0;
        b->link = md_link_encode(b, NULL);
    } else {
        b->link = md_link_encode(b, e->head);
    }
    e->head = b;
    if (++e->count >= MD_RFREE_BATCH)
        md_rfree_flush(e);
}

// free()'s fast path found a valid block of another heap's page, in use until now: batching it
// links it, which marks it free.
MD_NOINLINE void md_page_free_remote_block(md_page_t *pg, md_block_t *b)
{
    md_heap_t *h = md_tls_heap;
    if (h == NULL) // a thread that only frees still batches its remote frees in a heap of its own
        h = md_heap_get_slow();
    md_page_free_remote(h, pg, b);
}

// Hand over every pending remote free (slow paths, maintenance, thread exit).
void md_heap_flush_remote(md_heap_t *h)
{
    for (size_t i = 0; i < MD_RFREE_SLOTS; i++)
        if (h->rfree[i].page != NULL)
            md_rfree_flush(&h->rfree[i]);
}

// Bring back pages that were full when other threads freed into them.
void md_heap_process_delayed(md_heap_t *h)
{
    md_page_t *pg = atomic_exchange_explicit(&h->delayed, NULL, memory_order_acquire);
    while (pg != NULL) {
        md_page_t *next = pg->delayed_next;
        uintptr_t x = atomic_load_explicit(&pg->xfree, memory_order_relaxed);
        while (!atomic_compare_exchange_weak_explicit(&pg->xfree, &x,
                                                      x & ~(uintptr_t)MD_XSTATE_MASK,
                                                      memory_order_acq_rel, memory_order_relaxed))
            ;
        if (pg->flags & MD_PAGE_FULL) {
            pg->flags &= (uint8_t)~MD_PAGE_FULL;
            md_queue_push(h, pg, false);
        }
        md_page_collect(pg);
        if (pg->used == 0)
            md_page_on_empty(h, pg);
        pg = next;
    }
}

// Collect every page of the heap and release empty ones (thread exit, abandoned heaps).
void md_heap_collect(md_heap_t *h, bool release_all)
{
    md_heap_process_delayed(h);
    md_segment_t *seg = h->segments;
    while (seg != NULL) {
        md_segment_t *next = seg->next;
        for (size_t i = 0; i < seg->page_count; i++) {
            md_page_t *pg = &seg->pages[i];
            if (!pg->in_use || (pg->flags & MD_PAGE_TAIL))
                continue;
            md_page_collect(pg);
            uintptr_t x = atomic_load_explicit(&pg->xfree, memory_order_acquire);
            if (pg->used != 0 || md_xfree_state(x) != MD_XSTATE_NORMAL ||
                (pg->flags & MD_PAGE_FULL))
                continue;
            if (!release_all && h->queues[pg->class_idx].first == pg)
                continue;
            md_queue_remove(h, pg);
            md_segment_page_free(h, pg);
        }
        seg = next;
    }
}
