// SPDX-License-Identifier: GPL-3.0-or-later
// The numbers a trace report is judged by: one table, read by `trace --compare` (side by side)
// and by the CI gate (`--baseline`). Every metric is "lower is better".
#ifndef MD_METRICS_H
#define MD_METRICS_H

#include <stdbool.h>

#include <cJSON.h>

#include "lib/error.h"

// What a metric's number is, so that text can show it as the trace report does (a share as a
// percentage, seconds to the millisecond); JSON keeps the plain number.
enum md_metric_unit { MD_UNIT_COUNT, MD_UNIT_RATE, MD_UNIT_SECONDS, MD_UNIT_SHARE };

struct md_metric {
    const char *key;   // stable JSON name: "memory_syscalls_per_op"
    const char *label; // for people: "memory syscalls per 1000 ops"
    double scale;      // the value is shown multiplied by this (per op -> per 1000 ops)
    enum md_metric_unit unit;
    // A change smaller than this (in the metric's own unit) is noise, whatever its percentage:
    // 0 -> 1 futex wait is +inf% but means nothing.
    double noise_floor;
    bool gated;        // compared by --baseline (same program, same allocator: a regression)
    bool side_by_side; // shown by --compare (two allocators: the share of one is not the other's)
    // false when the report cannot give the metric (no op count, CPU not sampled)
    bool (*get)(const cJSON *report, double *value);
    // A measured metric's own uncertainty between two reports (a share of CPU samples has a
    // sampling error), in its unit; a change within it is not a regression. NULL: none.
    double (*sampling_noise)(const cJSON *before, const cJSON *after);
    // false when the count behind the metric is too small in this report for the gate to judge
    // a change (a share made of two waits); the gate then lists it as not comparable. NULL:
    // always enough. --compare still shows it: side by side, a number is not a verdict.
    bool (*enough_to_gate)(const cJSON *report);
    // false when the two reports measured the metric under conditions that move it by
    // themselves (peak RSS with and without --leaks' live-block table); the gate then lists it as
    // not comparable. NULL: always alike.
    bool (*alike)(const cJSON *baseline, const cJSON *current);
};

// Ends with an entry whose key is NULL.
extern const struct md_metric md_metrics[];

// The metric named key in JSON, or NULL (a report of another version may name others).
const struct md_metric *md_metric_find(const char *key);

// A new JSON row naming the metric: {"metric": key, "label", "scale"}; the caller adds values.
cJSON *md_metric_row(const struct md_metric *m);

// The value of the metric named key (unscaled, as in JSON) as text shows it: shares in percent,
// seconds to the millisecond, rates per 1000 ops to 3 decimals, counts whole.
void md_format_metric(const char *key, double value, char *buf, size_t size);

// A rate per 1000 ops as text shows it: three decimals always ("3.000", not "3"), so that a
// column of rates lines up and a whole rate does not look rounded. The one format of trace's
// syscall table, doctor's key numbers, compare and the gate.
void md_format_rate(double per_1000_ops, char *buf, size_t size);

// A number in plain decimal digits, the form options take (--timeout 0.0000001, not 1e-07):
// the fewest decimals that read back as the same double, no exponent (%.17g when buf has no room
// for them: a value below 1e-40 or so in a 64-byte buffer).
void md_format_decimal(double value, char *buf, size_t size);

// A change in percent as text shows it: "+12.3%"; past +99999% (a baseline near 0), ">+99999%",
// so that it stays in its column. At most MD_CHANGE_TEXT_MAX characters.
void md_format_change(double pct, char *buf, size_t size);
#define MD_CHANGE_TEXT_MAX 9

// The change of a gate's compared row ({baseline, current, change_pct}) as text shows it:
// md_format_change's; "new" from a baseline of 0; ">+99999%" past the largest number (a baseline
// near 0); "-" when there is no change to show (0 -> 0).
void md_format_row_change(const cJSON *row, char *buf, size_t size);

// The widest text md_format_metric gives for a measured value: the width of a table's columns.
#define MD_METRIC_TEXT_MAX 14

// Checks the numbers of a report read back (a baseline, maybe edited by hand): each field the
// metrics are made of is of its type (a number, not "2048"; true or false; a name) or null, each
// number is finite and not negative, and each gated metric's value fits MD_METRIC_TEXT_MAX.
// -1 with err "NAME: FIELD is VALUE: why" naming the first that is not.
int md_metrics_check(const cJSON *report, const char *name, struct md_error *err);

#endif
