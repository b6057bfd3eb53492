// SPDX-License-Identifier: GPL-3.0-or-later
// MD006: the allocator maps and unmaps memory again and again.
//
// Each mmap/munmap pair is two syscalls, a TLB shootdown on multithreaded programs, and a page
// fault for every page touched again: an allocator is meant to reuse the memory it already has.
// glibc with a small fixed mmap threshold, and musl's mallocng for 4-64 KiB blocks (patch
// benchmark: 25.9 per 1000 operations), map and unmap the same lengths per block.
#include <stdbool.h>
#include <stdio.h>

#include "lib/report.h"
#include "rules/rules.h"

// Two maps per 1000 allocator operations: healthy runs stay below 0.1 (glibc and mdalloc churn
// fixtures: 0.03-0.05 inside allocator calls); the churning fixture makes 500.
#define MD006_MIN_MMAPS_PER_OP 0.002
// Churn unmaps what it maps: at least half as many munmaps as mmaps (growth only maps).
#define MD006_MIN_UNMAP_RATIO 0.5
// Fewer maps than this are start-up.
#define MD006_MIN_MMAPS 64

// The mapping length bucket with the most mmaps among the calls counted (attributed: those
// inside allocator calls, else the run's), the length being churned, and *share: its part of
// those mmaps. NULL when the report has no lengths for them (an older report without
// mmap_lengths_in_allocator): the run's would name the program's own buffers' length.
static const cJSON *top_length(const cJSON *trace, bool attributed, double *share)
{
    const cJSON *lengths = cJSON_GetObjectItemCaseSensitive(
        trace, attributed ? "mmap_lengths_in_allocator" : "mmap_lengths");
    const cJSON *b, *top = NULL;
    double all = 0;
    cJSON_ArrayForEach(b, lengths)
    {
        all += md_json_get_num(b, "count");
        if (!top || md_json_get_num(b, "count") > md_json_get_num(top, "count"))
            top = b;
    }
    *share = all > 0 ? md_json_get_num(top, "count") / all : 0;
    return all > 0 ? top : NULL;
}

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->trace)
        return;
    bool attributed, unmap_attributed;
    double ops = md_rule_trace_ops(in->trace);
    double maps = md_rule_trace_syscalls(in->trace, "mmap", &attributed);
    double unmaps = md_rule_trace_syscalls(in->trace, "munmap", &unmap_attributed);
    if (ops <= 0 || maps < MD006_MIN_MMAPS || maps / ops < MD006_MIN_MMAPS_PER_OP ||
        unmaps < MD006_MIN_UNMAP_RATIO * maps)
        return;
    double share;
    const cJSON *top = top_length(in->trace, attributed, &share);
    char lengths[128] = "";
    if (top)
        snprintf(lengths, sizeof lengths, "; %.0f%% of the%s mappings are %.0f-%.0f B long",
                 100 * share, attributed ? "se" : "", md_json_get_num(top, "from"),
                 md_json_get_num(top, "to"));
    char message[512], fix[2048];
    snprintf(message, sizeof message,
             "%.0f mmap and %.0f munmap calls%s for %.0f allocator operations (%.2f maps per "
             "1000)%s: the allocator gives these blocks back to the OS and maps them again "
             "instead of reusing them",
             maps, unmaps, attributed ? " inside allocator calls" : "", ops, 1000 * maps / ops,
             lengths);
    md_rule_trace_keep_memory(in, fix, sizeof fix);
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_WARNING, message, fix);
    cJSON_AddNumberToObject(ev, "mmaps", maps);
    cJSON_AddNumberToObject(ev, "munmaps", unmaps);
    cJSON_AddBoolToObject(ev, "in_allocator", attributed);
    cJSON_AddNumberToObject(ev, "ops", ops);
    cJSON_AddNumberToObject(ev, "mmaps_per_op", maps / ops);
    // the most common length of those mmaps; null when the report cannot tell it
    const char *keys[] = {"from", "to", "count"},
               *names[] = {"length_from", "length_to", "length_count"};
    for (size_t i = 0; i < 3; i++)
        cJSON_AddItemToObject(ev, names[i],
                              top ? cJSON_CreateNumber(md_json_get_num(top, keys[i]))
                                  : cJSON_CreateNull());
}

const struct md_rule md_rule_mmap_churn = {
    .id = "MD006",
    .name = "mmap-churn",
    .title = "mmap/munmap churn",
    .severities = MD_SEV_BIT(MD_SEV_WARNING),
    .check = check,
};
