// SPDX-License-Identifier: GPL-3.0-or-later
// Diagnosis rules. Each rule lives in its own file and reads only the report model (cJSON), so
// it can be tested on any report; all rules are registered in one table in rules.c.
#ifndef MD_RULES_H
#define MD_RULES_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum md_severity { MD_SEV_INFO, MD_SEV_WARNING, MD_SEV_ERROR };
// One bit per severity, for struct md_rule's severities.
#define MD_SEV_BIT(severity) (1u << (severity))

struct md_rule_input {
    const cJSON *file;         // one inspect entry (see README: JSON schema), or NULL
    const char *expect;        // --expect ALLOC, or NULL
    const cJSON *trace;        // a trace report, or NULL; with file, the trace of that program
    uint64_t leak_min_bytes;   // trace --leak-min; 0: the leak rule's own default
    const char *alloc_dir;     // where this tool's mdalloc builds are (DIR/alloc), or NULL
    const char *tool;          // how commands name this tool (md_tool_command), or NULL
    bool compared;             // the report compares a run with another allocator (--compare)
    const char *compared_with; // with compared: that allocator's library (--compare-with), NULL:
                               // mdalloc
};

struct md_rule {
    const char *id;   // stable: "MD001"
    const char *name; // stable slug: "musl-malloc-threads"
    const char *title;
    // MD_SEV_BIT of each severity its findings can have, listed by `rules --json` so that a
    // --fail-on level can be chosen knowing which rules it catches
    unsigned severities;
    void (*check)(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings);
};

extern const struct md_rule *const md_rules[];

void md_rules_run(const struct md_rule_input *in, cJSON *findings);

// Appends {"id","rule","severity","title","message","fix","evidence":{}} and returns the
// evidence object for the rule to fill.
cJSON *md_finding_add(cJSON *findings, const struct md_rule *rule, enum md_severity severity,
                      const char *message, const char *fix);

const char *md_severity_name(enum md_severity severity);
// -1 when name is not a severity
int md_severity_parse(const char *name);

// Shared reads of an inspect entry.
const char *md_rule_active_family(const cJSON *file); // "musl", "mimalloc", ... or NULL
const char *md_rule_active_id(const cJSON *file);

// Shared reads of a trace report.
double md_rule_trace_ops(const cJSON *trace); // allocator operations; 0 when not known
// The entry of "syscalls" for name, or NULL.
const cJSON *md_rule_trace_syscall(const cJSON *trace, const char *name);
// A syscall's count inside allocator calls when the trace could tell (a probe ran), else its
// count in the whole run; *attributed says which. -1 when the report has no such syscall.
double md_rule_trace_syscalls(const cJSON *trace, const char *name, bool *attributed);
// Which way the run's brk calls moved the break, from the brk entry of "syscalls": shrinks and
// grows of the whole run, and shrinks_in_allocator and grows_in_allocator, -1 when the run could
// not tell calls apart (grows_in_allocator also in a report from before the tool counted it).
// trims: the shrinks the rules count, those inside allocator calls when told apart, else all.
// False when the report does not say (written before the tool recorded brk's result).
struct md_rule_brk_moves {
    double shrinks, grows, shrinks_in_allocator, grows_in_allocator, trims;
};
bool md_rule_trace_brk_moves(const cJSON *trace, struct md_rule_brk_moves *out);
// The program's own peak RSS per process, in KiB, for the rules that weigh memory against it:
// run.max_rss_kb less the probe file's pages (run.probe_file_kb), which the program's processes
// map and count in their RSS (with --leaks, up to twice the heap the program keeps live).
// *processes: the run's process count, at least 1. 0 when the report has no peak RSS.
// *clamped (unless NULL): whether the figure is the floor below which it is not taken (see
// rules.c), above max_rss_kb less the file's pages: only part of them was left out.
double md_rule_trace_program_rss_kb(const cJSON *trace, double *processes, bool *clamped);
// The run's minor faults less one per page of the probe file (run.probe_file_kb), which some
// process of the program faulted in at least once; at least 0.
double md_rule_trace_program_faults(const cJSON *trace);
// CPU samples of the program itself: all samples less those in the tracer's own uprobe traps
// (uprobes mode), which the program would not spend without malloc-doctor. 0 when not sampled.
double md_rule_trace_program_samples(const cJSON *trace);
// Whether a probe counted every call and no process allocated from two threads: the program
// cannot have waited on an allocator lock for another thread. False when it cannot be told.
bool md_rule_trace_single_threaded(const cJSON *trace);
// The most threads the trace saw in one process (threads that made a counted call or a recorded
// syscall): all of them when the run had one process, else by pid (a thread without one, which
// made no counted call, is not counted). 0 when it cannot be told.
size_t md_rule_trace_threads_in_process(const cJSON *trace);
// The traced command line, shell-quoted where needed, for prescriptions; one longer than
// MD_RULE_COMMAND_MAX bytes becomes "PROGRAM ..." (its arguments elided), so the prescriptions
// that embed it stay whole.
#define MD_RULE_COMMAND_MAX 240
void md_rule_trace_command(const cJSON *trace, char *out, size_t size);
// How a static musl program gets mdalloc: a patched copy of musl's libc.a to relink against
// (one wording for every rule that prescribes it). For a file of another architecture (file:
// an inspect entry; NULL for a program traced here, which is x86-64) the libc.a is that
// target's, wherever its toolchain keeps it.
void md_rule_patch_musl(const struct md_rule_input *in, const cJSON *file, char *out, size_t size);
// How a glibc program links mdalloc's archive: all of it (--whole-archive), since a member is
// otherwise linked only when the objects before it call malloc themselves (not one that only
// calls strdup, or C++'s operator new in libstdc++).
void md_rule_mdalloc_archive(const struct md_rule_input *in, char *out, size_t size);
// Those link flags alone, backticked: `-Wl,--whole-archive DIR/glibc/libmdalloc.a
// -Wl,--no-whole-archive` (alloc_dir: DIR, as md_rule_alloc_dir gives it).
void md_rule_mdalloc_link(const char *alloc_dir, char *out, size_t size);
// Where this tool's mdalloc builds are, for prescriptions: in->alloc_dir, a trace's
// tool.alloc_dir, or a placeholder.
const char *md_rule_alloc_dir(const struct md_rule_input *in);
// The -l name an allocator's packages install (-ltcmalloc for gperftools'), by id or family
// name exactly (tcmalloc-google is not gperftools' -ltcmalloc); NULL for one that does not come
// as a library to link (a libc's, Go's, mdalloc).
const char *md_rule_link_name(const char *id_or_family);
// This tool in a prescribed command: in->tool, a trace's tool.command, or "malloc-doctor".
const char *md_rule_tool(const struct md_rule_input *in);

// The prescription for "run it with an allocator that keeps its memory": the compare run for a
// dynamic program, patch for static musl, relinking for other static programs.
void md_rule_trace_replace_allocator(const struct md_rule_input *in, char *out, size_t size);
// The fix for an allocator that gives memory back to the OS too eagerly: for glibc's malloc the
// GLIBC_TUNABLES that keep blocks up to the largest request in the heap, then the replacement.
void md_rule_trace_keep_memory(const struct md_rule_input *in, char *out, size_t size);

#endif
