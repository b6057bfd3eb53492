// SPDX-License-Identifier: GPL-3.0-or-later
// MD005: a lock hotspot in the allocator, seen as time blocked in futex waits inside allocator
// calls, or as most of the CPU in one allocator function even with few futex calls.
//
// Seed 003: perf showed 85% of the CPU in one allocator refill function and strace only 4 futex
// calls: the work was done under a global lock (or a spin), so the other threads could only
// wait. A healthy allocator spreads its few percent over its malloc and free fast paths.
// musl's allocator is left to MD001, which names the same cause with a musl-specific fix.
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/report.h"
#include "rules/rules.h"

// One allocator function with half of the program's CPU samples: the allocator is the program
// (fixture lock-hotspot: 93-94%; healthy glibc and mdalloc runs: at most 14% of a few samples).
#define MD005_MIN_FUNCTION_SHARE 0.50
// Below this many samples (0.1 s of CPU at the default rate) a share is noise.
#define MD005_MIN_SAMPLES 100
// Blocked in futex waits inside allocator calls for a fifth of the wall time: threads queue on
// the allocator's lock (healthy glibc and mdalloc runs: 0).
#define MD005_MIN_WAIT_SHARE 0.20
// Fewer waits than this are start-up, whatever their length.
#define MD005_MIN_WAITS 32

struct hotspot {
    const char *function;
    double function_samples, samples, function_share;
    double waits, wait_seconds, wall, wait_share;
};

static void find_hot_function(const cJSON *trace, struct hotspot *h)
{
    h->samples = md_rule_trace_program_samples(trace);
    const cJSON *f;
    cJSON_ArrayForEach(
        f, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(trace, "cpu"),
                                            "top_allocator_functions"))
    {
        double n = md_json_get_num(f, "samples");
        if (n > h->function_samples && md_json_get_str(f, "name")) {
            h->function_samples = n;
            h->function = md_json_get_str(f, "name");
        }
    }
    if (h->samples > 0)
        h->function_share = h->function_samples / h->samples;
}

static void find_waits(const cJSON *trace, struct hotspot *h)
{
    if (!md_report_attributed(trace))
        return;
    const cJSON *futex = cJSON_GetObjectItemCaseSensitive(trace, "futex");
    h->waits = md_json_get_num(futex, "allocator_waits");
    h->wait_seconds = md_json_get_num(futex, "allocator_wait_seconds");
    h->wall = md_json_get_num(cJSON_GetObjectItemCaseSensitive(trace, "run"), "wall_seconds");
    if (h->wall > 0)
        h->wait_share = h->wait_seconds / h->wall;
}

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->trace)
        return;
    const char *family =
        md_json_get_str(cJSON_GetObjectItemCaseSensitive(
                            cJSON_GetObjectItemCaseSensitive(in->trace, "target"), "active"),
                        "family");
    if (family && !strcmp(family, "musl"))
        return;
    struct hotspot h = {0};
    find_hot_function(in->trace, &h);
    find_waits(in->trace, &h);
    bool cpu = h.samples >= MD005_MIN_SAMPLES && h.function_share >= MD005_MIN_FUNCTION_SHARE;
    bool blocked = h.waits >= MD005_MIN_WAITS && h.wait_share >= MD005_MIN_WAIT_SHARE;
    if (!cpu && !blocked)
        return;
    char message[512], cpu_part[192] = "", wait_part[192] = "";
    if (cpu)
        snprintf(cpu_part, sizeof cpu_part, "%s has %.0f%% of the program's %.0f CPU samples",
                 h.function, 100 * h.function_share, h.samples);
    if (blocked)
        snprintf(wait_part, sizeof wait_part,
                 "threads were blocked in %.0f futex waits inside allocator calls for %.3f s, "
                 "%.0f%% of the wall time",
                 h.waits, h.wait_seconds, 100 * h.wait_share);
    // one allocating thread per process: nothing waited on the lock, the allocator's own work
    // is the cost (a warning: seed 003's harm was the other threads' waiting)
    bool alone = !blocked && md_rule_trace_single_threaded(in->trace);
    snprintf(message, sizeof message, "%s%s%s: %s", cpu_part, cpu && blocked ? "; " : "", wait_part,
             blocked ? "the allocator's lock serialises the threads"
             : alone ? "the allocator does much of this single-threaded program's work in one "
                       "function; no thread waited for its lock, but a faster allocator or fewer "
                       "allocations would save that time"
                     : "the allocator does the program's work in one function, and whatever it "
                       "does under its lock no other allocating thread can do meanwhile");
    char fix[2048];
    md_rule_trace_replace_allocator(in, fix, sizeof fix);
    cJSON *ev = md_finding_add(findings, rule, alone ? MD_SEV_WARNING : MD_SEV_ERROR, message, fix);
    md_json_str(ev, "function", h.function);
    cJSON_AddNumberToObject(ev, "function_samples", h.function_samples);
    cJSON_AddNumberToObject(ev, "cpu_samples", h.samples);
    cJSON_AddNumberToObject(ev, "function_share", h.function_share);
    cJSON_AddNumberToObject(ev, "allocator_futex_waits", h.waits);
    cJSON_AddNumberToObject(ev, "allocator_wait_seconds", h.wait_seconds);
    cJSON_AddNumberToObject(ev, "allocator_wait_share_of_wall", h.wait_share);
}

const struct md_rule md_rule_lock_hotspot = {
    .id = "MD005",
    .name = "lock-hotspot",
    .title = "lock hotspot in the allocator",
    .severities = MD_SEV_BIT(MD_SEV_WARNING) | MD_SEV_BIT(MD_SEV_ERROR),
    .check = check,
};
