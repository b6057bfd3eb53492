// SPDX-License-Identifier: GPL-3.0-or-later
// trace --compare: the same program traced twice, with its own allocator and with mdalloc (or
// another allocator library) preloaded, and the numbers side by side.
#ifndef MD_COMPARE_H
#define MD_COMPARE_H

#include "lib/trace.h"

// Traces the program as md_trace does (report gets every field of a trace report), then, when
// an allocator can be preloaded, again with `with` (NULL: mdalloc built for the program's libc)
// and adds "compare": {"possible", "allocator", "library", "metrics": [...], "report"}. When it
// cannot preload (static program, malloc defined by the program) "compare" says why and what to
// do instead.
int md_trace_compare(const struct md_trace_options *opt, const char *with, cJSON *report,
                     struct md_run_result *run, struct md_error *err);

#endif
