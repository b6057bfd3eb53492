// SPDX-License-Identifier: GPL-3.0-or-later
// The tool's side of the probe file: reading its sparse tables without allocating their holes;
// the probe's end stamp of a slow call, which the tool joins with the syscalls.
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/probe_file.h"

static uint64_t allocated_bytes(const struct md_probe_file *pf)
{
    struct stat st;
    assert_int_equal(fstat(pf->lock_fd, &st), 0);
    return (uint64_t)st.st_blocks * 512;
}

// Entries written by hand far apart in the 4M-entry live table: the runs visit them and little
// else, and visiting reads no hole into the file.
static void runs_cover_written_entries_only(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, MD_PROBE_WANT_LEAKS, &err), 0);
    struct md_probe_live *live = pf.view.live;
    uint64_t n = pf.header->live_max;
    const uint64_t written[] = {0, 1000, 1000000, n - 1};
    for (size_t k = 0; k < sizeof written / sizeof written[0]; k++)
        live[written[k]].address = 0x1000 + k;
    uint64_t before = allocated_bytes(&pf);

    size_t first, end, visited = 0, found = 0;
    for (size_t from = 0; md_probe_file_data_run(&pf, live, sizeof *live, n, from, &first, &end);
         from = end) {
        assert_true(first >= from && end > first && end <= n);
        visited += end - first;
        for (size_t i = first; i < end; i++)
            found += live[i].address != 0;
    }
    assert_int_equal(found, 4);
    // each written entry's page and the entries that straddle its edges (4 KiB pages here; even
    // 2 MiB pages would stay under an eighth of the table)
    assert_true(visited >= 4 && visited < n / 8);
    assert_int_equal(allocated_bytes(&pf), before);

    // a start inside a run gives the rest of it; the next run holds the last entry; then none
    assert_true(md_probe_file_data_run(&pf, live, sizeof *live, n, 1000000, &first, &end));
    assert_int_equal(first, 1000000);
    size_t after = end;
    assert_true(md_probe_file_data_run(&pf, live, sizeof *live, n, after, &first, &end));
    assert_true(first > after && end == n);
    assert_false(md_probe_file_data_run(&pf, live, sizeof *live, n, n, &first, &end));
    md_probe_file_close(&pf);
}

// What the probe wrote is what the file holds: a page per entry written far apart (the pages
// count in the program's RSS), not the 100 MB the live-block table spans.
static void the_resident_size_is_the_pages_written(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, MD_PROBE_WANT_LEAKS, &err), 0);
    uint64_t before, after;
    assert_true(md_probe_file_resident_kb(&pf, &before));
    assert_true(before < 1024 && before * 1024 == allocated_bytes(&pf));
    struct md_probe_live *live = pf.view.live;
    for (uint64_t i = 0; i < 8; i++)
        live[i * (pf.header->live_max / 8)].address = 0x1000 + i;
    assert_true(md_probe_file_resident_kb(&pf, &after));
    assert_true(after - before >= 8 * 4 && after - before <= 8 * 2048); // 4 KiB or 2 MiB pages
    md_probe_file_close(&pf);
}

// A stack entry (96 bytes) whose key is on a written page and whose tail crosses into a hole is
// in the run that ends at that hole.
// The program can truncate its probe file (MD_PROBE_FILE): a shortened file, or one grown back to
// its size with its header gone, has lost what the probe wrote.
static void a_truncated_file_is_not_intact(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, 0, &err), 0);
    assert_true(md_probe_file_intact(&pf));
    assert_int_equal(truncate(pf.path, 0), 0);
    assert_false(md_probe_file_intact(&pf)); // and no fault: the header was not read
    assert_int_equal(truncate(pf.path, (off_t)pf.size), 0);
    assert_false(md_probe_file_intact(&pf));
    md_probe_file_close(&pf);
}

// The program can also rewrite the header's counts in place: a probe that attached after would
// find its tables elsewhere, so the file is not intact; and the tool reads through its own copy.
static void a_rewritten_geometry_is_not_intact(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, MD_PROBE_WANT_LEAKS, &err), 0);
    struct md_probe_view before = pf.view;
    pf.header->slot_count = 0x7fffffff;
    assert_false(md_probe_file_intact(&pf));
    assert_ptr_equal(pf.view.live, before.live);
    assert_int_equal(pf.view.slot_count, MD_PROBE_SLOTS);
    pf.header->slot_count = MD_PROBE_SLOTS;
    assert_true(md_probe_file_intact(&pf));
    pf.header->live_max = 0;
    assert_false(md_probe_file_intact(&pf));
    md_probe_file_close(&pf);
}

// What a probe accepts when it attaches: the tool's own geometry, and nothing that would put a
// table outside the mapping or break a hash mask.
static void a_probe_reads_only_a_geometry_that_fits(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, MD_PROBE_WANT_LEAKS, &err), 0);
    struct md_probe_header *h = pf.header;
    struct md_probe_view v;
    assert_true(md_probe_view_init(&v, h, pf.size));
    assert_int_equal(md_probe_view_flags(&v), MD_PROBE_WANT_LEAKS);
    assert_false(md_probe_view_init(&v, h, pf.size - 1)); // the mapping is a byte short
    struct {
        uint32_t *field32;
        uint64_t *field64;
        uint64_t bad;
    } rewrites[] = {
        {&h->slot_count, NULL, 0},                      // no overflow slot
        {&h->slot_count, NULL, MD_PROBE_SLOTS + 1},     // above the maximum
        {&h->stack_max, NULL, MD_PROBE_STACKS / 2 + 1}, // no power of two
        {NULL, &h->live_max, 3},
        {NULL, &h->slow_max, UINT64_MAX}, // the sum would wrap
    };
    for (size_t i = 0; i < sizeof rewrites / sizeof rewrites[0]; i++) {
        struct md_probe_header saved = *h;
        if (rewrites[i].field32)
            *rewrites[i].field32 = (uint32_t)rewrites[i].bad;
        else
            *rewrites[i].field64 = rewrites[i].bad;
        assert_false(md_probe_view_init(&v, h, SIZE_MAX));
        *h = saved;
    }
    // fewer tables than the flags ask for: the flags that have none are dropped
    h->live_max = 0;
    assert_true(md_probe_view_init(&v, h, pf.size));
    assert_int_equal(md_probe_view_flags(&v), 0); // leaks without a live table: nothing
    h->flags = MD_PROBE_WANT_STACKS | MD_PROBE_WANT_LEAKS;
    assert_int_equal(md_probe_view_flags(&v), MD_PROBE_WANT_STACKS);
    md_probe_file_close(&pf);
}

static void an_entry_across_a_page_edge_is_found(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, MD_PROBE_WANT_STACKS, &err), 0);
    struct md_probe_stack *table = pf.view.stacks;
    size_t base = (size_t)((char *)table - (char *)pf.header), i = 1000;
    while (i < 1200 && ((base + i * sizeof *table) % 4096 + sizeof *table <= 4096 ||
                        (base + i * sizeof *table) % 4096 + 8 > 4096))
        i++;
    assert_true(i < 1200);
    table[i].hash = 12345; // the key alone, on the page before the edge

    size_t first, end, found = 0;
    for (size_t from = 0; md_probe_file_data_run(&pf, table, sizeof *table, pf.header->stack_max,
                                                 from, &first, &end);
         from = end)
        for (size_t k = first; k < end; k++)
            found += table[k].hash == 12345;
    assert_int_equal(found, 1);
    md_probe_file_close(&pf);
}

// --- a slow call's end stamp (alloc/probe_shared.h) ---

// A clock that stalls right after its reading, for stall_us[k] microseconds on its k-th call
// (counted from 0): the stall falls between the clock read and the tick read after it, as an
// interrupt there would.
static struct stalling_clock_state {
    int calls;
    uint64_t stall_us[8];
    uint64_t readings[8];
} stalling;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t stalling_clock(void)
{
    uint64_t reading = now_ns();
    int call = stalling.calls++;
    if (call < 8) {
        stalling.readings[call] = reading;
        while (now_ns() - reading < stalling.stall_us[call] * 1000)
            ;
    }
    return reading;
}

// The tick counts of 20 us, measured against the clock over 20 ms.
static uint64_t ticks_of_20us(void)
{
    uint64_t t0 = md_probe_ticks(), n0 = now_ns();
    while (now_ns() - n0 < 20000000)
        ;
    return (md_probe_ticks() - t0) / 1000;
}

static void a_stalled_clock_reading_is_not_the_end_stamp(void **state)
{
    (void)state;
    uint64_t max_gap = ticks_of_20us(), duration = 0;
    // the first reading is stalled: it would put the window's end 200 us late; the second is used
    stalling = (struct stalling_clock_state){.stall_us = {200}};
    uint64_t t0 = md_probe_ticks();
    uint64_t end = md_probe_stamp_end(stalling_clock, t0, md_probe_ticks(), max_gap, &duration);
    assert_int_equal(stalling.calls, 2);
    assert_int_equal(end, stalling.readings[1]);
    // the duration reaches past the stall: the window's start is not later than t0's time
    assert_true(duration > 5 * max_gap);

    // stalled every time: 4 reads, and the least stalled one is kept
    stalling = (struct stalling_clock_state){.stall_us = {300, 200, 100, 250, 300}};
    end = md_probe_stamp_end(stalling_clock, t0, md_probe_ticks(), max_gap, &duration);
    assert_int_equal(stalling.calls, 4);
    assert_int_equal(end, stalling.readings[2]);

    // no stall: one reading
    stalling = (struct stalling_clock_state){0};
    end = md_probe_stamp_end(stalling_clock, t0, md_probe_ticks(), max_gap, &duration);
    assert_int_equal(stalling.calls, 1);
    assert_int_equal(end, stalling.readings[0]);
}

// The probe's own mappings leave the events: its thread's mmaps and mprotects inside them, up to
// when it noted them; other threads', much earlier or later ones, brk, and calls elsewhere stay.
static void the_probes_own_mappings_leave_the_events(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, 0, &err), 0);
    const uint64_t noted = 5000000000u, lib = 0x7f0000000000u, file = 0x7e0000000000u;
    md_probe_note_own_map(pf.header, 42, lib, lib + 0x48000, noted);
    md_probe_note_own_map(pf.header, 43, file, file + 0x4000000, noted);
    md_probe_note_own_map(pf.header, 7, 0x1000, 0x2000, noted); // another process's
    struct md_sys_event ev[] = {
        {.tid = 42, .sys = MD_SYS_MMAP, .ts_ns = noted - 900, .address = lib},               // own
        {.tid = 42, .sys = MD_SYS_MPROTECT, .ts_ns = noted - 800, .address = lib + 0x44000}, // own
        {.tid = 42, .sys = MD_SYS_MMAP, .ts_ns = noted - 700, .address = lib + 0x48000}, // past it
        {.tid = 41, .sys = MD_SYS_MMAP, .ts_ns = noted - 600, .address = lib},  // another thread
        {.tid = 43, .sys = MD_SYS_MMAP, .ts_ns = noted - 500, .address = file}, // own
        {.tid = 43, .sys = MD_SYS_BRK, .ts_ns = noted - 400, .address = 0},
        {.tid = 42, .sys = MD_SYS_MUNMAP, .ts_ns = noted + 2000000000u, .address = lib}, // later
        // long before: the image the thread ran before an exec, which mapped the same range
        {.tid = 42, .sys = MD_SYS_MMAP, .ts_ns = noted - 20000000000u, .address = lib + 0x1000},
    };
    size_t count = sizeof ev / sizeof ev[0];
    assert_int_equal(md_probe_file_drop_own(&pf, ev, &count), 3);
    assert_int_equal(count, 5);
    assert_true(ev[0].address == lib + 0x48000 && ev[1].tid == 41);
    assert_true(ev[2].sys == MD_SYS_BRK && ev[3].sys == MD_SYS_MUNMAP);
    assert_true(ev[4].address == lib + 0x1000);
    md_probe_file_close(&pf);
}

// An image replaced by an exec (same pid, same start time, a later number) is told apart from a
// process that got a pid back after another one exited (a later start), whose blocks are leaks.
static void an_exec_replaces_an_image_and_a_reused_pid_does_not(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, MD_PROBE_WANT_LEAKS, &err), 0);
    struct md_probe_header *h = pf.header;
    assert_int_equal(md_probe_take_image(h, 100, 5000, 10000), 1); // env
    assert_int_equal(md_probe_take_image(h, 101, 5001, 11000), 2); // a child of env's
    assert_int_equal(md_probe_take_image(h, 100, 5000, 12000), 3); // env exec'd the program
    assert_int_equal(md_probe_take_image(h, 101, 7000, 13000), 4); // 101 again: another process
    assert_int_equal(md_probe_take_image(h, 102, 0, 14000), 5);    // start unknown (static probe)
    assert_int_equal(md_probe_take_image(h, 102, 0, 15000), 6);
    bool replaced[MD_PROBE_IMAGES + 1];
    assert_true(md_probe_file_exec_replaced(&pf, NULL, 0, replaced, MD_PROBE_IMAGES + 1));
    assert_true(replaced[1]);
    for (int i = 2; i <= 6; i++)
        assert_false(replaced[i]);
    md_probe_file_close(&pf);
}

// An exec into an image that never attaches (a static program, another user's) is known only
// from the recorder: it replaces the image of its pid that attached last before it, never one
// that attached after it (the exec's own), nor one before another image of that pid.
static void a_recorded_exec_replaces_the_image_it_followed(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, MD_PROBE_WANT_LEAKS, &err), 0);
    struct md_probe_header *h = pf.header;
    assert_int_equal(md_probe_take_image(h, 100, 5000, 10000000), 1); // env
    assert_int_equal(md_probe_take_image(h, 101, 5001, 11000000), 2); // exits: leaks
    assert_int_equal(md_probe_take_image(h, 101, 9000, 13000000), 3); // 101 again, then execs
    assert_int_equal(md_probe_take_image(h, 102, 0, 14000000), 4);    // static probe, execs
    assert_int_equal(md_probe_take_image(h, 103, 6000, 15000000), 5); // exec'd into: attached later
    assert_int_equal(md_probe_take_image(h, 104, 6001, 0), 6);        // attach time unknown
    const struct md_exec_event execs[] = {
        {.pid = 100, .ts_ns = 10000500}, // env exec'd a static program
        {.pid = 101, .ts_ns = 13500000},
        {.pid = 102, .ts_ns = 14000001}, // a nanosecond after the attach
        {.pid = 103, .ts_ns = 14999999}, // just before image 5's attach: not it
        {.pid = 103, .ts_ns = 14999000}, // the exec that started image 5
        {.pid = 104, .ts_ns = 16000000},
        {.pid = 105, .ts_ns = 16000000}, // no image of that pid
    };
    bool replaced[MD_PROBE_IMAGES + 1];
    assert_true(md_probe_file_exec_replaced(&pf, execs, sizeof execs / sizeof execs[0], replaced,
                                            MD_PROBE_IMAGES + 1));
    bool want[] = {false, true, false, true, true, false, false};
    for (int i = 1; i <= 6; i++)
        assert_int_equal(replaced[i], want[i]);
    md_probe_file_close(&pf);
}

// The tool names its pid namespace for the probe, and leaves a descriptor of the file open
// across exec whose number, device and inode it passes in the environment.
static void the_file_names_the_tools_namespace_and_a_shared_descriptor(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, 0, &err), 0);
    struct stat ns, file;
    assert_int_equal(stat("/proc/self/ns/pid", &ns), 0);
    assert_true(pf.header->tool_pidns_ino == (uint64_t)ns.st_ino);
    assert_int_equal(pf.header->tool_pid, getpid());
    assert_true(pf.share_fd >= 3);
    assert_int_equal(fcntl(pf.share_fd, F_GETFD) & FD_CLOEXEC, 0);
    assert_int_equal(fstat(pf.share_fd, &file), 0);
    char want[96];
    snprintf(want, sizeof want, "%s=%d %llu %llu", MD_PROBE_FD_ENV, pf.share_fd,
             (unsigned long long)file.st_dev, (unsigned long long)file.st_ino);
    assert_string_equal(pf.share_env, want);
    md_probe_file_close(&pf);
}

// Tokens written by probes in another pid namespace become the ids their marker syscalls were
// recorded under; the markers leave the events; a process whose marker was not seen stays in
// another namespace (counted), and the image table finds mapped pids by their new hash.
static void announced_tokens_become_the_tools_ids(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, 0, &err), 0);
    struct md_probe_header *h = pf.header;
    atomic_store(&h->id_tokens, 3); // 1: a process's main thread, 2: its second thread, 3: lost
    atomic_store(&h->foreign_pid_processes, 2);
    struct md_probe_slot *slots = pf.view.slots;
    atomic_store(&slots[1].claimed, 1);
    slots[1].pid = -1;
    slots[1].tid = -1;
    atomic_store(&slots[2].claimed, 1);
    slots[2].pid = -1;
    slots[2].tid = -2;
    atomic_store(&slots[3].claimed, 1);
    slots[3].pid = -3;
    slots[3].tid = -3;
    char inner[MD_PROBE_COMM] = "inner", lost[MD_PROBE_COMM] = "lost";
    md_probe_note_image(h, -1, inner);
    md_probe_note_image(h, -3, lost);
    assert_int_equal(md_probe_take_image(h, -1, 50, 1), 1);
    assert_int_equal(md_probe_take_image(h, -3, 60, 2), 2);
    struct md_sys_event ev[] = {
        {.tid = 8352, .sys = MD_SYS_MADVISE, .address = md_probe_id_mark(1)},
        {.tid = 8352, .sys = MD_SYS_MMAP, .address = 0x7f0000000000, .length = 4096},
        {.tid = 8360, .sys = MD_SYS_MADVISE, .address = md_probe_id_mark(2)},
        {.tid = 8360, .sys = MD_SYS_MADVISE, .address = md_probe_id_mark(2), .length = 4096},
    };
    size_t count = sizeof ev / sizeof ev[0];
    assert_int_equal(md_probe_file_map_ids(&pf, ev, &count), 2);
    assert_int_equal(count, 2); // the program's mmap, and a madvise with a length: not a marker
    assert_true(ev[0].sys == MD_SYS_MMAP && ev[1].length == 4096);
    assert_true(slots[1].pid == 8352 && slots[1].tid == 8352);
    assert_true(slots[2].pid == 8352 && slots[2].tid == 8360);
    assert_true(slots[3].pid == -3 && slots[3].tid == -3);
    assert_true(md_probe_image_noted(h, 8352, "inner"));
    assert_true(md_probe_image_noted(h, -3, "lost"));
    assert_int_equal(h->image_runs[0].pid, 8352);
    assert_int_equal(atomic_load(&h->foreign_pid_processes), 1);
    md_probe_file_close(&pf);
}

static uint64_t monotonic_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

// A tick-timed slow call starts at its end minus its duration's upper bound. A call preempted for
// a time slice (4 ms) must not reach microseconds before its real start, where the program's own
// syscalls just before it lie (1/1024 of the duration did: 4 us), nor fall short of it.
static void a_tick_durations_bound_is_tight(void **state)
{
    (void)state;
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, 0, &err), 0);
    md_probe_file_arm(&pf);
    assert_true(pf.ticks_rate_error > 0 && pf.ticks_rate_error < 1e-3); // over 2 ms
    struct timespec pause = {0, 50000000};
    nanosleep(&pause, NULL);
    md_probe_file_finish(&pf);
    // 10 ppm of drift and the pairs over 50 ms, unless the kernel is slewing the clock
    assert_true(pf.ticks_rate_error < 2e-5 || pf.open_clock.slewing || pf.cal_clock.slewing);
    // The clock's reads bracket the ticks' closely unless the loop was preempted between them:
    // one of 5 tries must agree within 1 us either way (the bound was 4 us over before)
    bool agreed = false;
    for (int try = 0; try < 5 && !agreed; try++) {
        uint64_t t0 = md_probe_ticks(), m0 = monotonic_now();
        while (monotonic_now() - m0 < 4000000)
            ;
        uint64_t t1 = md_probe_ticks(), m1 = monotonic_now();
        uint64_t bound = md_probe_ticks_to_ns_bound(&pf, t1 - t0), measured = m1 - m0;
        // the bound may exceed the duration by its own error bound (10 ppm on a steady clock,
        // 500 ppm more while the kernel slews an offset in), never by 1/1024 of it
        double over = 1000 + (double)measured * pf.ticks_rate_error;
        agreed = bound + 1000 >= measured && (double)bound <= (double)measured + over;
    }
    assert_true(agreed);
    md_probe_file_close(&pf);
}

// The tick rate's error bound follows the kernel's clock discipline: a steady clock gives the 10
// ppm floor; a frequency or tick change between the readings, or an offset being slewed in, widens
// it by that much (a chrony slew through the tick length: 1%); an unknown discipline gives the old
// guess of 1/1024.
static void the_rate_error_follows_the_clock_discipline(void **state)
{
    (void)state;
    struct md_clock_discipline now;
    md_clock_discipline_read(&now);
    assert_true(now.known); // read only: no privilege needed
    const struct md_clock_discipline steady = {.known = true, .freq = 12 << 16, .tick = 10000};
    struct md_clock_discipline b = steady;
    assert_true(fabs(md_clock_rate_error(&steady, &b) - 1e-5) < 1e-12);
    b.freq += 100 << 16; // 100 ppm more
    assert_true(fabs(md_clock_rate_error(&steady, &b) - 1.1e-4) < 1e-12);
    b = steady;
    b.tick = 10100;
    assert_true(fabs(md_clock_rate_error(&steady, &b) - (1e-5 + 0.01)) < 1e-12);
    b = steady;
    b.slewing = true;
    assert_true(fabs(md_clock_rate_error(&steady, &b) - 5.1e-4) < 1e-12);
    b = steady;
    b.known = false;
    assert_true(fabs(md_clock_rate_error(&steady, &b) - 1.0 / 1024) < 1e-12);
}

// malloc's count and the bytes are not kept per call: they come back from the histogram exactly,
// whatever the mix of calls and sizes (both sides of MD_HIST_EXACT, the overflow slot's atomics).
static void a_slots_totals_are_the_calls_made(void **state)
{
    (void)state;
    static struct md_probe_slot own, shared;
    const struct {
        enum md_probe_op op;
        uint64_t size, times;
    } calls[] = {
        {MD_OP_MALLOC, 0, 3},
        {MD_OP_MALLOC, 24, 5},
        {MD_OP_MALLOC, MD_HIST_EXACT - 1, 2},
        {MD_OP_MALLOC, MD_HIST_EXACT, 1},
        {MD_OP_MALLOC, 1u << 30, 4},
        {MD_OP_CALLOC, 24, 7},
        {MD_OP_REALLOC, 100000, 2},
        {MD_OP_REALLOC, 0, 1},
        {MD_OP_ALIGNED, 64, 6},
        {MD_OP_FREE, 4000, 9},
    };
    uint64_t ops[MD_OP_COUNT] = {0}, bytes = 0;
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        for (uint64_t k = 0; k < calls[i].times; k++) {
            md_probe_count(&own, calls[i].op, calls[i].size);
            md_probe_count_atomic(&shared, calls[i].op, calls[i].size);
            ops[calls[i].op]++;
            bytes += calls[i].op == MD_OP_FREE ? 0 : calls[i].size;
        }
    const struct md_probe_slot *slots[] = {&own, &shared};
    for (size_t i = 0; i < 2; i++) {
        uint64_t got[MD_OP_COUNT], got_bytes;
        md_probe_slot_totals(slots[i], got, &got_bytes);
        for (int op = 0; op < MD_OP_COUNT; op++)
            assert_int_equal(got[op], ops[op]);
        assert_int_equal(got_bytes, bytes);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(runs_cover_written_entries_only),
        cmocka_unit_test(the_resident_size_is_the_pages_written),
        cmocka_unit_test(a_truncated_file_is_not_intact),
        cmocka_unit_test(a_rewritten_geometry_is_not_intact),
        cmocka_unit_test(a_probe_reads_only_a_geometry_that_fits),
        cmocka_unit_test(an_entry_across_a_page_edge_is_found),
        cmocka_unit_test(a_stalled_clock_reading_is_not_the_end_stamp),
        cmocka_unit_test(the_probes_own_mappings_leave_the_events),
        cmocka_unit_test(an_exec_replaces_an_image_and_a_reused_pid_does_not),
        cmocka_unit_test(a_recorded_exec_replaces_the_image_it_followed),
        cmocka_unit_test(the_file_names_the_tools_namespace_and_a_shared_descriptor),
        cmocka_unit_test(announced_tokens_become_the_tools_ids),
        cmocka_unit_test(a_slots_totals_are_the_calls_made),
        cmocka_unit_test(a_tick_durations_bound_is_tight),
        cmocka_unit_test(the_rate_error_follows_the_clock_discipline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
