// SPDX-License-Identifier: MIT
// Process-wide state: options from the environment, the verbose banner, statistics and the
// messages mdalloc prints. Output never allocates (it formats into stack buffers and writes
// through prim).
#include "md_internal.h"
#include "prim.h"

#include <stdlib.h>
#include <string.h>

md_options_t md_options = {
    .verbose = 0,
    .stats = 0,
    .purge_delay_ms = 1000,
    .purge_delay_min_ms = 5,
    .cache_max = 128,
};
md_stats_t md_stats;
// Where the statistics go. They are printed at exit, from a destructor, after many programs have
// closed fd 2 (coreutils' close_stdout does, in sort and ls) or made it another file. Before,
// mdalloc kept a close-on-exec duplicate of stderr for them (at fd 1000, earlier at 100), but any
// descriptor the allocator holds is one the program can see and collide with: bash takes a
// close-on-exec descriptor for one of its own, so `exec 1000>file` left mdalloc's copy there and
// `echo x >&1000` went to stderr. Now none is held: the file of fd 2 is recorded at initialisation
// (device and inode, and the path of a regular file or terminal), and at exit the counters go to
// fd 2 if it is still that file, else to that file opened again by its path, else nowhere
// (writing into a file of the program's would change its output).
static bool md_stats_known; // fd 2 was open when the options were read
static uint64_t md_stats_dev, md_stats_ino;
static char md_stats_path[4096]; // empty: stderr cannot be opened again (a pipe, a socket)
_Atomic int md_process_ready;    // 0: not yet, 1: someone initialising, 2: done

// The string that identifies mdalloc inside a (possibly stripped) binary.
__attribute__((used)) static const char md_ident[] = "mdalloc: version " MD_VERSION;

uint64_t md_now_ms(void)
{
    return md_prim_clock_ms();
}

__thread bool md_tls_holds_fork_locks __attribute__((tls_model("initial-exec")));

void md_lock_acquire(md_lock_t *l)
{
    if (MD_UNLIKELY(md_tls_holds_fork_locks))
        return;
    for (unsigned spins = 0;; spins++) {
        if (!atomic_exchange_explicit(&l->locked, 1, memory_order_acquire))
            return;
        while (atomic_load_explicit(&l->locked, memory_order_relaxed)) {
            if (++spins > 64)
                md_prim_yield();
        }
    }
}

void md_print(const char *s)
{
    md_prim_write_stderr(s, strlen(s));
}

static char *md_fmt_u64(char *out, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *out++ = tmp[--n];
    *out = 0;
    return out;
}

static char *md_append(char *out, const char *s)
{
    while (*s)
        *out++ = *s++;
    *out = 0;
    return out;
}

void md_fatal(const char *msg, const char *detail)
{
    char buf[512];
    char *p = md_append(buf, "mdalloc: ");
    size_t room = sizeof(buf) - 32;
    if (strlen(msg) < room) {
        p = md_append(p, msg);
        room -= strlen(msg);
    }
    if (detail != NULL && strlen(detail) < room) {
        p = md_append(p, " (");
        p = md_append(p, detail);
        p = md_append(p, ")");
    }
    md_append(p, "\n");
    md_print(buf);
    abort();
}

// A bad value is reported and ignored (the default stays), never silently misread: a typo in an
// option must not look like a run with the option set.
static void md_env_warn(const char *name, const char *value, const char *why)
{
    char buf[256];
    char *p = md_append(buf, "mdalloc: ");
    p = md_append(p, name);
    p = md_append(p, "=");
    if (strlen(value) < 64)
        p = md_append(p, value);
    else
        p = md_append(p, "...");
    p = md_append(p, ": ");
    p = md_append(p, why);
    md_append(p, "\n");
    md_print(buf);
}

// A number of digits only, at most `max` (a bigger one is clamped to `max` with a warning).
static uint32_t md_env_u32(const char *name, uint32_t dflt, uint32_t max)
{
    const char *s = md_prim_getenv(name);
    if (s == NULL || *s == 0) // set empty: as if unset
        return dflt;
    uint64_t v = 0;
    const char *d = s;
    for (; *d >= '0' && *d <= '9'; d++)
        if (v <= max)
            v = v * 10 + (uint64_t)(*d - '0');
    if (d == s || *d != 0) {
        md_env_warn(name, s, "not a number, ignored");
        return dflt;
    }
    if (v > max) {
        char why[64];
        md_fmt_u64(md_append(why, "too large, using the maximum "), max);
        md_env_warn(name, s, why);
        return max;
    }
    return (uint32_t)v;
}

// ASCII case-insensitive equality (strcasecmp would be one more libc member pulled into musl's
// libc.a; see programs.bats).
static bool md_word_eq(const char *s, const char *word)
{
    for (; *word != 0; s++, word++)
        if ((*s >= 'A' && *s <= 'Z' ? *s - 'A' + 'a' : *s) != *word)
            return false;
    return *s == 0;
}

// On/off options: 1/yes/true/on or 0/no/false/off, in any case.
static int md_env_bool(const char *name)
{
    static const char *const words[] = {"0", "no", "false", "off", "1", "yes", "true", "on"};
    const char *s = md_prim_getenv(name);
    if (s == NULL || *s == 0)
        return 0;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (md_word_eq(s, words[i]))
            return i >= 4;
    md_env_warn(name, s, "not 1/yes/true/on or 0/no/false/off, ignored");
    return 0;
}

static void md_print_banner(void)
{
    char buf[256];
    char *p = md_append(buf, "mdalloc: version " MD_VERSION " (");
    p = md_append(p, md_glue_target);
#ifdef MDALLOC_DEBUG
    p = md_append(p, ", debug");
#endif
    p = md_append(p, ") purge_delay_ms=");
    p = md_fmt_u64(p, md_options.purge_delay_min_ms);
    p = md_append(p, "..");
    p = md_fmt_u64(p, md_options.purge_delay_ms);
    p = md_append(p, " cache_segments=");
    p = md_fmt_u64(p, md_options.cache_max);
    p = md_append(p, " stats=");
    p = md_fmt_u64(p, (uint64_t)md_options.stats);
    md_append(p, "\n");
    md_print(buf);
}

void md_process_init(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&md_process_ready, &expected, 1)) {
        while (atomic_load_explicit(&md_process_ready, memory_order_acquire) != 2)
            md_prim_yield();
        return;
    }
    md_check_init();
    md_options.verbose = md_env_bool("MDALLOC_VERBOSE");
    md_options.stats = md_env_bool("MDALLOC_STATS");
    if (md_options.stats) {
        md_stats_known = md_prim_fd_identity(2, &md_stats_dev, &md_stats_ino);
        if (md_stats_known && !md_prim_fd_path(2, md_stats_path, sizeof md_stats_path))
            md_stats_path[0] = 0;
    }
    md_options.purge_delay_ms =
        md_env_u32("MDALLOC_PURGE_DELAY", md_options.purge_delay_ms, 0xffffffffu);
    md_options.purge_delay_min_ms =
        md_env_u32("MDALLOC_PURGE_DELAY_MIN", md_options.purge_delay_min_ms, 0xffffffffu);
    if (md_options.purge_delay_min_ms > md_options.purge_delay_ms)
        md_options.purge_delay_min_ms = md_options.purge_delay_ms;
    // The cache has MD_CACHE_SLOTS slots: a bigger number would be shown but never hold.
    md_options.cache_max =
        md_env_u32("MDALLOC_CACHE_SEGMENTS", md_options.cache_max, MD_CACHE_SLOTS);
    md_cache_init();
    if (md_options.verbose)
        md_print_banner();
    atomic_store_explicit(&md_process_ready, 2, memory_order_release);
}

// In a forked child: the same for process initialisation interrupted by the fork (no block exists
// before it completes, so running it again is safe).
void md_process_fork_child(void)
{
    int initialising = 1;
    atomic_compare_exchange_strong(&md_process_ready, &initialising, 0);
}

void md_stat_commit(int64_t delta)
{
    int64_t now = atomic_fetch_add_explicit(&md_stats.committed, delta, memory_order_relaxed);
    now += delta;
    int64_t peak = atomic_load_explicit(&md_stats.committed_peak, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak_explicit(&md_stats.committed_peak, &peak, now,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

void md_stat_map(int64_t delta)
{
    int64_t now = atomic_fetch_add_explicit(&md_stats.mapped, delta, memory_order_relaxed);
    now += delta;
    int64_t peak = atomic_load_explicit(&md_stats.mapped_peak, memory_order_relaxed);
    while (now > peak &&
           !atomic_compare_exchange_weak_explicit(&md_stats.mapped_peak, &peak, now,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

static void md_sum_class_pages(md_heap_t *h, void *arg)
{
    uint64_t *sum = arg;
    for (size_t i = 0; i < MD_CLASS_COUNT; i++)
        sum[i] += h->class_pages[i];
}

static void md_print_counter(int fd, const char *name, uint64_t v)
{
    char buf[96];
    char *p = md_append(buf, "mdalloc: stats: ");
    p = md_append(p, name);
    p = md_append(p, " ");
    p = md_fmt_u64(p, v);
    p = md_append(p, "\n");
    md_prim_write_fd(fd, buf, (size_t)(p - buf));
}

static bool md_stats_file_at(int fd)
{
    uint64_t dev, ino;
    return md_prim_fd_identity(fd, &dev, &ino) && dev == md_stats_dev && ino == md_stats_ino;
}

void md_print_stats(void)
{
    if (!md_stats_known)
        return;
    if (md_stats_file_at(2)) {
        md_print_stats_to(2);
        return;
    }
    // The path may name another file by now, and opening one can act on it (a tape device
    // rewinds, a read lease breaks): it is checked before the open, and again on what was opened
    // (it can change in between).
    uint64_t dev, ino;
    bool same = md_stats_path[0] && md_prim_path_identity(md_stats_path, &dev, &ino) &&
                dev == md_stats_dev && ino == md_stats_ino;
    int fd = same ? md_prim_open_append(md_stats_path) : -1;
    if (fd >= 0 && md_stats_file_at(fd))
        md_print_stats_to(fd);
    if (fd >= 0)
        md_prim_close(fd);
}

void md_print_stats_to(int fd)
{
    md_print_counter(fd, "mmap_calls", atomic_load(&md_stats.mmap_calls));
    md_print_counter(fd, "munmap_calls", atomic_load(&md_stats.munmap_calls));
    md_print_counter(fd, "madvise_calls", atomic_load(&md_stats.madvise_calls));
    md_print_counter(fd, "peak_committed_bytes", (uint64_t)atomic_load(&md_stats.committed_peak));
    md_print_counter(fd, "peak_mapped_bytes", (uint64_t)atomic_load(&md_stats.mapped_peak));
    md_print_counter(fd, "huge_allocs", atomic_load(&md_stats.huge_allocs));
    md_print_counter(fd, "segments_reused", atomic_load(&md_stats.segments_reused));
    md_print_counter(fd, "heaps_created", atomic_load(&md_stats.heaps_created));
    md_print_counter(fd, "calls_after_thread_exit", atomic_load(&md_stats.calls_after_thread_exit));
    md_print_counter(fd, "remote_free_node_mappings", atomic_load(&md_stats.rnode_chunks));
    uint64_t pages[MD_CLASS_COUNT] = {0};
    md_heaps_foreach(md_sum_class_pages, pages);
    for (size_t i = 0; i < MD_CLASS_COUNT; i++) {
        if (pages[i] == 0)
            continue;
        char buf[96];
        char *p = md_append(buf, "mdalloc: stats: class ");
        p = md_fmt_u64(p, i);
        p = md_append(p, " size ");
        p = md_fmt_u64(p, md_class_size[i]);
        p = md_append(p, " pages_set_up ");
        p = md_fmt_u64(p, pages[i]);
        p = md_append(p, "\n");
        md_prim_write_fd(fd, buf, (size_t)(p - buf));
    }
}

__attribute__((destructor)) static void md_process_done(void)
{
    if (md_options.stats)
        md_print_stats();
}
