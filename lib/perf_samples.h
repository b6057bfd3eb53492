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

// The sample layout every event is opened with; the replay parses exactly this.
#define MD_PERF_SAMPLE_TYPE                                                                        \
    (PERF_SAMPLE_IP | PERF_SAMPLE_TID | PERF_SAMPLE_TIME | PERF_SAMPLE_CALLCHAIN)

struct md_perf_log {
    unsigned char *data; // records back to back, each starting with its perf_event_header
    size_t len, cap;
    size_t max;               // samples beyond this many bytes are counted, not stored
    uint64_t dropped_samples; // samples not stored (over max, or out of memory)
    uint64_t dropped_other;   // other records not stored (out of memory)
};

void md_perf_log_init(struct md_perf_log *l, size_t max);
void md_perf_log_free(struct md_perf_log *l);
// Copies one record. Non-sample records (mappings, commands, forks) are kept over max: they are
// few, and without them every later sample of the process is unknown.
void md_perf_log_add(struct md_perf_log *l, const void *rec, size_t size);

struct md_perf_names {
    const char *const *api;      // NULL-terminated
    const char *const *internal; // NULL-terminated or NULL
    unsigned top_n;              // 1..MD_PERF_TOP
    // The probed (canonical path, file offset) pairs: kernel-mode samples taken while a uprobe
    // breakpoint is being handled are the probe's cost, not the program's (see on_sample).
    const char *const *probe_paths;
    const uint64_t *probe_offsets;
    size_t probe_count;
};

// Replays the log into the sample fields of res (samples_*, throttled, top lists).
int md_perf_replay(const struct md_perf_log *l, const struct md_perf_names *names,
                   struct md_perf_result *res, struct md_error *err);

#endif
