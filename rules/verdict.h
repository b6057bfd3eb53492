// SPDX-License-Identifier: GPL-3.0-or-later
// doctor's verdict over a trace report whose findings are in: one place decides it, for the text
// and the JSON (`verdict`), so that a CI job reading the JSON sees what a person reads.
#ifndef MD_VERDICT_H
#define MD_VERDICT_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>

enum md_verdict {
    MD_VERDICT_FINDINGS,   // a rule fired
    MD_VERDICT_HEALTHY,    // none fired, on a whole run whose numbers the rules could judge
    MD_VERDICT_NOT_JUDGED, // none fired, but that does not mean healthy: why says so
};

// The verdict, and for MD_VERDICT_NOT_JUDGED why (a clause: "the program was killed by
// SIGSEGV, so ...").
enum md_verdict md_verdict_of(const cJSON *report, char *why, size_t size);
const char *md_verdict_name(enum md_verdict verdict); // "findings", "healthy", "not-judged"

// Whether the report's run stopped before the program's end (timed out, killed by a signal,
// interrupted), and what stopped it in what ("the program timed out (--timeout)"): its numbers
// cover part of a run.
bool md_run_stopped_short(const cJSON *report, char *what, size_t size);

// Adds {"status": name, "reason": why or null} to the report as "verdict".
void md_verdict_add(cJSON *report);

#endif
