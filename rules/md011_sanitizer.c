// SPDX-License-Identifier: GPL-3.0-or-later
// MD011: malloc is served by a sanitizer's checking allocator (ASan, TSan, MSan, HWASan).
//
// A build with -fsanitize replaces malloc with the sanitizer's: it puts redzones around blocks
// and keeps freed ones in a quarantine, so its memory and time per call are a test build's. What
// the other rules find in it (or do not) says little about the allocator the program ships with.
#include <stdio.h>
#include <string.h>

#include "lib/report.h"
#include "lib/run.h"
#include "rules/rules.h"

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    const char *family = md_rule_active_family(in->file);
    if (!family || strcmp(family, "sanitizer"))
        return;
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(in->file, "active");
    const char *name = md_json_get_str(active, "name");
    const char *provider = md_json_get_str(active, "provider");
    const char *path = md_json_get_str(in->file, "path");
    const char *kind = md_json_get_str(in->file, "kind");
    // the sanitizer's runtime itself (libasan.so), not a program with the runtime linked in
    if (provider && path && kind && !strcmp(kind, "shared-object") && md_same_file(provider, path))
        return;
    char message[512], fix[512];
    snprintf(message, sizeof message,
             "malloc is served by %s's runtime, the checking allocator of a test build: its "
             "memory and time per call (shadow memory, redzones, a quarantine of freed blocks) "
             "are not those of the allocator the program ships with",
             name);
    snprintf(fix, sizeof fix,
             "to judge the allocator, inspect and trace a build without -fsanitize (the one you "
             "ship)");
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_INFO, message, fix);
    cJSON_AddStringToObject(ev, "sanitizer", md_json_get_str(active, "id"));
    if (provider)
        cJSON_AddStringToObject(ev, "runtime", provider);
    else
        cJSON_AddNullToObject(ev, "runtime");
}

const struct md_rule md_rule_sanitizer = {
    .id = "MD011",
    .name = "sanitizer-allocator",
    .title = "sanitizer build",
    .severities = MD_SEV_BIT(MD_SEV_INFO),
    .check = check,
};
