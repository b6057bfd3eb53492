// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/run.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MD_MAX_ARGS 4096

static const char *const strace_head[] = {
    "strace", "-D", "-f", "--seccomp-bpf",
    "-ttt",   "-T", "-e", "trace=mmap,munmap,mremap,madvise,brk,mprotect,futex",
};

static bool is_executable(const char *path)
{
    struct stat st;
    return !stat(path, &st) && S_ISREG(st.st_mode) && !access(path, X_OK);
}

int md_find_program(const char *prog, char *path, size_t size, struct md_error *err)
{
    if (strchr(prog, '/')) {
        if (!is_executable(prog))
            return md_fail(err, "%s: not an executable file", prog);
        snprintf(path, size, "%s", prog);
        return 0;
    }
    const char *env = getenv("PATH");
    char dirs[PATH_MAX * 4];
    snprintf(dirs, sizeof dirs, "%s", env && *env ? env : "/usr/local/bin:/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(path, size, "%s/%s", *d ? d : ".", prog);
        if (is_executable(path))
            return 0;
    }
    return md_fail(err, "%s: command not found", prog);
}

// strace's argv: the fixed head, -o FILE, -E for each variable, --, the program.
static int build_argv(const struct md_run_spec *spec, const char **out, struct md_error *err)
{
    size_t n = 0;
    if (spec->strace_out) {
        for (size_t i = 0; i < sizeof strace_head / sizeof strace_head[0]; i++)
            out[n++] = strace_head[i];
        out[n++] = "-o";
        out[n++] = spec->strace_out;
        for (const char *const *e = spec->cmd_env; e && *e && n < MD_MAX_ARGS - 8; e++) {
            out[n++] = "-E";
            out[n++] = *e;
        }
        out[n++] = "--";
    }
    for (char *const *a = spec->argv; *a; a++) {
        if (n >= MD_MAX_ARGS - 1)
            return md_fail(err, "%s: too many arguments", spec->argv[0]);
        out[n++] = *a;
    }
    out[n] = NULL;
    return 0;
}

static void child(const struct md_run_spec *spec, const char **argv, int report_fd)
{
    if (spec->before_start)
        raise(SIGSTOP); // the parent attaches what it needs, then continues us
    if (!spec->strace_out)
        for (const char *const *e = spec->cmd_env; e && *e; e++)
            putenv((char *)*e);
    execvp(argv[0], (char *const *)argv);
    int code = errno;
    if (write(report_fd, &code, sizeof code) < 0)
        _exit(126);
    _exit(127);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int start_stopped_child(const struct md_run_spec *spec, pid_t pid, struct md_error *err)
{
    int status;
    if (waitpid(pid, &status, WUNTRACED) != pid || !WIFSTOPPED(status)) {
        kill(pid, SIGKILL);
        return md_fail(err, "%s: the process did not start", spec->argv[0]);
    }
    if (spec->before_start(pid, spec->ctx, err)) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return -1;
    }
    kill(pid, SIGCONT);
    return 0;
}

// Reaps every child (the program, the detached tracer, orphans) until none is left.
static void wait_all(pid_t pid, struct md_run_result *res)
{
    for (;;) {
        int status;
        struct rusage ru;
        pid_t got = wait4(-1, &status, 0, &ru);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return;
        if (got != pid || WIFSTOPPED(status) || WIFCONTINUED(status))
            continue;
        res->usage = ru;
        res->exited = WIFEXITED(status);
        res->exit_code = res->exited ? WEXITSTATUS(status) : 0;
        res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
}

int md_run(const struct md_run_spec *spec, struct md_run_result *res, struct md_error *err)
{
    const char *argv[MD_MAX_ARGS];
    memset(res, 0, sizeof *res);
    if (build_argv(spec, argv, err))
        return -1;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC))
        return md_fail_errno(err, errno, "pipe");
    prctl(PR_SET_CHILD_SUBREAPER, 1); // adopt the detached tracer and the program's orphans
    double start = now_seconds();
    pid_t pid = fork();
    if (pid < 0)
        return md_fail_errno(err, errno, "fork");
    if (pid == 0)
        child(spec, argv, pipefd[1]);
    close(pipefd[1]);
    res->pid = pid;
    if (spec->before_start && start_stopped_child(spec, pid, err)) {
        close(pipefd[0]);
        return -1;
    }
    int code = 0;
    ssize_t got = read(pipefd[0], &code, sizeof code); // EOF once exec succeeded
    close(pipefd[0]);
    wait_all(pid, res);
    res->wall_seconds = now_seconds() - start;
    if (got == (ssize_t)sizeof code)
        return code == ENOENT && spec->strace_out
                   ? md_fail(err, "strace: not found; install it (apt-get install strace)")
                   : md_fail_errno(err, code, "%s", argv[0]);
    return 0;
}
