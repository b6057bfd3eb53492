// SPDX-License-Identifier: GPL-3.0-or-later
// MD008: the heap top is given back with brk and taken again, over and over.
//
// glibc trims the top of its main heap when the free space there exceeds the trim threshold;
// with a threshold at or below the size of a block that is allocated and freed in a loop, every
// free shrinks the heap and the next malloc grows it again: two syscalls and a page fault for
// every page of the block.
#include <stdbool.h>
#include <stdio.h>

#include "lib/report.h"
#include "rules/rules.h"

// Two brk calls per 1000 allocator operations (fixture with trim_threshold=0: 1000 per 1000;
// healthy glibc runs: under 0.05 inside allocator calls, python3 start-up 3.5 for 8 calls).
#define MD008_MIN_BRK_PER_OP 0.002
// Fewer calls than this are start-up and growth.
#define MD008_MIN_BRK 64
// The break went down at least this often (inside allocator calls when the run tells them
// apart): a churning heap goes down once and up once per round, so MD008_MIN_BRK calls of churn
// are this many shrinks. A heap that only grows goes down never, and one that is trimmed now and
// then (glibc's default threshold, 128 KiB free at the top) a few times in a run: the fixture
// with trim_threshold=0 goes down 4000 times in 4000 rounds.
#define MD008_MIN_SHRINKS (MD008_MIN_BRK / 2)
// Without the break's moves (a report from before the tool recorded them): each brk moves the
// break by at least a page. A heap that only grows cannot move it by more pages than it ends up
// using, so brk calls times the page size above twice the peak RSS per process mean the heap
// shrank and grew again.
#define MD008_MIN_MOVED_PER_RSS 2.0
#define MD008_PAGE_SIZE 4096.0

// Whether the heap shrank and grew again, as the report says (moves) or, in an older report,
// as the calls' count against the peak RSS suggests.
static bool churned(const struct md_rule_input *in, double calls,
                    const struct md_rule_brk_moves *moves, bool known)
{
    if (known)
        return moves->trims >= MD008_MIN_SHRINKS;
    double processes;
    double rss = md_rule_trace_program_rss_kb(in->trace, &processes, NULL) * 1024 * processes;
    return calls * MD008_PAGE_SIZE >= MD008_MIN_MOVED_PER_RSS * rss;
}

// Which way the break went: inside allocator calls when the run tells them apart. A report
// from before grows_in_allocator was counted has only the whole run's grows, which can exceed
// the brk calls inside allocator calls: the message says whose they are.
static void brk_moved(const struct md_rule_brk_moves *moves, char *out, size_t size)
{
    if (moves->shrinks_in_allocator < 0)
        snprintf(out, size, "the break went down %.0f times and up %.0f times", moves->trims,
                 moves->grows);
    else if (moves->grows_in_allocator < 0)
        snprintf(out, size,
                 "the break went down %.0f times inside allocator calls and up %.0f times in "
                 "the whole run",
                 moves->trims, moves->grows);
    else
        snprintf(out, size,
                 "the break went down %.0f times and up %.0f times inside allocator calls",
                 moves->trims, moves->grows_in_allocator);
}

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->trace)
        return;
    bool attributed;
    double ops = md_rule_trace_ops(in->trace);
    double calls = md_rule_trace_syscalls(in->trace, "brk", &attributed);
    struct md_rule_brk_moves moves = {0};
    bool known = md_rule_trace_brk_moves(in->trace, &moves);
    if (ops <= 0 || calls < MD008_MIN_BRK || calls / ops < MD008_MIN_BRK_PER_OP ||
        !churned(in, calls, &moves, known))
        return;
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(in->trace, "run");
    double processes, program_rss = md_rule_trace_program_rss_kb(in->trace, &processes, NULL);
    char message[512], moved[160], fix[2048];
    if (known)
        brk_moved(&moves, moved, sizeof moved);
    else
        snprintf(moved, sizeof moved,
                 "far more than a heap growing to a peak RSS of %.0f KiB needs", program_rss);
    snprintf(message, sizeof message,
             "%.0f brk calls%s for %.0f allocator operations (%.2f per 1000), %s: the heap top is "
             "trimmed on free and grown again on malloc",
             calls, attributed ? " inside allocator calls" : "", ops, 1000 * calls / ops, moved);
    md_rule_trace_keep_memory(in, fix, sizeof fix);
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_WARNING, message, fix);
    cJSON_AddNumberToObject(ev, "brk", calls);
    cJSON_AddBoolToObject(ev, "in_allocator", attributed);
    cJSON_AddNumberToObject(ev, "ops", ops);
    cJSON_AddNumberToObject(ev, "brk_per_op", calls / ops);
    cJSON_AddNumberToObject(ev, "max_rss_kb", md_json_get_num(run, "max_rss_kb"));
    cJSON_AddNumberToObject(ev, "program_rss_kb", program_rss); // without the probe file's pages
    // null in a report that does not say which way the break moved
    md_json_num_or_null(ev, "shrinks", known, moves.shrinks);
    md_json_num_or_null(ev, "shrinks_in_allocator", known && moves.shrinks_in_allocator >= 0,
                        moves.shrinks_in_allocator);
    md_json_num_or_null(ev, "grows", known, moves.grows);
    md_json_num_or_null(ev, "grows_in_allocator", known && moves.grows_in_allocator >= 0,
                        moves.grows_in_allocator);
}

const struct md_rule md_rule_brk_churn = {
    .id = "MD008",
    .name = "brk-churn",
    .title = "brk churn: the heap shrinks and grows again",
    .severities = MD_SEV_BIT(MD_SEV_WARNING),
    .check = check,
};
