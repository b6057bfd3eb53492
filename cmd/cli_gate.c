// SPDX-License-Identifier: GPL-3.0-or-later
// --fail-on, --baseline and --max-regression: the same options and exit codes in every command
// that produces findings; the comparison itself is lib/gate.c.
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "cmd/trace_cli.h"
#include "lib/gate.h"
#include "lib/metrics.h"
#include "lib/report.h"
#include "rules/rules.h"

// Runs of the same program differ by a few percent; 10% is a change, not noise.
#define MD_DEFAULT_MAX_REGRESSION 10.0

void md_cli_gate_init(struct md_gate_args *g)
{
    *g = (struct md_gate_args){.fail_on = -1, .max_regression = MD_DEFAULT_MAX_REGRESSION};
}

#define MD_MAX_REGRESSION_PCT 1e6

// A percentage in plain decimal digits ("10", "2.5"), as --timeout takes seconds: strtod's other
// forms (0x10, " 10", 1e1, inf) are refused, and "10%" is told to drop the sign.
static bool parse_percent(const struct md_command *cmd, const char *arg, double *out,
                          int *exit_code)
{
    size_t len = strlen(arg), digits = strspn(arg, "0123456789.");
    char *end;
    *out = strtod(arg, &end);
    if (len > 1 && digits == len - 1 && arg[len - 1] == '%') {
        *exit_code = md_cli_usage_error(
            cmd, "--max-regression takes the number without the %%: '%.*s', not '%s'",
            (int)(len - 1), arg, arg);
        return false;
    }
    if (end == arg || *end || digits != len) {
        *exit_code = md_cli_usage_error(
            cmd,
            "--max-regression needs a percentage in plain decimal digits (e.g. 10 or 2.5), "
            "not '%s'",
            arg);
        return false;
    }
    if (*out > MD_MAX_REGRESSION_PCT) { // a decimal past DBL_MAX is inf: also here
        *exit_code =
            md_cli_usage_error(cmd, "--max-regression: at most %.0f", MD_MAX_REGRESSION_PCT);
        return false;
    }
    return true;
}

bool md_cli_gate_option(const struct md_command *cmd, int key, const char *arg,
                        struct md_gate_args *g, int *exit_code)
{
    switch (key) {
    case MD_OPT_FAIL_ON:
        g->fail_on = md_severity_parse(arg);
        if (g->fail_on < 0) {
            *exit_code =
                md_cli_usage_error(cmd, "--fail-on needs info, warning or error, not '%s'", arg);
            return false;
        }
        return true;
    case MD_OPT_BASELINE:
        g->baseline = arg;
        return true;
    case MD_OPT_MAX_REGRESSION:
        g->max_regression_set = true;
        return parse_percent(cmd, arg, &g->max_regression, exit_code);
    }
    return false;
}

bool md_cli_gate_valid(const struct md_command *cmd, const struct md_gate_args *g, int *exit_code)
{
    if (g->max_regression_set && !g->baseline) {
        *exit_code = md_cli_usage_error(cmd, "--max-regression needs --baseline FILE");
        return false;
    }
    return true;
}

bool md_cli_gate_load(const struct md_command *cmd, const struct md_gate_args *g, cJSON **baseline)
{
    struct md_error err;
    *baseline = NULL;
    if (!g->baseline)
        return true;
    if (md_baseline_load(g->baseline, baseline, &err)) {
        md_cli_error(cmd, "%s", err.msg);
        return false;
    }
    return true;
}

static void print_regression(const struct md_command *cmd, const cJSON *r, double limit)
{
    const char *key = md_json_get_str(r, "metric");
    char change[48], before[48], after[48], pct[64];
    md_format_row_change(r, change, sizeof change);
    md_format_metric(key, md_json_get_num(r, "baseline"), before, sizeof before);
    md_format_metric(key, md_json_get_num(r, "current"), after, sizeof after);
    md_format_decimal(limit, pct, sizeof pct); // as --max-regression took it
    md_cli_error(cmd, "regression: %s %s -> %s (%s, limit %s%%)", md_json_get_str(r, "label"),
                 before, after, change, pct);
}

// A gate that compared no metric judged nothing: exit 2, as for a baseline refused before the
// run, since what needs fixing is the gate's setup (a baseline of another command, a run whose
// operations were not counted), not the program.
static int nothing_compared(const struct md_command *cmd, const struct md_gate_args *g,
                            const cJSON *gate)
{
    char names[512] = "";
    size_t len = 0;
    const cJSON *name;
    cJSON_ArrayForEach(name, cJSON_GetObjectItemCaseSensitive(gate, "not_comparable"))
    {
        md_append_text(names, sizeof names, &len, len ? ", " : "");
        md_append_text(names, sizeof names, &len, name->valuestring);
    }
    md_cli_error(cmd,
                 "gate: nothing compared with %s: no metric was measured alike in both runs (%s); "
                 "make the baseline with the gated run's command",
                 g->baseline, names);
    return MD_EXIT_USAGE;
}

int md_cli_gate_apply(const struct md_command *cmd, const struct md_gate_args *g,
                      const cJSON *baseline, cJSON *report)
{
    int rc = MD_EXIT_OK;
    int regressions =
        baseline ? md_gate_check(baseline, g->baseline, g->max_regression, report) : 0;
    const cJSON *gate = cJSON_GetObjectItemCaseSensitive(report, "gate"), *w;
    cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(gate, "warnings"))
        md_cli_error(cmd, "warning: %s", w->valuestring);
    if (regressions > 0) {
        const cJSON *r;
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(gate, "regressions"))
            print_regression(cmd, r, g->max_regression);
        rc = MD_EXIT_CHECK;
    }
    int failing = g->fail_on < 0 ? 0 : md_report_findings_at_least(report, g->fail_on);
    if (failing) {
        md_cli_error(cmd, "%d finding%s at or above %s (--fail-on)", failing,
                     failing == 1 ? "" : "s", md_severity_name(g->fail_on));
        rc = MD_EXIT_CHECK;
    }
    return regressions < 0 ? nothing_compared(cmd, g, gate) : rc;
}
