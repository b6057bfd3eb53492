// SPDX-License-Identifier: GPL-3.0-or-later
// malloc-doctor doctor: inspect + trace + rules in one run; the report a user reads first.
// The work is lib/trace.c (and lib/compare.c); this file parses options and renders.
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cli.h"
#include "cmd/trace_cli.h"
#include "alloc/probe_shared.h"
#include "lib/metrics.h"
#include "lib/trace.h"
#include "rules/rules.h"

enum { OPT_NO_LEAKS = MD_TOPT_OWN };

static const struct md_opt options[] = {
    {"leak-min", MD_TOPT_LEAK_MIN, "BYTES", "report leaks from this many bytes on (the leak rule)"},
    {"no-leaks", OPT_NO_LEAKS, NULL, "do not track live blocks (less overhead, no leak rule)"},
    MD_TRACE_CLI_OPTIONS,
    {0},
};

// --- text rendering ------------------------------------------------------------------------

static const char *str(const cJSON *o, const char *key, const char *fallback)
{
    const char *s = md_json_get_str(o, key);
    return s ? s : fallback;
}

static void print_allocators(const cJSON *r)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(r, "inspect");
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(in, "active"), *a;
    printf("threads: %s; malloc served by: %s (%s confidence)", str(in, "threads", "?"),
           md_cli_active_name(active), str(active, "confidence", "?"));
    const char *active_id = md_json_get_str(active, "id");
    int others = 0;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(in, "allocators"))
    {
        const char *id = md_json_get_str(a, "id");
        if (id && active_id && !strcmp(id, active_id))
            continue;
        printf("%s%s", others++ ? ", " : "; also present: ", str(a, "name", "?"));
    }
    putchar('\n');
}

// No rule fired: healthy (in the processes the probe followed, when some ran without it), or
// not judged and why.
static void print_no_finding(const cJSON *r, const cJSON *verdict)
{
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(r, "run");
    bool counted = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(run, "probed_processes"));
    double unprobed = md_json_get_num(run, "processes") - md_json_get_num(run, "probed_processes");
    if (strcmp(str(verdict, "status", ""), "healthy"))
        printf("\nverdict: not judged: %s\n", str(verdict, "reason", "?"));
    else if (counted && unprobed > 0)
        printf("\nverdict: healthy, no rule fired, in the processes the probe followed (not in "
               "the %.0f of the note above)\n",
               unprobed);
    else
        printf("\nverdict: healthy, no rule fired\n");
}

static void print_verdict(const cJSON *r)
{
    const cJSON *verdict = cJSON_GetObjectItemCaseSensitive(r, "verdict");
    if (strcmp(str(verdict, "status", ""), "findings")) {
        print_no_finding(r, verdict);
        return;
    }
    int count[MD_SEV_ERROR + 1] = {0};
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(r, "findings"))
    {
        int severity = md_severity_parse(str(f, "severity", ""));
        if (severity >= 0)
            count[severity]++;
    }
    printf("\nverdict: %d error%s, %d warning%s, %d note%s\n", count[MD_SEV_ERROR],
           md_plural_s(count[MD_SEV_ERROR]), count[MD_SEV_WARNING],
           md_plural_s(count[MD_SEV_WARNING]), count[MD_SEV_INFO], md_plural_s(count[MD_SEV_INFO]));
    for (int severity = MD_SEV_ERROR; severity >= MD_SEV_INFO; severity--)
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(r, "findings"))
        {
            if (md_severity_parse(str(f, "severity", "")) == severity)
                md_cli_print_finding(NULL, f);
        }
}

static void print_numbers(const cJSON *r)
{
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(r, "ops");
    printf("\nkey numbers:\n  %-34s ", "allocator operations");
    if (md_json_get_str(ops, "source"))
        printf("%.0f (counted by %s)\n", md_json_get_num(ops, "total"), str(ops, "source", "?"));
    else
        printf("not counted (give --ops N)\n");
    for (const struct md_metric *m = md_metrics; m->key; m++) {
        double value;
        char text[48];
        if (!m->get(r, &value))
            continue;
        md_format_metric(m->key, value, text, sizeof text);
        printf("  %-34s %s\n", m->label, text);
    }
    const cJSON *leaks = cJSON_GetObjectItemCaseSensitive(r, "leaks");
    if (leaks && !md_json_get_bool(leaks, "tracked"))
        printf("  %-34s not tracked: %s\n", "never freed at exit",
               md_json_get_str(leaks, "reason"));
    else if (leaks) {
        double blocks = md_json_get_num(leaks, "blocks"), bytes = md_json_get_num(leaks, "bytes");
        printf("  %-34s %.0f block%s, %.0f byte%s\n", "never freed at exit", blocks,
               md_plural_s(blocks), bytes, md_plural_s(bytes));
    }
}

static void render_text(const cJSON *r)
{
    md_render_trace_header(r);
    print_allocators(r);
    md_render_unprobed_note(r);
    print_verdict(r);
    print_numbers(r);
    md_render_compare(r);
    md_render_gate(r);
    // named as the findings' commands name it: a path when PATH would find another tool
    const char *saved = md_json_get_str(cJSON_GetObjectItemCaseSensitive(r, "tool"), "command");
    char tool[PATH_MAX + 64];
    md_cli_printable(saved ? saved : "malloc-doctor", tool, sizeof tool);
    printf("\nmore: `%s trace --stacks --leaks -- CMD` has every number and the call stacks", tool);
    if (!cJSON_GetObjectItemCaseSensitive(r, "compare"))
        printf("; `%s doctor --compare -- CMD` measures mdalloc on it", tool);
    printf("\n");
}

// --- the command ---------------------------------------------------------------------------

static bool parse(const struct md_command *cmd, int argc, char **argv, struct md_trace_cli *a,
                  int *exit_code)
{
    const char *arg;
    int key, shared;
    *exit_code = MD_EXIT_OK;
    md_trace_cli_init(a);
    a->opt.probe_flags = MD_PROBE_WANT_LEAKS;
    a->opt.include_inspect = true;
    while ((key = md_cli_next(cmd, argc, argv, &arg)) != -1) {
        shared = md_trace_cli_option(cmd, key, arg, a, exit_code);
        if (shared < 0)
            return false;
        if (shared)
            continue;
        if (key != OPT_NO_LEAKS)
            return md_cli_stop(cmd, key, exit_code);
        a->opt.probe_flags &= ~(uint32_t)MD_PROBE_WANT_LEAKS;
    }
    if (a->opt.leak_min_bytes && !(a->opt.probe_flags & MD_PROBE_WANT_LEAKS)) {
        *exit_code = md_cli_usage_error(cmd, "--leak-min needs leak tracking (not --no-leaks)");
        return false;
    }
    return md_trace_cli_operands(cmd, argc, argv, a, exit_code);
}

static int run(const struct md_command *cmd, int argc, char **argv)
{
    struct md_trace_cli a;
    int rc;
    if (!parse(cmd, argc, argv, &a, &rc))
        return rc;
    return md_trace_cli_run(cmd, &a, render_text);
}

const struct md_command md_cmd_doctor = {
    .name = "doctor",
    .summary = "inspect, trace and diagnose a program in one run: the report to read first",
    .synopsis =
        "[--json] [-o FILE] [--compare | --compare-with LIB] [--leak-min BYTES | --no-leaks]\n"
        "       [--fail-on LEVEL] [--baseline FILE [--max-regression PCT]] [--timeout SECONDS]\n"
        "       [--ops N] [--syscalls auto|strace|perf] [--propagate-exit] [--probe-dir DIR]\n"
        "       [--] CMD [ARGS...]",
    .description =
        "Inspects CMD's binary (which allocator serves malloc, threads), runs it once under\n"
        "trace with leak tracking, and applies every diagnosis rule to both: a verdict, each\n"
        "finding with its evidence and the exact command that fixes it, and the key numbers.\n"
        "--compare adds a second run with mdalloc preloaded (and one of each without the probe,\n"
        "for time and memory). Exit status 1 when --fail-on or\n"
        "--baseline fails; with --propagate-exit, CMD's status wins when it is not 0.",
    .options = options,
    .options_end_at_operand = true,
    .exits = MD_EXITS_WITH_CHECKS,
    .run = run,
};
