// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/path.h"
#include "lib/report.h"

// After the timeout: how long processes get to act on SIGTERM before SIGKILL, and how long the
// tracer gets to see its tracees die (and finish its output file) before it is killed too.
#define MD_TERM_GRACE_SECONDS 1.0
#define MD_TRACER_GRACE_SECONDS 1.0
// SIGKILL is sent again at this interval: a process forked while the tree was listed is missed.
#define MD_KILL_REPEAT_SECONDS 0.1
// A SIGINT a process sends to this tool's process group reaches the program as well as the tool;
// `timeout -s INT` sends one to the tool and one to the group at once. A second SIGINT from the
// same sender within this time is that copy: the program has it, so it is neither passed on nor
// taken for a second Ctrl-C. The tool waits as long before passing a first one on.
#define MD_SIGINT_COPY_SECONDS 0.15

// Times in nanoseconds: strace stamps a syscall while the thread is stopped at its entry, after
// the code before it and before the code after it, and the probes read the same clock
// (CLOCK_REALTIME) at a slow call's ends; at whole microseconds (-ttt) a program's syscall just
// after an allocator call, or one inside the call just after the previous one, could not be told
// apart from the other side of the boundary. execve and execveat are no memory syscalls and never
// counted as such: a successful one tells that an image the probe attached to was replaced, also
// by one that runs without a probe (lib/strace.h keeps them apart).
static const char *const strace_head[] = {
    "strace",
    "-D",
    "-f",
    "--seccomp-bpf",
    "--timestamps=unix,ns",
    "--syscall-times=ns",
    "-e",
    "trace=mmap,munmap,mremap,madvise,brk,mprotect,futex,execve,execveat",
};

static bool is_executable(const char *path)
{
    struct stat st;
    return !stat(path, &st) && S_ISREG(st.st_mode) && !access(path, X_OK);
}

bool md_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return a && b && !stat(a, &sa) && !stat(b, &sb) && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

// Whether the directory part of path is this process's /proc entry.
static bool in_own_proc_dir(const char *path)
{
    char dir[PATH_MAX], real[PATH_MAX], own[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return false;
    slash[slash == dir] = 0; // "/x" -> "/"
    if (!realpath(dir, real) || !realpath("/proc/self", own))
        return false;
    size_t n = strlen(own);
    return !strncmp(real, own, n) && (real[n] == 0 || real[n] == '/');
}

// Whether path names a file of the process that resolves it: it, or a symbolic link it leads
// through, is in this process's /proc entry (/proc/self/exe, /proc/thread-self/..., /dev/fd/N, a
// link to one). The tool would inspect its own executable or descriptor, and strace or the
// static probe, exec'ing it, would run themselves: never the program meant. The links are
// followed one by one, since realpath would go on through the magic link to the tool's own file.
// /proc/self/root/... and /proc/self/cwd/... resolve to ordinary directories, the same for every
// process the run starts, and are taken as such.
static bool names_own_process(const char *path)
{
    char at[PATH_MAX], target[PATH_MAX];
    snprintf(at, sizeof at, "%s", path);
    for (int hops = 0; hops < 40; hops++) { // the kernel's own bound on links in a lookup
        if (in_own_proc_dir(at))
            return true;
        ssize_t n = readlink(at, target, sizeof target - 1);
        if (n <= 0)
            return false;
        target[n] = 0;
        char *slash = strrchr(at, '/');
        if (target[0] == '/' || !slash) // absolute, or relative to the current directory
            snprintf(at, sizeof at, "%s", target);
        else if (snprintf(slash + 1, sizeof at - (size_t)(slash + 1 - at), "%s", target) < 0)
            return false;
    }
    return false;
}

int md_preload_env(char *out, size_t size, const char *const *libs, size_t count,
                   struct md_error *err)
{
    size_t len = (size_t)snprintf(out, size, "LD_PRELOAD=");
    const char *prev = getenv("LD_PRELOAD");
    bool any = false;
    for (size_t i = 0; i <= count; i++) {
        const char *lib = i < count ? libs[i] : prev;
        if (!lib || !*lib)
            continue;
        len += (size_t)snprintf(out + (len < size ? len : size), len < size ? size - len : 0,
                                "%s%s", any ? ":" : "", lib);
        any = true;
    }
    if (len >= size)
        return md_fail(err,
                       "LD_PRELOAD (the libraries to preload and yours) would be %zu bytes long, "
                       "more than the %zu this tool takes",
                       len, size - 1);
    return 0;
}

int md_find_program(const char *prog, char *path, size_t size, struct md_error *err)
{
    if (!*prog) // execvp says ENOENT, which names nothing
        return md_fail(err, "empty command name");
    if (strchr(prog, '/')) {
        struct stat st;
        if (names_own_process(prog))
            return md_fail(err,
                           "%s: names a file of whichever process opens it, which would be this "
                           "tool or strace, not the program; give the program's own path",
                           prog);
        if (stat(prog, &st))
            return md_fail_errno(err, errno, "%s", prog);
        if (S_ISDIR(st.st_mode))
            return md_fail(err, "%s: is a directory, not a program", prog);
        if (!S_ISREG(st.st_mode))
            return md_fail(err, "%s: not a regular file, not a program", prog);
        if (!is_executable(prog))
            return md_fail(err, "%s: not executable (no execute permission for this user)", prog);
        snprintf(path, size, "%s", prog);
        return 0;
    }
    // execvp's lookup, which `env PROG` and a shell's exec also make: PATH unset is the C
    // library's default path (confstr's _CS_PATH: cron's and `env -i`'s programs), and an empty
    // element (leading, trailing, "::", or PATH="" alone) is the current directory
    const char *env = getenv("PATH");
    char dirs[PATH_MAX * 4];
    if (env)
        snprintf(dirs, sizeof dirs, "%s", env);
    else if (!confstr(_CS_PATH, dirs, sizeof dirs))
        snprintf(dirs, sizeof dirs, "/bin:/usr/bin");
    for (char *d = dirs, *end;; d = end + 1) {
        end = strchrnul(d, ':');
        bool last = !*end;
        *end = 0;
        snprintf(path, size, "%s/%s", *d ? d : ".", prog);
        if (is_executable(path))
            return 0;
        if (last)
            return md_fail(err, "%s: command not found", prog);
    }
}

void md_tool_command(char *out, size_t size)
{
    char exe[PATH_MAX], found[PATH_MAX];
    struct md_error err;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    if (!exe[0] || (!md_find_program("malloc-doctor", found, sizeof found, &err) &&
                    md_same_file(found, "/proc/self/exe"))) {
        snprintf(out, size, "malloc-doctor");
        return;
    }
    size_t len = 0;
    out[0] = 0;
    md_append_shell_word(out, size, &len, exe);
}

// What the child executes: a file found here (so that no PATH is searched after the tool's
// lookup), its command line, and its environment (strace's, or the program's with cmd_env put in
// when strace does not run; NULL: the tool's).
struct exec_call {
    char program[PATH_MAX]; // the program's file
    char file[PATH_MAX];    // what is executed: strace, or the program
    const char **argv;
    char **envp;
    char *path_var; // strace's "PATH=DIR", in envp
};

// Whether environment entry e sets the variable that NAME=VALUE entry v sets.
static bool same_variable(const char *e, const char *v)
{
    size_t name = strcspn(v, "=");
    return !strncmp(e, v, name) && e[name] == '=';
}

// call->envp: the tool's environment with the n NAME=VALUE entries of set put in (replacing
// the tool's own of those names), and without LD_PRELOAD when strace is what runs (the user's
// goes to the program by -E: loaded into strace, a library such as a heap profiler would run
// there too); made before the fork: in the forked child, setenv may allocate while the tool has
// threads. False when out of memory.
static bool env_with(struct exec_call *call, const char *const *set, size_t n, bool for_strace)
{
    size_t vars = 0;
    while (environ[vars])
        vars++;
    call->envp = calloc(vars + n + 1, sizeof *call->envp);
    if (!call->envp)
        return false;
    size_t out = 0;
    for (size_t i = 0; i < vars; i++) {
        bool replaced = for_strace && same_variable(environ[i], "LD_PRELOAD=");
        for (size_t k = 0; k < n && !replaced; k++)
            replaced = same_variable(environ[i], set[k]);
        if (!replaced)
            call->envp[out++] = environ[i];
    }
    for (size_t k = 0; k < n; k++)
        call->envp[out++] = (char *)set[k];
    call->envp[out] = NULL;
    return true;
}

// strace finds a program named without a '/' in its own PATH, which may find another file than
// the tool inspected, or none when PATH is unset (strace, unlike execvp, has no default path:
// "Can't stat 'ls'"), and it has no option for argv[0] (strace 6.1). So strace's own PATH is the
// one directory where the tool found the program, and -E gives the program the PATH the tool
// got (or none, as the tool got none): strace runs that file with argv[0] as the user typed it.
// Sets *pin_env to that -E argument. The directory came from a PATH element (the current one
// as "."), so it holds no ':'. False when out of memory: strace then gets the file's path as
// the program's name.
static bool pin_program(struct exec_call *call, const char *program, const char **pin_env)
{
    const char *slash = strrchr(program, '/');
    int dir_len = slash == program ? 1 : (int)(slash - program);
    if (asprintf(&call->path_var, "PATH=%.*s", dir_len, program) < 0) {
        call->path_var = NULL;
        return false;
    }
    if (!env_with(call, (const char *const *)&call->path_var, 1, true)) { // the path as the name
        free(call->path_var);
        call->path_var = NULL;
        return false;
    }
    *pin_env = "PATH"; // -E PATH: removed, as the tool had none
    for (size_t i = 0; environ[i]; i++)
        if (same_variable(environ[i], "PATH="))
            *pin_env = environ[i]; // -E PATH=VALUE: the tool's
    return true;
}

// The tool's LD_PRELOAD entry when cmd_env does not set that variable: the program gets it from
// strace by -E (strace's own environment leaves it out). NULL otherwise.
static const char *user_preload(const char *const *cmd_env)
{
    for (const char *const *e = cmd_env; e && *e; e++)
        if (same_variable(*e, "LD_PRELOAD="))
            return NULL;
    for (size_t i = 0; environ[i]; i++)
        if (same_variable(environ[i], "LD_PRELOAD="))
            return environ[i];
    return NULL;
}

// The command line the child executes: the program's, or strace's: the fixed head, -o FILE, -E
// for each variable, --, the program (malloc'd, as long as the command: the kernel's own limit,
// E2BIG, is the only one).
static int build_argv(const struct md_run_spec *spec, struct exec_call *call, struct md_error *err)
{
    size_t envs = 0, args = 0;
    for (const char *const *e = spec->cmd_env; e && *e; e++)
        envs++;
    while (spec->argv[args])
        args++;
    size_t head = sizeof strace_head / sizeof strace_head[0];
    const char **out = calloc(head + 7 + 2 * envs + args + 1, sizeof *out);
    call->argv = out;
    if (!out)
        return md_fail(err, "%s: out of memory for its arguments", spec->argv[0]);
    size_t n = 0;
    const char *name = spec->argv[0], *pin_env = NULL;
    if (spec->strace_out) {
        for (size_t i = 0; i < head; i++)
            out[n++] = strace_head[i];
        out[n++] = "-o";
        out[n++] = spec->strace_out;
        for (size_t i = 0; i < envs; i++) {
            out[n++] = "-E";
            out[n++] = spec->cmd_env[i];
        }
        const char *preload = user_preload(spec->cmd_env);
        if (preload) {
            out[n++] = "-E";
            out[n++] = preload;
        }
        if (!strchr(name, '/') && !pin_program(call, call->program, &pin_env))
            name = call->program;
        if (pin_env) {
            out[n++] = "-E";
            out[n++] = pin_env;
        }
        out[n++] = "--";
        if (!call->envp && !env_with(call, NULL, 0, true))
            return md_fail(err, "%s: out of memory for strace's environment", spec->argv[0]);
    } else if (envs && !env_with(call, spec->cmd_env, envs, false)) {
        return md_fail(err, "%s: out of memory for its environment", spec->argv[0]);
    }
    out[n++] = name;
    for (size_t i = 1; i < args; i++)
        out[n++] = spec->argv[i];
    out[n] = NULL;
    return 0;
}

static void exec_call_free(struct exec_call *call)
{
    free(call->argv);
    free(call->envp);
    free(call->path_var);
}

// --- can strace run here? --------------------------------------------------------------------

// The first integer in a file, or -1.
static int read_int_file(const char *path)
{
    FILE *f = fopen(path, "re");
    int v = -1;
    if (f && fscanf(f, "%d", &v) != 1)
        v = -1;
    if (f)
        fclose(f);
    return v;
}

// The value of a "Name:\tvalue" line of /proc/PID/status, or -1.
static long status_field(pid_t pid, const char *name)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    long v = -1;
    size_t len = strlen(name);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, name, len) && line[len] == ':') {
            v = strtol(line + len + 1, NULL, 10);
            break;
        }
    if (f)
        fclose(f);
    return v;
}

// What stops ptrace here, as advice on what to allow.
static const char *ptrace_advice(char *buf, size_t size)
{
    int scope = read_int_file("/proc/sys/kernel/yama/ptrace_scope");
    if (scope == 3)
        snprintf(buf, size,
                 "kernel.yama.ptrace_scope is 3, which turns ptrace off until reboot; "
                 "set it to 1 or lower at boot");
    else if (scope == 2)
        snprintf(buf, size,
                 "kernel.yama.ptrace_scope is 2 (admin only): run as root or with "
                 "CAP_SYS_PTRACE, or `sysctl kernel.yama.ptrace_scope=1`");
    else if (status_field(getpid(), "Seccomp") == 2)
        snprintf(buf, size,
                 "a seccomp filter denies it (in a container: run it with "
                 "--cap-add=SYS_PTRACE, or a seccomp profile that allows ptrace)");
    else
        snprintf(buf, size,
                 "allow ptrace for this user (CAP_SYS_PTRACE; in a container: "
                 "--cap-add=SYS_PTRACE; check kernel.yama.ptrace_scope and LSM policies)");
    return buf;
}

// The check below runs its two processes with clone(CLONE_VM | CLONE_VFORK), as posix_spawn
// does: they share the tool's memory, so neither copies the tool's page tables at fork nor tears
// them down at exit. With two fork()s the check took about 4.5 ms of every trace (on a 2-core
// VM); this way it takes about 0.4 ms. Each process runs on its own stack in the block below, and
// the tool's thread stays suspended until the first one has exited.
#define MD_CHECK_STACK_BYTES (64 * 1024)

struct ptrace_check {
    pid_t tracee;
    int code; // errno of PTRACE_SEIZE, 0 when it worked
    _Alignas(16) unsigned char tracer_stack[MD_CHECK_STACK_BYTES];
    _Alignas(16) unsigned char tracee_stack[MD_CHECK_STACK_BYTES];
};

// Runs in the tracee's child, with the tracee held in vfork until it exits (which detaches).
static int seize_tracee(void *arg)
{
    struct ptrace_check *c = arg;
    c->code = ptrace(PTRACE_SEIZE, c->tracee, NULL, NULL) ? errno : 0;
    return 0;
}

static int be_tracee(void *arg)
{
    struct ptrace_check *c = arg;
    prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0); // EINVAL without yama: harmless
    c->tracee = getpid();
    pid_t tracer = clone(seize_tracee, c->tracer_stack + sizeof c->tracer_stack,
                         CLONE_VM | CLONE_VFORK | SIGCHLD, c);
    if (tracer > 0)
        waitpid(tracer, NULL, 0);
    return 0;
}

// Tries what strace -D will do: the tracee allows any tracer (PR_SET_PTRACER, as strace does)
// and a process it started seizes it. Same capabilities, seccomp filter and yama rules as strace,
// so a refusal is found before the program runs (strace would run it untraced and say so only
// on the terminal). Returns 0, or the errno of PTRACE_SEIZE.
static int ptrace_refusal(void)
{
    struct ptrace_check *c = calloc(1, sizeof *c);
    if (!c)
        return 0; // cannot tell: let strace try
    pid_t tracee = clone(be_tracee, c->tracee_stack + sizeof c->tracee_stack,
                         CLONE_VM | CLONE_VFORK | SIGCHLD, c);
    if (tracee > 0) // CLONE_VFORK: back here once it has exited, its result in c->code
        waitpid(tracee, NULL, 0);
    int code = tracee > 0 ? c->code : 0;
    free(c);
    return code;
}

// Finds strace (its path into path) and checks that it can trace here.
static int check_tracer(char *path, size_t size, struct md_error *err)
{
    char advice[256];
    if (md_find_program("strace", path, size, err))
        return md_fail(err, "strace: not found; install it (apt-get install strace)");
    int refused = ptrace_refusal();
    if (refused)
        return md_fail(err,
                       "ptrace is not permitted here (PTRACE_SEIZE: %s), and trace needs it to "
                       "run strace: %s",
                       strerror(refused), ptrace_advice(advice, sizeof advice));
    return 0;
}

// --- running and reaping ------------------------------------------------------------------

// The program dies with the tool: killed by SIGKILL (a CI job's hard timeout, the OOM killer), the
// tool cannot end the tree itself, and the program would go on. The setting survives the exec of
// strace and of the program. Not the tracer's (strace forks it), nor that of processes the
// program started: strace ends once they have.
static void die_with_parent(pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent)
        _exit(127); // the tool is gone already, or the program could outlive it
}

static void child(const struct md_run_spec *spec, const struct exec_call *call, pid_t parent,
                  int report_fd)
{
    die_with_parent(parent);
    if (spec->stop_signals) // the tool waits for them; the program acts on them
        pthread_sigmask(SIG_UNBLOCK, spec->stop_signals, NULL);
    if (spec->before_start)
        raise(SIGSTOP); // the parent attaches what it needs, then continues us
    // the standard descriptors the tool's caller closed, which the tool holds open for itself:
    // closed for the program too, as without the tool (strace holds its own on close-on-exec
    // placeholders, so the program still finds them closed)
    for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++)
        if (spec->closed_std_fds & (1u << fd))
            close(fd);
    int null = spec->discard_output ? open("/dev/null", O_WRONLY | O_CLOEXEC) : -1;
    if (null >= 0)
        dup2(null, STDOUT_FILENO), dup2(null, STDERR_FILENO), close(null);
    if (call->envp)
        execve(call->file, (char *const *)call->argv, call->envp);
    else
        execv(call->file, (char *const *)call->argv);
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

// --- the timeout: stopping the whole process tree -------------------------------------------

struct proc_entry {
    pid_t pid, ppid, pgid;
    bool mine;   // a descendant of this process
    bool tracer; // traces another descendant (strace): ended last
};

// Parent and process group of one /proc entry; false when it is gone or not a process.
static bool read_proc_entry(const char *name, struct proc_entry *e)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = 0;
    char *end = strrchr(buf, ')'); // the command name may hold spaces and parentheses
    int ppid, pgid;
    char state;
    if (!end || sscanf(end + 1, " %c %d %d", &state, &ppid, &pgid) != 3)
        return false;
    *e = (struct proc_entry){.pid = (pid_t)atoi(name), .ppid = ppid, .pgid = pgid};
    return true;
}

// Every process in /proc, *count entries. NULL when /proc cannot be read.
static struct proc_entry *scan_processes(size_t *count)
{
    DIR *d = opendir("/proc");
    struct proc_entry *all = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *de; d && (de = readdir(d));) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            struct proc_entry *grown = realloc(all, cap * sizeof *grown);
            if (!grown)
                break;
            all = grown;
        }
        n += read_proc_entry(de->d_name, &all[n]);
    }
    if (d)
        closedir(d);
    *count = n;
    return all;
}

static int by_pid(const void *a, const void *b)
{
    pid_t x = ((const struct proc_entry *)a)->pid, y = ((const struct proc_entry *)b)->pid;
    return (x > y) - (x < y);
}

static struct proc_entry *find_proc(struct proc_entry *all, size_t n, pid_t pid)
{
    struct proc_entry key = {.pid = pid};
    return bsearch(&key, all, n, sizeof *all, by_pid);
}

// Marks this process's descendants. As a child subreaper we adopt every orphan, so a daemon
// that double-forked into its own session is still in our tree.
static void mark_tree(struct proc_entry *all, size_t n)
{
    qsort(all, n, sizeof *all, by_pid);
    pid_t self = getpid();
    for (bool grew = true; grew;) {
        grew = false;
        for (size_t i = 0; i < n; i++) {
            if (all[i].mine)
                continue;
            struct proc_entry *parent = find_proc(all, n, all[i].ppid);
            if (all[i].ppid == self || (parent && parent->mine))
                grew = all[i].mine = true;
        }
    }
    for (size_t i = 0; i < n; i++) {
        long tracer = all[i].mine ? status_field(all[i].pid, "TracerPid") : 0;
        struct proc_entry *t = tracer > 0 ? find_proc(all, n, (pid_t)tracer) : NULL;
        if (t && t->mine)
            t->tracer = true;
    }
}

// Sends sig to every descendant, and to each process group one of them leads (a process forked
// while /proc was read is still in its group); tracers only with_tracers.
static void signal_tree(int sig, bool with_tracers)
{
    size_t n;
    struct proc_entry *all = scan_processes(&n);
    if (!all)
        return;
    mark_tree(all, n);
    pid_t own_group = getpgrp();
    for (size_t i = 0; i < n; i++) {
        if (!all[i].mine || (all[i].tracer && !with_tracers))
            continue;
        kill(all[i].pid, sig);
        if (all[i].pgid == all[i].pid && all[i].pgid != own_group)
            kill(-all[i].pgid, sig);
    }
    free(all);
}

// The timeout runs in a thread of its own while the run's thread reaps. Both hold the lock while
// they work, so a pid that was listed is not reaped (and reused) before it is signalled.
struct watchdog {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool done; // every process has been reaped
    bool timed_out;
    bool has_deadline;
    struct timespec deadline;
    const sigset_t *stop_signals; // read by the watchdog thread (signalfd), or NULL
    int interrupted_by;           // the tree was ended on it
    int passed_on;                // the first SIGINT, left to the program
    uint32_t sigint_sender;       // its sender's pid (0: the terminal)
    double sigint_at;             // when it came (now_seconds)
    bool forward_pending;         // to be passed on at sigint_at + MD_SIGINT_COPY_SECONDS
    int done_fd;                  // eventfd: written when every process has been reaped
    pthread_t thread;
    bool running;
};

static struct timespec monotonic_after(double seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double whole = (double)(long long)seconds;
    ts.tv_sec += (time_t)whole;
    ts.tv_nsec += (long)((seconds - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

// Sleeps until the deadline with the lock held; false when the run ended first.
static bool sleep_until(struct watchdog *w, struct timespec deadline)
{
    while (!w->done)
        if (pthread_cond_timedwait(&w->wake, &w->lock, &deadline) == ETIMEDOUT)
            return !w->done;
    return false;
}

// SIGTERM to the tree, SIGKILL after the grace period, repeated until every process is reaped;
// the tracer is spared for a while so that it records its tracees' deaths.
static void end_tree(struct watchdog *w)
{
    signal_tree(SIGTERM, false);
    signal_tree(SIGCONT, false); // a stopped process acts on SIGTERM only once continued
    double tracers_at = now_seconds() + MD_TERM_GRACE_SECONDS + MD_TRACER_GRACE_SECONDS;
    for (bool go = sleep_until(w, monotonic_after(MD_TERM_GRACE_SECONDS)); go;
         go = sleep_until(w, monotonic_after(MD_KILL_REPEAT_SECONDS)))
        signal_tree(SIGKILL, now_seconds() >= tracers_at);
}

// Milliseconds until the deadline or a SIGINT to pass on (0 once passed), or -1 without either:
// a poll timeout.
static int ms_until(const struct watchdog *w)
{
    double left = -1;
    if (w->has_deadline) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        left = (double)(w->deadline.tv_sec - now.tv_sec) +
               (double)(w->deadline.tv_nsec - now.tv_nsec) / 1e9;
        left = left < 0 ? 0 : left;
    }
    if (w->forward_pending) {
        double forward = w->sigint_at + MD_SIGINT_COPY_SECONDS - now_seconds();
        forward = forward < 0 ? 0 : forward;
        left = left < 0 || forward < left ? forward : left;
    }
    return left < 0 ? -1 : (int)(left * 1000) + 1;
}

static bool deadline_passed(const struct watchdog *w)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > w->deadline.tv_sec ||
           (now.tv_sec == w->deadline.tv_sec && now.tv_nsec >= w->deadline.tv_nsec);
}

// Passes a SIGINT a process sent on to the tree once no copy of it came to say the program has it.
static void forward_sigint_when_due(struct watchdog *w)
{
    if (w->forward_pending && now_seconds() >= w->sigint_at + MD_SIGINT_COPY_SECONDS) {
        w->forward_pending = false;
        signal_tree(SIGINT, false);
    }
}

// A stop signal: true when the tree must be ended now. A SIGINT from the terminal has reached
// the program's process group already; one sent by a process is passed on; the second ends the
// tree whatever its source.
static bool on_stop_signal(struct watchdog *w, const struct signalfd_siginfo *info)
{
    int sig = (int)info->ssi_signo;
    bool from_process = info->ssi_code != SI_KERNEL;
    if (sig == SIGINT && w->passed_on && from_process && info->ssi_pid == w->sigint_sender &&
        now_seconds() < w->sigint_at + MD_SIGINT_COPY_SECONDS) {
        w->forward_pending = false; // the group's copy: the program got this one itself
        return false;
    }
    if (sig != SIGINT || w->passed_on) {
        w->interrupted_by = sig;
        return true;
    }
    w->passed_on = sig;
    w->sigint_sender = from_process ? info->ssi_pid : 0;
    w->sigint_at = now_seconds();
    w->forward_pending = from_process;
    return false;
}

// Waits for the end of the run, the deadline or a stop signal. A signal that comes once the run
// is over stays pending, for the caller (md_run_take_signal).
static void *watchdog_main(void *arg)
{
    struct watchdog *w = arg;
    int sig_fd = w->stop_signals ? signalfd(-1, w->stop_signals, SFD_CLOEXEC) : -1;
    for (;;) {
        struct pollfd fds[2] = {{.fd = w->done_fd, .events = POLLIN},
                                {.fd = sig_fd, .events = POLLIN}};
        int n = poll(fds, sig_fd >= 0 ? 2 : 1, ms_until(w));
        if (n < 0 && errno == EINTR)
            continue;
        pthread_mutex_lock(&w->lock);
        bool end = false;
        if (w->done || n < 0) {
            pthread_mutex_unlock(&w->lock);
            break;
        }
        struct signalfd_siginfo info;
        if (n == 0 && w->has_deadline && deadline_passed(w))
            w->timed_out = end = true;
        else if (sig_fd >= 0 && (fds[1].revents & POLLIN) &&
                 read(sig_fd, &info, sizeof info) == (ssize_t)sizeof info)
            end = on_stop_signal(w, &info);
        // after the read: a copy read in the same wakeup cancels the passing on
        if (!end)
            forward_sigint_when_due(w);
        if (end)
            end_tree(w);
        pthread_mutex_unlock(&w->lock);
        if (end)
            break;
    }
    if (sig_fd >= 0)
        close(sig_fd);
    return NULL;
}

static void watchdog_start(struct watchdog *w, double seconds, const sigset_t *stop_signals)
{
    memset(w, 0, sizeof *w);
    w->stop_signals = stop_signals;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->wake, &attr);
    pthread_condattr_destroy(&attr);
    w->done_fd = -1;
    if (seconds <= 0 && !stop_signals)
        return;
    w->has_deadline = seconds > 0;
    w->deadline = monotonic_after(seconds > 0 ? seconds : 0);
    w->done_fd = eventfd(0, EFD_CLOEXEC);
    w->running = w->done_fd >= 0 && !pthread_create(&w->thread, NULL, watchdog_main, w);
}

static void watchdog_stop(struct watchdog *w)
{
    pthread_mutex_lock(&w->lock);
    w->done = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    if (w->done_fd >= 0 && eventfd_write(w->done_fd, 1))
        abort(); // only fails on counter overflow, after 2^64 writes
    if (w->running)
        pthread_join(w->thread, NULL);
    if (w->done_fd >= 0)
        close(w->done_fd);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->lock);
}

// The name (comm) of a process that has exited but is not reaped yet, into name[16].
static void exited_name(pid_t pid, char *name)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "re");
    name[0] = 0;
    if (f && fgets(name, 16, f))
        name[strcspn(name, "\n")] = 0;
    if (f)
        fclose(f);
}

static void add_timeval(struct timeval *to, struct timeval t)
{
    to->tv_sec += t.tv_sec;
    to->tv_usec += t.tv_usec;
    if (to->tv_usec >= 1000000)
        to->tv_sec++, to->tv_usec -= 1000000;
}

// An orphan's use of the machine added to the program's: the orphans were the program's
// processes, but one that outlived its parent (a daemon, or a child left when the timeout ended
// the tree) is reaped here, so the program's own wait4 never counted it.
static void add_usage(struct rusage *to, const struct rusage *ru)
{
    add_timeval(&to->ru_utime, ru->ru_utime);
    add_timeval(&to->ru_stime, ru->ru_stime);
    to->ru_maxrss = ru->ru_maxrss > to->ru_maxrss ? ru->ru_maxrss : to->ru_maxrss;
    to->ru_minflt += ru->ru_minflt;
    to->ru_majflt += ru->ru_majflt;
    to->ru_inblock += ru->ru_inblock;
    to->ru_oublock += ru->ru_oublock;
    to->ru_nvcsw += ru->ru_nvcsw;
    to->ru_nivcsw += ru->ru_nivcsw;
}

// Reaps every child (the program, the detached tracer, orphans) until none is left. waitid with
// WNOWAIT finds an exited child without reaping it; it is then reaped under the lock. The
// program's status goes into res, and its rusage with every orphan's but the tracer's (strace -D
// detaches into a grandchild of this process, named strace, which is reparented here as to the
// subreaper: as in taskstats.c, a process of that name is taken for the tracer); the name the
// program had when it exited into name[16].
static void wait_all(pid_t pid, bool tracer, struct md_run_result *res, struct watchdog *w,
                     char *name)
{
    struct rusage orphans = {0};
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED | WNOWAIT | __WALL)) {
            if (errno == EINTR)
                continue;
            break; // ECHILD: no process left
        }
        int status;
        struct rusage ru;
        char orphan[16] = "";
        exited_name(info.si_pid, info.si_pid == pid ? name : orphan);
        pthread_mutex_lock(&w->lock);
        pid_t got = wait4(info.si_pid, &status, __WALL, &ru);
        pthread_mutex_unlock(&w->lock);
        if (got <= 0 || WIFSTOPPED(status) || WIFCONTINUED(status))
            continue;
        if (got != pid) {
            if (!(tracer && !strcmp(orphan, "strace")))
                add_usage(&orphans, &ru);
            continue;
        }
        res->usage = ru;
        res->exited = WIFEXITED(status);
        res->exit_code = res->exited ? WEXITSTATUS(status) : 0;
        res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    }
    add_usage(&res->usage, &orphans);
}

void md_run_stop_signals(sigset_t *set)
{
    static const int stops[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
    sigset_t blocked;
    pthread_sigmask(SIG_BLOCK, NULL, &blocked);
    sigemptyset(set);
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        struct sigaction now;
        if (sigaction(stops[i], NULL, &now) == 0 && now.sa_handler != SIG_IGN &&
            !sigismember(&blocked, stops[i]))
            sigaddset(set, stops[i]);
    }
}

int md_run_take_signal(const sigset_t *set)
{
    struct timespec none = {0, 0};
    int sig = sigtimedwait(set, NULL, &none);
    return sig > 0 ? sig : 0;
}

static int run_argv(const struct md_run_spec *spec, const struct exec_call *call,
                    struct md_run_result *res, struct md_error *err)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC))
        return md_fail_errno(err, errno, "pipe");
    // a stop signal that came while the run was being prepared: the program is not started
    if (spec->stop_signals && (res->interrupted_by = md_run_take_signal(spec->stop_signals))) {
        close(pipefd[0]);
        close(pipefd[1]);
        return md_fail(err, "interrupted by SIG%s before %s started",
                       sigabbrev_np(res->interrupted_by), spec->argv[0]);
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1); // adopt the detached tracer and the program's orphans
    double start = now_seconds();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return md_fail_errno(err, errno, "fork");
    if (pid == 0)
        child(spec, call, parent, pipefd[1]);
    close(pipefd[1]);
    res->pid = pid;
    if (spec->before_start && start_stopped_child(spec, pid, err)) {
        close(pipefd[0]);
        return -1;
    }
    int code = 0;
    ssize_t got = read(pipefd[0], &code, sizeof code); // EOF once exec succeeded
    close(pipefd[0]);
    struct watchdog w;
    watchdog_start(&w, spec->timeout_seconds, spec->stop_signals);
    char name[16] = "";
    wait_all(pid, spec->strace_out != NULL, res, &w, name);
    res->wall_seconds = now_seconds() - start;
    watchdog_stop(&w);
    res->timed_out = w.timed_out;
    res->interrupted_by = w.interrupted_by;
    res->signal_passed_on = w.passed_on;
    // a program that died of the SIGINT passed on ended early by it too; one that ignored or
    // handled it ran to its own end, and the run was not cut short
    if (!res->interrupted_by && w.passed_on && res->signal == w.passed_on)
        res->interrupted_by = w.passed_on;
    if (got == (ssize_t)sizeof code)
        return code == ENOENT && spec->strace_out
                   ? md_fail(err, "strace: not found; install it (apt-get install strace)")
                   : md_fail_errno(err, code, "%s", call->argv[0]);
    // strace -D execs the program in this very process: still named strace at its end, it never
    // did (strace said why on stderr), and its empty log is no sign of a refused ptrace
    if (spec->strace_out && !res->timed_out && !res->interrupted_by && !strcmp(name, "strace") &&
        strcmp(md_path_base_name(call->program), "strace"))
        return md_fail(err, "strace could not start %s (its message above says why)",
                       spec->argv[0]);
    return 0;
}

int md_run(const struct md_run_spec *spec, struct md_run_result *res, struct md_error *err)
{
    memset(res, 0, sizeof *res);
    struct exec_call call = {0};
    // found again as the caller found it (md_find_program): the exec then searches no PATH
    if (md_find_program(spec->argv[0], call.program, sizeof call.program, err))
        return -1;
    if (spec->strace_out && check_tracer(call.file, sizeof call.file, err))
        return -1;
    if (!spec->strace_out)
        snprintf(call.file, sizeof call.file, "%s", call.program);
    int rc = build_argv(spec, &call, err) ? -1 : run_argv(spec, &call, res, err);
    exec_call_free(&call);
    return rc;
}
