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
// Each brk moves the break by at least a page. A heap that only grows cannot move it by more
// pages than it ends up using, so brk calls times the page size above twice the peak RSS per
// process mean the heap shrank and grew again.
#define MD008_MIN_MOVED_PER_RSS 2.0
#define MD008_PAGE_SIZE 4096.0

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->trace)
        return;
    bool attributed;
    double ops = md_rule_trace_ops(in->trace);
    double calls = md_rule_trace_syscalls(in->trace, "brk", &attributed);
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(in->trace, "run");
    double processes = md_json_get_num(run, "processes");
    double rss = md_json_get_num(run, "max_rss_kb") * 1024 * (processes > 1 ? processes : 1);
    if (ops <= 0 || calls < MD008_MIN_BRK || calls / ops < MD008_MIN_BRK_PER_OP ||
        calls * MD008_PAGE_SIZE < MD008_MIN_MOVED_PER_RSS * rss)
        return;
    char message[512], fix[2048];
    snprintf(message, sizeof message,
             "%.0f brk calls%s for %.0f allocator operations (%.2f per 1000), far more than a "
             "heap growing to a peak RSS of %.0f KiB needs: the heap top is trimmed on free and "
             "grown again on malloc",
             calls, attributed ? " inside allocator calls" : "", ops, 1000 * calls / ops,
             md_json_get_num(run, "max_rss_kb"));
    md_rule_trace_keep_memory(in, fix, sizeof fix);
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_WARNING, message, fix);
    cJSON_AddNumberToObject(ev, "brk", calls);
    cJSON_AddBoolToObject(ev, "in_allocator", attributed);
    cJSON_AddNumberToObject(ev, "ops", ops);
    cJSON_AddNumberToObject(ev, "brk_per_op", calls / ops);
    cJSON_AddNumberToObject(ev, "max_rss_kb", md_json_get_num(run, "max_rss_kb"));
}

const struct md_rule md_rule_brk_churn = {
    .id = "MD008",
    .name = "brk-churn",
    .title = "brk churn: the heap shrinks and grows again",
    .severities = MD_SEV_BIT(MD_SEV_WARNING),
    .check = check,
};
