// SPDX-License-Identifier: GPL-3.0-or-later
// The tool's side of the probe's shared file (alloc/probe_shared.h): create it before the run,
// read it after, and convert the probe's tick durations to nanoseconds.
#ifndef MD_PROBE_FILE_H
#define MD_PROBE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "alloc/probe_shared.h"
#include "lib/error.h"

struct md_probe_file {
    char path[256];
    int lock_fd;                    // held open and locked while path exists (lib/tempfile.h)
    struct md_probe_header *header; // the shared mapping
    size_t size;
    double ticks_per_ns; // measured by _arm, refined over the whole run by _finish
    uint64_t slow_threshold_ns;
    uint64_t open_ticks, open_monotonic_ns; // the clock pair taken at creation
    uint64_t cal_monotonic_ns;              // monotonic time of header->cal_tsc (from _arm)
};

// Creates and maps the file (in /dev/shm when possible); slow calls are those longer than
// slow_threshold_ns; flags (md_probe_flags) ask for call stacks and live blocks.
int md_probe_file_create(struct md_probe_file *pf, uint64_t slow_threshold_ns, uint32_t flags,
                         struct md_error *err);
// Sets the slow-call threshold in ticks and makes the file valid for the probe; call right before
// the program starts (it waits until the tick rate has been measured over 2 ms since creation).
void md_probe_file_arm(struct md_probe_file *pf);
// Takes the closing clock pair; call after the program has exited.
void md_probe_file_finish(struct md_probe_file *pf);
// Nanoseconds of a tick duration.
uint64_t md_probe_ticks_to_ns(const struct md_probe_file *pf, uint64_t ticks);
// Unmaps and removes the file.
void md_probe_file_close(struct md_probe_file *pf);

uint64_t md_realtime_ns(void);

#endif
