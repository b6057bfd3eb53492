// SPDX-License-Identifier: GPL-3.0-or-later
// The tool's side of the probe's shared file (alloc/probe_shared.h): create it before the run,
// read it after, and convert the probe's tick durations to nanoseconds.
#ifndef MD_PROBE_FILE_H
#define MD_PROBE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc/probe_shared.h"
#include "lib/error.h"
#include "lib/sys_event.h"

// The kernel's clock discipline at one instant (adjtimex, read only): a change of the frequency
// or the tick length between two readings, or an offset being slewed in, changes
// CLOCK_MONOTONIC's rate against the tick counter.
struct md_clock_discipline {
    bool known;   // adjtimex answered
    long freq;    // ppm with 16 fraction bits
    long tick;    // microseconds per tick
    bool slewing; // an offset is being slewed in (the PLL, adjtime)
};
void md_clock_discipline_read(struct md_clock_discipline *d);
// The tick rate's relative error from the discipline at the two ends of its measurement: 10 ppm,
// plus any change of frequency or tick length, plus 500 ppm when an offset was being slewed;
// 1/1024 when either reading is unknown.
double md_clock_rate_error(const struct md_clock_discipline *a,
                           const struct md_clock_discipline *b);

struct md_probe_file {
    char path[256];
    int lock_fd; // held open and locked while path exists (lib/tempfile.h)
    // Another descriptor of the file, left open across exec for the program's processes: one
    // that switched to another user cannot open the path (MD_PROBE_FD_ENV). Not locked: a
    // process that outlives the run must not keep the next run's sweep from the file. -1: none.
    int share_fd;
    char share_env[96]; // MD_PROBE_FD=FD DEV INO, for the program's environment ("" without)
    struct md_probe_header *header; // the shared mapping
    struct md_probe_view view;      // its tables, as the tool made them
    size_t size;
    double ticks_per_ns; // measured by _arm, refined over the whole run by _finish
    // How far off ticks_per_ns may be, relative: the uncertainty of its two clock pairs over the
    // interval between them, plus what the kernel's clock discipline may have changed
    // (md_clock_rate_error); 1/1024 when a pair or the discipline could not be read
    double ticks_rate_error;
    uint64_t slow_threshold_ns;
    uint64_t open_ticks, open_monotonic_ns, open_gap; // the clock pair taken at creation
    uint64_t cal_ticks, cal_monotonic_ns, cal_gap; // the pair taken by _arm, as the program starts
    struct md_clock_discipline open_clock, cal_clock; // the kernel's discipline at those pairs
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
// False when the file lost what the probe wrote: the program can truncate or rewrite it (its path
// is in the program's environment). Call after the run, before reading the file.
bool md_probe_file_intact(const struct md_probe_file *pf);
// The KiB of the file that hold pages (its holes left out): those the probes wrote or read in
// the program's processes, whose mappings count them in their RSS, and the header the tool
// wrote. Call after the run, before the tool reads the tables (reading a hole may allocate it).
// False when the file cannot be measured.
bool md_probe_file_resident_kb(const struct md_probe_file *pf, uint64_t *kb);
// The most nanoseconds a tick duration can be, given the rate's error (ticks_rate_error): a slow
// call's start is its end minus this, so that no syscall of the call falls before it.
uint64_t md_probe_ticks_to_ns_bound(const struct md_probe_file *pf, uint64_t ticks);
// The probe's tables are sparse: pages it never wrote are holes in the file, and reading them
// through the mapping would allocate them (the live-block table alone is 100 MB). This gives the
// entries of a table (count entries of entry_size bytes at table, inside the mapping) that start
// on data, a run at a time: the first run at or after entry from, as [*first, *end). An entry
// that starts on a hole was never written (the probe writes an entry's key, its first field,
// whenever it writes the entry). A written entry's unwritten tail may lie on a hole page, which
// reading it allocates: a page at most per run. False when no entry from there on starts on
// data. Where the file system keeps no holes, one run holds them all.
bool md_probe_file_data_run(const struct md_probe_file *pf, const void *table, size_t entry_size,
                            size_t count, size_t from, size_t *first, size_t *end);
// Leaves the probe's own syscalls out of events (*count of them, compacted in place): the mmaps
// and mprotects of its library and its file in every image (alloc/probe_shared.h: own_maps).
// Returns how many it left out, or -1 when out of memory (events unchanged).
long md_probe_file_drop_own(const struct md_probe_file *pf, struct md_sys_event *events,
                            size_t *count);
// Marks in replaced[n] (n: MD_PROBE_IMAGES + 1, by image number, alloc/probe_shared.h:
// image_runs) the images that an exec replaced; their live blocks were discarded with their heap.
// Two ways tell: a later image of the same process attached (the same pid and start time: a pid
// the kernel reused starts later), or one of execs (the recorder's successful execs, in the
// tool's pid namespace: call after md_probe_file_map_ids) came from that pid after the image
// attached and before another image of that pid did. The second finds an exec into an image that
// never attaches (a static program without the static probe, a process of another user that
// cannot open the file). It cannot tell a process that got the pid of an exited probed one back
// and exec'd without ever attaching: that needs the pid to wrap around within the run. False
// when out of memory (nothing marked).
bool md_probe_file_exec_replaced(const struct md_probe_file *pf, const struct md_exec_event *execs,
                                 size_t exec_count, bool *replaced, size_t n);
// Maps the tokens that probes in another pid namespace wrote for their pids and tids (negated;
// alloc/probe_shared.h: foreign_pid_processes) to the ids of the tool's namespace, from their
// marker syscalls in events, which it leaves out (*count of them, compacted in place), and
// rewrites the file's tables with them; foreign_pid_processes keeps the processes it could not
// map. Call before md_probe_file_drop_own. Returns how many events it left out, or -1 when out
// of memory (nothing changed).
long md_probe_file_map_ids(struct md_probe_file *pf, struct md_sys_event *events, size_t *count);
// Unmaps and removes the file.
void md_probe_file_close(struct md_probe_file *pf);

#endif
