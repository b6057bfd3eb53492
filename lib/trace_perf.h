// SPDX-License-Identifier: GPL-3.0-or-later
// trace's use of the perf module: uprobes that count the allocator calls of programs the preload
// probe cannot see (static, or defining malloc themselves), and CPU sampling that measures the
// share of time spent inside the allocator, for every program.
#ifndef MD_TRACE_PERF_H
#define MD_TRACE_PERF_H

#include <stdbool.h>
#include <sys/types.h>

#include <cJSON.h>

#include "alloc/probe_shared.h"
#include "alloc/probe_static.h"
#include "lib/perf.h"
#include "lib/strace.h"

struct md_trace_perf {
    struct md_perf *perf;
    struct md_uprobe_spec uprobe[MD_STATIC_KINDS]; // at most one per hooked function
    int uprobe_op[MD_STATIC_KINDS];
    size_t uprobe_count;
    const char *internal[64]; // the active allocator's own function names (from its signature)
    char alloc_library[4096]; // a library that is all allocator (canonical path), or empty
    char libc_library[4096];  // else the libc whose own allocator serves malloc, or empty
    unsigned sample_hz;
    bool futex_stacks;     // sample the stack of every blocking futex call (--stacks)
    bool syscalls;         // record the memory and futex syscalls (lib/perf.h); required
    bool syscalls_refused; // md_trace_perf_start failed the run: the syscalls could not be opened
    bool collected;        // result holds what md_trace_perf_finish collected
    struct md_perf_result result;
    bool calloc_calls_malloc; // musl: calloc() is malloc() + memset, counted twice by uprobes
    char error[320];          // why perf could not be used, when it could not
    // the program has none of the allocator's symbols: its samples cannot be told apart
    bool allocator_unknown;
};

// Prepares uprobes on the allocator entry points of path when want_uprobes; sampling at
// sample_hz (0: none); futex wait stacks when futex_stacks. active_id names the allocator whose
// internals count as allocator time; provider (or NULL), the shared library that serves malloc:
// every function of it does unless it is a libc (glibc's or musl's allocator active), whose
// unnamed code is counted apart (cpu.unnamed_allocator_library_samples).
void md_trace_perf_prepare(struct md_trace_perf *tp, const char *path, bool want_uprobes,
                           const char *active_id, const char *libc, const char *provider,
                           unsigned sample_hz, bool futex_stacks);
// md_run's before_start: opens the events on the stopped process. Fails the run only when the
// syscalls were asked for (tp->syscalls, set after prepare) and cannot be recorded; without the
// other events the report says why.
int md_trace_perf_start(pid_t pid, void *ctx, struct md_error *err);
// After the run: operation counts into ops (when uprobes counted them) and the "cpu" object.
// The collected result stays in tp->result (futex waits) until md_trace_perf_close.
bool md_trace_perf_finish(struct md_trace_perf *tp, uint64_t *ops, cJSON *report);
// The sampled futex waits, or NULL with the reason in why (at least 256 bytes).
const struct md_perf_result *md_trace_perf_futex(const struct md_trace_perf *tp, char *why,
                                                 size_t size);
// The recorded syscalls (tp->syscalls), moved into log; false when there are none. lost: the
// records the kernel could not store.
bool md_trace_perf_take_syscalls(struct md_trace_perf *tp, struct md_strace_log *log,
                                 uint64_t *lost);
void md_trace_perf_close(struct md_trace_perf *tp);

#endif
