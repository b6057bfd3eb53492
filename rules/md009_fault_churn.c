// SPDX-License-Identifier: GPL-3.0-or-later
// MD009: pages are faulted in again and again, because freed memory went back to the OS.
//
// A page is faulted in once when first touched; a program whose minor faults add up to several
// times its peak RSS has touched memory that was returned (munmap, brk, madvise) and mapped
// again. Each fault is a kernel entry and a zeroed page.
#include <stdio.h>

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

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->trace)
        return;
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(in->trace, "run");
    double ops = md_rule_trace_ops(in->trace);
    double faults = md_json_get_num(run, "minor_faults");
    double processes = md_json_get_num(run, "processes");
    double rss_kb = md_json_get_num(run, "max_rss_kb");
    double rss = rss_kb * 1024 * (processes > 1 ? processes : 1);
    if (ops <= 0 || rss <= 0 || faults < MD009_MIN_FAULTS ||
        faults / ops < MD009_MIN_FAULTS_PER_OP ||
        faults * MD009_PAGE_SIZE < MD009_MIN_FAULTED_PER_RSS * rss)
        return;
    double ratio = faults * MD009_PAGE_SIZE / rss;
    char message[512], fix[1024];
    snprintf(message, sizeof message,
             "%.0f minor page faults for %.0f allocator operations (%.2f per op): %.0f MiB "
             "faulted in, %.0f times the peak RSS of %.0f KiB%s, so freed memory went back to "
             "the OS and was faulted in again",
             faults, ops, faults / ops, faults * MD009_PAGE_SIZE / (1 << 20), ratio, rss_kb,
             processes > 1 ? " per process or thread" : "");
    md_rule_trace_keep_memory(in->trace, fix, sizeof fix);
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_WARNING, message, fix);
    cJSON_AddNumberToObject(ev, "minor_faults", faults);
    cJSON_AddNumberToObject(ev, "ops", ops);
    cJSON_AddNumberToObject(ev, "faults_per_op", faults / ops);
    cJSON_AddNumberToObject(ev, "max_rss_kb", rss_kb);
    cJSON_AddNumberToObject(ev, "faulted_per_rss", ratio);
}

const struct md_rule md_rule_fault_churn = {
    .id = "MD009",
    .name = "page-fault-churn",
    .title = "page-fault churn: freed memory is faulted in again",
    .severities = MD_SEV_BIT(MD_SEV_WARNING),
    .check = check,
};
