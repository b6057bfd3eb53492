// SPDX-License-Identifier: GPL-3.0-or-later
// The peak RSS of a process tree from the kernel's taskstats exit records.
//
// wait4's ru_maxrss is the high-water mark of every image the process ever had: with strace -D
// the program's process is first a copy of this tool and then strace itself, so a small
// program's "peak RSS" would be strace's (about 3 MB). The taskstats record sent when a task
// exits carries the high-water mark of the memory it exits with: the program's own. Listening
// needs CAP_NET_ADMIN and a kernel with CONFIG_TASK_XACCT; without them the caller keeps wait4's.
#ifndef MD_TASKSTATS_H
#define MD_TASKSTATS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct md_exit_record {
    pid_t pid, tgid, ppid;
    uid_t uid; // the real user it exited as
    uint64_t hiwater_rss_kb;
    bool forked_only; // forked and never exec'd (the kernel's AFORK)
    char comm[32];
};

struct md_taskstats {
    int fd; // -1 when not listening
    pthread_t reader;
    int stop_pipe[2];
    struct md_exit_record *records;
    size_t count, capacity;
    bool overflow; // the kernel dropped records (socket buffer full) or memory ran out
};

// Starts listening for exit records of every task on every CPU. Returns false (and leaves
// ts->fd at -1) when the kernel or the permissions do not allow it; nothing to undo then.
bool md_taskstats_start(struct md_taskstats *ts);

// Stops listening and collects what arrived; call after every process of the run was reaped.
void md_taskstats_stop(struct md_taskstats *ts);

struct md_tree_usage {
    uint64_t peak_rss_kb; // the largest high-water RSS of any process of the tree
    unsigned processes;   // processes (not threads) of the tree that exited
    // the exit record of each process's main thread (its last image's name), in no order;
    // free() it
    struct md_exit_record *members;
    size_t member_count;
};

// Sums up the program (root) and its descendants, including orphans this tool adopted as
// subreaper (parent tool_pid) other than strace and the tool's own forks. False when no record
// of root arrived or records were lost: the caller keeps wait4's numbers.
// md_taskstats_tree for a program this process ran (by its own pid and name).
bool md_taskstats_program_tree(const struct md_taskstats *ts, pid_t program,
                               struct md_tree_usage *tree);

bool md_taskstats_tree(const struct md_taskstats *ts, pid_t root, pid_t tool_pid,
                       const char *tool_comm, struct md_tree_usage *usage);

void md_taskstats_free(struct md_taskstats *ts);

#endif
