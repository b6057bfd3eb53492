// SPDX-License-Identifier: GPL-3.0-or-later
// Allocator identification inside one ELF object: which signatures match, and which allocator the
// object's own `malloc` belongs to.
#ifndef MD_IDENTIFY_H
#define MD_IDENTIFY_H

#include <stdbool.h>

#include "lib/bytescan.h"
#include "lib/elf_file.h"
#include "rules/signatures.h"

#define MD_MAX_SIGNATURES 32
#define MD_EVIDENCE_MAX 6
#define MD_NAME_SLOTS 1024
#define MD_MAX_PREFIXES 32

// The signature table compiled for fast matching; build once, share between files.
struct md_matcher {
    struct {
        const char *name;
        int sig;
        bool supporting;    // from the row's `supporting` list
    } exact[MD_NAME_SLOTS]; // open addressing on symbol names
    struct {
        const char *prefix;
        size_t len;
        int sig;
    } prefix[MD_MAX_PREFIXES];
    size_t prefix_count;
    struct md_scanner scanner[2];          // [0] little-endian files, [1] big-endian
    int pattern_sig[MD_SCAN_MAX_PATTERNS]; // scanner pattern -> signature
    const struct md_byte_sig *pattern_byte_sig[MD_SCAN_MAX_PATTERNS];
    unsigned char word_bytes[2][1024]; // byte images of the 16-bit tables, per byte order
};

int md_matcher_init(struct md_matcher *m, struct md_error *err);
// The signature a symbol name belongs to, or -1. supporting (may be NULL) tells whether the name
// is one the row counts only beside other evidence.
int md_matcher_lookup(const struct md_matcher *m, const char *name, bool *supporting);

struct md_evidence {
    const char *type; // "symbol", "import", "string", "table", "section", "code"
    char value[120];
};

struct md_hit {
    unsigned symbols, imports, strings, tables, sections;
    unsigned code;       // entry-point code (a libc's _start)
    unsigned supporting; // defined symbols that count only beside other evidence
    unsigned evidence_count;
    struct md_evidence evidence[MD_EVIDENCE_MAX];
};

struct md_funcsym {
    GElf_Addr addr;
    const char *name;
};

struct md_ident {
    struct md_hit hit[MD_MAX_SIGNATURES]; // indexed like md_signatures
    bool has_symtab;
    bool defines_malloc; // a defined `malloc` symbol (.symtab or .dynsym)
    bool exports_malloc; // defined in .dynsym: visible to the dynamic linker
    GElf_Addr malloc_addr;
    bool malloc_strong; // that symbol is not weak
    bool imports_malloc;
    // imports any way into the allocator (the malloc family, strdup and the like, C++'s operator
    // new and delete): something serves the file's allocations at run time
    bool imports_alloc_api;
    const char *malloc_version; // version of the imported malloc (GLIBC_2.2.5), or NULL
    bool glibc_versions;        // some import is bound to a GLIBC_* version
    bool dynamically_linked;    // .dynsym imports a symbol (not weakly): shared libraries serve it
    const char *thread_symbol;  // a symbol that shows threads can start, or NULL
    // For a library: a thread symbol it imports (not weakly), i.e. it can start threads of its
    // own. Not set for libstdc++: it defines std::thread's start and starts threads only when
    // the program calls it, which the program's own symbols show.
    const char *thread_import;
    struct md_funcsym *funcs; // defined functions, sorted by address after md_identify
    size_t func_count, func_cap;
};

// Matches every signature against e. ident must be released with md_ident_free.
int md_identify(const struct md_matcher *m, struct md_elf *e, struct md_ident *ident,
                struct md_error *err);
void md_ident_free(struct md_ident *ident);

// "high", "medium", "low", or NULL when the signature is absent from the object.
const char *md_hit_confidence(const struct md_hit *h);

// Who serves the object's own malloc.
struct md_active {
    int sig;                // index into md_signatures, -1 when unknown or none
    const char *confidence; // "high", "medium", "low"
    // why no allocator serves it: MD_NOT_LINKED when the file never links malloc,
    // MD_DEFINED_ELSEWHERE when its malloc lies outside the present allocators' code, else NULL
    const char *reason;
    char how[640]; // the reasoning, for people
};

void md_active_local(const struct md_matcher *m, const struct md_ident *ident,
                     struct md_active *out);

#endif
