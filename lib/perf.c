// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/perf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/perf_samples.h"

#define DEFAULT_MAX_RECORD_BYTES ((size_t)256 << 20)
#define DEFAULT_RING_PAGES 256u
#define MAX_STACK 127 // the kernel's default perf_event_max_stack
#define POLL_MS 100   // drain at least this often, whatever the wakeup watermark

struct ring {
    int fd, cpu;
    void *base; // metadata page followed by data pages
    size_t map_size, data_size;
    unsigned char *scratch; // one record that wraps around the end of the buffer
};

struct md_perf {
    pid_t pid;
    int uprobe_fds[MD_PERF_MAX_UPROBES];
    size_t uprobe_count;
    const char *tracefs;   // mount point holding uprobe_events
    char group[48];        // tracefs event group of our probes
    size_t probes_defined; // probes p0.. written to uprobe_events, to remove at close
    char *probe_paths[MD_PERF_MAX_UPROBES]; // canonical, as MMAP2 records name them
    uint64_t probe_offsets[MD_PERF_MAX_UPROBES];
    struct ring *rings;
    size_t ring_count;
    bool cpu_sampling; // the rings belong to cpu-clock events (else to the futex events alone)
    bool kernel_excluded;
    // The cpu-clock events sample whole CPUs (pid -1), and replay keeps the program's tree alone.
    // A per-process event inherited by every thread is switched in and out with each of them,
    // and under strace, which stops the program at every traced syscall, that switching is most
    // of the cost: 1 thread x 200k malloc/free pairs of a static musl program took 0.50 s with
    // per-process sampling at 997 Hz, 0.37 s sampling both CPUs at the same rate and 0.34 s
    // without sampling (a 2-core VM). Needs perf_event_paranoid <= 0 or CAP_PERFMON (root);
    // without, the events are per process as before.
    bool system_wide;
    int *futex_fds; // futex events whose samples go to a cpu-clock ring (SET_OUTPUT)
    size_t futex_fd_count;
    uint64_t *futex_ids;
    size_t futex_id_count;
    char futex_error[256]; // why futex waits are not sampled, when asked for
    // CLOCK_MONOTONIC and CLOCK_REALTIME - CLOCK_MONOTONIC at open and at collect
    int64_t mono_open, offset_open, mono_collect, offset_collect;
    int wake_fd; // eventfd: md_perf_collect tells the reader to finish
    pthread_t reader;
    bool reader_running;
    struct md_perf_log log; // written by the reader only until it is joined
    struct md_perf_names names;
};

static long perf_event_open(struct perf_event_attr *attr, pid_t pid, int cpu, int group,
                            unsigned long flags)
{
    return syscall(SYS_perf_event_open, attr, pid, cpu, group, flags);
}

bool md_perf_name_in(const char *name, const char *const *list)
{
    // GCC names clones f.constprop.0, f.isra.0, f.part.0, f.cold: they are still f
    const char *dot = name[0] ? strchr(name + 1, '.') : NULL;
    size_t len = dot ? (size_t)(dot - name) : strlen(name);
    for (size_t i = 0; list && list[i]; i++)
        if (strlen(list[i]) == len && !strncmp(list[i], name, len))
            return true;
    return false;
}

static int open_fail(struct md_error *err, int errnum, const char *what)
{
    if (errnum == EACCES || errnum == EPERM)
        return md_fail_errno(err, errnum,
                             "perf_event_open (%s) not permitted; needs root or "
                             "CAP_PERFMON, or a lower /proc/sys/kernel/perf_event_paranoid",
                             what);
    return md_fail_errno(err, errnum, "perf_event_open (%s)", what);
}

// ---- uprobes ------------------------------------------------------------------------------
//
// Why tracefs and not the uprobe PMU: an event of the uprobe PMU carries the path as a user
// pointer (config1), and the kernel reads that pointer again, in the forking task's address space,
// each time the event is inherited (perf_uprobe_init -> strndup_user). In the target the pointer
// means nothing, so with inherit=1 its first pthread_create or fork fails with EFAULT (seen on
// 6.x: musl's pthread_create aborted). A probe defined in tracefs/uprobe_events is a tracepoint
// with a numeric id instead, and tracepoint events inherit without re-reading anything.

static const char *const tracefs_roots[] = {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"};

static int find_tracefs(struct md_perf *p, struct md_error *err)
{
    for (size_t i = 0; i < sizeof tracefs_roots / sizeof tracefs_roots[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/uprobe_events", tracefs_roots[i]);
        if (!access(path, W_OK)) {
            p->tracefs = tracefs_roots[i];
            return 0;
        }
    }
    return md_fail(err, "perf: no writable tracefs uprobe_events (mount tracefs on "
                        "/sys/kernel/tracing; needs root and CONFIG_UPROBE_EVENTS)");
}

static int write_uprobe_events(const struct md_perf *p, const char *line, struct md_error *err)
{
    char path[128];
    snprintf(path, sizeof path, "%s/uprobe_events", p->tracefs);
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
        return md_fail_errno(err, errno, "%s", path);
    size_t len = strlen(line);
    ssize_t n = write(fd, line, len);
    int saved = errno;
    close(fd);
    if (n != (ssize_t)len)
        return md_fail_errno(err, n < 0 ? saved : EIO, "%s: writing \"%s\"", path, line);
    return 0;
}

static int read_probe_id(const struct md_perf *p, size_t i, uint64_t *id, struct md_error *err)
{
    char path[256];
    snprintf(path, sizeof path, "%s/events/%s/p%zu/id", p->tracefs, p->group, i);
    FILE *f = fopen(path, "r");
    if (!f)
        return md_fail_errno(err, errno, "%s", path);
    unsigned long long v;
    int ok = fscanf(f, "%llu", &v) == 1;
    fclose(f);
    *id = v;
    return ok ? 0 : md_fail(err, "%s: not a number", path);
}

// Defines probe p<i> in our group, then opens a counting event on it.
static int open_uprobe(struct md_perf *p, size_t i, const struct md_uprobe_spec *u,
                       struct md_error *err)
{
    if (strpbrk(u->path, " \t\n"))
        return md_fail(err, "perf: uprobe %s: tracefs cannot take a path with blanks: %s", u->name,
                       u->path);
    char line[PATH_MAX + 128];
    snprintf(line, sizeof line, "p:%s/p%zu %s:0x%jx\n", p->group, i, u->path,
             (uintmax_t)u->file_offset);
    if (write_uprobe_events(p, line, err)) {
        struct md_error why = *err; // e.g. ENOENT for a missing file, EINVAL past its end
        return md_fail(err, "perf: uprobe %s at %s+0x%jx refused: %s", u->name, u->path,
                       (uintmax_t)u->file_offset, why.msg);
    }
    p->probes_defined = i + 1;
    p->probe_paths[i] = realpath(u->path, NULL);
    p->probe_offsets[i] = u->file_offset;
    uint64_t id = 0;
    if (read_probe_id(p, i, &id, err))
        return -1;
    struct perf_event_attr a = {
        .type = PERF_TYPE_TRACEPOINT,
        .size = sizeof a,
        .config = id,
        .disabled = 1,
        .enable_on_exec = 1,
        .inherit = 1,
    };
    long fd = perf_event_open(&a, p->pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0) {
        char what[MD_PERF_NAME_MAX + PATH_MAX];
        snprintf(what, sizeof what, "uprobe %s at %s+0x%jx", u->name, u->path,
                 (uintmax_t)u->file_offset);
        return open_fail(err, errno, what);
    }
    p->uprobe_fds[p->uprobe_count++] = (int)fd;
    return 0;
}

static int open_uprobes(struct md_perf *p, const struct md_perf_options *opt, struct md_error *err)
{
    if (!opt->uprobe_count)
        return 0;
    if (opt->uprobe_count > MD_PERF_MAX_UPROBES)
        return md_fail(err, "perf: %zu uprobes requested, at most %d", opt->uprobe_count,
                       MD_PERF_MAX_UPROBES);
    if (find_tracefs(p, err))
        return -1;
    // one group per md_perf: concurrent runs (and our own tests) never share probe names
    snprintf(p->group, sizeof p->group, "md_%ld_%ld", (long)getpid(), (long)p->pid);
    for (size_t i = 0; i < opt->uprobe_count; i++)
        if (open_uprobe(p, i, &opt->uprobes[i], err))
            return -1;
    p->names.probe_count = opt->uprobe_count;
    return 0;
}

// Removes the probe definitions; the events on them must be closed first (else EBUSY).
static void remove_uprobes(struct md_perf *p)
{
    for (size_t i = 0; i < p->probes_defined; i++) {
        char line[128];
        struct md_error ignored; // a probe left behind is inert and named after our pid
        snprintf(line, sizeof line, "-:%s/p%zu\n", p->group, i);
        write_uprobe_events(p, line, &ignored);
    }
    p->probes_defined = 0;
}

// ---- sampling -----------------------------------------------------------------------------

static void sample_attr(struct perf_event_attr *a, unsigned hz, size_t data_size, bool kernel,
                        bool system_wide)
{
    memset(a, 0, sizeof *a);
    a->type = PERF_TYPE_SOFTWARE;
    a->size = sizeof *a;
    a->config = PERF_COUNT_SW_CPU_CLOCK;
    a->freq = 1;
    a->sample_freq = hz;
    a->sample_type = MD_PERF_SAMPLE_TYPE;
    a->disabled = 1;
    a->enable_on_exec = 1;
    a->inherit = 1;
    a->mmap = 1;  // executable mappings, to turn addresses into (file, offset)
    a->mmap2 = 1; // ... as MMAP2 records
    a->comm = 1;  // commands, to leave out strace
    a->comm_exec = 1;
    a->task = 1; // FORK records: a child starts with its parent's mappings
    a->sample_id_all = 1;
    a->use_clockid = 1; // one clock for every CPU's buffer, so records can be merged by time
    a->clockid = CLOCK_MONOTONIC;
    // Time in the kernel on behalf of malloc (page faults, mmap) is allocator time: sample it
    // when allowed, but only the user part of the callchain is needed.
    a->exclude_kernel = !kernel;
    a->exclude_hv = 1;
    a->exclude_callchain_kernel = 1;
    a->sample_max_stack = MAX_STACK;
    a->watermark = 1;
    a->wakeup_watermark = (uint32_t)(data_size / 4);
    if (system_wide) { // from now on, for every process: replay starts at the program's exec
        a->disabled = 0;
        a->enable_on_exec = 0;
        a->inherit = 0;
    }
}

static int map_ring(struct ring *r, size_t pages, struct md_error *err)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    r->data_size = pages * page;
    r->map_size = r->data_size + page;
    // writable: we advance data_tail, so the kernel never overwrites unread records; when full it
    // reports what it could not store as PERF_RECORD_LOST
    r->base = mmap(NULL, r->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
    if (r->base == MAP_FAILED) {
        r->base = NULL;
        return md_fail_errno(err, errno, "perf: mmap of a %zu-byte ring buffer", r->map_size);
    }
    r->scratch = malloc(1 << 16); // perf_event_header.size is 16 bits
    if (!r->scratch)
        return md_fail(err, "perf: out of memory");
    return 0;
}

// Opens the sampling event of one CPU. 1: the CPU is offline, skip it. The first CPU decides
// whether the events sample whole CPUs (p->system_wide); the others follow it.
static int open_cpu_event(struct md_perf *p, int cpu, unsigned hz, size_t pages,
                          struct md_error *err)
{
    struct perf_event_attr a;
    size_t data_size = pages * (size_t)sysconf(_SC_PAGESIZE);
    long fd = -1;
    if (!p->ring_count || p->system_wide) {
        sample_attr(&a, hz, data_size, true, true);
        fd = perf_event_open(&a, -1, cpu, -1, PERF_FLAG_FD_CLOEXEC);
        if (!p->ring_count)
            p->system_wide = fd >= 0;
    }
    if (!p->system_wide) {
        sample_attr(&a, hz, data_size, !p->kernel_excluded, false);
        fd = perf_event_open(&a, p->pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
        if (fd < 0 && (errno == EACCES || errno == EPERM) && !p->kernel_excluded) {
            p->kernel_excluded = true; // perf_event_paranoid >= 2 without privileges: user only
            sample_attr(&a, hz, data_size, false, false);
            fd = perf_event_open(&a, p->pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
        }
    }
    if (fd < 0 && errno == ENODEV)
        return 1;
    if (fd < 0) {
        char what[64];
        snprintf(what, sizeof what, "cpu-clock sampling on CPU %d", cpu);
        return open_fail(err, errno, what);
    }
    struct ring *r = &p->rings[p->ring_count++];
    r->fd = (int)fd;
    r->cpu = cpu;
    return map_ring(r, pages, err);
}

static int open_sampling(struct md_perf *p, size_t pages, unsigned hz, struct md_error *err)
{
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    if (cpus < 1)
        cpus = 1;
    p->rings = calloc((size_t)cpus, sizeof *p->rings);
    if (!p->rings)
        return md_fail(err, "perf: out of memory");
    for (long cpu = 0; cpu < cpus; cpu++)
        if (open_cpu_event(p, (int)cpu, hz, pages, err) < 0)
            return -1;
    if (!p->ring_count)
        return md_fail(err, "perf: no online CPU accepted a sampling event");
    p->cpu_sampling = true;
    p->names.system_wide_root = p->system_wide ? p->pid : 0;
    return 0;
}

// ---- futex waits --------------------------------------------------------------------------

#define FUTEX_MAX_STACK 8 // only the first user entry is used: the scan finds the rest

static void close_ring(struct ring *r)
{
    if (r->base)
        munmap(r->base, r->map_size);
    free(r->scratch);
    if (r->fd >= 0)
        close(r->fd);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

// The blocking futex operations, alone or with FUTEX_PRIVATE_FLAG (128) and FUTEX_CLOCK_REALTIME
// (256): WAIT 0, LOCK_PI 6, WAIT_BITSET 9, WAIT_REQUEUE_PI 11, LOCK_PI2 13. The same set as
// lib/strace.c's futex_wait, so that samples and strace's durations describe the same calls.
static void futex_filter(char *out, size_t size)
{
    static const int cmds[] = {0, 6, 9, 11, 13}, flags[] = {0, 128, 256, 384};
    size_t len = 0;
    out[0] = 0;
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++)
        for (size_t f = 0; f < sizeof flags / sizeof flags[0] && len < size; f++)
            len += (size_t)snprintf(out + len, size - len, "%sop == %d", len ? " || " : "",
                                    cmds[c] | flags[f]);
}

static int read_futex_tracepoint(uint64_t *id, struct md_error *err)
{
    for (size_t i = 0; i < sizeof tracefs_roots / sizeof tracefs_roots[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/events/syscalls/sys_enter_futex/id", tracefs_roots[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        unsigned long long v;
        int ok = fscanf(f, "%llu", &v) == 1;
        fclose(f);
        if (ok) {
            *id = v;
            return 0;
        }
    }
    return md_fail(err, "no readable tracefs events/syscalls/sys_enter_futex/id (needs root, "
                        "tracefs on /sys/kernel/tracing and CONFIG_FTRACE_SYSCALLS)");
}

static void futex_attr(struct perf_event_attr *a, uint64_t id, bool own_ring, size_t data_size)
{
    memset(a, 0, sizeof *a);
    a->type = PERF_TYPE_TRACEPOINT;
    a->size = sizeof *a;
    a->config = id;
    a->sample_period = 1; // every wait
    a->sample_type = MD_PERF_FUTEX_SAMPLE_TYPE;
    a->sample_stack_user = MD_PERF_FUTEX_STACK_BYTES;
    a->sample_max_stack = FUTEX_MAX_STACK;
    a->exclude_callchain_kernel = 1;
    a->disabled = 1;
    a->enable_on_exec = 1;
    a->inherit = 1;
    a->sample_id_all = 1;
    // As sample_attr: the records share rings and are merged. The kernel refuses CLOCK_REALTIME
    // (strace's clock) for tracepoints, so wait times are converted afterwards.
    a->use_clockid = 1;
    a->clockid = CLOCK_MONOTONIC;
    if (!own_ring)
        return;
    a->mmap = a->mmap2 = a->comm = a->comm_exec = a->task = 1; // as sample_attr
    a->watermark = 1;
    a->wakeup_watermark = (uint32_t)(data_size / 4);
}

static struct ring *cpu_ring(struct md_perf *p, int cpu)
{
    for (size_t i = 0; i < p->ring_count; i++)
        if (p->rings[i].cpu == cpu)
            return &p->rings[i];
    return NULL;
}

// Opens the futex event of one CPU, into the CPU's cpu-clock ring or a ring of its own. 1: the
// CPU is offline (or not sampled), skip it.
static int open_futex_cpu(struct md_perf *p, int cpu, uint64_t id, const char *filter, size_t pages,
                          struct md_error *err)
{
    struct ring *out = p->cpu_sampling ? cpu_ring(p, cpu) : NULL;
    if (p->cpu_sampling && !out)
        return 1;
    struct perf_event_attr a;
    futex_attr(&a, id, !out, pages * (size_t)sysconf(_SC_PAGESIZE));
    long fd = perf_event_open(&a, p->pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0 && errno == ENODEV)
        return 1;
    if (fd < 0)
        return open_fail(err, errno, "futex tracepoint");
    if (ioctl((int)fd, PERF_EVENT_IOC_SET_FILTER, filter) ||
        ioctl((int)fd, PERF_EVENT_IOC_ID, &p->futex_ids[p->futex_id_count]) ||
        (out && ioctl((int)fd, PERF_EVENT_IOC_SET_OUTPUT, out->fd))) {
        int saved = errno;
        close((int)fd);
        return md_fail_errno(err, saved, "perf: futex tracepoint on CPU %d (filter, id or output)",
                             cpu);
    }
    p->futex_id_count++;
    if (out) {
        p->futex_fds[p->futex_fd_count++] = (int)fd;
        return 0;
    }
    struct ring *r = &p->rings[p->ring_count++];
    r->fd = (int)fd;
    r->cpu = cpu;
    return map_ring(r, pages, err);
}

static int open_futex_all(struct md_perf *p, size_t pages, struct md_error *err)
{
    uint64_t id = 0;
    if (read_futex_tracepoint(&id, err))
        return -1;
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    if (cpus < 1)
        cpus = 1;
    p->futex_fds = calloc((size_t)cpus, sizeof *p->futex_fds);
    p->futex_ids = calloc((size_t)cpus, sizeof *p->futex_ids);
    if (!p->rings)
        p->rings = calloc((size_t)cpus, sizeof *p->rings);
    if (!p->futex_fds || !p->futex_ids || !p->rings)
        return md_fail(err, "perf: out of memory");
    char filter[1024];
    futex_filter(filter, sizeof filter);
    for (long cpu = 0; cpu < cpus; cpu++)
        if (open_futex_cpu(p, (int)cpu, id, filter, pages, err) < 0)
            return -1;
    if (!p->futex_id_count)
        return md_fail(err, "perf: no online CPU accepted the futex tracepoint");
    return 0;
}

// The monotonic time now and how far CLOCK_REALTIME is ahead of it, read back to back.
static void clock_pair(int64_t *mono, int64_t *offset)
{
    struct timespec r0, m, r1;
    clock_gettime(CLOCK_REALTIME, &r0);
    clock_gettime(CLOCK_MONOTONIC, &m);
    clock_gettime(CLOCK_REALTIME, &r1);
    int64_t real = ((int64_t)r0.tv_sec * 1000000000 + r0.tv_nsec) / 2 +
                   ((int64_t)r1.tv_sec * 1000000000 + r1.tv_nsec) / 2;
    *mono = (int64_t)m.tv_sec * 1000000000 + m.tv_nsec;
    *offset = real - *mono;
}

// Wait times from CLOCK_MONOTONIC to CLOCK_REALTIME, with the offset interpolated between the
// two readings so that a clock slewed by NTP during the run stays matched.
static void waits_to_realtime(const struct md_perf *p, struct md_perf_result *res)
{
    double span = (double)(p->mono_collect - p->mono_open);
    double drift = (double)(p->offset_collect - p->offset_open);
    for (size_t i = 0; i < res->futex_wait_count; i++) {
        double into = span > 0 ? (double)((int64_t)res->futex_waits[i].time_ns - p->mono_open) : 0;
        double offset = (double)p->offset_open + (span > 0 ? drift * into / span : 0);
        res->futex_waits[i].time_ns =
            (uint64_t)((int64_t)res->futex_waits[i].time_ns + (int64_t)offset);
    }
}

// Futex waits are an extra: when they cannot be sampled, everything else still runs, and
// futex_error says why.
static void open_futex(struct md_perf *p, size_t pages)
{
    size_t rings_before = p->ring_count;
    struct md_error err;
    if (!open_futex_all(p, pages, &err))
        return;
    snprintf(p->futex_error, sizeof p->futex_error, "%s", err.msg);
    for (size_t i = 0; i < p->futex_fd_count; i++)
        close(p->futex_fds[i]);
    p->futex_fd_count = p->futex_id_count = 0;
    for (size_t i = rings_before; i < p->ring_count; i++)
        close_ring(&p->rings[i]);
    p->ring_count = rings_before;
}

// ---- the reader thread --------------------------------------------------------------------

// Copies every complete record out of the ring into the log and frees the space.
static void drain_ring(struct ring *r, struct md_perf_log *log)
{
    struct perf_event_mmap_page *meta = r->base;
    unsigned char *data =
        (unsigned char *)r->base +
        ((size_t)meta->data_offset ? (size_t)meta->data_offset : (size_t)sysconf(_SC_PAGESIZE));
    uint64_t head = __atomic_load_n(&meta->data_head, __ATOMIC_ACQUIRE);
    uint64_t tail = meta->data_tail;
    while (tail + sizeof(struct perf_event_header) <= head) {
        struct perf_event_header h;
        size_t at = (size_t)(tail % r->data_size);
        for (size_t i = 0; i < sizeof h; i++)
            ((unsigned char *)&h)[i] = data[(at + i) % r->data_size];
        if (h.size < sizeof h || tail + h.size > head)
            break;
        if (at + h.size <= r->data_size) {
            md_perf_log_add(log, data + at, h.size);
        } else { // wraps: stitch the two pieces together
            size_t first = r->data_size - at;
            memcpy(r->scratch, data + at, first);
            memcpy(r->scratch + first, data, h.size - first);
            md_perf_log_add(log, r->scratch, h.size);
        }
        tail += h.size;
    }
    __atomic_store_n(&meta->data_tail, tail, __ATOMIC_RELEASE);
}

static void drain_all(struct md_perf *p)
{
    for (size_t i = 0; i < p->ring_count; i++)
        drain_ring(&p->rings[i], &p->log);
}

// Polls the ring buffers (woken at the watermark, or every POLL_MS) until told to stop. An event
// whose task tree has exited reports POLLHUP for ever after: it leaves the poll set.
static void *reader_main(void *arg)
{
    struct md_perf *p = arg;
    struct pollfd *fds = calloc(p->ring_count + 1, sizeof *fds);
    if (!fds)
        return NULL; // collect still drains everything once; only more losses can follow
    for (size_t i = 0; i < p->ring_count; i++)
        fds[i] = (struct pollfd){.fd = p->rings[i].fd, .events = POLLIN};
    fds[p->ring_count] = (struct pollfd){.fd = p->wake_fd, .events = POLLIN};
    for (;;) {
        int n = poll(fds, p->ring_count + 1, POLL_MS);
        drain_all(p);
        if (n > 0 && (fds[p->ring_count].revents & POLLIN))
            break;
        for (size_t i = 0; n > 0 && i < p->ring_count; i++)
            if (fds[i].revents & (POLLHUP | POLLERR))
                fds[i].fd = -1;
    }
    free(fds);
    return NULL;
}

static int start_reader(struct md_perf *p, struct md_error *err)
{
    p->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (p->wake_fd < 0)
        return md_fail_errno(err, errno, "perf: eventfd");
    int rc = pthread_create(&p->reader, NULL, reader_main, p);
    if (rc)
        return md_fail_errno(err, rc, "perf: starting the sample reader thread");
    p->reader_running = true;
    return 0;
}

static void stop_reader(struct md_perf *p)
{
    if (!p->reader_running)
        return;
    uint64_t one = 1;
    if (write(p->wake_fd, &one, sizeof one) != sizeof one) {
        // an eventfd write only fails on counter overflow; the poll timeout still ends the wait
    }
    pthread_join(p->reader, NULL);
    p->reader_running = false;
    drain_all(p); // whatever arrived after the reader's last pass
}

// ---- public -------------------------------------------------------------------------------

static struct md_perf *perf_new(pid_t pid, const struct md_perf_options *opt)
{
    struct md_perf *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->pid = pid;
    p->wake_fd = -1;
    md_perf_log_init(&p->log,
                     opt->max_record_bytes ? opt->max_record_bytes : DEFAULT_MAX_RECORD_BYTES);
    unsigned top = opt->top_n ? opt->top_n : MD_PERF_TOP;
    p->names = (struct md_perf_names){
        .api = opt->alloc_api,
        .internal = opt->alloc_internal,
        .top_n = top < MD_PERF_TOP ? top : MD_PERF_TOP,
        .probe_paths = (const char *const *)p->probe_paths,
        .probe_offsets = p->probe_offsets,
    };
    return p;
}

int md_perf_open(struct md_perf **out, pid_t pid, const struct md_perf_options *opt,
                 struct md_error *err)
{
    *out = NULL;
    if (opt->sample_hz && !opt->alloc_api)
        return md_fail(err, "perf: sampling needs the list of allocator functions (alloc_api)");
    struct md_perf *p = perf_new(pid, opt);
    if (!p)
        return md_fail(err, "perf: out of memory");
    size_t pages = opt->ring_pages ? opt->ring_pages : DEFAULT_RING_PAGES;
    if (pages & (pages - 1)) {
        md_perf_close(p);
        return md_fail(err, "perf: ring_pages must be a power of 2, not %zu", pages);
    }
    if (open_uprobes(p, opt, err) ||
        (opt->sample_hz && open_sampling(p, pages, opt->sample_hz, err))) {
        md_perf_close(p);
        return -1;
    }
    if (opt->futex_waits)
        open_futex(p, pages);
    clock_pair(&p->mono_open, &p->offset_open);
    p->names.futex_ids = p->futex_ids;
    p->names.futex_id_count = p->futex_id_count;
    if (p->ring_count && start_reader(p, err)) {
        md_perf_close(p);
        return -1;
    }
    *out = p;
    return 0;
}

static int read_uprobes(struct md_perf *p, struct md_perf_result *res, struct md_error *err)
{
    res->uprobe_count = p->uprobe_count;
    for (size_t i = 0; i < p->uprobe_count; i++) {
        uint64_t count;
        ssize_t n = read(p->uprobe_fds[i], &count, sizeof count);
        if (n != (ssize_t)sizeof count)
            return md_fail_errno(err, n < 0 ? errno : EIO, "perf: reading uprobe count %zu", i);
        res->uprobe_hits[i] = count;
    }
    return 0;
}

int md_perf_collect(struct md_perf *p, struct md_perf_result *res, struct md_error *err)
{
    memset(res, 0, sizeof *res);
    snprintf(res->futex_error, sizeof res->futex_error, "%s", p->futex_error);
    res->futex_sampled = p->futex_id_count > 0;
    if (read_uprobes(p, res, err))
        return -1;
    if (!p->ring_count)
        return 0;
    stop_reader(p);
    res->sampled = p->cpu_sampling;
    res->kernel_excluded = p->kernel_excluded;
    res->system_wide = p->system_wide;
    res->cpus = (unsigned)p->ring_count;
    clock_pair(&p->mono_collect, &p->offset_collect);
    if (p->log.dropped_other)
        return md_fail(err, "perf: out of memory storing %ju mapping/process records",
                       (uintmax_t)p->log.dropped_other);
    if (md_perf_replay(&p->log, &p->names, res, err))
        return -1;
    waits_to_realtime(p, res);
    return 0;
}

void md_perf_result_free(struct md_perf_result *res)
{
    for (size_t i = 0; i < res->futex_stack_count; i++)
        free(res->futex_stacks[i].frames);
    free(res->futex_stacks);
    free(res->futex_waits);
    res->futex_stacks = NULL;
    res->futex_waits = NULL;
    res->futex_stack_count = res->futex_wait_count = 0;
}

void md_perf_close(struct md_perf *p)
{
    if (!p)
        return;
    stop_reader(p);
    for (size_t i = 0; i < p->uprobe_count; i++)
        close(p->uprobe_fds[i]);
    remove_uprobes(p);
    for (size_t i = 0; i < MD_PERF_MAX_UPROBES; i++)
        free(p->probe_paths[i]);
    for (size_t i = 0; i < p->futex_fd_count; i++)
        close(p->futex_fds[i]);
    for (size_t i = 0; i < p->ring_count; i++)
        close_ring(&p->rings[i]);
    free(p->rings);
    free(p->futex_fds);
    free(p->futex_ids);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    md_perf_log_free(&p->log);
    free(p);
}
