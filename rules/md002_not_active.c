// SPDX-License-Identifier: GPL-3.0-or-later
// MD002: a third-party allocator is linked, but malloc is served by another one.
//
// The classic cases: a Rust crate that links mimalloc without making it the global allocator, a
// static link where libc's malloc.o won the archive order, or a dynamic program whose
// libmimalloc.so comes after libc.so.6 in the load order.
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/report.h"
#include "rules/rules.h"

// Allocators that are part of a libc or language runtime are expected to be present.
static bool is_runtime_family(const char *family)
{
    return !strcmp(family, "musl") || !strcmp(family, "glibc") || !strcmp(family, "go");
}

static void report(const struct md_rule *rule, const cJSON *alloc, const char *where,
                   const cJSON *file, cJSON *findings)
{
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(file, "active");
    const char *active_name = md_json_get_str(active, "name");
    char message[512], fix[512];
    const char *name = md_json_get_str(alloc, "name");
    snprintf(message, sizeof message, "%s is %s but malloc is served by %s", name, where,
             active_name ? active_name : "an unidentified allocator");
    if (!strcmp(md_json_get_str(file, "kind"), "dynamic"))
        snprintf(fix, sizeof fix,
                 "link the %s library before libc (e.g. -l%s right after your objects) or start "
                 "the program with LD_PRELOAD pointing at it",
                 name, md_json_get_str(alloc, "family"));
    else
        snprintf(fix, sizeof fix,
                 "make %s override malloc: link its override object before libc (mimalloc: "
                 "MI_OVERRIDE build or mimalloc.o first; Rust: #[global_allocator])",
                 name);
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_WARNING, message, fix);
    cJSON_AddStringToObject(ev, "present", md_json_get_str(alloc, "id"));
    md_json_str(ev, "active", md_json_get_str(active, "id"));
}

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->file)
        return;
    const char *active_id = md_rule_active_id(in->file);
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(in->file, "allocators"))
    {
        const char *id = md_json_get_str(a, "id");
        if (id && !is_runtime_family(md_json_get_str(a, "family")) &&
            (!active_id || strcmp(id, active_id)))
            report(rule, a, "linked into this file", in->file, findings);
    }
    const cJSON *lib;
    cJSON_ArrayForEach(lib, cJSON_GetObjectItemCaseSensitive(in->file, "load_order"))
    {
        const cJSON *alloc = cJSON_GetObjectItemCaseSensitive(lib, "allocator");
        const char *id = md_json_get_str(alloc, "id");
        if (id && md_json_get_bool(lib, "exports_malloc") &&
            !is_runtime_family(md_json_get_str(alloc, "family")) &&
            (!active_id || strcmp(id, active_id)))
            report(rule, alloc, "loaded (later in the load order)", in->file, findings);
    }
}

const struct md_rule md_rule_not_active = {
    .id = "MD002",
    .name = "allocator-not-active",
    .title = "allocator linked but not serving malloc",
    .severities = MD_SEV_BIT(MD_SEV_WARNING),
    .check = check,
};
