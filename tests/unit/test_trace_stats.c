// SPDX-License-Identifier: GPL-3.0-or-later
// trace's statistics on syscall logs parsed from strace lines: which way each brk moved its
// process's break (the brk entry's shrinks and grows), with the probe's file naming each
// thread's process as it does under strace.
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "lib/trace_stats.h"

struct moves {
    double shrinks, grows;
    bool in_allocator_null;
};

// The brk entry's moves for a log parsed from lines; pids, when given, are set on the events in
// the log's order as perf's recorder would (strace knows threads only).
static struct moves moves_of(const char *const *lines, const int32_t *pids)
{
    struct md_strace_log log = {0};
    for (; *lines; lines++)
        assert_int_equal(md_strace_parse_line(&log, *lines, strlen(*lines)), 0);
    for (size_t i = 0; pids && i < log.count; i++)
        log.event[i].pid = pids[i];
    struct md_trace_input in = {.log = &log};
    cJSON *report = cJSON_CreateObject();
    struct md_error err = {0};
    assert_int_equal(md_trace_stats(&in, report, &err), 0);
    struct moves m = {-1, -1, false};
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(report, "syscalls"))
    {
        if (strcmp(cJSON_GetObjectItem(s, "name")->valuestring, "brk"))
            continue;
        m.shrinks = cJSON_GetObjectItem(s, "shrinks")->valuedouble;
        m.grows = cJSON_GetObjectItem(s, "grows")->valuedouble;
        m.in_allocator_null = cJSON_IsNull(cJSON_GetObjectItem(s, "shrinks_in_allocator"));
    }
    cJSON_Delete(report);
    md_strace_log_free(&log);
    return m;
}

// Each process's calls are compared with its own previous break, whatever the other process did
// in between; a forked child's first call has nothing to compare with; a refused call (the
// unchanged break) moves nothing.
static void each_process_moves_its_own_break(void **state)
{
    (void)state;
    struct moves m = moves_of(
        (const char *const[]){"100 1.000001 brk(NULL) = 0x1000000 <0.000001>",
                              "200 1.000002 brk(NULL) = 0x2000000 <0.000001>",
                              "100 1.000003 brk(0x1021000) = 0x1021000 <0.000001>", // up
                              "200 1.000004 brk(0x2021000) = 0x2021000 <0.000001>", // up
                              "100 1.000005 brk(0x1000000) = 0x1000000 <0.000001>", // down
                              "200 1.000006 brk(0x2042000) = 0x2042000 <0.000001>", // up
                              // 100's child, whose break was 100's at the fork: not known
                              "300 1.000007 brk(0x1042000) = 0x1042000 <0.000001>",
                              "300 1.000008 brk(0x1021000) = 0x1021000 <0.000001>", // down
                              "200 1.000009 brk(0x2000000) = 0x2000000 <0.000001>", // down
                              "100 1.000010 brk(0x7fffffff0000) = 0x1000000 <0.000001>", NULL},
        NULL);
    assert_true(m.shrinks == 3 && m.grows == 3);
    assert_true(m.in_allocator_null); // no probe: which calls were the allocator's is unknown
}

// brk(NULL) reads the break without moving it: after an exec the new image's lower break is no
// shrink. A call whose result is unknown (its process died in it) leaves no reference.
static void brk_null_only_reads_the_break(void **state)
{
    (void)state;
    struct moves m = moves_of(
        (const char *const[]){"100 1.000001 brk(NULL) = 0x5000000 <0.000001>",
                              "100 1.000002 brk(0x5021000) = 0x5021000 <0.000001>", // up
                              "100 1.000003 brk(NULL) = 0x1000000 <0.000001>",      // a new image
                              "100 1.000004 brk(0x1021000) = 0x1021000 <0.000001>", // up
                              "100 1.000005 brk(0x1000000) = ?",
                              "100 1.000006 brk(0x1042000) = 0x1042000 <0.000001>", NULL},
        NULL);
    assert_true(m.shrinks == 0 && m.grows == 2);
}

// The threads of one process change one break: the recorder's pid (perf's) ties them together;
// without it each thread is taken for a process of its own, and its first call is not known.
static void the_threads_of_a_process_share_its_break(void **state)
{
    (void)state;
    const char *const lines[] = {"400 1.000001 brk(NULL) = 0x1000000 <0.000001>",
                                 "401 1.000002 brk(0x1021000) = 0x1021000 <0.000001>",
                                 "400 1.000003 brk(0x1000000) = 0x1000000 <0.000001>", NULL};
    struct moves m = moves_of(lines, (const int32_t[]){400, 400, 400});
    assert_true(m.shrinks == 1 && m.grows == 1);
    m = moves_of(lines, NULL);
    assert_true(m.shrinks == 0 && m.grows == 0);
}

// The brk entry's figures for a log parsed from strace lines (no pids) and a probe file.
static cJSON *brk_entry(const char *const *lines, struct md_probe_file *pf, cJSON *report)
{
    struct md_strace_log log = {0};
    for (; *lines; lines++)
        assert_int_equal(md_strace_parse_line(&log, *lines, strlen(*lines)), 0);
    struct md_trace_input in = {.log = &log, .probe = pf, .ops_source = pf ? "probe" : NULL};
    struct md_error err = {0};
    assert_int_equal(md_trace_stats(&in, report, &err), 0);
    md_strace_log_free(&log);
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(report, "syscalls"))
    {
        if (!strcmp(cJSON_GetObjectItem(s, "name")->valuestring, "brk"))
            return (cJSON *)s;
    }
    fail();
    return NULL;
}

static double brk_num(const cJSON *brk, const char *key)
{
    return cJSON_GetObjectItem(brk, key)->valuedouble;
}

static void claim_slot(struct md_probe_file *pf, uint32_t i, int32_t pid, int32_t tid)
{
    struct md_probe_slot *slot = &pf->view.slots[i];
    atomic_store(&slot->claimed, 1);
    slot->pid = pid;
    slot->tid = tid;
    slot->ops[MD_OP_FREE] = 1; // a slot without calls names no thread
}

static void slow_window(struct md_probe_file *pf, int32_t tid, uint16_t op, uint64_t start_ns,
                        uint64_t end_ns, enum md_probe_slow_kind kind)
{
    uint64_t i = atomic_fetch_add(&pf->view.header->slow_used, 1);
    pf->view.slow_log[i] = (struct md_probe_slow){.start_realtime_ns = start_ns,
                                                  .end_realtime_ns = end_ns,
                                                  .tid = tid,
                                                  .op = op,
                                                  .kind = kind};
}

static void slow_call(struct md_probe_file *pf, int32_t tid, uint16_t op, uint64_t start_ns,
                      uint64_t end_ns)
{
    slow_window(pf, tid, op, start_ns, end_ns, MD_SLOW_CALL);
}

// glibc's free of a main-arena chunk from a thread other than the main one trims the heap with
// brk (systrim): a second thread moves the main thread's break. strace names threads only; the
// probe's slots (one per thread, with its process) tie them to one break, so the second
// thread's call is a shrink and the main thread's next one a grow, each inside its allocator
// call. Without the probe they are two processes: neither is known.
static void a_thread_moves_its_process_break_under_strace(void **state)
{
    (void)state;
    const char *const lines[] = {"500 1.000001 brk(NULL) = 0x1000000 <0.000001>",
                                 "500 1.000002 brk(0x1042000) = 0x1042000 <0.000001>", // up
                                 "501 1.000004 brk(0x1021000) = 0x1021000 <0.000001>", // down
                                 "500 1.000006 brk(0x1042000) = 0x1042000 <0.000001>", // up
                                 NULL};
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, 0, &err), 0);
    claim_slot(&pf, 1, 500, 500);
    claim_slot(&pf, 2, 500, 501);
    slow_call(&pf, 501, MD_OP_FREE, 1000003000, 1000005000);   // the trim
    slow_call(&pf, 500, MD_OP_MALLOC, 1000005500, 1000007000); // grows the heap again
    cJSON *report = cJSON_CreateObject();
    const cJSON *brk = brk_entry(lines, &pf, report);
    assert_true(brk_num(brk, "shrinks") == 1 && brk_num(brk, "grows") == 2);
    assert_true(brk_num(brk, "shrinks_in_allocator") == 1 &&
                brk_num(brk, "grows_in_allocator") == 1);
    cJSON_Delete(report);
    md_probe_file_close(&pf);

    report = cJSON_CreateObject();
    brk = brk_entry(lines, NULL, report);
    // 501's call has no earlier break of "its process"; 500's last one finds its own unchanged
    assert_true(brk_num(brk, "shrinks") == 0 && brk_num(brk, "grows") == 1);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(brk, "grows_in_allocator")));
    cJSON_Delete(report);
}

static double attribution_num(const cJSON *report, const char *key)
{
    return cJSON_GetObjectItem(cJSON_GetObjectItem(report, "attribution"), key)->valuedouble;
}

// A window the probe logged after a call in tail mode (alloc/probe.c) may hold the program's own
// syscalls after the call: its syscalls are counted apart, among those outside, and never tied
// to the call, its op or its size; a slow call's window next to it still is.
static void a_window_after_return_ties_nothing(void **state)
{
    (void)state;
    const char *const lines[] = {
        "500 1.000002 mmap(NULL, 1052672, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, "
        "0) = 0x7f0000000000 <0.000001>",
        "500 1.000005 munmap(0x7f0000000000, 1052672) = 0 <0.000001>",
        "500 1.000008 madvise(0x7f0000000000, 4096, MADV_DONTNEED) = 0 <0.000001>", NULL};
    struct md_probe_file pf;
    struct md_error err;
    assert_int_equal(md_probe_file_create(&pf, 1000, 0, &err), 0);
    claim_slot(&pf, 1, 500, 500);
    slow_call(&pf, 500, MD_OP_MALLOC, 1000001000, 1000003000);
    slow_window(&pf, 500, MD_OP_MALLOC, 1000004000, 1000006000, MD_SLOW_AFTER_RETURN);
    cJSON *report = cJSON_CreateObject();
    brk_entry(lines, &pf, report);
    assert_true(attribution_num(report, "events_in_allocator") == 1);
    assert_true(attribution_num(report, "events_outside") == 2);
    assert_true(attribution_num(report, "events_after_return") == 1);
    const cJSON *sys;
    cJSON_ArrayForEach(sys, cJSON_GetObjectItem(report, "syscalls"))
    {
        const char *name = cJSON_GetObjectItem(sys, "name")->valuestring;
        double inside = cJSON_GetObjectItem(sys, "in_allocator")->valuedouble;
        assert_true(inside == (strcmp(name, "mmap") ? 0 : 1));
    }
    cJSON_Delete(report);
    md_probe_file_close(&pf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_process_moves_its_own_break),
        cmocka_unit_test(brk_null_only_reads_the_break),
        cmocka_unit_test(the_threads_of_a_process_share_its_break),
        cmocka_unit_test(a_thread_moves_its_process_break_under_strace),
        cmocka_unit_test(a_window_after_return_ties_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
