// SPDX-License-Identifier: MIT
// Misuse detection: every pointer handed to free, realloc, free_sized, free_aligned_sized or
// malloc_usable_size is checked before mdalloc writes anything, and a bad one ends the process
// with one line
//   mdalloc: free(): double free: 0x7f3a1c2040a0
// on stderr and abort(), instead of corrupting a free list.
//
// What is checked, and how cheaply (the fast path in md_fast.h does the first three inline):
// - the pointer lies in a segment of ours: one bit per 4 MiB of address space (md_segmap), read
//   before any metadata is touched, so stack, static, foreign-heap and wild pointers are caught;
// - it is the start of a block: offset * inverse (mod 2^64), rotated, is the block index if the
//   offset is a multiple of the block size and a huge number otherwise; the index must be below
//   the page's carved count (blocks beyond it were never handed out);
// - the block is not free already: a free block's only word is its free-list link, encoded with
//   its own address and a per-process secret (md_link_encode), written when it is freed or carved
//   (then with bit 0 set, until first handed out), so md_block_is_free recognises it; the word is
//   cleared when the block is handed out. A block freed by another thread than its owner's is not
//   read by that free: the owner makes this check when it drains the free (page.c), so a double
//   free across threads is reported then, and one whose second free is local goes unnoticed if
//   the block is handed out again before the drain;
// - (slow path) the page and the segment are in use: freeing into a page or segment that was
//   given back is a double free; huge blocks are checked against their one start address.
#include "md_fast.h"
#include "prim.h"

#include <stdlib.h>
#include <string.h>

_Atomic uint64_t md_segmap[MD_SEGMAP_BITS / 64];
md_class_div_t md_class_div[MD_CLASS_COUNT];
// Until md_check_init runs no block exists. Odd, so that multiplying by it maps distinct block
// addresses to distinct marks (md_link_mark).
uintptr_t md_mark_key = (uintptr_t)0x6d64ull << 48 | 1;

void md_check_init(void)
{
    for (size_t c = 0; c < MD_CLASS_COUNT; c++) {
        uint64_t bs = md_class_size[c];
        unsigned shift = (unsigned)__builtin_ctzll(bs);
        uint64_t odd = bs >> shift, inv = odd; // odd * odd == 1 mod 8: 3 bits right
        for (int i = 0; i < 5; i++)            // Newton: each step doubles the correct bits
            inv *= 2 - odd * inv;
        md_assert(odd * inv == 1);
        md_class_div[c] = (md_class_div_t){inv, shift};
    }
    md_mark_key = (uintptr_t)(md_prim_random64() | 1);
}

void md_segmap_set(const void *seg)
{
    uintptr_t bit = (uintptr_t)seg >> MD_SEGMENT_SHIFT;
    if (bit < MD_SEGMAP_BITS)
        atomic_fetch_or_explicit(&md_segmap[bit / 64], (uint64_t)1 << (bit % 64),
                                 memory_order_relaxed);
}

void md_segmap_clear(const void *seg)
{
    uintptr_t bit = (uintptr_t)seg >> MD_SEGMENT_SHIFT;
    if (bit < MD_SEGMAP_BITS)
        atomic_fetch_and_explicit(&md_segmap[bit / 64], ~((uint64_t)1 << (bit % 64)),
                                  memory_order_relaxed);
}

static const char *md_op_name(enum md_op op)
{
    switch (op) {
    case MD_OP_FREE:
        return "free";
    case MD_OP_FREE_SIZED:
        return "free_sized";
    case MD_OP_FREE_ALIGNED_SIZED:
        return "free_aligned_sized";
    case MD_OP_REALLOC:
        return "realloc";
    case MD_OP_USABLE_SIZE:
        return "malloc_usable_size";
    }
    return "free";
}

void md_misuse(const char *problem, const void *p, enum md_op op)
{
    char buf[160], *o = buf;
    const char *parts[] = {"mdalloc: ", md_op_name(op), "(): ", problem, ": 0x"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        for (const char *s = parts[i]; *s != 0; s++)
            *o++ = *s;
    uintptr_t v = (uintptr_t)p;
    int digits = 1;
    while (digits < 16 && (v >> (4 * digits)) != 0)
        digits++;
    for (int d = digits - 1; d >= 0; d--)
        *o++ = "0123456789abcdef"[(v >> (4 * d)) & 15];
    *o++ = '\n';
    md_prim_write_stderr(buf, (size_t)(o - buf));
    abort();
}

__attribute__((noreturn)) static void md_misuse_freed(const void *p, enum md_op op)
{
    bool freeing = op != MD_OP_REALLOC && op != MD_OP_USABLE_SIZE;
    md_misuse(freeing ? "double free" : "pointer already freed", p, op);
}

#define MD_NOT_OURS "pointer not allocated by mdalloc"
#define MD_INTERIOR "interior pointer (not the start of a block)"

// A pointer past the first 4 MiB of a huge block has no segment bit of its own: find the nearest
// segment below it, a map word at a time (error path only).
static bool md_inside_huge_block(uintptr_t a)
{
    uintptr_t bit = (a - 1) >> MD_SEGMENT_SHIFT;
    if (bit >= MD_SEGMAP_BITS || bit == 0)
        return false;
    bit--; // the region of `a` itself has no segment start: look below it
    for (;;) {
        uint64_t w = atomic_load_explicit(&md_segmap[bit / 64], memory_order_relaxed);
        unsigned top = (unsigned)(bit % 64);
        w &= top == 63 ? ~(uint64_t)0 : ((uint64_t)1 << (top + 1)) - 1; // bits <= bit
        if (w != 0) {
            bit = bit - top + (63u - (unsigned)__builtin_clzll(w));
            break;
        }
        if (bit < 64)
            return false;
        bit = bit - top - 1;
    }
    md_segment_t *seg = (md_segment_t *)(bit << MD_SEGMENT_SHIFT);
    if (seg->cookie != (MD_SEGMENT_COOKIE ^ (uintptr_t)seg) || seg->kind != MD_SEG_HUGE)
        return false;
    const md_page_t *pg = &seg->pages[0];
    return a > (uintptr_t)pg->start && a < (uintptr_t)pg->start + pg->block_size;
}

// Over-aligned requests hand out p = align_up(block, A) for a power of two A, so p - block is
// below p's own alignment. Other interior pointers of such pages pass only if they happen to be
// aligned that much (probabilistic).
static bool md_aligned_pointer_plausible(uintptr_t a, uintptr_t block)
{
    return a - block < (a & (~a + 1));
}

void md_misuse_unowned(const void *p, enum md_op op)
{
    md_block_resolve(p, op);
    md_misuse(MD_NOT_OURS, p, op); // not reached: resolve reports unowned pointers
}

// The block that p designates inside a page of blocks, or a report: the precise diagnosis (with
// a division) runs only when the multiply-based check in md_block_resolve failed.
static md_block_t *md_block_in_page(md_page_t *pg, const void *p, enum md_op op)
{
    uintptr_t a = (uintptr_t)p, start = (uintptr_t)pg->start;
    if (a < start) // the segment header
        md_misuse(MD_NOT_OURS, p, op);
    size_t idx = (a - start) / pg->block_size;
    if (idx >= pg->capacity) // the slack after the page's last block
        md_misuse(MD_NOT_OURS, p, op);
    uintptr_t block = start + idx * pg->block_size;
    if (block != a &&
        (!(pg->flags & MD_PAGE_HAS_ALIGNED) || !md_aligned_pointer_plausible(a, block)))
        md_misuse(MD_INTERIOR, p, op);
    if (idx >= pg->carved) // never handed out
        md_misuse(MD_NOT_OURS, p, op);
    return (md_block_t *)block;
}

// Everything but the free mark; *huge says p is a huge block (which has no mark).
static inline __attribute__((always_inline)) md_block_t *md_block_find(const void *p, enum md_op op,
                                                                       bool *huge)
{
    uintptr_t a = (uintptr_t)p;
    if (!md_segmap_has(a - 1))
        md_misuse(md_inside_huge_block(a) ? MD_INTERIOR : MD_NOT_OURS, p, op);
    md_segment_t *seg = md_segment_of(p);
    if (seg->cookie != (MD_SEGMENT_COOKIE ^ (uintptr_t)seg))
        md_misuse_freed(p, op); // the whole segment went back to the cache: its blocks are free
    size_t slice = (a - (uintptr_t)seg) >> seg->page_shift;
    if (slice >= seg->page_count)
        md_misuse(MD_NOT_OURS, p, op);
    md_page_t *pg = md_page_head(&seg->pages[slice]);
    if (!pg->in_use || (pg->flags & MD_PAGE_UNUSED))
        md_misuse_freed(p, op); // the page went back to its segment: all its blocks were freed
    if (pg->flags & MD_PAGE_HUGE) {
        uintptr_t start = (uintptr_t)pg->start;
        if (a == start) {
            *huge = true;
            return (md_block_t *)p;
        }
        md_misuse(a > start && a < start + pg->block_size ? MD_INTERIOR : MD_NOT_OURS, p, op);
    }
    md_block_t *b = (md_block_t *)p; // usually a block start (also for remote frees)
    if (MD_UNLIKELY(md_block_index(pg, p) >= pg->carved))
        b = md_block_in_page(pg, p, op);
    *huge = false;
    return b;
}

md_block_t *md_block_locate(const void *p, enum md_op op)
{
    bool huge;
    return md_block_find(p, op, &huge);
}

void md_misuse_marked(const md_block_t *b, const void *p, enum md_op op)
{
    if (md_block_is_carved(b)) // carved, never handed out
        md_misuse(MD_NOT_OURS, p, op);
    md_misuse_freed(p, op);
}

md_block_t *md_block_resolve(const void *p, enum md_op op)
{
    bool huge;
    md_block_t *b = md_block_find(p, op, &huge);
    if (!huge)
        md_block_check_mark(b, p, op);
    return b;
}

#ifdef MDALLOC_DEBUG
// Debug build: the bytes of a free block after its link are filled with a pattern when
// it is carved or freed, and checked when it is handed out again, so a write after free (or a
// stray write into a free block) is caught at the next allocation of that block.
#define MD_POISON 0xdb
#define MD_POISON_MAX 256 // bytes per block checked, so big blocks do not make the build crawl

static size_t md_poison_len(const md_page_t *pg)
{
    size_t n = pg->block_size < MD_POISON_MAX ? pg->block_size : MD_POISON_MAX;
    return n - sizeof(md_block_t);
}

void md_debug_block_freed(const md_page_t *pg, md_block_t *b)
{
    md_assert(md_block_index(pg, b) < pg->carved);
    memset(b + 1, MD_POISON, md_poison_len(pg));
}

void md_debug_block_taken(const md_page_t *pg, md_block_t *b)
{
    if (!md_block_is_free(b))
        md_fatal("free list holds a block that is not marked free (list corrupted)", NULL);
    const uint8_t *q = (const uint8_t *)(b + 1);
    for (size_t i = 0, n = md_poison_len(pg); i < n; i++)
        if (q[i] != MD_POISON)
            md_fatal("free block modified after free (write after free?)", NULL);
}
#endif
