// SPDX-License-Identifier: GPL-3.0-or-later
// MD003: `--expect ALLOC` and ALLOC does not serve malloc.
//
// When ALLOC is nowhere in the file or its load order and malloc binds to a libc version
// (malloc@GLIBC_2.2.5), the usual cause is that `-lALLOC` was dropped: with --as-needed (Debian's
// default) a library listed before the objects that call malloc satisfies nothing and is
// discarded without a word (seed 000: swoole-cli at 435 req/s instead of 16,432).
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/report.h"
#include "rules/rules.h"

static bool matches(const cJSON *alloc, const char *expect)
{
    const char *id = md_json_get_str(alloc, "id"), *family = md_json_get_str(alloc, "family");
    return (id && !strcmp(id, expect)) || (family && !strcmp(family, expect));
}

static bool present_anywhere(const cJSON *file, const char *expect)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(file, "allocators"))
    {
        if (matches(a, expect))
            return true;
    }
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(file, "load_order"))
    {
        if (matches(cJSON_GetObjectItemCaseSensitive(a, "allocator"), expect))
            return true;
    }
    return false;
}

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->file)
        return;
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(in->file, "expect");
    if (!in->expect || !expect || md_json_get_bool(expect, "met"))
        return;
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(in->file, "active");
    const char *active_name = md_json_get_str(active, "name");
    const char *version = md_json_get_str(in->file, "malloc_import_version");
    char message[512], fix[512];
    if (present_anywhere(in->file, in->expect)) {
        snprintf(message, sizeof message, "expected %s to serve malloc, but %s does", in->expect,
                 active_name ? active_name : "an unidentified allocator");
        snprintf(fix, sizeof fix, "see MD002: make %s override malloc", in->expect);
    } else {
        snprintf(message, sizeof message,
                 "expected %s, but it is not linked at all; malloc is served by %s%s%s%s",
                 in->expect, active_name ? active_name : "an unidentified allocator",
                 version ? " (the import is bound to malloc@" : "", version ? version : "",
                 version ? ": -l" : "");
        if (version)
            snprintf(message + strlen(message), sizeof message - strlen(message),
                     "%s was dropped by --as-needed or link order)", in->expect);
        snprintf(fix, sizeof fix,
                 "put -l%s after the objects that call malloc, or keep it with "
                 "-Wl,--no-as-needed -l%s -Wl,--as-needed; for static links add the allocator's "
                 "archive before libc",
                 in->expect, in->expect);
    }
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_ERROR, message, fix);
    cJSON_AddStringToObject(ev, "expected", in->expect);
    md_json_str(ev, "active", md_json_get_str(active, "id"));
    md_json_str(ev, "malloc_import_version", version);
}

const struct md_rule md_rule_expect_missing = {
    .id = "MD003",
    .name = "expected-allocator-missing",
    .title = "expected allocator does not serve malloc",
    .check = check,
};
