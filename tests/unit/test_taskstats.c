// SPDX-License-Identifier: GPL-3.0-or-later
// Which exit records make up the program's process tree (lib/taskstats.c), on hand-made
// records in the orders the kernel sends them: children before parents, strace's own processes
// inside the program's first image, orphans adopted by the tool.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "lib/taskstats.h"

#define TOOL 100
#define ROOT 200

static struct md_exit_record rec(pid_t tgid, pid_t ppid, const char *comm, uint64_t rss)
{
    struct md_exit_record r = {.pid = tgid, .tgid = tgid, .ppid = ppid, .hiwater_rss_kb = rss};
    snprintf(r.comm, sizeof r.comm, "%s", comm);
    return r;
}

static struct md_exit_record thread_of(struct md_exit_record r, pid_t tid)
{
    r.pid = tid;
    return r;
}

static void tree_of_a_forking_program(void **state)
{
    (void)state;
    struct md_exit_record records[] = {
        rec(101, TOOL, "malloc-doctor", 9000), // the tool's ptrace check: not the program's
        rec(201, ROOT, "strace", 3300),        // strace's helpers in the program's first image
        rec(301, 202, "worker", 5000),         // a grandchild, before its parent is known
        rec(202, ROOT, "prog", 1500),          // a child
        rec(203, TOOL, "daemon", 7000),        // an orphan the tool adopted
        rec(204, TOOL, "strace", 8000),        // strace's detached tracer
        rec(999, 1, "bash", 50000),            // someone else on the machine
        rec(ROOT, TOOL, "prog", 1200),         // the program itself, last
        thread_of(rec(ROOT, TOOL, "prog", 1300), 205), // one of its threads: the same process
    };
    struct md_taskstats ts = {.fd = -1, .records = records, .count = 9};
    struct md_tree_usage u;
    assert_true(md_taskstats_tree(&ts, ROOT, TOOL, "malloc-doctor", &u));
    assert_int_equal(u.processes, 4); // ROOT, 202, 301, 203
    assert_int_equal(u.peak_rss_kb, 7000);
    // one member per process, from its main thread's record
    assert_int_equal(u.member_count, 4);
    pid_t sum = 0;
    for (size_t i = 0; i < u.member_count; i++)
        sum += u.members[i].tgid;
    assert_int_equal(sum, ROOT + 202 + 301 + 203);
    free(u.members);
}

static void no_record_of_the_program_means_unknown(void **state)
{
    (void)state;
    struct md_exit_record records[] = {rec(202, ROOT, "prog", 1500)};
    struct md_taskstats ts = {.fd = -1, .records = records, .count = 1};
    struct md_tree_usage u;
    assert_false(md_taskstats_tree(&ts, ROOT, TOOL, "malloc-doctor", &u));
}

static void lost_records_mean_unknown(void **state)
{
    (void)state;
    struct md_exit_record records[] = {rec(ROOT, TOOL, "prog", 1200)};
    struct md_taskstats ts = {.fd = -1, .records = records, .count = 1, .overflow = true};
    struct md_tree_usage u;
    assert_false(md_taskstats_tree(&ts, ROOT, TOOL, "malloc-doctor", &u));
    ts.overflow = false;
    assert_true(md_taskstats_tree(&ts, ROOT, TOOL, "malloc-doctor", &u));
    assert_int_equal(u.processes, 1);
    assert_int_equal(u.peak_rss_kb, 1200);
    free(u.members);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tree_of_a_forking_program),
        cmocka_unit_test(no_record_of_the_program_means_unknown),
        cmocka_unit_test(lost_records_mean_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
