// SPDX-License-Identifier: GPL-3.0-or-later
// MD004: a narrow band of request sizes causes most of the allocator's mmap/munmap/madvise.
//
// Seed 004: a 1-byte header pushed 1016-1024 B requests past a 1024 B small-object limit, so
// 0.82% of the allocations made 98% of the syscalls. An allocator is meant to serve every size
// from cached memory; when a sliver of the size range goes to the OS on every call, the band's
// upper end is the size-class boundary that is off by the header.
//
// An overflow is churn: each request maps memory that its free gives back (mmap, then munmap or
// madvise), so the allocator's calls give back about as many times as the band takes. A heap
// that only grows (brk, or mmap of arenas, for a band that is the first to need a new page)
// gives nothing back, however narrow the band: its syscalls count only as far as the
// allocator's munmap and madvise calls match them. (A heap top trimmed with brk and grown again
// is MD008's.)
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/report.h"
#include "rules/rules.h"

// A band of requests this rare...
#define MD004_MAX_REQUEST_SHARE 0.05
// ...that makes at least this share of all memory syscalls is an overflow, not a workload.
#define MD004_MIN_SYSCALL_SHARE 0.25
// Below this many syscalls in the band, there is nothing worth fixing.
#define MD004_MIN_SYSCALLS 32

static double num(const cJSON *o, const char *key)
{
    return md_json_get_num(o, key);
}

// A band this wide is no size-class miss: above MD_HIST_EXACT (4 KiB) the bands are whole
// powers of two, which say nothing of where in them the requests fell (glibc's mmap threshold,
// set low, puts such a band under MD006's churn instead).
static bool narrow(double from, double to)
{
    double width = to - from + 1;
    return width <= 64 || 8 * width <= to;
}

// The power of two inside the band: where a size-class table usually changes regime, and the
// limit a header pushes the band's requests over (seed 004: 1016-1024 B, 1024). 0 when the band
// holds none (musl's classes end at 16 B steps in between: 203-211 B, the class of 208 B).
static unsigned long boundary_of(double from, double to)
{
    unsigned long b = 1;
    while (b < (unsigned long)from && b < (1ul << 62))
        b <<= 1;
    return b <= (unsigned long)to ? b : 0;
}

// The memory the allocator's calls gave back: munmap and madvise inside allocator calls when
// the trace tied them (it did, or there would be no size bands), else in the whole run.
static double given_back(const cJSON *trace)
{
    bool attributed;
    double n = 0;
    static const char *const names[] = {"munmap", "madvise"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        double calls = md_rule_trace_syscalls(trace, names[i], &attributed);
        n += calls > 0 ? calls : 0;
    }
    return n;
}

// The band's own calls that map or unmap (mmap, mremap, munmap, madvise): its brk and mprotect
// calls grow a heap (a heap top trimmed and grown again is MD008's).
static double band_mapping_calls(const cJSON *band)
{
    static const char *const names[] = {"mmap", "mremap", "munmap", "madvise"};
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(band, "syscalls");
    double n = 0;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        n += num(sys, names[i]);
    return n;
}

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->trace)
        return;
    double released = given_back(in->trace);
    const cJSON *band;
    cJSON_ArrayForEach(band, cJSON_GetObjectItemCaseSensitive(in->trace, "size_bands"))
    {
        double share = num(band, "request_share"), calls = num(band, "memory_syscalls");
        // the band's syscalls that were churn: its mappings, no more than the allocator gave
        // back (another band's munmaps do not make this one's brk calls churn)
        double mapping = band_mapping_calls(band);
        double churn = mapping < released ? mapping : released;
        double sys_share =
            calls > 0 ? num(band, "memory_syscall_share") * churn / calls : 0; // of all syscalls
        double from = num(band, "from"), to = num(band, "to");
        if (share > MD004_MAX_REQUEST_SHARE || sys_share < MD004_MIN_SYSCALL_SHARE ||
            churn < MD004_MIN_SYSCALLS || !narrow(from, to))
            continue;
        unsigned long boundary = boundary_of(from, to);
        char miss[160] = "they fall just past one of the allocator's size classes, as if a header "
                         "pushed them over its limit";
        if (boundary)
            snprintf(miss, sizeof miss,
                     "they reach %lu B, where size classes usually end, as if a header pushed "
                     "them over that limit",
                     boundary);
        char message[512];
        snprintf(message, sizeof message,
                 "requests of %.0f-%.0f B are %.2f%% of the requests but make %.0f%% of the memory "
                 "syscalls (%.0f), and the allocator gives the memory back (%.0f munmap and "
                 "madvise calls): %s",
                 from, to, 100 * share, 100 * num(band, "memory_syscall_share"), calls, released,
                 miss);
        char fix[2048];
        md_rule_trace_replace_allocator(in, fix, sizeof fix - 64);
        strcat(fix, "; and report the band to the allocator's authors");
        cJSON *ev = md_finding_add(findings, rule, MD_SEV_ERROR, message, fix);
        cJSON_AddNumberToObject(ev, "from", from);
        cJSON_AddNumberToObject(ev, "to", to);
        if (boundary)
            cJSON_AddNumberToObject(ev, "boundary", (double)boundary);
        else
            cJSON_AddNullToObject(ev, "boundary");
        cJSON_AddNumberToObject(ev, "request_share", share);
        cJSON_AddNumberToObject(ev, "memory_syscall_share", num(band, "memory_syscall_share"));
        cJSON_AddNumberToObject(ev, "given_back", released);
    }
}

const struct md_rule md_rule_size_class_overflow = {
    .id = "MD004",
    .name = "size-class-overflow",
    .title = "size-class overflow: a narrow band of request sizes makes the syscalls",
    .severities = MD_SEV_BIT(MD_SEV_ERROR),
    .check = check,
};
