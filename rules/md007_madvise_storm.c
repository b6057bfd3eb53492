// SPDX-License-Identifier: GPL-3.0-or-later
// MD007: the allocator calls madvise on a large share of its operations.
//
// madvise(MADV_DONTNEED/FREE) hands pages back while keeping the mapping; every page touched
// again then faults in a zeroed page. Done per free instead of in the background (glibc thread
// arenas with a zero trim threshold, seed 004's allocator: 409 madvise in 50k operations) it is
// a syscall and a fault per block.
#include <stdbool.h>
#include <stdio.h>

#include "lib/report.h"
#include "rules/rules.h"

// Two madvise calls per 1000 allocator operations (seed 004: 8 per 1000); healthy glibc and
// mdalloc runs make none inside allocator calls.
#define MD007_MIN_MADVISE_PER_OP 0.002
// Fewer calls than this are a one-off purge.
#define MD007_MIN_MADVISE 64

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->trace)
        return;
    bool attributed;
    double ops = md_rule_trace_ops(in->trace);
    double calls = md_rule_trace_syscalls(in->trace, "madvise", &attributed);
    if (ops <= 0 || calls < MD007_MIN_MADVISE || calls / ops < MD007_MIN_MADVISE_PER_OP)
        return;
    char message[512], fix[2048];
    snprintf(message, sizeof message,
             "%.0f madvise calls%s for %.0f allocator operations (%.2f per 1000): the allocator "
             "returns pages on the free path and faults them in again on the next malloc",
             calls, attributed ? " inside allocator calls" : "", ops, 1000 * calls / ops);
    md_rule_trace_keep_memory(in, fix, sizeof fix);
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_WARNING, message, fix);
    cJSON_AddNumberToObject(ev, "madvise", calls);
    cJSON_AddBoolToObject(ev, "in_allocator", attributed);
    cJSON_AddNumberToObject(ev, "ops", ops);
    cJSON_AddNumberToObject(ev, "madvise_per_op", calls / ops);
}

const struct md_rule md_rule_madvise_storm = {
    .id = "MD007",
    .name = "madvise-storm",
    .title = "madvise storm",
    .severities = MD_SEV_BIT(MD_SEV_WARNING),
    .check = check,
};
