// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/gate.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/metrics.h"
#include "lib/report.h"
#include "lib/path.h"
#include "rules/rules.h"
#include "rules/verdict.h"

static int count_in(const cJSON *findings, int min_severity)
{
    int count = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, findings)
    {
        const char *name = md_json_get_str(f, "severity");
        count += name && md_severity_parse(name) >= min_severity;
    }
    return count;
}

int md_report_findings_at_least(const cJSON *report, int min_severity)
{
    int count = count_in(cJSON_GetObjectItemCaseSensitive(report, "findings"), min_severity);
    const cJSON *file;
    cJSON_ArrayForEach(file, cJSON_GetObjectItemCaseSensitive(report, "files")) count +=
        count_in(cJSON_GetObjectItemCaseSensitive(file, "findings"), min_severity);
    return count;
}

static bool gated_metrics_in(const cJSON *report)
{
    double value;
    for (const struct md_metric *m = md_metrics; m->key; m++)
        if (m->gated && m->get(report, &value))
            return true;
    return false;
}

// A trace or doctor report of the schema this version reads. One of another version is said to
// be one (its fields may mean other things: refused all the same), not "not a report".
static int check_kind(const cJSON *r, const char *name, struct md_error *err)
{
    static const char ours[] = "malloc-doctor/";
    const char *schema = md_json_get_str(r, "schema");
    const char *command = md_json_get_str(r, "command");
    if (schema && strcmp(schema, MD_SCHEMA) && !strncmp(schema, ours, sizeof ours - 1))
        return md_fail(err,
                       "%s: a report of schema %.64s, which this version does not read (it reads "
                       "%s)",
                       name, schema, MD_SCHEMA);
    if (!cJSON_IsObject(r) || !schema || strcmp(schema, MD_SCHEMA) || !command ||
        (strcmp(command, "trace") && strcmp(command, "doctor")))
        return md_fail(err,
                       "%s: not a malloc-doctor trace report (need schema %s from "
                       "`trace --json` or `doctor --json`)",
                       name, MD_SCHEMA);
    return 0;
}

int md_baseline_parse(const char *text, size_t len, const char *name, cJSON **out,
                      struct md_error *err)
{
    const char *end = NULL;
    cJSON *r = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!r)
        return md_fail(err, "%s: not JSON (error near byte %zu)", name,
                       end && end >= text ? (size_t)(end - text) : (size_t)0);
    size_t used = (size_t)(end - text);
    while (used < len && strchr(" \t\r\n", text[used]) && text[used])
        used++;
    if (used < len) { // two reports concatenated, or one with something after it: not one report
        cJSON_Delete(r);
        return md_fail(err, "%s: not JSON (something after the report, at byte %zu)", name, used);
    }
    if (check_kind(r, name, err)) {
        cJSON_Delete(r);
        return -1;
    }
    // edited by hand: "2048" for 2048 (its metric then missing), inf in the table, a column
    // overrun; checked first, so that the error names the field rather than "no metric"
    if (md_metrics_check(r, name, err)) {
        cJSON_Delete(r);
        return -1;
    }
    if (!gated_metrics_in(r)) { // a gate that compares nothing would always pass
        cJSON_Delete(r);
        return md_fail(err,
                       "%s: a report without any metric the gate compares (peak RSS, "
                       "memory syscalls or futex waits per operation...)",
                       name);
    }
    *out = r;
    return 0;
}

// read() until n bytes or the end of the file; -1 on an error.
static ssize_t read_all(int fd, char *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t got = read(fd, buf + done, n - done);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -1 : (ssize_t)done;
        done += (size_t)got;
    }
    return (ssize_t)done;
}

// Reads the whole regular file at fd into a new buffer; NULL with err set when it cannot.
static char *read_report(int fd, const char *path, size_t *len, struct md_error *err)
{
    struct stat st;
    char *text = NULL;
    errno = 0; // a short read (the file shrank) sets none: EIO then
    // sized to the file: the tool's memory at fork time is counted in the program's peak RSS
    if (fstat(fd, &st) || !S_ISREG(st.st_mode))
        md_fail(err, "%s: not a regular file", path);
    else if ((unsigned long long)st.st_size > MD_BASELINE_MAX_BYTES)
        md_fail(err, "%s: larger than %u MiB, not a report", path, MD_BASELINE_MAX_BYTES >> 20);
    else if (!(text = malloc((size_t)st.st_size + 1)))
        md_fail(err, "%s: out of memory", path);
    else if (read_all(fd, text, (size_t)st.st_size) != (ssize_t)st.st_size) {
        md_fail_errno(err, errno ? errno : EIO, "%s: cannot read", path);
        free(text);
        text = NULL;
    } else
        *len = (size_t)st.st_size;
    return text;
}

int md_baseline_load(const char *path, cJSON **out, struct md_error *err)
{
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer; it is refused just after
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return md_fail_errno(err, errno, "%s", path);
    size_t len = 0;
    char *text = read_report(fd, path, &len, err);
    close(fd);
    int rc = text ? md_baseline_parse(text, len, path, out, err) : -1;
    free(text);
    return rc;
}

// How a compared metric fared; the order is that of the checks in judge().
enum judgement { MD_WITHIN_LIMIT, MD_BELOW_FLOOR, MD_WITHIN_SAMPLING, MD_REGRESSED };

// "result" of a compared row: a change past the limit that is noise says which noise, so that a
// table showing +900% on a passing gate says why it passed.
static const char *const judgement_names[] = {"within-limit", "below-noise-floor",
                                              "within-sampling-error", "regression"};

static enum judgement judge(const struct md_metric *m, const cJSON *baseline, const cJSON *current,
                            double before, double after, double max_pct)
{
    double growth = after - before;
    if (before > 0 ? 100 * growth / before <= max_pct : growth <= 0)
        return MD_WITHIN_LIMIT;
    if (growth <= m->noise_floor)
        return MD_BELOW_FLOOR;
    if (m->sampling_noise && growth <= m->sampling_noise(baseline, current))
        return MD_WITHIN_SAMPLING;
    return MD_REGRESSED;
}

static cJSON *comparison(const struct md_metric *m, double before, double after,
                         enum judgement judged)
{
    cJSON *c = md_metric_row(m);
    cJSON_AddNumberToObject(c, "baseline", before);
    cJSON_AddNumberToObject(c, "current", after);
    double pct = before > 0 ? 100 * (after - before) / before : NAN;
    if (isfinite(pct)) // past DBL_MAX (a baseline near 0) it is null, as from 0
        cJSON_AddNumberToObject(c, "change_pct", pct);
    else
        cJSON_AddNullToObject(c, "change_pct");
    cJSON_AddStringToObject(c, "result", judgement_names[judged]);
    return c;
}

// Both reports give the metric, each with enough behind it to judge a change.
static bool comparable(const struct md_metric *m, const cJSON *baseline, const cJSON *current,
                       double *before, double *after)
{
    if (!m->get(baseline, before) || !m->get(current, after))
        return false;
    if (m->alike && !m->alike(baseline, current))
        return false;
    return !m->enough_to_gate || (m->enough_to_gate(baseline) && m->enough_to_gate(current));
}

// What the user should know about the comparison, as "warnings": a baseline of another
// program, or of a run that stopped short.
static void add_warnings(cJSON *gate, const cJSON *baseline, const char *baseline_name,
                         const cJSON *current)
{
    char text[512], what[96];
    cJSON *warnings = cJSON_AddArrayToObject(gate, "warnings");
    // a baseline of another program compares two different things: said, not refused (a
    // renamed or moved build is the same program)
    const char *was = md_json_get_str(cJSON_GetObjectItemCaseSensitive(baseline, "target"), "path");
    const char *now = md_json_get_str(cJSON_GetObjectItemCaseSensitive(current, "target"), "path");
    bool same = !was || !now || !strcmp(md_path_base_name(was), md_path_base_name(now));
    md_json_str(gate, "baseline_program", was);
    cJSON_AddBoolToObject(gate, "same_program", same);
    if (!same) {
        snprintf(text, sizeof text, "%s is a report of %s, another program than this run's",
                 baseline_name, was);
        cJSON_AddItemToArray(warnings, cJSON_CreateString(text));
    }
    // said, not refused: a server gated under --timeout stops short in every run, its baseline too
    if (md_run_stopped_short(baseline, what, sizeof what)) {
        snprintf(text, sizeof text,
                 "%s covers only part of a run (%s): this run is compared with that part",
                 baseline_name, what);
        cJSON_AddItemToArray(warnings, cJSON_CreateString(text));
    }
}

int md_gate_check(const cJSON *baseline, const char *baseline_name, double max_regression_pct,
                  cJSON *current)
{
    cJSON *gate = cJSON_AddObjectToObject(current, "gate");
    cJSON_AddStringToObject(gate, "baseline", baseline_name);
    cJSON_AddNumberToObject(gate, "max_regression_pct", max_regression_pct);
    cJSON *compared = cJSON_AddArrayToObject(gate, "compared");
    cJSON *regressions = cJSON_AddArrayToObject(gate, "regressions");
    cJSON *skipped = cJSON_AddArrayToObject(gate, "not_comparable");
    int count = 0;
    for (const struct md_metric *m = md_metrics; m->key; m++) {
        double before, after;
        if (!m->gated)
            continue;
        if (!comparable(m, baseline, current, &before, &after)) {
            cJSON_AddItemToArray(skipped, cJSON_CreateString(m->key));
            continue;
        }
        enum judgement judged = judge(m, baseline, current, before, after, max_regression_pct);
        cJSON_AddItemToArray(compared, comparison(m, before, after, judged));
        if (judged == MD_REGRESSED) {
            cJSON_AddItemToArray(regressions, comparison(m, before, after, judged));
            count++;
        }
    }
    // nothing compared is not a pass: a gate that judged nothing would pass every change
    bool nothing = cJSON_GetArraySize(compared) == 0;
    cJSON_AddBoolToObject(gate, "passed", count == 0 && !nothing);
    add_warnings(gate, baseline, baseline_name, current);
    return nothing ? -1 : count;
}
