// SPDX-License-Identifier: GPL-3.0-or-later
// What `trace` and `doctor` share: running the program (with --compare and the gate) and the
// text rendering of trace reports.
#ifndef MD_TRACE_CLI_H
#define MD_TRACE_CLI_H

#include <cJSON.h>

#include "cmd/cli.h"
#include "lib/trace.h"

struct md_trace_cli {
    struct md_trace_options opt;
    bool json, propagate, compare;
    const char *output, *compare_with;
    const char *folded; // --folded FILE (trace only)
    struct md_gate_args gate;
};

// Option keys that trace and doctor share; a command's own keys start at MD_TOPT_OWN.
enum {
    MD_TOPT_JSON = 0x101,
    MD_TOPT_OPS,
    MD_TOPT_PROPAGATE,
    MD_TOPT_PROBE_DIR,
    MD_TOPT_COMPARE,
    MD_TOPT_COMPARE_WITH,
    MD_TOPT_LEAK_MIN,
    MD_TOPT_TIMEOUT,
    MD_TOPT_SYSCALLS,
    MD_TOPT_OWN
};

// The shared entries of both option tables (leak-min's help differs, so each table has its own).
#define MD_TRACE_CLI_OPTIONS                                                                       \
    {"json", MD_TOPT_JSON, NULL,                                                                   \
     "print the report as JSON (schema malloc-doctor/1), after CMD's output"},                     \
        {"output", 'o', "FILE", "write the report to FILE instead of stdout, which CMD keeps"},    \
        {"compare", MD_TOPT_COMPARE, NULL,                                                         \
         "run CMD again with mdalloc preloaded and show both runs side by side"},                  \
        {"compare-with", MD_TOPT_COMPARE_WITH, "LIB",                                              \
         "like --compare, preloading the allocator LIB"},                                          \
        MD_OPT_FAIL_ON_ENTRY, MD_OPT_BASELINE_ENTRIES,                                             \
        {"ops", MD_TOPT_OPS, "N",                                                                  \
         "the number of allocator operations, when they cannot be counted"},                       \
        {"timeout", MD_TOPT_TIMEOUT, "SECONDS",                                                    \
         "end CMD and all it started after SECONDS (SIGTERM, then SIGKILL); still report"},        \
        {"syscalls", MD_TOPT_SYSCALLS, "SOURCE",                                                   \
         "who records the syscalls: auto (default), strace or perf (kernel tracepoints)"},         \
        {"propagate-exit", MD_TOPT_PROPAGATE, NULL,                                                \
         "exit with CMD's status when not 0 (128+N for signal N, 124 when timed out)"},            \
        {"probe-dir", MD_TOPT_PROBE_DIR, "DIR",                                                    \
         "where the probe builds are (glibc/, musl/, static/)"},                                   \
        {"help", MD_OPT_HELP, NULL, "show this help"},                                             \
    {                                                                                              \
        "version", MD_OPT_VERSION, NULL, "show the version"                                        \
    }

// Prime, so sampling does not beat in step with periodic work in the program.
#define MD_DEFAULT_SAMPLE_HZ 997

// Sets the defaults both commands share.
void md_trace_cli_init(struct md_trace_cli *a);
// Handles a shared option: 1 when handled, 0 when key is the command's own, -1 after a usage
// error (*exit_code set).
int md_trace_cli_option(const struct md_command *cmd, int key, const char *arg,
                        struct md_trace_cli *a, int *exit_code);
// After the options: takes CMD from the operands and checks the combination.
bool md_trace_cli_operands(const struct md_command *cmd, int argc, char **argv,
                           struct md_trace_cli *a, int *exit_code);

// Loads the baseline, runs (and with --compare re-runs) the program, applies the gate and
// prints the report with render_text; returns the exit status.
int md_trace_cli_run(const struct md_command *cmd, const struct md_trace_cli *a,
                     void (*render_text)(const cJSON *report));

// The whole trace report: header, operations, syscalls, CPU, size bands, stacks, findings.
void md_render_trace(const cJSON *report);
// The header lines alone: target, allocator, exit, wall/CPU/RSS/faults.
void md_render_trace_header(const cJSON *report);
// "note: N of M processes ran without the probe (NAMES...)", when some did.
void md_render_unprobed_note(const cJSON *report);
// trace --compare's side-by-side table (or why it could not preload); nothing without "compare".
void md_render_compare(const cJSON *report);
// The --baseline gate's comparison table; nothing without "gate".
void md_render_gate(const cJSON *report);

#endif
