// SPDX-License-Identifier: GPL-3.0-or-later
// trace: run a program under strace and the preload probe, and report what its allocator costs.
#ifndef MD_TRACE_H
#define MD_TRACE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/report.h"
#include "lib/run.h"

// Who records the program's memory and futex syscalls.
enum md_syscall_source {
    MD_SYSCALLS_AUTO,   // perf for programs the preload probe does not run in, when permitted
    MD_SYSCALLS_STRACE, // strace: stops the program twice per call; works wherever ptrace does
    MD_SYSCALLS_PERF,   // the kernel's raw_syscalls tracepoints (root or CAP_PERFMON)
};

struct md_trace_options {
    char **argv;             // the program and its arguments
    const char *probe_dir;   // directory holding glibc/ and musl/ builds of libmdprobe.so
    uint64_t ops;            // --ops N: the operation count when it cannot be measured (0: none)
    uint32_t probe_flags;    // md_probe_flags: --stacks, --leaks
    bool no_tail_calls;      // --no-tail-calls: the preload probe regains control after every call
    uint64_t leak_min_bytes; // --leaks: report stacks that leaked at least this much
    // --folded: allocation and futex-wait stacks in flame-graph form go to this stream (the
    // caller's, which writes them to the file whole once the report is out); NULL: none
    FILE *folded;
    unsigned sample_hz; // CPU samples per second for the allocator's CPU share; 0: none
    // An allocator library preloaded after the probe (the probe forwards to it): --compare.
    const char *preload_allocator;
    bool compared; // a comparison run follows (--compare): the fixes need not prescribe one
    const char *compared_with; // with compared: --compare-with LIB, or NULL for mdalloc
    // With compared: receives the findings as they read without a comparison, for the caller to
    // put in place when the comparison could not be made (the caller frees it); else NULL.
    cJSON **findings_uncompared;
    // --compare: why a second run could not read the first one's stdin (a pipe, a socket), or
    // NULL. The run is refused before it starts when a second run would follow it (the program
    // runs with the preload probe), not for a static program, which gets no second run.
    const char *input_not_repeatable;
    bool include_inspect;   // add the program's whole inspect entry as "inspect" (doctor)
    double timeout_seconds; // --timeout: then the whole process tree is stopped; 0: none
    bool uprobes; // --uprobes: count a static program's calls with uprobes, not the static probe
    enum md_syscall_source syscalls; // --syscalls
    // signals that interrupt the run, blocked by the caller (md_run_stop_signals), or NULL
    const sigset_t *stop_signals;
    // Counted by the caller's SIGBUS handler when a mapped file shrank under a read (the reading
    // went on over zeros), or NULL. Before the run: an error; after it: a report warning.
    const volatile sig_atomic_t *mapping_faults;
    unsigned closed_std_fds; // md_run_spec's: standard descriptors the program starts without
};

// Where the build has a library for both libcs (DIR/glibc/FILE, DIR/musl/FILE), the one LD_PRELOAD
// path for either libc's processes: DIR/any/$PLATFORM/FILE, which glibc's loader expands to
// DIR/any/x86_64 (and haswell, xeon_phi), links to the glibc build, and musl's loader takes
// literally, a link to the musl build (alloc/probe.mk, alloc/alloc.mk). out is left as it is
// when the links are not there.
void md_either_libc_path(const char *dir, const char *file, char *out, size_t size);

// Runs the program and fills report ("target", "mode", "run", and the statistics of
// trace_stats.h). run receives the program's exit status for --propagate-exit.
int md_trace(const struct md_trace_options *opt, cJSON *report, struct md_run_result *run,
             struct md_error *err);

#endif
