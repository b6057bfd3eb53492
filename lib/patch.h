// SPDX-License-Identifier: GPL-3.0-or-later
// patch: replace the allocator inside a musl libc.a with another one (mdalloc by default).
//
// The members to remove are chosen by the symbols they define (the malloc family the new
// allocator provides, and musl's allocator back end and internals), never by member name. Before
// anything is written, the plan must pass a symbol closure check: every symbol a kept member
// needs that only a removed member defined must come from the added objects, the malloc API must
// not shrink, the added objects' own needs must be met, and no symbol may end up defined twice.
// The result replaces the input atomically (temp file in the same directory, fsync, rename) with
// the original kept as a backup, and a last member that names it (lib/patch_mark.h). Collects
// into the report model; cmd/patch.c renders it.
#ifndef MD_PATCH_H
#define MD_PATCH_H

#include <stdbool.h>

#include "lib/error.h"
#include "lib/report.h"

// Points of the write sequence, in order; the step hook runs at each (fault-injection tests
// kill the process there to prove the original survives).
enum md_patch_step {
    MD_STEP_TEMP_CREATED = 1,
    MD_STEP_HALF_WRITTEN,
    MD_STEP_WRITTEN,
    MD_STEP_SYNCED,
    MD_STEP_VERIFIED,
    MD_STEP_BACKED_UP,
    MD_STEP_RENAMED,
};

struct md_patch_options {
    const char *libc;          // the musl libc.a to patch
    const char *allocator;     // archive whose members are added
    const char *output;        // write here and leave libc untouched; NULL: patch in place
    const char *backup_suffix; // in-place backup: libc + suffix (".orig")
    bool dry_run;              // plan and check only
    void (*step_hook)(enum md_patch_step step, void *ctx);
    void *step_ctx;
};

enum md_patch_result {
    MD_PATCH_ERROR = -1,  // err is filled (input error, I/O)
    MD_PATCH_DONE = 0,    // written, planned (dry run), restored, or already patched (no-op)
    MD_PATCH_REFUSED = 1, // the closure or duplicate check failed; report lists why
};

// Plans, checks and (unless dry_run) writes. Fills report with every key of patch's JSON (the
// README lists them), null where one does not apply; on MD_PATCH_ERROR and MD_PATCH_REFUSED,
// "status" is "refused" and "error" says why.
enum md_patch_result md_patch(const struct md_patch_options *opt, cJSON *report,
                              struct md_error *err);

// Puts libc + backup_suffix back in place of libc (a rename: same bytes, mode and owner), only
// when libc was made from that backup (the mark's size and SHA-256, lib/patch_mark.h).
enum md_patch_result md_patch_restore(const struct md_patch_options *opt, cJSON *report,
                                      struct md_error *err);

#endif
