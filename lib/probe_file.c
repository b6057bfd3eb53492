// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/probe_file.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/tempfile.h"

// How long to watch the tick counter against the clock to set the slow-call threshold; the final
// conversion uses the whole run as its baseline.
#define MD_CALIBRATION_NS 2000000
// What the rate's error bound adds for a change of the counter's rate against the clock during
// the run, which two clock pairs cannot see. The kernel steers CLOCK_MONOTONIC's rate: NTP's
// frequency trim moves by a few ppm between polls, seconds apart (10 ppm: 40 ns over a 4 ms call,
// one that was preempted, where the guess this replaced, 1/1024 of every duration, gave 4 us and
// took the program's own syscalls just before such a call for the call's); an offset being
// slewed in (the kernel's PLL, adjtime()) moves it by up to 500 ppm; and a daemon that slews
// through the frequency or the tick length (chrony, up to 83,333 ppm) shows as a change of
// those between the run's start and end (md_clock_rate_error).
#define MD_TICK_RATE_DRIFT 1e-5
#define MD_TICK_RATE_SLEW 500e-6
// The bound when the clock pairs or the kernel's discipline cannot be read: the old guess.
#define MD_TICK_RATE_UNKNOWN (1.0 / 1024)

// Tick rates are measured against the monotonic clock: a step of the wall clock (NTP, an
// administrator) between two readings would make the rate, and the slow-call threshold, absurd.
static uint64_t monotonic_ns(void)
{
    return md_clock_ns(CLOCK_MONOTONIC);
}

// The tick counter and the monotonic clock at one instant: of 8 readings (ticks, monotonic,
// ticks), the one whose two tick reads are closest. A stall between separate reads (an
// interrupt, a VM exit: microseconds here) would skew the rate by that much over the
// calibration interval, and a slow call's start (its end minus its duration) with it.
// Returns the two tick reads' gap: the pair's uncertainty, in ticks.
static uint64_t tick_pair(uint64_t *ticks, uint64_t *mono)
{
    uint64_t best_gap = UINT64_MAX;
    for (int i = 0; i < 8; i++) {
        uint64_t t0 = md_probe_ticks(), m = monotonic_ns(), t1 = md_probe_ticks();
        if (t1 < t0 || t1 - t0 >= best_gap)
            continue;
        best_gap = t1 - t0;
        *ticks = t0 + (t1 - t0) / 2;
        *mono = m;
    }
    if (best_gap == UINT64_MAX) { // the counter never moved forward within a reading
        *ticks = md_probe_ticks();
        *mono = monotonic_ns();
    }
    return best_gap; // UINT64_MAX: not known
}

void md_clock_discipline_read(struct md_clock_discipline *d)
{
    struct timex now = {.modes = 0}, single = {.modes = ADJ_OFFSET_SS_READ}; // read only
    d->known = adjtimex(&now) >= 0 && adjtimex(&single) >= 0;
    d->freq = now.freq;
    d->tick = now.tick;
    // the PLL pulls an offset in, or adjtime()'s single-shot offset is left to slew
    d->slewing = ((now.status & STA_PLL) && now.offset != 0) || single.offset != 0;
}

double md_clock_rate_error(const struct md_clock_discipline *a, const struct md_clock_discipline *b)
{
    if (!a->known || !b->known || a->tick <= 0)
        return MD_TICK_RATE_UNKNOWN;
    double freq = fabs((double)(b->freq - a->freq)) / 65536 / 1e6; // ppm with 16 fraction bits
    double tick = fabs((double)(b->tick - a->tick)) / (double)a->tick;
    return MD_TICK_RATE_DRIFT + freq + tick + (a->slewing || b->slewing ? MD_TICK_RATE_SLEW : 0);
}

// The rate's relative error measured between two pairs: each pair's ticks are off by at most
// half its gap, and the clock's nanoseconds by its own resolution (1 ns), over dn; plus what the
// kernel's clock discipline may have changed in between.
static double rate_error(uint64_t gap_a, uint64_t gap_b, double rate, uint64_t dn,
                         const struct md_clock_discipline *a, const struct md_clock_discipline *b)
{
    if (gap_a == UINT64_MAX || gap_b == UINT64_MAX)
        return MD_TICK_RATE_UNKNOWN;
    return ((double)(gap_a + gap_b) / 2 / rate + 2) / (double)dn + md_clock_rate_error(a, b);
}

#define MD_PROBE_FILE_PREFIX "malloc-doctor-probe"

// In /dev/shm when possible (no disk behind the program's counters). Files left by runs that
// were killed are removed first (lib/tempfile.h).
static int make_file(struct md_probe_file *pf, struct md_error *err)
{
    const char *dirs[] = {"/dev/shm", md_temp_dir(), "/tmp"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        md_temp_sweep(dirs[i], MD_PROBE_FILE_PREFIX, MD_TEMP_ORPHAN_SECONDS);
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        int fd = md_temp_create(dirs[i], MD_PROBE_FILE_PREFIX, pf->path, sizeof pf->path, err);
        if (fd >= 0)
            return fd;
    }
    char why[sizeof err->msg];
    snprintf(why, sizeof why, "%s", err->msg);
    return md_fail(err, "cannot create the probe file in /dev/shm or %s (%s)", md_temp_dir(), why);
}

// The tool's pid namespace, whose pids strace and perf give (alloc/probe_shared.h); left 0
// without /proc.
static void note_pid_namespace(struct md_probe_header *h)
{
    struct stat st;
    h->tool_pid = (int32_t)getpid();
    if (stat("/proc/self/ns/pid", &st))
        return;
    h->tool_pidns_dev = (uint64_t)st.st_dev;
    h->tool_pidns_ino = (uint64_t)st.st_ino;
}

// The lowest descriptor the shared one may take: far above the numbers programs pick for
// themselves (shells move theirs to 10 and up, bash's script is 255), so that a program that
// dup2()s to a fixed number does not replace it by chance (the probe checks it anyway).
#define MD_SHARE_FD_MIN 1000

// Opens the descriptor the program's processes inherit (see share_fd). Without it (descriptors
// exhausted) only processes that can open the path are counted, as before.
static void open_share_fd(struct md_probe_file *pf)
{
    struct stat st;
    pf->share_fd = -1;
    int fd = open(pf->path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return;
    int high = fcntl(fd, F_DUPFD, MD_SHARE_FD_MIN); // without FD_CLOEXEC: it survives exec
    if (high < 0)
        high = fcntl(fd, F_DUPFD, 3); // a lower RLIMIT_NOFILE
    close(fd);
    if (high < 0 || fstat(high, &st)) {
        if (high >= 0)
            close(high);
        return;
    }
    pf->share_fd = high;
    snprintf(pf->share_env, sizeof pf->share_env, "%s=%d %llu %llu", MD_PROBE_FD_ENV, high,
             (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
}

int md_probe_file_create(struct md_probe_file *pf, uint64_t slow_threshold_ns, uint32_t flags,
                         struct md_error *err)
{
    memset(pf, 0, sizeof *pf);
    pf->share_fd = -1;
    struct md_probe_header layout = {
        .slot_count = MD_PROBE_SLOTS,
        .slow_max = MD_PROBE_SLOW_MAX,
        .object_max = flags & (MD_PROBE_WANT_STACKS | MD_PROBE_WANT_LEAKS) ? MD_PROBE_OBJECTS : 0,
        .stack_max = flags & (MD_PROBE_WANT_STACKS | MD_PROBE_WANT_LEAKS) ? MD_PROBE_STACKS : 0,
        .live_max = flags & MD_PROBE_WANT_LEAKS ? MD_PROBE_LIVE : 0,
    };
    int fd = make_file(pf, err);
    if (fd < 0)
        return -1;
    pf->size = md_probe_file_size(&layout);
    pf->lock_fd = fd;
    void *map = MAP_FAILED;
    if (ftruncate(fd, (off_t)pf->size) || // sparse: only touched pages take memory
        (map = mmap(NULL, pf->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        md_fail_errno(err, errno, "%s", pf->path);
        md_probe_file_close(pf);
        return -1;
    }
    struct md_probe_header *h = pf->header = map;
    *h = layout;
    h->version = MD_PROBE_VERSION;
    h->flags = flags;
    note_pid_namespace(h);
    open_share_fd(pf);
    bool fits = md_probe_view_init(&pf->view, h, pf->size);
    assert(fits); // the maxima it checks are the sizes above
    (void)fits;
    pf->slow_threshold_ns = slow_threshold_ns;
    pf->open_gap = tick_pair(&pf->open_ticks, &pf->open_monotonic_ns);
    md_clock_discipline_read(&pf->open_clock);
    return 0;
}

// The tick rate is measured from the pair taken at creation, so that the calibration interval
// overlaps the work between creation and the start of the program (the ptrace check, the fork)
// instead of being a 2 ms busy wait of its own; the wait here is only what is left of it.
void md_probe_file_arm(struct md_probe_file *pf)
{
    struct md_probe_header *h = pf->header;
    while (monotonic_ns() - pf->open_monotonic_ns < MD_CALIBRATION_NS)
        ;
    pf->cal_gap = tick_pair(&pf->cal_ticks, &pf->cal_monotonic_ns);
    uint64_t dn = pf->cal_monotonic_ns - pf->open_monotonic_ns;
    double rate = (double)(pf->cal_ticks - pf->open_ticks) / (double)dn;
    h->slow_threshold_ticks = (uint64_t)((double)pf->slow_threshold_ns * rate);
    pf->ticks_per_ns = rate;
    md_clock_discipline_read(&pf->cal_clock);
    pf->ticks_rate_error =
        rate_error(pf->open_gap, pf->cal_gap, rate, dn, &pf->open_clock, &pf->cal_clock);
    atomic_thread_fence(memory_order_release);
    h->magic = MD_PROBE_MAGIC; // last: a probe that sees the magic sees everything else
}

void md_probe_file_finish(struct md_probe_file *pf)
{
    uint64_t ticks, mono;
    uint64_t gap = tick_pair(&ticks, &mono);
    uint64_t dt = ticks - pf->cal_ticks, dn = mono - pf->cal_monotonic_ns;
    if (dn > MD_CALIBRATION_NS && ticks > pf->cal_ticks) {
        pf->ticks_per_ns = (double)dt / (double)dn;
        struct md_clock_discipline end;
        md_clock_discipline_read(&end);
        pf->ticks_rate_error =
            rate_error(pf->cal_gap, gap, pf->ticks_per_ns, dn, &pf->cal_clock, &end);
    }
}

bool md_probe_file_intact(const struct md_probe_file *pf)
{
    struct stat st;
    // the size first: reading the header of a shortened file would fault; then the geometry a
    // probe that attached later would have found its tables by
    return !fstat(pf->lock_fd, &st) && st.st_size >= (off_t)pf->size &&
           pf->header->version == MD_PROBE_VERSION && md_probe_view_current(&pf->view);
}

bool md_probe_file_resident_kb(const struct md_probe_file *pf, uint64_t *kb)
{
    struct stat st;
    if (fstat(pf->lock_fd, &st) || st.st_blocks < 0)
        return false;
    *kb = (uint64_t)st.st_blocks / 2; // in 512-byte units, whatever the file system's block
    return true;
}

uint64_t md_probe_ticks_to_ns_bound(const struct md_probe_file *pf, uint64_t ticks)
{
    // a call that moved to a CPU whose counter lags shows as huge: cap it, it is slow anyway
    double ns = (double)ticks / pf->ticks_per_ns * (1 + pf->ticks_rate_error);
    return ns < 1e9 ? (uint64_t)ns + 1 : 1000000000u;
}

bool md_probe_file_data_run(const struct md_probe_file *pf, const void *table, size_t entry_size,
                            size_t count, size_t from, size_t *first, size_t *end)
{
    if (!entry_size)
        return false;
    off_t base = (const char *)table - (const char *)pf->header;
    while (from < count) {
        off_t at = base + (off_t)(from * entry_size), limit = base + (off_t)(count * entry_size);
        off_t data = lseek(pf->lock_fd, at, SEEK_DATA);
        if (data < 0 && errno == ENXIO) // no data after at
            return false;
        if (data < 0) { // no word on holes: every entry may hold data
            *first = from;
            *end = count;
            return true;
        }
        if (data >= limit)
            return false;
        off_t hole = lseek(pf->lock_fd, data, SEEK_HOLE);
        if (hole < 0 || hole > limit)
            hole = limit;
        // the entries that start on data (see the header), including the one that straddles
        // the run's end
        size_t start = ((size_t)(data - base) + entry_size - 1) / entry_size;
        *first = start > from ? start : from;
        *end = ((size_t)(hole - base) + entry_size - 1) / entry_size;
        *end = *end < count ? *end : count;
        if (*first < *end)
            return true;
        from = *end > from ? *end : from + 1; // a run too short to hold an entry's start
    }
    return false;
}

// The probe notes a mapping after the syscalls that made it; the slack covers the error of the
// recorder's clock against CLOCK_REALTIME (perf's timestamps are converted).
#define MD_OWN_MAP_SLACK_NS 1000000
// and not long before: the loader maps the probe's library, then loads and relocates the other
// libraries before the probe's constructor runs and notes it (tens of milliseconds for a large
// program under strace). Earlier events in the range belong to an image the thread had before
// an exec.
#define MD_OWN_MAP_LEAD_NS 10000000000ull

static int by_tid(const void *a, const void *b)
{
    const struct md_probe_own_map *x = a, *y = b;
    return (x->tid > y->tid) - (x->tid < y->tid);
}

// Whether e made or changed one of the probe's own mappings (maps: sorted by thread).
static bool is_own(const struct md_probe_own_map *maps, size_t n, const struct md_sys_event *e)
{
    if (!e->address || e->sys == MD_SYS_BRK || e->sys == MD_SYS_FUTEX)
        return false;
    size_t lo = 0, hi = n; // the first entry of e's thread
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (maps[mid].tid < e->tid)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < n && maps[lo].tid == e->tid; lo++)
        if (e->address >= maps[lo].start && e->address < maps[lo].end &&
            e->ts_ns <= maps[lo].noted_ns + MD_OWN_MAP_SLACK_NS &&
            e->ts_ns + MD_OWN_MAP_LEAD_NS >= maps[lo].noted_ns)
            return true;
    return false;
}

long md_probe_file_drop_own(const struct md_probe_file *pf, struct md_sys_event *events,
                            size_t *count)
{
    const struct md_probe_header *h = pf->header;
    size_t n = atomic_load(&h->own_maps_used);
    n = n < MD_PROBE_OWN_MAPS ? n : MD_PROBE_OWN_MAPS;
    if (!n)
        return 0;
    struct md_probe_own_map *maps = malloc(n * sizeof *maps);
    if (!maps)
        return -1;
    memcpy(maps, h->own_maps, n * sizeof *maps);
    qsort(maps, n, sizeof *maps, by_tid);
    size_t kept = 0;
    for (size_t i = 0; i < *count; i++)
        if (!is_own(maps, n, &events[i]))
            events[kept++] = events[i];
    free(maps);
    long dropped = (long)(*count - kept);
    *count = kept;
    return dropped;
}

// The id in the tool's namespace of what the probe wrote: a token it announced, or as written.
static int32_t mapped_id(int32_t id, const int32_t *global, uint32_t tokens)
{
    uint32_t t = id < 0 ? (uint32_t) - (int64_t)id : 0;
    return t && t <= tokens && global[t] ? global[t] : id;
}

// The image table is hashed by pid: its entries go where their mapped pids hash to.
static void rehash_images(struct md_probe_header *h, const int32_t *g, uint32_t n)
{
    struct md_probe_image *old = malloc(sizeof h->images);
    if (!old)
        return; // out of memory: left as written, those processes stay in another namespace
    memcpy(old, h->images, sizeof h->images);
    memset(h->images, 0, sizeof h->images);
    for (uint32_t i = 0; i < MD_PROBE_IMAGES; i++) {
        int32_t pid = atomic_load(&old[i].pid);
        if (pid)
            md_probe_note_image(h, mapped_id(pid, g, n), old[i].comm);
    }
    free(old);
}

// The tables that name processes and threads, rewritten with the mapped ids. Only what the
// probes wrote is read: the claimed slots (1..n without a gap, as in lib/trace_stats.c), the
// used entries, and the stack table's data runs (it is sparse).
static void rewrite_ids(struct md_probe_file *pf, const int32_t *g, uint32_t n)
{
    struct md_probe_header *h = pf->header;
    const struct md_probe_view *v = &pf->view;
    for (uint32_t i = 0; i < v->slot_count && (!i || atomic_load(&v->slots[i].claimed)); i++)
        v->slots[i].pid = mapped_id(v->slots[i].pid, g, n),
        v->slots[i].tid = mapped_id(v->slots[i].tid, g, n);
    uint64_t slow = atomic_load(&h->slow_used);
    for (uint64_t i = 0; i < slow && i < v->slow_max; i++)
        v->slow_log[i].tid = mapped_id(v->slow_log[i].tid, g, n);
    for (uint32_t i = 0; i < atomic_load(&h->own_maps_used) && i < MD_PROBE_OWN_MAPS; i++)
        h->own_maps[i].tid = mapped_id(h->own_maps[i].tid, g, n);
    rehash_images(h, g, n);
    for (uint32_t i = 0; i < atomic_load(&h->image_runs_used) && i < MD_PROBE_IMAGES; i++)
        h->image_runs[i].pid = mapped_id(h->image_runs[i].pid, g, n);
    for (uint32_t i = 0; i < atomic_load(&h->objects_used) && i < v->object_max; i++)
        v->objects[i].pid = mapped_id(v->objects[i].pid, g, n);
    size_t first, end;
    for (size_t from = 0;
         md_probe_file_data_run(pf, v->stacks, sizeof *v->stacks, v->stack_max, from, &first, &end);
         from = end)
        for (size_t i = first; i < end; i++)
            v->stacks[i].pid = mapped_id(v->stacks[i].pid, g, n);
    atomic_store(&h->provider_pid, mapped_id(atomic_load(&h->provider_pid), g, n));
}

// Processes whose pid token was mapped: each counted once in foreign_pid_processes.
static uint32_t mapped_processes(const struct md_probe_header *h, const int32_t *g, uint32_t n,
                                 bool *seen)
{
    uint32_t mapped = 0;
    for (uint32_t i = 0; i < atomic_load(&h->image_runs_used) && i < MD_PROBE_IMAGES; i++) {
        int32_t pid = h->image_runs[i].pid;
        uint32_t t = pid < 0 ? (uint32_t) - (int64_t)pid : 0;
        if (t && t <= n && g[t] && !seen[t])
            seen[t] = true, mapped++;
    }
    return mapped;
}

long md_probe_file_map_ids(struct md_probe_file *pf, struct md_sys_event *events, size_t *count)
{
    struct md_probe_header *h = pf->header;
    uint32_t n = atomic_load(&h->id_tokens);
    n = n < MD_PROBE_ID_TOKEN_MAX ? n : MD_PROBE_ID_TOKEN_MAX - 1;
    if (!n)
        return 0;
    int32_t *global = calloc((size_t)n + 1, sizeof *global);
    bool *seen = calloc((size_t)n + 1, sizeof *seen);
    if (!global || !seen) {
        free(global);
        free(seen);
        return -1;
    }
    size_t kept = 0;
    for (size_t i = 0; i < *count; i++) {
        const struct md_sys_event *e = &events[i];
        uint32_t t = e->sys == MD_SYS_MADVISE && !e->length ? md_probe_id_token(e->address) : 0;
        if (t && t <= n)
            global[t] = e->tid;
        else
            events[kept++] = events[i];
    }
    long dropped = (long)(*count - kept);
    *count = kept;
    uint32_t mapped = mapped_processes(h, global, n, seen),
             foreign = atomic_load(&h->foreign_pid_processes);
    atomic_store(&h->foreign_pid_processes, foreign > mapped ? foreign - mapped : 0);
    rewrite_ids(pf, global, n);
    free(global);
    free(seen);
    return dropped;
}

struct numbered_run {
    struct md_probe_image_run run;
    uint32_t number;
};

// By pid, then by key (kx of x, ky of y), then in the order the images attached.
static int by_pid_then(const struct numbered_run *x, const struct numbered_run *y, uint64_t kx,
                       uint64_t ky)
{
    if (x->run.pid != y->run.pid)
        return x->run.pid < y->run.pid ? -1 : 1;
    if (kx != ky)
        return kx < ky ? -1 : 1;
    return (x->number > y->number) - (x->number < y->number);
}

// By process (pid, start time).
static int by_process(const void *a, const void *b)
{
    const struct numbered_run *x = a, *y = b;
    return by_pid_then(x, y, x->run.start_time, y->run.start_time);
}

// By pid, then by attach time.
static int by_attach(const void *a, const void *b)
{
    const struct numbered_run *x = a, *y = b;
    return by_pid_then(x, y, x->run.attached_ns, y->run.attached_ns);
}

// The image an exec replaced: the last of its pid to attach before it (runs sorted by_attach).
// One that attached later was the exec's own or a later one's. An earlier one is not: the image
// between them was of the same process after an exec (which the start times tell), or of a
// process that got the pid back after the earlier one exited, which keeps its leaks.
static const struct numbered_run *replaced_by(const struct numbered_run *runs, size_t used,
                                              const struct md_exec_event *e)
{
    size_t lo = 0, hi = used; // the first run after (pid, e's time)
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct md_probe_image_run *r = &runs[mid].run;
        // in nanoseconds: the recorder stamps an exec after the image it replaced attached and
        // before the new one runs (strace while the thread is stopped at it, perf's exec record
        // once it can no longer fail), and both stamps are CLOCK_REALTIME's, as the attach's
        if (r->pid < e->pid || (r->pid == e->pid && r->attached_ns <= e->ts_ns))
            lo = mid + 1;
        else
            hi = mid;
    }
    const struct numbered_run *last = lo ? &runs[lo - 1] : NULL;
    return last && last->run.pid == e->pid && last->run.attached_ns ? last : NULL;
}

bool md_probe_file_exec_replaced(const struct md_probe_file *pf, const struct md_exec_event *execs,
                                 size_t exec_count, bool *replaced, size_t n)
{
    const struct md_probe_header *h = pf->header;
    size_t used = atomic_load(&h->image_runs_used);
    used = used < MD_PROBE_IMAGES ? used : MD_PROBE_IMAGES;
    memset(replaced, 0, n * sizeof *replaced);
    struct numbered_run *runs = malloc((used ? used : 1) * sizeof *runs);
    if (!runs)
        return false;
    for (size_t i = 0; i < used; i++)
        runs[i] = (struct numbered_run){.run = h->image_runs[i], .number = (uint32_t)i + 1};
    qsort(runs, used, sizeof *runs, by_process);
    // an unknown start time (0) cannot tell an exec from a reused pid: kept
    for (size_t i = 0; i + 1 < used; i++)
        if (runs[i].run.start_time && runs[i].run.pid == runs[i + 1].run.pid &&
            runs[i].run.start_time == runs[i + 1].run.start_time && runs[i].number < n)
            replaced[runs[i].number] = true;
    // an exec into an image that never attached (a static program, another user's) leaves no
    // later run: the recorder's exec tells
    qsort(runs, used, sizeof *runs, by_attach);
    for (size_t i = 0; i < exec_count; i++) {
        const struct numbered_run *r = replaced_by(runs, used, &execs[i]);
        if (r && r->number < n)
            replaced[r->number] = true;
    }
    free(runs);
    return true;
}

void md_probe_file_close(struct md_probe_file *pf)
{
    if (pf->header)
        munmap(pf->header, pf->size);
    if (pf->share_env[0]) // set with the descriptor: a zeroed struct holds no descriptor 0
        close(pf->share_fd);
    md_temp_remove(pf->path, pf->lock_fd);
    memset(pf, 0, sizeof *pf);
}
