// SPDX-License-Identifier: MIT
// What the preload probe learns about its own process at start-up, outside the allocator's path:
// its pid and tids as the tool sees them, its start time, and the probe file's descriptor left
// open by the tool. Only start-up and once-per-thread code calls these.
#ifndef MD_PROBE_PROC_H
#define MD_PROBE_PROC_H

#include <stdbool.h>
#include <stdint.h>

#include "alloc/probe_shared.h"

// How this process's ids read in the tool's pid namespace.
enum md_ids_mode {
    MD_IDS_SAME,    // the tool's namespace: getpid() and gettid() are the tool's numbers
    MD_IDS_NSPID,   // another one, and /proc is the tool's: the first NSpid entry is
    MD_IDS_NEGATED, // another one (or none to tell) the probe cannot read them in: tokens,
                    // negated, announced in marker syscalls for the tool to map
};

// Which of the three applies to the calling process (h: the tool's namespace).
enum md_ids_mode md_probe_ids_mode(const struct md_probe_header *h);
// The calling process's pid and the calling thread's tid in the tool's namespace. One that cannot
// be read there is a token from h, negated, which the thread announces with a marker syscall
// (alloc/probe_shared.h: foreign_pid_processes). *tid: the calling thread's tid when it is the
// main thread (its token is the pid's), else 0.
int32_t md_probe_ids_pid(enum md_ids_mode mode, struct md_probe_header *h, int32_t *tid);
int32_t md_probe_ids_tid(enum md_ids_mode mode, struct md_probe_header *h, int32_t pid_id);
// The process's start time in clock ticks after boot (/proc/self/stat field 22), 0 when unknown.
uint64_t md_probe_start_time(void);
// The descriptor of MD_PROBE_FD_ENV when it is still the file the tool passed, else -1.
int md_probe_inherited_fd(void);

#endif
