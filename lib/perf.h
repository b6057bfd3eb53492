// SPDX-License-Identifier: GPL-3.0-or-later
// perf_event_open for `malloc-doctor trace`: exact allocator call counts with uprobes, and the
// share of CPU time spent inside the allocator from cpu-clock samples.
//
// Life cycle, driven by the caller that forks the target:
//   child:  raise(SIGSTOP), then execvp(target)
//   parent: waitpid(WUNTRACED); md_perf_open(pid); kill(pid, SIGCONT); wait for the whole tree;
//           md_perf_collect; md_perf_close.
// Every event is created disabled with enable_on_exec and inherit, so counting starts at the
// exec of the target and follows every thread and child process it creates.
//
// Uprobes: each spec becomes a probe in tracefs (uprobe_events, group md_<ourpid>_<pid>, removed
// again by md_perf_close) and a counting tracepoint event on it, opened on pid with cpu = -1.
// read() after the tree exited gives the hits of the whole tree: the kernel folds each child's
// count into the parent event when the child exits. Not the uprobe PMU: its events re-read the
// path through a user pointer each time they are inherited, so with inherit=1 the target's
// pthread_create/fork fails with EFAULT (see lib/perf.c). Needs root and a writable tracefs.
// A uprobe hit traps into the kernel and costs microseconds, far more than a malloc: with both
// uprobes and sampling on, kernel-mode samples taken at a probed address (or in the "[uprobes]"
// page) are counted in samples_uprobe and left out of samples_total, so that the probes' own cost
// is not charged to the allocator. The program still runs slower while probed.
//
// CPU samples: the kernel refuses to mmap a ring buffer of an inherited event opened with
// cpu = -1 (perf_mmap: "Don't allow mmap() of inherited per-task counters"), so one cpu-clock
// event is opened per CPU (pid, cpu = N, inherit), each with its own ring buffer; samples of
// inherited (child) events land in that CPU's buffer of the parent event. A reader thread owned
// by struct md_perf drains the buffers while the target runs, copying raw records into memory
// (bounded by max_record_bytes); md_perf_collect sorts them by time, replays MMAP2/COMM/FORK
// records to know each process's mappings and command, and symbolizes every sample. Samples the
// kernel could not store (PERF_RECORD_LOST) and samples over the memory bound are counted in
// samples_lost, never dropped silently. CPUs that come online after md_perf_open are not sampled.
//
// Callchains are walked by the kernel with frame pointers. Code built without them gives a
// callchain that stops or goes astray after the leaf; then in practice only the sampled (leaf)
// function decides whether a sample is inside the allocator. A leaf that does not set up a frame
// (a libc function called by malloc, say pthread_mutex_lock) hides its direct caller; musl's
// malloc is a tail jump to __libc_malloc_impl and never appears in a callchain at all. Hence
// alloc_internal: the allocator's own function names, matched on the leaf. Stripped libraries
// are symbolized with their build-id debug files when installed (lib/symbolize.h).
//
// Syscalls (syscalls): two more events per CPU, on raw_syscalls:sys_enter and sys_exit with a
// tracepoint filter on the syscall numbers, sampling every call (period 1) with its raw record
// (number and arguments, or the result). They go into the CPU's cpu-clock ring, or into a ring
// of their own that also carries the mapping and process records. The kernel writes them
// without stopping the program: no ptrace stop, no context switch, where strace stops the
// thread twice per call (about 70 us per pair on a VM). A ring that fills up loses records; the
// count is reported (sys_lost). Closing a tracepoint event waits for an RCU grace period once
// per tracepoint, which is why the raw tracepoints (two) are used, not one per syscall (14).
//
// Futex waits (futex_waits): one more event per CPU, on the tracepoint syscalls:sys_enter_futex,
// sampling every call (period 1) whose operation blocks (a tracepoint filter keeps FUTEX_WAIT,
// WAIT_BITSET, WAIT_REQUEUE_PI, LOCK_PI and LOCK_PI2, private or not, any clock). Its samples go
// into the cpu-clock ring of the same CPU (PERF_EVENT_IOC_SET_OUTPUT), or into rings of their own
// without sampling; PERF_SAMPLE_IDENTIFIER tells the two kinds apart. The frame-pointer callchain
// is useless here: the wait is entered from libc code built without frame pointers (Debian's
// glibc, musl's libc.a), so the walk stops after one or two frames. Each sample therefore also
// carries a copy of the top of the user stack (PERF_SAMPLE_STACK_USER), which the replay scans
// for return addresses (lib/stack_scan.h). Wait times are reported in CLOCK_REALTIME, strace's
// clock, so that each sampled wait can be matched with the duration strace measured for it.
#ifndef MD_PERF_H
#define MD_PERF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "lib/error.h"
#include "lib/sys_event.h"

#define MD_PERF_MAX_UPROBES 64
#define MD_PERF_TOP 10
#define MD_PERF_NAME_MAX 128

struct md_uprobe_spec {
    const char *name;     // for messages and results, e.g. "malloc"
    const char *path;     // the ELF file holding the function (used only during md_perf_open)
    uint64_t file_offset; // from md_elf_func_offset (lib/symbolize.h)
};

struct md_perf_options {
    const struct md_uprobe_spec *uprobes; // counted exactly, whole process tree
    size_t uprobe_count;                  // <= MD_PERF_MAX_UPROBES
    unsigned sample_hz;                   // 0 = no CPU sampling; e.g. 1000-4000
    // NULL-terminated lists of function names. A sample is "inside the allocator" when one of
    // these names (or an alias at the same address) is the sampled function or appears anywhere
    // in its user callchain. alloc_api: the public entry points (malloc, free, calloc, realloc,
    // posix_memalign, aligned_alloc, memalign, valloc, pvalloc, reallocarray, _Znwm, _ZdlPv,
    // ...); alloc_internal: functions that belong to the allocator (alloc_slot, _int_malloc),
    // may be NULL. Names match exactly or up to a compiler suffix: "f.constprop.0" is "f".
    // Both lists must stay valid until md_perf_close.
    const char *const *alloc_api;
    const char *const *alloc_internal;
    // A library all of whose code is the allocator's (canonical path, valid until md_perf_close),
    // or NULL: a sample in it is inside the allocator whatever its function is called.
    const char *alloc_library;
    // The libc whose own allocator serves malloc (canonical path, valid until md_perf_close), or
    // NULL: its allocator's internal functions may have no symbol (musl's libc.so exports only
    // the entry points), so a sample whose leaf lies in it under no name may be the allocator's.
    // Such samples, not already inside the allocator, are counted apart (samples_unnamed_libc).
    const char *libc_library;
    unsigned top_n;          // entries in each top list; 0 = MD_PERF_TOP, at most MD_PERF_TOP
    size_t max_record_bytes; // memory for raw sample records; 0 = 256 MiB
    unsigned ring_pages;     // ring buffer data pages per CPU, a power of 2; 0 = 256 (1 MiB)
    bool futex_waits;        // sample the call stack of every blocking futex call
    // Record every memory and futex syscall (enter and exit) of the tree, as strace would: the
    // raw_syscalls tracepoints, filtered to those syscalls. Unlike the other extras, failing to
    // open them fails md_perf_open.
    bool syscalls;
    // With syscalls: madvise(sys_marker, 0, ...) drops the calling thread's syscalls so far and
    // itself (the static probe's marker, alloc/probe_static.h: what came before was its own
    // setup). 0: none.
    uint64_t sys_marker;
};

#define MD_PERF_FUTEX_FRAMES 12

// One distinct call stack of futex waits, after symbolization.
struct md_perf_futex_stack {
    char *frames; // "function (object)" per frame, innermost first, separated by '\n'
    uint64_t waits;
    bool in_allocator; // a frame is an allocator function (alloc_api or alloc_internal)
};

// One sampled wait: which thread entered it when, and under which stack.
struct md_perf_futex_wait {
    uint32_t tid;
    uint64_t time_ns; // CLOCK_REALTIME at the syscall's entry
    size_t stack;     // index into md_perf_result.futex_stacks
};

struct md_perf_func {
    char name[MD_PERF_NAME_MAX]; // function name, or "[unknown]" / "[vdso]" style placeholders
    uint64_t samples;            // samples whose sampled (leaf) function this is
};

struct md_perf_result {
    size_t uprobe_count;
    uint64_t uprobe_hits[MD_PERF_MAX_UPROBES]; // same order as options.uprobes

    bool sampled;              // sample_hz was > 0
    bool kernel_excluded;      // kernel-mode samples were not permitted (exclude_kernel=1)
    bool system_wide;          // whole CPUs were sampled and the program's tree kept
    unsigned cpus;             // CPUs sampled
    uint64_t samples_total;    // samples of the target tree (strace excluded)
    uint64_t samples_alloc;    // of those, inside the allocator
    uint64_t samples_kernel;   // of samples_total, taken in kernel mode (named by the user
                               // function that entered the kernel)
    uint64_t samples_unknown;  // of samples_total, whose leaf could not be symbolized
    uint64_t samples_excluded; // from processes whose command is "strace"
    uint64_t samples_uprobe;   // in the kernel handling our uprobes (left out of the total)
    uint64_t samples_probe;    // in the preload probe's own code (left out of the total)
    uint64_t samples_lost;     // lost by the kernel (ring full) or over max_record_bytes
    uint64_t throttled;        // times the kernel throttled the sampling rate
    uint64_t clock_error_ns;   // at most this far off: a time converted to CLOCK_REALTIME
    // CLOCK_REALTIME was stepped during the run (settimeofday, an NTP client's step) by this
    // much, at a time nobody knows: converted times may be off by up to it; 0 when not
    int64_t clock_step_ns;
    // of samples_total and samples_unknown, not inside the allocator, whose leaf lies in
    // libc_library: perhaps the allocator's, perhaps the rest of the libc's
    uint64_t samples_unnamed_libc;
    struct md_perf_func top_alloc[MD_PERF_TOP]; // hottest leaf functions of samples_alloc
    size_t top_alloc_count;
    struct md_perf_func top_all[MD_PERF_TOP]; // hottest leaf functions of samples_total
    size_t top_all_count;

    // futex_waits: whether the events could be opened (else futex_error says why), the stacks
    // (malloc'd, in first-seen order) and every sampled wait. Free with md_perf_result_free.
    bool futex_sampled;
    char futex_error[256];
    struct md_perf_futex_stack *futex_stacks;
    size_t futex_stack_count;
    struct md_perf_futex_wait *futex_waits;
    size_t futex_wait_count;
    uint64_t futex_excluded; // waits of processes whose command is "strace"

    // syscalls: every recorded syscall in the order they were entered, times in CLOCK_REALTIME
    // (malloc'd; md_perf_result_free), the records the kernel could not store (then the list
    // is incomplete), and the processes seen exiting.
    bool syscalls_recorded;
    struct md_sys_event *sys_events;
    size_t sys_event_count;
    uint64_t sys_lost;
    uint64_t sys_probe_own; // the static probe's own syscalls, left out (its marker)
    uint64_t process_exits;
    // every exec of the program's tree (the kernel's COMM records of an exec), times in
    // CLOCK_REALTIME (malloc'd): how the tool learns that a probed image was replaced
    struct md_exec_event *execs;
    size_t exec_count, exec_cap;
    // processes the static probe hooked that then exec'd a file of the same name (a program that
    // runs itself again): their last image ran without the probe (malloc'd)
    int32_t *unhooked_execs;
    size_t unhooked_exec_count;
};

struct md_perf; // opaque: events, ring buffers, reader thread, collected records

// Opens the events on pid, which must be stopped (SIGSTOP) and not yet have exec'd the target.
// Starts the reader thread when sampling. On failure nothing stays open; EACCES/EPERM from
// perf_event_open is reported as such (the message names perf_event_paranoid).
int md_perf_open(struct md_perf **out, pid_t pid, const struct md_perf_options *opt,
                 struct md_error *err);

// After the whole process tree has exited: hit counts per uprobe, and the CPU samples (total,
// inside the allocator, top allocator functions, top functions overall). Samples from processes
// whose command is "strace" (a tracer forked from pid inherits the events) are excluded. Call
// once; it stops the reader thread.
int md_perf_collect(struct md_perf *p, struct md_perf_result *res, struct md_error *err);

// Frees the futex stacks and waits of a collected result; safe on a zeroed result.
void md_perf_result_free(struct md_perf_result *res);

// Whether md_perf_open can record syscalls here, without opening anything (an open and close of a
// tracepoint event costs an RCU grace period): the raw_syscalls tracepoints are readable in
// tracefs, and this process has CAP_PERFMON or CAP_SYS_ADMIN or perf_event_paranoid is -1. A
// seccomp policy that refuses perf_event_open itself is only found by md_perf_open. If not, why
// says why.
bool md_perf_syscalls_permitted(char *why, size_t size);

// Closes everything; safe on NULL and after a failed collect.
void md_perf_close(struct md_perf *p);

// The offset of field in a tracefs format file ("\tfield:long id;\toffset:8;\tsize:8;..."): the
// declaration's last word is field, or field[N]. Exported for tests.
bool md_perf_format_field(FILE *f, const char *field, size_t *offset);

// Whether name is one of the NULL-terminated list, exactly or up to a ".suffix" that compilers
// add to clones ("toy_refill.constprop.0" matches "toy_refill"). Exported for tests.
bool md_perf_name_in(const char *name, const char *const *list);

// How far CLOCK_REALTIME's offset from CLOCK_MONOTONIC moved between two readings, each off by
// at most error_ns: a step of the clock when beyond both errors and MD_PERF_CLOCK_STEP_MIN_NS,
// else 0 (the two clocks' rates move together under NTP's slewing).
#define MD_PERF_CLOCK_STEP_MIN_NS 1000
int64_t md_perf_clock_step(int64_t offset_open, int64_t offset_collect, uint64_t error_ns);

#endif
