// SPDX-License-Identifier: MIT
// mdalloc internals: layout constants, the three core structures (segment, page, heap) and the
// invariants that tie them together, as static inline helpers. Everything here is libc-agnostic;
// the only OS access goes through prim.h.
#ifndef MD_INTERNAL_H
#define MD_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MD_VERSION "0.1.0"

#define MD_EXPORT __attribute__((visibility("default")))
#define MD_HIDDEN __attribute__((visibility("hidden")))
#define MD_LIKELY(x) __builtin_expect(!!(x), 1)
#define MD_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define MD_NOINLINE __attribute__((noinline))
#define MD_COLD __attribute__((cold, noinline))
// The hot paths: a call around them would cost as much as the path itself.
#define MD_ALWAYS_INLINE inline __attribute__((always_inline))

// ---- layout -------------------------------------------------------------------------------------
// A segment is a 4 MiB aligned mapping owned by one heap; its first 12 KiB hold the segment header
// with all page descriptors, so a block's metadata is found by masking its address.
#define MD_SEGMENT_SHIFT 22
#define MD_SEGMENT_SIZE ((size_t)1 << MD_SEGMENT_SHIFT)
#define MD_SEGMENT_MASK (MD_SEGMENT_SIZE - 1)
#define MD_SEGMENT_HEADER ((size_t)12 * 1024)
#define MD_MAX_PAGES 64
#define MD_OS_PAGE 4096

// A normal segment is cut into 64 slices of 64 KiB; a page is a run of 1 to 8 slices (the first
// slice of a segment is shorter: the header). Page descriptors are per slice: a page's first
// slice holds its state, the others point back to it (MD_PAGE_TAIL).
#define MD_SLICE_SHIFT 16
#define MD_SLICE_SIZE ((size_t)1 << MD_SLICE_SHIFT)
#define MD_MAX_PAGE_SLICES 8
#define MD_HUGE_PAGE_SHIFT 62 // huge segments: one page, whatever the segment size

// alignof(max_align_t) on every 64-bit target we build for: every block of at least 16 bytes is
// aligned to it. The blocks of the 8-byte class are only 8-byte aligned: an object that small
// cannot need more (C17 DR 445, C23), as in jemalloc, mimalloc and tcmalloc; md_alloc_aligned
// asks for at least `align` bytes so an explicit 16-byte request never gets one.
#define MD_ALIGNMENT 16

// Size class ranges (see sizeclass.c): blocks up to 8 KiB live in one-slice pages, up to 64 KiB in
// pages of up to 8 slices (at least 8 blocks each), up to 512 KiB in a page of their own (one
// block, returned to the segment as soon as it is freed); anything bigger gets its own huge
// segment.
#define MD_LARGE_MAX ((size_t)512 * 1024)
#define MD_MULTI_BLOCK_MAX ((size_t)64 * 1024) // classes above this: one block per page
// An empty page of blocks up to this size stays with its class while it is the class's current
// page (alloc/free ping-pong stays cheap); bigger pages go back to the segment at once, so their
// slices serve other classes.
#define MD_KEEP_EMPTY_MAX ((size_t)8 * 1024)
#define MD_CLASS_COUNT 105
#define MD_DIRECT_MAX 1024 // sizes up to this find their page with one table load
#define MD_DIRECT_STEP 8   // one slot per 8 bytes of request: the 8-byte class has its own
#define MD_DIRECT_SLOTS (MD_DIRECT_MAX / MD_DIRECT_STEP + 1)

// realloc shrinking a huge block gives its tail back when at least this much goes (md_huge_shrink).
#define MD_HUGE_TRIM_MIN ((size_t)64 * 1024)

// Anything above this cannot be a valid object size (ptrdiff_t must hold it).
#define MD_MAX_REQUEST ((size_t)PTRDIFF_MAX - 2 * MD_SEGMENT_SIZE)

enum md_segment_kind { MD_SEG_SLICED, MD_SEG_HUGE };

// ---- blocks and pages ---------------------------------------------------------------------------
// A free block is one word: the link to the next free block of its page, encoded so that it also
// says "this block is free" (misuse detection, see md_link_encode and check.c). One word is what
// lets the smallest class be 8 bytes.
typedef struct md_block_s {
    uintptr_t link; // md_link_encode(block, next) while free (on any list), 0 once handed out
} md_block_t;

// page->flags: any bit set sends free() to the slow path.
#define MD_PAGE_FULL 0x1        // unlinked from its queue: no free block when last looked at
#define MD_PAGE_HAS_ALIGNED 0x2 // some pointers handed out are interior (over-aligned requests)
#define MD_PAGE_HUGE 0x4        // the single block of a huge segment
#define MD_PAGE_TAIL 0x8        // not a page: a later slice of the page at `head`
#define MD_PAGE_UNUSED 0x10     // a free slice of its segment (no blocks): frees here are misuse

struct md_heap_s;
struct md_segment_s;

// One page descriptor, two cache lines split by who writes them. The first line is the page's
// shape: what every free (local or remote) reads, written only when the page is set up, carved
// further or marked full. The second line is what changes per operation: the owner's free list,
// used count and queue links, written by the owner only. Keeping them apart matters for
// producer/consumer programs: a thread freeing blocks of another thread's page only reads the
// first line (and never the block, see md_free_remote), so it does not take the line the owner
// writes on every malloc away from it.
typedef struct md_page_s {
    // -- line 1: read by every free, rarely written
    uint8_t flags;          // MD_PAGE_*
    uint8_t in_use;         // assigned to a size class (vs. free in its segment)
    uint8_t purged;         // free page whose memory was given back to the OS
    uint8_t class_idx;      // size class
    uint8_t slices;         // slices in this page
    uint32_t carved;        // blocks carved so far (the rest was never touched)
    uint32_t capacity;      // blocks that fit in the page
    uint32_t div_shift;     // md_class_div of the class (see md_block_index)
    struct md_heap_s *heap; // owner; stable for the page's lifetime
    size_t block_size;      // bytes per block
    uint8_t *start;         // first block
    uint64_t div_inv;       //
    struct md_page_s *head; // MD_PAGE_TAIL: the page this slice belongs to
    // -- line 2: the owner's free list and used count; queue links (slow paths). Owner only.
    _Alignas(64) md_block_t *free; // blocks ready to hand out
    uint32_t used;                 // blocks handed out and not yet returned to `free` (a block
                                   // freed by another thread counts until its owner drains it)
    uint8_t fresh;                 // free slice never used since its segment was set up
    struct md_page_s *next;        // class queue links
    struct md_page_s *prev;        //
    uint64_t retired_ms;           // when the slice became free (purge delay)
} md_page_t;

typedef struct md_segment_s {
    uint64_t cookie; // MD_SEGMENT_COOKIE ^ address: lets checks recognise our segments
    uint8_t kind;
    uint8_t page_shift;
    uint16_t page_count;
    uint16_t pages_in_use;
    uint8_t in_avail;        // linked in heap->avail
    uint8_t zeroed;          // huge: block memory known to be zero at allocation
    size_t size;             // bytes mapped
    uint64_t free_mask;      // bit i set: pages[i] is free
    uint64_t empty_since_ms; // when the last page in use was freed
    struct md_heap_s *heap;
    struct md_segment_s *next, *prev;             // heap->segments
    struct md_segment_s *avail_next, *avail_prev; // heap->avail: has a free slice
    _Alignas(64) md_page_t pages[MD_MAX_PAGES];
} md_segment_t;

_Static_assert(sizeof(md_segment_t) <= MD_SEGMENT_HEADER, "segment header too big");
_Static_assert(sizeof(md_page_t) == 128, "page descriptor should be two cache lines");
_Static_assert(offsetof(md_page_t, head) < 64 && offsetof(md_page_t, free) == 64,
               "free's read-only fields and the owner's hot fields must not share a line");

#define MD_SEGMENT_COOKIE 0x6d64616c6c6f6321ull

// A huge segment uses only the header's first page descriptor, so its block starts right after
// it, on the same OS page, instead of after the full 12 KiB header: a program that touches only
// the start of its big blocks makes one page resident per block instead of two, and malloc, the
// program and free each touch one page of the block instead of two. 256 bytes keep the block
// cache-line aligned.
#define MD_HUGE_HEADER ((size_t)256)
_Static_assert(offsetof(md_segment_t, pages) + sizeof(md_page_t) <= MD_HUGE_HEADER,
               "a huge segment's header must end before its block");

// ---- heaps --------------------------------------------------------------------------------------
typedef struct {
    md_page_t *first;
    md_page_t *last;
} md_page_queue_t;

enum md_heap_state { MD_HEAP_ACTIVE, MD_HEAP_ABANDONED, MD_HEAP_ORPHAN };

// Remote frees never touch the block: the freeing thread appends the pointer to a buffer node of
// its own, one node per owner heap, kept in a small direct-mapped table (the outbox) keyed by the
// owner. A full node, or one whose slot another owner needs, is pushed whole onto the owner's
// inbox (a lock-free stack: one CAS per node; the owner takes the whole stack with one exchange,
// so there is no ABA). The owner links the blocks into their pages when it drains its inbox, then
// pushes each emptied node onto its sender's `returned` stack, from which the sender refills its
// pool. Nodes come from small mappings of their own (never user memory). See page.c.
#define MD_RNODE_SIZE 512
#define MD_RNODE_CAP ((MD_RNODE_SIZE - 3 * sizeof(void *)) / sizeof(void *)) // 61 pointers
#define MD_RNODE_CHUNK ((size_t)64 * 1024)                                   // 128 nodes a mapping
// Outbox slots, probed linearly from the owner's hash: a freeing thread keeps a node for up to
// this many owner heaps at once before it has to hand a partly filled one over (a collector
// thread freeing the results of a pool of workers would otherwise send a node per free).
#define MD_OUTBOX_SLOTS 128
#define MD_OUTBOX_PROBES 8
// A node is handed over once the blocks it holds add up to this much, whatever their number:
// 61 pending blocks of 512 KiB would keep 30 MiB from their owner.
#define MD_OUTBOX_MAX_BYTES ((size_t)256 * 1024)

typedef struct md_rnode_s {
    struct md_rnode_s *next;    // in an inbox, a `returned` stack or a pool
    struct md_heap_s *sender;   // whose pool the node goes back to
    uint32_t count;             // pointers in blocks[]
    void *blocks[MD_RNODE_CAP]; // blocks of the owner heap's pages, freed by the sender
} md_rnode_t;
_Static_assert(sizeof(md_rnode_t) == MD_RNODE_SIZE, "a remote-free node is 512 bytes");

typedef struct {
    struct md_heap_s *owner; // NULL: slot empty
    md_rnode_t *node;        // holds 1..MD_RNODE_CAP-1 pointers to blocks of owner's pages
    size_t bytes;            // their block sizes added up
} md_outbox_t;

// A heap belongs to one thread at a time; only that thread touches anything but `inbox` and
// `returned`.
typedef struct md_heap_s {
    md_page_t *direct[MD_DIRECT_SLOTS]; // size/8 -> page to allocate from (may be md_page_empty)
    md_page_queue_t queues[MD_CLASS_COUNT];
    md_outbox_t outbox[MD_OUTBOX_SLOTS]; // remote frees not yet handed over, per owner heap
    // The only fields other threads write, on a line of their own so their pushes do not
    // invalidate the owner's queues: nodes of blocks they freed, and emptied nodes of ours.
    _Alignas(64) _Atomic(md_rnode_t *) inbox;
    _Atomic(md_rnode_t *) returned;
    _Alignas(64) md_segment_t *segments; // every non-huge segment of this heap
    md_segment_t *avail;                 // segments with a free slice
    uint64_t next_maintenance_ms;
    uint32_t purge_delay_ms; // this heap's delay now, purge_delay_min_ms .. purge_delay_ms
    uint32_t state;
    struct md_heap_s *registry_next;      // all heaps ever made (they are never unmapped)
    struct md_heap_s *abandoned_next;     // heaps waiting for a new thread
    md_rnode_t *pool;                     // free nodes for the outbox
    uint8_t *rnode_next, *rnode_end;      // the rest of the last node mapping
    uint64_t class_pages[MD_CLASS_COUNT]; // statistics: pages set up per class
    uint32_t debug_ticks;                 // debug build: when to check the whole heap next
    uint32_t pages_emptied;               // for the maintenance heartbeat (md_page_on_empty)
} md_heap_t;

// ---- shared state -------------------------------------------------------------------------------
typedef struct {
    _Atomic int locked;
} md_lock_t;

// Slots of the segment cache (segment.c): the most MDALLOC_CACHE_SEGMENTS may ask for.
#define MD_CACHE_SLOTS 256

typedef struct {
    int verbose;
    int stats;
    // Free memory stays committed for a heap's purge delay before it is purged. A heap starts at
    // the shortest delay and doubles it, up to the longest, whenever memory it purged comes back
    // sooner than the longest delay (md_heap_purge_backoff).
    uint32_t purge_delay_ms;     // the longest delay (the segment cache's adapts the same way)
    uint32_t purge_delay_min_ms; // the delay a new heap starts with
    uint32_t cache_max;          // empty segments kept mapped (purged after the delay)
} md_options_t;

typedef struct {
    _Atomic uint64_t mmap_calls, munmap_calls, madvise_calls;
    _Atomic int64_t committed, committed_peak, mapped, mapped_peak;
    _Atomic uint64_t huge_allocs, segments_reused;
    _Atomic uint64_t heaps_created;           // heap structures made (each is kept for reuse)
    _Atomic uint64_t calls_after_thread_exit; // served with a borrowed heap (md_heap_give_back)
    _Atomic uint64_t rnode_chunks; // mappings for remote-free nodes (MD_RNODE_CHUNK each)
} md_stats_t;

extern md_options_t md_options;
extern md_stats_t md_stats;
extern md_page_t md_page_empty;
extern const uint32_t md_class_size[MD_CLASS_COUNT];
extern const uint8_t md_direct_class[MD_DIRECT_SLOTS];
extern const uint8_t md_class_slices[MD_CLASS_COUNT];

// The thread's heap; NULL until its first allocation and after it exits.
extern __thread md_heap_t *md_tls_heap __attribute__((tls_model("initial-exec")));
// The thread's exit hook has run: a heap it takes from now on is only borrowed for one call.
extern __thread bool md_tls_exited __attribute__((tls_model("initial-exec")));

// ---- debug checks -------------------------------------------------------------------------------
void md_fatal(const char *msg, const char *detail) __attribute__((noreturn, cold));
#ifdef MDALLOC_DEBUG
#define MD_STR2(x) #x
#define MD_STR(x) MD_STR2(x)
#define md_assert(c)                                                                               \
    ((c) ? (void)0 : md_fatal("assertion failed: " #c, __FILE__ ":" MD_STR(__LINE__)))
#else
#define md_assert(c) ((void)0)
#endif

// ---- misuse detection (check.c)
// ------------------------------------------------------------------ Which API call met a bad
// pointer, for the message.
enum md_op {
    MD_OP_FREE,
    MD_OP_FREE_SIZED,
    MD_OP_FREE_ALIGNED_SIZED,
    MD_OP_REALLOC,
    MD_OP_USABLE_SIZE
};

// One bit per 4 MiB of address space (48-bit user addresses): set while a segment starts there
// (mapped by mdalloc, in use or cached). free() tests it before it reads any metadata, so a
// pointer mdalloc never returned is reported instead of dereferenced. 8 MiB of zero pages, of
// which only the words covering our segments are ever touched.
#define MD_ADDRESS_BITS 48
#define MD_SEGMAP_BITS ((size_t)1 << (MD_ADDRESS_BITS - MD_SEGMENT_SHIFT))
extern MD_HIDDEN _Atomic uint64_t md_segmap[MD_SEGMAP_BITS / 64];

// Per size class: block index = rotr(offset * inverse of the odd part, trailing zero bits) when the
// offset is a multiple of the block size, and a huge number otherwise (Hacker's Delight 10-16). One
// multiply tells both "on a block boundary" and which block. Copied into each page at setup.
typedef struct {
    uint64_t inv;
    uint32_t shift;
} md_class_div_t;
extern MD_HIDDEN md_class_div_t md_class_div[MD_CLASS_COUNT];
// Secret of this process (odd): a free block's mark is its address times it (md_link_mark).
extern MD_HIDDEN uintptr_t md_mark_key;

void md_check_init(void);
void md_segmap_set(const void *seg);
void md_segmap_clear(const void *seg);
// Diagnose a bad pointer (what free's fast path could not accept) and abort, or return the block
// it designates. Slow paths and realloc/usable_size call this before touching a block.
md_block_t *md_block_resolve(const void *p, enum md_op op);
// The same without reading the block (a remote free must not touch it): every check but the
// free mark. For a huge block, p itself.
md_block_t *md_block_locate(const void *p, enum md_op op);
// b (located for p) is marked free: report "not allocated" if it was carved and never handed
// out, else "double free" (or "pointer already freed"), and abort.
void md_misuse_marked(const md_block_t *b, const void *p, enum md_op op)
    __attribute__((noreturn, cold));
// p is in no segment of ours: report and abort (kept apart so the fast path saves no registers).
void md_misuse_unowned(const void *p, enum md_op op) __attribute__((noreturn, cold));
void md_misuse(const char *problem, const void *p, enum md_op op) __attribute__((noreturn, cold));

// ---- inline helpers: the invariants -------------------------------------------------------------

// Start fetching the cache line at p for writing. For a block whose line is modified in another
// thread's cache (one it wrote while the block was live) a plain read would fetch a shared copy
// and the write that follows would need a second round trip to invalidate the other copy; asking
// for ownership at once saves that. x86-64 gets PREFETCHW explicitly (GCC emits it only with
// -mprfchw; CPUs without it execute it as a no-op). A prefetch never faults, also not on NULL or a
// bad pointer.
static inline void md_prefetch_write(const void *p)
{
#if defined(__x86_64__)
    __asm__("prefetchw %0" : : "m"(*(const char *)p));
#else
    __builtin_prefetch(p, 1);
#endif
}
static inline size_t md_align_up(size_t n, size_t a)
{
    return (n + a - 1) & ~(a - 1);
}

static inline bool md_is_pow2(size_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

// Every block starts at least one byte past its segment start (the header is there), and a huge
// block aligned beyond the segment size starts exactly one segment past it: masking p-1 finds the
// segment in both cases.
static inline md_segment_t *md_segment_of(const void *p)
{
    return (md_segment_t *)(((uintptr_t)p - 1) & ~(uintptr_t)MD_SEGMENT_MASK);
}

// The slice descriptor for p. Not checked here: free's fast path calls it on pointers it has not
// validated yet (a descriptor past the last one still lies in the mapped header), and
// md_block_resolve checks everything before a slow path relies on it.
static inline md_page_t *md_page_of(md_segment_t *seg, const void *p)
{
    size_t idx = ((uintptr_t)p - (uintptr_t)seg) >> seg->page_shift;
    return &seg->pages[idx];
}

static inline md_segment_t *md_page_segment(const md_page_t *pg)
{
    return (md_segment_t *)((uintptr_t)pg & ~(uintptr_t)MD_SEGMENT_MASK);
}

static inline size_t md_page_index(const md_page_t *pg)
{
    return (size_t)(pg - md_page_segment(pg)->pages);
}

// True if a segment of ours covers the byte at address a (for a block pointer p: a = p - 1, as in
// md_segment_of).
static inline bool md_segmap_has(uintptr_t a)
{
    uintptr_t bit = a >> MD_SEGMENT_SHIFT;
    if (MD_UNLIKELY(bit >= MD_SEGMAP_BITS))
        return false;
    uint64_t w = atomic_load_explicit(&md_segmap[bit / 64], memory_order_relaxed);
    return (w >> (bit % 64)) & 1;
}

// Index of the block that starts exactly at p, or a number >= pg->carved (in fact huge) if p is
// not on a block boundary of the page or lies before its first block.
static inline uint64_t md_block_index(const md_page_t *pg, const void *p)
{
    uint64_t off = (uint64_t)((uintptr_t)p - (uintptr_t)pg->start);
    uint64_t x = off * pg->div_inv;
    return (x >> pg->div_shift) | (x << ((64 - pg->div_shift) & 63));
}

// The link word of a free block b holds, above the segment offset bits, b's mark: its address
// times the per-process secret (odd, so distinct addresses get distinct products), top bit set;
// below them, the segment offset of the next free block of the same page (0 for none: no block
// starts at a segment's first byte); and bit 0 from carving until the block is first handed out
// (MD_LINK_CARVED; blocks are 8-byte aligned, so the offset's low bits are free).
//
// Why this is enough to link: the only lists of blocks are pages' free lists (remote frees are
// kept as arrays of pointers, see md_rnode_t), so the next block lies in b's segment.
// Why it also marks the block free: a block in use holds 0 (malloc clears the word), which never
// matches since the mark's top bit is set, or the program's data, which matches only if its top 42
// bits equal b's mark (never for a user-space pointer, a small number or text, whose top bit is
// clear; otherwise one chance in 2^41). The mark is bound to b's address, so a link word copied
// elsewhere (realloc copying a block that holds stale data, say) does not mark the copy free.
#define MD_LINK_CARVED ((uintptr_t)1)
#define MD_LINK_OFFSET_MASK ((uintptr_t)MD_SEGMENT_MASK & ~(uintptr_t)7)

static inline uintptr_t md_link_mark(const md_block_t *b)
{
    return ((uintptr_t)b * md_mark_key | (uintptr_t)1 << 63) & ~(uintptr_t)MD_SEGMENT_MASK;
}

static inline uintptr_t md_link_encode(const md_block_t *b, const md_block_t *next)
{
    return md_link_mark(b) | ((uintptr_t)next & MD_LINK_OFFSET_MASK);
}

// The next block, or the base of b's segment at the end of the list (see md_list_end).
static inline md_block_t *md_link_next(const md_block_t *b)
{
    uintptr_t seg = (uintptr_t)b & ~(uintptr_t)MD_SEGMENT_MASK;
    return (md_block_t *)(seg | (b->link & MD_LINK_OFFSET_MASK));
}

// A free list ends at a pointer with segment offset 0: NULL, or the segment base that
// md_link_next decodes from an empty offset (no block starts there). Not turning the base into
// NULL saves malloc's fast path a compare and a conditional move.
static inline bool md_list_end(const md_block_t *b)
{
    return ((uintptr_t)b & MD_SEGMENT_MASK) == 0;
}

// The block is on a free list (or carved and never handed out): freeing it is misuse.
static inline bool md_block_is_free(const md_block_t *b)
{
    return ((b->link ^ md_link_mark(b)) >> MD_SEGMENT_SHIFT) == 0;
}

// Free and never handed out since it was carved (for the message: "not allocated", not "freed").
static inline bool md_block_is_carved(const md_block_t *b)
{
    return md_block_is_free(b) && (b->link & MD_LINK_CARVED);
}

// The free-mark check on a block located for p (see md_block_locate).
static inline void md_block_check_mark(const md_block_t *b, const void *p, enum md_op op)
{
    if (MD_UNLIKELY(md_block_is_free(b)))
        md_misuse_marked(b, p, op);
}

static inline unsigned md_class_of(size_t n)
{
    if (n <= 128)
        return n <= 8 ? 0 : (unsigned)((n + 15) >> 4); // 8, then 16-byte steps
    size_t m = n - 1;
    unsigned b = 63u - (unsigned)__builtin_clzl(m); // m >= 128, so b >= 7
    return 9 + (b - 7) * 8 + (unsigned)((m >> (b - 3)) & 7);
}

// The page state for a pointer's slice descriptor (slow paths only: tails are rare).
static inline md_page_t *md_page_head(md_page_t *pg)
{
    return (pg->flags & MD_PAGE_TAIL) ? pg->head : pg;
}

static inline void md_stat_add(_Atomic uint64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

// ---- locks (only on slow paths: segment cache, heap registry) ----------------------------------
// The forking thread holds both locks from our prepare handler to our parent or child handler.
// Other fork handlers may run in that window and allocate (the order of registration decides,
// and a library's constructor registers before a preloaded mdalloc's): on that thread the locks
// are then already held, at a point where nothing was half-updated, so taking and releasing them
// does nothing. Every other thread still waits.
extern __thread bool md_tls_holds_fork_locks __attribute__((tls_model("initial-exec")));
void md_lock_acquire(md_lock_t *l);
static inline void md_lock_release(md_lock_t *l)
{
    if (MD_UNLIKELY(md_tls_holds_fork_locks))
        return;
    atomic_store_explicit(&l->locked, 0, memory_order_release);
}
static inline void md_lock_reset(md_lock_t *l)
{
    atomic_store_explicit(&l->locked, 0, memory_order_relaxed);
}

// ---- cross-file interfaces ----------------------------------------------------------------------
// options.c
void md_process_init(void);
void md_process_fork_child(void);
extern _Atomic int md_process_ready;
uint64_t md_now_ms(void);
void md_print(const char *s);
void md_print_stats(void);
void md_print_stats_to(int fd); // the same lines, to fd (malloc_stats: stderr)
void md_stat_commit(int64_t delta);
void md_stat_map(int64_t delta);

// segment.c
md_segment_t *md_segment_alloc(md_heap_t *h);
void md_segment_release(md_heap_t *h, md_segment_t *seg);
md_page_t *md_segment_page_alloc(md_heap_t *h, unsigned slices, size_t block_size);
bool md_segment_page_free(md_heap_t *h, md_page_t *pg);
bool md_segment_page_extend(md_heap_t *h, md_page_t *pg, unsigned slices);
void md_page_area(md_page_t *pg, uint8_t **start, uint8_t **end);
void md_heap_purge_backoff(md_heap_t *h);
bool md_segment_maintain(md_heap_t *h, md_segment_t *seg, uint64_t now, bool idle);
void md_segment_purge_free(md_segment_t *seg);
void *md_huge_alloc(size_t size, size_t align, size_t slack, bool zero);
void md_huge_free(md_segment_t *seg);
bool md_huge_resize_in_place(md_segment_t *seg, size_t new_size, size_t slack);
bool md_huge_shrink(md_segment_t *seg, size_t new_size);
void *md_huge_move(md_segment_t *seg, size_t new_size, size_t slack);
size_t md_huge_usable(md_segment_t *seg, const void *p);
void md_cache_init(void);
void md_cache_maintain(uint64_t now);
void md_cache_release_all(void);
void md_segment_fork_prepare(void);
void md_segment_fork_parent(void);
void md_segment_fork_child(void);

// page.c
void *md_page_malloc_slow(md_heap_t *h, size_t n);
void md_page_on_empty(md_heap_t *h, md_page_t *pg);
// free's fast path emptied the page: md_page_on_empty, and the heartbeat (MD_HEARTBEAT_EMPTIES)
void md_page_emptied_by_free(md_heap_t *h, md_page_t *pg);
bool md_page_grow_block(md_heap_t *h, md_page_t *pg, size_t n);
void md_page_free_slow(md_page_t *pg, md_block_t *b);
void md_free_remote(md_heap_t *owner, void *b, size_t block_size);
void md_heap_flush_remote(md_heap_t *h);
void md_heap_drain(md_heap_t *h);
void md_heap_collect(md_heap_t *h, bool release_all);
void md_queue_remove(md_heap_t *h, md_page_t *pg);

// heap.c
md_heap_t *md_heap_get_slow(void);
void md_heap_give_back(md_heap_t *h, bool borrowed);
bool md_heap_ready(void);
void md_heap_thread_exit(md_heap_t *h);
void md_heap_maintain(md_heap_t *h);
// Every MD_HEARTBEAT_EMPTIES times a page of the heap empties: maintenance, for a program whose
// mallocs and frees all take the fast paths (a steady loop after a big structure was dropped),
// which would otherwise keep what it freed before until a slow path ran, possibly never. The
// free fast path calls md_page_emptied_by_free anyway (a block allocated and freed alone empties
// its page each time); a check there costs the fast path nothing, where a count of every free did
// (a heap-wide count: larson 15% slower, each free waiting on the last one's store; per page:
// 0.4 ns per malloc/free pair). A power of two; maintenance first reads the clock (20-50 ns).
#define MD_HEARTBEAT_EMPTIES 1024u
void md_heap_reclaim(void);
bool md_heap_trim(void);
void md_fork_prepare(void);
void md_fork_parent(void);
void md_fork_child(void);
void md_heaps_foreach(void (*fn)(md_heap_t *, void *), void *arg);

// alloc.c: the generic implementations behind the exported API
void *md_malloc_generic(size_t n);
size_t md_realloc_target(size_t old_usable, size_t n);
void md_free_generic(void *p, enum md_op op);
void *md_calloc(size_t count, size_t size);
void *md_realloc(void *p, size_t n, bool zero_frees);
void *md_reallocarray(void *p, size_t count, size_t size, bool zero_frees);
void *md_memalign(size_t align, size_t n);
void *md_aligned_alloc(size_t align, size_t n);
int md_posix_memalign(void **out, size_t align, size_t n);
void *md_valloc(size_t n);
void *md_pvalloc(size_t n);
size_t md_usable_size(const void *p);
bool md_allzero(const void *p);
void md_free_sized(void *p, size_t size);
void md_free_aligned_sized(void *p, size_t align, size_t size);

// glue (one per target): bind a heap to the calling thread so md_heap_thread_exit runs at exit
void md_glue_thread_bind(md_heap_t *h);
void md_thread_fork_child(void); // thread_posix.c
extern const char md_glue_target[];

#endif
