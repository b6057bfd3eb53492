// SPDX-License-Identifier: MIT
// Pages: per-class queues of pages with free blocks, lazy carving of fresh pages, and remote
// (cross-thread) frees.
//
// Remote free: the freeing thread neither reads nor writes the block. It appends the pointer to a
// node (an array of 61 pointers) in its heap's outbox, one node per owner heap, and hands a node
// over when it is full, when its outbox slot is needed for another owner, at its heap's
// maintenance and at thread exit: one CAS pushes the node onto the owner's inbox. The owner
// drains its inbox on its malloc slow path, when it collects (thread exit, abandoned heaps) and
// when a thread adopts it: each pointer gets the checks and the linking a local free does, in the
// owner's thread, where the block's cache line usually still is. Emptied nodes go back to their
// sender's `returned` stack. Until its owner drains it, a block counts as used, so its page cannot
// be released or reused meanwhile; and since only the owner ever links blocks, a page that was
// unlinked as full comes back the moment the owner drains a block of it.
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

// Unlink a page that has no free block: only a free brings it back (md_page_free_block).
static void md_page_mark_full(md_heap_t *h, md_page_t *pg)
{
    md_queue_remove(h, pg);
    pg->flags |= MD_PAGE_FULL;
}

static void md_page_unmark_full(md_heap_t *h, md_page_t *pg)
{
    pg->flags &= (uint8_t)~MD_PAGE_FULL;
    md_queue_push(h, pg, false);
}

// A page whose blocks are all free goes back to its segment, unless it is the page its class
// allocates from (cheap hysteresis against alloc/free ping-pong; not for pages of a few big blocks,
// whose memory matters more).
void md_page_on_empty(md_heap_t *h, md_page_t *pg)
{
    md_assert(pg->used == 0 && !(pg->flags & MD_PAGE_FULL));
    if (h->queues[pg->class_idx].first == pg && pg->block_size <= MD_KEEP_EMPTY_MAX)
        return;
    md_queue_remove(h, pg);
    md_segment_page_free(h, pg);
}

// Only from free's fast path, at the top of the owner's own call: not from a drain, a collector of
// an abandoned heap or a reclaim after a failed mapping, where maintenance would run in the middle
// of other work.
static MD_NOINLINE void md_page_emptied_heartbeat(md_heap_t *h, md_page_t *pg)
{
    md_heap_maintain(h); // first: it does not touch pages in use
    md_page_on_empty(h, pg);
}

// The heartbeat out of line, so that the common case saves no register (the fast path's benchmark
// empties a page on every free).
void md_page_emptied_by_free(md_heap_t *h, md_page_t *pg)
{
    if (MD_UNLIKELY((++h->pages_emptied & (MD_HEARTBEAT_EMPTIES - 1)) == 0)) {
        md_page_emptied_heartbeat(h, pg);
        return;
    }
    md_page_on_empty(h, pg);
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
        if (!md_list_end(pg->free) || md_page_extend(pg)) {
            md_page_check(pg);
            if (pg != q->first) {
                md_queue_remove(h, pg);
                md_queue_push(h, pg, true);
            }
            return pg;
        }
        md_page_t *next = pg->next;
        md_page_mark_full(h, pg);
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
        return pg;
    }
    md_queue_push(h, pg, true);
    return pg;
}

void *md_page_malloc_slow(md_heap_t *h, size_t n)
{
    md_assert(n <= MD_LARGE_MAX && h == md_tls_heap);
    md_heap_check_sometimes(h);
    if (atomic_load_explicit(&h->inbox, memory_order_relaxed) != NULL)
        md_heap_drain(h); // blocks other threads freed, before looking for (or making) a page
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

// Link a checked block into its page, as the page's owner: a full page goes back to its queue, an
// empty one may go back to its segment. The owner's thread, or a thread collecting an abandoned
// heap (which it has to itself).
static void md_page_free_block(md_heap_t *h, md_page_t *pg, md_block_t *b)
{
    md_assert(pg->heap == h && md_block_index(pg, b) < pg->carved);
    md_debug_block_freed(pg, b);
    b->link = md_link_encode(b, pg->free);
    pg->free = b;
    md_assert(pg->used > 0);
    pg->used--;
    if (pg->flags & MD_PAGE_FULL)
        md_page_unmark_full(h, pg);
    if (pg->used == 0)
        md_page_on_empty(h, pg);
}

// Owner frees into a page that is full or hands out interior pointers (b is checked).
void md_page_free_slow(md_page_t *pg, md_block_t *b)
{
    md_assert(pg->heap == md_tls_heap);
    md_page_free_block(pg->heap, pg, b);
}

// ---- remote frees: outbox, inbox, node pool -----------------------------------------------------

// Heaps are at least 64-byte aligned and a few KiB apart: a multiplicative hash of the address.
static inline size_t md_outbox_hash(const md_heap_t *owner)
{
    return (size_t)(((uintptr_t)owner >> 6) * 0x9e3779b97f4a7c15ull >> 57);
}
_Static_assert(MD_OUTBOX_SLOTS == 128, "md_outbox_hash keeps 7 bits");

// The slot holding owner's node, or where to start one: the first empty slot of the probe run,
// else the fullest node there (handed over to make room: it carries the most frees per CAS).
static inline md_outbox_t *md_outbox_find(md_heap_t *h, const md_heap_t *owner)
{
    size_t at = md_outbox_hash(owner);
    md_outbox_t *victim = NULL;
    for (size_t i = 0; i < MD_OUTBOX_PROBES; i++) {
        md_outbox_t *o = &h->outbox[(at + i) % MD_OUTBOX_SLOTS];
        if (o->owner == owner || o->owner == NULL)
            return o;
        if (victim == NULL || o->node->count > victim->node->count)
            victim = o;
    }
    return victim;
}

static void md_rnode_push(_Atomic(md_rnode_t *) *stack, md_rnode_t *n)
{
    md_rnode_t *head = atomic_load_explicit(stack, memory_order_relaxed);
    do {
        n->next = head;
    } while (!atomic_compare_exchange_weak_explicit(stack, &head, n, memory_order_release,
                                                    memory_order_relaxed));
}

// A free node for h's outbox: from its pool, else from the nodes its owners gave back (one
// exchange takes them all), else from a fresh mapping. NULL only if the system has no memory.
static md_rnode_t *md_rnode_get(md_heap_t *h)
{
    md_rnode_t *n = h->pool;
    if (n == NULL)
        n = atomic_exchange_explicit(&h->returned, NULL, memory_order_acquire);
    if (n != NULL) {
        h->pool = n->next;
        return n;
    }
    if (h->rnode_next == h->rnode_end) {
        uint8_t *chunk = md_prim_mmap(NULL, MD_RNODE_CHUNK);
        if (chunk == NULL)
            return NULL;
        md_stat_commit((int64_t)MD_RNODE_CHUNK);
        md_stat_add(&md_stats.rnode_chunks);
        h->rnode_next = chunk;
        h->rnode_end = chunk + MD_RNODE_CHUNK;
    }
    n = (md_rnode_t *)h->rnode_next;
    h->rnode_next += MD_RNODE_SIZE;
    return n;
}

// Hand a slot's node over to its owner: one CAS on the owner's inbox.
static void md_outbox_flush(md_outbox_t *o)
{
    md_rnode_push(&o->owner->inbox, o->node);
    o->owner = NULL;
    o->node = NULL;
    o->bytes = 0;
}

// The slot for `owner` is taken by another owner, or empty: start a node for owner there.
static MD_NOINLINE void md_outbox_open(md_heap_t *h, md_outbox_t *o, md_heap_t *owner, void *b,
                                       size_t block_size)
{
    if (o->owner != NULL)
        md_outbox_flush(o);
    md_rnode_t *n = md_rnode_get(h);
    if (MD_UNLIKELY(n == NULL))
        return; // out of memory: the block leaks rather than the process failing in free()
    n->sender = h;
    n->blocks[0] = b;
    n->count = 1;
    o->owner = owner;
    o->node = n;
    o->bytes = block_size;
    if (block_size >= MD_OUTBOX_MAX_BYTES)
        md_outbox_flush(o);
}

// free() of a block of another heap's page (b is a block start of owner's page, block_size its
// page's block size; its free mark is not checked: the owner does that when it drains). Neither
// reads nor writes b.
MD_NOINLINE void md_free_remote(md_heap_t *owner, void *b, size_t block_size)
{
    md_heap_t *h = md_tls_heap;
    if (MD_UNLIKELY(h == NULL)) {
        md_free_generic(b, MD_OP_FREE); // gets this thread a heap (which may turn out to be owner)
        return;
    }
    md_outbox_t *o = md_outbox_find(h, owner);
    if (MD_UNLIKELY(o->owner != owner)) {
        md_outbox_open(h, o, owner, b, block_size);
        return;
    }
    md_rnode_t *n = o->node;
    n->blocks[n->count] = b;
    o->bytes += block_size;
    if (MD_UNLIKELY(++n->count == MD_RNODE_CAP || o->bytes >= MD_OUTBOX_MAX_BYTES))
        md_outbox_flush(o);
}

// Hand over every pending remote free (maintenance, thread exit).
void md_heap_flush_remote(md_heap_t *h)
{
    for (size_t i = 0; i < MD_OUTBOX_SLOTS; i++)
        if (h->outbox[i].owner != NULL)
            md_outbox_flush(&h->outbox[i]);
}

// A block another thread freed, met by its owner h as it drains the free. The free checked the
// pointer against the page as it was then, and while the free is pending the page keeps counting
// the block as used, so it can go away only if the block was freed more than once: then an
// earlier free, drained first, may have emptied the page, which went back to its segment (and the
// segment perhaps to the cache, to another heap or back to the system). So anything but a carved,
// not yet free block of a page of h is a double free. Returns the block's page.
static inline md_page_t *md_block_check_drained(const md_heap_t *h, md_block_t *b)
{
    uintptr_t a = (uintptr_t)b;
    if (!md_segmap_has(a - 1))
        md_misuse("double free", b, MD_OP_FREE);
    md_segment_t *seg = md_segment_of(b);
    size_t slice = (a - (uintptr_t)seg) >> seg->page_shift;
    if (seg->cookie != (MD_SEGMENT_COOKIE ^ (uintptr_t)seg) || slice >= seg->page_count)
        md_misuse("double free", b, MD_OP_FREE);
    md_page_t *pg = md_page_head(&seg->pages[slice]);
    if (!pg->in_use || (pg->flags & (MD_PAGE_UNUSED | MD_PAGE_HUGE)) || pg->heap != h ||
        md_block_index(pg, b) >= pg->carved)
        md_misuse("double free", b, MD_OP_FREE);
    md_block_check_mark(b, b, MD_OP_FREE);
    return pg;
}

// Free, as their owner, the blocks other threads freed into h's pages: each gets the checks a
// local free makes (a double free across threads is reported here, with the block's address),
// then is linked into its page. Emptied nodes go back to their senders.
void md_heap_drain(md_heap_t *h)
{
    md_rnode_t *n = atomic_exchange_explicit(&h->inbox, NULL, memory_order_acquire);
    while (n != NULL) {
        md_rnode_t *next = n->next;
        for (uint32_t i = 0; i < n->count; i++) {
            md_block_t *b = n->blocks[i];
            md_page_free_block(h, md_block_check_drained(h, b), b);
        }
        md_rnode_push(&n->sender->returned, n);
        n = next;
    }
}

// Drain the inbox and release empty pages (thread exit, abandoned heaps).
void md_heap_collect(md_heap_t *h, bool release_all)
{
    md_heap_drain(h);
    md_segment_t *seg = h->segments;
    while (seg != NULL) {
        md_segment_t *next = seg->next;
        for (size_t i = 0; i < seg->page_count; i++) {
            md_page_t *pg = &seg->pages[i];
            if (!pg->in_use || (pg->flags & MD_PAGE_TAIL))
                continue;
            if (pg->used != 0 || (pg->flags & MD_PAGE_FULL))
                continue;
            if (!release_all && h->queues[pg->class_idx].first == pg)
                continue;
            md_queue_remove(h, pg);
            md_segment_page_free(h, pg);
        }
        seg = next;
    }
}
