// SPDX-License-Identifier: GPL-3.0-or-later
// The rule registry: the one place a rule is added.
#include "rules/rules.h"

#include <string.h>

#include "lib/report.h"

extern const struct md_rule md_rule_musl_threads;
extern const struct md_rule md_rule_not_active;
extern const struct md_rule md_rule_expect_missing;
extern const struct md_rule md_rule_size_class_overflow;

const struct md_rule *const md_rules[] = {
    &md_rule_musl_threads,
    &md_rule_not_active,
    &md_rule_expect_missing,
    &md_rule_size_class_overflow,
    NULL,
};

void md_rules_run(const struct md_rule_input *in, cJSON *findings)
{
    for (const struct md_rule *const *r = md_rules; *r; r++)
        (*r)->check(*r, in, findings);
}

static const char *const severity_names[] = {
    [MD_SEV_INFO] = "info",
    [MD_SEV_WARNING] = "warning",
    [MD_SEV_ERROR] = "error",
};

const char *md_severity_name(enum md_severity severity)
{
    return severity_names[severity];
}

int md_severity_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof severity_names / sizeof severity_names[0]); i++)
        if (!strcmp(severity_names[i], name))
            return i;
    return -1;
}

cJSON *md_finding_add(cJSON *findings, const struct md_rule *rule, enum md_severity severity,
                      const char *message, const char *fix)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "id", rule->id);
    cJSON_AddStringToObject(f, "rule", rule->name);
    cJSON_AddStringToObject(f, "severity", md_severity_name(severity));
    cJSON_AddStringToObject(f, "title", rule->title);
    cJSON_AddStringToObject(f, "message", message);
    md_json_str(f, "fix", fix);
    cJSON *evidence = cJSON_AddObjectToObject(f, "evidence");
    cJSON_AddItemToArray(findings, f);
    return evidence;
}

const char *md_rule_active_family(const cJSON *file)
{
    return md_json_get_str(cJSON_GetObjectItemCaseSensitive(file, "active"), "family");
}

const char *md_rule_active_id(const cJSON *file)
{
    return md_json_get_str(cJSON_GetObjectItemCaseSensitive(file, "active"), "id");
}
