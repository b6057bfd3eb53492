// SPDX-License-Identifier: GPL-3.0-or-later
// Fuzz target: the baseline reader of the CI gate (lib/gate.c). The input goes to
// md_baseline_parse in a heap buffer of exactly its length (no terminator) and through
// md_baseline_load from a file; a report that parses is then gated against itself, which must
// not regress, and its findings are counted by severity, which must not grow with the severity.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/gate.h"
#include "lib/metrics.h"
#include "rules/rules.h"
#include "tests/fuzz/harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct fuzz_dir input;

static void cleanup(void)
{
    fuzz_dir_remove(&input);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_dir_init(&input, "baseline.json");
    atexit(cleanup);
    return 0;
}

static void check_report(cJSON *report)
{
    double value;
    for (const struct md_metric *m = md_metrics; m->key; m++)
        m->get(report, &value);
    int info = md_report_findings_at_least(report, MD_SEV_INFO);
    int warning = md_report_findings_at_least(report, MD_SEV_WARNING);
    int error = md_report_findings_at_least(report, MD_SEV_ERROR);
    if (info < warning || warning < error || error < 0)
        abort();
    cJSON *same = cJSON_Duplicate(report, 1);
    if (!same)
        abort();
    // a run never regresses against itself; it may have nothing both runs measured alike (-1:
    // a metric with too few samples to gate), which the gate reports as an error, not a pass
    if (md_gate_check(report, "fuzz", 10, same) > 0)
        abort();
    cJSON_Delete(same);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    struct md_error err;
    cJSON *report = NULL;
    int parsed = md_baseline_parse(text, size, "fuzz", &report, &err);
    free(text);
    if (!parsed) {
        check_report(report);
        cJSON_Delete(report);
    }
    fuzz_write(&input, data, size);
    cJSON *loaded = NULL;
    if (md_baseline_load(input.path, &loaded, &err) != parsed) // the file path agrees
        abort();
    cJSON_Delete(loaded);
    return 0;
}
