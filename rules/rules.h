// SPDX-License-Identifier: GPL-3.0-or-later
// Diagnosis rules. Each rule lives in its own file and reads only the report model (cJSON), so
// it can be tested on any report; all rules are registered in one table in rules.c.
#ifndef MD_RULES_H
#define MD_RULES_H

#include <cJSON.h>

enum md_severity { MD_SEV_INFO, MD_SEV_WARNING, MD_SEV_ERROR };

struct md_rule_input {
    const cJSON *file;  // one inspect entry (see README: JSON schema), or NULL
    const char *expect; // --expect ALLOC, or NULL
    const cJSON *trace; // a trace report, or NULL
};

struct md_rule {
    const char *id;   // stable: "MD001"
    const char *name; // stable slug: "musl-malloc-threads"
    const char *title;
    void (*check)(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings);
};

extern const struct md_rule *const md_rules[];

void md_rules_run(const struct md_rule_input *in, cJSON *findings);

// Appends {"id","rule","severity","title","message","fix","evidence":{}} and returns the
// evidence object for the rule to fill.
cJSON *md_finding_add(cJSON *findings, const struct md_rule *rule, enum md_severity severity,
                      const char *message, const char *fix);

const char *md_severity_name(enum md_severity severity);
// -1 when name is not a severity
int md_severity_parse(const char *name);

// Shared reads of an inspect entry.
const char *md_rule_active_family(const cJSON *file); // "musl", "mimalloc", ... or NULL
const char *md_rule_active_id(const cJSON *file);

#endif
