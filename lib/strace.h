// SPDX-License-Identifier: GPL-3.0-or-later
// Parsing `strace -f --timestamps=unix,ns --syscall-times=ns` output (or -ttt -T's microseconds)
// for the memory and futex syscalls trace follows, and the successful execs (execve, execveat),
// which are kept apart from them.
//
// Lines look like "PID SECONDS.NANOS name(args) = RET <DURATION>"; a syscall interrupted by
// another thread's line is split into "name(args <unfinished ...>" and "<... name resumed>...".
// Anything else (signals, exits, a line cut by a kill) is counted, never fatal.
#ifndef MD_STRACE_H
#define MD_STRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"
#include "lib/sys_event.h"

struct md_strace_log {
    struct md_sys_event *event;
    size_t count, cap;
    size_t lines, unparsed; // all lines; lines that were not understood
    size_t exits, kills;    // "+++ exited" and "+++ killed by" lines
    size_t probe_own;       // the probe's own syscalls, left out
    // successful execs, in the order of the log (perf's: of time); malloc'd
    struct md_exec_event *execs;
    size_t exec_count, exec_cap;
    // pids whose last image the static probe did not start: it hooked an earlier one, which then
    // exec'd a file of the same name (perf's exec records only); malloc'd
    int32_t *unhooked_execs;
    size_t unhooked_exec_count;
    // pending "<unfinished ...>" calls, at most one per thread
    struct md_sys_event *pending;
    size_t pending_count, pending_cap;
};

// Parses one line (without the newline) into log. Returns -1 only when out of memory.
int md_strace_parse_line(struct md_strace_log *log, const char *line, size_t len);
// Parses a whole file; unfinished calls left at the end are kept as unfinished events.
int md_strace_parse_file(struct md_strace_log *log, const char *path, struct md_error *err);
void md_strace_log_free(struct md_strace_log *log);

#endif
