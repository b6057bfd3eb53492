// SPDX-License-Identifier: GPL-3.0-or-later
// The CI gate: fail on findings at or above a severity, and on regressions against a saved
// report (`--baseline old.json --max-regression PCT`).
#ifndef MD_GATE_H
#define MD_GATE_H

#include <stddef.h>

#include <cJSON.h>

#include "lib/error.h"

// A saved report larger than this is not one of ours.
#define MD_BASELINE_MAX_BYTES (64u << 20)

// How many findings of the report are at least min_severity (enum md_severity): its "findings"
// and those of each entry of "files".
int md_report_findings_at_least(const cJSON *report, int min_severity);

// Parses a saved `trace --json` or `doctor --json` report; name is the file, for errors.
int md_baseline_parse(const char *text, size_t len, const char *name, cJSON **out,
                      struct md_error *err);
int md_baseline_load(const char *path, cJSON **out, struct md_error *err);

// Compares current with baseline on every gated metric (lib/metrics.h) and adds
// "gate": {"baseline", "max_regression_pct", "compared", "regressions", "not_comparable", "passed",
// "warnings", "baseline_program", "same_program"} to current; each compared row has its "result"
// (within-limit, below-noise-floor, within-sampling-error, regression). A metric regresses when
// it grew by more than max_regression_pct percent and by more than its noise floor. Returns the
// number of regressions, or -1 when no metric could be compared ("passed" false): a gate that
// judged nothing has not passed.
int md_gate_check(const cJSON *baseline, const char *baseline_name, double max_regression_pct,
                  cJSON *current);

#endif
