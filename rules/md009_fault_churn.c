// SPDX-License-Identifier: GPL-3.0-or-later
// MD009: pages are faulted in again and again, because freed memory went back to the OS.
//
// A page is faulted in once when first touched; a program whose minor faults add up to several
// times its peak RSS has touched memory that was returned (munmap, brk, madvise) and mapped
// again. Each fault is a kernel entry and a zeroed page. The allocator must have returned memory
// itself: faults of a program that maps and unmaps its own buffers are not the allocator's.
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/report.h"
#include "rules/rules.h"

// Faulted-in bytes at four times the peak RSS per process: healthy runs stay under 1 (python3
// start-up 0.67, glibc and mdalloc churn fixtures under 0.6 per process); the churn fixtures
// fault 190-380 times their RSS.
#define MD009_MIN_FAULTED_PER_RSS 4.0
// One fault per 100 allocator operations: the faults keep pace with the allocations.
#define MD009_MIN_FAULTS_PER_OP 0.01
// Fewer faults than this (4 MiB) are not worth a finding.
#define MD009_MIN_FAULTS 1000
#define MD009_PAGE_SIZE 4096.0
// The allocator gave memory back at least this often (munmap, madvise, brk that lowered the break):
// without that the faults are the program's own (its own mappings, files it maps, its stacks),
// which no allocator setting changes. A churning allocator makes one per round (thousands).
#define MD009_MIN_RETURNS 16

// The brk calls that gave memory back: those that moved the break down, inside allocator calls
// when the run tells them apart (a trim inside realloc counts too), else all of them. A report
// written before the tool recorded which way a brk moved has only the calls inside free, where
// glibc trims its top (inside malloc brk grows the heap, inside realloc either); without
// attribution it tells none, and growth alone must not count: 0 then.
static double brk_returns(const cJSON *trace)
{
    struct md_rule_brk_moves moves;
    if (md_rule_trace_brk_moves(trace, &moves))
        return moves.trims;
    bool attributed;
    if (md_rule_trace_syscalls(trace, "brk", &attributed) <= 0 || !attributed)
        return 0;
    const cJSON *brk = md_rule_trace_syscall(trace, "brk");
    return md_json_get_num(cJSON_GetObjectItemCaseSensitive(brk, "in_allocator_by_op"), "free");
}

// The munmap and madvise calls that may have given memory back, inside allocator calls when the
// run tells them apart (*attributed), else all of them; and the brk calls that trimmed the heap.
static double memory_returns(const cJSON *trace, bool *attributed)
{
    static const char *const names[] = {"munmap", "madvise"};
    double sum = brk_returns(trace);
    *attributed = true;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        bool inside;
        double n = md_rule_trace_syscalls(trace, names[i], &inside);
        if (n < 0)
            continue; // not made at all
        sum += n;
        *attributed = *attributed && inside;
    }
    return sum;
}

// What the message adds to the peak RSS it weighed the faults against. clamped: the RSS is the
// floor md_rule_trace_program_rss_kb keeps, so only part of the file's pages was left out of it.
static void rss_note(const cJSON *run, double processes, bool clamped, char *out, size_t size)
{
    double probe_kb = md_json_get_num(run, "probe_file_kb");
    char probe[112] = "";
    if (probe_kb > 0)
        snprintf(probe, sizeof probe, " (the probe file's %.0f KiB%s %s)", probe_kb,
                 processes > 1 ? " among them" : "",
                 clamped ? "partly left out, their faults wholly" : "and their faults left out");
    snprintf(out, size, "%s%s", processes > 1 ? " per process or thread" : "", probe);
}

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->trace)
        return;
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(in->trace, "run");
    double ops = md_rule_trace_ops(in->trace);
    double processes;
    bool clamped;
    // the probe file's pages left out of both: with --leaks they can double the peak RSS (doctor)
    // and add a fault per page
    double faults = md_rule_trace_program_faults(in->trace);
    double rss_kb = md_rule_trace_program_rss_kb(in->trace, &processes, &clamped);
    double rss = rss_kb * 1024 * processes;
    bool attributed;
    double returns = memory_returns(in->trace, &attributed);
    if (ops <= 0 || rss <= 0 || faults < MD009_MIN_FAULTS ||
        faults / ops < MD009_MIN_FAULTS_PER_OP ||
        faults * MD009_PAGE_SIZE < MD009_MIN_FAULTED_PER_RSS * rss || returns < MD009_MIN_RETURNS)
        return;
    double ratio = faults * MD009_PAGE_SIZE / rss;
    char message[640], fix[2048], note[160];
    rss_note(run, processes, clamped, note, sizeof note);
    snprintf(message, sizeof message,
             "%.0f minor page faults for %.0f allocator operations (%.2f per op): %.0f MiB "
             "faulted in, %.0f times the peak RSS of %.0f KiB%s; with %.0f munmap, madvise and "
             "heap-trimming brk calls%s, freed memory went back to the OS and was faulted in again",
             faults, ops, faults / ops, faults * MD009_PAGE_SIZE / (1 << 20), ratio, rss_kb, note,
             returns,
             attributed ? " inside allocator calls" : " (not told apart from the program's own)");
    md_rule_trace_keep_memory(in, fix, sizeof fix);
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_WARNING, message, fix);
    cJSON_AddNumberToObject(ev, "minor_faults", md_json_get_num(run, "minor_faults"));
    cJSON_AddNumberToObject(ev, "program_faults", faults);
    cJSON_AddNumberToObject(ev, "ops", ops);
    cJSON_AddNumberToObject(ev, "faults_per_op", faults / ops);
    cJSON_AddNumberToObject(ev, "max_rss_kb", md_json_get_num(run, "max_rss_kb"));
    cJSON_AddNumberToObject(ev, "program_rss_kb", rss_kb);
    md_json_num_or_null(ev, "probe_file_kb",
                        cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(run, "probe_file_kb")),
                        md_json_get_num(run, "probe_file_kb"));
    cJSON_AddNumberToObject(ev, "faulted_per_rss", ratio);
    cJSON_AddNumberToObject(ev, "memory_returns", returns);
    cJSON_AddBoolToObject(ev, "in_allocator", attributed);
}

const struct md_rule md_rule_fault_churn = {
    .id = "MD009",
    .name = "page-fault-churn",
    .title = "page-fault churn: freed memory is faulted in again",
    .severities = MD_SEV_BIT(MD_SEV_WARNING),
    .check = check,
};
