// SPDX-License-Identifier: GPL-3.0-or-later
// Running a program under strace, untouched: its stdin, stdout and stderr are the tool's.
//
// strace runs with -D (as a detached grandchild), so the program itself is our direct child:
// wait4 gives its exit status and its exact rusage, not strace's. The tool becomes a child
// subreaper so the detached tracer (and any orphan of the program) is reaped here too, and so
// every process the program leaves behind, in whatever session, is still a descendant to stop
// when a timeout ends the run.
#ifndef MD_RUN_H
#define MD_RUN_H

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "lib/error.h"

struct md_run_spec {
    // The program and its arguments. argv[0] is found as md_find_program finds it (the caller
    // inspected that file) and executed as that file, keeping argv[0] as given.
    char *const *argv;
    const char *strace_out;     // strace's output file; NULL runs the program without strace
    const char *const *cmd_env; // NAME=VALUE for the program only (strace -E), NULL-terminated
    // Called while the program's process is stopped, before anything is executed in it (to attach
    // perf events, which then follow it across exec); a non-zero return aborts the run.
    int (*before_start)(pid_t pid, void *ctx, struct md_error *err);
    void *ctx;
    // Seconds until the whole process tree is stopped: SIGTERM, SIGKILL after a grace period,
    // the tracer last. 0: wait as long as the program and its descendants run.
    double timeout_seconds;
    // Signals the caller has blocked (md_run_stop_signals) that end the run early when the tool
    // receives them; NULL: none. The program starts with them unblocked.
    const sigset_t *stop_signals;
    // Bit N (0..2): the tool's caller had standard descriptor N closed (the tool holds it open
    // for itself); the program starts with it closed, as it would without the tool.
    unsigned closed_std_fds;
    // The program's stdout and stderr go to /dev/null (a run made for its times alone).
    bool discard_output;
};

struct md_run_result {
    pid_t pid;
    bool exited; // exited normally: exit_code is valid
    int exit_code;
    int signal;          // killed by this signal, else 0
    struct rusage usage; // the program, the children it waited for, and its orphans
    double wall_seconds;
    bool timed_out; // the timeout ended the run: every process left was signalled
    // A stop signal that cut the run short, else 0: the tool ended the tree on it, or the
    // program died of the SIGINT that was passed on.
    int interrupted_by;
    // The first SIGINT of the run, passed on to the program (or sent to it by the terminal)
    // instead of ending the run, else 0. Without interrupted_by the program went on to its end.
    int signal_passed_on;
};

// The signals that interrupt a run: SIGINT, SIGTERM, SIGHUP and SIGQUIT, less those this process
// was started ignoring (nohup) or blocking. The caller blocks them for its whole command, so one
// that arrives while the report is written is not lost either (md_run_take_signal), and the tool
// always gets to remove its files. SIGTERM, SIGHUP and SIGQUIT end the program's whole tree
// (SIGTERM, then SIGKILL); SIGINT is passed on when a process sent it (a terminal's Ctrl-C
// reaches the program itself), and a second one ends the tree. One already pending when md_run
// is called fails it before the program starts (res->interrupted_by says which).
void md_run_stop_signals(sigset_t *set);
// A pending stop signal, consumed; 0 when there is none.
int md_run_take_signal(const sigset_t *set);

// "LD_PRELOAD=" and the libraries in order, joined with ':' (NULL and empty ones left out), then
// the tool's own LD_PRELOAD, if any, so that what the user preloaded is still loaded after ours.
// Fails, naming the length, when it does not fit in size bytes (MD_PRELOAD_ENV_MAX is room for
// two libraries of ours and a path of the user's).
#define MD_PRELOAD_ENV_MAX (3 * PATH_MAX + 64)
int md_preload_env(char *out, size_t size, const char *const *libs, size_t count,
                   struct md_error *err);

// Finds prog in PATH as execvp does (PATH unset: the default path, confstr's _CS_PATH; an empty
// element: the current directory), or checks it when it contains a '/'; fills path. A path of
// this process's own /proc entry (/proc/self/exe, /dev/fd/N) is refused: the process that
// opens or executes it decides what it names.
int md_find_program(const char *prog, char *path, size_t size, struct md_error *err);

// True when a and b (either may be NULL) name the same existing file, links and all.
bool md_same_file(const char *a, const char *b);

// How a prescribed command names this tool, as a shell word: "malloc-doctor" when PATH finds
// this very executable under that name, else the executable's absolute path, so that a command
// copied from a report runs this tool (build/malloc-doctor of a source tree is not on PATH).
void md_tool_command(char *out, size_t size);

// Runs the program and waits until it and every process left behind have exited (or, with a
// timeout, have been killed). With strace, first checks that strace exists and that ptrace is
// permitted here, and says what to install or allow when not.
int md_run(const struct md_run_spec *spec, struct md_run_result *res, struct md_error *err);

#endif
