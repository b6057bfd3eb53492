// SPDX-License-Identifier: GPL-3.0-or-later
// malloc-doctor rules: the diagnosis rules this version applies (id, name, title, severities), so
// a finding seen in CI can be looked up by its stable id, and a --fail-on level (a severity, not
// an id) chosen knowing which rules it catches.
#include <stdio.h>

#include "cmd/cli.h"
#include "lib/report.h"
#include "rules/rules.h"

enum { OPT_JSON = 0x101 };

static const struct md_opt options[] = {
    {"json", OPT_JSON, NULL, "print the list as JSON (schema malloc-doctor/1)"},
    {"help", MD_OPT_HELP, NULL, "show this help"},
    {"version", MD_OPT_VERSION, NULL, "show the version"},
    {0},
};

static cJSON *severities(const struct md_rule *rule)
{
    cJSON *list = cJSON_CreateArray();
    for (int s = MD_SEV_INFO; s <= MD_SEV_ERROR; s++)
        if (rule->severities & MD_SEV_BIT(s))
            cJSON_AddItemToArray(list, cJSON_CreateString(md_severity_name(s)));
    return list;
}

static void render_text(const cJSON *report)
{
    const cJSON *r, *s;
    printf("%-6s %-28s %-15s %s\n", "ID", "NAME", "SEVERITIES", "TITLE");
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(report, "rules"))
    {
        char levels[64] = "";
        size_t len = 0;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(r, "severities"))
        {
            md_append_text(levels, sizeof levels, &len, len ? "," : "");
            md_append_text(levels, sizeof levels, &len, cJSON_GetStringValue(s));
        }
        printf("%-6s %-28s %-15s %s\n", md_json_get_str(r, "id"), md_json_get_str(r, "name"),
               levels, md_json_get_str(r, "title"));
    }
}

static int run(const struct md_command *cmd, int argc, char **argv)
{
    const char *arg;
    int key, rc = MD_EXIT_OK;
    bool json = false;
    while ((key = md_cli_next(cmd, argc, argv, &arg)) != -1) {
        if (key != OPT_JSON) {
            md_cli_stop(cmd, key, &rc);
            return rc;
        }
        json = true;
    }
    if (optind < argc)
        return md_cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    cJSON *report = md_report_new("rules", MD_VERSION);
    cJSON *list = cJSON_AddArrayToObject(report, "rules");
    for (const struct md_rule *const *rule = md_rules; *rule; rule++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "id", (*rule)->id);
        cJSON_AddStringToObject(r, "name", (*rule)->name);
        cJSON_AddStringToObject(r, "title", (*rule)->title);
        cJSON_AddItemToObject(r, "severities", severities(*rule));
        cJSON_AddItemToArray(list, r);
    }
    md_cli_render(cmd, report, NULL, json, render_text);
    cJSON_Delete(report);
    return MD_EXIT_OK;
}

const struct md_command md_cmd_rules = {
    .name = "rules",
    .summary = "list the diagnosis rules: the stable id each finding carries, its severities",
    .synopsis = "[--json]",
    .description =
        "Lists every rule that inspect, trace and doctor apply: its stable id (MD001...),\n"
        "its name, what it finds and the severities its findings can have (--fail-on\n"
        "takes a severity). The README explains each rule's thresholds.",
    .options = options,
    .exits = MD_EXIT_BIT(MD_EXIT_OK) | MD_EXIT_BIT(MD_EXIT_USAGE),
    .run = run,
};
