// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/trace.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "alloc/probe_static.h"
#include "lib/clock.h"
#include "lib/inspect.h"
#include "lib/path.h"
#include "lib/perf.h"
#include "lib/probe_file.h"
#include "lib/script.h"
#include "lib/taskstats.h"
#include "lib/trace_futex.h"
#include "lib/trace_hooks.h"
#include "lib/trace_perf.h"
#include "lib/trace_stacks.h"
#include "rules/rules.h"
#include "rules/verdict.h"
#include "lib/trace_stats.h"
#include "lib/tempfile.h"

// Calls slower than this are logged by the probe; any syscall strace stops on takes longer.
#define MD_SLOW_CALL_NS 2000
// The same when perf records the syscalls: the program is not stopped, so a syscall's call is
// only a little slower than the syscall itself. The cheapest, under perf's raw_syscalls
// tracepoints, took 457 ns (brk(0)), 462 ns (a futex wake with no waiter) and 557 ns (madvise of
// an untouched page) on this VM: 400 ns left a faster CPU no margin, and an allocator call whose
// only syscall is such a one would go unlogged (its syscall counted as the program's). Calls
// without syscalls that take this long (page faults, cache misses) are logged too, and joined
// with nothing.
#define MD_SLOW_CALL_NS_PERF 250
// perf stamps syscalls in ns, a little after the syscall instruction; the probes stamp a slow
// call's end right after it returns. What is left is the error of converting perf's clock to
// CLOCK_REALTIME (md_perf_result.clock_error_ns), and that the kernel stamps perf's records with
// its NMI-safe copy of CLOCK_MONOTONIC, which can lag the clock user space reads by a few ns.
#define MD_PERF_FAST_CLOCK_LAG_NS 10

enum trace_mode {
    MODE_PRELOAD, // the probe interposes malloc in a dynamic program
    MODE_HOOKS,   // a static x86-64 program runs under the static probe, which hooks malloc
    MODE_UPROBES, // other static programs, or malloc defined by the program: uprobes count
    MODE_NONE,    // neither (stripped static program, or perf refused): --ops N
};

static const char *const mode_names[] = {"preload", "hooks", "uprobes", "none"};

struct target {
    struct md_exec_plan plan; // plan.path: the ELF file that runs (a script's interpreter)
    cJSON *inspect;           // the inspect entry of the program
    enum trace_mode mode;
    const char *libc;
    struct md_hooks_plan hooks;  // MODE_HOOKS
    char static_probe[PATH_MAX]; // MODE_HOOKS: the static probe's executable
    char mode_note[512];         // why a static program is not hooked
    // preload mode: who served malloc at run time (the probe's dladdr), as an inspect "active"
    // object plus "same_as_file"; NULL when the probe did not say
    cJSON *run_time_active;
    // preload mode: the inspect entry of the program the first process exec'd (`env PROG`,
    // `nice PROG`), when it is not plan.path; NULL otherwise
    cJSON *exec_inspect;
};

// The inspect entry of the program that ran: the one the command exec'd in place, else its own.
static const cJSON *program_inspect(const struct target *t)
{
    return t->exec_inspect ? t->exec_inspect : t->inspect;
}

// The inspect entry of one file, or NULL (err says why).
static cJSON *inspect_entry(const char *path, struct md_error *err)
{
    cJSON *files = cJSON_CreateArray();
    struct md_inspector in;
    struct md_inspect_options opt = {0};
    if (md_inspector_init(&in, &opt, files, err)) {
        cJSON_Delete(files);
        return NULL;
    }
    md_inspect_path(&in, path);
    md_inspector_free(&in);
    cJSON *entry = cJSON_DetachItemFromArray(files, 0);
    cJSON_Delete(files);
    const char *error = md_json_get_str(entry, "error");
    if (error) {
        md_fail(err, "%s", error);
        cJSON_Delete(entry);
        return NULL;
    }
    return entry;
}

// Whether the file starts like text (no NUL, no control bytes but white space): a script.
static bool starts_as_text(const char *path)
{
    unsigned char head[256];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    ssize_t n = fd < 0 ? -1 : read(fd, head, sizeof head);
    if (fd >= 0)
        close(fd);
    for (ssize_t i = 0; i < n; i++)
        if (head[i] < 0x20 && !strchr("\t\n\r\f\v", head[i]))
            return false;
    return n > 0;
}

// A sanitizer's runtime library (libasan.so) must be the first object in the load order, before
// any LD_PRELOAD: ASan refuses to start behind the probe ("ASan runtime does not come first"),
// and its check switched off, it crashes. Its allocator is a test build's anyway.
static int sanitizer_first(const char *path, const cJSON *entry, struct md_error *err)
{
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(entry, "active");
    const char *family = md_json_get_str(active, "family");
    if (!family || strcmp(family, "sanitizer"))
        return 0;
    const char *provider = md_json_get_str(active, "provider");
    const char *base = provider ? md_path_base_name(provider) : NULL;
    return md_fail(err,
                   "%s: built with %s, whose runtime (%s) must come first in the load order, "
                   "before the probe trace preloads; its checking allocator is not the one the "
                   "program ships with either: trace a build without -fsanitize",
                   path, md_json_get_str(active, "name"), base ? base : "its library");
}

// Inspects the program to choose how to count its allocator calls.
static int examine(const char *path, struct target *t, struct md_error *err)
{
    cJSON *entry = inspect_entry(path, err);
    // a text file without #! runs only because shells retry it with sh on ENOEXEC
    if (!entry && strstr(err->msg, ": not an ELF file or ar archive") && starts_as_text(path)) {
        char quoted[PATH_MAX + 64], tool[PATH_MAX + 64];
        size_t len = 0;
        md_append_shell_word(quoted, sizeof quoted, &len, path);
        md_tool_command(tool, sizeof tool); // copied, it runs this tool
        return md_fail(err,
                       "%s: not an ELF file and no #! line: a shell would run it as a "
                       "script; trace its shell (`%s trace -- sh %s`)",
                       path, tool, quoted);
    }
    if (!entry)
        return -1;
    t->inspect = entry;
    const char *kind = md_json_get_str(entry, "kind");
    const char *provider =
        md_json_get_str(cJSON_GetObjectItemCaseSensitive(entry, "active"), "provider");
    bool own_malloc = provider && !strcmp(provider, path);
    t->mode = kind && !strcmp(kind, "dynamic") && !own_malloc ? MODE_PRELOAD : MODE_UPROBES;
    t->libc = md_json_get_str(entry, "libc");
    return t->mode == MODE_PRELOAD ? sanitizer_first(path, entry, err) : 0;
}

// The probe build for a flavour: glibc/libmdprobe.so, musl/libmdprobe.so, static/md-static-probe.
static int probe_build(const struct md_trace_options *opt, const char *flavour, char *out,
                       size_t size, struct md_error *err)
{
    bool is_static = !strcmp(flavour, "static");
    const char *file = is_static ? "md-static-probe" : MD_PROBE_LIBRARY;
    char dir[PATH_MAX];
    if (opt->probe_dir) {
        snprintf(out, size, "%s/%s/%s", opt->probe_dir, flavour, file);
    } else {
        md_tool_dir(dir, sizeof dir);
        snprintf(out, size, "%s/alloc/probe/%s/%s", dir, flavour, file);
    }
    // the static probe runs as the program; the libraries are only read by the loader
    if (access(out, is_static ? X_OK : R_OK))
        return md_fail(err, "%s: the probe is missing or not %s (run `make` first)", out,
                       is_static ? "executable" : "readable");
    return 0;
}

void md_either_libc_path(const char *dir, const char *file, char *out, size_t size)
{
    char glibc_build[PATH_MAX + 64], either[PATH_MAX + 64];
    snprintf(glibc_build, sizeof glibc_build, "%s/any/x86_64/%s", dir, file);
    snprintf(either, sizeof either, "%s/any/$PLATFORM/%s", dir, file);
    if (!access(glibc_build, R_OK) && !access(either, R_OK))
        snprintf(out, size, "%s", either);
}

// Processes of the other libc in the tree (a glibc shell running a musl program, a musl program
// calling system()) cannot load this libc's probe: they would exit 127.
static void either_libc_probe(const struct md_trace_options *opt, char *lib, size_t size)
{
    char dir[PATH_MAX];
    if (opt->probe_dir)
        snprintf(dir, sizeof dir, "%s", opt->probe_dir);
    else
        md_tool_dir(dir, sizeof dir - 16), strcat(dir, "/alloc/probe");
    md_either_libc_path(dir, MD_PROBE_LIBRARY, lib, size);
}

// A static program is run under the static probe unless --uprobes asks otherwise, the probe is
// not there, or the program's allocator entries cannot be hooked; then uprobes count, and the
// note says why.
static void choose_hooks(struct target *t, const struct md_trace_options *opt)
{
    const char *kind = md_json_get_str(t->inspect, "kind");
    bool is_static = kind && (!strcmp(kind, "static") || !strcmp(kind, "static-pie"));
    // options that do not apply to this program say so instead of being dropped in silence
    if (t->mode == MODE_PRELOAD && (opt->uprobes || opt->ops))
        snprintf(t->mode_note, sizeof t->mode_note,
                 "%s: the preload probe counts this dynamic "
                 "program's calls",
                 opt->uprobes && opt->ops ? "--uprobes and --ops ignored"
                 : opt->uprobes           ? "--uprobes ignored (it is for static programs)"
                                          : "--ops ignored");
    if (t->mode != MODE_UPROBES || !is_static || opt->uprobes)
        return;
    struct md_error why;
    if (probe_build(opt, "static", t->static_probe, sizeof t->static_probe, &why) ||
        md_hooks_plan(t->plan.path, &t->hooks, &why)) {
        snprintf(t->mode_note, sizeof t->mode_note, "not hooked: %s", why.msg);
        return;
    }
    // musl-gcc -static-pie: libc is linked in, but the loader named relocates the program. The
    // static probe maps a program the way the kernel does, without running a loader, so it
    // cannot start one; uprobes find its malloc in the file wherever the loader puts it.
    const char *interp = md_json_get_str(t->inspect, "interpreter");
    if (interp) {
        snprintf(t->mode_note, sizeof t->mode_note,
                 "not hooked: the program names a loader (%s) that relocates it, and the static "
                 "probe starts programs without one",
                 interp);
        return;
    }
    t->mode = MODE_HOOKS;
}

// The program the first process ran last, when it exec'd another than the command's file (`env`,
// `nice`, a shim): that one's threads and allocator are what the rules judge.
static void note_exec_image(struct target *t, const struct md_probe_header *h)
{
    char image[sizeof h->malloc_provider_image];
    memcpy(image, h->malloc_provider_image, sizeof image);
    image[sizeof image - 1] = 0;
    if (!image[0] || md_same_file(image, t->plan.path))
        return;
    struct md_error ignored;
    t->exec_inspect = inspect_entry(image, &ignored);
}

// The file the probe's malloc came from in the program's first process. When it is not the one
// inspect found (LD_PRELOAD, LD_LIBRARY_PATH, /etc/ld.so.preload), it is inspected too: its
// allocator is the one that served the run.
static void note_run_time_malloc(struct target *t, const struct md_probe_header *h)
{
    char provider[sizeof h->malloc_provider];
    memcpy(provider, h->malloc_provider, sizeof provider);
    provider[sizeof provider - 1] = 0;
    if (!provider[0])
        return;
    note_exec_image(t, h);
    const cJSON *file_active = cJSON_GetObjectItemCaseSensitive(program_inspect(t), "active");
    bool same = md_same_file(provider, md_json_get_str(file_active, "provider"));
    cJSON *entry = NULL;
    const cJSON *active = file_active;
    if (!same) {
        struct md_error ignored;
        entry = inspect_entry(provider, &ignored);
        active = cJSON_GetObjectItemCaseSensitive(entry, "active");
    }
    t->run_time_active = active ? cJSON_Duplicate(active, 1) : cJSON_CreateObject();
    cJSON_DeleteItemFromObjectCaseSensitive(t->run_time_active, "note"); // "may change at run time"
    cJSON_DeleteItemFromObjectCaseSensitive(t->run_time_active, "provider");
    cJSON_AddStringToObject(t->run_time_active, "provider", provider);
    cJSON_AddBoolToObject(t->run_time_active, "same_as_file", same);
    cJSON_Delete(entry);
}

// The scripts the command went through to reach its ELF file, outermost first.
static void add_scripts(cJSON *target, const struct md_exec_plan *plan)
{
    cJSON *scripts = cJSON_AddArrayToObject(target, "scripts");
    for (size_t i = 0; i < plan->hops; i++) {
        const struct md_script_hop *h = &plan->hop[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", h->script);
        cJSON_AddStringToObject(o, "interpreter", h->interpreter);
        md_json_str(o, "argument", h->has_argument ? h->argument : NULL);
        cJSON_AddStringToObject(o, "runs", h->runs);
        cJSON_AddItemToArray(scripts, o);
    }
}

static void add_target(cJSON *report, const struct target *t, const struct md_trace_options *opt)
{
    char *const *argv = opt->argv;
    cJSON *o = cJSON_AddObjectToObject(report, "target");
    cJSON *args = cJSON_AddArrayToObject(o, "argv");
    for (char *const *a = argv; *a; a++)
        cJSON_AddItemToArray(args, cJSON_CreateString(*a));
    cJSON_AddStringToObject(o, "path", t->plan.path);
    // the program inherits it: a prescribed GLIBC_TUNABLES must keep its other settings
    md_json_str(o, "glibc_tunables", getenv("GLIBC_TUNABLES"));
    add_scripts(o, &t->plan);
    md_json_str(o, "kind", md_json_get_str(t->inspect, "kind"));
    md_json_str(o, "libc", md_json_get_str(t->inspect, "libc"));
    cJSON *active = cJSON_GetObjectItemCaseSensitive(t->inspect, "active");
    cJSON_AddItemToObject(o, "active", active ? cJSON_Duplicate(active, 1) : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "malloc_at_run_time",
                          t->run_time_active ? cJSON_Duplicate(t->run_time_active, 1)
                                             : cJSON_CreateNull());
    cJSON *image = t->exec_inspect ? cJSON_AddObjectToObject(o, "exec_image")
                                   : cJSON_AddNullToObject(o, "exec_image");
    for (const char *const *key = (const char *const[]){"path", "kind", "libc", NULL};
         t->exec_inspect && *key; key++)
        md_json_str(image, *key, md_json_get_str(t->exec_inspect, *key));
    cJSON_AddStringToObject(report, "mode", mode_names[t->mode]);
    md_json_str(report, "mode_note", t->mode_note[0] ? t->mode_note : NULL);
    // the rules' prescriptions name this tool's own mdalloc builds
    char dir[PATH_MAX];
    md_tool_dir(dir, sizeof dir - 8);
    strcat(dir, "/alloc");
    cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(report, "tool"), "alloc_dir", dir);
    char tool[PATH_MAX + 64];
    md_tool_command(tool, sizeof tool);
    cJSON_AddStringToObject(cJSON_GetObjectItemCaseSensitive(report, "tool"), "command", tool);
    if (opt->include_inspect)
        cJSON_AddItemToObject(report, "inspect", cJSON_Duplicate(program_inspect(t), 1));
}

static const struct md_exit_record *tree_member(const struct md_tree_usage *tree, pid_t pid)
{
    for (size_t i = 0; i < tree->member_count; i++)
        if (tree->members[i].tgid == pid)
            return &tree->members[i];
    return NULL;
}

// Whether a probe in another pid namespace, which could not translate its pid (noted negated),
// noted an image of this name: such a process cannot be found by its pid, only by name.
static bool foreign_image_noted(const struct md_probe_header *h, const char *comm)
{
    if (!atomic_load(&h->foreign_pid_processes))
        return false;
    for (uint32_t i = 0; i < MD_PROBE_IMAGES; i++) {
        const struct md_probe_image *e = &h->images[i];
        if (atomic_load(&e->pid) < 0 && md_probe_comm_equal(e->comm, comm))
            return true;
    }
    return false;
}

// How a process of the tree ran with respect to the probe.
enum coverage {
    COVERED,      // a probe counted it
    OTHER_PIDNS,  // a probe counted it in another pid namespace, by pids the tool cannot match
    OTHER_USER,   // not counted: it ran as a user who could not open the probe's file
    NOT_FOLLOWED, // not counted: a program the probe cannot follow (static, setuid)
    EXEC_AGAIN,   // its first image hooked, the later ones not: a static program exec'd its file
};

// A process ran with a probe when a probe noted its last image (its name at exit); one that never
// exec'd has its parent's. A chain that leaves the tree counts as probed (nothing to blame).
// A process without one ran as another user when its real uid is neither the tool's (whose
// file it is, mode 0600) nor root's: it could open the file only through the descriptor the
// tool passed, and that was closed on the way.
static enum coverage member_coverage(const struct md_tree_usage *tree,
                                     const struct md_probe_header *h,
                                     const struct md_strace_log *log,
                                     const struct md_exit_record *r, uid_t tool_uid)
{
    for (size_t depth = 0; r && depth <= tree->member_count; depth++) {
        if (!r->forked_only) {
            char comm[MD_PROBE_COMM] = {0};
            memcpy(comm, r->comm, sizeof comm - 1);
            // a static program that exec'd its own file again ends under the name the probe
            // noted for its first image, so the name alone would call the last one probed; a
            // child it forked before that exec (depth > 0) ran the hooked image
            for (size_t i = 0; depth == 0 && i < log->unhooked_exec_count; i++)
                if (log->unhooked_execs[i] == r->tgid)
                    return EXEC_AGAIN;
            if (md_probe_image_noted(h, r->tgid, comm))
                return COVERED;
            if (foreign_image_noted(h, comm))
                return OTHER_PIDNS;
            return r->uid != tool_uid && r->uid != 0 ? OTHER_USER : NOT_FOLLOWED;
        }
        r = tree_member(tree, r->ppid);
    }
    return COVERED;
}

// Whether name may join list, which names each program once, at most 8 of them: enough to say
// where to look, where a tree of thousands of processes would otherwise list thousands. The
// items are names, or objects that give theirs as "program".
static bool name_may_join(const cJSON *list, const char *name)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        const char *listed = cJSON_IsString(e) ? e->valuestring : md_json_get_str(e, "program");
        if (!strcmp(listed, name))
            return false;
    }
    return cJSON_GetArraySize(list) < 8;
}

static void add_name(cJSON *list, const char *name)
{
    if (name_may_join(list, name))
        cJSON_AddItemToArray(list, cJSON_CreateString(name));
}

// program_ran_as: the name of the first process's (root's) last program (what CMD exec'd in its
// place: env's and nice's PROG); program_probed: whether that ran with a probe (c, NULL when the
// probe's table cannot tell). A static PROG exec'd by a dynamic CMD cannot get one, and then the
// counts are CMD's own, not PROG's.
// Why a process ran without the probe, as run.unprobed and run.program_unprobed_reason say it.
static const char *unprobed_reason(enum coverage c)
{
    return c == OTHER_USER ? "other-user" : c == EXEC_AGAIN ? "exec-again" : "not-followed";
}

static void add_program_coverage(cJSON *o, const struct md_exit_record *root,
                                 const enum coverage *c)
{
    if (root)
        cJSON_AddStringToObject(o, "program_ran_as", root->comm);
    else
        cJSON_AddNullToObject(o, "program_ran_as");
    if (root && c) {
        bool probed = *c == COVERED || *c == OTHER_PIDNS;
        cJSON_AddBoolToObject(o, "program_probed", probed);
        // the program's own reason: run.unprobed names a program once, at most 8 of them
        if (!probed)
            cJSON_AddStringToObject(o, "program_unprobed_reason", unprobed_reason(*c));
        if (*c == OTHER_USER)
            cJSON_AddNumberToObject(o, "program_uid", root->uid);
    } else {
        cJSON_AddNullToObject(o, "program_probed");
    }
}

// A program's entry in run.unprobed, once per name: why it ran without the probe.
static void add_unprobed(cJSON *list, const struct md_exit_record *r, enum coverage c)
{
    if (!name_may_join(list, r->comm))
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "program", r->comm);
    cJSON_AddStringToObject(o, "reason", unprobed_reason(c));
    if (c == OTHER_USER)
        cJSON_AddNumberToObject(o, "uid", r->uid);
    else
        cJSON_AddNullToObject(o, "uid");
    cJSON_AddItemToArray(list, o);
}

// The program's coverage (add_program_coverage); the processes that ran with the probe in another
// pid namespace, whose syscalls could not be tied to their calls (see warn_other_pid_namespace),
// and the names of up to 8 of them; probed_processes, and the names of the programs that ran
// without a probe (a static program exec'd by the program, a setuid one that could not open the
// probe file), from taskstats. One pass over the tree finds each process's coverage once, since
// each is a search of the probe's table for every process up its chain of forks.
static void add_probe_coverage(cJSON *o, const struct md_tree_usage *tree,
                               const struct md_probe_file *pf, const struct md_strace_log *log,
                               pid_t root)
{
    const struct md_exit_record *root_r = tree ? tree_member(tree, root) : NULL;
    uint32_t foreign = pf ? atomic_load(&pf->header->foreign_pid_processes) : 0;
    // a table that overflowed (thousands of processes) cannot tell who ran without a probe
    bool known = pf && tree && !atomic_load(&pf->header->images_dropped);
    cJSON *foreign_names = cJSON_CreateArray();
    cJSON *names = known ? cJSON_CreateArray() : NULL, *why = known ? cJSON_CreateArray() : NULL;
    enum coverage root_c = COVERED;
    unsigned unprobed = 0;
    uid_t tool_uid = geteuid();
    bool scan = known || (foreign && tree);
    for (size_t i = 0; scan && i < tree->member_count; i++) {
        const struct md_exit_record *r = &tree->members[i];
        enum coverage c = member_coverage(tree, pf->header, log, r, tool_uid);
        if (r == root_r)
            root_c = c;
        if (foreign && c == OTHER_PIDNS)
            add_name(foreign_names, r->comm);
        if (!known || c == COVERED || c == OTHER_PIDNS)
            continue;
        unprobed++;
        add_name(names, r->comm);
        add_unprobed(why, r, c);
    }
    add_program_coverage(o, root_r, known ? &root_c : NULL);
    cJSON_AddNumberToObject(o, "other_pid_namespace_processes", foreign);
    cJSON_AddItemToObject(o, "other_pid_namespace_programs", foreign_names);
    if (known) {
        cJSON_AddNumberToObject(o, "probed_processes", (double)(tree->processes - unprobed));
        cJSON_AddItemToObject(o, "unprobed_programs", names);
        cJSON_AddItemToObject(o, "unprobed", why);
        return;
    }
    if (pf)
        cJSON_AddNumberToObject(o, "probed_processes", atomic_load(&pf->header->processes));
    else
        cJSON_AddNullToObject(o, "probed_processes");
    cJSON_AddNullToObject(o, "unprobed_programs");
    cJSON_AddNullToObject(o, "unprobed");
}

// tree: the program's processes from taskstats, or NULL when the kernel did not tell;
// probe_kb: the probe file's pages (md_probe_file_resident_kb), negative when there was none
static void add_run(cJSON *report, const struct md_run_result *r, double timeout,
                    const struct md_tree_usage *tree, const struct md_strace_log *log,
                    const struct md_probe_file *pf, double probe_kb)
{
    cJSON *o = cJSON_AddObjectToObject(report, "run");
    cJSON_AddBoolToObject(o, "timed_out", r->timed_out);
    if (timeout > 0)
        cJSON_AddNumberToObject(o, "timeout_seconds", timeout);
    else
        cJSON_AddNullToObject(o, "timeout_seconds");
    if (r->exited)
        cJSON_AddNumberToObject(o, "exit_code", r->exit_code);
    else
        cJSON_AddNullToObject(o, "exit_code");
    if (r->signal)
        cJSON_AddStringToObject(o, "signal",
                                sigabbrev_np(r->signal) ? sigabbrev_np(r->signal) : "?");
    else
        cJSON_AddNullToObject(o, "signal");
    if (r->interrupted_by)
        cJSON_AddStringToObject(o, "interrupted_by", sigabbrev_np(r->interrupted_by));
    else
        cJSON_AddNullToObject(o, "interrupted_by");
    if (r->signal_passed_on)
        cJSON_AddStringToObject(o, "signal_passed_on", sigabbrev_np(r->signal_passed_on));
    else
        cJSON_AddNullToObject(o, "signal_passed_on");
    cJSON_AddNumberToObject(o, "wall_seconds", r->wall_seconds);
    cJSON_AddNumberToObject(o, "user_seconds", md_timeval_seconds(r->usage.ru_utime));
    cJSON_AddNumberToObject(o, "sys_seconds", md_timeval_seconds(r->usage.ru_stime));
    cJSON_AddNumberToObject(o, "max_rss_kb",
                            tree ? (double)tree->peak_rss_kb : (double)r->usage.ru_maxrss);
    cJSON_AddStringToObject(o, "max_rss_source", tree ? "taskstats" : "wait4");
    // in max_rss_kb too, as far as the processes touched them: the rules take it out
    md_json_num_or_null(o, "probe_file_kb", probe_kb >= 0, probe_kb);
    cJSON_AddNumberToObject(o, "minor_faults", (double)r->usage.ru_minflt);
    cJSON_AddNumberToObject(o, "major_faults", (double)r->usage.ru_majflt);
    // strace's exit lines count threads too; taskstats knows processes
    cJSON_AddNumberToObject(o, "processes",
                            tree ? (double)tree->processes : (double)(log->exits + log->kills));
    add_probe_coverage(o, tree, pf, log, r->pid);
}

struct session {
    struct target target;
    struct md_trace_perf perf;
    struct md_probe_file probe;
    char strace_out[PATH_MAX];
    int strace_lock_fd; // held open and locked while strace_out exists (lib/tempfile.h)
    char env_preload[MD_PRELOAD_ENV_MAX], env_file[PATH_MAX + 32];
    char **hooked_argv; // MODE_HOOKS: the static probe's command line, then the program's
    // MODE_HOOKS: the same three arguments for a re-run through /proc/self/exe (probe_static.h)
    char env_static_file[PATH_MAX + 32], env_static_exe[PATH_MAX + 32], env_static_hooks[1100];
    struct md_strace_log log;
    uint64_t run_start_ns;     // CLOCK_REALTIME just before the program started
    uint64_t sys_lost;         // syscall records perf could not store
    char sys_note[512];        // why strace recorded them after all, when perf refused
    struct md_tree_usage tree; // the program's processes, from taskstats
};

#define MD_STRACE_FILE_PREFIX "malloc-doctor-strace"

// strace's log; logs left by runs that were killed are removed first (lib/tempfile.h).
static int strace_file(struct session *s, struct md_error *err)
{
    md_temp_sweep(md_temp_dir(), MD_STRACE_FILE_PREFIX, MD_TEMP_ORPHAN_SECONDS);
    s->strace_lock_fd = md_temp_create(md_temp_dir(), MD_STRACE_FILE_PREFIX, s->strace_out,
                                       sizeof s->strace_out, err);
    return s->strace_lock_fd < 0 ? -1 : 0;
}

// The static probe's command line: PROBE_FILE EXECUTABLE HOOKS -- ARGV...
static int hooked_command(struct session *s, struct md_error *err)
{
    size_t n = 0;
    char **argv = s->target.plan.argv; // a script's: what the kernel gives its interpreter
    while (argv[n])
        n++;
    s->hooked_argv = calloc(n + 6, sizeof *s->hooked_argv);
    if (!s->hooked_argv)
        return md_fail(err, "out of memory");
    char **a = s->hooked_argv;
    *a++ = s->target.static_probe;
    *a++ = s->probe.path;
    *a++ = s->target.plan.path;
    *a++ = s->target.hooks.spec;
    *a++ = "--";
    memcpy(a, argv, n * sizeof *a);
    snprintf(s->env_static_file, sizeof s->env_static_file, "%s=%s", MD_STATIC_ENV_FILE,
             s->probe.path);
    snprintf(s->env_static_exe, sizeof s->env_static_exe, "%s=%s", MD_STATIC_ENV_EXE,
             s->target.plan.path);
    snprintf(s->env_static_hooks, sizeof s->env_static_hooks, "%s=%s", MD_STATIC_ENV_HOOKS,
             s->target.hooks.spec);
    return 0;
}

// The preload probe for a dynamic program, or the static probe with its hooks.
static int prepare_probe(const struct md_trace_options *opt, struct session *s,
                         const char *active_id, struct md_error *err)
{
    uint64_t slow_ns = s->perf.syscalls ? MD_SLOW_CALL_NS_PERF : MD_SLOW_CALL_NS;
    if (s->target.mode == MODE_HOOKS)
        return md_probe_file_create(&s->probe, slow_ns,
                                    opt->probe_flags & (MD_PROBE_WANT_STACKS | MD_PROBE_WANT_LEAKS),
                                    err) ||
               hooked_command(s, err);
    char lib[PATH_MAX];
    // an allocator with rseq critical sections of its own must not see the rseq mark
    uint32_t flags = opt->probe_flags;
    if (active_id && !strcmp(active_id, "tcmalloc-google"))
        flags |= MD_PROBE_PRECISE;
    // the rseq mark finds calls that were switched out; without strace's stops a syscall is not
    if (s->perf.syscalls)
        flags |= MD_PROBE_PRECISE;
    // tail mode where the probe can use it (the rseq mark, no --stacks or --leaks): the default
    if (!opt->no_tail_calls)
        flags |= MD_PROBE_TAIL_CALLS;
    const char *libc = s->target.libc;
    if (probe_build(opt, libc && !strcmp(libc, "musl") ? "musl" : "glibc", lib, sizeof lib, err))
        return -1;
    either_libc_probe(opt, lib, sizeof lib);
    // the loader splits LD_PRELOAD at blanks and colons: such a path would load nothing, and the
    // program would run unprobed
    const char *with = opt->preload_allocator;
    if (strpbrk(lib, " :\t") || (with && strpbrk(with, " :\t")))
        return md_fail(err,
                       "%s: LD_PRELOAD cannot name a path with a blank or a colon; move it (or "
                       "give --probe-dir, --compare-with a path without them)",
                       strpbrk(lib, " :\t") ? lib : with);
    // The probe first, so it interposes; then the allocator it forwards to (--compare).
    const char *preload[] = {lib, with};
    if (md_preload_env(s->env_preload, sizeof s->env_preload, preload, 2, err) ||
        md_probe_file_create(&s->probe, slow_ns, flags, err))
        return -1;
    snprintf(s->env_file, sizeof s->env_file, "%s=%s", MD_PROBE_ENV, s->probe.path);
    return 0;
}

// Whether the program makes this machine's native syscalls, which perf's filter and decoding
// use (an x86-64 tool; a 32-bit program's numbers differ). Only x86-64 is supported.
static bool native_program(const cJSON *inspect)
{
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(inspect, "format");
    const char *cls = md_json_get_str(format, "class");
    const char *machine = md_json_get_str(format, "machine");
#if defined(__x86_64__)
    return cls && machine && !strcmp(cls, "ELF64") && !strcmp(machine, "x86-64");
#else
    (void)cls, (void)machine;
    return false;
#endif
}

// perf records the syscalls when asked to, or by default when permitted and no preload probe
// runs: the preload probe finds slow calls by the rseq mark, which needs strace's stops, and
// would otherwise time every call (MD_PROBE_PRECISE); the static probe times every call anyway.
static int choose_syscall_source(const struct md_trace_options *opt, struct session *s,
                                 struct md_error *err)
{
    char why[256] = "";
    bool native = native_program(s->target.inspect);
    if (!native)
        snprintf(why, sizeof why,
                 "%s is not an x86-64 program: perf is set to record x86-64 syscall numbers",
                 s->target.plan.path);
    bool permitted = opt->syscalls != MD_SYSCALLS_STRACE && native &&
                     md_perf_syscalls_permitted(why, sizeof why);
    if (opt->syscalls == MD_SYSCALLS_PERF && !permitted)
        return md_fail(err, "--syscalls perf: %s", why);
    // s->perf.syscalls: perf records them, not strace (strace_out stays empty)
    s->perf.syscalls =
        opt->syscalls == MD_SYSCALLS_PERF || (permitted && s->target.mode != MODE_PRELOAD);
    // perf is the default for programs without the preload probe: say why strace had to record
    // (it stops the program at each syscall and serialises its threads: contention changes)
    if (!s->perf.syscalls && opt->syscalls == MD_SYSCALLS_AUTO && s->target.mode != MODE_PRELOAD &&
        why[0])
        snprintf(s->sys_note, sizeof s->sys_note, "perf could not record them (%s): strace did",
                 why);
    return s->perf.syscalls ? 0 : strace_file(s, err);
}

// The shared library that serves the program's malloc: an allocator's own (jemalloc's, one the
// signature table does not know), all of whose code is the allocator, or a libc, whose
// allocator is a part of it (md_trace_perf_prepare tells them apart). NULL when the program
// itself serves it.
static const char *provider_library(const cJSON *inspect, const char *program)
{
    const char *provider =
        md_json_get_str(cJSON_GetObjectItemCaseSensitive(inspect, "active"), "provider");
    return provider && !md_same_file(provider, program) ? provider : NULL;
}

// Adds a note about the mode after those already there.
static void add_mode_note(struct target *t, const char *text)
{
    char note[sizeof t->mode_note];
    snprintf(note, sizeof note, "%s%s%s", t->mode_note, t->mode_note[0] ? "; " : "", text);
    snprintf(t->mode_note, sizeof t->mode_note, "%s", note);
}

// The hooks and uprobes count at the malloc family's entries. libstdc++'s new and delete call
// malloc and free, so they are counted; an allocator linked in with its own (static tcmalloc or
// jemalloc) serves them without, and the counts lack them: the report must say so, or a CI gate
// trusts a tenth of the calls.
static void note_cxx_bypass(struct target *t)
{
    char names[160], note[sizeof t->mode_note];
    struct md_error ignored;
    if (md_cxx_bypassing(t->plan.path, names, sizeof names, &ignored) <= 0)
        return;
    // a libc's allocator has no operators of its own: then they are the program's (a pool)
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(t->inspect, "active");
    const char *allocator = md_json_get_str(active, "name");
    const char *family = md_json_get_str(active, "family");
    bool libc = !family || !strcmp(family, "glibc") || !strcmp(family, "musl");
    char owner[128] = "";
    if (allocator && !libc)
        snprintf(owner, sizeof owner, " are %s's own and", allocator);
    snprintf(note, sizeof note,
             "C++ new and delete not counted: the program's operators (%s)%s do not call malloc "
             "and free, where the %s count",
             names, owner, t->mode == MODE_HOOKS ? "hooks" : "uprobes");
    add_mode_note(t, note);
}

// With no malloc family symbol to place uprobes on (stripped), nothing counts the calls: said
// once, as the hooks' planner may have said it already.
static void note_nothing_to_probe(struct target *t)
{
    char note[PATH_MAX + 128];
    if (strstr(t->mode_note, "no malloc symbol"))
        return;
    snprintf(note, sizeof note,
             "no uprobes: %s has no malloc symbol to place them on (stripped, or the program "
             "never calls it)",
             t->plan.path);
    add_mode_note(t, note);
}

static int prepare(const struct md_trace_options *opt, struct session *s, struct md_error *err)
{
    char program[PATH_MAX];
    if (md_find_program(opt->argv[0], program, sizeof program, err) ||
        md_exec_plan_make(program, opt->argv, &s->target.plan, err) ||
        examine(s->target.plan.path, &s->target, err))
        return -1;
    choose_hooks(&s->target, opt);
    const char *active_id =
        md_json_get_str(cJSON_GetObjectItemCaseSensitive(s->target.inspect, "active"), "id");
    bool uprobes = s->target.mode == MODE_UPROBES;
    md_trace_perf_prepare(&s->perf, s->target.plan.path, uprobes, active_id, s->target.libc,
                          provider_library(s->target.inspect, s->target.plan.path), opt->sample_hz,
                          opt->probe_flags & MD_PROBE_WANT_STACKS);
    if (uprobes && !s->perf.uprobe_count) {
        s->target.mode = MODE_NONE;
        note_nothing_to_probe(&s->target);
    }
    if (s->target.mode == MODE_HOOKS || s->target.mode == MODE_UPROBES)
        note_cxx_bypass(&s->target);
    if (opt->input_not_repeatable && s->target.mode == MODE_PRELOAD)
        return md_fail(err, "%s", opt->input_not_repeatable);
    if (choose_syscall_source(opt, s, err))
        return -1;
    if (s->target.mode == MODE_UPROBES || s->target.mode == MODE_NONE)
        return 0;
    return prepare_probe(opt, s, active_id, err);
}

static void cleanup(struct session *s)
{
    md_temp_remove(s->strace_out, s->strace_lock_fd);
    md_probe_file_close(&s->probe);
    md_trace_perf_close(&s->perf);
    md_strace_log_free(&s->log);
    cJSON_Delete(s->target.inspect);
    cJSON_Delete(s->target.run_time_active);
    cJSON_Delete(s->target.exec_inspect);
    free(s->tree.members);
    md_exec_plan_free(&s->target.plan);
    free(s->hooked_argv);
}

static int stats_with_stacks(const struct md_trace_options *opt, struct session *s,
                             struct md_trace_input *in, cJSON *report, struct md_error *err)
{
    in->stack_slots = s->probe.header->stack_max + 1;
    in->futex_waits_by_stack = calloc(in->stack_slots, sizeof *in->futex_waits_by_stack);
    in->futex_ns_by_stack = calloc(in->stack_slots, sizeof *in->futex_ns_by_stack);
    int rc = -1;
    if (!in->futex_waits_by_stack || !in->futex_ns_by_stack)
        md_fail(err, "out of memory");
    else if (!md_trace_stats(in, report, err)) {
        struct md_stack_options so = {.stacks = opt->probe_flags & MD_PROBE_WANT_STACKS,
                                      .leaks = opt->probe_flags & MD_PROBE_WANT_LEAKS,
                                      .leak_min_bytes = opt->leak_min_bytes,
                                      .folded = opt->folded,
                                      .futex_waits = in->futex_waits_by_stack,
                                      .futex_ns = in->futex_ns_by_stack,
                                      .run_start_ns = s->run_start_ns,
                                      .execs = s->log.execs,
                                      .exec_count = s->log.exec_count};
        rc = md_trace_stacks(&s->probe, &so, report, err);
    }
    free(in->futex_waits_by_stack);
    free(in->futex_ns_by_stack);
    return rc;
}

// The program's processes as the kernel's exit records tell them (lib/taskstats.h).
// The run's before_start: the program is about to start, so the probe file is armed last thing
// (md_probe_file_arm), then perf is attached.
static int before_program(pid_t pid, void *ctx, struct md_error *err)
{
    struct session *s = ctx;
    if (s->probe.header)
        md_probe_file_arm(&s->probe);
    return md_trace_perf_start(pid, &s->perf, err);
}

static int read_strace(struct session *s, const struct md_run_result *run, struct md_error *err)
{
    if (md_strace_parse_file(&s->log, s->strace_out, err))
        return -1;
    if (s->log.lines == 0 && !run->interrupted_by && !run->timed_out)
        return md_fail(err, "strace recorded nothing: is ptrace permitted here? (see "
                            "/proc/sys/kernel/yama/ptrace_scope and seccomp policies)");
    return 0;
}

// Who recorded the syscalls, and how many records perf lost (then every count is a lower bound).
static void add_syscall_source(cJSON *report, const struct session *s)
{
    cJSON *o = cJSON_AddObjectToObject(report, "syscall_recording");
    cJSON_AddStringToObject(o, "source", s->perf.syscalls ? "perf" : "strace");
    cJSON_AddNumberToObject(o, "lost", (double)s->sys_lost);
    cJSON_AddNumberToObject(o, "probe_own", (double)s->log.probe_own);
    md_json_str(o, "note", s->sys_note[0] ? s->sys_note : NULL);
    if (s->sys_lost) { // a warning, so that doctor calls no such run healthy
        char text[256];
        snprintf(text, sizeof text,
                 "perf could not store up to %" PRIu64 " syscall records (its buffers were "
                 "full, or the record limit was reached): the syscall counts are lower bounds; "
                 "`--syscalls strace` loses none",
                 s->sys_lost);
        md_report_warn(report, text);
    }
    if (s->perf.syscalls && s->perf.result.clock_step_ns) {
        char text[256];
        snprintf(text, sizeof text,
                 "the system clock was stepped by %+.3f ms during the run (settimeofday, an NTP "
                 "client's step): syscalls perf recorded may be tied to the wrong allocator "
                 "calls; `--syscalls strace` reads one clock",
                 (double)s->perf.result.clock_step_ns / 1e6);
        md_report_warn(report, text);
    }
}

// Runs the program once, under strace unless perf records the syscalls; tree_known: taskstats
// told the program's processes (s->tree).
static int run_program(const struct md_trace_options *opt, struct session *s,
                       struct md_run_result *run, bool *tree_known, struct md_error *err)
{
    bool preload = s->target.mode == MODE_PRELOAD;
    bool hooks = s->target.mode == MODE_HOOKS;
    const char *env[] = {s->env_preload, s->env_file,
                         s->probe.share_env[0] ? s->probe.share_env : NULL, NULL};
    const char *env_static[] = {s->env_static_file, s->env_static_exe, s->env_static_hooks, NULL};
    struct md_run_spec spec = {.argv = hooks ? s->hooked_argv : opt->argv,
                               .strace_out = s->perf.syscalls ? NULL : s->strace_out,
                               .cmd_env = preload ? env
                                          : hooks ? env_static
                                                  : NULL,
                               .before_start = before_program,
                               .ctx = s,
                               .timeout_seconds = opt->timeout_seconds,
                               .stop_signals = opt->stop_signals,
                               .closed_std_fds = opt->closed_std_fds};
    struct md_taskstats exits;
    md_taskstats_start(&exits);
    int failed = md_run(&spec, run, err);
    md_taskstats_stop(&exits);
    *tree_known = !failed && md_taskstats_program_tree(&exits, run->pid, &s->tree);
    md_taskstats_free(&exits);
    return failed ? -1 : 0;
}

// By default, perf that refuses the syscall events when they are opened (a seccomp policy, the
// locked-memory limit, too few file descriptors) gives way to strace. The program had not
// started: the events are opened while it waits to exec.
static int run_with_fallback(const struct md_trace_options *opt, struct session *s,
                             struct md_run_result *run, bool *tree_known, struct md_error *err)
{
    if (!run_program(opt, s, run, tree_known, err))
        return 0;
    if (!s->perf.syscalls_refused)
        return -1;
    if (opt->syscalls != MD_SYSCALLS_AUTO) {
        struct md_error why = *err;
        return md_fail(err, "%s (`--syscalls strace` records them with strace instead)", why.msg);
    }
    snprintf(s->sys_note, sizeof s->sys_note,
             "perf refused the syscall events (%s): strace recorded them", err->msg);
    s->perf.syscalls = s->perf.syscalls_refused = false;
    s->probe.slow_threshold_ns = MD_SLOW_CALL_NS; // strace's (md_probe_file_arm applies it)
    return strace_file(s, err) || run_program(opt, s, run, tree_known, err) ? -1 : 0;
}

// The program can truncate or rewrite the probe's file: then its counts are gone, and the report
// says so instead of reading zeros as "no allocator calls, no process probed".
static bool probe_file_lost(const struct session *s, cJSON *report)
{
    if (md_probe_file_intact(&s->probe))
        return false;
    md_report_warn(report,
                   "the probe's file was truncated or rewritten during the run (the program "
                   "can reach it through MD_PROBE_FILE): the allocator operations, sizes, "
                   "leaks and call stacks it held are lost, and the report has none");
    return true;
}

// The uprobes that were to count the calls could not be placed (no root, no writable tracefs):
// nothing counted them, and the report says so where it names the mode, not only under the CPU
// share that failed with them.
static void uprobes_unavailable(struct target *t, const char *why, cJSON *report)
{
    add_mode_note(t, why && *why ? why : "uprobes unavailable: perf could not place them");
    t->mode = MODE_NONE;
    cJSON_ReplaceItemInObjectCaseSensitive(report, "mode", cJSON_CreateString(mode_names[t->mode]));
    cJSON_ReplaceItemInObjectCaseSensitive(report, "mode_note", cJSON_CreateString(t->mode_note));
}

// Processes in another pid namespace whose probe could not translate its ids: strace and perf
// name their threads by the tool's numbers, the probe by theirs, so none of their syscalls can
// be tied to their calls.
static void warn_other_pid_namespace(cJSON *report, const struct md_probe_header *h)
{
    uint32_t n = atomic_load(&h->foreign_pid_processes);
    if (!n)
        return;
    char text[512];
    snprintf(text, sizeof text,
             "%u process%s ran in another pid namespace (unshare -p, bwrap, a container) with "
             "its own /proc, where the probe cannot learn its pid and thread ids as strace and "
             "perf see them: its allocator calls are counted, but no syscall could be tied to "
             "them (in-allocator counts are not given); trace inside the namespace",
             n, n == 1 ? "" : "es");
    md_report_warn(report, text);
}

// What a run left to read, decided once the run has ended.
struct measured {
    bool preload, hooks, probed; // the probe's file can be read (probed: either mode)
    bool lost;                   // the probe ran, but its file was lost during the run
    bool uprobes_counted;        // perf's uprobes gave perf_ops
    double probe_kb;             // the probe file's pages as the run left them, or -1
    uint64_t perf_ops[MD_OP_COUNT];
};

// Runs CMD and reads what recorded it: the probe's file, strace's or perf's syscalls (into s->log,
// the probe's own marker calls left out), perf's counts; adds the target and the run to report.
static int run_and_collect(const struct md_trace_options *opt, struct session *s, cJSON *report,
                           struct md_run_result *run, struct measured *m, struct md_error *err)
{
    *m = (struct measured){.preload = s->target.mode == MODE_PRELOAD,
                           .hooks = s->target.mode == MODE_HOOKS,
                           .probe_kb = -1};
    m->probed = m->preload || m->hooks; // counts, sizes and slow calls in the probe file
    bool tree_known = false;
    s->run_start_ns = md_clock_ns(CLOCK_REALTIME);
    if (run_with_fallback(opt, s, run, &tree_known, err))
        return -1;
    if (m->probed)
        md_probe_file_finish(&s->probe);
    m->lost = m->probed && probe_file_lost(s, report);
    if (m->lost) // nothing of the probe's can be read: as if none had run
        m->preload = m->hooks = m->probed = false;
    uint64_t probe_kb;
    // before the tool reads the tables, which can allocate a page of a hole per run of entries
    if (m->probed && md_probe_file_resident_kb(&s->probe, &probe_kb))
        m->probe_kb = (double)probe_kb;
    // the static probe attaches after it has mapped and hooked the program; before, it can only
    // fail, with its reason on stderr
    if (m->hooks && !run->timed_out && !run->interrupted_by &&
        !atomic_load(&s->probe.header->processes))
        return md_fail(err,
                       "%s: the static probe could not start the program (its message is "
                       "above); `--uprobes` counts without it",
                       s->target.plan.path);
    if (!s->perf.syscalls && read_strace(s, run, err))
        return -1;
    if (m->preload)
        note_run_time_malloc(&s->target, s->probe.header);
    add_target(report, &s->target, opt);
    m->uprobes_counted = md_trace_perf_finish(&s->perf, m->perf_ops, report);
    if (s->target.mode == MODE_UPROBES && !m->uprobes_counted)
        uprobes_unavailable(&s->target, s->perf.error, report);
    if (s->perf.syscalls && !md_trace_perf_take_syscalls(&s->perf, &s->log, &s->sys_lost))
        return md_fail(err, "perf recorded no syscalls: %s",
                       s->perf.error[0] ? s->perf.error : "the events could not be read");
    // the ids of processes in another pid namespace first: drop_own matches threads by id
    long marks = m->preload ? md_probe_file_map_ids(&s->probe, s->log.event, &s->log.count) : 0;
    long own = m->preload && marks >= 0
                   ? md_probe_file_drop_own(&s->probe, s->log.event, &s->log.count)
                   : marks;
    if (own < 0)
        return md_fail(err, "out of memory");
    s->log.probe_own += (size_t)(own + marks);
    add_syscall_source(report, s);
    add_run(report, run, opt->timeout_seconds, tree_known ? &s->tree : NULL, &s->log,
            m->probed ? &s->probe : NULL, m->probe_kb);
    if (m->probed)
        warn_other_pid_namespace(report, s->probe.header);
    return 0;
}

// How far a syscall perf recorded may lie outside a slow call and still be joined with it.
static uint64_t join_slack_perf(const struct session *s)
{
    return s->perf.result.clock_error_ns + MD_PERF_FAST_CLOCK_LAG_NS;
}

// Who counted the calls: the probe, perf's uprobes, or the user's --ops.
static struct md_trace_input trace_input(const struct md_trace_options *opt, struct session *s,
                                         const struct md_run_result *run, const struct measured *m)
{
    struct md_trace_input in = {.log = &s->log,
                                .probe = m->probed ? &s->probe : NULL,
                                .ops_source = m->preload ? "probe"
                                              : m->hooks ? "hooks"
                                                         : NULL,
                                .wall_seconds = run->wall_seconds,
                                .join_slack_ns = s->perf.syscalls ? join_slack_perf(s) : 0};
    if (m->uprobes_counted && !m->probed) {
        memcpy(in.ops, m->perf_ops, sizeof in.ops);
        in.ops_source = "uprobes";
    } else if (!m->probed && opt->ops) {
        in.ops[MD_OP_MALLOC] = opt->ops;
        in.ops_source = "--ops";
    }
    return in;
}

// What the statistics cannot say by themselves: the static probe's limits, and why leaks that
// were asked for are not there.
static void add_coverage_notes(const struct md_trace_options *opt, const struct session *s,
                               const struct measured *m, cJSON *report)
{
    // without malloc_usable_size the static probe cannot tell how big a freed block was
    if (m->hooks && !s->target.hooks.usable_size)
        cJSON_ReplaceItemInObjectCaseSensitive(report, "free_bands", cJSON_CreateNull());
    if (m->hooks) // threads beyond the static probe's table (its counts are a lower bound)
        cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(report, "ops"), "uncounted_calls",
                                atomic_load(&s->probe.header->uncounted_calls));
    if (!m->probed && (opt->probe_flags & MD_PROBE_WANT_LEAKS)) { // asked for, not silently
        cJSON *leaks = cJSON_AddObjectToObject(report, "leaks");
        cJSON_AddFalseToObject(leaks, "tracked");
        cJSON_AddStringToObject(leaks, "reason",
                                m->lost ? "the probe's file was lost during the run"
                                        : "no probe ran in the program (uprobes count calls, "
                                          "they do not follow blocks)");
    }
}

static int measure(const struct md_trace_options *opt, struct session *s, cJSON *report,
                   struct md_run_result *run, struct md_error *err)
{
    struct measured m;
    if (run_and_collect(opt, s, report, run, &m, err))
        return -1;
    struct md_trace_input in = trace_input(opt, s, run, &m);
    int rc = !m.probed || !opt->probe_flags ? md_trace_stats(&in, report, err)
                                            : stats_with_stacks(opt, s, &in, report, err);
    if (rc)
        return rc;
    add_coverage_notes(opt, s, &m, report);
    if (!(opt->probe_flags & MD_PROBE_WANT_STACKS))
        return 0;
    // after the probe's stacks in the folded stream
    char why[256];
    const struct md_perf_result *futex = md_trace_perf_futex(&s->perf, why, sizeof why);
    return md_trace_futex_stacks(futex, why, &s->log, opt->folded, report, err);
}

// Rules see the trace and the program's inspect entry, so inspect-level rules (MD001) can weigh
// the trace's numbers. When another allocator served the run than the file links, the rules judge
// the one that ran.
static void add_findings(const struct md_trace_options *opt, const struct session *s, cJSON *report)
{
    cJSON *findings = cJSON_AddArrayToObject(report, "findings");
    const cJSON *ran = s->target.run_time_active;
    cJSON *file = cJSON_Duplicate(program_inspect(&s->target), 1);
    if (ran && !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(ran, "same_as_file")))
        cJSON_ReplaceItemInObjectCaseSensitive(file, "active", cJSON_Duplicate(ran, 1));
    struct md_rule_input in = {.file = file,
                               .trace = report,
                               .leak_min_bytes = opt->leak_min_bytes,
                               .compared = opt->compared && s->target.mode == MODE_PRELOAD,
                               .compared_with = opt->compared_with};
    md_rules_run(&in, findings);
    if (in.compared && opt->findings_uncompared) {
        in.compared = false;
        *opt->findings_uncompared = cJSON_CreateArray();
        if (*opt->findings_uncompared)
            md_rules_run(&in, *opt->findings_uncompared);
    }
    cJSON_Delete(file);
    if (opt->include_inspect) // doctor's
        md_verdict_add(report);
}

static sig_atomic_t mapping_faults(const struct md_trace_options *opt)
{
    return opt->mapping_faults ? *opt->mapping_faults : 0;
}

int md_trace(const struct md_trace_options *opt, cJSON *report, struct md_run_result *run,
             struct md_error *err)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return md_fail(err, "out of memory");
    sig_atomic_t faults = mapping_faults(opt);
    int rc = prepare(opt, s, err);
    if (!rc && mapping_faults(opt) != faults)
        rc = md_fail(err,
                     "%s: a file read to prepare the run shrank, or could not grow, while it "
                     "was mapped (the program or a library being rewritten, or /dev/shm full); "
                     "trace it again",
                     s->target.plan.path);
    faults = mapping_faults(opt);
    if (!rc)
        rc = measure(opt, s, report, run, err);
    if (!rc && mapping_faults(opt) != faults)
        md_report_warn(report, "a file the tool had mapped shrank, or could not grow, while it was "
                               "read (a program or library rewritten during the run, or /dev/shm "
                               "full): names, stacks and counts read from it may be wrong");
    if (!rc)
        add_findings(opt, s, report);
    cleanup(s);
    free(s);
    return rc;
}
