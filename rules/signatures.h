// SPDX-License-Identifier: GPL-3.0-or-later
// The allocator and runtime signature table: what an allocator leaves in an ELF file.
//
// One row per allocator (or libc/runtime). inspect matches symbols by name, strings and constant
// byte tables by content (these survive `strip`), and section names. Adding an allocator is adding
// a row in signatures.c; nothing else changes.
#ifndef MD_SIGNATURES_H
#define MD_SIGNATURES_H

#include <stddef.h>
#include <stdint.h>

enum md_sig_kind {
    MD_SIG_ALLOCATOR, // something that can serve malloc
    MD_SIG_RUNTIME,   // a libc or language runtime (tells "libc" and interpreter family)
};

// A byte pattern that survives strip: a message string, or a constant table of 16-bit words
// (stored as values so it can be matched in either byte order).
struct md_byte_sig {
    const char *label;     // shown as evidence, e.g. "size-class table"
    const char *text;      // a string (matched without its NUL), or NULL
    const uint16_t *words; // a table of 16-bit words, or NULL
    size_t word_count;
};

// Code at the ELF entry point (a libc's _start), which strip keeps. mask: the bits that must match
// (0 for displacements that differ from file to file).
struct md_code_sig {
    const char *label;
    uint16_t machine; // e_machine: EM_X86_64
    const unsigned char *bytes, *mask;
    size_t len;
};

struct md_signature {
    const char *id;     // stable, used by --expect and in JSON: "musl-mallocng"
    const char *family; // --expect also accepts this: "musl", "tcmalloc"
    const char *name;   // for people: "musl mallocng"
    enum md_sig_kind kind;
    const char *const *symbols; // NULL-terminated; a trailing '*' makes a prefix
    // Names this allocator defines that other code defines too (compatibility APIs, generic
    // names): evidence only beside other evidence of the row. NULL-terminated, or NULL.
    const char *const *supporting;
    const char *const *entries;  // malloc shares the address of one of these when this serves it
    const char *const *sections; // NULL-terminated section names
    const struct md_byte_sig *bytes;      // terminated by an entry with label == NULL
    const struct md_code_sig *entry_code; // or NULL
    // musl's malloc is a thin wrapper that calls whoever defines this symbol (mallocng,
    // oldmalloc, or the bump allocator itself): resolve the active allocator through it.
    const char *wrapper_target;
};

extern const struct md_signature md_signatures[];
extern const size_t md_signature_count;

// Symbols whose presence (defined or imported) means the program can start threads.
extern const char *const md_thread_symbols[];

// The row with this id or family (first match), or NULL.
const struct md_signature *md_signature_find(const char *id_or_family);

// True when an allocator row has this id or family (what --expect accepts).
int md_allocator_known(const char *id_or_family);

// True when name matches pattern ("foo" exactly, or "foo*" as a prefix).
int md_symbol_pattern_match(const char *pattern, const char *name);

#endif
