// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/compare.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/elf_file.h"
#include "lib/metrics.h"
#include "lib/run.h"
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

static cJSON *side_by_side(const cJSON *own, const cJSON *with)
{
    cJSON *metrics = cJSON_CreateArray();
    for (const struct md_metric *m = md_metrics; m->key; m++) {
        double a, b;
        if (!m->side_by_side || !m->get(own, &a) || !m->get(with, &b))
            continue;
        cJSON *row = md_metric_row(m);
        cJSON_AddNumberToObject(row, "own", a);
        cJSON_AddNumberToObject(row, "with", b);
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
    snprintf(why, size,
             "stdin is %s: --compare runs CMD twice, and the second run could not read what the "
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
    cJSON_AddTrueToObject(compare, "possible");
    cJSON_AddStringToObject(compare, "allocator", allocator_name(library, !with));
    cJSON_AddStringToObject(compare, "library", library);
    cJSON_AddItemToObject(compare, "metrics", side_by_side(report, other));
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
