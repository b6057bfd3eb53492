// SPDX-License-Identifier: GPL-3.0-or-later
// --stacks: the call stacks of every blocking futex call of the program, in its own code or in
// any library, static programs included (lib/perf.h samples them at the syscall's entry). Each
// sampled wait is matched with the call strace saw on the same thread at the same time, which
// gives its duration: the time blocked per stack.
#ifndef MD_TRACE_FUTEX_H
#define MD_TRACE_FUTEX_H

#include <stdbool.h>
#include <stdio.h>

#include <cJSON.h>

#include "lib/error.h"
#include "lib/perf.h"
#include "lib/strace.h"

// Adds "futex_wait_stacks" to report: with perf NULL, only why they are missing. With folded,
// writes one line per stack to that stream, under the root frame "[futex-wait]" and counted in
// waits.
int md_trace_futex_stacks(const struct md_perf_result *perf, const char *why,
                          const struct md_strace_log *log, FILE *folded, cJSON *report,
                          struct md_error *err);

#endif
