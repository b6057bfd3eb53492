// SPDX-License-Identifier: GPL-3.0-or-later
// Counting a static program's allocator calls with the static probe (alloc/probe_static.c): the
// hooks are planned here, on the file's bytes, before the program runs, so a function the probe
// could not hook safely sends trace back to uprobes with the reason.
#ifndef MD_TRACE_HOOKS_H
#define MD_TRACE_HOOKS_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

struct md_hooks_plan {
    char spec[1024];  // the static probe's HOOKS argument: "malloc=401930/5,free=..."
    size_t hooked;    // functions hooked (malloc_usable_size is only called)
    bool usable_size; // the program has malloc_usable_size: frees are tied to block sizes
};

// Plans the hooks of the static x86-64 program at path: malloc and free, and each of calloc,
// realloc, aligned_alloc, memalign, posix_memalign, valloc and pvalloc it defines (an alias of a
// function already hooked is left out: it is the same code). Fails, saying why, when the file is
// not x86-64, malloc or free is missing, or an entry cannot be moved (alloc/hook_x86.h).
int md_hooks_plan(const char *path, struct md_hooks_plan *plan, struct md_error *err);

// The C++ operator new and delete of the program at path that do not lead to its malloc family,
// as libstdc++'s do (its new calls malloc, its delete free): an allocator linked in with
// operators of its own (static tcmalloc or jemalloc) serves them itself, so the hooks and the
// uprobes, which count at malloc's and free's entries, never see those calls. Writes their
// names to out ("_Znwm, _Znam, _ZdlPvm and 9 more"; "" for none); returns how many, or -1.
int md_cxx_bypassing(const char *path, char *out, size_t size, struct md_error *err);

#endif
