// SPDX-License-Identifier: GPL-3.0-or-later
// Starting a fixture the way `malloc-doctor trace` does: fork, the child sends its stdout to
// out_path and stops itself, the caller opens its events and continues it, and the child execs
// argv. Included by the unit tests that run perf on real fixtures (after <cmocka.h>).
#ifndef MD_TEST_SPAWN_STOPPED_H
#define MD_TEST_SPAWN_STOPPED_H

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t spawn_stopped(char *const argv[], const char *out_path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, 1) < 0)
            _exit(126);
        raise(SIGSTOP);
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, WUNTRACED), pid);
    assert_true(WIFSTOPPED(status));
    return pid;
}

#endif
