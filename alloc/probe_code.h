// SPDX-License-Identifier: MIT
// The probe's view of the code a process has loaded (--stacks, --leaks): every ELF object goes
// into the probe file's object table, for the tool to name return addresses, and the objects'
// executable segments into a private sorted list, to tell a return address from other words on
// the stack.
#ifndef MD_PROBE_CODE_H
#define MD_PROBE_CODE_H

#include <link.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc/probe_shared.h"

// The addresses an object's PT_LOAD segments span (only its executable ones: exec_only),
// [*start, *end); false when it has none.
bool md_probe_load_span(const struct dl_phdr_info *info, bool exec_only, uint64_t *start,
                        uint64_t *end);

// Records the objects of process pid not recorded yet in v's object table (v stays valid for the
// process's life), and rebuilds the code list. Safe from any thread, also inside an allocator call.
void md_probe_code_record(const struct md_probe_view *v, int32_t pid);

// The same after a dlopen, when the loader has loaded anything since the last record: a dlopen
// of an object already loaded (or of NULL) rebuilds nothing.
void md_probe_code_refresh(const struct md_probe_view *v, int32_t pid);

// In a forked child (one thread): the parent's objects, recorded again under the child's pid,
// without asking the loader (another thread of the parent may have held its lock at the fork).
void md_probe_code_adopt_in_child(int32_t parent, int32_t child);

// Whether addr is in an executable segment of a loaded object. An address outside every known
// one may be in an object loaded since (dlopen): with glibc, the loader's lock-free lookup
// (_dl_find_object) finds it and it is recorded then. musl has no such lookup: there the probe's
// dlopen records what it loaded when it returns (alloc/probe.c).
bool md_probe_code_holds(uint64_t addr);

// The same, from the list as it is: never looks at the loaded objects again.
bool md_probe_code_listed(uint64_t addr);

#endif
