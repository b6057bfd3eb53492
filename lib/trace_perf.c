// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/trace_perf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/probe_static.h"
#include "lib/report.h"
#include "lib/symbolize.h"
#include "rules/signatures.h"

// Entry points counted with uprobes, by operation: the functions the static probe hooks
// (MD_STATIC_KIND_NAMES), so both modes count the same calls. A uprobe counts every entry, also
// the allocator's calls to its own public functions: musl's memalign, posix_memalign and valloc
// all end in its aligned_alloc (valloc through memalign), so with musl's allocator only
// aligned_alloc is probed; glibc's reach its internal _mid_memalign, not one another, but that
// hands an alignment of at most 16 to malloc, so such a call counts as aligned and as malloc.
static const struct {
    enum md_static_kind kind;
    enum md_probe_op op;
    bool musl_wrapper; // musl implements it by calling aligned_alloc
} entry_points[] = {
    {MD_STATIC_MALLOC, MD_OP_MALLOC, false},         {MD_STATIC_FREE, MD_OP_FREE, false},
    {MD_STATIC_CALLOC, MD_OP_CALLOC, false},         {MD_STATIC_REALLOC, MD_OP_REALLOC, false},
    {MD_STATIC_ALIGNED_ALLOC, MD_OP_ALIGNED, false}, {MD_STATIC_MEMALIGN, MD_OP_ALIGNED, true},
    {MD_STATIC_POSIX_MEMALIGN, MD_OP_ALIGNED, true}, {MD_STATIC_VALLOC, MD_OP_ALIGNED, true},
    {MD_STATIC_PVALLOC, MD_OP_ALIGNED, true},
};
static const char *const kind_names[MD_STATIC_KINDS] = MD_STATIC_KIND_NAMES;

// A sample whose callchain passes through one of these is inside the allocator.
static const char *const alloc_api[] = {
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
    "__libc_malloc",
    "__libc_free",
    "__libc_calloc",
    "__libc_realloc",
    "__libc_malloc_impl",
    "_Znwm",
    "_Znam",
    "_ZdlPv",
    "_ZdaPv",
    "_ZdlPvm",
    "_ZdaPvm",
    NULL,
};

static void collect_internal(struct md_trace_perf *tp, const char *active_id)
{
    const struct md_signature *sig = active_id ? md_signature_find(active_id) : NULL;
    size_t n = 0;
    for (const char *const *s = sig ? sig->symbols : NULL; s && *s && n + 1 < 64; s++)
        if (!strchr(*s, '*')) // prefixes cannot be handed over as names
            tp->internal[n++] = *s;
    tp->internal[n] = NULL;
}

// Whether the allocator is the libc's own: its library holds the rest of the libc too.
static bool libc_family(const struct md_signature *active)
{
    return active && (!strcmp(active->family, "glibc") || !strcmp(active->family, "musl"));
}

void md_trace_perf_prepare(struct md_trace_perf *tp, const char *path, bool want_uprobes,
                           const char *active_id, const char *libc, const char *provider,
                           unsigned sample_hz, bool futex_stacks)
{
    memset(tp, 0, sizeof *tp);
    const struct md_signature *active = active_id ? md_signature_find(active_id) : NULL;
    char *library = libc_family(active) ? tp->libc_library : tp->alloc_library;
    if (provider && !realpath(provider, library)) // as the maps name it
        library[0] = 0;
    tp->sample_hz = sample_hz;
    tp->futex_stacks = futex_stacks;
    // musl's own allocator, not the libc: a static musl program may link jemalloc or mdalloc,
    // whose aligned functions and calloc are their own (an unknown allocator: the libc's guess)
    bool musl = active ? !strcmp(active->family, "musl") : libc && !strcmp(libc, "musl");
    tp->calloc_calls_malloc = musl;
    collect_internal(tp, active_id);
    for (size_t i = 0; want_uprobes && i < sizeof entry_points / sizeof entry_points[0]; i++) {
        struct md_error err;
        uint64_t offset;
        const char *name = kind_names[entry_points[i].kind];
        if ((musl && entry_points[i].musl_wrapper) || md_elf_func_offset(path, name, &offset, &err))
            continue;       // not every program has every entry point
        bool alias = false; // glibc's aligned_alloc is its memalign: one probe, one count
        for (size_t j = 0; j < tp->uprobe_count && !alias; j++)
            alias = tp->uprobe[j].file_offset == offset;
        if (alias)
            continue;
        tp->uprobe[tp->uprobe_count] =
            (struct md_uprobe_spec){.name = name, .path = path, .file_offset = offset};
        tp->uprobe_op[tp->uprobe_count++] = entry_points[i].op;
    }
    tp->allocator_unknown = want_uprobes && !tp->uprobe_count;
    if (tp->allocator_unknown)
        snprintf(tp->error, sizeof tp->error,
                 "%s has no allocator symbols (stripped, or it never allocates): its allocator's "
                 "functions cannot be told apart in the samples",
                 path);
}

// Opens the events asked for in tp; without extras, no CPU sampling and no futex stacks.
static int open_perf(struct md_trace_perf *tp, pid_t pid, bool extras, bool with_uprobes,
                     struct md_error *err)
{
    struct md_perf_options opt = {.uprobes = tp->uprobe,
                                  .uprobe_count = with_uprobes ? tp->uprobe_count : 0,
                                  .sample_hz = extras ? tp->sample_hz : 0,
                                  .alloc_api = alloc_api,
                                  .alloc_internal = tp->internal,
                                  .alloc_library = tp->alloc_library[0] ? tp->alloc_library : NULL,
                                  .libc_library = tp->libc_library[0] ? tp->libc_library : NULL,
                                  .futex_waits = extras && tp->futex_stacks,
                                  .syscalls = tp->syscalls,
                                  .sys_marker = MD_STATIC_MARKER};
    return md_perf_open(&tp->perf, pid, &opt, err);
}

// What to give up, in this order, when perf refuses the events: sampling and futex stacks, then
// the uprobes, then both. The syscalls, when perf records them, are never given up: without them
// the report has nothing (the run fails, and trace may fall back to strace).
static const struct {
    bool extras, uprobes;
    const char *unavailable; // what the report says is missing, NULL for everything
} attempts[] = {
    {true, true, NULL},
    {false, true, "CPU sampling and futex stacks unavailable"},
    {true, false, "uprobes unavailable"},
    {false, false, "uprobes, CPU sampling and futex stacks unavailable"},
};

int md_trace_perf_start(pid_t pid, void *ctx, struct md_error *err)
{
    struct md_trace_perf *tp = ctx;
    bool extras = tp->sample_hz || tp->futex_stacks;
    if (!tp->uprobe_count && !tp->syscalls && !extras)
        return 0;
    struct md_error first, last;
    for (size_t i = 0; i < sizeof attempts / sizeof attempts[0]; i++) {
        // an attempt that leaves out what was not asked for is one made already; one with
        // nothing left to open is not made
        if (i && ((!attempts[i].extras && !extras) || (!attempts[i].uprobes && !tp->uprobe_count) ||
                  (!attempts[i].uprobes && !attempts[i].extras && !tp->syscalls)))
            continue;
        if (!open_perf(tp, pid, attempts[i].extras, attempts[i].uprobes, i ? &last : &first)) {
            if (i)
                snprintf(tp->error, sizeof tp->error, "%s: %s", attempts[i].unavailable, first.msg);
            return 0;
        }
        if (!i)
            last = first;
    }
    tp->perf = NULL;
    if (tp->syscalls) { // the last attempt's reason: the syscall events' own, or closest to it
        tp->syscalls_refused = true;
        return md_fail(err, "%s", last.msg);
    }
    snprintf(tp->error, sizeof tp->error, "perf unavailable (needs root or CAP_PERFMON): %s",
             first.msg);
    return 0;
}

static cJSON *functions_json(const struct md_perf_func *f, size_t n, uint64_t total)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", f[i].name);
        cJSON_AddNumberToObject(o, "samples", (double)f[i].samples);
        cJSON_AddNumberToObject(o, "share", total ? (double)f[i].samples / (double)total : 0);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static void add_cpu(cJSON *report, const struct md_perf_result *r, const char *error,
                    bool allocator_unknown, bool libc_library)
{
    cJSON *o = cJSON_AddObjectToObject(report, "cpu");
    cJSON_AddBoolToObject(o, "sampled", r && r->sampled);
    md_json_str(o, "error", error && *error ? error : NULL);
    if (!r || !r->sampled) { // the same keys either way, null: a reader need not test for them
        static const char *const keys[] = {"scope",
                                           "samples",
                                           "allocator_samples",
                                           "allocator_share",
                                           "unnamed_allocator_library_samples",
                                           "kernel_samples",
                                           "lost",
                                           "top_allocator_functions",
                                           "top_functions",
                                           "measurement_samples"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            cJSON_AddNullToObject(o, keys[i]);
        return;
    }
    // "system": whole CPUs sampled, the program's processes kept; "process": per-process events
    md_json_str(o, "scope", r->system_wide ? "system" : "process");
    cJSON_AddNumberToObject(o, "samples", (double)r->samples_total);
    if (allocator_unknown) {
        cJSON_AddNullToObject(o, "allocator_samples");
        cJSON_AddNullToObject(o, "allocator_share");
    } else {
        cJSON_AddNumberToObject(o, "allocator_samples", (double)r->samples_alloc);
        cJSON_AddNumberToObject(
            o, "allocator_share",
            r->samples_total ? (double)r->samples_alloc / (double)r->samples_total : 0);
    }
    // what allocator_share may have missed: the libc's code that has no symbol to name it
    md_json_num_or_null(o, "unnamed_allocator_library_samples", libc_library,
                        (double)r->samples_unnamed_libc);
    // null: without root (perf_event_paranoid 2) only user mode was sampled, so the kernel's time
    // (the allocator's syscalls and page faults) is in no sample, not 0 of them
    md_json_num_or_null(o, "kernel_samples", !r->kernel_excluded, (double)r->samples_kernel);
    cJSON_AddNumberToObject(o, "lost", (double)r->samples_lost);
    // left out of samples: in the probe's own code, or in the kernel handling our uprobes
    cJSON_AddNumberToObject(o, "measurement_samples",
                            (double)(r->samples_probe + r->samples_uprobe));
    cJSON_AddItemToObject(o, "top_allocator_functions",
                          functions_json(r->top_alloc, r->top_alloc_count, r->samples_total));
    cJSON_AddItemToObject(o, "top_functions",
                          functions_json(r->top_all, r->top_all_count, r->samples_total));
}

bool md_trace_perf_finish(struct md_trace_perf *tp, uint64_t *ops, cJSON *report)
{
    struct md_perf_result *r = &tp->result;
    struct md_error err;
    bool counted = false;
    if (tp->perf && md_perf_collect(tp->perf, r, &err)) {
        md_perf_result_free(r);
        snprintf(tp->error, sizeof tp->error, "%s", err.msg);
        add_cpu(report, NULL, tp->error, tp->allocator_unknown, false);
        return false;
    }
    tp->collected = tp->perf != NULL;
    if (tp->perf && tp->uprobe_count && r->uprobe_count) { // not when only the syscalls opened
        for (size_t i = 0; i < tp->uprobe_count && i < r->uprobe_count; i++)
            ops[tp->uprobe_op[i]] += r->uprobe_hits[i];
        if (tp->calloc_calls_malloc) // musl's calloc enters malloc too: count it once
            ops[MD_OP_MALLOC] -= ops[MD_OP_CALLOC] < ops[MD_OP_MALLOC] ? ops[MD_OP_CALLOC] : 0;
        counted = true;
    }
    add_cpu(report, tp->perf ? r : NULL, tp->error, tp->allocator_unknown,
            tp->libc_library[0] != 0);
    return counted;
}

const struct md_perf_result *md_trace_perf_futex(const struct md_trace_perf *tp, char *why,
                                                 size_t size)
{
    if (tp->collected && tp->result.futex_sampled)
        return &tp->result;
    if (tp->collected && tp->result.futex_error[0])
        snprintf(why, size, "%s", tp->result.futex_error);
    else if (tp->error[0])
        snprintf(why, size, "%s", tp->error);
    else
        snprintf(why, size, "perf events could not be collected");
    return NULL;
}

bool md_trace_perf_take_syscalls(struct md_trace_perf *tp, struct md_strace_log *log,
                                 uint64_t *lost)
{
    struct md_perf_result *r = &tp->result;
    if (!tp->collected || !r->syscalls_recorded)
        return false;
    free(log->event);
    log->event = r->sys_events;
    log->count = log->cap = r->sys_event_count;
    log->exits = r->process_exits;
    log->probe_own = r->sys_probe_own;
    r->sys_events = NULL;
    r->sys_event_count = 0;
    free(log->unhooked_execs);
    log->unhooked_execs = r->unhooked_execs;
    log->unhooked_exec_count = r->unhooked_exec_count;
    r->unhooked_execs = NULL;
    r->unhooked_exec_count = 0;
    free(log->execs);
    log->execs = r->execs;
    log->exec_count = log->exec_cap = r->exec_count;
    r->execs = NULL;
    r->exec_count = r->exec_cap = 0;
    *lost = r->sys_lost;
    return true;
}

void md_trace_perf_close(struct md_trace_perf *tp)
{
    if (tp->perf)
        md_perf_close(tp->perf);
    tp->perf = NULL;
    md_perf_result_free(&tp->result);
    tp->collected = false;
}
