// SPDX-License-Identifier: GPL-3.0-or-later
// From raw material (strace events, the probe's counters and slow-call log) to the numbers of a
// trace report: syscalls per allocator operation, per thread, futex blocking, mmap lengths, the
// request-size histogram, and which request sizes made the syscalls (size bands).
#ifndef MD_TRACE_STATS_H
#define MD_TRACE_STATS_H

#include <cJSON.h>

#include "lib/probe_file.h"
#include "lib/strace.h"

#define MD_OP_NAMES                                                                                \
    {                                                                                              \
        "malloc", "free", "calloc", "realloc", "aligned"                                           \
    }

struct md_trace_input {
    struct md_strace_log *log;   // events; sorted in place
    struct md_probe_file *probe; // counters and slow calls, or NULL without the preload probe
    uint64_t ops[MD_OP_COUNT];   // operation counts when there is no probe (uprobes or --ops)
    const char *ops_source;      // "probe", "uprobes", "--ops", or NULL when unknown
    double wall_seconds;
    // with stacks: futex waits inside allocator calls per stack id (index + 1), filled here
    uint64_t *futex_waits_by_stack, *futex_ns_by_stack;
    uint32_t stack_slots; // entries in those arrays
    // How far (ns) a syscall may lie outside a slow call's window and still count as inside it:
    // the error of converting the recorder's clock to CLOCK_REALTIME (perf's). 0 for strace,
    // which stamps in that clock while the thread is stopped at the syscall: causally between
    // the call's two ends, or outside them.
    uint64_t join_slack_ns;
};

// Adds "ops", "syscalls", "futex", "mmap_lengths", "mmap_lengths_in_allocator", "threads",
// "requests", "size_bands", "free_bands" and "attribution" to report.
int md_trace_stats(struct md_trace_input *in, cJSON *report, struct md_error *err);

#endif
