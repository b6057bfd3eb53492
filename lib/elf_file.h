// SPDX-License-Identifier: GPL-3.0-or-later
// Reading ELF files and archive members with libelf: mmap'd, validated, never executed.
//
// Every table that libelf hands out is bounds-checked against the file (or member) size here, so
// the rest of the engine can trust what it gets.
#ifndef MD_ELF_FILE_H
#define MD_ELF_FILE_H

#include <gelf.h>
#include <libelf.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/error.h"

enum md_elf_kind {
    // ET_EXEC without an interpreter; inspect also gives the static kinds to a program that names
    // one but needs no library and imports nothing (musl-gcc -static-pie with a libc.a)
    MD_KIND_STATIC,
    MD_KIND_STATIC_PIE,  // ET_DYN, position independent, no interpreter
    MD_KIND_DYNAMIC,     // an executable with PT_INTERP (PIE or not)
    MD_KIND_SHARED,      // a shared library
    MD_KIND_RELOCATABLE, // .o, archive members
    MD_KIND_OTHER,       // core files and the like
    MD_KIND_DEBUG,       // a separate debug file: a program's symbols without its code
};

struct md_elf {
    const char *path; // for messages; not owned
    int fd;           // owned when >= 0 (archive members share their archive's)
    Elf *elf;         // owned
    size_t size;      // bytes of this file or member, for bounds checks
    GElf_Ehdr ehdr;
    size_t shnum, shstrndx, phnum;
    bool archive_done; // archives: the last member has been handed out
};

// Dynamic-section facts; strings point into the mapped file and live as long as the md_elf.
#define MD_MAX_NEEDED 128
struct md_dynamic {
    bool present;
    const char *needed[MD_MAX_NEEDED];
    size_t needed_count;
    const char *soname, *rpath, *runpath;
    GElf_Xword flags_1;
};

struct md_sym {
    const char *name;
    GElf_Addr value;
    GElf_Xword size;
    unsigned char type, bind;
    bool defined;        // st_shndx != SHN_UNDEF
    bool dynamic;        // from .dynsym
    const char *version; // .dynsym symbols: the version name (GLIBC_2.2.5), else NULL
};

// Return non-zero to stop the iteration.
typedef int (*md_sym_fn)(const struct md_sym *sym, void *ctx);
// Called for each non-executable allocated section with its raw bytes.
typedef void (*md_bytes_fn)(const char *section, const void *data, size_t size, void *ctx);

// Opens path. On success *is_archive tells whether it is an `ar` archive (then use
// md_archive_next); otherwise e is a validated ELF file.
int md_elf_open(struct md_elf *e, const char *path, bool *is_archive, struct md_error *err);
// The same for a regular file of size bytes the caller opened: e owns fd from here on, also when
// this fails. path names it in messages.
int md_elf_open_fd(struct md_elf *e, int fd, size_t size, const char *path, bool *is_archive,
                   struct md_error *err);

// Opens path for reading when it is a regular file, without waiting (a FIFO is refused, never
// opened for good): the descriptor, its size in *size; or -1 with the reason ("is a directory",
// followed by dir_advice in parentheses when given; "not a regular file"; the open's error).
int md_open_regular(const char *path, const char *dir_advice, size_t *size, struct md_error *err);

// Validates an ELF image held in memory (an archive member read by another library) with the same
// checks md_elf_open makes: header, and every table and section inside the image. Not ELF (no
// magic): 0, the caller decides. label names the image in messages ("lib.a(member.o)").
int md_elf_check_image(const void *data, size_t size, const char *label, struct md_error *err);
void md_elf_close(struct md_elf *e);

// Archive iteration: *member is filled with the next ELF member, validated, and label with
// "archive(member)", which member->path points to. Returns 1 when a member was produced, 0 at the
// end, 2 for an ELF member that cannot be read (label names it, err says why; *member is closed
// and the next call goes on with the member after it), -1 on a corrupt archive (a member header
// that cannot be read: err names it; iteration stops). Non-ELF members (LTO bitcode, text) are
// skipped and counted in *skipped.
int md_archive_next(struct md_elf *archive, struct md_elf *member, char *label, size_t label_size,
                    size_t *skipped, struct md_error *err);

const char *md_elf_class_name(const struct md_elf *e);   // "ELF64"
const char *md_elf_machine_name(const struct md_elf *e); // "x86-64"
const char *md_elf_machine_label(int machine);           // the same from an e_machine value
bool md_elf_big_endian(const struct md_elf *e);

// The PT_INTERP string, or NULL. Fails only when the header points outside the file.
int md_elf_interpreter(struct md_elf *e, const char **interp, struct md_error *err);
int md_elf_dynamic(struct md_elf *e, struct md_dynamic *dyn, struct md_error *err);
enum md_elf_kind md_elf_kind_of(const struct md_elf *e, bool has_interp,
                                const struct md_dynamic *dyn);
const char *md_elf_kind_name(enum md_elf_kind kind);

// Iterates .symtab and .dynsym. *has_symtab tells whether a (non-empty) .symtab exists.
int md_elf_symbols(struct md_elf *e, md_sym_fn fn, void *ctx, bool *has_symtab,
                   struct md_error *err);

// Visits the bytes of every read-only, non-executable PROGBITS section except unwind tables (where
// strings and constant tables live), or of every non-executable PT_LOAD segment when there are no
// section headers.
int md_elf_data_sections(struct md_elf *e, md_bytes_fn fn, void *ctx, struct md_error *err);

// Copies len bytes at virtual address addr from the PT_LOAD segment that holds them in the file.
// Returns -1 when no segment does.
int md_elf_read_vaddr(struct md_elf *e, GElf_Addr addr, void *buf, size_t len);

// True when a section of that name exists.
bool md_elf_has_section(struct md_elf *e, const char *name);

#endif
