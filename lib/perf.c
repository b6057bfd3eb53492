// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/perf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
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
    // syscalls: per CPU, the sys_enter and sys_exit events (fds; those that own a ring are in
    // rings too and closed there) and their identifiers
    int *sys_fds;
    size_t sys_fd_count;
    uint64_t *sys_enter_ids, *sys_exit_ids;
    size_t sys_id_count;
    // CLOCK_MONOTONIC and CLOCK_REALTIME - CLOCK_MONOTONIC at open and at collect
    int64_t mono_open, offset_open, mono_collect, offset_collect;
    int64_t clock_gap_open; // clock_pair's gap at open
    int wake_fd;            // eventfd: md_perf_collect tells the reader to finish
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

// The blocking futex operations (md_sys_futex_op_blocks), with every combination of
// FUTEX_PRIVATE_FLAG (128) and FUTEX_CLOCK_REALTIME (256), so that samples and the recorded
// syscalls describe the same calls.
static void futex_filter(char *out, size_t size)
{
    size_t len = 0;
    out[0] = 0;
    for (unsigned op = 0; op < 512 && len < size; op++)
        if (md_sys_futex_op_blocks(op))
            len += (size_t)snprintf(out + len, size - len, "%sop == %u", len ? " || " : "", op);
}

// One file of a tracepoint in tracefs, e.g. ("syscalls/sys_enter_futex", "id"), or NULL.
static FILE *open_event_file(const char *event, const char *file)
{
    for (size_t i = 0; i < sizeof tracefs_roots / sizeof tracefs_roots[0]; i++) {
        char path[160];
        snprintf(path, sizeof path, "%s/events/%s/%s", tracefs_roots[i], event, file);
        FILE *f = fopen(path, "r");
        if (f)
            return f;
    }
    return NULL;
}

// The id of a tracepoint, e.g. "syscalls/sys_enter_futex".
static int read_tracepoint(const char *event, uint64_t *id, struct md_error *err)
{
    FILE *f = open_event_file(event, "id");
    unsigned long long v;
    int ok = f && fscanf(f, "%llu", &v) == 1;
    if (f)
        fclose(f);
    if (!ok)
        return md_fail(err,
                       "no readable tracefs events/%s/id (needs root, tracefs on "
                       "/sys/kernel/tracing and CONFIG_FTRACE_SYSCALLS)",
                       event);
    *id = v;
    return 0;
}

// An event that owns a ring (no cpu-clock ring on its CPU) also records what the replay needs to
// name code and processes, as sample_attr does.
static void ring_owner_attr(struct perf_event_attr *a, size_t data_size)
{
    a->mmap = a->mmap2 = a->comm = a->comm_exec = a->task = 1;
    a->watermark = 1;
    a->wakeup_watermark = (uint32_t)(data_size / 4);
}

// A tracepoint event that records every hit (period 1) of the program's tree from its exec on.
static void tracepoint_attr(struct perf_event_attr *a, uint64_t id, uint64_t sample_type,
                            bool own_ring, size_t data_size)
{
    memset(a, 0, sizeof *a);
    a->type = PERF_TYPE_TRACEPOINT;
    a->size = sizeof *a;
    a->config = id;
    a->sample_period = 1;
    a->sample_type = sample_type;
    a->disabled = 1;
    a->enable_on_exec = 1;
    a->inherit = 1;
    a->sample_id_all = 1;
    // As sample_attr: the records share rings and are merged. The kernel refuses CLOCK_REALTIME
    // (strace's clock) for tracepoints, so times are converted afterwards.
    a->use_clockid = 1;
    a->clockid = CLOCK_MONOTONIC;
    if (own_ring)
        ring_owner_attr(a, data_size);
}

static void futex_attr(struct perf_event_attr *a, uint64_t id, bool own_ring, size_t data_size)
{
    tracepoint_attr(a, id, MD_PERF_FUTEX_SAMPLE_TYPE, own_ring, data_size);
    a->sample_stack_user = MD_PERF_FUTEX_STACK_BYTES;
    a->sample_max_stack = FUTEX_MAX_STACK;
    a->exclude_callchain_kernel = 1;
}

static struct ring *cpu_ring(struct md_perf *p, int cpu)
{
    for (size_t i = 0; i < p->ring_count; i++)
        if (p->rings[i].cpu == cpu)
            return &p->rings[i];
    return NULL;
}

// A filtered tracepoint event to open on each CPU, with its attributes for either case: writing
// into the CPU's ring (of the cpu-clock or the syscall events) or owning a ring of its own.
struct tracepoint_event {
    struct perf_event_attr into_ring, own_ring;
    const char *filter, *what;
    int *fds;         // where the events that write into another's ring are kept (to close)
    size_t *fd_count; // ... and how many there are
};

// Opens the event on one CPU; *id gets its identifier. 1: the CPU is offline (or not sampled),
// skip it.
static int open_tracepoint_cpu(struct md_perf *p, int cpu, const struct tracepoint_event *t,
                               size_t pages, uint64_t *id, struct md_error *err)
{
    struct ring *out = cpu_ring(p, cpu);
    if (p->cpu_sampling && !out)
        return 1;
    struct perf_event_attr a = out ? t->into_ring : t->own_ring;
    long fd = perf_event_open(&a, p->pid, cpu, -1, PERF_FLAG_FD_CLOEXEC);
    if (fd < 0 && errno == ENODEV)
        return 1;
    if (fd < 0)
        return open_fail(err, errno, t->what);
    if (ioctl((int)fd, PERF_EVENT_IOC_SET_FILTER, t->filter) ||
        ioctl((int)fd, PERF_EVENT_IOC_ID, id) ||
        (out && ioctl((int)fd, PERF_EVENT_IOC_SET_OUTPUT, out->fd))) {
        int saved = errno;
        close((int)fd);
        return md_fail_errno(err, saved, "perf: %s on CPU %d (filter, id or output)", t->what, cpu);
    }
    if (out) {
        t->fds[(*t->fd_count)++] = (int)fd;
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
    if (read_tracepoint("syscalls/sys_enter_futex", &id, err))
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
    struct tracepoint_event t = {.filter = filter,
                                 .what = "futex tracepoint",
                                 .fds = p->futex_fds,
                                 .fd_count = &p->futex_fd_count};
    size_t data_size = pages * (size_t)sysconf(_SC_PAGESIZE);
    futex_attr(&t.into_ring, id, false, data_size);
    futex_attr(&t.own_ring, id, true, data_size);
    for (long cpu = 0; cpu < cpus; cpu++) {
        int rc = open_tracepoint_cpu(p, (int)cpu, &t, pages, &p->futex_ids[p->futex_id_count], err);
        if (rc < 0)
            return -1;
        p->futex_id_count += rc == 0;
    }
    if (!p->futex_id_count)
        return md_fail(err, "perf: no online CPU accepted the futex tracepoint");
    return 0;
}

// ---- syscalls -----------------------------------------------------------------------------

// "id == 9 || id == 11 || ...": the memory and futex syscalls, by this machine's numbers.
static void sys_filter(char *out, size_t size)
{
    size_t len = 0;
    out[0] = 0;
    for (int s = 0; s < MD_SYS_COUNT && len < size; s++)
        len += (size_t)snprintf(out + len, size - len, "%sid == %ld", len ? " || " : "",
                                md_sys_number((enum md_sys)s));
}

// Where field sits in the raw records of event, from its tracefs format file: a line like
// "\tfield:long id;\toffset:8;\tsize:8;\tsigned:1;" (kernels with a longer common header move
// everything after it).
bool md_perf_format_field(FILE *f, const char *field, size_t *offset)
{
    char line[256];
    size_t len = strlen(field);
    while (fgets(line, sizeof line, f)) {
        char *decl = strstr(line, "field:"), *end = decl ? strchr(decl, ';') : NULL;
        if (!end)
            continue;
        char *name = end;
        while (name > decl && name[-1] != ' ' && name[-1] != '\t')
            name--; // the declaration's last word: "id", "args[6]"
        unsigned long at;
        const char *off = strstr(end, "offset:");
        if (!strncmp(name, field, len) && (name[len] == ';' || name[len] == '[') && off &&
            sscanf(off, "offset:%lu;", &at) == 1) {
            *offset = at;
            return true;
        }
    }
    return false;
}

static int read_field_offset(const char *event, const char *field, size_t *offset,
                             struct md_error *err)
{
    FILE *f = open_event_file(event, "format");
    bool found = f && md_perf_format_field(f, field, offset);
    if (f)
        fclose(f);
    return found ? 0 : md_fail(err, "no field %s in tracefs events/%s/format", field, event);
}

static int open_syscalls(struct md_perf *p, size_t pages, struct md_error *err)
{
    uint64_t enter = 0, exit = 0;
    if (read_tracepoint("raw_syscalls/sys_enter", &enter, err) ||
        read_tracepoint("raw_syscalls/sys_exit", &exit, err) ||
        read_field_offset("raw_syscalls/sys_enter", "id", &p->names.sys_nr_at, err) ||
        read_field_offset("raw_syscalls/sys_enter", "args", &p->names.sys_args_at, err) ||
        read_field_offset("raw_syscalls/sys_exit", "ret", &p->names.sys_ret_at, err))
        return -1;
    long cpus = sysconf(_SC_NPROCESSORS_CONF);
    if (cpus < 1)
        cpus = 1;
    p->sys_fds = calloc(2 * (size_t)cpus, sizeof *p->sys_fds);
    p->sys_enter_ids = calloc((size_t)cpus, sizeof *p->sys_enter_ids);
    p->sys_exit_ids = calloc((size_t)cpus, sizeof *p->sys_exit_ids);
    if (!p->rings)
        p->rings = calloc((size_t)cpus, sizeof *p->rings);
    if (!p->sys_fds || !p->sys_enter_ids || !p->sys_exit_ids || !p->rings)
        return md_fail(err, "perf: out of memory");
    char filter[512];
    sys_filter(filter, sizeof filter);
    size_t data_size = pages * (size_t)sysconf(_SC_PAGESIZE);
    struct tracepoint_event t_enter = {.filter = filter,
                                       .what = "raw_syscalls tracepoint",
                                       .fds = p->sys_fds,
                                       .fd_count = &p->sys_fd_count},
                            t_exit = t_enter;
    tracepoint_attr(&t_enter.into_ring, enter, MD_PERF_SYS_SAMPLE_TYPE, false, data_size);
    tracepoint_attr(&t_enter.own_ring, enter, MD_PERF_SYS_SAMPLE_TYPE, true, data_size);
    tracepoint_attr(&t_exit.into_ring, exit, MD_PERF_SYS_SAMPLE_TYPE, false, data_size);
    tracepoint_attr(&t_exit.own_ring, exit, MD_PERF_SYS_SAMPLE_TYPE, true, data_size);
    for (long cpu = 0; cpu < cpus; cpu++) {
        size_t n = p->sys_id_count;
        int rc = open_tracepoint_cpu(p, (int)cpu, &t_enter, pages, &p->sys_enter_ids[n], err);
        if (rc == 1)
            continue;
        if (rc < 0)
            return -1;
        rc = open_tracepoint_cpu(p, (int)cpu, &t_exit, pages, &p->sys_exit_ids[n], err);
        if (rc == 1) // offline since the enter event was opened: no half pairs
            return md_fail(err, "perf: CPU %ld went offline while its events were opened", cpu);
        if (rc < 0)
            return -1;
        p->sys_id_count++;
    }
    if (!p->sys_id_count)
        return md_fail(err, "perf: no online CPU accepted the raw_syscalls tracepoints");
    return 0;
}

// The monotonic time now and how far CLOCK_REALTIME is ahead of it: of 16 readings
// (realtime, monotonic, realtime), the one whose two realtime reads are closest, so that a
// preemption or a VM exit between the reads does not shift every converted time by microseconds.
// Returns that gap: the offset is its middle, off by at most half of it.
static int64_t clock_pair(int64_t *mono, int64_t *offset)
{
    int64_t best_gap = INT64_MAX;
    for (int i = 0; i < 16; i++) {
        struct timespec r0, m, r1;
        clock_gettime(CLOCK_REALTIME, &r0);
        clock_gettime(CLOCK_MONOTONIC, &m);
        clock_gettime(CLOCK_REALTIME, &r1);
        int64_t t0 = (int64_t)md_timespec_ns(r0), t1 = (int64_t)md_timespec_ns(r1);
        if (t1 < t0 || t1 - t0 >= best_gap) // a step back of the clock between the reads
            continue;
        best_gap = t1 - t0;
        *mono = (int64_t)md_timespec_ns(m);
        *offset = t0 + (t1 - t0) / 2 - *mono;
    }
    return best_gap;
}

int64_t md_perf_clock_step(int64_t offset_open, int64_t offset_collect, uint64_t error_ns)
{
    int64_t step = offset_collect - offset_open;
    uint64_t size = step < 0 ? (uint64_t)-step : (uint64_t)step;
    return size > 2 * error_ns + MD_PERF_CLOCK_STEP_MIN_NS ? step : 0;
}

// A time from CLOCK_MONOTONIC to CLOCK_REALTIME, with the offset interpolated between the two
// readings. NTP's slewing changes both clocks' rates alike: the offset moves only when
// CLOCK_REALTIME is stepped, at a time unknown here; interpolated, no converted time is off by
// more than the step, and the report says that it happened (md_perf_result.clock_step_ns).
static uint64_t to_realtime(const struct md_perf *p, uint64_t mono)
{
    // integers for the big numbers (a double's step is 256 ns at today's epoch), a double for
    // the small correction alone
    int64_t span = p->mono_collect - p->mono_open;
    int64_t drift = p->offset_collect - p->offset_open;
    int64_t into = (int64_t)mono - p->mono_open;
    int64_t correction = span > 0 ? (int64_t)((double)drift * (double)into / (double)span) : 0;
    return (uint64_t)((int64_t)mono + p->offset_open + correction);
}

// Wait and syscall times into strace's clock.
static void times_to_realtime(const struct md_perf *p, struct md_perf_result *res)
{
    for (size_t i = 0; i < res->futex_wait_count; i++)
        res->futex_waits[i].time_ns = to_realtime(p, res->futex_waits[i].time_ns);
    for (size_t i = 0; i < res->sys_event_count; i++)
        res->sys_events[i].ts_ns = to_realtime(p, res->sys_events[i].ts_ns);
    for (size_t i = 0; i < res->exec_count; i++)
        res->execs[i].ts_ns = to_realtime(p, res->execs[i].ts_ns);
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
    // The one thread that must not wait behind the program's: a ring that fills while it waits
    // loses records (60 threads on 2 CPUs lost 200,000 of 480,000 a run at normal priority, none
    // at these). It only copies records out and sleeps in poll; without the privilege for either
    // it runs as it was.
    struct sched_param fifo = {.sched_priority = 1};
    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &fifo))
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), -20);
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
    p->log.names = &p->names; // filled in before the reader starts
    unsigned top = opt->top_n ? opt->top_n : MD_PERF_TOP;
    p->names = (struct md_perf_names){
        .api = opt->alloc_api,
        .internal = opt->alloc_internal,
        .alloc_library = opt->alloc_library,
        .libc_library = opt->libc_library,
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
    // every syscall is a record: more room between the reader's passes
    size_t pages = opt->ring_pages ? opt->ring_pages
                   : opt->syscalls ? 2 * DEFAULT_RING_PAGES
                                   : DEFAULT_RING_PAGES;
    if (pages & (pages - 1)) {
        md_perf_close(p);
        return md_fail(err, "perf: ring_pages must be a power of 2, not %zu", pages);
    }
    if (open_uprobes(p, opt, err) ||
        (opt->sample_hz && open_sampling(p, pages, opt->sample_hz, err)) ||
        (opt->syscalls && open_syscalls(p, pages, err))) {
        md_perf_close(p);
        return -1;
    }
    if (opt->futex_waits)
        open_futex(p, pages);
    p->clock_gap_open = clock_pair(&p->mono_open, &p->offset_open);
    p->names.futex_ids = p->futex_ids;
    p->names.futex_id_count = p->futex_id_count;
    p->names.sys_enter_ids = p->sys_enter_ids;
    p->names.sys_exit_ids = p->sys_exit_ids;
    p->names.sys_id_count = p->sys_id_count;
    p->names.sys_marker = opt->sys_marker;
    if (p->ring_count && start_reader(p, err)) {
        md_perf_close(p);
        return -1;
    }
    *out = p;
    return 0;
}

// Whether this process's effective capabilities include bit cap (/proc/self/status, CapEff).
static bool has_capability(unsigned cap)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return false;
    char line[256];
    unsigned long long eff = 0;
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = sscanf(line, "CapEff: %llx", &eff) == 1;
    fclose(f);
    return found && cap < 64 && (eff >> cap & 1);
}

bool md_perf_syscalls_permitted(char *why, size_t size)
{
    enum { CAP_SYS_ADMIN_BIT = 21, CAP_PERFMON_BIT = 38 };
    uint64_t id;
    struct md_error err;
    if (read_tracepoint("raw_syscalls/sys_enter", &id, &err)) {
        snprintf(why, size, "%s", err.msg);
        return false;
    }
    int paranoid = 2;
    FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
    if (f) {
        if (fscanf(f, "%d", &paranoid) != 1)
            paranoid = 2;
        fclose(f);
    }
    if (paranoid <= -1 || has_capability(CAP_PERFMON_BIT) || has_capability(CAP_SYS_ADMIN_BIT))
        return true;
    snprintf(why, size,
             "recording raw tracepoint data needs CAP_PERFMON (root) or "
             "/proc/sys/kernel/perf_event_paranoid -1 (it is %d)",
             paranoid);
    return false;
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
    res->syscalls_recorded = p->sys_id_count > 0;
    if (read_uprobes(p, res, err))
        return -1;
    if (!p->ring_count)
        return 0;
    stop_reader(p);
    res->sampled = p->cpu_sampling;
    res->kernel_excluded = p->kernel_excluded;
    res->system_wide = p->system_wide;
    res->cpus = (unsigned)p->ring_count;
    int64_t gap = clock_pair(&p->mono_collect, &p->offset_collect);
    gap = gap > p->clock_gap_open ? gap : p->clock_gap_open;
    res->clock_error_ns = gap > 0 ? (uint64_t)(gap + 1) / 2 : 0;
    res->clock_step_ns = md_perf_clock_step(p->offset_open, p->offset_collect, res->clock_error_ns);
    if (p->log.dropped_other)
        return md_fail(err, "perf: out of memory storing %ju mapping/process records",
                       (uintmax_t)p->log.dropped_other);
    if (md_perf_replay(&p->log, &p->names, res, err))
        return -1;
    times_to_realtime(p, res);
    return 0;
}

void md_perf_result_free(struct md_perf_result *res)
{
    for (size_t i = 0; i < res->futex_stack_count; i++)
        free(res->futex_stacks[i].frames);
    free(res->futex_stacks);
    free(res->futex_waits);
    free(res->sys_events);
    free(res->unhooked_execs);
    res->unhooked_execs = NULL;
    res->unhooked_exec_count = 0;
    free(res->execs);
    res->execs = NULL;
    res->exec_count = res->exec_cap = 0;
    res->futex_stacks = NULL;
    res->futex_waits = NULL;
    res->sys_events = NULL;
    res->sys_event_count = 0;
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
    for (size_t i = 0; i < p->sys_fd_count; i++)
        close(p->sys_fds[i]);
    for (size_t i = 0; i < p->ring_count; i++)
        close_ring(&p->rings[i]);
    free(p->rings);
    free(p->sys_fds);
    free(p->sys_enter_ids);
    free(p->sys_exit_ids);
    free(p->futex_fds);
    free(p->futex_ids);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    md_perf_log_free(&p->log);
    free(p);
}
