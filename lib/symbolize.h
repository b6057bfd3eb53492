// SPDX-License-Identifier: GPL-3.0-or-later
// Function symbols of ELF files, for uprobes (name -> file offset) and for CPU samples (file
// offset -> name).
//
// Both directions work on file offsets rather than addresses: a uprobe is placed at an offset in
// an inode, and a sampled address becomes an offset through the mapping it falls in (addr - start
// + pgoff), whatever the load bias of that process was. The PT_LOAD segments translate between
// file offsets and the link-time addresses the symbol tables use.
#ifndef MD_SYMBOLIZE_H
#define MD_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/elf_file.h"
#include "lib/error.h"
#include "lib/u64map.h"

// One function symbol (STT_FUNC or STT_GNU_IFUNC, defined). name points into the mapped file.
struct md_func_sym {
    const char *name;
    uint64_t addr, size; // link-time address; size 0 means "up to the next symbol"
    unsigned char bind;
};

// The functions of one ELF file, sorted by address; symbols at the same address (aliases such as
// malloc and __libc_malloc) are adjacent, the preferred name first (global before weak before
// local, fewer leading underscores first).
struct md_symtab {
    char *path; // owned
    struct md_elf elf;
    bool elf_open;
    // Stripped files (Debian's libc.so.6) keep their local functions (_int_malloc) in a separate
    // debug file found by build id under /usr/lib/debug/.build-id (package libc6-dbg and the
    // like). When present its symbols are merged in; the names point into it.
    char *debug_path; // owned, NULL when none was found
    struct md_elf debug_elf;
    bool debug_open;
    struct md_func_sym *funcs;
    size_t count;
    // Only the exported functions are known (no .symtab, no debug file): the hidden ones lie
    // between them unnamed, so an unsized symbol (assembly) cannot be trusted up to the next.
    bool exports_only;
    GElf_Phdr *loads; // PT_LOAD headers, for offset <-> address
    size_t load_count;
};

int md_symtab_load(struct md_symtab *t, const char *path, struct md_error *err);
void md_symtab_free(struct md_symtab *t);

// Translates a file offset to its link-time address; false when no PT_LOAD covers it.
bool md_symtab_offset_to_addr(const struct md_symtab *t, uint64_t offset, uint64_t *addr);
bool md_symtab_addr_to_offset(const struct md_symtab *t, uint64_t addr, uint64_t *offset);

// The function containing the link-time address, or NULL. *aliases (optional) gets how many
// entries, starting at the returned one, share its address (>= 1).
const struct md_func_sym *md_symtab_find(const struct md_symtab *t, uint64_t addr, size_t *aliases);

// The first defined function named name, or NULL.
const struct md_func_sym *md_symtab_by_name(const struct md_symtab *t, const char *name);

// The file offset of function name in the ELF file at path: st_value - p_vaddr + p_offset of the
// PT_LOAD segment holding it. This is what a uprobe's config2 wants.
int md_elf_func_offset(const char *path, const char *name, uint64_t *offset, struct md_error *err);

// Parsed files by path, each parsed once. Files that cannot be read are remembered as such, so
// a missing library costs one open attempt, not one per sample.
struct md_symcache {
    struct md_symtab **tabs; // NULL entry: the file at paths[i] could not be read
    char **paths;
    size_t count, cap;
    struct md_u64map shown; // md_func_sym pointer -> its demangled name (owned), once asked for
};

void md_symcache_init(struct md_symcache *c);
void md_symcache_free(struct md_symcache *c);
// The symbol table of path, or NULL when it cannot be read (not a file, not ELF, out of memory).
const struct md_symtab *md_symcache_get(struct md_symcache *c, const char *path);

// The name of f to show: a C++ or Rust name demangled (once per symbol, then cached), any other
// name as it is. f must come from one of c's tables.
const char *md_symcache_shown_name(struct md_symcache *c, const struct md_func_sym *f);

// The function at file offset `offset` in the file at path, or NULL (unknown file or no symbol).
const struct md_func_sym *md_symbolize(struct md_symcache *c, const char *path, uint64_t offset,
                                       size_t *aliases);

#endif
