// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/report.h"

static const cJSON *obj(const cJSON *report, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(report, key);
}

// A number that must be present: a missing one means the report cannot give the metric.
static bool number(const cJSON *o, const char *key, double *value)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        return false;
    *value = v->valuedouble;
    return true;
}

static bool op_count(const cJSON *report, double *ops)
{
    const cJSON *o = obj(report, "ops");
    return md_json_get_str(o, "source") && number(o, "total", ops) && *ops > 0;
}

static bool wall(const cJSON *r, double *v)
{
    return number(obj(r, "run"), "wall_seconds", v);
}

static bool cpu_time(const cJSON *r, double *v)
{
    double user, sys;
    if (!number(obj(r, "run"), "user_seconds", &user) ||
        !number(obj(r, "run"), "sys_seconds", &sys))
        return false;
    *v = user + sys;
    return true;
}

static bool peak_rss(const cJSON *r, double *v)
{
    return number(obj(r, "run"), "max_rss_kb", v);
}

// Peak RSS measured alike. --leaks' live-block table lives in the probe file: the pages of it a
// program touches count in its peak RSS (up to about twice the heap it keeps live), so a doctor
// run, which tracks leaks by default, is not compared with a trace run, which does not. And the
// kernel's exit records (taskstats, root) give the program's own peak, where wait4's, without
// them, also holds the copy of this tool its process was before the exec (about 2.7 MB): a
// baseline made as root against a CI run as a user read +711% for an unchanged program. A report
// without the source (an older one) is taken as measured alike.
static bool same_rss_measure(const cJSON *baseline, const cJSON *current)
{
    const char *was = md_json_get_str(obj(baseline, "run"), "max_rss_source");
    const char *now = md_json_get_str(obj(current, "run"), "max_rss_source");
    return md_json_get_bool(obj(baseline, "leaks"), "tracked") ==
               md_json_get_bool(obj(current, "leaks"), "tracked") &&
           (!was || !now || !strcmp(was, now));
}

static bool minor_faults(const cJSON *r, double *v)
{
    return number(obj(r, "run"), "minor_faults", v);
}

// The syscalls an allocator makes to get or give back memory (futex is counted apart).
static bool is_memory_syscall(const char *name)
{
    static const char *const names[] = {"mmap", "munmap", "mremap", "madvise", "brk", "mprotect"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (name && !strcmp(name, names[i]))
            return true;
    return false;
}

static bool memory_syscalls_per_op(const cJSON *r, double *v)
{
    double ops, total = 0;
    const cJSON *s;
    if (!op_count(r, &ops) || !cJSON_IsArray(obj(r, "syscalls")))
        return false;
    cJSON_ArrayForEach(s, obj(r, "syscalls"))
    {
        if (is_memory_syscall(md_json_get_str(s, "name")))
            total += md_json_get_num(s, "count");
    }
    *v = total / ops;
    return true;
}

static bool futex_waits_per_op(const cJSON *r, double *v)
{
    double ops, waits;
    if (!op_count(r, &ops) || !number(obj(r, "futex"), "waits", &waits))
        return false;
    *v = waits / ops;
    return true;
}

static bool futex_wait_seconds(const cJSON *r, double *v)
{
    return number(obj(r, "futex"), "wait_seconds", v);
}

static bool futex_wait_share(const cJSON *r, double *v)
{
    return number(obj(r, "futex"), "wait_share_of_wall", v);
}

// Below this many futex waits the share of wall time is one or two long waits, typically the
// main thread's pthread_join or a condition variable waiting for a worker: how the scheduler
// ran the threads, not lock contention. Identical runs of a 2-thread program with 1-2 waits
// went from 11.6% to 21.3%. 100 waits is a program that contends as a habit, where the share
// is an average over many waits; its floor of 5 points then applies.
#define MD_MIN_FUTEX_WAITS 100

static bool enough_futex_waits(const cJSON *r)
{
    return md_json_get_num(obj(r, "futex"), "waits") >= MD_MIN_FUTEX_WAITS;
}

// The waits inside allocator calls, as the time blocked in them per wall second: known when the
// preload or static probe saw every call (attribution available), or from the waits' call stacks
// (--stacks, where the probe did not run). *waits gets their count. Unlike the run's whole futex
// share, no pthread_join or idle worker is in it.
static bool allocator_waits(const cJSON *r, double *share, double *waits)
{
    bool probed = md_report_attributed(r);
    const cJSON *from = probed ? obj(r, "futex") : obj(r, "futex_wait_stacks");
    double wall_seconds, seconds;
    if ((!probed && !md_json_get_bool(from, "sampled")) || !wall(r, &wall_seconds) ||
        wall_seconds <= 0 || !number(from, "allocator_wait_seconds", &seconds) ||
        !number(from, "allocator_waits", waits))
        return false;
    *share = seconds / wall_seconds;
    return true;
}

static bool allocator_futex_wait_share(const cJSON *r, double *v)
{
    double waits;
    return allocator_waits(r, v, &waits);
}

static bool enough_allocator_waits(const cJSON *r)
{
    double share, waits;
    return allocator_waits(r, &share, &waits) && waits >= MD_MIN_FUTEX_WAITS;
}

// Below this many samples one sample moves the share by more than two points: a short run's
// share is noise, not a measurement.
#define MD_MIN_CPU_SAMPLES 50

static bool allocator_cpu_share(const cJSON *r, double *v)
{
    const cJSON *cpu = obj(r, "cpu");
    return md_json_get_bool(cpu, "sampled") &&
           md_json_get_num(cpu, "samples") >= MD_MIN_CPU_SAMPLES &&
           number(cpu, "allocator_share", v);
}

// Three standard errors of the difference of two sampled shares (binomial): 60 samples at a 55%
// share are +-6 points each, so two identical runs differ by up to about 27 points at 3 sigma.
static double allocator_share_noise(const cJSON *before, const cJSON *after)
{
    double variance = 0;
    const cJSON *reports[] = {before, after};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *cpu = obj(reports[i], "cpu");
        double n = md_json_get_num(cpu, "samples"), p = md_json_get_num(cpu, "allocator_share");
        if (n > 0)
            variance += p * (1 - p) / n;
    }
    return 3 * sqrt(variance);
}

const struct md_metric md_metrics[] = {
    {"wall_seconds", "wall time (s)", 1, MD_UNIT_SECONDS, 0.05, false, true, wall, NULL, NULL,
     NULL},
    {"cpu_seconds", "CPU time, user+sys (s)", 1, MD_UNIT_SECONDS, 0.05, false, true, cpu_time, NULL,
     NULL, NULL},
    // RSS moves by a few hundred KiB between identical runs (stacks, page cache of the loader).
    {"peak_rss_kb", "peak RSS (KiB)", 1, MD_UNIT_COUNT, 2048, true, true, peak_rss, NULL, NULL,
     same_rss_measure},
    {"minor_faults", "page faults (minor)", 1, MD_UNIT_COUNT, 256, false, true, minor_faults, NULL,
     NULL, NULL},
    // One syscall more per 1000 operations is the smallest change worth a failed build.
    {"memory_syscalls_per_op", "memory syscalls per 1000 ops", 1000, MD_UNIT_RATE, 0.001, true,
     true, memory_syscalls_per_op, NULL, NULL, NULL},
    {"futex_waits_per_op", "futex waits per 1000 ops", 1000, MD_UNIT_RATE, 0.001, true, true,
     futex_waits_per_op, NULL, NULL, NULL},
    {"futex_wait_seconds", "futex wait time (s)", 1, MD_UNIT_SECONDS, 0.01, false, true,
     futex_wait_seconds, NULL, NULL, NULL},
    // Shares of wall or CPU time: two percentage points is what scheduling noise reaches here;
    // the CPU share is also a sample, with its sampling error on top.
    // Waits include pthread_join and condition variables, whose share swings with scheduling.
    {"futex_wait_share", "futex wait share of wall time", 1, MD_UNIT_SHARE, 0.05, true, true,
     futex_wait_share, NULL, enough_futex_waits, NULL},
    {"allocator_futex_wait_share", "futex wait share in allocator", 1, MD_UNIT_SHARE, 0.05, true,
     true, allocator_futex_wait_share, NULL, enough_allocator_waits, NULL},
    {"allocator_cpu_share", "CPU share inside the allocator", 1, MD_UNIT_SHARE, 0.02, true, false,
     allocator_cpu_share, allocator_share_noise, NULL, NULL},
    {0},
};

const struct md_metric *md_metric_find(const char *key)
{
    for (const struct md_metric *m = md_metrics; key && m->key; m++)
        if (!strcmp(m->key, key))
            return m;
    return NULL;
}

cJSON *md_metric_row(const struct md_metric *m)
{
    cJSON *row = cJSON_CreateObject();
    cJSON_AddStringToObject(row, "metric", m->key);
    cJSON_AddStringToObject(row, "label", m->label);
    cJSON_AddNumberToObject(row, "scale", m->scale);
    return row;
}

// Whole numbers in full (a peak RSS of 1234567 KiB, not 1.23457e+06), others to 6 digits.
static void format_count(double value, char *buf, size_t size)
{
    // trunc, not a cast to an integer: that is undefined past its range (1e300 in a baseline)
    snprintf(buf, size, value == trunc(value) ? "%.0f" : "%.6g", value);
}

void md_format_metric(const char *key, double value, char *buf, size_t size)
{
    const struct md_metric *m = md_metric_find(key);
    if (!m) {
        format_count(value, buf, size);
        return;
    }
    value *= m->scale;
    switch (m->unit) {
    case MD_UNIT_SHARE: // as trace prints the futex and CPU shares
        snprintf(buf, size, "%.1f%%", 100 * value);
        return;
    case MD_UNIT_SECONDS: // as trace's header prints wall, user and sys
        snprintf(buf, size, "%.3f", value);
        return;
    case MD_UNIT_RATE:
        md_format_rate(value, buf, size);
        return;
    case MD_UNIT_COUNT:
        break;
    }
    format_count(value, buf, size);
}

void md_format_rate(double per_1000_ops, char *buf, size_t size)
{
    snprintf(buf, size, "%.3f", per_1000_ops);
}

// A double has 17 significant digits at most: past the leading zeros of a value below 1, so many
// decimals always read back as the same number.
#define MD_SIGNIFICANT_MAX 17

void md_format_decimal(double value, char *buf, size_t size)
{
    // %g would print 1e-07; %f alone rounds 0.0000001 to 0.000000
    int leading = value != 0 && fabs(value) < 1 ? (int)-floor(log10(fabs(value))) : 0;
    int most = leading + MD_SIGNIFICANT_MAX;
    for (int decimals = 0; decimals <= most; decimals++) {
        int n = snprintf(buf, size, "%.*f", decimals, value);
        if (n < 0 || (size_t)n >= size) // no room for so many digits: the exact value, as %g has it
            break;
        if (strtod(buf, NULL) == value)
            return;
    }
    snprintf(buf, size, "%.17g", value);
}

#define MD_CHANGE_SHOWN_MAX 99999.0

void md_format_change(double pct, char *buf, size_t size)
{
    if (pct < MD_CHANGE_SHOWN_MAX) // a lower-is-better value falls by at most 100%
        snprintf(buf, size, "%+.1f%%", pct);
    else
        snprintf(buf, size, ">%+.0f%%", MD_CHANGE_SHOWN_MAX);
}

void md_format_row_change(const cJSON *row, char *buf, size_t size)
{
    const cJSON *pct = cJSON_GetObjectItemCaseSensitive(row, "change_pct");
    double before = md_json_get_num(row, "baseline"), after = md_json_get_num(row, "current");
    if (cJSON_IsNumber(pct))
        md_format_change(pct->valuedouble, buf, size);
    else if (after > before && before > 0) // change_pct is null past the largest number
        md_format_change(INFINITY, buf, size);
    else
        snprintf(buf, size, after > before ? "new" : "-");
}

// The fields the metrics are read from, as {object, key} of the report (an entry of "syscalls"
// has its "name" and "count" too), and what each must be: a field of another type (a number
// edited into a string) would make its metric silently missing, and the gate compare less.
enum input_type { MD_INPUT_NUMBER, MD_INPUT_FLAG, MD_INPUT_NAME };

static const struct {
    const char *object, *key;
    enum input_type type;
} inputs[] = {
    {"run", "wall_seconds", MD_INPUT_NUMBER},
    {"run", "user_seconds", MD_INPUT_NUMBER},
    {"run", "sys_seconds", MD_INPUT_NUMBER},
    {"run", "max_rss_kb", MD_INPUT_NUMBER},
    {"run", "max_rss_source", MD_INPUT_NAME},
    {"run", "minor_faults", MD_INPUT_NUMBER},
    {"ops", "total", MD_INPUT_NUMBER},
    {"ops", "source", MD_INPUT_NAME},
    {"futex", "waits", MD_INPUT_NUMBER},
    {"futex", "wait_seconds", MD_INPUT_NUMBER},
    {"futex", "wait_share_of_wall", MD_INPUT_NUMBER},
    {"futex", "allocator_waits", MD_INPUT_NUMBER},
    {"futex", "allocator_wait_seconds", MD_INPUT_NUMBER},
    {"futex_wait_stacks", "sampled", MD_INPUT_FLAG},
    {"futex_wait_stacks", "allocator_waits", MD_INPUT_NUMBER},
    {"futex_wait_stacks", "allocator_wait_seconds", MD_INPUT_NUMBER},
    {"cpu", "sampled", MD_INPUT_FLAG},
    {"cpu", "samples", MD_INPUT_NUMBER},
    {"cpu", "allocator_share", MD_INPUT_NUMBER},
    {"leaks", "tracked", MD_INPUT_FLAG},
    {"attribution", "available", MD_INPUT_FLAG},
};

// -1 with err when v, the report's number at field, is not one a run measures.
static int check_input(double v, const char *name, const char *field, struct md_error *err)
{
    if (!isfinite(v) || v < 0)
        return md_fail(err, "%s: %s is %g: not a measurement (%s)", name, field, v,
                       isfinite(v) ? "negative" : "not a finite number");
    return 0;
}

// What a JSON value is, for an error naming a field of the wrong type.
static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsBool(v))
        return "true or false";
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsArray(v))
        return "a list";
    return cJSON_IsObject(v) ? "an object" : "not a JSON value";
}

// -1 with err when v, present at field, is of another type than the field's (null is the
// report's own "not measured", as an absent field).
static int check_type(const cJSON *v, enum input_type type, const char *name, const char *field,
                      struct md_error *err)
{
    static const char *const wanted[] = {"a number", "true or false", "a string"};
    bool fits = !v || cJSON_IsNull(v) || (type == MD_INPUT_NUMBER && cJSON_IsNumber(v)) ||
                (type == MD_INPUT_FLAG && cJSON_IsBool(v)) ||
                (type == MD_INPUT_NAME && cJSON_IsString(v));
    if (fits)
        return type == MD_INPUT_NUMBER && cJSON_IsNumber(v)
                   ? check_input(v->valuedouble, name, field, err)
                   : 0;
    if (cJSON_IsString(v))
        return md_fail(err, "%s: %s is the string \"%.32s\": not %s", name, field, v->valuestring,
                       wanted[type]);
    return md_fail(err, "%s: %s is %s: not %s", name, field, json_type_name(v), wanted[type]);
}

// The objects the fields are in, and "syscalls", must be what the report writes (or null).
static int check_containers(const cJSON *report, const char *name, struct md_error *err)
{
    const cJSON *s = obj(report, "syscalls");
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        const cJSON *o = obj(report, inputs[i].object);
        if (o && !cJSON_IsNull(o) && !cJSON_IsObject(o))
            return md_fail(err, "%s: %s is %s: not an object", name, inputs[i].object,
                           json_type_name(o));
    }
    if (s && !cJSON_IsNull(s) && !cJSON_IsArray(s))
        return md_fail(err, "%s: syscalls is %s: not a list", name, json_type_name(s));
    return 0;
}

static int check_inputs(const cJSON *report, const char *name, struct md_error *err)
{
    char field[64];
    const cJSON *s;
    if (check_containers(report, name, err))
        return -1;
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        const cJSON *v =
            cJSON_GetObjectItemCaseSensitive(obj(report, inputs[i].object), inputs[i].key);
        snprintf(field, sizeof field, "%s.%s", inputs[i].object, inputs[i].key);
        if (check_type(v, inputs[i].type, name, field, err))
            return -1;
    }
    cJSON_ArrayForEach(s, obj(report, "syscalls"))
    {
        if (!cJSON_IsObject(s))
            return md_fail(err, "%s: syscalls[] holds %s: not an object", name, json_type_name(s));
        if (check_type(cJSON_GetObjectItemCaseSensitive(s, "name"), MD_INPUT_NAME, name,
                       "syscalls[].name", err) ||
            check_type(cJSON_GetObjectItemCaseSensitive(s, "count"), MD_INPUT_NUMBER, name,
                       "syscalls[].count", err))
            return -1;
    }
    return 0;
}

int md_metrics_check(const cJSON *report, const char *name, struct md_error *err)
{
    if (check_inputs(report, name, err))
        return -1;
    for (const struct md_metric *m = md_metrics; m->key; m++) {
        double value;
        char text[64];
        if (!m->gated || !m->get(report, &value))
            continue;
        md_format_metric(m->key, value, text, sizeof text); // a quotient may still overflow
        if (!isfinite(value) || strlen(text) > MD_METRIC_TEXT_MAX)
            return md_fail(err, "%s: %s would be %g: too large for a measurement", name, m->key,
                           value);
    }
    return 0;
}
