// SPDX-License-Identifier: GPL-3.0-or-later
// Parsing `strace -f -ttt -T` output for the memory and futex syscalls trace follows.
//
// Lines look like "PID SECONDS.MICROS name(args) = RET <DURATION>"; a syscall interrupted by
// another thread's line is split into "name(args <unfinished ...>" and "<... name resumed>...".
// Anything else (signals, exits, a line cut by a kill) is counted, never fatal.
#ifndef MD_STRACE_H
#define MD_STRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"

enum md_sys {
    MD_SYS_MMAP,
    MD_SYS_MUNMAP,
    MD_SYS_MREMAP,
    MD_SYS_MADVISE,
    MD_SYS_BRK,
    MD_SYS_MPROTECT,
    MD_SYS_FUTEX,
    MD_SYS_COUNT,
};

struct md_sys_event {
    int32_t tid;
    enum md_sys sys;
    uint64_t ts_ns;  // CLOCK_REALTIME at entry
    uint64_t dur_ns; // time inside the syscall (-T); 0 when unknown
    uint64_t length; // bytes for mmap, munmap, madvise, mprotect; new length for mremap
    bool futex_wait; // a futex operation that blocks (WAIT, WAIT_BITSET, LOCK_PI, ...)
    bool failed;     // returned -1
    bool finished;   // the result was seen (false when the process died inside the call)
};

struct md_strace_log {
    struct md_sys_event *event;
    size_t count, cap;
    size_t lines, unparsed; // all lines; lines that were not understood
    size_t exits, kills;    // "+++ exited" and "+++ killed by" lines
    // pending "<unfinished ...>" calls, at most one per thread
    struct md_sys_event *pending;
    size_t pending_count, pending_cap;
};

const char *md_sys_name(enum md_sys sys);

// Parses one line (without the newline) into log. Returns -1 only when out of memory.
int md_strace_parse_line(struct md_strace_log *log, const char *line, size_t len);
// Parses a whole file; unfinished calls left at the end are kept as unfinished events.
int md_strace_parse_file(struct md_strace_log *log, const char *path, struct md_error *err);
void md_strace_log_free(struct md_strace_log *log);

#endif
