// SPDX-License-Identifier: GPL-3.0-or-later
// MD010: blocks still allocated when the program ended (trace --leaks), at least a set size.
//
// Memory not freed at exit is not always a bug (a program may leave its last data to the OS),
// so the rule fires on the amount: trace's --leak-min BYTES sets it, the default below is for
// when it is not given. The top site is the call stack that leaked the most bytes.
#include <stdio.h>

#include "lib/report.h"
#include "rules/rules.h"

// 1 MiB by default: python3 -c pass leaves 0.4 MB allocated at exit by design (interned objects
// it does not tear down); a program that leaves more than a megabyte is worth a look.
#define MD010_DEFAULT_MIN_BYTES (1u << 20)

static void site_text(const cJSON *site, char *out, size_t size)
{
    size_t len = 0;
    out[0] = 0;
    const cJSON *frame;
    cJSON_ArrayForEach(frame, cJSON_GetObjectItemCaseSensitive(site, "frames"))
    {
        if (!cJSON_IsString(frame) || len + 1 >= size)
            continue;
        int n = snprintf(out + len, size - len, "%s%s", len ? " <- " : "", frame->valuestring);
        if (n > 0)
            len = len + (size_t)n < size ? len + (size_t)n : size - 1;
    }
    if (!len)
        snprintf(out, size, "an unknown call stack");
}

// Whether the program reached its end: blocks still held when a signal killed it (a crash) or
// --timeout stopped it were never meant to be freed yet, and are no leak.
static bool ended_by_itself(const cJSON *trace)
{
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(trace, "run");
    return !md_json_get_str(run, "signal") && !md_json_get_bool(run, "timed_out");
}

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->trace || !ended_by_itself(in->trace))
        return;
    const cJSON *leaks = cJSON_GetObjectItemCaseSensitive(in->trace, "leaks");
    if (!cJSON_IsObject(leaks))
        return;
    double min = in->leak_min_bytes ? (double)in->leak_min_bytes : MD010_DEFAULT_MIN_BYTES;
    double bytes = md_json_get_num(leaks, "bytes"), blocks = md_json_get_num(leaks, "blocks");
    if (bytes <= 0 || bytes < min)
        return;
    const cJSON *top = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(leaks, "by_stack"), 0);
    char site[384], message[768], fix[1536], cmd[512];
    site_text(top, site, sizeof site);
    if (top)
        snprintf(message, sizeof message,
                 "%.0f block%s, %.0f bytes were never freed (threshold %.0f B); the most from %s: "
                 "%.0f block%s, %.0f bytes",
                 blocks, md_plural_s(blocks), bytes, min, site, md_json_get_num(top, "blocks"),
                 md_plural_s(md_json_get_num(top, "blocks")), md_json_get_num(top, "bytes"));
    else // trace lists only the stacks that leaked --leak-min or more on their own
        snprintf(message, sizeof message,
                 "%.0f block%s, %.0f bytes were never freed (threshold %.0f B), from call stacks "
                 "that each leaked less than that",
                 blocks, md_plural_s(blocks), bytes, min);
    md_rule_trace_command(in->trace, cmd, sizeof cmd);
    snprintf(fix, sizeof fix,
             "free the blocks allocated at the top site, or keep them on purpose and raise the "
             "threshold; list every site with `%s trace --leaks --leak-min 1 -- %s`",
             md_rule_tool(in), cmd);
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_WARNING, message, fix);
    cJSON_AddNumberToObject(ev, "blocks", blocks);
    cJSON_AddNumberToObject(ev, "bytes", bytes);
    cJSON_AddNumberToObject(ev, "min_bytes", min);
    if (top) {
        cJSON *t = cJSON_AddObjectToObject(ev, "top_site");
        cJSON_AddItemToObject(t, "frames",
                              cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(top, "frames"), 1));
        cJSON_AddNumberToObject(t, "blocks", md_json_get_num(top, "blocks"));
        cJSON_AddNumberToObject(t, "bytes", md_json_get_num(top, "bytes"));
    } else {
        cJSON_AddNullToObject(ev, "top_site");
    }
}

const struct md_rule md_rule_leaks = {
    .id = "MD010",
    .name = "leaks",
    .title = "memory not freed at exit",
    .severities = MD_SEV_BIT(MD_SEV_WARNING),
    .check = check,
};
