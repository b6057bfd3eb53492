// SPDX-License-Identifier: GPL-3.0-or-later
// The strace output parser on real line shapes, split calls, and garbage.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "lib/strace.h"

static void feed(struct md_strace_log *log, const char *const *lines)
{
    for (; *lines; lines++)
        assert_int_equal(md_strace_parse_line(log, *lines, strlen(*lines)), 0);
}

static void a_complete_mmap_line(void **state)
{
    (void)state;
    struct md_strace_log log = {0};
    feed(&log,
         (const char *const[]){"7514  1795322775.000080 mmap(NULL, 8192, PROT_READ|PROT_WRITE, "
                               "MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f16185e6000 <0.000024>",
                               NULL});
    assert_int_equal(log.count, 1);
    const struct md_sys_event *e = &log.event[0];
    assert_int_equal(e->tid, 7514);
    assert_int_equal(e->sys, MD_SYS_MMAP);
    assert_int_equal(e->length, 8192);
    assert_true(e->ts_ns == 1795322775000080000ull);
    assert_int_equal(e->dur_ns, 24000);
    assert_true(e->finished);
    assert_false(e->failed);
    assert_true(e->address == 0x7f16185e6000ull); // mmap's address is its result
    md_strace_log_free(&log);
}

// Everything the static probe's thread did before its marker (mapping the program) is dropped;
// the marker itself is not an event, and other threads' calls and later calls stay.
static void the_static_probes_marker_drops_its_own_calls(void **state)
{
    (void)state;
    struct md_strace_log log = {0};
    feed(&log, (const char *const[]){
                   "900 1795322775.000001 mmap(0x400000, 8192, PROT_NONE, MAP_PRIVATE|"
                   "MAP_ANONYMOUS|MAP_FIXED_NOREPLACE, -1, 0) = 0x400000 <0.000004>",
                   "900 1795322775.000002 madvise(0x7f0000000000, 102400, MADV_WIPEONFORK) = 0 "
                   "<0.000002>",
                   "901 1795322775.000003 munmap(0x7f0000001000, 4096) = 0 <0.000003>",
                   "900 1795322775.000004 madvise(0x6d6400000000, 0, MADV_NORMAL) = 0 <0.000001>",
                   "900 1795322775.000005 brk(NULL) = 0x1000000 <0.000001>", NULL});
    assert_int_equal(log.count, 2);
    assert_int_equal(log.event[0].tid, 901);
    assert_int_equal(log.event[0].sys, MD_SYS_MUNMAP);
    assert_int_equal(log.event[1].tid, 900);
    assert_int_equal(log.event[1].sys, MD_SYS_BRK);
    // a program's own zero-length madvise elsewhere is an event like any other
    feed(&log, (const char *const[]){"900 1795322775.000006 madvise(0x6d6400001000, 0, "
                                     "MADV_NORMAL) = 0 <0.000001>",
                                     NULL});
    assert_int_equal(log.count, 3);
    md_strace_log_free(&log);
}

static void split_calls_are_joined_per_thread(void **state)
{
    (void)state;
    struct md_strace_log log = {0};
    feed(&log, (const char *const[]){
                   "100 1.000001 futex(0x5555, FUTEX_WAIT_PRIVATE, 2, NULL <unfinished ...>",
                   "101 1.000002 munmap(0x7f00, 4096 <unfinished ...>",
                   "101 1.000009 <... munmap resumed>) = 0 <0.000007>",
                   "102 1.000010 futex(0x5555, FUTEX_WAKE_PRIVATE, 1) = 1 <0.000003>",
                   "100 1.000500 <... futex resumed>) = 0 <0.000499>", NULL});
    assert_int_equal(log.count, 3);
    assert_int_equal(log.pending_count, 0);
    const struct md_sys_event *munmap = &log.event[0], *wake = &log.event[1], *wait = &log.event[2];
    assert_int_equal(munmap->sys, MD_SYS_MUNMAP);
    assert_int_equal(munmap->length, 4096);
    assert_int_equal(munmap->dur_ns, 7000);
    assert_false(wake->futex_wait);
    assert_true(wait->futex_wait);
    assert_int_equal(wait->tid, 100);
    assert_int_equal(wait->dur_ns, 499000);
    md_strace_log_free(&log);
}

static void failures_kills_and_process_lines(void **state)
{
    (void)state;
    struct md_strace_log log = {0};
    feed(&log,
         (const char *const[]){
             "5 2.5 mmap(NULL, 1099511627776, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = -1 "
             "ENOMEM (Cannot allocate memory) <0.000010>",
             "5 2.6 madvise(0x7f00, 65536, MADV_DONTNEED) = ?",
             "5 2.7 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---",
             "6 2.8 +++ exited with 0 +++", "5 2.9 +++ killed by SIGKILL +++",
             "5 3.0 mremap(0x7f00, 4096, 8192, MREMAP_MAYMOVE) = 0x7f10 <0.000001>", NULL});
    assert_int_equal(log.count, 3);
    assert_true(log.event[0].failed);
    assert_true(log.event[0].length == 1099511627776ull);
    assert_int_equal(log.event[0].address, 0); // a failed mmap mapped nothing
    assert_false(log.event[1].finished);
    assert_int_equal(log.event[1].address, 0x7f00); // the others' is their first argument
    assert_int_equal(log.event[2].length, 8192);    // mremap: the new length
    assert_int_equal(log.event[2].address, 0x7f00);
    assert_int_equal(log.exits, 1);
    assert_int_equal(log.kills, 1);
    assert_int_equal(log.unparsed, 0);
    md_strace_log_free(&log);
}

static void garbage_is_counted_not_fatal(void **state)
{
    (void)state;
    struct md_strace_log log = {0};
    feed(&log, (const char *const[]){
                   "", "x", "12", "12 ", "12 abc mmap(", "99999999999999999999 1.0 brk(NULL) = 0",
                   "1 1.0 <... futex resumed>) = 0", "1 1.99999999999999999999999 brk(NULL) = 0x1",
                   "1 1.0 mmap(NULL, 99999999999999999999999, 0) = 0x1 <0.1", "1 1.0 munmap(",
                   "1 1.0 futex(", NULL});
    assert_int_equal(log.unparsed, 8); // the first eight lines
    assert_int_equal(log.lines, 11);
    assert_true(log.count <= 4);
    md_strace_log_free(&log);
}

// The largest whole second whose nanoseconds still fit in 64 bits with any fraction is
// 18446744072; one more second used to wrap the timestamp around to a few hundred milliseconds.
static void timestamps_never_wrap(void **state)
{
    (void)state;
    struct md_strace_log log = {0};
    feed(&log, (const char *const[]){"1 18446744072.999999999 brk(NULL) = 0x1",
                                     "1 18446744073.999999999 brk(NULL) = 0x1", NULL});
    assert_int_equal(log.count, 1);
    assert_true(log.event[0].ts_ns == 18446744072999999999ull);
    assert_int_equal(log.unparsed, 1);
    md_strace_log_free(&log);
}

// Successful execs are kept apart from the memory syscalls: a failed one, one its process died
// in, and one of another thread resumed under its process's id (which is the one kept).
static void execs_are_kept_apart(void **state)
{
    (void)state;
    struct md_strace_log log = {0};
    feed(&log, (const char *const[]){
                   "7 1.000001 execve(\"./env\", [\"env\", \"a = 0\"], 0x7ffd /* 9 vars */) = 0 "
                   "<0.000200>",
                   "7 1.000300 execve(\"/x\", [\"x\"], 0x7ffd /* 9 vars */) = -1 ENOENT (No such "
                   "file or directory) <0.000010>",
                   "8 1.000400 execveat(3, \"\", [\"p\"], 0x7ffd, AT_EMPTY_PATH <unfinished ...>",
                   "8 1.000401 +++ superseded by execve in pid 7 +++",
                   "7 1.000500 <... execveat resumed>) = 0 <0.000100>",
                   "9 1.000600 execve(\"/y\", [\"y\"], 0x7ffd /* 9 vars */) = ?",
                   // cut by another thread's line: " = " in an argument is no result
                   "9 1.000610123 execve(\"/nonexistent/x\", [\"x\", \"a = b\"], 0x7ffd /* 9 "
                   "vars */ <unfinished ...>",
                   "7 1.000615000 brk(NULL) = 0x1 <0.000001>",
                   "9 1.000620456 <... execve resumed>) = -1 ENOENT (No such file or directory) "
                   "<0.000010>",
                   "7 1.000700 brk(NULL) = 0x1 <0.000001>", NULL});
    assert_int_equal(log.count, 2); // the brks alone
    assert_int_equal(log.exec_count, 2);
    assert_true(log.execs[0].pid == 7 && log.execs[0].ts_ns == 1000001000u);
    assert_true(log.execs[1].pid == 7 && log.execs[1].ts_ns == 1000500000u);
    md_strace_log_free(&log);
}

// brk's argument is the break asked for (0: brk(NULL) only reads it) and its result the break
// after the call, moved or not: on a whole line and on a resumed one.
static void brk_keeps_the_break_asked_for_and_the_one_it_got(void **state)
{
    (void)state;
    struct md_strace_log log = {0};
    feed(&log, (const char *const[]){"40 1.000001 brk(NULL) = 0x55d0c2a4e000 <0.000002>",
                                     "40 1.000002 brk(0x55d0c2a6f000) = 0x55d0c2a6f000 <0.000003>",
                                     "41 1.000003 brk(0x55d0c2a4e000 <unfinished ...>",
                                     "40 1.000004 munmap(0x7f00, 4096) = 0 <0.000001>",
                                     "41 1.000005 <... brk resumed>) = 0x55d0c2a4e000 <0.000002>",
                                     // refused: the kernel returns the unchanged break
                                     "40 1.000006 brk(0x7fffffffffff) = 0x55d0c2a4e000 <0.000001>",
                                     "42 1.000007 brk(0x55d0c2a90000) = ?", NULL});
    assert_int_equal(log.count, 6);
    const struct md_sys_event *query = &log.event[0], *grow = &log.event[1];
    const struct md_sys_event *resumed = &log.event[3], *refused = &log.event[4];
    assert_true(query->address == 0 && query->brk_after == 0x55d0c2a4e000ull);
    assert_true(grow->address == 0x55d0c2a6f000ull && grow->brk_after == 0x55d0c2a6f000ull);
    assert_int_equal(resumed->tid, 41);
    assert_true(resumed->address == 0x55d0c2a4e000ull);
    assert_true(resumed->brk_after == 0x55d0c2a4e000ull && resumed->dur_ns == 2000);
    assert_true(refused->address == 0x7fffffffffffull);
    assert_true(refused->brk_after == 0x55d0c2a4e000ull && !refused->failed);
    assert_int_equal(log.event[2].sys, MD_SYS_MUNMAP);
    assert_int_equal(log.event[2].brk_after, 0); // brk's alone
    assert_false(log.event[5].finished);         // the process died inside the call: no break known
    assert_int_equal(log.event[5].brk_after, 0);
    md_strace_log_free(&log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_complete_mmap_line),
        cmocka_unit_test(the_static_probes_marker_drops_its_own_calls),
        cmocka_unit_test(split_calls_are_joined_per_thread),
        cmocka_unit_test(failures_kills_and_process_lines),
        cmocka_unit_test(garbage_is_counted_not_fatal),
        cmocka_unit_test(timestamps_never_wrap),
        cmocka_unit_test(execs_are_kept_apart),
        cmocka_unit_test(brk_keeps_the_break_asked_for_and_the_one_it_got),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
