// SPDX-License-Identifier: GPL-3.0-or-later
// malloc-doctor trace: option parsing and rendering; the work is lib/trace.c.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "alloc/probe_shared.h"
#include "lib/trace.h"

enum {
    OPT_JSON = 0x101,
    OPT_OPS,
    OPT_PROPAGATE,
    OPT_PROBE_DIR,
    OPT_PRECISE,
    OPT_SAMPLE_HZ,
    OPT_STACKS,
    OPT_LEAKS,
    OPT_LEAK_MIN,
    OPT_FOLDED,
    OPT_TIMEOUT
};

static const struct md_opt options[] = {
    {"json", OPT_JSON, NULL, "print the report as JSON (schema malloc-doctor/1)"},
    {"output", 'o', "FILE", "write the report to FILE instead of stdout (CMD keeps stdout)"},
    {"ops", OPT_OPS, "N", "the number of allocator operations, when they cannot be counted"},
    {"stacks", OPT_STACKS, NULL, "top call stacks that allocate, and of futex waits inside them"},
    {"folded", OPT_FOLDED, "FILE", "with --stacks: write folded stacks for flame graphs to FILE"},
    {"leaks", OPT_LEAKS, NULL, "blocks never freed at exit, grouped by call stack"},
    {"leak-min", OPT_LEAK_MIN, "BYTES", "with --leaks: list only stacks that leaked this much"},
    {"sample-hz", OPT_SAMPLE_HZ, "N",
     "CPU samples per second for the allocator's CPU share (0: off)"},
    {"precise", OPT_PRECISE, NULL, "time every allocator call (exact windows, more overhead)"},
    {"timeout", OPT_TIMEOUT, "SECONDS",
     "end CMD and all it started after SECONDS (SIGTERM, then SIGKILL); still report"},
    {"propagate-exit", OPT_PROPAGATE, NULL,
     "exit with the program's status (128+N for signal N, 124 when timed out)"},
    {"probe-dir", OPT_PROBE_DIR, "DIR", "where the probe's glibc/ and musl/ builds are"},
    {"help", MD_OPT_HELP, NULL, "show this help"},
    {"version", MD_OPT_VERSION, NULL, "show the version"},
    {0},
};

// Prime, so sampling does not beat in step with periodic work in the program.
#define MD_DEFAULT_SAMPLE_HZ 997
// A year: anything longer is a typo, and the deadline arithmetic stays far from overflow.
#define MD_MAX_TIMEOUT_SECONDS 31536000.0
// --propagate-exit after --timeout ended the run, as timeout(1) does.
#define MD_EXIT_TIMED_OUT 124

struct trace_args {
    struct md_trace_options opt;
    bool json, propagate;
    const char *output;
};

// --- text rendering ------------------------------------------------------------------------

static double num(const cJSON *o, const char *key)
{
    return md_json_get_num(o, key);
}

static const char *str(const cJSON *o, const char *key, const char *fallback)
{
    const char *s = md_json_get_str(o, key);
    return s ? s : fallback;
}

static void print_header(const cJSON *r)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "target");
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(r, "run");
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(t, "active");
    printf("trace: %s (%s, %s; malloc: %s; counted by: %s)\n", str(t, "path", "?"),
           str(t, "kind", "?"), str(t, "libc", "?"), str(active, "name", "unknown"),
           str(r, "mode", "?"));
    const char *sig = md_json_get_str(run, "signal");
    if (sig)
        printf("exit: killed by SIG%s", sig);
    else
        printf("exit: %d", (int)num(run, "exit_code"));
    printf("   wall %.3f s   user %.3f s   sys %.3f s   peak RSS %.1f MB   faults %.0f minor, "
           "%.0f major\n",
           num(run, "wall_seconds"), num(run, "user_seconds"), num(run, "sys_seconds"),
           num(run, "max_rss_kb") / 1024, num(run, "minor_faults"), num(run, "major_faults"));
    if (md_json_get_bool(run, "timed_out"))
        printf("TIMED OUT after %g s: every process of the program was stopped (SIGTERM, then "
               "SIGKILL); the counts cover the run until then\n",
               num(run, "timeout_seconds"));
}

static void print_ops(const cJSON *r)
{
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(r, "ops");
    if (!md_json_get_str(ops, "source")) {
        printf("\nallocator operations: not counted (give --ops N)\n");
        return;
    }
    printf("\nallocator operations: %.0f (malloc %.0f, free %.0f, calloc %.0f, realloc %.0f, "
           "aligned %.0f; from %s)\n",
           num(ops, "total"), num(ops, "malloc"), num(ops, "free"), num(ops, "calloc"),
           num(ops, "realloc"), num(ops, "aligned"), str(ops, "source", "?"));
}

static void print_syscalls(const cJSON *r)
{
    printf("\n%-10s %10s %14s %14s %10s\n", "SYSCALL", "COUNT", "PER 1000 OPS", "IN ALLOCATOR",
           "SECONDS");
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(r, "syscalls"))
    {
        const cJSON *per = cJSON_GetObjectItemCaseSensitive(s, "per_op");
        char per_k[32] = "-";
        if (cJSON_IsNumber(per))
            snprintf(per_k, sizeof per_k, "%.3f", per->valuedouble * 1000);
        char inside[32] = "-";
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(s, "in_allocator")))
            snprintf(inside, sizeof inside, "%.0f", num(s, "in_allocator"));
        printf("%-10s %10.0f %14s %14s %10.4f\n", str(s, "name", "?"), num(s, "count"), per_k,
               inside, num(s, "seconds"));
    }
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(r, "futex");
    printf("\nfutex waits: %.0f, %.4f s blocked (%.1f%% of wall time); %.0f inside allocator calls "
           "(%.4f s)\n",
           num(f, "waits"), num(f, "wait_seconds"), 100 * num(f, "wait_share_of_wall"),
           num(f, "allocator_waits"), num(f, "allocator_wait_seconds"));
}

static void print_bands(const cJSON *r, const char *key, const char *title)
{
    const cJSON *bands = cJSON_GetObjectItemCaseSensitive(r, key), *b;
    if (!cJSON_GetArraySize(bands))
        return;
    printf("\n%s:\n%-22s %18s %22s\n", title, "SIZE BAND", "REQUESTS", "MEMORY SYSCALLS");
    cJSON_ArrayForEach(b, bands)
    {
        char band[48], req[40] = "-", sys[40];
        snprintf(band, sizeof band, "%.0f-%.0f B", num(b, "from"), num(b, "to"));
        if (cJSON_GetObjectItemCaseSensitive(b, "requests"))
            snprintf(req, sizeof req, "%.0f (%.2f%%)", num(b, "requests"),
                     100 * num(b, "request_share"));
        snprintf(sys, sizeof sys, "%.0f (%.1f%%)", num(b, "memory_syscalls"),
                 100 * num(b, "memory_syscall_share"));
        printf("%-22s %18s %22s\n", band, req, sys);
    }
}

static void print_stack_list(const cJSON *list, const char *title, const char *count_key,
                             const char *bytes_key, const char *bytes_label)
{
    const cJSON *st;
    int shown = 0;
    cJSON_ArrayForEach(st, list)
    {
        if (shown++ == 5)
            break;
        if (shown == 1)
            printf("\n%s:\n", title);
        printf("  %.0f %s, %.6g %s\n", num(st, count_key), count_key, num(st, bytes_key),
               bytes_label);
        const cJSON *f;
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(st, "frames"))
            printf("      %s\n", f->valuestring);
    }
}

static void print_stacks(const cJSON *r)
{
    print_stack_list(cJSON_GetObjectItemCaseSensitive(r, "stacks"), "top allocating call stacks",
                     "allocations", "bytes", "bytes");
    print_stack_list(cJSON_GetObjectItemCaseSensitive(r, "futex_stacks"),
                     "call stacks of futex waits inside the allocator", "waits", "wait_seconds",
                     "s blocked");
    const cJSON *leaks = cJSON_GetObjectItemCaseSensitive(r, "leaks");
    if (!leaks)
        return;
    printf("\nleaks: %.0f blocks, %.0f bytes never freed\n", num(leaks, "blocks"),
           num(leaks, "bytes"));
    print_stack_list(cJSON_GetObjectItemCaseSensitive(leaks, "by_stack"), "leaked from", "blocks",
                     "bytes", "bytes");
}

static void print_cpu(const cJSON *r)
{
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(r, "cpu"), *f;
    if (md_json_get_str(cpu, "error"))
        printf("\nCPU share: %s\n", md_json_get_str(cpu, "error"));
    if (!md_json_get_bool(cpu, "sampled"))
        return;
    printf("\nCPU share inside the allocator: %.1f%% of %.0f samples",
           100 * num(cpu, "allocator_share"), num(cpu, "samples"));
    int shown = 0;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(cpu, "top_allocator_functions"))
    {
        if (shown++ == 3)
            break;
        printf("%s %s %.1f%%", shown == 1 ? "; hottest:" : ",", str(f, "name", "?"),
               100 * num(f, "share"));
    }
    putchar('\n');
}

static void render_text(const cJSON *r)
{
    print_header(r);
    print_ops(r);
    print_syscalls(r);
    print_cpu(r);
    print_bands(r, "size_bands", "request sizes whose calls made memory syscalls");
    print_bands(r, "free_bands", "freed block sizes whose free made memory syscalls");
    print_stacks(r);
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(r, "findings"))
        md_cli_print_finding(NULL, x);
}

// --- the command ---------------------------------------------------------------------------

// A decimal number for option; zero is allowed only with allow_zero.
static bool parse_u64(const struct md_command *cmd, const char *option, const char *arg,
                      uint64_t *out, bool allow_zero, int *exit_code)
{
    char *end;
    errno = 0;
    *out = strtoull(arg, &end, 10);
    if (!*arg || *end || *arg == '-' || errno || (*out == 0 && !allow_zero)) {
        *exit_code = md_cli_usage_error(cmd, "%s needs a %s number, not '%s'", option,
                                        allow_zero ? "whole" : "positive", arg);
        return false;
    }
    return true;
}

static bool parse_count(const struct md_command *cmd, const char *option, const char *arg,
                        uint64_t *out, int *exit_code)
{
    return parse_u64(cmd, option, arg, out, false, exit_code);
}

static bool parse_number(const struct md_command *cmd, const char *option, const char *arg,
                         uint64_t *out, int *exit_code)
{
    return parse_u64(cmd, option, arg, out, true, exit_code) &&
           (*out <= 100000 ||
            (*exit_code = md_cli_usage_error(cmd, "%s: at most 100000", option), false));
}

// Seconds as a decimal number greater than zero ("2", "0.5").
static bool parse_seconds(const struct md_command *cmd, const char *option, const char *arg,
                          double *out, int *exit_code)
{
    char *end;
    errno = 0;
    *out = strtod(arg, &end);
    bool decimal = *arg && strspn(arg, "0123456789.") == strlen(arg);
    if (!decimal || *end || errno || !isfinite(*out) || *out <= 0) {
        *exit_code = md_cli_usage_error(
            cmd, "%s needs a number of seconds greater than 0 (e.g. 2 or 0.5), not '%s'", option,
            arg);
        return false;
    }
    if (*out > MD_MAX_TIMEOUT_SECONDS) {
        *exit_code =
            md_cli_usage_error(cmd, "%s: at most %.0f seconds", option, MD_MAX_TIMEOUT_SECONDS);
        return false;
    }
    return true;
}

static bool parse(const struct md_command *cmd, int argc, char **argv, struct trace_args *a,
                  int *exit_code)
{
    const char *arg;
    int key;
    uint64_t hz;
    *exit_code = MD_EXIT_OK;
    a->opt.sample_hz = MD_DEFAULT_SAMPLE_HZ;
    while ((key = md_cli_next(cmd, argc, argv, &arg)) != -1) {
        switch (key) {
        case OPT_JSON:
            a->json = true;
            break;
        case OPT_PROPAGATE:
            a->propagate = true;
            break;
        case OPT_PROBE_DIR:
            a->opt.probe_dir = arg;
            break;
        case 'o':
            a->output = arg;
            break;
        case OPT_SAMPLE_HZ:
            if (!parse_number(cmd, "--sample-hz", arg, &hz, exit_code))
                return false;
            a->opt.sample_hz = (unsigned)hz;
            break;
        case OPT_PRECISE:
            a->opt.probe_flags |= MD_PROBE_PRECISE;
            break;
        case OPT_STACKS:
            a->opt.probe_flags |= MD_PROBE_WANT_STACKS;
            break;
        case OPT_LEAKS:
            a->opt.probe_flags |= MD_PROBE_WANT_LEAKS;
            break;
        case OPT_FOLDED:
            a->opt.folded = arg;
            break;
        case OPT_LEAK_MIN:
            if (!parse_count(cmd, "--leak-min", arg, &a->opt.leak_min_bytes, exit_code))
                return false;
            break;
        case OPT_OPS:
            if (!parse_count(cmd, "--ops", arg, &a->opt.ops, exit_code))
                return false;
            break;
        case OPT_TIMEOUT:
            if (!parse_seconds(cmd, "--timeout", arg, &a->opt.timeout_seconds, exit_code))
                return false;
            break;
        default:
            return md_cli_stop(cmd, key, exit_code);
        }
    }
    if (optind >= argc) {
        *exit_code = md_cli_usage_error(cmd, "no command given (malloc-doctor trace -- CMD ARGS)");
        return false;
    }
    if (a->opt.folded && !(a->opt.probe_flags & MD_PROBE_WANT_STACKS)) {
        *exit_code = md_cli_usage_error(cmd, "--folded needs --stacks");
        return false;
    }
    a->opt.argv = argv + optind;
    return true;
}

static int program_status(const struct md_run_result *run)
{
    if (run->timed_out)
        return MD_EXIT_TIMED_OUT;
    return run->exited ? run->exit_code : 128 + run->signal;
}

static int run(const struct md_command *cmd, int argc, char **argv)
{
    struct trace_args a = {0};
    int rc;
    if (!parse(cmd, argc, argv, &a, &rc))
        return rc;
    cJSON *report = md_report_new("trace", MD_VERSION);
    struct md_run_result result;
    struct md_error err;
    fflush(NULL); // the program writes to the same stdout
    if (md_trace(&a.opt, report, &result, &err)) {
        md_cli_error(cmd, "%s", err.msg);
        cJSON_Delete(report);
        return MD_EXIT_USAGE;
    }
    rc = a.propagate ? program_status(&result) : MD_EXIT_OK;
    if (a.output && !freopen(a.output, "w", stdout)) {
        md_cli_error(cmd, "%s: %s", a.output, strerror(errno));
        rc = MD_EXIT_USAGE;
    } else if (a.json) {
        md_cli_print_json(report);
    } else {
        render_text(report);
    }
    cJSON_Delete(report);
    return rc;
}

const struct md_command md_cmd_trace = {
    .name = "trace",
    .summary = "run a program and measure what its allocator costs (syscalls per operation)",
    .synopsis = "[--json] [-o FILE] [--stacks [--folded FILE]] [--leaks [--leak-min BYTES]]\n"
                "       [--ops N] [--timeout SECONDS] [--propagate-exit] [--] CMD [ARGS...]",
    .description =
        "Runs CMD under strace (memory and futex syscalls only) with a preloaded probe that\n"
        "counts every malloc, free, calloc, realloc and aligned allocation, and reports the\n"
        "syscalls per allocator operation, futex blocking, mmap lengths, the request-size\n"
        "histogram and which request sizes made the syscalls. CMD's stdin, stdout and stderr\n"
        "are untouched; the report follows on stdout after CMD and every process it started\n"
        "(daemons included) have ended, or after --timeout stopped them all.",
    .options = options,
    .options_end_at_operand = true,
    .run = run,
};
