// SPDX-License-Identifier: GPL-3.0-or-later
// Rules read only the report model: each is checked on hand-made entries, for when it must fire
// and when it must stay silent.
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
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
    const char *overflow = "{\"size_bands\":[{\"from\":1016,\"to\":1024,\"request_share\":0.008,"
                           "\"memory_syscalls\":890,\"memory_syscall_share\":0.97}]}";
    assert_string_equal(fired_on_trace(overflow), "MD004");
    // a band that is a large part of the workload is the workload, not an overflow
    const char *common = "{\"size_bands\":[{\"from\":16,\"to\":512,\"request_share\":0.6,"
                         "\"memory_syscalls\":890,\"memory_syscall_share\":0.97}]}";
    assert_string_equal(fired_on_trace(common), "");
    const char *few = "{\"size_bands\":[{\"from\":1016,\"to\":1024,\"request_share\":0.008,"
                      "\"memory_syscalls\":3,\"memory_syscall_share\":0.97}]}";
    assert_string_equal(fired_on_trace(few), "");
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
        cmocka_unit_test(severities_round_trip),
        cmocka_unit_test(rule_ids_are_unique),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
