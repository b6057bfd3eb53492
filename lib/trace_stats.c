// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/trace_stats.h"

#include "lib/report.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

// Request sizes no further apart than this (bytes) make one size band.
#define MD_BAND_GAP 8
#define MD_MAX_BANDS 8

static const char *const op_names[MD_OP_COUNT] = MD_OP_NAMES;

struct probe_totals {
    uint64_t ops[MD_OP_COUNT], bytes, slow, dropped;
    uint64_t tail_entries;        // threads' entries into the probe's tail mode
    uint64_t cxx_new, cxx_delete; // of ops[], the C++ operator new and delete calls
    uint64_t hist_exact[MD_HIST_EXACT], hist_log2[MD_HIST_LOG2];
};

struct slow_call {
    uint64_t start, end, size;
    int32_t tid;
    uint32_t op, stack;
    bool after_return; // MD_SLOW_AFTER_RETURN: inside a call or after it, not known which
};

struct sys_totals {
    uint64_t count, failed, dur_ns, in_alloc, unfinished;
    uint64_t by_op[MD_OP_COUNT];
    // brk only: calls that moved the break down and up, and those of each inside allocator calls
    uint64_t shrinks, grows, shrinks_in_alloc, grows_in_alloc;
};

// Which way a brk call moved its process's break.
enum brk_move {
    BRK_UNKNOWN, // no earlier break of its process to compare with, or its result is not known
    BRK_STILL,   // brk(NULL), or a call the kernel refused
    BRK_DOWN,
    BRK_UP,
};

// A brk call of a process, for ordering them by process and time.
struct brk_call {
    int32_t pid;
    uint64_t ts_ns;
    size_t at; // its index in the sorted log
};

// Syscalls attributed to calls of each size: exact below MD_HIST_EXACT, per power of two above.
// exact is calloc'd and big (MD_HIST_EXACT rows, mostly zero); the bitmap marks the rows that
// were counted, so that reading the table touches only those pages: scanning all of it faulted
// in some 110 zero pages per run, about 1.5 ms of a short trace.
struct size_table {
    uint64_t (*exact)[MD_SYS_COUNT]; // [MD_HIST_EXACT]
    uint64_t exact_used[MD_HIST_EXACT / 64];
    uint64_t log2[MD_HIST_LOG2][MD_SYS_COUNT];
};

static bool exact_used(const struct size_table *t, uint64_t size)
{
    return (t->exact_used[size / 64] >> (size % 64)) & 1;
}

struct thread_row {
    int32_t tid, pid;
    uint64_t ops;
    uint64_t sys[MD_SYS_COUNT];
};

// Everything the join accumulates; large tables live on the heap.
struct stats {
    struct probe_totals probe;
    struct sys_totals sys[MD_SYS_COUNT];
    uint64_t futex_waits, futex_wait_ns, futex_alloc_waits, futex_alloc_wait_ns;
    uint64_t mmap_len_log2[64];
    uint64_t mmap_len_in_alloc_log2[64]; // of those, the mmaps made inside allocator calls
    struct size_table requests, frees;   // syscalls by request size, and by freed block size
    struct thread_row *threads;
    size_t thread_count, thread_cap;
    uint64_t joined, outside;
    uint64_t after_return; // in a window that may run past a call's return: neither of the two
    // calls counted in processes of another pid namespace whose ids the probe could not
    // translate (negated in the file): their syscalls cannot be told apart by thread
    uint64_t foreign_ops;
};

static bool is_memory_sys(int sys)
{
    return sys != MD_SYS_FUTEX;
}

// Adds a slot's counts to the totals; returns its number of calls.
static uint64_t add_slot(struct probe_totals *t, const struct md_probe_slot *s)
{
    uint64_t ops[MD_OP_COUNT], bytes, calls = 0;
    md_probe_slot_totals(s, ops, &bytes);
    for (int op = 0; op < MD_OP_COUNT; op++) {
        t->ops[op] += ops[op];
        calls += ops[op];
    }
    t->bytes += bytes;
    t->cxx_new += s->cxx_new;
    t->cxx_delete += s->cxx_delete;
    t->slow += s->slow_calls;
    t->dropped += s->slow_dropped;
    t->tail_entries += s->tail_entries;
    for (size_t i = 0; i < MD_HIST_EXACT; i++)
        t->hist_exact[i] += s->hist_exact[i];
    for (size_t i = 0; i < MD_HIST_LOG2; i++)
        t->hist_log2[i] += s->hist_log2[i];
    return calls;
}

static struct thread_row *thread_of(struct stats *st, int32_t tid)
{
    for (size_t i = 0; i < st->thread_count; i++)
        if (st->threads[i].tid == tid)
            return &st->threads[i];
    if (st->thread_count == st->thread_cap) {
        size_t cap = st->thread_cap ? 2 * st->thread_cap : 64;
        struct thread_row *grown = realloc(st->threads, cap * sizeof *grown);
        if (!grown)
            return NULL;
        st->threads = grown;
        st->thread_cap = cap;
    }
    struct thread_row *t = &st->threads[st->thread_count++];
    memset(t, 0, sizeof *t);
    t->tid = tid;
    return t;
}

static int read_probe(struct stats *st, const struct md_probe_file *pf)
{
    struct md_probe_slot *slots = pf->view.slots;
    // Threads claim the lowest free slot and never give it back, so the claimed slots are
    // 1..n without a gap: stop at the first free one instead of touching (and, in a tmpfs file,
    // allocating) a page for each of the others.
    for (uint32_t i = 0; i < pf->view.slot_count; i++) {
        if (i && !atomic_load(&slots[i].claimed))
            break;
        uint64_t ops = add_slot(&st->probe, &slots[i]);
        if (!i || !ops)
            continue; // slot 0 pools threads that found no slot of their own
        if (slots[i].pid < 0) {
            st->foreign_ops += ops;
            continue;
        }
        struct thread_row *t = thread_of(st, slots[i].tid);
        if (!t)
            return -1;
        t->pid = slots[i].pid;
        t->ops += ops;
    }
    return 0;
}

static int by_tid_end(const void *a, const void *b)
{
    const struct slow_call *x = a, *y = b;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int by_tid_ts(const void *a, const void *b)
{
    const struct md_sys_event *x = a, *y = b;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return x->ts_ns < y->ts_ns ? -1 : x->ts_ns > y->ts_ns;
}

// The probe's slow calls in strace's clock, sorted by thread and time. A thread's calls follow
// each other, so a call cannot start before the previous one ended: that bound narrows starts
// known only as a bound (the rseq mark's boundary, which may lie well before the call; a
// tick-timed call's start, derived from its end and its duration).
static struct slow_call *slow_calls(const struct md_probe_file *pf, size_t *count)
{
    size_t n = atomic_load(&pf->view.header->slow_used);
    n = n < pf->view.slow_max ? n : pf->view.slow_max;
    struct slow_call *out = calloc(n ? n : 1, sizeof *out);
    if (!out)
        return NULL;
    const struct md_probe_slow *log = pf->view.slow_log;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (!log[i].end_realtime_ns) // reserved but never written: the process died in between
            continue;
        uint64_t end = log[i].end_realtime_ns, dur = md_probe_ticks_to_ns_bound(pf, log[i].ticks);
        uint64_t start = log[i].start_realtime_ns ? log[i].start_realtime_ns
                         : end > dur              ? end - dur
                                                  : 0;
        out[kept++] = (struct slow_call){.start = start,
                                         .end = end,
                                         .size = log[i].size,
                                         .tid = log[i].tid,
                                         .op = log[i].op,
                                         .stack = log[i].stack,
                                         .after_return = log[i].kind == MD_SLOW_AFTER_RETURN};
    }
    qsort(out, kept, sizeof *out, by_tid_end);
    for (size_t i = 1; i < kept; i++)
        if (out[i].tid == out[i - 1].tid && out[i].start < out[i - 1].end)
            out[i].start = out[i - 1].end;
    *count = kept;
    return out;
}

static void count_futex_stack(const struct md_trace_input *input, const struct md_sys_event *e,
                              const struct slow_call *in)
{
    if (!input->futex_waits_by_stack || !in || !in->stack || in->stack >= input->stack_slots)
        return;
    input->futex_waits_by_stack[in->stack]++;
    input->futex_ns_by_stack[in->stack] += e->dur_ns;
}

static void count_event(struct stats *st, const struct md_sys_event *e, const struct slow_call *in)
{
    struct sys_totals *t = &st->sys[e->sys];
    t->count++;
    t->failed += e->failed;
    t->unfinished += !e->finished;
    t->dur_ns += e->dur_ns;
    if (e->sys == MD_SYS_MMAP && e->length)
        st->mmap_len_log2[md_probe_log2_bin(e->length)]++;
    if (e->sys == MD_SYS_FUTEX && e->futex_wait) {
        st->futex_waits++;
        st->futex_wait_ns += e->dur_ns;
        st->futex_alloc_waits += in != NULL;
        st->futex_alloc_wait_ns += in ? e->dur_ns : 0;
    }
    if (!in) {
        st->outside++; // after_return counts those of them that may have been inside
        return;
    }
    st->joined++;
    t->in_alloc++;
    if (e->sys == MD_SYS_MMAP && e->length)
        st->mmap_len_in_alloc_log2[md_probe_log2_bin(e->length)]++;
    t->by_op[in->op < MD_OP_COUNT ? in->op : MD_OP_MALLOC]++;
    struct size_table *table = in->op == MD_OP_FREE ? &st->frees : &st->requests;
    if (in->size < MD_HIST_EXACT) {
        table->exact[in->size][e->sys]++;
        table->exact_used[in->size / 64] |= 1ull << (in->size % 64);
    } else {
        table->log2[md_probe_log2_bin(in->size)][e->sys]++;
    }
}

// The process of a thread: the recorder's pid (perf's), else the one the probe's slot gave the
// thread (strace names threads alone), else the thread itself (a thread that made no counted
// call, or a run without the probe: its other threads' brk calls then look like another
// process's).
static int32_t process_of(const struct stats *st, const struct md_sys_event *e)
{
    if (e->pid > 0)
        return e->pid;
    for (size_t i = 0; i < st->thread_count; i++)
        if (st->threads[i].tid == e->tid && st->threads[i].pid > 0)
            return st->threads[i].pid;
    return e->tid;
}

static int by_pid_ts(const void *a, const void *b)
{
    const struct brk_call *x = a, *y = b;
    if (x->pid != y->pid)
        return x->pid < y->pid ? -1 : 1;
    if (x->ts_ns != y->ts_ns)
        return x->ts_ns < y->ts_ns ? -1 : 1;
    return (x->at > y->at) - (x->at < y->at);
}

// The brk calls of the log (sorted by thread), by process and time.
static struct brk_call *brk_calls(const struct stats *st, const struct md_strace_log *log,
                                  size_t *count)
{
    size_t n = 0;
    for (size_t i = 0; i < log->count; i++)
        n += log->event[i].sys == MD_SYS_BRK;
    struct brk_call *calls = calloc(n ? n : 1, sizeof *calls);
    if (!calls)
        return NULL;
    n = 0;
    int32_t tid = 0, pid = 0; // the thread of the last call looked up, whose process is pid
    for (size_t i = 0; i < log->count; i++) {
        const struct md_sys_event *e = &log->event[i];
        if (e->sys != MD_SYS_BRK)
            continue;
        if (!n || e->tid != tid || e->pid > 0)
            pid = process_of(st, e), tid = e->tid;
        calls[n++] = (struct brk_call){.pid = pid, .ts_ns = e->ts_ns, .at = i};
    }
    if (n)
        qsort(calls, n, sizeof *calls, by_pid_ts);
    *count = n;
    return calls;
}

// Which way each brk call of log (sorted by thread) moved its process's break, into moves (one
// per event of log): each call's resulting break against the previous result in its process.
// The break belongs to the address space, so the reference is per process (its threads' calls
// change one break), in the order of the calls' entries: glibc makes them under its main
// arena's lock, so they do not overlap. brk(NULL) moves nothing but reads the break, which makes
// it the reference: a new image after an exec starts with one (the loader, or libc's first
// sbrk), so its break is not compared with the old image's. A call with no reference, such as a
// forked child's first, is unknown.
static int brk_moves(const struct stats *st, const struct md_strace_log *log, uint8_t *moves)
{
    size_t n;
    struct brk_call *calls = brk_calls(st, log, &n);
    if (!calls)
        return -1;
    uint64_t ref = 0; // the last known break of calls[i - 1]'s process; 0: none
    for (size_t i = 0; i < n; i++) {
        const struct md_sys_event *e = &log->event[calls[i].at];
        if (i && calls[i].pid != calls[i - 1].pid)
            ref = 0;
        uint64_t after = e->finished ? e->brk_after : 0;
        moves[calls[i].at] = !after || (!ref && e->address) ? BRK_UNKNOWN
                             : !e->address || after == ref  ? BRK_STILL
                             : after < ref                  ? BRK_DOWN
                                                            : BRK_UP;
        ref = after;
    }
    free(calls);
    return 0;
}

static void count_brk(struct sys_totals *t, enum brk_move move, bool inside)
{
    t->shrinks += move == BRK_DOWN;
    t->grows += move == BRK_UP;
    t->shrinks_in_alloc += move == BRK_DOWN && inside;
    t->grows_in_alloc += move == BRK_UP && inside;
}

// Walks events and slow calls, both sorted by (thread, time), in one merge.
static int join(struct stats *st, const struct md_trace_input *input, const struct slow_call *slow,
                size_t slow_count)
{
    struct md_strace_log *log = input->log;
    if (log->count) // qsort(NULL, 0) is undefined
        qsort(log->event, log->count, sizeof *log->event, by_tid_ts);
    uint8_t *moves = calloc(log->count ? log->count : 1, 1);
    if (!moves || brk_moves(st, log, moves)) {
        free(moves);
        return -1;
    }
    size_t j = 0;
    struct thread_row *row = NULL;
    uint64_t slack = input->join_slack_ns;
    for (size_t i = 0; i < log->count; i++) {
        const struct md_sys_event *e = &log->event[i];
        if ((!row || row->tid != e->tid) && !(row = thread_of(st, e->tid))) {
            free(moves);
            return -1;
        }
        row->sys[e->sys]++;
        while (j < slow_count &&
               (slow[j].tid < e->tid || (slow[j].tid == e->tid && slow[j].end + slack < e->ts_ns)))
            j++;
        bool in_window =
            j < slow_count && slow[j].tid == e->tid && slow[j].start <= e->ts_ns + slack;
        bool inside = in_window && !slow[j].after_return;
        st->after_return += in_window && slow[j].after_return;
        count_event(st, e, inside ? &slow[j] : NULL);
        if (e->sys == MD_SYS_BRK)
            count_brk(&st->sys[MD_SYS_BRK], (enum brk_move)moves[i], inside);
        if (e->sys == MD_SYS_FUTEX && e->futex_wait)
            count_futex_stack(input, e, inside ? &slow[j] : NULL);
    }
    free(moves);
    return 0;
}

// --- JSON -----------------------------------------------------------------------------------

static uint64_t total_ops(const uint64_t *ops)
{
    uint64_t n = 0;
    for (int op = 0; op < MD_OP_COUNT; op++)
        n += ops[op];
    return n;
}

// How many of the counted calls were C++'s operator new and delete: only the preload probe
// interposes them (the static probe and uprobes count the malloc calls behind libstdc++'s new).
static void add_cxx_ops(cJSON *o, const struct probe_totals *p, const char *source)
{
    bool known = source && !strcmp(source, "probe");
    md_json_num_or_null(o, "operator_new", known, (double)p->cxx_new);
    md_json_num_or_null(o, "operator_delete", known, (double)p->cxx_delete);
}

static void add_ops(cJSON *report, const uint64_t *ops, const char *source,
                    const struct probe_totals *p)
{
    // every key in every report, null where not counted: a CI script reads ops.malloc without a
    // KeyError; --ops N gives a total, not which calls
    cJSON *o = cJSON_AddObjectToObject(report, "ops");
    bool split = source && strcmp(source, "--ops") != 0;
    md_json_num_or_null(o, "total", source != NULL, (double)total_ops(ops));
    for (int op = 0; op < MD_OP_COUNT; op++)
        md_json_num_or_null(o, op_names[op], split, (double)ops[op]);
    add_cxx_ops(o, p, source);
    md_json_str(o, "source", source);
}

static void add_per_op(cJSON *o, const char *key, uint64_t count, uint64_t ops)
{
    if (ops)
        cJSON_AddNumberToObject(o, key, (double)count / (double)ops);
    else
        cJSON_AddNullToObject(o, key);
}

// Which way brk moved the break (only calls whose direction is known count); of the shrinks and
// grows, those inside allocator calls (which trimmed and grew the heap) when attributed, else
// null.
static void add_brk_moves(cJSON *o, const struct sys_totals *t, bool attributed)
{
    cJSON_AddNumberToObject(o, "shrinks", (double)t->shrinks);
    cJSON_AddNumberToObject(o, "grows", (double)t->grows);
    md_json_num_or_null(o, "shrinks_in_allocator", attributed, (double)t->shrinks_in_alloc);
    md_json_num_or_null(o, "grows_in_allocator", attributed, (double)t->grows_in_alloc);
}

static void add_in_allocator(cJSON *o, const struct sys_totals *t, uint64_t ops, bool attributed)
{
    if (!attributed) {
        cJSON_AddNullToObject(o, "in_allocator");
        cJSON_AddNullToObject(o, "in_allocator_per_op");
        cJSON_AddNullToObject(o, "in_allocator_by_op");
        return;
    }
    cJSON_AddNumberToObject(o, "in_allocator", (double)t->in_alloc);
    add_per_op(o, "in_allocator_per_op", t->in_alloc, ops);
    cJSON *by = cJSON_AddObjectToObject(o, "in_allocator_by_op");
    for (int op = 0; op < MD_OP_COUNT; op++)
        cJSON_AddNumberToObject(by, op_names[op], (double)t->by_op[op]);
}

// attributed: whether the probe's windows say which calls were inside the allocator.
static void add_syscalls(cJSON *report, const struct stats *st, uint64_t ops, bool attributed)
{
    cJSON *arr = cJSON_AddArrayToObject(report, "syscalls");
    for (int s = 0; s < MD_SYS_COUNT; s++) {
        const struct sys_totals *t = &st->sys[s];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", md_sys_name((enum md_sys)s));
        cJSON_AddNumberToObject(o, "count", (double)t->count);
        cJSON_AddNumberToObject(o, "failed", (double)t->failed);
        cJSON_AddNumberToObject(o, "unfinished", (double)t->unfinished);
        cJSON_AddNumberToObject(o, "seconds", (double)t->dur_ns / 1e9);
        add_per_op(o, "per_op", t->count, ops);
        add_in_allocator(o, t, ops, attributed);
        if (s == MD_SYS_BRK)
            add_brk_moves(o, t, attributed);
        cJSON_AddItemToArray(arr, o);
    }
}

// attributed: as for add_syscalls. Without it no wait is tied to a call (uprobes count calls
// but mark no window; calls in another pid namespace cannot be matched): the allocator's waits
// are null, unknown, not 0, which would say that no call waited.
static void add_futex(cJSON *report, const struct stats *st, double wall, uint64_t ops,
                      bool attributed)
{
    cJSON *o = cJSON_AddObjectToObject(report, "futex");
    cJSON_AddNumberToObject(o, "calls", (double)st->sys[MD_SYS_FUTEX].count);
    cJSON_AddNumberToObject(o, "waits", (double)st->futex_waits);
    cJSON_AddNumberToObject(o, "wait_seconds", (double)st->futex_wait_ns / 1e9);
    cJSON_AddNumberToObject(o, "wait_share_of_wall",
                            wall > 0 ? (double)st->futex_wait_ns / 1e9 / wall : 0);
    if (!attributed) {
        cJSON_AddNullToObject(o, "allocator_waits");
        cJSON_AddNullToObject(o, "allocator_wait_seconds");
        cJSON_AddNullToObject(o, "allocator_waits_per_op");
        return;
    }
    cJSON_AddNumberToObject(o, "allocator_waits", (double)st->futex_alloc_waits);
    cJSON_AddNumberToObject(o, "allocator_wait_seconds", (double)st->futex_alloc_wait_ns / 1e9);
    add_per_op(o, "allocator_waits_per_op", st->futex_alloc_waits, ops);
}

static void add_range(cJSON *arr, uint64_t from, uint64_t to, uint64_t count)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "from", (double)from);
    cJSON_AddNumberToObject(o, "to", (double)to);
    cJSON_AddNumberToObject(o, "count", (double)count);
    cJSON_AddItemToArray(arr, o);
}

static uint64_t log2_top(int bin)
{
    return bin >= 63 ? UINT64_MAX : (2ull << bin) - 1;
}

static void add_length_bins(cJSON *report, const char *key, const uint64_t *log2)
{
    cJSON *arr = cJSON_AddArrayToObject(report, key);
    for (int b = 0; b < 64; b++)
        if (log2[b])
            add_range(arr, 1ull << b, log2_top(b), log2[b]);
}

// attributed: as for add_syscalls. The run's mappings, and those the allocator made: a program
// that maps its own buffers would otherwise name their length for the allocator's churn (MD006).
static void add_mmap_lengths(cJSON *report, const struct stats *st, bool attributed)
{
    add_length_bins(report, "mmap_lengths", st->mmap_len_log2);
    if (attributed)
        add_length_bins(report, "mmap_lengths_in_allocator", st->mmap_len_in_alloc_log2);
    else
        cJSON_AddNullToObject(report, "mmap_lengths_in_allocator");
}

static void add_requests(cJSON *report, const struct probe_totals *p, bool have)
{
    cJSON *o = cJSON_AddObjectToObject(report, "requests");
    if (!have) { // the keys of a measured run, null or empty
        cJSON_AddNullToObject(o, "count");
        cJSON_AddNullToObject(o, "bytes");
        cJSON_AddArrayToObject(o, "histogram");
        return;
    }
    uint64_t log2[MD_HIST_LOG2];
    memcpy(log2, p->hist_log2, sizeof log2);
    for (size_t s = 0; s < MD_HIST_EXACT; s++) // fold the exact counts into the same buckets
        log2[md_probe_log2_bin(s)] += p->hist_exact[s];
    cJSON_AddNumberToObject(o, "count", (double)(total_ops(p->ops) - p->ops[MD_OP_FREE]));
    cJSON_AddNumberToObject(o, "bytes", (double)p->bytes);
    cJSON *arr = cJSON_AddArrayToObject(o, "histogram");
    for (int b = 0; b < MD_HIST_LOG2; b++)
        if (log2[b])
            add_range(arr, b ? 1ull << b : 0, log2_top(b), log2[b]);
}

struct band {
    uint64_t from, to, requests, memory;
    uint64_t sys[MD_SYS_COUNT];
};

static uint64_t memory_of(const uint64_t *sys)
{
    uint64_t n = 0;
    for (int s = 0; s < MD_SYS_COUNT; s++)
        n += is_memory_sys(s) ? sys[s] : 0;
    return n;
}

static void band_add(struct band *b, const uint64_t *sys, uint64_t requests)
{
    for (int s = 0; s < MD_SYS_COUNT; s++)
        b->sys[s] += sys[s];
    b->memory += memory_of(sys);
    b->requests += requests;
}

// Groups sizes that made memory syscalls into bands of neighbouring sizes. hist_exact and
// hist_log2 count requests per size (NULL for freed blocks, whose sizes are not counted).
static size_t find_bands(const struct size_table *t, const uint64_t *hist_exact,
                         const uint64_t *hist_log2, struct band *out, size_t max)
{
    size_t n = 0;
    for (uint64_t size = 0; size < MD_HIST_EXACT; size++) {
        if (!exact_used(t, size) || !memory_of(t->exact[size]))
            continue;
        if (n && size - out[n - 1].to <= MD_BAND_GAP) {
            for (uint64_t s = out[n - 1].to + 1; s < size && hist_exact; s++) // the gap
                out[n - 1].requests += hist_exact[s];
            out[n - 1].to = size;
        } else if (n < max) {
            out[n++] = (struct band){.from = size, .to = size};
        } else {
            continue;
        }
        band_add(&out[n - 1], t->exact[size], hist_exact ? hist_exact[size] : 0);
    }
    for (int b = 0; b < MD_HIST_LOG2 && n < max; b++)
        if (memory_of(t->log2[b])) {
            out[n] = (struct band){.from = 1ull << b, .to = log2_top(b)};
            band_add(&out[n++], t->log2[b], hist_log2 ? hist_log2[b] : 0);
        }
    return n;
}

static int by_memory_desc(const void *a, const void *b)
{
    const struct band *x = a, *y = b;
    return x->memory < y->memory ? 1 : x->memory > y->memory ? -1 : 0;
}

static uint64_t all_memory_syscalls(const struct stats *st)
{
    uint64_t n = 0;
    for (int s = 0; s < MD_SYS_COUNT; s++)
        n += is_memory_sys(s) ? st->sys[s].count : 0;
    return n;
}

// "size_bands" (request sizes, with their share of requests) or "free_bands" (freed block sizes).
static void add_bands(cJSON *report, const char *key, const struct stats *st,
                      const struct size_table *t, bool requests_known)
{
    struct band bands[64];
    const struct probe_totals *p = &st->probe;
    size_t n = find_bands(t, requests_known ? p->hist_exact : NULL,
                          requests_known ? p->hist_log2 : NULL, bands, 64);
    qsort(bands, n, sizeof bands[0], by_memory_desc);
    uint64_t all = all_memory_syscalls(st), requests = total_ops(p->ops) - p->ops[MD_OP_FREE];
    cJSON *arr = cJSON_AddArrayToObject(report, key);
    for (size_t i = 0; i < n && i < MD_MAX_BANDS; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "from", (double)bands[i].from);
        cJSON_AddNumberToObject(o, "to", (double)bands[i].to);
        if (requests_known) {
            cJSON_AddNumberToObject(o, "requests", (double)bands[i].requests);
            cJSON_AddNumberToObject(o, "request_share",
                                    requests ? (double)bands[i].requests / (double)requests : 0);
        }
        cJSON_AddNumberToObject(o, "memory_syscalls", (double)bands[i].memory);
        cJSON_AddNumberToObject(o, "memory_syscall_share",
                                all ? (double)bands[i].memory / (double)all : 0);
        cJSON *sys = cJSON_AddObjectToObject(o, "syscalls");
        for (int s = 0; s < MD_SYS_COUNT; s++)
            cJSON_AddNumberToObject(sys, md_sys_name((enum md_sys)s), (double)bands[i].sys[s]);
        cJSON_AddItemToArray(arr, o);
    }
}

static void add_threads(cJSON *report, const struct stats *st)
{
    cJSON *arr = cJSON_AddArrayToObject(report, "threads");
    for (size_t i = 0; i < st->thread_count; i++) {
        const struct thread_row *t = &st->threads[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "tid", t->tid);
        if (t->pid)
            cJSON_AddNumberToObject(o, "pid", t->pid);
        else
            cJSON_AddNullToObject(o, "pid");
        cJSON_AddNumberToObject(o, "ops", (double)t->ops);
        cJSON *sys = cJSON_AddObjectToObject(o, "syscalls");
        for (int s = 0; s < MD_SYS_COUNT; s++)
            cJSON_AddNumberToObject(sys, md_sys_name((enum md_sys)s), (double)t->sys[s]);
        cJSON_AddItemToArray(arr, o);
    }
}

static void add_attribution(cJSON *report, const struct stats *st, const struct md_strace_log *log,
                            bool have_probe, uint32_t method)
{
    cJSON *o = cJSON_AddObjectToObject(report, "attribution");
    cJSON_AddBoolToObject(o, "available", have_probe && !st->foreign_ops);
    cJSON_AddNumberToObject(o, "other_pid_namespace_calls", (double)st->foreign_ops);
    static const char *const methods[] = {NULL, "ticks", "rseq", "rseq+ticks"};
    md_json_str(o, "method", methods[method & 3]);
    // how freed blocks were sized (free_bands): glibc's chunk headers read inline by the probe
    cJSON_AddBoolToObject(o, "free_sizes_from_chunks", method & MD_METHOD_CHUNK_SIZES);
    cJSON_AddNumberToObject(o, "slow_calls", (double)st->probe.slow);
    cJSON_AddNumberToObject(o, "slow_calls_dropped", (double)st->probe.dropped);
    cJSON_AddNumberToObject(o, "tail_mode_entries", (double)st->probe.tail_entries);
    cJSON_AddNumberToObject(o, "events_in_allocator", (double)st->joined);
    cJSON_AddNumberToObject(o, "events_outside", (double)st->outside);
    cJSON_AddNumberToObject(o, "events_after_return", (double)st->after_return);
    cJSON_AddNumberToObject(o, "strace_lines", (double)log->lines);
    cJSON_AddNumberToObject(o, "strace_lines_unparsed", (double)log->unparsed);
}

int md_trace_stats(struct md_trace_input *in, cJSON *report, struct md_error *err)
{
    struct stats *st = calloc(1, sizeof *st);
    if (!st || !(st->requests.exact = calloc(MD_HIST_EXACT, sizeof *st->requests.exact)) ||
        !(st->frees.exact = calloc(MD_HIST_EXACT, sizeof *st->frees.exact))) {
        if (st)
            free(st->requests.exact);
        free(st);
        return md_fail(err, "out of memory");
    }
    struct slow_call *slow = NULL;
    size_t slow_count = 0;
    int rc = 0;
    if (in->probe) {
        rc = read_probe(st, in->probe);
        if (!rc && !(slow = slow_calls(in->probe, &slow_count)))
            rc = -1;
        memcpy(in->ops, st->probe.ops, sizeof in->ops);
    }
    if (!rc)
        rc = join(st, in, slow, slow_count);
    if (!rc) {
        uint64_t ops = in->ops_source ? total_ops(in->ops) : 0;
        add_ops(report, in->ops, in->ops_source, &st->probe);
        // a part of the calls that cannot be tied to their syscalls would make every
        // in-allocator count a silent undercount: none is given
        bool attributed = in->probe && !st->foreign_ops;
        add_syscalls(report, st, ops, attributed);
        add_futex(report, st, in->wall_seconds, ops, attributed);
        add_mmap_lengths(report, st, attributed);
        add_requests(report, &st->probe, in->probe != NULL);
        add_bands(report, "size_bands", st, &st->requests, true);
        add_bands(report, "free_bands", st, &st->frees, false);
        add_threads(report, st);
        add_attribution(report, st, in->log, in->probe != NULL,
                        in->probe ? atomic_load(&in->probe->header->method) : 0);
    }
    free(slow);
    free(st->threads);
    free(st->requests.exact);
    free(st->frees.exact);
    free(st);
    return rc ? md_fail(err, "out of memory") : 0;
}
