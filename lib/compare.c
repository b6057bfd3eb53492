// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/compare.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
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
        snprintf(fix, sizeof fix,
                 "build the program without its own allocator (or with mdalloc's archive in its "
                 "place: `-Wl,--whole-archive %s/glibc/libmdalloc.a -Wl,--no-whole-archive`), "
                 "then trace it again",
                 str(cJSON_GetObjectItemCaseSensitive(report, "tool"), "alloc_dir"));
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
    GElf_Ehdr eh;
    bool shared = !is_archive && gelf_getehdr(e.elf, &eh) && eh.e_type == ET_DYN;
    md_elf_close(&e);
    if (!shared)
        return md_fail(err, "%s: not a shared library (LD_PRELOAD needs a .so)", with);
    return 0;
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
    return NULL;
}

int md_trace_compare(const struct md_trace_options *opt, const char *with, cJSON *report,
                     struct md_run_result *run, struct md_error *err)
{
    if (with && check_library(with, err))
        return -1;
    struct md_trace_options first = *opt;
    first.compared = true;
    if (md_trace(&first, report, run, err))
        return -1;
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
