// SPDX-License-Identifier: GPL-3.0-or-later
// --stacks and --leaks: the probe's call stacks, symbolized with the ELF symbol tables of the
// objects each process had loaded, merged by function names, and ranked.
#ifndef MD_TRACE_STACKS_H
#define MD_TRACE_STACKS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <cJSON.h>

#include "lib/probe_file.h"

struct md_stack_options {
    bool stacks, leaks;
    uint64_t leak_min_bytes; // leak groups smaller than this are counted but not listed
    FILE *folded;            // write allocation stacks in flame-graph "folded" form here
    // futex waits inside allocator calls, per stack id (index + 1), from the join; may be NULL
    const uint64_t *futex_waits, *futex_ns;
    // CLOCK_REALTIME when the program started: a file changed since may not be what it loaded
    uint64_t run_start_ns;
    // the recorder's successful execs: blocks of an image one replaced are not leaks
    const struct md_exec_event *execs;
    size_t exec_count;
};

// Adds "stacks" and "futex_stacks" (with stacks), and "leaks" (with leaks) to report.
int md_trace_stacks(struct md_probe_file *pf, const struct md_stack_options *opt, cJSON *report,
                    struct md_error *err);

#endif
