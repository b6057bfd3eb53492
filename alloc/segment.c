// SPDX-License-Identifier: MIT
// Segments: 4 MiB aligned mappings carved into pages, owned by one heap; huge blocks get a segment
// of their own. Empty segments go to one global cache instead of back to the OS, so no size
// boundary maps and unmaps per allocation; cached memory is purged (madvise) after the cache's
// purge delay, which adapts like a heap's (md_cache_backoff), and unmapped only when the cache
// overflows or entries grow old.
#include "md_internal.h"
#include "prim.h"

#include <string.h>

#define MD_CACHE_UNMAP_AGE_MS 10000 // purged entries this old are unmapped (address space)
// Cached memory not yet purged is capped (md_cache_dirty_cap): beyond the cap the oldest is purged
// at once, so freed big blocks cannot keep much more than this resident until the delay passes, or
// until the program's next allocator call, which may never come (a vector that doubled and now
// only fills its buffer). The cap is an eighth of the committed memory (as before session 8; an
// eighth of committed minus the cache's dirty bytes purged more of the entries that a program
// churning 1-5 MB blocks reuses, and cost it 25% of its speed), but at least
// MD_CACHE_DIRTY_FLOOR_MAX scaled by the cache's delay over the longest delay: 0.64 MiB while no
// purge was wasted, so a program that grows through phases (a doubling vector, a buffer shrunk by
// realloc) keeps next to nothing it freed resident; 128 MiB once the cache backed off to the
// longest delay, so a program that frees and reuses big blocks keeps them dirty and fast.
#define MD_CACHE_DIRTY_FLOOR_MAX ((size_t)128 << 20)
#define MD_CACHE_DIRTY_COMMITTED_SHIFT 3 // the cap is at least committed >> 3
#define MD_CACHE_DIRTY_CHURN_SHIFT 2     // ... or committed >> 2 at the longest delay

typedef struct {
    void *addr;
    size_t size;
    uint64_t since_ms;
    bool purged;
} md_cached_t;

static md_lock_t md_cache_lock;
static md_cached_t md_cache[MD_CACHE_SLOTS];
static size_t md_cache_count;
static size_t md_cache_dirty;        // bytes of unpurged cached memory
static uint32_t md_cache_delay_ms;   // the cache's purge delay now (md_cache_backoff)
static uint64_t md_cache_ages_ms;    // when md_cache_maintain_locked next looks at entries' ages
static _Atomic uintptr_t md_os_hint; // lowest aligned base so far: the next mapping goes below

// ---- OS memory ----------------------------------------------------------------------------------

// A segment mapped at base: the next unaligned request starts below it (mappings grow downwards,
// as the kernel's), and the segment map knows it.
static void *md_os_mapped(uintptr_t base, size_t lead)
{
    if (lead == 0)
        atomic_store_explicit(&md_os_hint, base, memory_order_relaxed);
    md_segmap_set((void *)base);
    return (void *)base;
}

// Aligned addresses tried below the kernel's place when over-mapping does not fit.
#define MD_OS_EXACT_TRIES 32

// When the address space is too short to over-map (`ulimit -v`: the first 4 MiB segment needed 8
// MiB, so malloc(10) failed where malloc(1000000), a smaller over-mapping, succeeded), or the
// over-mapping is bigger than overcommit grants (an alignment of 32 GiB): map exactly the size,
// and if the kernel's place is not aligned, try the aligned addresses below it, which are usually
// free since the kernel places mappings top-down. Only the first one was tried before, but it may
// hold a library (a preloaded mdalloc under `ulimit -v`: a one-page block for malloc(10) failed)
// or the previous such block (a second live block aligned to 32 GiB failed). Never needs more
// than `size` bytes.
static void *md_os_map_exact(size_t size, size_t align, size_t lead)
{
    uint8_t *raw = md_prim_mmap(NULL, size);
    if (raw == NULL)
        return NULL;
    uintptr_t base = (((uintptr_t)raw + lead) & ~(uintptr_t)(align - 1)) - lead;
    if (base == (uintptr_t)raw)
        return md_os_mapped(base, lead);
    md_prim_munmap(raw, size);
    for (int i = 0; i < MD_OS_EXACT_TRIES && base >= align; i++, base -= align) {
        raw = md_prim_mmap((void *)base, size);
        if (raw == (uint8_t *)base)
            return md_os_mapped(base, lead);
        if (raw != NULL) // the kernel put it elsewhere: that address is taken
            md_prim_munmap(raw, size);
    }
    return NULL;
}

// Map `size` bytes aligned to `align` (a multiple of MD_SEGMENT_SIZE), `lead` bytes before an
// aligned address. Mappings grow downwards like the kernel's own layout, so the hint usually
// succeeds in one system call; otherwise over-map and trim.
static void *md_os_map_aligned(size_t size, size_t align, size_t lead)
{
    uintptr_t hint = atomic_load_explicit(&md_os_hint, memory_order_relaxed);
    if (hint != 0 && lead == 0 && hint > size + MD_SEGMENT_SIZE) {
        uintptr_t want = (hint - size) & ~(uintptr_t)(align - 1);
        void *p = md_prim_mmap((void *)want, size);
        if (p != NULL && ((uintptr_t)p & (align - 1)) == 0)
            return md_os_mapped((uintptr_t)p, 0);
        if (p != NULL)
            md_prim_munmap(p, size);
    }
    size_t over = size + align + lead;
    uint8_t *raw = md_prim_mmap(NULL, over);
    if (raw == NULL)
        return md_os_map_exact(size, align, lead);
    uintptr_t base = md_align_up((uintptr_t)raw + lead, align) - lead;
    size_t head = base - (uintptr_t)raw;
    size_t tail = over - head - size;
    if (head > 0)
        md_prim_munmap(raw, head);
    if (tail > 0)
        md_prim_munmap((uint8_t *)base + size, tail);
    return md_os_mapped(base, lead);
}

// The segment map forgets a segment before its memory goes (a free racing with this is a use
// after free by the program anyway).
static void md_os_unmap_segment(void *addr, size_t size)
{
    md_segmap_clear(addr);
    md_prim_munmap(addr, size);
}

// ---- the cache of empty segments ---------------------------------------------------------------

// How much bigger than asked a cached mapping may be: half, plus one segment, since reusing beats
// faulting in new pages, and a purged tail only costs address space. A dirty tail keeps the
// previous user's pages resident for as long as the new user holds the mapping, and nothing
// purges it meanwhile (purging it at once instead made a madvise storm of the mixed benchmark:
// 119661 calls instead of 33): a dirty mapping may be only half bigger (32 blocks of 600 KiB
// taken from dirty 4 MiB segments kept 131 MB resident for 19 MB live, and 4 MiB segments taken
// from dirty 8 MiB huge blocks 86 MB for 43 MB).
static size_t md_cache_fit_max(size_t size, bool purged)
{
    size_t slack = purged ? size / 2 + MD_SEGMENT_SIZE : size / 2;
    return size + slack;
}

// Whether the cached mapping c may serve a request of size bytes.
static bool md_cache_fits(const md_cached_t *c, size_t size)
{
    return c->size >= size && c->size <= md_cache_fit_max(size, c->purged);
}

// The cache starts with the shortest delay, as a heap does (md_options are set by now).
void md_cache_init(void)
{
    md_cache_delay_ms = md_options.purge_delay_min_ms;
}

// A cached entry that was purged is needed again sooner than the longest delay after it was
// cached: that purge and the page faults that refill the mapping were wasted, and a program that
// frees and reuses big blocks on that rhythm would pay them on every cycle. As
// md_heap_purge_backoff does for a heap, wait twice as long from now on (and let twice as much stay
// dirty, see md_cache_dirty_cap). Called with the cache lock held.
static void md_cache_backoff(void)
{
    uint32_t longer = md_cache_delay_ms ? 2 * md_cache_delay_ms : 1;
    md_cache_delay_ms = longer < md_options.purge_delay_ms ? longer : md_options.purge_delay_ms;
}

// The entries are kept sorted by size, smallest first, and the newest first among equal sizes
// (its memory is warm): a request finds the smallest fitting entry by binary search and a short
// scan, instead of testing every slot (a program replacing random blocks of 1-5 MB spent a fifth of
// its time in that scan of 128 slots). Returns the first entry at least `size` bytes big.
static size_t md_cache_lower_bound(size_t size)
{
    size_t lo = 0, hi = md_cache_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (md_cache[mid].size < size)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

// Entries move one at a time, with a compiler barrier in the loop: the embedded musl build may
// call only a few libc functions (tests/alloc/programs.bats), and GCC and clang turn a plain copy
// loop, or two memcpys through a scratch array, into a memmove call. At most 256 entries of 32
// bytes move, under the cache lock (a loop of swaps cost hugechurn an eighth of its samples, the
// two memcpys a tenth).
static void md_cache_insert(md_cached_t c)
{
    size_t i = md_cache_lower_bound(c.size);
    for (size_t j = md_cache_count; j > i; j--) {
        md_cache[j] = md_cache[j - 1];
        __asm__ volatile("" ::: "memory");
    }
    md_cache[i] = c;
    md_cache_count++;
}

static md_cached_t md_cache_remove(size_t i)
{
    md_cached_t c = md_cache[i];
    md_cache_count--;
    for (size_t j = i; j < md_cache_count; j++) {
        md_cache[j] = md_cache[j + 1];
        __asm__ volatile("" ::: "memory");
    }
    return c;
}

// Take the smallest cached mapping of at least `size` bytes that fits (md_cache_fits). Entries
// past the first bigger than size plus the purged slack cannot fit.
static void *md_cache_take(size_t size, size_t *got, bool *zeroed)
{
    md_lock_acquire(&md_cache_lock);
    size_t i = md_cache_lower_bound(size);
    while (i < md_cache_count && md_cache[i].size <= md_cache_fit_max(size, true) &&
           !md_cache_fits(&md_cache[i], size))
        i++;
    void *p = NULL;
    if (i < md_cache_count && md_cache_fits(&md_cache[i], size)) {
        md_cached_t c = md_cache_remove(i);
        p = c.addr;
        *got = c.size;
        *zeroed = c.purged;
        if (c.purged) {
            md_stat_commit((int64_t)c.size);
            if (md_now_ms() - c.since_ms < md_options.purge_delay_ms)
                md_cache_backoff();
        } else {
            md_cache_dirty -= c.size;
        }
        md_stat_add(&md_stats.segments_reused);
    }
    md_lock_release(&md_cache_lock);
    return p;
}

// Evict the oldest entry; returns what the caller must unmap after dropping the lock.
static md_cached_t md_cache_evict_oldest(void)
{
    size_t oldest = 0;
    for (size_t i = 1; i < md_cache_count; i++)
        if (md_cache[i].since_ms < md_cache[oldest].since_ms)
            oldest = i;
    md_cached_t c = md_cache_remove(oldest);
    if (!c.purged)
        md_cache_dirty -= c.size;
    return c;
}

static void md_cache_purge_entry(md_cached_t *c)
{
    md_prim_purge(c->addr, c->size);
    md_stat_commit(-(int64_t)c->size);
    md_cache_dirty -= c->size;
    c->purged = true;
}

// How many bytes of cached memory may stay unpurged (see MD_CACHE_DIRTY_FLOOR_MAX). With a
// longest delay of 0 (MDALLOC_PURGE_DELAY=0) none: everything cached is purged at once. A cache
// that backed off to the longest delay saw its purged entries taken again and again: the program
// churns big blocks, so a quarter of the committed memory may stay dirty instead of an eighth. A
// program replacing random slots of 1000 blocks of 1-5 MB keeps the cache's 128 entries, 12.8% of
// its blocks, in use: under an eighth, the oldest entry was purged every 200 operations (10,000
// madvise calls in 3 s, each followed by page faults and TLB flushes), which made it three times
// slower; its RSS is 10 MB either way, since it touches 4 KiB of each block.
static size_t md_cache_dirty_cap(void)
{
    if (md_options.purge_delay_ms == 0)
        return 0;
    int64_t committed = atomic_load_explicit(&md_stats.committed, memory_order_relaxed);
    size_t least = (size_t)((uint64_t)MD_CACHE_DIRTY_FLOOR_MAX * md_cache_delay_ms /
                            md_options.purge_delay_ms);
    unsigned shift = md_cache_delay_ms >= md_options.purge_delay_ms
                         ? MD_CACHE_DIRTY_CHURN_SHIFT
                         : MD_CACHE_DIRTY_COMMITTED_SHIFT;
    size_t cap = committed > 0 ? (size_t)committed >> shift : 0;
    return cap > least ? cap : least;
}

// Purge the oldest unpurged entries until the dirty bytes are within the cap.
static void md_cache_enforce_cap(void)
{
    size_t cap = md_cache_dirty_cap();
    while (md_cache_dirty > cap) {
        md_cached_t *oldest = NULL;
        for (size_t i = 0; i < md_cache_count; i++)
            if (!md_cache[i].purged && (oldest == NULL || md_cache[i].since_ms < oldest->since_ms))
                oldest = &md_cache[i];
        if (oldest == NULL)
            return;
        md_cache_purge_entry(oldest);
    }
}

// Purge entries idle longer than the cache's delay and unmap purged ones that stayed unused for
// long, at most twice per delay as a heap does (an entry is purged at most half a delay late, and
// a program that churns big blocks through the cache does not scan every slot on every free);
// then, on every call, hold the dirty bytes to the cap. Called with the lock held (unmapping
// under it too: this is a slow path that already pays for system calls).
static void md_cache_maintain_locked(uint64_t now)
{
    if (now >= md_cache_ages_ms) {
        uint32_t period = md_cache_delay_ms / 2;
        md_cache_ages_ms = now + (period ? period : 1);
        for (size_t i = 0; i < md_cache_count;) {
            md_cached_t *c = &md_cache[i];
            if (!c->purged && now - c->since_ms >= md_cache_delay_ms)
                md_cache_purge_entry(c);
            if (c->purged && now - c->since_ms >= MD_CACHE_UNMAP_AGE_MS) {
                md_os_unmap_segment(c->addr, c->size);
                md_cache_remove(i);
                continue;
            }
            i++;
        }
    }
    md_cache_enforce_cap();
}

static void md_cache_put(void *addr, size_t size, bool purged)
{
    md_cached_t victim = {addr, size, 0, purged}; // unmapped at once if nothing may be cached
    md_lock_acquire(&md_cache_lock);
    if (md_options.cache_max > 0) {
        victim.addr = NULL;
        if (md_cache_count >= md_options.cache_max || md_cache_count >= MD_CACHE_SLOTS)
            victim = md_cache_evict_oldest();
        uint64_t now = md_now_ms();
        md_cache_insert((md_cached_t){addr, size, now, purged});
        if (!purged)
            md_cache_dirty += size;
        // Here, not only in a heap's maintenance: a program that allocates nothing but big blocks
        // never runs that (no heap slow path), and would keep what it freed until exit.
        md_cache_maintain_locked(now);
    }
    md_lock_release(&md_cache_lock);
    if (victim.addr != NULL) {
        if (!victim.purged)
            md_stat_commit(-(int64_t)victim.size);
        md_os_unmap_segment(victim.addr, victim.size);
    }
}

// A heap's periodic maintenance, and every mapping of new memory: see md_cache_maintain_locked.
void md_cache_maintain(uint64_t now)
{
    md_lock_acquire(&md_cache_lock);
    md_cache_maintain_locked(now);
    md_lock_release(&md_cache_lock);
}

// Out of address space: unmap every cached mapping (the caller retries its mapping). Entries are
// unmapped under the lock, as md_cache_maintain does: this runs only when a mapping failed.
void md_cache_release_all(void)
{
    md_lock_acquire(&md_cache_lock);
    for (size_t i = 0; i < md_cache_count; i++) {
        md_cached_t *c = &md_cache[i];
        if (!c->purged)
            md_stat_commit(-(int64_t)c->size);
        md_os_unmap_segment(c->addr, c->size);
    }
    md_cache_count = 0;
    md_cache_dirty = 0;
    md_lock_release(&md_cache_lock);
}

void md_segment_fork_prepare(void)
{
    md_lock_acquire(&md_cache_lock);
}

void md_segment_fork_parent(void)
{
    md_lock_release(&md_cache_lock);
}

void md_segment_fork_child(void)
{
    md_lock_reset(&md_cache_lock);
}

// md_os_map_aligned, and when the OS refuses (an address-space limit, say), once more after
// giving back what the calling thread's heap and the segment cache hold without using it: freed
// memory the program may have plenty of, unmapped otherwise only seconds later, if at all.
static void *md_os_map_retry(size_t size, size_t align, size_t lead)
{
    // Before the process grows, what the cache held past its delay goes back (the cache missed:
    // its entries are too small or too big for this request).
    md_cache_maintain(md_now_ms());
    void *p = md_os_map_aligned(size, align, lead);
    if (p != NULL)
        return p;
    md_heap_reclaim();
    return md_os_map_aligned(size, align, lead);
}

// Memory for a segment of `size` bytes: cached if possible, else fresh from the OS (zeroed).
static void *md_segment_memory(size_t size, size_t *got, bool *zeroed)
{
    void *p = md_cache_take(size, got, zeroed);
    if (p != NULL)
        return p;
    p = md_os_map_retry(size, MD_SEGMENT_SIZE, 0);
    if (p == NULL)
        return NULL;
    *got = size;
    *zeroed = true;
    md_stat_commit((int64_t)size);
    return p;
}

// ---- heap-owned segments ------------------------------------------------------------------------

static void md_avail_add(md_heap_t *h, md_segment_t *seg)
{
    md_assert(!seg->in_avail && seg->kind == MD_SEG_SLICED);
    seg->avail_prev = NULL;
    seg->avail_next = h->avail;
    if (seg->avail_next != NULL)
        seg->avail_next->avail_prev = seg;
    h->avail = seg;
    seg->in_avail = 1;
}

static void md_avail_remove(md_heap_t *h, md_segment_t *seg)
{
    if (!seg->in_avail)
        return;
    if (seg->avail_prev != NULL)
        seg->avail_prev->avail_next = seg->avail_next;
    else
        h->avail = seg->avail_next;
    if (seg->avail_next != NULL)
        seg->avail_next->avail_prev = seg->avail_prev;
    seg->in_avail = 0;
}

static void md_segment_header_init(md_segment_t *seg, enum md_segment_kind kind, size_t size,
                                   bool zeroed)
{
    seg->cookie = MD_SEGMENT_COOKIE ^ (uintptr_t)seg;
    seg->kind = (uint8_t)kind;
    seg->page_shift = kind == MD_SEG_SLICED ? MD_SLICE_SHIFT : MD_HUGE_PAGE_SHIFT;
    seg->page_count = kind == MD_SEG_SLICED ? MD_MAX_PAGES : 1;
    seg->pages_in_use = 0;
    seg->in_avail = 0;
    seg->zeroed = zeroed;
    seg->size = size;
    seg->free_mask = seg->page_count == 64 ? ~0ull : (1ull << seg->page_count) - 1;
    seg->empty_since_ms = 0;
    seg->heap = NULL;
    seg->next = seg->prev = seg->avail_next = seg->avail_prev = NULL;
    memset(seg->pages, 0, seg->page_count * sizeof(md_page_t));
    for (size_t i = 0; i < seg->page_count; i++) {
        seg->pages[i].flags = MD_PAGE_UNUSED;
        // Untouched only if the memory is zero (new or purged): a dirty cached segment is resident.
        seg->pages[i].fresh = zeroed;
    }
}

md_segment_t *md_segment_alloc(md_heap_t *h)
{
    size_t got;
    bool zeroed;
    md_segment_t *seg = md_segment_memory(MD_SEGMENT_SIZE, &got, &zeroed);
    if (seg == NULL)
        return NULL;
    md_segment_header_init(seg, MD_SEG_SLICED, got, zeroed);
    seg->heap = h;
    seg->next = h->segments;
    if (h->segments != NULL)
        h->segments->prev = seg;
    h->segments = seg;
    md_avail_add(h, seg);
    return seg;
}

static uint8_t *md_slice_start(md_segment_t *seg, size_t idx)
{
    return (uint8_t *)seg + (idx == 0 ? MD_SEGMENT_HEADER : idx << MD_SLICE_SHIFT);
}

static uint8_t *md_slice_end(md_segment_t *seg, size_t idx)
{
    return (uint8_t *)seg + ((idx + 1) << MD_SLICE_SHIFT);
}

// Give an empty segment back to the cache.
void md_segment_release(md_heap_t *h, md_segment_t *seg)
{
    md_assert(seg->pages_in_use == 0);
    md_avail_remove(h, seg);
    if (seg->prev != NULL)
        seg->prev->next = seg->next;
    else
        h->segments = seg->next;
    if (seg->next != NULL)
        seg->next->prev = seg->prev;
    // A segment whose slices were all purged is cached as purged (its header page aside).
    bool purged = true;
    for (size_t i = 0; i < seg->page_count; i++)
        purged = purged && seg->pages[i].purged;
    if (!purged) // the cache accounts for the whole segment as committed again
        for (size_t i = 0; i < seg->page_count; i++)
            if (seg->pages[i].purged)
                md_stat_commit(md_slice_end(seg, i) - md_slice_start(seg, i));
    seg->cookie = 0;
    md_cache_put(seg, seg->size, purged);
}

// Bit i set: a run of `slices` free slices starts at slice i and can hold a `block_size` block
// (the run at slice 0 is shorter by the header).
static uint64_t md_segment_fitting_runs(md_segment_t *seg, unsigned slices, size_t block_size)
{
    uint64_t runs = seg->free_mask;
    for (unsigned i = 1; i < slices; i++)
        runs &= seg->free_mask >> i;
    if (((size_t)slices << MD_SLICE_SHIFT) - MD_SEGMENT_HEADER < block_size)
        runs &= ~1ull;
    return runs;
}

// A page of `slices` slices from one of the heap's segments (a new one if none has room).
md_page_t *md_segment_page_alloc(md_heap_t *h, unsigned slices, size_t block_size)
{
    md_assert(slices >= 1 && slices <= MD_MAX_PAGE_SLICES);
    md_segment_t *seg = h->avail;
    while (seg != NULL && md_segment_fitting_runs(seg, slices, block_size) == 0)
        seg = seg->avail_next;
    if (seg == NULL) {
        seg = md_segment_alloc(h);
        if (seg == NULL)
            return NULL;
    }
    unsigned idx = (unsigned)__builtin_ctzll(md_segment_fitting_runs(seg, slices, block_size));
    md_page_t *pg = &seg->pages[idx];
    bool purged_too_soon = false;
    for (unsigned i = 0; i < slices; i++) {
        md_page_t *sl = &seg->pages[idx + i];
        if (sl->purged) {
            sl->purged = 0;
            md_stat_commit(md_slice_end(seg, idx + i) - md_slice_start(seg, idx + i));
            purged_too_soon =
                purged_too_soon || md_now_ms() - sl->retired_ms < md_options.purge_delay_ms;
        }
        sl->in_use = 1;
        sl->fresh = 0;
        sl->flags = i == 0 ? 0 : MD_PAGE_TAIL;
        sl->head = pg;
    }
    if (purged_too_soon)
        md_heap_purge_backoff(h);
    pg->slices = (uint8_t)slices;
    seg->free_mask &= ~(((slices == 64 ? 0 : 1ull << slices) - 1) << idx);
    seg->pages_in_use++;
    if (seg->free_mask == 0)
        md_avail_remove(h, seg);
    return pg;
}

// Grow a page to `slices` slices by taking the free slices right after it (realloc of the block of
// a one-block page). Only slices whose memory an earlier page already touched and that were not
// purged since: growing into fresh or purged memory would add to the RSS, where moving the block
// to the lowest fitting run (first fit) keeps the heap compact.
bool md_segment_page_extend(md_heap_t *h, md_page_t *pg, unsigned slices)
{
    md_segment_t *seg = md_page_segment(pg);
    size_t idx = md_page_index(pg);
    unsigned have = pg->slices;
    md_assert(pg->in_use && !(pg->flags & MD_PAGE_TAIL) && slices > have);
    if (slices > MD_MAX_PAGE_SLICES || idx + slices > seg->page_count)
        return false;
    uint64_t wanted = ((1ull << (slices - have)) - 1) << (idx + have);
    if ((seg->free_mask & wanted) != wanted)
        return false;
    for (size_t i = idx + have; i < idx + slices; i++)
        if (seg->pages[i].fresh || seg->pages[i].purged)
            return false;
    for (size_t i = idx + have; i < idx + slices; i++) {
        md_page_t *sl = &seg->pages[i];
        sl->in_use = 1;
        sl->flags = MD_PAGE_TAIL;
        sl->head = pg;
    }
    pg->slices = (uint8_t)slices;
    seg->free_mask &= ~wanted;
    if (seg->free_mask == 0)
        md_avail_remove(h, seg);
    return true;
}

// Return a page to its segment. An empty segment stays with its heap for the purge delay
// (md_segment_maintain releases it), so a heap that shrinks and grows again keeps its memory.
bool md_segment_page_free(md_heap_t *h, md_page_t *pg)
{
    md_segment_t *seg = md_page_segment(pg);
    size_t idx = md_page_index(pg);
    md_assert(pg->in_use && pg->used == 0 && !(pg->flags & MD_PAGE_TAIL));
    uint64_t now = md_now_ms();
    unsigned slices = pg->slices;
    for (unsigned i = 0; i < slices; i++) {
        md_page_t *sl = &seg->pages[idx + i];
        sl->in_use = 0;
        sl->flags = MD_PAGE_UNUSED;
        sl->retired_ms = now;
    }
    seg->free_mask |= ((slices == 64 ? 0 : 1ull << slices) - 1) << idx;
    seg->pages_in_use--;
    if (seg->pages_in_use == 0)
        seg->empty_since_ms = now;
    if (!seg->in_avail)
        md_avail_add(h, seg);
    return false;
}

// Hand the memory of free pages back to the OS once they stayed free for the purge delay
// (or at once with `all`). Adjacent pages are purged with one call.
static void md_segment_purge_pages(md_segment_t *seg, uint64_t now, uint32_t delay_ms, bool all)
{
    uint8_t *run_start = NULL, *run_end = NULL;
    for (size_t i = 0; i <= seg->page_count; i++) {
        md_page_t *pg = i < seg->page_count ? &seg->pages[i] : NULL;
        bool purge =
            pg != NULL && !pg->in_use && !pg->purged && (all || now - pg->retired_ms >= delay_ms);
        if (purge && pg->fresh) {
            // Never touched since the segment was mapped or purged: nothing to give back, so it
            // only counts as purged (a madvise of it would be a system call for nothing).
            pg->purged = 1;
            md_stat_commit(-(int64_t)(md_slice_end(seg, i) - md_slice_start(seg, i)));
        } else if (purge) {
            uint8_t *s = md_slice_start(seg, i), *e = md_slice_end(seg, i);
            if (run_start == NULL)
                run_start = s;
            run_end = e;
            pg->purged = 1;
            md_stat_commit(-(int64_t)(e - s));
            continue;
        }
        if (run_start != NULL) {
            md_prim_purge(run_start, (size_t)(run_end - run_start));
            run_start = NULL;
        }
    }
}

// Periodic work on one segment: purge pages that stayed free long enough, and release the segment
// if it stayed empty that long (at once if the heap is going idle). Returns true if released.
bool md_segment_maintain(md_heap_t *h, md_segment_t *seg, uint64_t now, bool idle)
{
    bool expired = now - seg->empty_since_ms >= h->purge_delay_ms;
    if (seg->pages_in_use == 0 && (idle || expired)) {
        md_segment_release(h, seg);
        return true;
    }
    md_segment_purge_pages(seg, now, h->purge_delay_ms, false);
    return false;
}

// malloc_trim: every free page of the segment purged now, whatever the delay.
void md_segment_purge_free(md_segment_t *seg)
{
    md_segment_purge_pages(seg, md_now_ms(), 0, true);
}

void md_page_area(md_page_t *pg, uint8_t **start, uint8_t **end)
{
    md_segment_t *seg = md_page_segment(pg);
    size_t idx = md_page_index(pg);
    *start = md_slice_start(seg, idx);
    *end = md_slice_end(seg, idx + pg->slices - 1);
}

// ---- huge blocks --------------------------------------------------------------------------------

// A huge block sits `off` bytes into its own segment: after the header, aligned as asked. For an
// alignment above the segment size the segment starts exactly one segment before the block.
void *md_huge_alloc(size_t size, size_t align, size_t slack, bool zero)
{
    if (align < MD_ALIGNMENT)
        align = MD_ALIGNMENT;
    size_t off = align > MD_SEGMENT_SIZE ? MD_SEGMENT_SIZE : md_align_up(MD_HUGE_HEADER, align);
    if (size > MD_MAX_REQUEST - off - slack)
        return NULL;
    size_t need = md_align_up(off + size + slack, MD_OS_PAGE);
    size_t got;
    bool zeroed;
    md_segment_t *seg;
    if (align > MD_SEGMENT_SIZE) {
        seg = md_os_map_retry(need, align, MD_SEGMENT_SIZE);
        got = need;
        zeroed = true;
        if (seg != NULL)
            md_stat_commit((int64_t)need);
    } else {
        seg = md_segment_memory(need, &got, &zeroed);
    }
    if (seg == NULL)
        return NULL;
    md_segment_header_init(seg, MD_SEG_HUGE, got, zeroed);
    seg->pages_in_use = 1;
    seg->free_mask = 0;
    md_page_t *pg = &seg->pages[0];
    pg->in_use = 1;
    pg->flags = MD_PAGE_HUGE;
    pg->start = (uint8_t *)seg + off;
    pg->block_size = got - off;
    pg->capacity = pg->carved = pg->used = 1;
    pg->purged = 0;
    md_stat_add(&md_stats.huge_allocs);
    if (zero && !zeroed)
        memset(pg->start, 0, size);
    return pg->start;
}

// Any thread may free a huge block: the segment belongs to no heap.
void md_huge_free(md_segment_t *seg)
{
    md_assert(seg->kind == MD_SEG_HUGE);
    seg->cookie = 0;
    md_cache_put(seg, seg->size, false);
}

// Grow a huge block in place to hold new_size bytes, with `slack` more if the address space
// after it allows (so the next steps of a growing block need no system call), else without.
bool md_huge_resize_in_place(md_segment_t *seg, size_t new_size, size_t slack)
{
    md_page_t *pg = &seg->pages[0];
    size_t off = (size_t)(pg->start - (uint8_t *)seg);
    if (new_size <= pg->block_size)
        return true;
    if (new_size > MD_MAX_REQUEST - off - slack)
        return false;
    size_t need = md_align_up(off + new_size, MD_OS_PAGE);
    size_t roomy = md_align_up(off + new_size + slack, MD_OS_PAGE);
    if (md_prim_remap_in_place(seg, seg->size, roomy))
        need = roomy;
    else if (!md_prim_remap_in_place(seg, seg->size, need))
        return false;
    md_stat_commit((int64_t)(need - seg->size));
    seg->size = need;
    pg->block_size = need - off;
    return true;
}

// Shrink a huge block in place to new_size bytes: the whole pages past it go back to the OS with
// one mremap, nothing is copied and the pointer stays (before session 16 a block shrunk below half
// its size was copied to a new block: 100 MB to 1 MB copied 1 MB and kept the old mapping in the
// cache until purged; 8 MB to 5 MB kept the 3 MB tail resident for the block's life). A tail
// shorter than MD_HUGE_TRIM_MIN stays: small shrinks would cost a system call each for little
// memory. false if the kernel refuses (the block is unchanged).
bool md_huge_shrink(md_segment_t *seg, size_t new_size)
{
    md_page_t *pg = &seg->pages[0];
    size_t off = (size_t)(pg->start - (uint8_t *)seg);
    size_t need = md_align_up(off + new_size, MD_OS_PAGE);
    if (need + MD_HUGE_TRIM_MIN > seg->size)
        return new_size <= pg->block_size;
    if (!md_prim_remap_in_place(seg, seg->size, need))
        return false;
    md_stat_commit(-(int64_t)(seg->size - need));
    seg->size = need;
    pg->block_size = need - off;
    return true;
}

// Move the huge segment seg onto a new aligned mapping of `size` bytes (mremap onto it, so
// nothing is copied). NULL if that mapping cannot be had or the kernel refuses the move (seg is
// then untouched).
static md_segment_t *md_huge_move_onto(md_segment_t *seg, size_t size)
{
    md_segment_t *to = md_os_map_retry(size, MD_SEGMENT_SIZE, 0);
    if (to == NULL)
        return NULL;
    // Forgotten before its mapping goes, as in md_os_unmap_segment: once the address is free,
    // another thread may map a segment there and set the bit.
    md_segmap_clear(seg);
    if (!md_prim_remap_to(seg, seg->size, size, to)) {
        md_segmap_set(seg);
        md_os_unmap_segment(to, size);
        return NULL;
    }
    return to;
}

// Grow a huge block that cannot grow in place by moving its whole segment, with `slack` bytes of
// room, onto a new aligned mapping: the kernel moves the page tables, so nothing is copied and
// the old and new block are never resident together (a block grown by realloc in 4 KiB steps to
// 256 MiB: 1.1 GB of address space, twice the peak RSS and 3 times the time of glibc with copies).
// When the address space for both mappings is short (`ulimit -v`), once more without the room,
// and then by letting the kernel choose the place (md_prim_remap_aligned), which needs only the
// growth and two segments: growth then fails only where glibc's mremap would fail too (or within
// those two segments of it). The new segment is aligned like the old one, so a block aligned up
// to the segment size keeps its alignment; one aligned beyond it (placed a segment after its
// header) is not moved here. Returns the block's new address, or NULL (the block is untouched;
// the caller copies).
void *md_huge_move(md_segment_t *seg, size_t new_size, size_t slack)
{
    md_page_t *pg = &seg->pages[0];
    size_t off = (size_t)(pg->start - (uint8_t *)seg);
    if (off >= MD_SEGMENT_SIZE || new_size > MD_MAX_REQUEST - off - slack)
        return NULL;
    size_t old_size = seg->size;
    size_t need = md_align_up(off + new_size + slack, MD_OS_PAGE);
    size_t tight = md_align_up(off + new_size, MD_OS_PAGE);
    md_segment_t *to = md_huge_move_onto(seg, need);
    if (to == NULL && tight != need) {
        need = tight;
        to = md_huge_move_onto(seg, need);
    }
    if (to == NULL) {
        md_segmap_clear(seg);
        to = md_prim_remap_aligned(seg, old_size, need, MD_SEGMENT_SIZE);
        if (to == NULL) {
            md_segmap_set(seg);
            return NULL;
        }
        md_segmap_set(to);
    }
    md_stat_commit((int64_t)need - (int64_t)old_size);
    to->cookie = MD_SEGMENT_COOKIE ^ (uintptr_t)to;
    to->size = need;
    pg = &to->pages[0];
    pg->start = (uint8_t *)to + off;
    pg->block_size = need - off;
    return pg->start;
}
