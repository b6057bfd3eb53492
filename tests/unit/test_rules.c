// SPDX-License-Identifier: GPL-3.0-or-later
// Rules read only the report model: each is checked on hand-made entries, for when it must fire
// and when it must stay silent.
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rules/rules.h"

static cJSON *entry(const char *json)
{
    cJSON *e = cJSON_Parse(json);
    assert_non_null(e);
    return e;
}

// Runs every rule on an inspect entry (as_trace false) or a trace report; returns the ids fired,
// space-separated.
static const char *run_rules(const char *json, const char *expect, bool as_trace)
{
    static char ids[128];
    cJSON *e = entry(json), *findings = cJSON_CreateArray(), *f;
    struct md_rule_input in = {
        .file = as_trace ? NULL : e, .expect = expect, .trace = as_trace ? e : NULL};
    md_rules_run(&in, findings);
    ids[0] = 0;
    cJSON_ArrayForEach(f, findings)
    {
        strcat(ids, ids[0] ? " " : "");
        strcat(ids, cJSON_GetObjectItem(f, "id")->valuestring);
    }
    cJSON_Delete(e);
    cJSON_Delete(findings);
    return ids;
}

static const char *fired(const char *json, const char *expect)
{
    return run_rules(json, expect, false);
}

static const char *fired_on_trace(const char *json)
{
    return run_rules(json, NULL, true);
}

// Runs every rule on an inspect entry and/or a trace report (either may be NULL) with trace's
// --leak-min; returns "ID/severity" of each finding, space-separated.
static const char *run_input(const char *file_json, const char *trace_json, uint64_t leak_min)
{
    static char out[256];
    cJSON *file = file_json ? entry(file_json) : NULL;
    cJSON *trace = trace_json ? entry(trace_json) : NULL;
    cJSON *findings = cJSON_CreateArray(), *f;
    struct md_rule_input in = {.file = file, .trace = trace, .leak_min_bytes = leak_min};
    md_rules_run(&in, findings);
    out[0] = 0;
    cJSON_ArrayForEach(f, findings)
    {
        strcat(out, out[0] ? " " : "");
        strcat(out, cJSON_GetObjectItem(f, "id")->valuestring);
        strcat(out, "/");
        strcat(out, cJSON_GetObjectItem(f, "severity")->valuestring);
    }
    cJSON_Delete(file);
    cJSON_Delete(trace);
    cJSON_Delete(findings);
    return out;
}

static char trace_json[2048];

// A trace report of a dynamic glibc program in preload mode with attribution; the arguments are
// JSON members spliced in (ops, syscalls, futex, cpu, run, leaks, ...).
static const char *trace_of(const char *members)
{
    snprintf(trace_json, sizeof trace_json,
             "{\"mode\":\"preload\",\"attribution\":{\"available\":true},"
             "\"target\":{\"argv\":[\"prog\"],\"kind\":\"dynamic\",\"libc\":\"glibc\","
             "\"active\":{\"id\":\"glibc-ptmalloc\",\"family\":\"glibc\"}},%s}",
             members);
    return trace_json;
}

static const char *on_trace(const char *members)
{
    return run_input(NULL, trace_of(members), 0);
}

#define MUSL_ACTIVE                                                                                \
    "\"active\":{\"id\":\"musl-mallocng\",\"family\":\"musl\",\"name\":\"musl mallocng\"}"

static void md001_needs_musl_and_threads(void **state)
{
    (void)state;
    assert_string_equal(fired("{\"kind\":\"static\",\"threads\":\"yes\",\"threads_evidence\":"
                              "\"pthread_create\"," MUSL_ACTIVE "}",
                              NULL),
                        "MD001");
    assert_string_equal(fired("{\"kind\":\"static\",\"threads\":\"no\"," MUSL_ACTIVE "}", NULL),
                        "");
    assert_string_equal(fired("{\"kind\":\"static\",\"threads\":\"yes\",\"active\":{\"id\":"
                              "\"mdalloc\",\"family\":\"mdalloc\",\"name\":\"mdalloc\"}}",
                              NULL),
                        "");
}

static void md002_third_party_allocator_not_active(void **state)
{
    (void)state;
    const char *with_mimalloc = "{\"kind\":\"static\",\"threads\":\"no\"," MUSL_ACTIVE
                                ",\"allocators\":[{\"id\":\"mimalloc\",\"family\":\"mimalloc\","
                                "\"name\":\"mimalloc\"},{\"id\":\"musl-lite\",\"family\":\"musl\","
                                "\"name\":\"musl lite_malloc\"}]}";
    assert_string_equal(fired(with_mimalloc, NULL), "MD002");
    // glibc's own allocator beside jemalloc is normal, and an active mimalloc is fine
    assert_string_equal(
        fired("{\"kind\":\"static\",\"active\":{\"id\":\"mimalloc\",\"family\":\"mimalloc\","
              "\"name\":\"mimalloc\"},\"allocators\":[{\"id\":\"mimalloc\",\"family\":\"mimalloc\","
              "\"name\":\"mimalloc\"},{\"id\":\"glibc-ptmalloc\",\"family\":\"glibc\",\"name\":"
              "\"glibc ptmalloc\"}]}",
              NULL),
        "");
}

static void md003_only_with_a_failed_expectation(void **state)
{
    (void)state;
    const char *dropped =
        "{\"kind\":\"dynamic\",\"malloc_import_version\":\"GLIBC_2.2.5\","
        "\"active\":{\"id\":\"glibc-ptmalloc\",\"family\":\"glibc\",\"name\":"
        "\"glibc ptmalloc\"},\"expect\":{\"allocator\":\"mimalloc\",\"met\":false}}";
    assert_string_equal(fired(dropped, "mimalloc"), "MD003");
    assert_string_equal(fired(dropped, NULL), "");
    const char *met =
        "{\"kind\":\"dynamic\",\"active\":{\"id\":\"mimalloc\",\"family\":\"mimalloc\","
        "\"name\":\"mimalloc\"},\"expect\":{\"allocator\":\"mimalloc\",\"met\":true}}";
    assert_string_equal(fired(met, "mimalloc"), "");
}

static void md004_narrow_band_with_most_syscalls(void **state)
{
    (void)state;
    // each request's mmap is unmapped by its free
    const char *overflow = "{\"size_bands\":[{\"from\":1016,\"to\":1024,\"request_share\":0.008,"
                           "\"memory_syscalls\":890,\"memory_syscall_share\":0.49,"
                           "\"syscalls\":{\"mmap\":890}}],"
                           "\"syscalls\":[{\"name\":\"munmap\",\"count\":880}]}";
    assert_string_equal(fired_on_trace(overflow), "MD004");
    // the same band growing the heap, nothing given back: growth, not churn
    const char *growth = "{\"size_bands\":[{\"from\":4080,\"to\":4080,\"request_share\":0.012,"
                         "\"memory_syscalls\":41,\"memory_syscall_share\":0.47,"
                         "\"syscalls\":{\"brk\":41}}],"
                         "\"syscalls\":[{\"name\":\"brk\",\"count\":76},"
                         "{\"name\":\"munmap\",\"count\":1}]}";
    assert_string_equal(fired_on_trace(growth), "");
    // growth by brk in one band while another band's big blocks are unmapped: still growth
    const char *mixed = "{\"size_bands\":[{\"from\":4080,\"to\":4080,\"request_share\":0.012,"
                        "\"memory_syscalls\":76,\"memory_syscall_share\":0.32,"
                        "\"syscalls\":{\"brk\":76,\"mmap\":0}}],"
                        "\"syscalls\":[{\"name\":\"brk\",\"count\":76},"
                        "{\"name\":\"munmap\",\"count\":63}]}";
    assert_string_equal(fired_on_trace(mixed), "");
    // a band that is a large part of the workload is the workload, not an overflow
    const char *common = "{\"size_bands\":[{\"from\":16,\"to\":512,\"request_share\":0.6,"
                         "\"memory_syscalls\":890,\"memory_syscall_share\":0.97,"
                         "\"syscalls\":{\"mmap\":890}}],"
                         "\"syscalls\":[{\"name\":\"munmap\",\"count\":880}]}";
    assert_string_equal(fired_on_trace(common), "");
    const char *few = "{\"size_bands\":[{\"from\":1016,\"to\":1024,\"request_share\":0.008,"
                      "\"memory_syscalls\":3,\"memory_syscall_share\":0.97,"
                      "\"syscalls\":{\"mmap\":3}}],"
                      "\"syscalls\":[{\"name\":\"munmap\",\"count\":880}]}";
    assert_string_equal(fired_on_trace(few), "");
    // a whole power-of-two band (requests above 4 KiB are not counted exactly): glibc's mmap
    // threshold set low, MD006's churn, not a size class a header missed
    const char *octave = "{\"size_bands\":[{\"from\":131072,\"to\":262143,"
                         "\"request_share\":0.01,\"memory_syscalls\":480,"
                         "\"memory_syscall_share\":0.9,\"syscalls\":{\"mmap\":240,"
                         "\"munmap\":240}}],\"syscalls\":[{\"name\":\"munmap\",\"count\":240}]}";
    assert_string_equal(fired_on_trace(octave), "");
}

// The first finding's evidence of a trace report, for the test to read; free with cJSON_Delete.
static cJSON *first_evidence(const char *trace_json_text, const char *id)
{
    cJSON *trace = entry(trace_json_text), *findings = cJSON_CreateArray(), *f, *found = NULL;
    struct md_rule_input in = {.trace = trace};
    md_rules_run(&in, findings);
    cJSON_ArrayForEach(f, findings)
    {
        if (!found && !strcmp(cJSON_GetObjectItem(f, "id")->valuestring, id))
            found = cJSON_Duplicate(f, 1);
    }
    cJSON_Delete(trace);
    cJSON_Delete(findings);
    assert_non_null(found);
    return found;
}

// The boundary MD004 names is the power of two inside the band, or none.
static const char *md004_boundary(int from, int to)
{
    static char out[32];
    char json[512];
    snprintf(json, sizeof json,
             "{\"size_bands\":[{\"from\":%d,\"to\":%d,\"request_share\":0.008,"
             "\"memory_syscalls\":890,\"memory_syscall_share\":0.49,"
             "\"syscalls\":{\"mmap\":890}}],\"syscalls\":[{\"name\":\"munmap\",\"count\":880}]}",
             from, to);
    cJSON *f = first_evidence(json, "MD004");
    const cJSON *b = cJSON_GetObjectItem(cJSON_GetObjectItem(f, "evidence"), "boundary");
    snprintf(out, sizeof out, "%s", cJSON_IsNumber(b) ? "" : "null");
    if (cJSON_IsNumber(b))
        snprintf(out, sizeof out, "%.0f", b->valuedouble);
    cJSON_Delete(f);
    return out;
}

static void md004_names_the_power_of_two_inside_the_band(void **state)
{
    (void)state;
    assert_string_equal(md004_boundary(1016, 1024), "1024"); // seed 004
    assert_string_equal(md004_boundary(1020, 1030), "1024"); // a 16 B header: straddles it
    assert_string_equal(md004_boundary(1025, 1040), "null"); // past it: not 2048
    assert_string_equal(md004_boundary(203, 211), "null");   // musl's class of 208 B
}

#define MUSL_THREADED_FILE                                                                         \
    "{\"kind\":\"static\",\"threads\":\"yes\",\"threads_evidence\":\"pthread_"                     \
    "create\"," MUSL_ACTIVE "}"

// A static musl trace (uprobes: waits are the whole run's) with the given members.
static const char *musl_trace(const char *members)
{
    snprintf(
        trace_json, sizeof trace_json,
        "{\"mode\":\"uprobes\",\"attribution\":{\"available\":false},\"target\":{\"argv\":"
        "[\"prog\"],\"kind\":\"static\",\"libc\":\"musl\",\"active\":{\"id\":\"musl-mallocng\","
        "\"family\":\"musl\"}},%s}",
        members);
    return trace_json;
}

static void md001_escalates_on_futex_waits_per_op(void **state)
{
    (void)state;
    assert_string_equal(run_input(MUSL_THREADED_FILE, NULL, 0), "MD001/warning");
    // 32 waits in 32000 operations: one per 1000, at both thresholds
    assert_string_equal(run_input(MUSL_THREADED_FILE,
                                  musl_trace("\"ops\":{\"total\":32000},\"futex\":{\"waits\":32}"),
                                  0),
                        "MD001/error");
    assert_string_equal(run_input(MUSL_THREADED_FILE,
                                  musl_trace("\"ops\":{\"total\":32001},\"futex\":{\"waits\":32}"),
                                  0),
                        "MD001/warning");
    // joins: few waits, however high the rate
    assert_string_equal(run_input(MUSL_THREADED_FILE,
                                  musl_trace("\"ops\":{\"total\":4},\"futex\":{\"waits\":31}"), 0),
                        "MD001/warning");
}

static void md001_escalates_on_allocator_cpu_share(void **state)
{
    (void)state;
    const char *at = "\"ops\":{\"total\":1000},\"cpu\":{\"sampled\":true,\"samples\":100,"
                     "\"allocator_samples\":20}";
    assert_string_equal(run_input(MUSL_THREADED_FILE, musl_trace(at), 0), "MD001/error");
    const char *below = "\"ops\":{\"total\":1000},\"cpu\":{\"sampled\":true,\"samples\":100,"
                        "\"allocator_samples\":19}";
    assert_string_equal(run_input(MUSL_THREADED_FILE, musl_trace(below), 0), "MD001/warning");
    const char *few = "\"ops\":{\"total\":1000},\"cpu\":{\"sampled\":true,\"samples\":99,"
                      "\"allocator_samples\":99}";
    assert_string_equal(run_input(MUSL_THREADED_FILE, musl_trace(few), 0), "MD001/warning");
    // the tracer's own uprobe traps are not the program's CPU: 20 of 200-100 samples is 20%
    const char *traps = "\"ops\":{\"total\":1000},\"cpu\":{\"sampled\":true,\"samples\":200,"
                        "\"allocator_samples\":20,\"top_functions\":[{\"name\":\"[uprobes]\","
                        "\"samples\":100}]}";
    assert_string_equal(run_input(MUSL_THREADED_FILE, musl_trace(traps), 0), "MD001/error");
}

// A stripped static program keeps no pthread_create: inspect says "unknown", the trace's
// threads of one process say yes.
static void md001_threads_seen_by_the_trace(void **state)
{
    (void)state;
    const char *stripped = "{\"kind\":\"static\",\"threads\":\"unknown\"," MUSL_ACTIVE "}";
    assert_string_equal(run_input(stripped, NULL, 0), "");
    const char *two = "\"run\":{\"processes\":1},\"threads\":[{\"tid\":10,\"pid\":null},"
                      "{\"tid\":11,\"pid\":null}]";
    assert_string_equal(run_input(stripped, musl_trace(two), 0), "MD001/warning");
    const char *one = "\"run\":{\"processes\":1},\"threads\":[{\"tid\":10,\"pid\":null}]";
    assert_string_equal(run_input(stripped, musl_trace(one), 0), "");
    // two processes, one thread each: no thread is known to share a process
    const char *forked = "\"run\":{\"processes\":2},\"threads\":[{\"tid\":10,\"pid\":null},"
                         "{\"tid\":11,\"pid\":null}]";
    assert_string_equal(run_input(stripped, musl_trace(forked), 0), "");
    // a thread without a pid (it made no counted call) does not hide another process's two
    const char *mixed = "\"run\":{\"processes\":2},\"threads\":[{\"tid\":9,\"pid\":null},"
                        "{\"tid\":10,\"pid\":10},{\"tid\":11,\"pid\":10}]";
    assert_string_equal(run_input(stripped, musl_trace(mixed), 0), "MD001/warning");
}

// One allocating thread per process: the allocator's CPU share is its own work, not waiting.
static void md001_cpu_share_alone_is_no_contention(void **state)
{
    (void)state;
    const char *alone =
        "{\"mode\":\"hooks\",\"attribution\":{\"available\":true},\"target\":{\"argv\":"
        "[\"p\"],\"kind\":\"static\",\"libc\":\"musl\",\"active\":{\"id\":\"musl-mallocng\","
        "\"family\":\"musl\"}},\"ops\":{\"total\":1000},\"cpu\":{\"sampled\":true,"
        "\"samples\":100,\"allocator_samples\":25},\"threads\":[{\"tid\":10,\"pid\":10,"
        "\"ops\":1000},{\"tid\":11,\"pid\":10,\"ops\":0}]}";
    assert_string_equal(run_input(MUSL_THREADED_FILE, alone, 0), "MD001/warning");
}

static void md001_wait_share_only_when_attributed(void **state)
{
    (void)state;
    const char *file = "{\"kind\":\"dynamic\",\"threads\":\"yes\",\"threads_evidence\":"
                       "\"pthread_create\"," MUSL_ACTIVE "}";
    char members[512];
    // preload mode: 32 waits inside allocator calls, blocked 10% of the wall, few per op
    snprintf(trace_json, sizeof trace_json, "%s", "");
    const char *fmt = "{\"mode\":\"preload\",\"attribution\":{\"available\":true},\"target\":"
                      "{\"argv\":[\"p\"],\"kind\":\"dynamic\",\"libc\":\"musl\",\"active\":{\"id\":"
                      "\"musl-mallocng\",\"family\":\"musl\"}},\"ops\":{\"total\":1000000},"
                      "\"run\":{\"wall_seconds\":1.0},\"futex\":{\"waits\":%d,\"wait_seconds\":5,"
                      "\"allocator_waits\":%d,\"allocator_wait_seconds\":%s}}";
    snprintf(members, sizeof members, fmt, 900, 32, "0.1");
    assert_string_equal(run_input(file, members, 0), "MD001/error");
    snprintf(members, sizeof members, fmt, 900, 32, "0.099");
    assert_string_equal(run_input(file, members, 0), "MD001/warning");
    // waits inside allocator calls are no joins: 4 that block half the wall time are the lock's
    snprintf(members, sizeof members, fmt, 900, 4, "0.5");
    assert_string_equal(run_input(file, members, 0), "MD001/error");
    snprintf(members, sizeof members, fmt, 900, 3, "0.5");
    assert_string_equal(run_input(file, members, 0), "MD001/warning");
}

// The message of the MD001 finding on an inspect entry and a trace (malloc'd).
static char *md001_message(const char *file_json, const char *trace_json_text)
{
    cJSON *file = entry(file_json), *trace = entry(trace_json_text);
    cJSON *findings = cJSON_CreateArray(), *f;
    struct md_rule_input in = {.file = file, .trace = trace};
    md_rules_run(&in, findings);
    char *message = NULL;
    cJSON_ArrayForEach(f, findings)
    {
        if (!message && !strcmp(cJSON_GetObjectItem(f, "id")->valuestring, "MD001"))
            message = strdup(cJSON_GetObjectItem(f, "message")->valuestring);
    }
    cJSON_Delete(file);
    cJSON_Delete(trace);
    cJSON_Delete(findings);
    assert_non_null(message);
    return message;
}

// A dynamic musl program's samples in libc.so code without symbols may be its allocator's:
// the share MD001 quotes is then a floor, and says so (it read "0% of 104 CPU samples").
static void md001_cpu_share_is_a_floor_with_unnamed_libc_samples(void **state)
{
    (void)state;
    const char *file = "{\"kind\":\"dynamic\",\"threads\":\"yes\",\"threads_evidence\":"
                       "\"pthread_create\"," MUSL_ACTIVE "}";
    const char *fmt =
        "{\"mode\":\"preload\",\"attribution\":{\"available\":true},\"target\":"
        "{\"argv\":[\"p\"],\"kind\":\"dynamic\",\"libc\":\"musl\",\"active\":{\"id\":"
        "\"musl-mallocng\",\"family\":\"musl\"}},\"ops\":{\"total\":1000000},"
        "\"run\":{\"wall_seconds\":1.0},\"futex\":{\"waits\":900,\"wait_seconds\":5,"
        "\"allocator_waits\":32,\"allocator_wait_seconds\":0.25},\"cpu\":{\"sampled\":"
        "true,\"samples\":104,\"allocator_samples\":0,"
        "\"unnamed_allocator_library_samples\":%s}}";
    char trace[1024];
    snprintf(trace, sizeof trace, fmt, "53");
    char *message = md001_message(file, trace);
    assert_non_null(strstr(message, "blocked for 25% of the wall time, at least 0% of 104 CPU "
                                    "samples in the allocator"));
    free(message);
    // every sample named (glibc's debug file, a static program), or none in the libc: a measure
    const char *counts[] = {"0", "null"};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        snprintf(trace, sizeof trace, fmt, counts[i]);
        message = md001_message(file, trace);
        assert_non_null(
            strstr(message, "blocked for 25% of the wall time, 0% of 104 CPU samples in the"));
        free(message);
    }
}

static void md005_one_allocator_function_with_most_cpu(void **state)
{
    (void)state;
    const char *fmt = "\"ops\":{\"total\":1000},\"cpu\":{\"sampled\":true,\"samples\":%d,"
                      "\"top_allocator_functions\":[{\"name\":\"free\",\"samples\":5},"
                      "{\"name\":\"refill\",\"samples\":%d}]%s}";
    char members[512];
    snprintf(members, sizeof members, fmt, 100, 50, "");
    assert_string_equal(on_trace(members), "MD005/error");
    snprintf(members, sizeof members, fmt, 100, 49, "");
    assert_string_equal(on_trace(members), "");
    snprintf(members, sizeof members, fmt, 99, 99, "");
    assert_string_equal(on_trace(members), "");
    // 50 of 200 samples is 25%, but 100 of them are the tracer's uprobe traps
    snprintf(members, sizeof members, fmt, 200, 50,
             ",\"top_functions\":[{\"name\":\"[uprobes]\",\"samples\":100}]");
    assert_string_equal(on_trace(members), "MD005/error");
}

// One allocating thread per process: no thread waited for the lock, so the CPU share alone is
// a warning about the allocator's cost; two threads of one process make it the seed's error.
static void md005_single_threaded_is_a_warning(void **state)
{
    (void)state;
    const char *fmt = "\"ops\":{\"total\":1000},\"cpu\":{\"sampled\":true,\"samples\":100,"
                      "\"top_allocator_functions\":[{\"name\":\"refill\",\"samples\":60}]},"
                      "\"threads\":[{\"tid\":7,\"pid\":7,\"ops\":900},%s]";
    char members[512];
    snprintf(members, sizeof members, fmt, "{\"tid\":9,\"pid\":9,\"ops\":100}");
    assert_string_equal(on_trace(members), "MD005/warning");
    snprintf(members, sizeof members, fmt, "{\"tid\":8,\"pid\":7,\"ops\":100}");
    assert_string_equal(on_trace(members), "MD005/error");
    snprintf(members, sizeof members, fmt, "{\"tid\":8,\"pid\":7,\"ops\":0}");
    assert_string_equal(on_trace(members), "MD005/warning");
}

static void md005_futex_wait_share_inside_the_allocator(void **state)
{
    (void)state;
    const char *fmt = "\"ops\":{\"total\":1000},\"run\":{\"wall_seconds\":2.0},\"futex\":{"
                      "\"allocator_waits\":%d,\"allocator_wait_seconds\":%s}";
    char members[512];
    snprintf(members, sizeof members, fmt, 32, "0.4");
    assert_string_equal(on_trace(members), "MD005/error");
    snprintf(members, sizeof members, fmt, 32, "0.39");
    assert_string_equal(on_trace(members), "");
    snprintf(members, sizeof members, fmt, 31, "1.0");
    assert_string_equal(on_trace(members), "");
    // musl's lock is MD001's finding
    assert_string_equal(run_input(NULL,
                                  musl_trace("\"ops\":{\"total\":1000},\"cpu\":{\"sampled\":true,"
                                             "\"samples\":100,\"top_allocator_functions\":[{"
                                             "\"name\":\"alloc_slot\",\"samples\":90}]}"),
                                  0),
                        "");
}

static const char *syscalls(const char *name, int in_allocator, int total, double ops)
{
    static char members[512];
    snprintf(members, sizeof members,
             "\"ops\":{\"total\":%.0f},\"syscalls\":[{\"name\":\"%s\",\"count\":%d,"
             "\"in_allocator\":%d}]",
             ops, name, total, in_allocator);
    return members;
}

static void md006_mmap_churn_maps_and_unmaps(void **state)
{
    (void)state;
    const char *fmt = "\"ops\":{\"total\":%d},\"syscalls\":[{\"name\":\"mmap\",\"count\":900,"
                      "\"in_allocator\":%d},{\"name\":\"munmap\",\"count\":900,\"in_allocator\":"
                      "%d}],\"mmap_lengths\":[{\"from\":4096,\"to\":8191,\"count\":%d}]";
    char members[512];
    snprintf(members, sizeof members, fmt, 32000, 64, 32, 64); // 2 per 1000, half unmapped
    assert_string_equal(on_trace(members), "MD006/warning");
    snprintf(members, sizeof members, fmt, 32000, 64, 31, 64); // growth maps without unmapping
    assert_string_equal(on_trace(members), "");
    snprintf(members, sizeof members, fmt, 31500, 63, 63, 63); // too few
    assert_string_equal(on_trace(members), "");
    snprintf(members, sizeof members, fmt, 32001, 64, 64, 64); // below the rate
    assert_string_equal(on_trace(members), "");
    // only the calls inside the allocator count when the trace could tell: 900 outside
    snprintf(members, sizeof members, fmt, 32000, 0, 0, 900);
    assert_string_equal(on_trace(members), "");
}

// The length MD006 names is that of the allocator's mappings, not of the program's own.
static void md006_names_the_allocators_mapping_length(void **state)
{
    (void)state;
    const char *calls = "\"ops\":{\"total\":1000},\"syscalls\":[{\"name\":\"mmap\","
                        "\"count\":800,\"in_allocator\":200},{\"name\":\"munmap\",\"count\":"
                        "800,\"in_allocator\":200}],\"mmap_lengths\":[{\"from\":65536,\"to\":"
                        "131071,\"count\":600},{\"from\":131072,\"to\":262143,\"count\":200}]";
    char members[1024];
    snprintf(members, sizeof members,
             "%s,\"mmap_lengths_in_allocator\":[{\"from\":131072,\"to\":262143,\"count\":"
             "200}]",
             calls);
    cJSON *f = first_evidence(trace_of(members), "MD006");
    cJSON *ev = cJSON_GetObjectItem(f, "evidence");
    assert_int_equal(cJSON_GetObjectItem(ev, "length_from")->valueint, 131072);
    assert_int_equal(cJSON_GetObjectItem(ev, "length_count")->valueint, 200);
    assert_non_null(strstr(cJSON_GetObjectItem(f, "message")->valuestring,
                           "100% of these mappings are 131072-262143 B long"));
    cJSON_Delete(f);
    // a report without the allocator's lengths names none
    f = first_evidence(trace_of(calls), "MD006");
    ev = cJSON_GetObjectItem(f, "evidence");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(ev, "length_from")));
    assert_null(strstr(cJSON_GetObjectItem(f, "message")->valuestring, " B long"));
    cJSON_Delete(f);
}

static void md007_madvise_storm(void **state)
{
    (void)state;
    assert_string_equal(on_trace(syscalls("madvise", 64, 64, 32000)), "MD007/warning");
    assert_string_equal(on_trace(syscalls("madvise", 63, 63, 31500)), "");
    assert_string_equal(on_trace(syscalls("madvise", 64, 64, 32001)), "");
    assert_string_equal(on_trace(syscalls("madvise", 0, 5000, 32000)), "");
    // without attribution (uprobes mode) the run's count is all there is
    snprintf(trace_json, sizeof trace_json,
             "{\"mode\":\"uprobes\",\"ops\":{\"total\":32000},\"syscalls\":[{\"name\":"
             "\"madvise\",\"count\":64,\"in_allocator\":null}]}");
    assert_string_equal(run_input(NULL, trace_json, 0), "MD007/warning");
}

static void md008_brk_churn_beyond_growth(void **state)
{
    (void)state;
    char members[512];
    const char *fmt = "%s,\"run\":{\"max_rss_kb\":%d,\"processes\":1}";
    // 64 brk calls move the break by at least 256 KiB: twice a 128 KiB peak RSS
    snprintf(members, sizeof members, fmt, syscalls("brk", 64, 64, 32000), 128);
    assert_string_equal(on_trace(members), "MD008/warning");
    snprintf(members, sizeof members, fmt, syscalls("brk", 64, 64, 32000), 129);
    assert_string_equal(on_trace(members), "");
    snprintf(members, sizeof members, fmt, syscalls("brk", 63, 63, 31500), 1);
    assert_string_equal(on_trace(members), "");
    snprintf(members, sizeof members, fmt, syscalls("brk", 64, 64, 32001), 1);
    assert_string_equal(on_trace(members), "");
    // the probe file's pages are not the heap's: 1000 calls, 4000 KiB, twice 2000 KiB of the
    // program's own (8000 less the probe's 6000)
    const char *probed = "%s,\"run\":{\"max_rss_kb\":8000,\"probe_file_kb\":%d,\"processes\":1}";
    snprintf(members, sizeof members, probed, syscalls("brk", 1000, 1000, 100000), 6000);
    assert_string_equal(on_trace(members), "MD008/warning");
    snprintf(members, sizeof members, probed, syscalls("brk", 1000, 1000, 100000), 5999);
    assert_string_equal(on_trace(members), "");
}

// A report that says which way brk moved the break: the heap must have gone down at least 32
// times inside allocator calls (all of the run's without attribution), whatever the peak RSS.
static void md008_brk_churn_told_by_the_breaks_moves(void **state)
{
    (void)state;
    const char *fmt = "\"ops\":{\"total\":32000},\"run\":{\"max_rss_kb\":100000,\"processes\":1},"
                      "\"syscalls\":[{\"name\":\"brk\",\"count\":70,\"in_allocator\":64,"
                      "\"shrinks\":%d,\"grows\":%d,\"shrinks_in_allocator\":%d}]";
    char members[512];
    // the calls-against-RSS guess would say growth (64 pages are far below 100 MB)
    snprintf(members, sizeof members, fmt, 32, 32, 32);
    cJSON *f = first_evidence(trace_of(members), "MD008");
    cJSON *ev = cJSON_GetObjectItem(f, "evidence");
    assert_int_equal(cJSON_GetObjectItem(ev, "shrinks")->valueint, 32);
    assert_int_equal(cJSON_GetObjectItem(ev, "shrinks_in_allocator")->valueint, 32);
    assert_int_equal(cJSON_GetObjectItem(ev, "grows")->valueint, 32);
    // a report without grows_in_allocator (an older version's): its grows are the whole run's
    assert_non_null(strstr(cJSON_GetObjectItem(f, "message")->valuestring,
                           "the break went down 32 times inside allocator calls and up 32 times in "
                           "the whole run"));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(ev, "grows_in_allocator")));
    cJSON_Delete(f);
    // the run's grows (100, the program's own among them) exceed the 64 brk calls inside
    // allocator calls: the message counts those of the allocator
    f = first_evidence(trace_of("\"ops\":{\"total\":32000},\"run\":{\"max_rss_kb\":100000},"
                                "\"syscalls\":[{\"name\":\"brk\",\"count\":140,"
                                "\"in_allocator\":64,\"shrinks\":32,\"grows\":100,"
                                "\"shrinks_in_allocator\":32,\"grows_in_allocator\":32}]"),
                       "MD008");
    ev = cJSON_GetObjectItem(f, "evidence");
    assert_int_equal(cJSON_GetObjectItem(ev, "grows_in_allocator")->valueint, 32);
    assert_non_null(strstr(cJSON_GetObjectItem(f, "message")->valuestring,
                           "64 brk calls inside allocator calls for 32000 allocator operations "
                           "(2.00 per 1000), the break went down 32 times and up 32 times inside "
                           "allocator calls:"));
    cJSON_Delete(f);
    snprintf(members, sizeof members, fmt, 40, 32, 31); // the program's own shrinks do not count
    assert_string_equal(on_trace(members), "");
    snprintf(members, sizeof members, fmt, 0, 64, 0); // a heap that only grows
    assert_string_equal(on_trace(members), "");
    // a growing heap with a tiny peak RSS, which the guess took for churn
    const char *grown = "\"ops\":{\"total\":32000},\"run\":{\"max_rss_kb\":1,\"processes\":1},"
                        "\"syscalls\":[{\"name\":\"brk\",\"count\":64,\"in_allocator\":64,"
                        "\"shrinks\":0,\"grows\":63,\"shrinks_in_allocator\":0}]";
    assert_string_equal(on_trace(grown), "");
    // without attribution all of the run's shrinks count
    const char *uprobes = "{\"mode\":\"uprobes\",\"ops\":{\"total\":32000},\"syscalls\":[{"
                          "\"name\":\"brk\",\"count\":64,\"in_allocator\":null,\"shrinks\":%d,"
                          "\"grows\":32,\"shrinks_in_allocator\":null}]}";
    snprintf(trace_json, sizeof trace_json, uprobes, 32);
    assert_string_equal(run_input(NULL, trace_json, 0), "MD008/warning");
    snprintf(trace_json, sizeof trace_json, uprobes, 31);
    assert_string_equal(run_input(NULL, trace_json, 0), "");
}

static void md009_faults_beyond_peak_rss(void **state)
{
    (void)state;
    const char *fmt = "\"ops\":{\"total\":%d},\"run\":{\"minor_faults\":%d,\"max_rss_kb\":%d,"
                      "\"processes\":%d},\"attribution\":{\"available\":true},\"syscalls\":["
                      "{\"name\":\"madvise\",\"count\":100,\"in_allocator\":%d},"
                      "{\"name\":\"munmap\",\"count\":100,\"in_allocator\":%d}]";
    char members[512];
    // 1000 faults are 4000 KiB: four times a 1000 KiB peak, one per 100 operations; 16 returns
    snprintf(members, sizeof members, fmt, 100000, 1000, 1000, 1, 8, 8);
    assert_string_equal(on_trace(members), "MD009/warning");
    snprintf(members, sizeof members, fmt, 100000, 1000, 1001, 1, 8, 8);
    assert_string_equal(on_trace(members), "");
    snprintf(members, sizeof members, fmt, 100000, 1000, 1000, 2, 8, 8); // each process its own
    assert_string_equal(on_trace(members), "");
    snprintf(members, sizeof members, fmt, 100001, 1000, 10, 1, 8, 8);
    assert_string_equal(on_trace(members), "");
    snprintf(members, sizeof members, fmt, 1000, 999, 10, 1, 8, 8);
    assert_string_equal(on_trace(members), "");
    // the program unmapped its own buffers: the allocator gave nothing back
    snprintf(members, sizeof members, fmt, 100000, 1000, 1000, 1, 8, 7);
    assert_string_equal(on_trace(members), "");
}

// MD009 fires at faults minor faults of a run with these numbers (fmt: faults, max_rss_kb,
// probe_file_kb, processes), not at one fewer.
static void md009_fires_from(const char *fmt, int faults, int rss_kb, const char *probe_kb,
                             int processes)
{
    char members[512];
    snprintf(members, sizeof members, fmt, faults, rss_kb, probe_kb, processes);
    assert_string_equal(on_trace(members), "MD009/warning");
    snprintf(members, sizeof members, fmt, faults - 1, rss_kb, probe_kb, processes);
    assert_string_equal(on_trace(members), "");
}

// The probe file's pages (run.probe_file_kb: --leaks' live-block table) count in max_rss_kb and
// each in minor_faults: the program's own faults are weighed against its own peak RSS, never
// below a quarter of max_rss_kb nor 1 MiB; with several processes the file's pages are shared.
static void md009_leaves_the_probe_file_out_of_the_peak_rss(void **state)
{
    (void)state;
    const char *fmt = "\"ops\":{\"total\":100000},\"run\":{\"minor_faults\":%d,"
                      "\"max_rss_kb\":%d,\"probe_file_kb\":%s,\"processes\":%d},\"attribution\":"
                      "{\"available\":true},\"syscalls\":[{\"name\":\"munmap\",\"count\":"
                      "100,\"in_allocator\":100}]";
    char members[512];
    // 12000 KiB less the probe's 8000 is 4000; 6000 faults less the probe's 2000 pages are 16000
    // KiB, four times that
    snprintf(members, sizeof members, fmt, 6000, 12000, "8000", 1);
    cJSON *f = first_evidence(trace_of(members), "MD009");
    cJSON *ev = cJSON_GetObjectItem(f, "evidence");
    assert_int_equal(cJSON_GetObjectItem(ev, "max_rss_kb")->valueint, 12000);
    assert_int_equal(cJSON_GetObjectItem(ev, "program_rss_kb")->valueint, 4000);
    assert_int_equal(cJSON_GetObjectItem(ev, "minor_faults")->valueint, 6000);
    assert_int_equal(cJSON_GetObjectItem(ev, "program_faults")->valueint, 4000);
    assert_int_equal(cJSON_GetObjectItem(ev, "probe_file_kb")->valueint, 8000);
    assert_non_null(strstr(cJSON_GetObjectItem(f, "message")->valuestring,
                           "4000 minor page faults for 100000 allocator operations (0.04 per op): "
                           "16 MiB faulted in, 4 times the peak RSS of 4000 KiB (the probe file's "
                           "8000 KiB and their faults left out)"));
    cJSON_Delete(f);
    md009_fires_from(fmt, 6000, 12000, "8000", 1);
    snprintf(members, sizeof members, fmt, 6000, 12000, "null", 1); // no probe file: all counts
    assert_string_equal(on_trace(members), "");
    // at most down to a quarter of max_rss_kb: 3000 KiB, 3000 faults of the program's
    md009_fires_from(fmt, 6000, 12000, "12000", 1);
    // then only part of the file's 12000 KiB was left out of the peak RSS, which says so
    snprintf(members, sizeof members, fmt, 6000, 12000, "12000", 1);
    f = first_evidence(trace_of(members), "MD009");
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(f, "evidence"), "program_rss_kb")->valueint, 3000);
    assert_non_null(strstr(cJSON_GetObjectItem(f, "message")->valuestring,
                           "4 times the peak RSS of 3000 KiB (the probe file's 12000 KiB partly "
                           "left out, their faults wholly)"));
    cJSON_Delete(f);
    double processes;
    bool clamped;
    cJSON *trace = entry(trace_of(members));
    assert_true(md_rule_trace_program_rss_kb(trace, &processes, &clamped) == 3000 && clamped);
    cJSON_Delete(trace);
    snprintf(members, sizeof members, fmt, 6000, 12000, "8000", 1);
    trace = entry(trace_of(members));
    assert_true(md_rule_trace_program_rss_kb(trace, &processes, &clamped) == 4000 && !clamped);
    cJSON_Delete(trace);
    md009_fires_from(fmt, 1524, 2000, "2000", 1); // and to 1 MiB
    // two processes of at most 12000 KiB with 16000 KiB of the file between them: together at
    // most 8000 KiB of their own, so 8000 faults of theirs (and 4000 of the file's) are four times
    md009_fires_from(fmt, 12000, 12000, "16000", 2);
}

// brk counts as giving memory back only inside free: inside malloc it grows the heap.
static void md009_brk_that_grows_the_heap_gives_nothing_back(void **state)
{
    (void)state;
    const char *fmt = "\"ops\":{\"total\":100000},\"run\":{\"minor_faults\":1000,"
                      "\"max_rss_kb\":1000,\"processes\":1},\"syscalls\":[{\"name\":\"munmap\","
                      "\"count\":2000,\"in_allocator\":0},{\"name\":\"brk\",\"count\":30,"
                      "\"in_allocator\":%d,\"in_allocator_by_op\":{\"malloc\":%d,\"free\":%d}}]";
    char members[512];
    snprintf(members, sizeof members, fmt, 26, 26, 0); // the heap only grew
    assert_string_equal(on_trace(members), "");
    snprintf(members, sizeof members, fmt, 32, 16, 16); // free trimmed it 16 times
    assert_string_equal(on_trace(members), "MD009/warning");
    snprintf(members, sizeof members, fmt, 32, 17, 15);
    assert_string_equal(on_trace(members), "");
    // without attribution a brk cannot be told from growth: only munmap and madvise count
    snprintf(trace_json, sizeof trace_json,
             "{\"mode\":\"uprobes\",\"ops\":{\"total\":100000},\"run\":{\"minor_faults\":"
             "1000,\"max_rss_kb\":1000,\"processes\":1},\"syscalls\":[{\"name\":\"brk\","
             "\"count\":100,\"in_allocator\":null}]}");
    assert_string_equal(run_input(NULL, trace_json, 0), "");
}

// A report that says which way brk moved the break counts the calls that lowered it: inside
// allocator calls (realloc's trims too) when attributed, else all of them.
static void md009_brk_that_lowered_the_break_gave_memory_back(void **state)
{
    (void)state;
    const char *fmt = "\"ops\":{\"total\":100000},\"run\":{\"minor_faults\":1000,"
                      "\"max_rss_kb\":1000,\"processes\":1},\"syscalls\":[{\"name\":\"brk\","
                      "\"count\":40,\"in_allocator\":32,\"in_allocator_by_op\":{\"malloc\":16,"
                      "\"realloc\":16,\"free\":0},\"shrinks\":%d,\"grows\":16,"
                      "\"shrinks_in_allocator\":%d}]";
    char members[512];
    snprintf(members, sizeof members, fmt, 16, 16); // realloc trimmed the heap 16 times
    assert_string_equal(on_trace(members), "MD009/warning");
    snprintf(members, sizeof members, fmt, 20, 15); // 5 of them the program's own
    assert_string_equal(on_trace(members), "");
    // without attribution (uprobes mode) every shrink counts
    const char *uprobes = "{\"mode\":\"uprobes\",\"ops\":{\"total\":100000},\"run\":{"
                          "\"minor_faults\":1000,\"max_rss_kb\":1000,\"processes\":1},"
                          "\"syscalls\":[{\"name\":\"brk\",\"count\":100,\"in_allocator\":null,"
                          "\"shrinks\":%d,\"grows\":50,\"shrinks_in_allocator\":null}]}";
    snprintf(trace_json, sizeof trace_json, uprobes, 16);
    assert_string_equal(run_input(NULL, trace_json, 0), "MD009/warning");
    snprintf(trace_json, sizeof trace_json, uprobes, 15);
    assert_string_equal(run_input(NULL, trace_json, 0), "");
}

static void md010_leaks_at_the_set_size(void **state)
{
    (void)state;
    const char *fmt = "\"leaks\":{\"blocks\":3,\"bytes\":%d,\"by_stack\":[{\"frames\":["
                      "\"leak_large (leaker)\",\"main (leaker)\"],\"blocks\":3,\"bytes\":%d}]}";
    char members[512];
    snprintf(members, sizeof members, fmt, 1 << 20, 1 << 20); // the default: 1 MiB
    assert_string_equal(on_trace(members), "MD010/warning");
    snprintf(members, sizeof members, fmt, (1 << 20) - 1, (1 << 20) - 1);
    assert_string_equal(on_trace(members), "");
    snprintf(members, sizeof members, fmt, 15000, 15000);
    assert_string_equal(run_input(NULL, trace_of(members), 15000), "MD010/warning");
    assert_string_equal(run_input(NULL, trace_of(members), 15001), "");
    // without --leaks there is nothing to judge
    assert_string_equal(on_trace("\"ops\":{\"total\":10}"), "");
}

static void md010_evidence_names_the_top_site(void **state)
{
    (void)state;
    cJSON *trace = entry(trace_of("\"leaks\":{\"blocks\":13,\"bytes\":16000,\"by_stack\":[{"
                                  "\"frames\":[\"leak_large (leaker)\"],\"blocks\":3,\"bytes\":"
                                  "15000},{\"frames\":[\"leak_small (leaker)\"],\"blocks\":10,"
                                  "\"bytes\":1000}]}"));
    cJSON *findings = cJSON_CreateArray();
    struct md_rule_input in = {.trace = trace, .leak_min_bytes = 1};
    md_rules_run(&in, findings);
    cJSON *ev = cJSON_GetObjectItem(cJSON_GetArrayItem(findings, 0), "evidence");
    assert_int_equal(cJSON_GetObjectItem(ev, "bytes")->valueint, 16000);
    assert_int_equal(cJSON_GetObjectItem(ev, "blocks")->valueint, 13);
    cJSON *top = cJSON_GetObjectItem(ev, "top_site");
    assert_int_equal(cJSON_GetObjectItem(top, "bytes")->valueint, 15000);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(top, "frames"), 0)->valuestring,
                        "leak_large (leaker)");
    cJSON_Delete(trace);
    cJSON_Delete(findings);
}

static void trace_command_is_shell_quoted(void **state)
{
    (void)state;
    cJSON *trace = entry("{\"target\":{\"argv\":[\"prog\",\"a b\",\"it's\",\"--x=1\"]}}");
    char cmd[128];
    md_rule_trace_command(trace, cmd, sizeof cmd);
    assert_string_equal(cmd, "prog 'a b' 'it'\\''s' --x=1");
    md_rule_trace_command(trace, cmd, 8); // cut, never overrun
    assert_int_equal(strlen(cmd), 7);
    cJSON_Delete(trace);
    // too long to prescribe whole: the program and "...", so the fix around it stays whole
    char json[6000];
    snprintf(json, sizeof json, "{\"target\":{\"argv\":[\"./leak\",\"%0*d\",\"--next\"]}}", 5000,
             0);
    trace = entry(json);
    char long_cmd[512];
    md_rule_trace_command(trace, long_cmd, sizeof long_cmd);
    assert_string_equal(long_cmd, "./leak ...");
    cJSON_Delete(trace);
    trace = entry("{\"target\":{\"argv\":[]}}");
    md_rule_trace_command(trace, long_cmd, sizeof long_cmd);
    assert_string_equal(long_cmd, "PROGRAM");
    cJSON_Delete(trace);
}

// The prescribed glibc tunables keep blocks up to the largest request, within glibc's limit.
static void keep_memory_tunables_cover_the_largest_request(void **state)
{
    (void)state;
    const char *fmt = "\"requests\":{\"histogram\":[{\"from\":16,\"to\":31,\"count\":5},"
                      "{\"from\":%lu,\"to\":%lu,\"count\":1}]}";
    struct {
        unsigned long from, to;
        const char *expect;
    } cases[] = {
        {262144, 524287, "mmap_threshold=1048576:glibc.malloc.trim_threshold=2097152 prog"},
        // the threshold is above glibc's chunk (request + 8, rounded to 16), not the request:
        // 4194303 B is a 4194320 B chunk
        {2097152, 4194303, "mmap_threshold=8388608:glibc.malloc.trim_threshold=16777216 prog"},
        {4194304, 8388607, "mmap_threshold=16777216:glibc.malloc.trim_threshold=33554432 prog"},
        {8388608, 16777215, "mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864 prog"},
        // the bucket reaches past glibc's highest threshold: that one keeps what it can, and
        // says which sizes it cannot (a chunk of 32 MiB or more)
        {16777216, 33554431, "mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864 prog"},
        {16777216, 33554431,
         "requests up to 33554408 B (the largest requests are of 16777216 "
         "to 33554431 B: any above 33554408 B still get a mapping each)"},
        // chunks of 32 MiB and more need a threshold glibc may ignore: no tunables then
        {33554432, 67108863, "need an mmap_threshold above 32 MiB"},
        {1ul << 30, (1ul << 31) - 1, "need an mmap_threshold above 32 MiB"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char members[256], fix[2048];
        snprintf(members, sizeof members, fmt, cases[i].from, cases[i].to);
        cJSON *trace = entry(trace_of(members));
        struct md_rule_input in = {.trace = trace};
        md_rule_trace_keep_memory(&in, fix, sizeof fix);
        assert_non_null(strstr(fix, cases[i].expect));
        assert_true(!!strstr(fix, "GLIBC_TUNABLES=") == !strstr(cases[i].expect, "above 32 MiB"));
        cJSON_Delete(trace);
    }
}

// The tunables keep the sizes that churned: a large block kept for the whole run (one mmap) does
// not size them, nor put them out of glibc's reach.
static void keep_memory_tunables_cover_the_sizes_that_churned(void **state)
{
    (void)state;
    const char *requests = "\"requests\":{\"histogram\":[{\"from\":131072,\"to\":262143,"
                           "\"count\":300},{\"from\":67108864,\"to\":134217727,\"count\":1}]}";
#define BAND(from, to, calls) "{\"from\":" #from ",\"to\":" #to ",\"memory_syscalls\":" #calls "}"
    struct {
        const char *size_bands, *free_bands, *expect;
    } cases[] = {
        {BAND(131072, 262143, 300) "," BAND(67108864, 134217727, 1), "",
         "above the 262160 B chunk of the largest request that churned: "
         "`GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576:glibc.malloc.trim_threshold="
         "2097152 prog`"},
        // the freed blocks' bands only when no request band churned (glibc's madvise in a
        // thread's arena is made by free alone): a freed mapped block's size is page-rounded
        {BAND(131072, 262143, 300), BAND(2097152, 4194303, 300), "mmap_threshold=1048576:"},
        {BAND(131072, 262143, 1), BAND(2097152, 4194303, 100), "mmap_threshold=8388608:"},
        // no bands (no probe tied the syscalls to calls): the largest request of all
        {"", "", "need an mmap_threshold above 32 MiB"},
    };
#undef BAND
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char members[1024], fix[2048];
        snprintf(members, sizeof members, "%s,\"size_bands\":[%s],\"free_bands\":[%s]", requests,
                 cases[i].size_bands, cases[i].free_bands);
        cJSON *trace = entry(trace_of(members));
        struct md_rule_input in = {.trace = trace};
        md_rule_trace_keep_memory(&in, fix, sizeof fix);
        assert_non_null(strstr(fix, cases[i].expect));
        cJSON_Delete(trace);
    }
}

static void severities_round_trip(void **state)
{
    (void)state;
    for (int s = MD_SEV_INFO; s <= MD_SEV_ERROR; s++)
        assert_int_equal(md_severity_parse(md_severity_name(s)), s);
    assert_int_equal(md_severity_parse("fatal"), -1);
}

static void rule_ids_are_unique(void **state)
{
    (void)state;
    for (const struct md_rule *const *a = md_rules; *a; a++)
        for (const struct md_rule *const *b = a + 1; *b; b++) {
            assert_string_not_equal((*a)->id, (*b)->id);
            assert_string_not_equal((*a)->name, (*b)->name);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(md001_needs_musl_and_threads),
        cmocka_unit_test(md002_third_party_allocator_not_active),
        cmocka_unit_test(md003_only_with_a_failed_expectation),
        cmocka_unit_test(md004_narrow_band_with_most_syscalls),
        cmocka_unit_test(md004_names_the_power_of_two_inside_the_band),
        cmocka_unit_test(md001_threads_seen_by_the_trace),
        cmocka_unit_test(md001_cpu_share_alone_is_no_contention),
        cmocka_unit_test(md001_escalates_on_futex_waits_per_op),
        cmocka_unit_test(md001_escalates_on_allocator_cpu_share),
        cmocka_unit_test(md001_wait_share_only_when_attributed),
        cmocka_unit_test(md001_cpu_share_is_a_floor_with_unnamed_libc_samples),
        cmocka_unit_test(md005_one_allocator_function_with_most_cpu),
        cmocka_unit_test(md005_single_threaded_is_a_warning),
        cmocka_unit_test(md005_futex_wait_share_inside_the_allocator),
        cmocka_unit_test(md006_mmap_churn_maps_and_unmaps),
        cmocka_unit_test(md006_names_the_allocators_mapping_length),
        cmocka_unit_test(md007_madvise_storm),
        cmocka_unit_test(md008_brk_churn_beyond_growth),
        cmocka_unit_test(md008_brk_churn_told_by_the_breaks_moves),
        cmocka_unit_test(md009_faults_beyond_peak_rss),
        cmocka_unit_test(md009_leaves_the_probe_file_out_of_the_peak_rss),
        cmocka_unit_test(md009_brk_that_grows_the_heap_gives_nothing_back),
        cmocka_unit_test(md009_brk_that_lowered_the_break_gave_memory_back),
        cmocka_unit_test(md010_leaks_at_the_set_size),
        cmocka_unit_test(md010_evidence_names_the_top_site),
        cmocka_unit_test(trace_command_is_shell_quoted),
        cmocka_unit_test(keep_memory_tunables_cover_the_largest_request),
        cmocka_unit_test(keep_memory_tunables_cover_the_sizes_that_churned),
        cmocka_unit_test(severities_round_trip),
        cmocka_unit_test(rule_ids_are_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
