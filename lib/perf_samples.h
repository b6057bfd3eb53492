// SPDX-License-Identifier: GPL-3.0-or-later
// The sample side of lib/perf: raw perf records kept in memory while the target runs, and their
// replay into a md_perf_result once it has exited. Internal to lib/perf.c and its tests.
//
// Records are replayed in time order, not arrival order: each CPU has its own ring buffer, so a
// process's MMAP2 record may sit in another buffer than its samples, and only the timestamps
// (CLOCK_MONOTONIC, the same on every CPU) say which came first.
#ifndef MD_PERF_SAMPLES_H
#define MD_PERF_SAMPLES_H

#include <linux/perf_event.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"
#include "lib/perf.h"

// The sample layouts the events are opened with; the replay parses exactly these. Both start
// with the identifier, so that a sample is known to be a CPU sample or a futex wait before the
// rest is read, and sample_id_all appends pid/tid, time and the identifier to other records.
#define MD_PERF_SAMPLE_TYPE                                                                        \
    (PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME |                \
     PERF_SAMPLE_CALLCHAIN)
#define MD_PERF_FUTEX_SAMPLE_TYPE (MD_PERF_SAMPLE_TYPE | PERF_SAMPLE_STACK_USER)
// Syscall records: the same head (identifier, ip, pid/tid, time), then the tracepoint's raw data
// (u32 size, then the record: 8 bytes of common fields, the syscall number, and either the six
// arguments or the result).
#define MD_PERF_SYS_SAMPLE_TYPE                                                                    \
    (PERF_SAMPLE_IDENTIFIER | PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_RAW)
// Bytes of user stack copied with each futex wait, from the stack pointer up: deep enough for
// libc's lock path and a few frames of the program above it.
#define MD_PERF_FUTEX_STACK_BYTES 4096

struct md_perf_names;

struct md_perf_log {
    unsigned char *data; // records back to back, each starting with its perf_event_header
    size_t len, cap;
    size_t max;                        // samples beyond this many bytes are counted, not stored
    uint64_t dropped_samples;          // samples not stored (over max, or out of memory)
    uint64_t dropped_syscalls;         // ... of those, syscall records (told apart by names)
    uint64_t dropped_other;            // other records not stored (out of memory)
    const struct md_perf_names *names; // the syscall events' identifiers; may be NULL
};

void md_perf_log_init(struct md_perf_log *l, size_t max);
void md_perf_log_free(struct md_perf_log *l);
// Copies one record. Non-sample records (mappings, commands, forks) are kept over max: they are
// few, and without them every later sample of the process is unknown.
void md_perf_log_add(struct md_perf_log *l, const void *rec, size_t size);

struct md_perf_names {
    const char *const *api;      // NULL-terminated
    const char *const *internal; // NULL-terminated or NULL
    const char *alloc_library;   // md_perf_options.alloc_library
    const char *libc_library;    // md_perf_options.libc_library
    unsigned top_n;              // 1..MD_PERF_TOP
    // The probed (canonical path, file offset) pairs: kernel-mode samples taken while a uprobe
    // breakpoint is being handled are the probe's cost, not the program's (see on_sample).
    const char *const *probe_paths;
    const uint64_t *probe_offsets;
    size_t probe_count;
    // Identifiers of the futex wait events (PERF_EVENT_IOC_ID); samples of other events are CPU
    // samples.
    const uint64_t *futex_ids;
    size_t futex_id_count;
    // Identifiers of the raw_syscalls:sys_enter and sys_exit events.
    const uint64_t *sys_enter_ids, *sys_exit_ids;
    size_t sys_id_count; // of each
    uint64_t sys_marker; // md_perf_options.sys_marker
    // Where the syscall number and the arguments (enter) or the result (exit) sit in the raw
    // records (from tracefs' format files; 8 and 16 on mainline kernels).
    size_t sys_nr_at, sys_args_at, sys_ret_at;
    // Nonzero: the records are of whole CPUs; keep those of this process from its exec on, and
    // of the processes it forks, theirs and so on (see on_record).
    pid_t system_wide_root;
};

// Replays the log into the sample fields of res (samples_*, throttled, top lists), the futex
// wait stacks (futex_stacks, futex_waits) and the syscalls (sys_events, times still in
// CLOCK_MONOTONIC); the arrays are freed by md_perf_result_free.
int md_perf_replay(const struct md_perf_log *l, const struct md_perf_names *names,
                   struct md_perf_result *res, struct md_error *err);

#endif
