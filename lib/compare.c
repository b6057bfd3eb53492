// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/compare.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/elf_file.h"
#include "lib/metrics.h"
#include "lib/report.h"
#include "lib/run.h"
#include "lib/taskstats.h"
#include "lib/path.h"
#include "rules/rules.h"

static const char *str(const cJSON *o, const char *key)
{
    const char *s = md_json_get_str(o, key);
    return s ? s : "";
}

static const cJSON *target_of(const cJSON *report)
{
    return cJSON_GetObjectItemCaseSensitive(report, "target");
}

// Why LD_PRELOAD cannot replace the allocator of this program, and what does instead.
static void not_possible(cJSON *compare, const cJSON *report)
{
    const char *kind = str(target_of(report), "kind");
    char fix[1024];
    if (!strncmp(kind, "static", 6)) {
        cJSON_AddStringToObject(compare, "reason",
                                "the program is linked statically: LD_PRELOAD cannot replace "
                                "the malloc linked into it");
        struct md_rule_input in = {.trace = report};
        md_rule_trace_replace_allocator(&in, fix, sizeof fix); // the rules' prescription
    } else {
        cJSON_AddStringToObject(compare, "reason",
                                "the program defines malloc itself, so a preloaded allocator "
                                "is never called");
        char link[PATH_MAX + 96];
        md_rule_mdalloc_link(str(cJSON_GetObjectItemCaseSensitive(report, "tool"), "alloc_dir"),
                             link, sizeof link);
        snprintf(fix, sizeof fix,
                 "build the program without its own allocator (or with mdalloc's archive in its "
                 "place: %s), then trace it again",
                 link);
    }
    cJSON_AddStringToObject(compare, "fix", fix);
}

// library: the build for the program's libc (reported, and checked against the run-time malloc);
// preload: what LD_PRELOAD names, which where the build has both is one path for either libc's
// processes (alloc/alloc.mk).
static int default_library(const cJSON *report, char *library, char *preload, size_t size,
                           struct md_error *err)
{
    char dir[PATH_MAX];
    md_tool_dir(dir, sizeof dir - 8);
    const char *libc = md_report_program_str(report, "libc"); // `env PROG`: PROG's
    snprintf(library, size, "%s/alloc/%s/libmdalloc.so", dir,
             libc && !strcmp(libc, "musl") ? "musl" : "glibc");
    if (access(library, R_OK))
        return md_fail(err, "%s: mdalloc is missing (run `make` first, or give --compare-with LIB)",
                       library);
    snprintf(preload, size, "%s", library);
    strcat(dir, "/alloc");
    md_either_libc_path(dir, "libmdalloc.so", preload, size);
    return 0;
}

// A metric of both runs: from the untraced runs where they give it (time, memory), else from
// the traced ones (what is counted per operation). *untraced says which.
static bool metric_pair(const struct md_metric *m, const cJSON *const runs[4], double *a, double *b,
                        bool *untraced)
{
    *untraced = m->get(runs[2], a) && m->get(runs[3], b);
    return *untraced || (m->get(runs[0], a) && m->get(runs[1], b));
}

// runs: the traced reports of both runs, then the untraced runs' (untraced_run).
static cJSON *side_by_side(const cJSON *const runs[4])
{
    cJSON *metrics = cJSON_CreateArray();
    for (const struct md_metric *m = md_metrics; m->key; m++) {
        double a, b;
        bool untraced;
        if (!m->side_by_side || !metric_pair(m, runs, &a, &b, &untraced))
            continue;
        cJSON *row = md_metric_row(m);
        cJSON_AddNumberToObject(row, "own", a);
        cJSON_AddNumberToObject(row, "with", b);
        cJSON_AddStringToObject(row, "from", untraced ? "untraced" : "traced");
        // with / own: below 1 the preloaded allocator does better (every metric: lower is better)
        if (a > 0)
            cJSON_AddNumberToObject(row, "ratio", b / a);
        else
            cJSON_AddNullToObject(row, "ratio");
        cJSON_AddItemToArray(metrics, row);
    }
    return metrics;
}

static const char *allocator_name(const char *library, bool is_default)
{
    if (is_default)
        return "mdalloc";
    return md_path_base_name(library);
}

// --compare-with LIB must be a shared library: checked before the first run, not after it.
static int check_library(const char *with, struct md_error *err)
{
    struct md_elf e;
    bool is_archive;
    if (md_elf_open(&e, with, &is_archive, err))
        return -1;
    // a PIE executable is ET_DYN too, but the loader refuses to preload it
    const char *interp = NULL;
    struct md_dynamic dyn = {0};
    bool shared = !is_archive && !md_elf_interpreter(&e, &interp, err) &&
                  !md_elf_dynamic(&e, &dyn, err) &&
                  md_elf_kind_of(&e, interp != NULL, &dyn) == MD_KIND_SHARED;
    md_elf_close(&e);
    if (!shared)
        return md_fail(err, "%s: not a shared library (LD_PRELOAD needs a .so)", with);
    return 0;
}

// CMD runs twice, and the runs are comparable only when both read the same input. A file on stdin
// (or a block device) is rewound before the second run to where the first one started: *start, or
// -1 when there is nothing to rewind. A pipe or a socket cannot be read twice, and a second run
// that finds it empty does other work (reads nothing, allocates nothing): *why then says so, for
// md_trace to refuse the first run when a second one would follow it. A terminal is the user
// typing to each run; /dev/null and other devices that can seek give every run the same bytes;
// a closed stdin is closed for both.
static int stdin_start(off_t *start, char *why, size_t size, struct md_error *err)
{
    *start = -1;
    why[0] = 0;
    struct stat st;
    if (fstat(STDIN_FILENO, &st))
        return 0;
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)) {
        *start = lseek(STDIN_FILENO, 0, SEEK_CUR);
        if (*start < 0)
            return md_fail_errno(err, errno, "stdin: cannot find its offset to rewind it");
        return 0;
    }
    if (isatty(STDIN_FILENO) || lseek(STDIN_FILENO, 0, SEEK_CUR) >= 0)
        return 0;
    snprintf(
        why, size,
        "stdin is %s: --compare runs CMD more than once, and a later run could not read what the "
        "first one read; redirect stdin from a file (< FILE), or from /dev/null when CMD "
        "does not read it",
        S_ISFIFO(st.st_mode)   ? "a pipe"
        : S_ISSOCK(st.st_mode) ? "a socket"
                               : "a device that cannot be rewound");
    return 0;
}

// An allocator does not change how often a program allocates: runs of one command measured
// identical counts with and without mdalloc (80003 and 80003, 81862 and 81862 in python3). Counts
// more than this factor apart come from different work (other input, a file the first run
// changed, a loop bounded by time), whose times and rates are no measure of the allocator, or
// from calls the probe does not see (C++'s new and delete were such calls before the probe
// counted them: jemalloc and mimalloc serve them without malloc).
#define MD_COMPARE_OPS_FACTOR 2.0
// Below this many operations in the busier run both are libc's start-up and little else: the
// rates per operation mean little, and a few calls more are no different work.
#define MD_COMPARE_MIN_OPS 100.0

// Whether both runs counted their allocator operations and the counts are too far apart; *a and
// *b get them.
static bool different_work(const cJSON *own, const cJSON *other, double *a, double *b)
{
    const cJSON *ops_a = cJSON_GetObjectItemCaseSensitive(own, "ops");
    const cJSON *ops_b = cJSON_GetObjectItemCaseSensitive(other, "ops");
    if (!md_json_get_str(ops_a, "source") || !md_json_get_str(ops_b, "source"))
        return false;
    *a = md_json_get_num(ops_a, "total");
    *b = md_json_get_num(ops_b, "total");
    double low = *a < *b ? *a : *b, high = *a < *b ? *b : *a;
    return high >= MD_COMPARE_MIN_OPS && high > MD_COMPARE_OPS_FACTOR * low;
}

// "exit 127" or "SIGSEGV"
static void describe_end(char *out, size_t size, double code, const char *sig)
{
    if (sig)
        snprintf(out, size, "SIG%s", sig);
    else
        snprintf(out, size, "exit %.0f", code);
}

// Why the second run cannot be compared with the first, or NULL: it ended differently (the
// library did not load, or broke the program), or malloc did not come from the library.
static const char *not_comparable(const cJSON *own, const cJSON *other, const char *library,
                                  char *why, size_t size)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(own, "run");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(other, "run");
    bool cut_a = md_json_get_bool(a, "timed_out"), cut_b = md_json_get_bool(b, "timed_out");
    if (cut_a || cut_b) { // the wall time is the timeout's; the work done in it is not the same
        char who[PATH_MAX + 32];
        if (cut_a && cut_b)
            snprintf(who, sizeof who, "both runs were");
        else if (cut_a)
            snprintf(who, sizeof who, "the first run was");
        else
            snprintf(who, sizeof who, "the run with %s was", library);
        snprintf(why, size,
                 "%s stopped by --timeout: a run cut short did not do the whole work, so the two "
                 "runs' numbers are not compared",
                 who);
        return why;
    }
    double code_a = md_json_get_num(a, "exit_code"), code_b = md_json_get_num(b, "exit_code");
    const char *sig_a = md_json_get_str(a, "signal"), *sig_b = md_json_get_str(b, "signal");
    if (code_a != code_b || (sig_a == NULL) != (sig_b == NULL) || (sig_a && strcmp(sig_a, sig_b))) {
        char end_a[32], end_b[32];
        describe_end(end_a, sizeof end_a, code_a, sig_a);
        describe_end(end_b, sizeof end_b, code_b, sig_b);
        // self-contained: JSON has no "above"; the second run's report is compare.report
        snprintf(why, size,
                 "the run with %s ended differently (%s, the first run: %s): the two runs did "
                 "not do the same work, so their numbers are not compared",
                 library, end_b, end_a);
        return why;
    }
    const cJSON *ran = cJSON_GetObjectItemCaseSensitive(target_of(other), "malloc_at_run_time");
    const char *provider = md_json_get_str(ran, "provider");
    if (!md_same_file(provider, library)) {
        snprintf(why, size,
                 "%s did not serve malloc in the run with it (malloc came from %s): it defines "
                 "no malloc, or the dynamic linker did not load it",
                 library, provider ? provider : "an unknown file");
        return why;
    }
    double ops_a, ops_b;
    if (different_work(own, other, &ops_a, &ops_b)) {
        snprintf(why, size,
                 "the run with %s made %.0f allocator operations, the first run %.0f: an "
                 "allocator does not change how often a program allocates, so the two runs did "
                 "not do the same work (other input, or files or time that changed between "
                 "them; or the library served calls through entry points of its own, which the "
                 "probe does not count), and their numbers are not compared",
                 library, ops_b, ops_a);
        return why;
    }
    return NULL;
}

// One more run of CMD, without strace and the probe (preload: the allocator alone, else nothing
// preloaded), for its time and memory as the program has them: the traced runs' are the probe's
// too, and its cost per call depends on the allocator it forwards to (glibc's block sizes are
// read from its chunk headers; any other's are asked with a call), which turned a 1.6x faster
// mdalloc into 1.3x slower. Its output goes to /dev/null: the user saw it twice already. *out:
// {"run": {wall_seconds, user_seconds, sys_seconds, max_rss_kb, max_rss_source, minor_faults,
// exit_code, signal}}, which the metrics read as they read a report's "run".
static int untraced_run(const struct md_trace_options *opt, const char *preload, off_t stdin_at,
                        cJSON **out, struct md_run_result *run, struct md_error *err)
{
    char env_preload[MD_PRELOAD_ENV_MAX];
    const char *env[] = {env_preload, NULL};
    if (preload && md_preload_env(env_preload, sizeof env_preload, &preload, 1, err))
        return -1;
    if (stdin_at >= 0 && lseek(STDIN_FILENO, stdin_at, SEEK_SET) < 0)
        return md_fail_errno(err, errno, "stdin: cannot rewind it for an untraced run");
    struct md_run_spec spec = {.argv = opt->argv,
                               .cmd_env = preload ? env : NULL,
                               .timeout_seconds = opt->timeout_seconds,
                               .stop_signals = opt->stop_signals,
                               .closed_std_fds = opt->closed_std_fds,
                               .discard_output = true};
    struct md_taskstats exits;
    struct md_tree_usage tree = {0};
    md_taskstats_start(&exits);
    int failed = md_run(&spec, run, err);
    md_taskstats_stop(&exits);
    bool known = !failed && md_taskstats_program_tree(&exits, run->pid, &tree);
    md_taskstats_free(&exits);
    free(tree.members);
    if (failed)
        return -1;
    cJSON *o = cJSON_AddObjectToObject(*out = cJSON_CreateObject(), "run");
    cJSON_AddNumberToObject(o, "wall_seconds", run->wall_seconds);
    cJSON_AddNumberToObject(o, "user_seconds", md_timeval_seconds(run->usage.ru_utime));
    cJSON_AddNumberToObject(o, "sys_seconds", md_timeval_seconds(run->usage.ru_stime));
    cJSON_AddNumberToObject(o, "max_rss_kb",
                            known ? (double)tree.peak_rss_kb : (double)run->usage.ru_maxrss);
    cJSON_AddStringToObject(o, "max_rss_source", known ? "taskstats" : "wait4");
    cJSON_AddNumberToObject(o, "minor_faults", (double)run->usage.ru_minflt);
    md_json_num_or_null(o, "exit_code", run->exited, run->exit_code);
    md_json_str(o, "signal", run->signal ? sigabbrev_np(run->signal) : NULL);
    return 0;
}

// Both untraced runs into runs[2] and runs[3] (owned by the caller), or why there are none.
static int untraced_pair(const struct md_trace_options *opt, const char *preload, off_t stdin_at,
                         cJSON *runs[4], struct md_run_result *run, char *why, size_t size,
                         struct md_error *err)
{
    struct md_run_result plain;
    for (int i = 0; i < 2; i++) {
        if (untraced_run(opt, i ? preload : NULL, stdin_at, &runs[2 + i], &plain, err))
            return -1;
        if (plain.interrupted_by) { // as for a traced run: nothing half-done is compared
            run->interrupted_by = plain.interrupted_by;
            snprintf(why, size, "an untraced run was interrupted");
            return 0;
        }
        if (plain.timed_out) {
            snprintf(why, size, "--timeout stopped an untraced run");
            return 0;
        }
    }
    return 0;
}

// The second run of md_trace_compare, after the first filled report.
static int compare_again(const struct md_trace_options *opt, const char *with, off_t stdin_at,
                         cJSON *report, struct md_run_result *run, struct md_error *err)
{
    cJSON *compare = cJSON_AddObjectToObject(report, "compare");
    if (run->interrupted_by) { // the user asked to stop: no second run
        cJSON_AddFalseToObject(compare, "possible");
        cJSON_AddStringToObject(compare, "reason", "the first run was interrupted");
        return 0;
    }
    if (strcmp(str(report, "mode"), "preload")) {
        cJSON_AddFalseToObject(compare, "possible");
        not_possible(compare, report);
        return 0;
    }
    char library[PATH_MAX + 48], preload[PATH_MAX + 48];
    if (with) {
        snprintf(library, sizeof library, "%s", with);
        snprintf(preload, sizeof preload, "%s", with);
    } else if (default_library(report, library, preload, sizeof library, err)) {
        return -1;
    }
    struct md_trace_options again = *opt;
    again.preload_allocator = preload;
    again.folded = NULL; // the first run wrote it
    cJSON *other =
        md_report_new("trace", str(cJSON_GetObjectItemCaseSensitive(report, "tool"), "version"));
    struct md_run_result other_run;
    if (stdin_at >= 0 && lseek(STDIN_FILENO, stdin_at, SEEK_SET) < 0) { // the same input again
        cJSON_Delete(other);
        return md_fail_errno(err, errno, "stdin: cannot rewind it for the second run");
    }
    if (md_trace(&again, other, &other_run, err)) {
        run->interrupted_by = other_run.interrupted_by;
        cJSON_Delete(other);
        return -1;
    }
    // what made the second run less trustworthy is shown where the reader looks: at the top
    const cJSON *warning;
    cJSON_ArrayForEach(warning, cJSON_GetObjectItemCaseSensitive(other, "warnings"))
    {
        char text[1024];
        snprintf(text, sizeof text, "the run with %s: %s", library, cJSON_GetStringValue(warning));
        md_report_warn(report, text);
    }
    if (other_run.interrupted_by) { // half a run compared with a whole one would mislead
        run->interrupted_by = other_run.interrupted_by;
        cJSON_AddFalseToObject(compare, "possible");
        cJSON_AddStringToObject(compare, "reason", "the second run was interrupted");
        cJSON_Delete(other);
        return 0;
    }
    char why[PATH_MAX * 2 + 200];
    if (not_comparable(report, other, library, why, sizeof why)) {
        cJSON_AddFalseToObject(compare, "possible");
        cJSON_AddStringToObject(compare, "reason", why);
        cJSON_AddItemToObject(compare, "report", other); // what the second run did
        return 0;
    }
    cJSON *runs[4] = {report, other, NULL, NULL};
    why[0] = 0;
    if (untraced_pair(opt, preload, stdin_at, runs, run, why, sizeof why, err)) {
        cJSON_Delete(runs[2]), cJSON_Delete(runs[3]), cJSON_Delete(other);
        return -1;
    }
    if (why[0]) {
        cJSON_AddFalseToObject(compare, "possible");
        cJSON_AddStringToObject(compare, "reason", why);
        cJSON_AddItemToObject(compare, "report", other);
        cJSON_Delete(runs[2]), cJSON_Delete(runs[3]);
        return 0;
    }
    cJSON_AddTrueToObject(compare, "possible");
    cJSON_AddStringToObject(compare, "allocator", allocator_name(library, !with));
    cJSON_AddStringToObject(compare, "library", library);
    cJSON_AddItemToObject(compare, "metrics", side_by_side((const cJSON *const *)runs));
    cJSON *untraced = cJSON_AddObjectToObject(compare, "untraced");
    cJSON_AddItemToObject(untraced, "own", cJSON_DetachItemFromObject(runs[2], "run"));
    cJSON_AddItemToObject(untraced, "with", cJSON_DetachItemFromObject(runs[3], "run"));
    cJSON_Delete(runs[2]), cJSON_Delete(runs[3]);
    cJSON_AddItemToObject(compare, "report", other);
    return 0;
}

int md_trace_compare(const struct md_trace_options *opt, const char *with, cJSON *report,
                     struct md_run_result *run, struct md_error *err)
{
    off_t stdin_at;
    char input_why[256];
    if ((with && check_library(with, err)) ||
        stdin_start(&stdin_at, input_why, sizeof input_why, err))
        return -1;
    struct md_trace_options first = *opt;
    first.input_not_repeatable = input_why[0] ? input_why : NULL;
    cJSON *uncompared = NULL;
    first.compared = true;
    first.compared_with = with;
    first.findings_uncompared = &uncompared;
    int rc = md_trace(&first, report, run, err)
                 ? -1
                 : compare_again(opt, with, stdin_at, report, run, err);
    // a fix that points at "this report's comparison" must have one to point at
    if (uncompared && !rc &&
        !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(report, "compare"), "possible"))) {
        cJSON_ReplaceItemInObjectCaseSensitive(report, "findings", uncompared);
        uncompared = NULL;
    }
    cJSON_Delete(uncompared);
    return rc;
}
