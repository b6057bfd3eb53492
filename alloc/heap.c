// SPDX-License-Identifier: MIT
// Heaps and threads. Every thread allocates from its own heap without locks. Heap structures are
// never unmapped: when a thread exits, its heap is collected (empty pages and segments released)
// and handed over whole to the next thread that needs one; until then remote frees keep landing
// in its inbox, and other threads' periodic maintenance drains, collects and purges it. This keeps
// every page's `heap` pointer valid forever, which is what makes the remote free safe: it pushes
// onto the inbox of whatever heap the page names, without asking whether a thread still owns it.
//
// Fork: the global locks (heap registry, segment cache) are taken before fork and released in
// both processes after it. In the child, heaps owned by threads that no longer exist may be in the
// middle of an update, so they are marked orphan and never reused nor drained; remote frees into
// them stay safe because handing a node over is a single atomic push (the blocks, and the nodes
// pushed onto orphan inboxes, leak in the child).
#include "md_internal.h"
#include "prim.h"

__thread md_heap_t *md_tls_heap __attribute__((tls_model("initial-exec")));
__thread bool md_tls_exited __attribute__((tls_model("initial-exec")));

static md_lock_t md_heap_lock;
static md_heap_t *md_heap_registry;
static md_heap_t *md_heap_abandoned;
static uint8_t *md_meta_next, *md_meta_end;
// One thread at a time collects abandoned heaps, which are off the list meanwhile; a thread that
// needs a heap then sleeps on this word until one is back (md_heap_take).
enum { MD_COLLECT_IDLE, MD_COLLECT_BUSY, MD_COLLECT_WAITED_FOR };
static _Atomic int md_abandoned_busy;
static unsigned md_collect_round, md_collect_round_given_up; // under md_heap_lock

#define MD_META_CHUNK ((size_t)256 * 1024)

// Heap structures come from their own small mappings (never from a segment).
static md_heap_t *md_heap_new(void)
{
    size_t sz = md_align_up(sizeof(md_heap_t), 64);
    if ((size_t)(md_meta_end - md_meta_next) < sz) {
        uint8_t *chunk = md_prim_mmap(NULL, MD_META_CHUNK);
        if (chunk == NULL)
            return NULL;
        md_stat_commit((int64_t)MD_META_CHUNK);
        md_meta_next = chunk;
        md_meta_end = chunk + MD_META_CHUNK;
    }
    md_heap_t *h = (md_heap_t *)md_meta_next; // fresh mapping: all zero
    md_meta_next += sz;
    h->purge_delay_ms = md_options.purge_delay_min_ms;
    for (size_t i = 0; i < MD_DIRECT_SLOTS; i++)
        h->direct[i] = &md_page_empty;
    h->registry_next = md_heap_registry;
    md_heap_registry = h;
    md_stat_add(&md_stats.heaps_created);
    return h;
}

// Take an abandoned heap, or make a new one when there is none. While another thread collects
// abandoned heaps they are off the list; a new heap made then would be one more heap for good
// (each keeps its own segments), so sleep until one is back (the collector puts them back one at
// a time, an exiting thread adds its own): thread creation is rare enough for the wait. A count
// of 1000 yields was too short where the collector's CPU was taken away (a loaded host, a virtual
// CPU not running): one more heap about one run in a hundred. The wait is bounded in time, 200 ms
// from when it began or from when a new collection began meanwhile (once), and in sleeps that
// ran out, should the clock not advance: a collector that cannot run (stopped by a debugger, left
// with siglongjmp) must not keep every new thread from starting; then one more heap it is, and no
// thread waits for that same collection again.
#define MD_ADOPT_WAIT_MS 200
#define MD_ADOPT_SLEEPS 16

// Under md_heap_lock, with no abandoned heap: should the caller wait for the collector?
static bool md_heap_wait_announced(void)
{
    // The forking thread holds the lock the collector needs to put a heap back.
    if (md_tls_holds_fork_locks || md_collect_round_given_up == md_collect_round)
        return false;
    int busy = MD_COLLECT_BUSY;
    return atomic_compare_exchange_strong(&md_abandoned_busy, &busy, MD_COLLECT_WAITED_FOR) ||
           busy == MD_COLLECT_WAITED_FOR;
}

// Under md_heap_lock: a heap went back on the list; true when a thread sleeps in md_heap_take and
// must be woken (after the lock is released). The word changes, so that a waiter between its
// unlock and its sleep does not sleep.
static bool md_heap_waiter_to_wake(void)
{
    int waited_for = MD_COLLECT_WAITED_FOR;
    return atomic_compare_exchange_strong(&md_abandoned_busy, &waited_for, MD_COLLECT_BUSY);
}

// The waiter's deadline, under md_heap_lock: set when the wait begins, moved once when another
// collection began meanwhile. False when the wait is over (the collection is given up on).
struct md_adopt_wait {
    uint64_t deadline;
    unsigned round, sleeps;
    bool moved;
};

static bool md_adopt_wait_goes_on(struct md_adopt_wait *w, uint64_t now)
{
    if (w->deadline == 0 || (w->round != md_collect_round && !w->moved)) {
        w->moved = w->deadline != 0;
        w->deadline = now + MD_ADOPT_WAIT_MS;
        w->round = md_collect_round;
    }
    if (now < w->deadline && w->sleeps < MD_ADOPT_SLEEPS)
        return true;
    md_collect_round_given_up = md_collect_round;
    return false;
}

static md_heap_t *md_heap_take(void)
{
    struct md_adopt_wait w = {0};
    for (;;) {
        md_lock_acquire(&md_heap_lock);
        md_heap_t *h = md_heap_abandoned;
        bool announced = h == NULL && md_heap_wait_announced();
        uint64_t now = announced ? md_now_ms() : 0;
        bool wait = announced && md_adopt_wait_goes_on(&w, now);
        if (h != NULL)
            md_heap_abandoned = h->abandoned_next;
        else if (!wait)
            h = md_heap_new();
        if (h != NULL) {
            h->abandoned_next = NULL;
            h->state = MD_HEAP_ACTIVE;
        }
        md_lock_release(&md_heap_lock);
        if (announced && !wait) // given up: the other waiters stop waiting for it too
            md_prim_wake_all(&md_abandoned_busy);
        if (!wait)
            return h;
        // only a sleep that ran out counts: waking for a heap another waiter took costs nothing
        if (md_prim_wait(&md_abandoned_busy, MD_COLLECT_WAITED_FOR, (uint32_t)(w.deadline - now)))
            w.sleeps++;
    }
}

// The calling thread has no heap yet: adopt an abandoned one or make a new one.
md_heap_t *md_heap_get_slow(void)
{
    if (atomic_load_explicit(&md_process_ready, memory_order_acquire) != 2)
        md_process_init();
    md_heap_t *h = md_heap_take();
    if (h == NULL)
        return NULL;
    md_tls_heap = h;
    // After the thread's exit hook ran, a binding could make the TSD machinery run the hook a
    // second time on the same heap; the caller gives the heap back itself (md_heap_give_back).
    if (!md_tls_exited)
        md_glue_thread_bind(h);
    md_heap_drain(h); // an adopted heap: what other threads freed into it since it was collected
    return h;
}

static void md_heap_maintain_segments(md_heap_t *h, uint64_t now, bool idle)
{
    md_segment_t *seg = h->segments;
    while (seg != NULL) {
        md_segment_t *next = seg->next;
        md_segment_maintain(h, seg, now, idle);
        seg = next;
    }
}

// Called by the glue when a thread exits.
void md_heap_thread_exit(md_heap_t *h)
{
    if (md_tls_heap == h) {
        md_tls_heap = NULL;
        md_tls_exited = true;
    }
    md_heap_flush_remote(h);
    md_heap_collect(h, true);
    md_heap_maintain_segments(h, md_now_ms(), true);
    md_lock_acquire(&md_heap_lock);
    h->state = MD_HEAP_ABANDONED;
    h->abandoned_next = md_heap_abandoned;
    md_heap_abandoned = h;
    bool wake = md_heap_waiter_to_wake();
    md_lock_release(&md_heap_lock);
    if (wake)
        md_prim_wake_all(&md_abandoned_busy);
}

// For calls that need the process set up but no heap of their own (huge blocks): as
// md_heap_get_slow, except after the thread's exit hook, when no heap is taken at all.
bool md_heap_ready(void)
{
    if (!md_tls_exited)
        return md_heap_get_slow() != NULL;
    if (atomic_load_explicit(&md_process_ready, memory_order_acquire) != 2)
        md_process_init();
    return true;
}

// A call that took a heap with md_heap_get_slow returns it here when its thread had already run
// its exit hook: glibc frees the dlerror buffer and the resolver state after the TSD destructors,
// and a heap adopted then would stay bound to a thread that is gone, never collected again.
void md_heap_give_back(md_heap_t *h, bool borrowed)
{
    if (MD_UNLIKELY(borrowed)) {
        md_stat_add(&md_stats.calls_after_thread_exit);
        md_heap_thread_exit(h);
    }
}

// Under md_heap_lock: the collector still runs (MD_COLLECT_BUSY) or is done (MD_COLLECT_IDLE);
// true when a thread sleeps in md_heap_take and must be woken.
static bool md_heap_collect_state(int state)
{
    return atomic_exchange(&md_abandoned_busy, state) == MD_COLLECT_WAITED_FOR;
}

// Collect and purge heaps whose threads exited, so memory freed into them by other threads is
// reused or returned even if no new thread comes to adopt them. Each is taken off the list while
// it is collected, which gives this thread exclusive access, and put back right after; a thread
// that needs a heap meanwhile waits for it (md_heap_take).
static void md_heap_collect_abandoned(uint64_t now)
{
    int expected = MD_COLLECT_IDLE;
    if (!atomic_compare_exchange_strong(&md_abandoned_busy, &expected, MD_COLLECT_BUSY))
        return;
    md_lock_acquire(&md_heap_lock);
    md_collect_round++;
    md_heap_t *list = md_heap_abandoned;
    md_heap_abandoned = NULL;
    bool wake = list == NULL && md_heap_collect_state(MD_COLLECT_IDLE);
    md_lock_release(&md_heap_lock);
    if (wake)
        md_prim_wake_all(&md_abandoned_busy);
    while (list != NULL) {
        md_heap_t *h = list;
        list = h->abandoned_next;
        md_heap_collect(h, true);
        md_heap_maintain_segments(h, now, true);
        md_lock_acquire(&md_heap_lock);
        h->abandoned_next = md_heap_abandoned;
        md_heap_abandoned = h;
        wake = md_heap_collect_state(list != NULL ? MD_COLLECT_BUSY : MD_COLLECT_IDLE);
        md_lock_release(&md_heap_lock);
        if (wake)
            md_prim_wake_all(&md_abandoned_busy);
    }
}

// A slice this heap purged was needed again sooner than the longest purge delay: the madvise and
// the page faults that refill it were wasted, and a program that reuses its memory on that rhythm
// would do it again and again (a madvise storm). Wait twice as long from now on. A heap that only
// grows and shrinks now and then (a phase that builds and drops a big structure) keeps the short
// delay and gives memory back early.
void md_heap_purge_backoff(md_heap_t *h)
{
    uint32_t longer = h->purge_delay_ms ? 2 * h->purge_delay_ms : 1;
    h->purge_delay_ms = longer < md_options.purge_delay_ms ? longer : md_options.purge_delay_ms;
}

// Deferred work, at most twice per purge delay: purge pages and cached segments that stayed free
// long enough, and look after abandoned heaps.
void md_heap_maintain(md_heap_t *h)
{
    uint64_t now = md_now_ms();
    if (now < h->next_maintenance_ms)
        return;
    uint32_t period = h->purge_delay_ms / 2;
    h->next_maintenance_ms = now + (period ? period : 1);
    md_heap_flush_remote(h);
    md_heap_maintain_segments(h, now, false);
    md_cache_maintain(now);
    if (md_heap_abandoned != NULL)
        md_heap_collect_abandoned(now);
}

// A mapping failed: give back what is free but still held, so the caller's retry can succeed.
// The calling thread's heap (only its owner may touch it) releases its empty pages and segments;
// abandoned heaps are collected as maintenance does (one collector at a time); then every cached
// mapping is unmapped. Other threads' heaps are theirs: their empty segments reach the cache with
// their own maintenance.
void md_heap_reclaim(void)
{
    uint64_t now = md_now_ms();
    md_heap_t *h = md_tls_heap;
    if (h != NULL) {
        md_heap_collect(h, true);
        md_heap_maintain_segments(h, now, true);
    }
    if (md_heap_abandoned != NULL)
        md_heap_collect_abandoned(now);
    md_cache_release_all();
}

// malloc_trim(3): what a failed mapping gives back (md_heap_reclaim), on the program's request,
// after the blocks other threads freed to this heap, and the free pages of the segments it keeps,
// without waiting for the purge delay; true when memory went back to the system (an munmap or
// madvise: slices never touched since they were mapped leave the committed count without one,
// and a process holds no less for it). Other threads' heaps are theirs: their own maintenance
// gives back what they freed.
bool md_heap_trim(void)
{
    uint64_t released = atomic_load(&md_stats.munmap_calls) + atomic_load(&md_stats.madvise_calls);
    md_heap_t *h = md_tls_heap;
    if (h != NULL)
        md_heap_flush_remote(h);
    md_heap_reclaim();
    for (md_segment_t *seg = h != NULL ? h->segments : NULL; seg != NULL; seg = seg->next)
        md_segment_purge_free(seg);
    return atomic_load(&md_stats.munmap_calls) + atomic_load(&md_stats.madvise_calls) > released;
}

void md_heaps_foreach(void (*fn)(md_heap_t *, void *), void *arg)
{
    md_lock_acquire(&md_heap_lock);
    for (md_heap_t *h = md_heap_registry; h != NULL; h = h->registry_next)
        fn(h, arg);
    md_lock_release(&md_heap_lock);
}

void md_fork_prepare(void)
{
    md_lock_acquire(&md_heap_lock);
    md_segment_fork_prepare();
    md_tls_holds_fork_locks = true; // see md_lock_release
}

void md_fork_parent(void)
{
    md_tls_holds_fork_locks = false;
    md_segment_fork_parent();
    md_lock_release(&md_heap_lock);
}

void md_fork_child(void)
{
    md_tls_holds_fork_locks = false;
    md_process_fork_child();
    md_thread_fork_child();
    md_segment_fork_child();
    md_lock_reset(&md_heap_lock);
    atomic_store(&md_abandoned_busy, MD_COLLECT_IDLE);
    for (md_heap_t *h = md_heap_registry; h != NULL; h = h->registry_next)
        if (h != md_tls_heap && h->state == MD_HEAP_ACTIVE)
            h->state = MD_HEAP_ORPHAN;
}
