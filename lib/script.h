// SPDX-License-Identifier: GPL-3.0-or-later
// Scripts: which ELF file really runs when a command names a "#!" script, and with which command
// line. trace needs the ELF file to choose how to count allocator calls (the preload probe for a
// dynamic interpreter, hooks or uprobes for a static one) and the static probe needs the command
// line the kernel would give it. The rules are the kernel's binfmt_script ones; "#!/usr/bin/env
// NAME" is followed to NAME in PATH, as env does, because env itself is never the program of
// interest.
#ifndef MD_SCRIPT_H
#define MD_SCRIPT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

// Linux follows at most this many nested "#!" scripts, then fails the exec with ELOOP (measured on
// 6.18: a chain of five scripts runs, six do not).
#define MD_SCRIPT_MAX_HOPS 5
// The kernel reads the "#!" line from the first 256 bytes of the file (BINPRM_BUF_SIZE).
#define MD_SCRIPT_LINE_MAX 256

struct md_script_hop {
    char script[PATH_MAX];                // the script file
    char interpreter[MD_SCRIPT_LINE_MAX]; // its interpreter, as written after "#!"
    char argument[MD_SCRIPT_LINE_MAX];    // the one optional argument, "" for none
    bool has_argument;
    bool via_env;        // "#!/usr/bin/env NAME": NAME is what runs next, found in PATH
    char runs[PATH_MAX]; // the file that runs next: the interpreter, or env's NAME
};

struct md_exec_plan {
    char path[PATH_MAX]; // the file that runs in the end (not a script)
    size_t hops;         // scripts passed on the way there
    struct md_script_hop hop[MD_SCRIPT_MAX_HOPS];
    char **argv; // path's command line (strings point into hop[] or the caller's argv)
};

// Reads the "#!" line of path. 1: a script (hop filled), 0: not a script, -1: unreadable or a
// "#!" line the kernel would refuse.
int md_script_read(const char *path, struct md_script_hop *hop, struct md_error *err);

// Follows path (an executable file, as md_find_program found it) through its "#!" lines. argv
// is the command line given for path; the plan keeps pointers into it.
int md_exec_plan_make(const char *path, char *const *argv, struct md_exec_plan *plan,
                      struct md_error *err);
void md_exec_plan_free(struct md_exec_plan *plan);

#endif
