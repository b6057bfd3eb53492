// SPDX-License-Identifier: GPL-3.0-or-later
// ar archives of relocatable objects: read every member (bytes and symbols) with libbfd, and
// write a GNU-format archive with a symbol index, deterministically (like `ar D`). This is the
// only file of malloc-doctor that uses libbfd, so libbfd's other service, its demangler, is
// reached through here too (md_demangle).
#ifndef MD_ARCHIVE_H
#define MD_ARCHIVE_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

enum md_sym_kind {
    MD_SYM_DEFINED,    // global, strong
    MD_SYM_WEAK,       // global, weak definition
    MD_SYM_COMMON,     // tentative definition
    MD_SYM_UNDEF,      // strong reference
    MD_SYM_WEAK_UNDEF, // weak reference: may stay unresolved
    MD_SYM_LOCAL,      // file-local; only used as evidence (musl's static allocator functions)
};

struct md_ar_symbol {
    char *name;
    enum md_sym_kind kind;
};

struct md_ar_member {
    char *name; // as stored in the archive (duplicates allowed)
    unsigned char *data;
    size_t size;
    struct md_ar_symbol *syms;
    size_t nsyms;
};

struct md_archive {
    char *path;
    char target[64]; // bfd target of the first object member, e.g. "elf64-x86-64"
    bool has_map;
    struct md_ar_member *members;
    size_t count;
    size_t file_size; // of the archive file, in bytes
    // only from md_archive_read_digest: those bytes (owned) and their SHA-256, lowercase hex
    unsigned char *bytes;
    char sha256[65];
};

// Reads an archive. Refuses thin archives, LTO/bitcode members and anything not an object.
// ar must be released with md_archive_free whether or not the read succeeded.
int md_archive_read(struct md_archive *ar, const char *path, struct md_error *err);
// The same, and the file's bytes and SHA-256, from the same open file that the members come from
// (a second open could find another file put at path in between).
int md_archive_read_digest(struct md_archive *ar, const char *path, struct md_error *err);
void md_archive_free(struct md_archive *ar);

static inline bool md_sym_is_def(enum md_sym_kind k)
{
    return k == MD_SYM_DEFINED || k == MD_SYM_WEAK || k == MD_SYM_COMMON;
}

static inline bool md_sym_is_undef(enum md_sym_kind k)
{
    return k == MD_SYM_UNDEF || k == MD_SYM_WEAK_UNDEF;
}

// Lays out a GNU ar archive of these members, in this order, into a malloc'ed buffer: a "/"
// symbol index of every global definition, a "//" long-name table, zero dates, uids and gids and
// mode 644, so the same members always give the same bytes.
int md_archive_serialize(const struct md_ar_member *const *members, size_t count,
                         unsigned char **out, size_t *size, struct md_error *err);

// A C++ or Rust symbol name as a person reads it, without its parameter list (as perf shows it:
// "std::vector<int>::push_back", overloads alike): malloc'ed, or NULL when name is not mangled,
// cannot be demangled, or memory ran out.
char *md_demangle(const char *name);

#endif
