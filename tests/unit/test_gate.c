// SPDX-License-Identifier: GPL-3.0-or-later
// The CI gate's arithmetic on hand-made reports: percent limit, noise floors, metrics missing in
// one report, zero baselines, and the baseline reader's refusals.
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/gate.h"
#include "lib/metrics.h"
#include "lib/report.h"
#include "rules/rules.h"

// A trace report with the gated numbers: RSS, memory syscalls and futex waits over 100000 ops,
// futex share and CPU share (with enough samples to count).
static cJSON *report(double rss_kb, double mmaps, double waits, double futex_share,
                     double cpu_share)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"schema\":\"malloc-doctor/1\",\"command\":\"trace\","
             "\"run\":{\"max_rss_kb\":%g},\"ops\":{\"total\":100000,\"source\":\"probe\"},"
             "\"syscalls\":[{\"name\":\"mmap\",\"count\":%g},{\"name\":\"futex\",\"count\":99}],"
             "\"futex\":{\"waits\":%g,\"wait_share_of_wall\":%g},"
             "\"cpu\":{\"sampled\":true,\"samples\":500,\"allocator_share\":%g}}",
             rss_kb, mmaps, waits, futex_share, cpu_share);
    cJSON *r = cJSON_Parse(json);
    assert_non_null(r);
    return r;
}

// Runs the gate; returns the regressed metric keys, space-separated.
static const char *regressions(cJSON *before, cJSON *after, double pct)
{
    static char keys[256];
    int n = md_gate_check(before, "base.json", pct, after);
    const cJSON *gate = cJSON_GetObjectItem(after, "gate"), *r;
    keys[0] = 0;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(gate, "regressions"))
    {
        strcat(keys, keys[0] ? " " : "");
        strcat(keys, cJSON_GetObjectItem(r, "metric")->valuestring);
    }
    assert_int_equal(n, cJSON_GetArraySize(cJSON_GetObjectItem(gate, "regressions")));
    assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(gate, "passed")), n == 0);
    cJSON_Delete(before);
    cJSON_Delete(after);
    return keys;
}

static void unchanged_passes(void **state)
{
    (void)state;
    assert_string_equal(
        regressions(report(4096, 500, 10, 0.1, 0.2), report(4096, 500, 10, 0.1, 0.2), 10), "");
}

static void growth_over_the_limit_fails_each_metric(void **state)
{
    (void)state;
    assert_string_equal(
        regressions(report(40960, 500, 1000, 0.1, 0.2), report(81920, 1000, 2000, 0.3, 0.5), 10),
        "peak_rss_kb memory_syscalls_per_op futex_waits_per_op futex_wait_share "
        "allocator_cpu_share");
}

static void growth_within_the_limit_passes(void **state)
{
    (void)state;
    // +9% everywhere against a 10% limit
    assert_string_equal(regressions(report(40960, 1000, 1000, 0.5, 0.5),
                                    report(44646, 1090, 1090, 0.545, 0.545), 10),
                        "");
}

static void changes_under_the_noise_floor_pass(void **state)
{
    (void)state;
    // 0 -> 50 mmaps is +inf% but 0.5 per 1000 ops; RSS +1 MiB is +100% of 1 MiB but noise
    assert_string_equal(
        regressions(report(1024, 0, 0, 0, 0.01), report(2048, 50, 50, 0.04, 0.02), 10), "");
    // over the floor from a zero baseline: a regression whatever the percentage
    assert_string_equal(regressions(report(1024, 0, 0, 0, 0), report(1024, 200, 0, 0, 0), 1e6),
                        "memory_syscalls_per_op");
}

// Whether the gate listed key as not comparable.
static bool not_comparable(const cJSON *after, const char *key)
{
    const cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItem(cJSON_GetObjectItem(after, "gate"), "not_comparable"))
    {
        if (!strcmp(k->valuestring, key))
            return true;
    }
    return false;
}

static void futex_share_of_a_few_waits_is_not_gated(void **state)
{
    (void)state;
    // identical reruns of a 2-thread program: 1-2 waits (pthread_join), 11.6% -> 21.3% of wall
    cJSON *before = report(4096, 500, 1, 0.116, 0.2), *after = report(4096, 500, 2, 0.213, 0.2);
    assert_int_equal(md_gate_check(before, "base.json", 10, after), 0);
    assert_true(not_comparable(after, "futex_wait_share"));
    cJSON_Delete(before);
    cJSON_Delete(after);
    // enough waits (100) in one run only: still not judged
    assert_string_equal(
        regressions(report(4096, 500, 99, 0.1, 0.2), report(4096, 500, 100, 0.6, 0.2), 10), "");
    assert_string_equal(
        regressions(report(4096, 500, 100, 0.1, 0.2), report(4096, 500, 99, 0.6, 0.2), 10), "");
    // many waits in both: a large increase of the share still fails
    assert_string_equal(
        regressions(report(4096, 100, 100, 0.1, 0.2), report(4096, 100, 100, 0.3, 0.2), 10),
        "futex_wait_share");
}

// r with the waits inside allocator calls (seconds blocked over a 1 s run), as the probe counts
// them (preload) or as the waits' call stacks tell them (uprobes, where the probe did not run).
static cJSON *with_allocator_waits(cJSON *r, const char *mode, double waits, double seconds)
{
    bool probed = strcmp(mode, "uprobes");
    cJSON_AddStringToObject(r, "mode", mode);
    cJSON_AddNumberToObject(cJSON_GetObjectItem(r, "run"), "wall_seconds", 1.0);
    cJSON *attribution = cJSON_AddObjectToObject(r, "attribution");
    cJSON_AddBoolToObject(attribution, "available", probed);
    cJSON *from =
        probed ? cJSON_GetObjectItem(r, "futex") : cJSON_AddObjectToObject(r, "futex_wait_stacks");
    if (!probed)
        cJSON_AddTrueToObject(from, "sampled");
    cJSON_AddNumberToObject(from, "allocator_waits", waits);
    cJSON_AddNumberToObject(from, "allocator_wait_seconds", seconds);
    return r;
}

static void allocator_futex_share_is_gated_with_enough_waits(void **state)
{
    (void)state;
    // the run's whole share stays (pthread_join); the share inside allocator calls triples
    const char *modes[] = {"preload", "hooks", "uprobes"};
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(
            regressions(with_allocator_waits(report(4096, 100, 300, 0.9, 0.2), modes[i], 200, 0.1),
                        with_allocator_waits(report(4096, 100, 300, 0.9, 0.2), modes[i], 200, 0.3),
                        10),
            "allocator_futex_wait_share");
    // under 100 waits inside the allocator: a share of a few waits, not judged
    cJSON *before = with_allocator_waits(report(4096, 100, 300, 0.9, 0.2), "preload", 200, 0.1);
    cJSON *after = with_allocator_waits(report(4096, 100, 300, 0.9, 0.2), "preload", 99, 0.3);
    assert_int_equal(md_gate_check(before, "base.json", 10, after), 0);
    assert_true(not_comparable(after, "allocator_futex_wait_share"));
    cJSON_Delete(after);
    // a probe that could not tie syscalls to calls gives no share inside them
    after = with_allocator_waits(report(4096, 100, 300, 0.9, 0.2), "preload", 200, 0.3);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(after, "attribution"), "available",
                              cJSON_CreateFalse());
    assert_int_equal(md_gate_check(before, "base.json", 10, after), 0);
    assert_true(not_comparable(after, "allocator_futex_wait_share"));
    cJSON_Delete(after);
    cJSON_Delete(before);
}

static cJSON *with_samples(cJSON *r, double samples)
{
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(r, "cpu"), "samples",
                              cJSON_CreateNumber(samples));
    return r;
}

static void cpu_share_changes_within_sampling_error_pass(void **state)
{
    (void)state;
    // 60 samples each: 55% -> 70% is within three standard errors (about 25 points) ...
    assert_string_equal(regressions(with_samples(report(4096, 500, 10, 0.1, 0.55), 60),
                                    with_samples(report(4096, 500, 10, 0.1, 0.697), 60), 10),
                        "");
    // ... 55% -> 95% is not, and neither is 55% -> 70% with 5000 samples each
    assert_string_equal(regressions(with_samples(report(4096, 500, 10, 0.1, 0.55), 60),
                                    with_samples(report(4096, 500, 10, 0.1, 0.95), 60), 10),
                        "allocator_cpu_share");
    assert_string_equal(regressions(with_samples(report(4096, 500, 10, 0.1, 0.55), 5000),
                                    with_samples(report(4096, 500, 10, 0.1, 0.697), 5000), 10),
                        "allocator_cpu_share");
}

static void metrics_missing_in_one_report_are_not_compared(void **state)
{
    (void)state;
    cJSON *before = report(4096, 500, 10, 0.1, 0.2), *after = report(4096, 500, 10, 0.1, 0.9);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(after, "cpu"), "samples",
                              cJSON_CreateNumber(10)); // too few samples to count
    cJSON_DeleteItemFromObject(after, "ops");          // no op count: nothing per op
    assert_string_equal(regressions(before, after, 10), "");
}

static void reader_refuses_what_is_not_a_trace_report(void **state)
{
    (void)state;
    struct md_error err;
    cJSON *r = NULL;
    const char *cut = "{\"schema\":\"malloc-doctor/1\",\"comm";
    assert_int_equal(md_baseline_parse(cut, strlen(cut), "cut.json", &r, &err), -1);
    assert_non_null(strstr(err.msg, "cut.json: not JSON"));
    const char *inspect = "{\"schema\":\"malloc-doctor/1\",\"command\":\"inspect\"}";
    assert_int_equal(md_baseline_parse(inspect, strlen(inspect), "i.json", &r, &err), -1);
    assert_non_null(strstr(err.msg, "i.json: not a malloc-doctor trace report"));
    // a later version's report is named as one, with both schemas
    const char *later = "{\"schema\":\"malloc-doctor/2\",\"command\":\"trace\","
                        "\"run\":{\"max_rss_kb\":2048}}";
    assert_int_equal(md_baseline_parse(later, strlen(later), "v2.json", &r, &err), -1);
    assert_string_equal(err.msg, "v2.json: a report of schema malloc-doctor/2, which this version "
                                 "does not read (it reads malloc-doctor/1)");
    // a number edited by hand that no run measures, named by its field
    const char *negative = "{\"schema\":\"malloc-doctor/1\",\"command\":\"trace\","
                           "\"run\":{\"max_rss_kb\":2048},\"cpu\":{\"samples\":-1}}";
    assert_int_equal(md_baseline_parse(negative, strlen(negative), "n.json", &r, &err), -1);
    assert_string_equal(err.msg, "n.json: cpu.samples is -1: not a measurement (negative)");
    const char *list = "[1,2]";
    assert_int_equal(md_baseline_parse(list, strlen(list), "l.json", &r, &err), -1);
    // a report with nothing the gate compares would let every run pass
    const char *empty = "{\"schema\":\"malloc-doctor/1\",\"command\":\"doctor\"}";
    assert_int_equal(md_baseline_parse(empty, strlen(empty), "e.json", &r, &err), -1);
    assert_non_null(strstr(err.msg, "e.json: a report without any metric the gate compares"));
    const char *ok = "{\"schema\":\"malloc-doctor/1\",\"command\":\"doctor\","
                     "\"run\":{\"max_rss_kb\":2048}}";
    assert_int_equal(md_baseline_parse(ok, strlen(ok), "ok.json", &r, &err), 0);
    cJSON_Delete(r);
    // one report and then something else is not one report; whitespace after it is
    const char *two = "{\"schema\":\"malloc-doctor/1\",\"command\":\"doctor\","
                      "\"run\":{\"max_rss_kb\":2048}} {}";
    assert_int_equal(md_baseline_parse(two, strlen(two), "two.json", &r, &err), -1);
    assert_non_null(strstr(err.msg, "two.json: not JSON (something after the report, at byte"));
    const char *nul = "{\"schema\":\"malloc-doctor/1\",\"command\":\"doctor\","
                      "\"run\":{\"max_rss_kb\":2048}}\n\0x";
    assert_int_equal(md_baseline_parse(nul, strlen(nul) + 2, "nul.json", &r, &err), -1);
    const char *spaced = "{\"schema\":\"malloc-doctor/1\",\"command\":\"doctor\","
                         "\"run\":{\"max_rss_kb\":2048}}\n \t\r\n";
    assert_int_equal(md_baseline_parse(spaced, strlen(spaced), "sp.json", &r, &err), 0);
    cJSON_Delete(r);
    // not NUL-terminated: the reader must stop at len
    char unterminated[] = {'{', '}', 'x'};
    assert_int_equal(md_baseline_parse(unterminated, 2, "u.json", &r, &err), -1);
}

// The error md_baseline_parse gives for a report with the given members, or "" when it reads it.
static const char *refusal(const char *members)
{
    static char msg[512];
    char json[1024];
    struct md_error err;
    cJSON *r = NULL;
    snprintf(json, sizeof json, "{\"schema\":\"malloc-doctor/1\",\"command\":\"doctor\",%s}",
             members);
    int rc = md_baseline_parse(json, strlen(json), "b.json", &r, &err);
    cJSON_Delete(r);
    snprintf(msg, sizeof msg, "%s", rc ? err.msg : "");
    return msg;
}

static void reader_refuses_fields_of_another_type(void **state)
{
    (void)state;
    // a number edited into a string made its metric missing: the gate compared less, or nothing
    assert_string_equal(refusal("\"run\":{\"max_rss_kb\":\"2384\"}"),
                        "b.json: run.max_rss_kb is the string \"2384\": not a number");
    assert_string_equal(refusal("\"run\":{\"max_rss_kb\":2048},"
                                "\"ops\":{\"total\":\"10001\",\"source\":\"probe\"}"),
                        "b.json: ops.total is the string \"10001\": not a number");
    assert_string_equal(refusal("\"run\":{\"max_rss_kb\":2048},\"futex\":{\"waits\":true}"),
                        "b.json: futex.waits is true or false: not a number");
    assert_string_equal(refusal("\"run\":{\"max_rss_kb\":{\"kb\":2048}}"),
                        "b.json: run.max_rss_kb is an object: not a number");
    assert_string_equal(refusal("\"run\":{\"max_rss_kb\":2048},"
                                "\"syscalls\":[{\"name\":\"mmap\",\"count\":\"7\"}]"),
                        "b.json: syscalls[].count is the string \"7\": not a number");
    assert_string_equal(refusal("\"run\":{\"max_rss_kb\":2048},\"leaks\":{\"tracked\":\"yes\"}"),
                        "b.json: leaks.tracked is the string \"yes\": not true or false");
    assert_string_equal(refusal("\"run\":\"fast\""), "b.json: run is a string: not an object");
    assert_string_equal(refusal("\"run\":{\"max_rss_kb\":2048},\"syscalls\":{}"),
                        "b.json: syscalls is an object: not a list");
    // null is the report's own "not measured" (ops.total of a run that counted none)
    assert_string_equal(
        refusal("\"run\":{\"max_rss_kb\":2048},"
                "\"ops\":{\"total\":null,\"source\":null},\"futex_wait_stacks\":null"),
        "");
}

// Peak RSS from the kernel's exit records (root) and from wait4 (a user: the tool's copy before
// the exec counts too) are not compared: an unchanged program read +711% from a root baseline.
static void peak_rss_of_another_source_is_not_compared(void **state)
{
    (void)state;
    cJSON *before = report(384, 500, 10, 0.1, 0.2), *after = report(3116, 500, 10, 0.1, 0.2);
    cJSON_AddStringToObject(cJSON_GetObjectItem(before, "run"), "max_rss_source", "taskstats");
    cJSON_AddStringToObject(cJSON_GetObjectItem(after, "run"), "max_rss_source", "wait4");
    assert_int_equal(md_gate_check(before, "base.json", 10, after), 0);
    assert_true(not_comparable(after, "peak_rss_kb"));
    cJSON_Delete(before);
    cJSON_Delete(after);
    // the same source on both sides: compared, and a regression
    before = report(384, 500, 10, 0.1, 0.2), after = report(3116, 500, 10, 0.1, 0.2);
    cJSON_AddStringToObject(cJSON_GetObjectItem(before, "run"), "max_rss_source", "wait4");
    cJSON_AddStringToObject(cJSON_GetObjectItem(after, "run"), "max_rss_source", "wait4");
    assert_int_equal(md_gate_check(before, "base.json", 10, after), 1);
    cJSON_Delete(before);
    cJSON_Delete(after);
}

static void a_gate_that_compares_nothing_does_not_pass(void **state)
{
    (void)state;
    // a doctor baseline (leaks tracked) with peak RSS alone, against a trace run: not alike
    cJSON *before = cJSON_Parse("{\"run\":{\"max_rss_kb\":2048},\"leaks\":{\"tracked\":true}}");
    cJSON *after = report(2048, 500, 10, 0.1, 0.2);
    assert_int_equal(md_gate_check(before, "base.json", 10, after), -1);
    cJSON *gate = cJSON_GetObjectItem(after, "gate");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(gate, "compared")), 0);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(gate, "passed")));
    cJSON_Delete(before);
    cJSON_Delete(after);
}

// The gate's "warnings" of a run against before, joined by " | ".
static const char *warnings(cJSON *before, cJSON *after)
{
    static char text[1024];
    size_t len = 0;
    const cJSON *w;
    md_gate_check(before, "base.json", 10, after);
    text[0] = 0;
    cJSON_ArrayForEach(w, cJSON_GetObjectItem(cJSON_GetObjectItem(after, "gate"), "warnings"))
    {
        md_append_text(text, sizeof text, &len, len ? " | " : "");
        md_append_text(text, sizeof text, &len, w->valuestring);
    }
    cJSON_Delete(before);
    cJSON_Delete(after);
    return text;
}

static cJSON *stopped(cJSON *r, const char *key, cJSON *value)
{
    cJSON_AddItemToObject(cJSON_GetObjectItem(r, "run"), key, value);
    return r;
}

static void a_baseline_of_part_of_a_run_is_said(void **state)
{
    (void)state;
    assert_string_equal(warnings(report(4096, 500, 10, 0.1, 0.2), report(4096, 500, 10, 0.1, 0.2)),
                        "");
    assert_string_equal(
        warnings(stopped(report(4096, 500, 10, 0.1, 0.2), "timed_out", cJSON_CreateTrue()),
                 report(4096, 500, 10, 0.1, 0.2)),
        "base.json covers only part of a run (the program timed out (--timeout)): this run is "
        "compared with that part");
    assert_string_equal(
        warnings(
            stopped(report(4096, 500, 10, 0.1, 0.2), "interrupted_by", cJSON_CreateString("INT")),
            report(4096, 500, 10, 0.1, 0.2)),
        "base.json covers only part of a run (the run was interrupted by SIGINT): this run is "
        "compared with that part");
}

static void each_compared_row_says_why_it_passed(void **state)
{
    (void)state;
    char text[32];
    // 0.075 -> 0.750 memory syscalls per 1000 ops: +900%, under the floor of 1 per 1000
    cJSON *before = report(4096, 7.5, 10, 0.1, 0.2), *after = report(4096, 75, 10, 0.1, 0.2);
    assert_int_equal(md_gate_check(before, "base.json", 10, after), 0);
    const cJSON *row, *gate = cJSON_GetObjectItem(after, "gate");
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(gate, "compared"))
    {
        const char *key = cJSON_GetObjectItem(row, "metric")->valuestring;
        const char *result = cJSON_GetObjectItem(row, "result")->valuestring;
        assert_string_equal(result, strcmp(key, "memory_syscalls_per_op") ? "within-limit"
                                                                          : "below-noise-floor");
        if (!strcmp(key, "futex_waits_per_op")) { // 0.1 -> 0.1 per 1000
            md_format_row_change(row, text, sizeof text);
            assert_string_equal(text, "+0.0%");
        }
    }
    cJSON_Delete(before);
    cJSON_Delete(after);
    // 0 -> 126720 KiB fails as "new"; 0 -> 0 is no change
    before = report(0, 500, 0, 0.1, 0.2), after = report(126720, 500, 0, 0.1, 0.2);
    assert_int_equal(md_gate_check(before, "base.json", 10, after), 1);
    row = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(after, "gate"), "regressions"),
                             0);
    assert_string_equal(cJSON_GetObjectItem(row, "result")->valuestring, "regression");
    md_format_row_change(row, text, sizeof text);
    assert_string_equal(text, "new");
    row =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(after, "gate"), "compared"), 2);
    assert_string_equal(cJSON_GetObjectItem(row, "metric")->valuestring, "futex_waits_per_op");
    md_format_row_change(row, text, sizeof text);
    assert_string_equal(text, "-");
    cJSON_Delete(before);
    cJSON_Delete(after);
}

static void numbers_are_shown_in_plain_decimals(void **state)
{
    (void)state;
    char text[64];
    // a whole rate keeps its decimals, as the rates beside it
    md_format_metric("memory_syscalls_per_op", 0.003, text, sizeof text);
    assert_string_equal(text, "3.000");
    md_format_metric("memory_syscalls_per_op", 0.002571, text, sizeof text);
    assert_string_equal(text, "2.571");
    // as the options take them: no exponent, no trailing zeros
    md_format_decimal(0.0000001, text, sizeof text);
    assert_string_equal(text, "0.0000001");
    md_format_decimal(2.5, text, sizeof text);
    assert_string_equal(text, "2.5");
    md_format_decimal(10, text, sizeof text);
    assert_string_equal(text, "10");
    // past 15 decimals, as many as the double needs (not 0.000000000000000)
    md_format_decimal(0.00000000000000001, text, sizeof text);
    assert_string_equal(text, "0.00000000000000001");
    md_format_decimal(0.1 + 0.2, text, sizeof text);
    assert_string_equal(text, "0.30000000000000004");
    // no room for the digits: the exact value with an exponent, never a rounded 0
    md_format_decimal(1e-300, text, sizeof text);
    assert_string_equal(text, "1e-300");
}

static void findings_are_counted_by_severity_in_files_and_top_level(void **state)
{
    (void)state;
    cJSON *r = cJSON_Parse("{\"findings\":[{\"severity\":\"warning\"}],"
                           "\"files\":[{\"findings\":[{\"severity\":\"error\"},"
                           "{\"severity\":\"info\"}]},{}]}");
    assert_int_equal(md_report_findings_at_least(r, MD_SEV_INFO), 3);
    assert_int_equal(md_report_findings_at_least(r, MD_SEV_WARNING), 2);
    assert_int_equal(md_report_findings_at_least(r, MD_SEV_ERROR), 1);
    cJSON_Delete(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unchanged_passes),
        cmocka_unit_test(growth_over_the_limit_fails_each_metric),
        cmocka_unit_test(growth_within_the_limit_passes),
        cmocka_unit_test(changes_under_the_noise_floor_pass),
        cmocka_unit_test(futex_share_of_a_few_waits_is_not_gated),
        cmocka_unit_test(allocator_futex_share_is_gated_with_enough_waits),
        cmocka_unit_test(cpu_share_changes_within_sampling_error_pass),
        cmocka_unit_test(metrics_missing_in_one_report_are_not_compared),
        cmocka_unit_test(reader_refuses_what_is_not_a_trace_report),
        cmocka_unit_test(reader_refuses_fields_of_another_type),
        cmocka_unit_test(a_gate_that_compares_nothing_does_not_pass),
        cmocka_unit_test(peak_rss_of_another_source_is_not_compared),
        cmocka_unit_test(a_baseline_of_part_of_a_run_is_said),
        cmocka_unit_test(each_compared_row_says_why_it_passed),
        cmocka_unit_test(numbers_are_shown_in_plain_decimals),
        cmocka_unit_test(findings_are_counted_by_severity_in_files_and_top_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
