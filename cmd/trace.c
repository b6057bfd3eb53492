// SPDX-License-Identifier: GPL-3.0-or-later
// malloc-doctor trace: option parsing and rendering; the work is lib/trace.c.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "cmd/trace_cli.h"
#include "alloc/probe_shared.h"
#include "lib/trace.h"

enum {
    OPT_PRECISE = MD_TOPT_OWN,
    OPT_SAMPLE_HZ,
    OPT_STACKS,
    OPT_LEAKS,
    OPT_FOLDED,
    OPT_UPROBES,
    OPT_NO_TAIL_CALLS,
};

static const struct md_opt options[] = {
    {"stacks", OPT_STACKS, NULL,
     "top call stacks that allocate, and of every futex wait (any code, static programs too)"},
    {"folded", OPT_FOLDED, "FILE", "with --stacks: write folded stacks for flame graphs to FILE"},
    {"leaks", OPT_LEAKS, NULL, "blocks never freed at exit, grouped by call stack"},
    {"leak-min", MD_TOPT_LEAK_MIN, "BYTES", "with --leaks: list only stacks that leaked this much"},
    {"sample-hz", OPT_SAMPLE_HZ, "N",
     "CPU samples per second for the allocator's CPU share (0: off)"},
    {"precise", OPT_PRECISE, NULL,
     "time every allocator call with ticks (exact windows, no tail mode; more overhead)"},
    {"no-tail-calls", OPT_NO_TAIL_CALLS, NULL,
     "regain control after every call (no tail mode): every syscall made inside one is tied"},
    {"uprobes", OPT_UPROBES, NULL,
     "static programs: count calls with uprobes instead of the static probe's hooks"},
    MD_TRACE_CLI_OPTIONS,
    {0},
};

// --- the command ---------------------------------------------------------------------------

#define MD_MAX_SAMPLE_HZ 10000

static bool parse(const struct md_command *cmd, int argc, char **argv, struct md_trace_cli *a,
                  int *exit_code)
{
    const char *arg;
    int key, shared;
    uint64_t hz;
    *exit_code = MD_EXIT_OK;
    md_trace_cli_init(a);
    while ((key = md_cli_next(cmd, argc, argv, &arg)) != -1) {
        shared = md_trace_cli_option(cmd, key, arg, a, exit_code);
        if (shared < 0)
            return false;
        if (shared)
            continue;
        switch (key) {
        case OPT_SAMPLE_HZ:
            // whole CPUs sampled with call chains: far above this the samples alone swamp the
            // machine (100 kHz on 2 CPUs ran for a minute on a 10 ms program)
            if (!md_cli_parse_u64(cmd, "--sample-hz", arg, MD_MAX_SAMPLE_HZ, true, &hz, exit_code))
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
            a->folded = arg;
            break;
        case OPT_UPROBES:
            a->opt.uprobes = true;
            break;
        case OPT_NO_TAIL_CALLS:
            a->opt.no_tail_calls = true;
            break;
        default:
            return md_cli_stop(cmd, key, exit_code);
        }
    }
    if (a->folded && !(a->opt.probe_flags & MD_PROBE_WANT_STACKS)) {
        *exit_code = md_cli_usage_error(cmd, "--folded needs --stacks");
        return false;
    }
    if (a->opt.leak_min_bytes && !(a->opt.probe_flags & MD_PROBE_WANT_LEAKS)) {
        *exit_code = md_cli_usage_error(cmd, "--leak-min needs --leaks");
        return false;
    }
    if (!md_trace_cli_operands(cmd, argc, argv, a, exit_code))
        return false;
    // a path that cannot be written fails now, not after a long run
    if (a->folded && !md_cli_output_usable(cmd, a->folded)) {
        *exit_code = MD_EXIT_USAGE;
        return false;
    }
    return true;
}

static void render_text(const cJSON *report)
{
    md_render_trace(report);
    md_render_compare(report);
    md_render_gate(report);
}

static int run(const struct md_command *cmd, int argc, char **argv)
{
    struct md_trace_cli a;
    int rc;
    if (!parse(cmd, argc, argv, &a, &rc))
        return rc;
    return md_trace_cli_run(cmd, &a, render_text);
}

const struct md_command md_cmd_trace = {
    .name = "trace",
    .summary = "run a program and measure what its allocator costs (syscalls per operation)",
    .synopsis = "[--json] [-o FILE] [--stacks [--folded FILE]] [--leaks [--leak-min BYTES]]\n"
                "       [--sample-hz N] [--precise] [--no-tail-calls] [--uprobes]\n"
                "       [--compare | --compare-with LIB]\n"
                "       [--fail-on LEVEL] [--baseline FILE [--max-regression PCT]] [--ops N]\n"
                "       [--timeout SECONDS] [--syscalls auto|strace|perf] [--propagate-exit]\n"
                "       [--probe-dir DIR] [--] CMD [ARGS...]",
    .description =
        "Runs CMD with a probe that counts every malloc, free, calloc, realloc and aligned\n"
        "allocation (preloaded into dynamic programs; static ones run under the static probe),\n"
        "records its memory and futex syscalls, and reports the syscalls per allocator\n"
        "operation, futex blocking, mmap lengths, the request-size histogram and which request\n"
        "sizes made the syscalls. strace records the syscalls; for programs without the\n"
        "preloaded probe, where perf is permitted (root or CAP_PERFMON), the kernel's\n"
        "raw_syscalls tracepoints do, which never stop CMD (--syscalls). CMD's stdin, stdout and\n"
        "stderr are untouched; the report follows on stdout after CMD and every process it "
        "started\n"
        "(daemons included) have ended, or after --timeout stopped them all. --compare runs CMD a\n"
        "second time with mdalloc preloaded, then once more with each allocator without strace\n"
        "or the probe for time and memory (output discarded), and shows both side by side (a\n"
        "file on stdin is read again from where the first run started; a pipe is refused, but\n"
        "for a static program, which runs once). Exit status 1\n"
        "when --fail-on or --baseline fails; with --propagate-exit, CMD's status wins when it\n"
        "is not 0.",
    .options = options,
    .options_end_at_operand = true,
    .exits = MD_EXITS_WITH_CHECKS,
    .run = run,
};
