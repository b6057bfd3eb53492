// SPDX-License-Identifier: GPL-3.0-or-later
// inspect: which allocators an ELF file (or archive, or directory of them) contains, and which one
// serves malloc. Collects into the report model; cmd/inspect.c renders it.
#ifndef MD_INSPECT_H
#define MD_INSPECT_H

#include <signal.h>
#include <stdbool.h>

#include "lib/loader.h"
#include "lib/report.h"

struct md_inspect_options {
    bool recursive;     // descend into directories
    const char *root;   // sysroot for DT_NEEDED resolution, or NULL
    const char *expect; // an allocator id or family that must serve malloc, or NULL
    // Counted by the caller's SIGBUS handler when a mapped file shrank under a read (the
    // reading went on over zeros): a file read while it moved is an error. NULL: not watched.
    const volatile sig_atomic_t *mapping_faults;
};

struct md_inspector {
    struct md_inspect_options opt;
    struct md_matcher matcher;
    struct md_loader loader;
    cJSON *files;        // the report's "files" array
    size_t file_entries; // its length (cJSON counts an array by walking it)
    size_t inspected, errors, expect_failed, skipped;
    size_t expect_checked;    // programs and shared libraries --expect applied to
    char alloc_dir[PATH_MAX]; // this tool's mdalloc builds, for the rules' prescriptions
    char tool[PATH_MAX + 64]; // how the rules' commands name this tool (md_tool_command)
};

// Fails on an unknown --expect name or a broken signature table.
int md_inspector_init(struct md_inspector *in, const struct md_inspect_options *opt, cJSON *files,
                      struct md_error *err);
void md_inspector_free(struct md_inspector *in);

// Appends one entry per file (archives: per member with allocator evidence) to in->files;
// errors become entries with "status": "error" and never stop the walk.
void md_inspect_path(struct md_inspector *in, const char *path);

// Adds the "summary" object to the report.
void md_inspect_summary(const struct md_inspector *in, cJSON *report);

// The allocator ids and families --expect accepts, as one comma-separated line.
void md_inspect_allocator_names(char *out, size_t size);

#endif
