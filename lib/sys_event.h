// SPDX-License-Identifier: GPL-3.0-or-later
// One memory or futex syscall of the traced program, whoever recorded it: strace's log
// (lib/strace.h) or the kernel's raw_syscalls tracepoints (lib/perf.h). trace's statistics read
// only this.
#ifndef MD_SYS_EVENT_H
#define MD_SYS_EVENT_H

#include <stdbool.h>
#include <stdint.h>

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
    int32_t pid; // the thread's process (tgid) when the recorder knows it (perf), else 0
    enum md_sys sys;
    uint64_t ts_ns;  // CLOCK_REALTIME at entry
    uint64_t dur_ns; // time inside the syscall; 0 when unknown
    uint64_t length; // bytes for mmap, munmap, madvise, mprotect; new length for mremap
    // the mapping's start: mmap's result (when it did not fail), the first argument of munmap,
    // mremap, madvise and mprotect; brk's first argument, the break asked for (0: brk(NULL),
    // which only reads the break); 0 otherwise
    uint64_t address;
    // brk's result: the break after the call, moved or, when the kernel refused, unchanged (brk
    // never fails with an error); 0 when unknown (unfinished) and for other syscalls
    uint64_t brk_after;
    bool futex_wait; // a futex operation that blocks (WAIT, WAIT_BITSET, LOCK_PI, ...)
    bool failed;     // returned an error
    bool finished;   // the result was seen (false when the process died inside the call)
};

// A successful execve or execveat of a process, from the same recorder: not a memory syscall, so
// never among the events above, but how the tool learns that an image it probed was replaced
// when the new one runs without a probe (lib/probe_file.h).
struct md_exec_event {
    int32_t pid;    // the process (tgid): a thread that execs takes its process's id
    uint64_t ts_ns; // CLOCK_REALTIME: after the old image attached, before the new one ran
};

const char *md_sys_name(enum md_sys sys);
// Which argument (0-based) of the syscall carries the length we report; -1 for none.
int md_sys_length_arg(enum md_sys sys);
// Whether the first argument of the syscall is the address it works on (munmap, mremap, madvise,
// mprotect, brk); mmap's address is its result.
bool md_sys_address_arg(enum md_sys sys);
// Whether a futex operation word (FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME included) blocks:
// WAIT, LOCK_PI, WAIT_BITSET, WAIT_REQUEUE_PI, LOCK_PI2. strace's names for these all start
// with FUTEX_WAIT or FUTEX_LOCK_PI.
bool md_sys_futex_op_blocks(uint64_t op);
// The syscall number on this machine, and back (-1: not one of ours).
long md_sys_number(enum md_sys sys);
int md_sys_from_number(long nr);

#endif
