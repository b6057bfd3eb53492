// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/identify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/report.h"

// How many distinct function addresses on each side of malloc count as its neighbourhood: a
// linker lays out one object file's functions together, so malloc's neighbours name its object.
#define MD_NEIGHBOURS 4
// A name at malloc's own address (an alias) outweighs any number of neighbours.
#define MD_ALIAS_WEIGHT 100

static unsigned name_hash(const char *s)
{
    unsigned h = 2166136261u; // FNV-1a
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int add_exact(struct md_matcher *m, const char *name, int sig, bool supporting,
                     struct md_error *err)
{
    for (unsigned i = name_hash(name), n = 0; n < MD_NAME_SLOTS; i++, n++) {
        unsigned slot = i % MD_NAME_SLOTS;
        if (!m->exact[slot].name) {
            m->exact[slot].name = name;
            m->exact[slot].sig = sig;
            m->exact[slot].supporting = supporting;
            return 0;
        }
        if (!strcmp(m->exact[slot].name, name))
            return 0; // first row wins
    }
    return md_fail(err, "signature table: too many symbol names");
}

static int add_symbol(struct md_matcher *m, const char *pattern, int sig, struct md_error *err)
{
    size_t len = strlen(pattern);
    if (!len || pattern[len - 1] != '*')
        return add_exact(m, pattern, sig, false, err);
    if (m->prefix_count == MD_MAX_PREFIXES || len < 3)
        return md_fail(err, "signature table: too many or too short symbol prefixes");
    m->prefix[m->prefix_count].prefix = pattern;
    m->prefix[m->prefix_count].len = len - 1;
    m->prefix[m->prefix_count++].sig = sig;
    return 0;
}

// Adds one byte signature to both scanners; 16-bit tables get an image per byte order.
static int add_bytes(struct md_matcher *m, const struct md_byte_sig *b, int sig, size_t *used,
                     struct md_error *err)
{
    size_t index = m->scanner[0].count;
    for (int order = 0; order < 2; order++) {
        const void *bytes = b->text;
        size_t len = b->text ? strlen(b->text) : b->word_count * 2;
        if (b->words) {
            if (*used + len > sizeof m->word_bytes[order])
                return md_fail(err, "signature table: byte tables too large");
            unsigned char *out = m->word_bytes[order] + *used;
            for (size_t w = 0; w < b->word_count; w++) {
                out[2 * w + order] = (unsigned char)(b->words[w] & 0xff);
                out[2 * w + !order] = (unsigned char)(b->words[w] >> 8);
            }
            bytes = out;
        }
        if (md_scanner_add(&m->scanner[order], bytes, len, (int)index))
            return md_fail(err, "signature table: too many or too short byte patterns");
    }
    if (b->words)
        *used += b->word_count * 2;
    m->pattern_sig[index] = sig;
    m->pattern_byte_sig[index] = b;
    return 0;
}

int md_matcher_init(struct md_matcher *m, struct md_error *err)
{
    memset(m, 0, sizeof *m);
    md_scanner_init(&m->scanner[0]);
    md_scanner_init(&m->scanner[1]);
    if (md_signature_count > MD_MAX_SIGNATURES)
        return md_fail(err, "signature table: more than %d rows", MD_MAX_SIGNATURES);
    size_t used = 0;
    for (size_t i = 0; i < md_signature_count; i++) {
        const struct md_signature *s = &md_signatures[i];
        for (const char *const *p = s->symbols; *p; p++)
            if (add_symbol(m, *p, (int)i, err))
                return -1;
        for (const char *const *p = s->entries; *p; p++)
            if (add_symbol(m, *p, (int)i, err))
                return -1;
        for (const char *const *p = s->supporting; p && *p; p++)
            if (add_exact(m, *p, (int)i, true, err))
                return -1;
        for (const struct md_byte_sig *b = s->bytes; b->label; b++)
            if (add_bytes(m, b, (int)i, &used, err))
                return -1;
    }
    return 0;
}

static int lookup_exact(const struct md_matcher *m, const char *name, bool *supporting)
{
    if (supporting)
        *supporting = false;
    for (unsigned i = name_hash(name), n = 0; n < MD_NAME_SLOTS; i++, n++) {
        unsigned slot = i % MD_NAME_SLOTS;
        if (!m->exact[slot].name)
            break;
        if (!strcmp(m->exact[slot].name, name)) {
            if (supporting)
                *supporting = m->exact[slot].supporting;
            return m->exact[slot].sig;
        }
    }
    return -1;
}

static int lookup_prefix(const struct md_matcher *m, const char *name)
{
    for (size_t i = 0; i < m->prefix_count; i++) {
        const char *p = m->prefix[i].prefix; // every prefix has at least two characters
        if (p[0] == name[0] && p[1] == name[1] && !strncmp(name, p, m->prefix[i].len))
            return m->prefix[i].sig;
    }
    return -1;
}

int md_matcher_lookup(const struct md_matcher *m, const char *name, bool *supporting)
{
    int sig = lookup_exact(m, name, supporting);
    return sig >= 0 ? sig : lookup_prefix(m, name);
}

static void add_evidence(struct md_hit *h, const char *type, const char *value, bool supporting)
{
    for (unsigned i = 0; i < h->evidence_count; i++)
        if (!strcmp(h->evidence[i].value, value) && !strcmp(h->evidence[i].type, type))
            return; // .symtab and .dynsym repeat names: count each once
    if (!strcmp(type, "symbol") && supporting)
        h->supporting++;
    else if (!strcmp(type, "symbol"))
        h->symbols++;
    else if (!strcmp(type, "import"))
        h->imports++;
    else if (!strcmp(type, "string"))
        h->strings++;
    else if (!strcmp(type, "table"))
        h->tables++;
    else if (!strcmp(type, "section"))
        h->sections++;
    else if (!strcmp(type, "code"))
        h->code++;
    if (h->evidence_count < MD_EVIDENCE_MAX) {
        struct md_evidence *ev = &h->evidence[h->evidence_count++];
        ev->type = type;
        snprintf(ev->value, sizeof ev->value, "%s", value);
    }
}

struct symbol_walk {
    const struct md_matcher *m;
    struct md_ident *id;
    bool oom;
    const char *thread_import; // the first thread symbol imported
    bool defines_std_thread;
};

static void note_malloc(struct md_ident *id, const struct md_sym *s)
{
    if (s->defined) {
        // prefer .symtab's view, and a dynamic export for exports_malloc
        if (!id->defines_malloc || !s->dynamic) {
            id->malloc_addr = s->value;
            id->malloc_strong = s->bind != STB_WEAK;
        }
        id->defines_malloc = true;
        id->exports_malloc |= s->dynamic;
    } else if (s->dynamic) {
        id->imports_malloc = true;
        id->malloc_version = s->version;
    }
}

static bool push_func(struct md_ident *id, const struct md_sym *s)
{
    if (id->func_count == id->func_cap) {
        size_t cap = id->func_cap ? id->func_cap * 2 : 1024;
        struct md_funcsym *grown = realloc(id->funcs, cap * sizeof *grown);
        if (!grown)
            return false;
        id->funcs = grown;
        id->func_cap = cap;
    }
    id->funcs[id->func_count++] = (struct md_funcsym){.addr = s->value, .name = s->name};
    return true;
}

static bool is_thread_symbol(const char *name)
{
    for (const char *const *p = md_thread_symbols; *p; p++)
        if (md_symbol_pattern_match(*p, name))
            return true;
    return false;
}

// std::thread's start function, as libstdc++ defines it
#define MD_STD_THREAD_START "_ZNSt6thread15_M_start_thread"

static void note_thread_symbol(struct symbol_walk *w, const struct md_sym *s)
{
    struct md_ident *id = w->id;
    if (!id->thread_symbol)
        id->thread_symbol = s->name;
    // a weak reference is the "threads if the program has them" idiom (libselinux): only a
    // strong one says the library starts threads itself
    if (!s->defined && s->bind != STB_WEAK && !w->thread_import)
        w->thread_import = s->name;
    if (s->defined && !strncmp(s->name, MD_STD_THREAD_START, strlen(MD_STD_THREAD_START)))
        w->defines_std_thread = true;
}

// The ways into the allocator a file can import (C++: operator new[] and delete[], all variants).
static bool is_alloc_api(const char *name)
{
    static const char *const api[] = {
        "malloc",
        "calloc",
        "realloc",
        "reallocarray",
        "free",
        "posix_memalign",
        "memalign",
        "aligned_alloc",
        "valloc",
        "pvalloc",
        "strdup",
        "strndup",
        "wcsdup",
        "asprintf",
        "vasprintf",
        "getline",
        "getdelim",
        "open_memstream",
        "realpath",
        "get_current_dir_name",
        "_Znw*",
        "_Zna*",
        "_Zdl*",
        "_Zda*",
        // what fortified or optimised builds call instead, and other calls that return
        // allocated memory
        "__asprintf_chk",
        "__vasprintf_chk",
        "__getdelim",
        "__strdup",
        "__strndup",
        "scandir*",
        "canonicalize_file_name",
        "getcwd",
        "glob*",
        "regcomp",
        "__cxa_allocate_exception",
        NULL,
    };
    for (const char *const *p = api; *p; p++)
        if (md_symbol_pattern_match(*p, name))
            return true;
    return false;
}

static int on_symbol(const struct md_sym *s, void *ctx)
{
    struct symbol_walk *w = ctx;
    struct md_ident *id = w->id;
    if (!strcmp(s->name, "malloc"))
        note_malloc(id, s);
    if (!s->defined && s->dynamic && is_alloc_api(s->name))
        id->imports_alloc_api = true;
    if (is_thread_symbol(s->name))
        note_thread_symbol(w, s);
    // a weak one may be left unresolved (a static-pie's .dynsym can hold such): only a strong
    // import says the file is linked against shared libraries
    if (!s->defined && s->dynamic && s->bind != STB_WEAK && *s->name)
        id->dynamically_linked = true;
    if (s->version && !strncmp(s->version, "GLIBC_", 6))
        id->glibc_versions = true;
    if (s->defined && (s->type == STT_FUNC || s->type == STT_GNU_IFUNC) && !push_func(id, s)) {
        w->oom = true;
        return 1;
    }
    bool supporting;
    int sig = lookup_exact(w->m, s->name, &supporting);
    // a prefix names an allocator's functions; any program may name its data so (mdalloc_bytes)
    if (sig < 0 && (!s->defined || s->type == STT_FUNC || s->type == STT_GNU_IFUNC))
        sig = lookup_prefix(w->m, s->name);
    if (sig >= 0)
        add_evidence(&id->hit[sig], s->defined ? "symbol" : "import", s->name, supporting);
    return 0;
}

struct bytes_walk {
    const struct md_scanner *scanner;
    unsigned char found[MD_SCAN_MAX_PATTERNS];
};

static void on_section(const char *section, const void *data, size_t size, void *ctx)
{
    (void)section;
    struct bytes_walk *w = ctx;
    md_scanner_run(w->scanner, data, size, w->found);
}

static int scan_bytes(const struct md_matcher *m, struct md_elf *e, struct md_ident *id,
                      struct md_error *err)
{
    struct bytes_walk w = {.scanner = &m->scanner[md_elf_big_endian(e)]};
    if (md_elf_data_sections(e, on_section, &w, err))
        return -1;
    for (size_t i = 0; i < w.scanner->count; i++) {
        if (!w.found[i])
            continue;
        const struct md_byte_sig *b = m->pattern_byte_sig[i];
        char value[120];
        if (b->text)
            snprintf(value, sizeof value, "%s \"%.80s\"", b->label, b->text);
        else
            snprintf(value, sizeof value, "%s (%zu entries)", b->label, b->word_count);
        add_evidence(&id->hit[m->pattern_sig[i]], b->text ? "string" : "table", value, false);
    }
    return 0;
}

// Entry-point code signatures, for executables (relocatable objects have no entry point).
static void match_entry_code(struct md_elf *e, struct md_ident *id)
{
    for (size_t i = 0; i < md_signature_count && e->ehdr.e_entry; i++) {
        const struct md_code_sig *c = md_signatures[i].entry_code;
        unsigned char code[64];
        if (!c || c->machine != e->ehdr.e_machine || c->len > sizeof code ||
            md_elf_read_vaddr(e, e->ehdr.e_entry, code, c->len))
            continue;
        bool same = true;
        for (size_t k = 0; k < c->len && same; k++)
            same = !((code[k] ^ c->bytes[k]) & c->mask[k]);
        if (same)
            add_evidence(&id->hit[i], "code", c->label, false);
    }
}

// With a symbol table, an allocator linked into the file shows by its symbols; its strings or
// tables without them are data of another kind (this tool's signature table, a message that quotes
// one): they do not make it present. A dynamically linked file keeps .dynsym through strip, and an
// allocator linked into it that serves malloc shows there: the file exports malloc. One that
// imports malloc is served elsewhere, and its strings are a mention (ctest quotes ASan's reports),
// not an allocator. Only a stripped static file, or one that defines malloc with nothing to say
// whose, has no better evidence than its strings.
static void discount_bytes_only(struct md_ident *id)
{
    bool symbols_tell = id->has_symtab || (id->dynamically_linked && !id->defines_malloc);
    for (size_t i = 0; i < md_signature_count && symbols_tell; i++) {
        struct md_hit *h = &id->hit[i];
        if (md_signatures[i].kind == MD_SIG_ALLOCATOR && !h->symbols && !h->sections)
            h->strings = h->tables = 0;
    }
}

static int by_addr(const void *a, const void *b)
{
    const struct md_funcsym *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int collect(const struct md_matcher *m, struct md_elf *e, struct md_ident *id,
                   struct md_error *err)
{
    struct symbol_walk w = {.m = m, .id = id};
    if (md_elf_symbols(e, on_symbol, &w, &id->has_symtab, err))
        return -1;
    if (w.oom)
        return md_fail(err, "%s: out of memory reading symbols", e->path);
    id->thread_import = w.defines_std_thread ? NULL : w.thread_import;
    for (size_t i = 0; i < md_signature_count; i++)
        for (const char *const *p = md_signatures[i].sections; *p; p++)
            if (md_elf_has_section(e, *p))
                add_evidence(&id->hit[i], "section", *p, false);
    if (scan_bytes(m, e, id, err))
        return -1;
    match_entry_code(e, id);
    discount_bytes_only(id);
    // only the neighbourhood of a defined malloc needs address order; funcs is NULL (which qsort
    // must not get) when malloc is defined but no function is, as in a corrupt symbol table
    if (id->defines_malloc && id->func_count > 1)
        qsort(id->funcs, id->func_count, sizeof *id->funcs, by_addr);
    return 0;
}

int md_identify(const struct md_matcher *m, struct md_elf *e, struct md_ident *id,
                struct md_error *err)
{
    memset(id, 0, sizeof *id);
    // callers release ident only on success: a failure after some symbols were collected (a
    // corrupt second symbol table, a bad section header) must not leak them
    if (collect(m, e, id, err)) {
        md_ident_free(id);
        return -1;
    }
    return 0;
}

void md_ident_free(struct md_ident *id)
{
    free(id->funcs);
    id->funcs = NULL;
    id->func_count = id->func_cap = 0;
}

const char *md_hit_confidence(const struct md_hit *h)
{
    // a name other code defines too (jemalloc's nallocx in tcmalloc) is no evidence on its own
    unsigned symbols = h->symbols;
    if (symbols || h->strings || h->tables || h->sections || h->code)
        symbols += h->supporting;
    if (h->tables || h->sections || h->code || symbols >= 2 || (symbols && h->strings))
        return "high";
    if (symbols || h->strings >= 2)
        return "medium";
    if (h->strings)
        return "low";
    return NULL;
}

// --- who serves malloc --------------------------------------------------------------------

static size_t first_at_or_after(const struct md_ident *id, GElf_Addr addr)
{
    size_t lo = 0, hi = id->func_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (id->funcs[mid].addr < addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool is_entry_of(const struct md_signature *s, const char *name)
{
    for (const char *const *p = s->entries; *p; p++)
        if (!strcmp(*p, name))
            return true;
    return false;
}

struct vote {
    int sig;
    const char *because; // the strongest name behind the vote
    bool entry;          // the address is an allocator's documented entry point
};

struct tally {
    int score[MD_MAX_SIGNATURES];
    const char *because[MD_MAX_SIGNATURES];
};

static void tally_name(const struct md_matcher *m, struct tally *t, const char *name, int weight,
                       int exclude)
{
    int sig = md_matcher_lookup(m, name, NULL);
    if (sig < 0 || sig == exclude || md_signatures[sig].kind != MD_SIG_ALLOCATOR)
        return;
    t->score[sig] += weight;
    if (!t->because[sig] || weight == MD_ALIAS_WEIGHT)
        t->because[sig] = name;
}

// Neighbours: functions at the MD_NEIGHBOURS nearest distinct addresses below and above addr,
// weighted by closeness. at is the first function at or after addr.
static void tally_neighbours(const struct md_matcher *m, const struct md_ident *id, size_t at,
                             GElf_Addr addr, int exclude, struct tally *t)
{
    GElf_Addr last = addr;
    int distance = 0;
    for (size_t i = at; i-- > 0;) {
        if (id->funcs[i].addr != last && ++distance > MD_NEIGHBOURS)
            break;
        last = id->funcs[i].addr;
        tally_name(m, t, id->funcs[i].name, MD_NEIGHBOURS + 1 - distance, exclude);
    }
    last = addr;
    distance = 0;
    for (size_t i = at; i < id->func_count; i++) {
        if (id->funcs[i].addr == addr)
            continue; // aliases are counted separately
        if (id->funcs[i].addr != last && ++distance > MD_NEIGHBOURS)
            break;
        last = id->funcs[i].addr;
        tally_name(m, t, id->funcs[i].name, MD_NEIGHBOURS + 1 - distance, exclude);
    }
}

// Scores the allocators whose names sit at addr (aliases) or next to it. exclude: a signature
// not to vote for (the wrapper being resolved through).
static struct vote vote_at(const struct md_matcher *m, const struct md_ident *id, GElf_Addr addr,
                           int exclude)
{
    struct tally t = {0};
    size_t at = first_at_or_after(id, addr);
    for (size_t i = at; i < id->func_count && id->funcs[i].addr == addr; i++) {
        int sig = md_matcher_lookup(m, id->funcs[i].name, NULL);
        if (sig >= 0 && sig != exclude && is_entry_of(&md_signatures[sig], id->funcs[i].name))
            return (struct vote){.sig = sig, .because = id->funcs[i].name, .entry = true};
        tally_name(m, &t, id->funcs[i].name, MD_ALIAS_WEIGHT, exclude);
    }
    tally_neighbours(m, id, at, addr, exclude, &t);
    struct vote best = {.sig = -1};
    for (size_t s = 0; s < md_signature_count; s++)
        if (t.score[s] && (best.sig < 0 || t.score[s] > t.score[best.sig]))
            best = (struct vote){.sig = (int)s, .because = t.because[s]};
    return best;
}

static bool find_function(const struct md_ident *id, const char *name, GElf_Addr *addr)
{
    for (size_t i = 0; i < id->func_count; i++)
        if (!strcmp(id->funcs[i].name, name)) {
            *addr = id->funcs[i].addr;
            return true;
        }
    return false;
}

static bool is_present(const struct md_ident *id, int sig)
{
    return md_signatures[sig].kind == MD_SIG_ALLOCATOR && md_hit_confidence(&id->hit[sig]);
}

// The allocators present that can serve malloc; a wrapper (musl lite) does not count when a
// real allocator of the same family is present.
static size_t real_allocators(const struct md_ident *id, int *out)
{
    size_t n = 0;
    for (size_t s = 0; s < md_signature_count; s++) {
        if (!is_present(id, (int)s))
            continue;
        bool shadowed = false;
        for (size_t t = 0; md_signatures[s].wrapper_target && t < md_signature_count; t++)
            shadowed |= t != s && is_present(id, (int)t) &&
                        !strcmp(md_signatures[t].family, md_signatures[s].family);
        if (!shadowed)
            out[n++] = (int)s;
    }
    return n;
}

static void by_elimination(const struct md_ident *id, const char *why, struct md_active *out)
{
    int present[MD_MAX_SIGNATURES];
    size_t n = real_allocators(id, present);
    if (n == 1) {
        // a file that defines malloc and holds exactly one allocator (libc.so.6) is sure
        bool sure = id->defines_malloc && !strcmp(md_hit_confidence(&id->hit[present[0]]), "high");
        out->sig = present[0];
        out->confidence = sure ? "high" : "medium";
        snprintf(out->how, sizeof out->how, "%s; %s is the only allocator present", why,
                 md_signatures[present[0]].name);
        return;
    }
    out->sig = -1;
    out->confidence = "low";
    if (n == 0) {
        snprintf(out->how, sizeof out->how, "%s; no allocator signature found", why);
        return;
    }
    int len = snprintf(out->how, sizeof out->how, "%s; candidates:", why);
    for (size_t i = 0; i < n && len > 0 && (size_t)len < sizeof out->how; i++)
        len += snprintf(out->how + len, sizeof out->how - (size_t)len, "%s %s", i ? "," : "",
                        md_signatures[present[i]].name);
}

// musl's malloc() forwards to whoever defines the wrapper target (__libc_malloc_impl).
static void resolve_wrapper(const struct md_matcher *m, const struct md_ident *id, int wrapper,
                            struct md_active *out)
{
    const struct md_signature *w = &md_signatures[wrapper];
    GElf_Addr target;
    if (!find_function(id, w->wrapper_target, &target)) {
        by_elimination(id, "malloc is musl's wrapper", out);
        return;
    }
    struct vote v = vote_at(m, id, target, -1);
    if (v.sig == wrapper && v.entry) {
        out->sig = wrapper;
        out->confidence = "high";
        snprintf(out->how, sizeof out->how,
                 "malloc is musl's wrapper and %s is %s: free() is never linked, so musl uses its "
                 "bump allocator",
                 w->wrapper_target, v.because);
        return;
    }
    v = vote_at(m, id, target, wrapper);
    if (v.sig < 0) {
        by_elimination(id, "malloc is musl's wrapper", out);
        return;
    }
    out->sig = v.sig;
    out->confidence = "high";
    snprintf(out->how, sizeof out->how, "malloc is musl's wrapper; %s sits with %s (%s)",
             w->wrapper_target, md_signatures[v.sig].name, v.because);
}

static bool any_allocator(const struct md_ident *id)
{
    for (size_t s = 0; s < md_signature_count; s++)
        if (is_present(id, (int)s))
            return true;
    return false;
}

// musl's libc.a defines malloc weak (lite_malloc.lo's alias), and so does mdalloc's build that
// replaces it there, so that a program may define its own: a strong malloc next to them is the
// program's own, or an allocator no signature knows, which libc's own calls (through
// __libc_malloc) pass by.
static bool passes_by_musl(const struct md_ident *id, const struct md_active *out)
{
    bool weak_malloc_only = out->sig >= 0 && (!strcmp(md_signatures[out->sig].family, "musl") ||
                                              !strcmp(md_signatures[out->sig].id, "mdalloc"));
    // musl's libc (or mdalloc in its place) is linked in: its allocator entry for libc's calls
    GElf_Addr impl;
    return weak_malloc_only && find_function(id, "__libc_malloc_impl", &impl);
}

// A static file whose symbol table shows no allocator at all: its strong malloc is all there is.
// Nothing of libc's allocator was linked (no libc call needed one: musl's malloc is weak, and
// glibc's malloc.o comes only for a name the program leaves undefined), so it is the program's
// own malloc, or an allocator no signature knows. One whose malloc is exported is left to the
// loader's view of it.
static bool alone_in_static(const struct md_ident *id, const struct md_active *out)
{
    return out->sig < 0 && !id->dynamically_linked && !id->exports_malloc && !any_allocator(id);
}

// malloc's neighbours name no allocator: by elimination, unless malloc is a strong symbol that
// no allocator present can have defined.
static void unnamed_neighbours(const struct md_ident *id, struct md_active *out)
{
    by_elimination(id, "malloc's neighbours name no allocator", out);
    if (!id->has_symtab || !id->malloc_strong)
        return;
    if (passes_by_musl(id, out)) {
        const char *present = md_signatures[out->sig].name;
        snprintf(out->how, sizeof out->how,
                 "malloc is a strong symbol among functions no signature names, where %s's is "
                 "weak (the program's own malloc, or an allocator this tool does not know); %s "
                 "serves only libc's own calls",
                 present, present);
    } else if (alone_in_static(id, out)) {
        snprintf(out->how, sizeof out->how,
                 "malloc is a strong symbol among functions no signature names, and no allocator "
                 "is linked, not even libc's: the program's own malloc, or an allocator this tool "
                 "does not know");
    } else {
        return;
    }
    out->sig = -1;
    out->confidence = "low";
    out->reason = MD_DEFINED_ELSEWHERE;
}

void md_active_local(const struct md_matcher *m, const struct md_ident *id, struct md_active *out)
{
    memset(out, 0, sizeof *out);
    out->sig = -1;
    if (!id->defines_malloc && id->has_symtab) {
        out->confidence = "high";
        out->reason = MD_NOT_LINKED;
        snprintf(out->how, sizeof out->how, "the file does not link malloc");
        return;
    }
    if (!id->defines_malloc) {
        by_elimination(id, "stripped (no symbol table)", out);
        return;
    }
    struct vote v = vote_at(m, id, id->malloc_addr, -1);
    if (v.sig < 0) {
        unnamed_neighbours(id, out);
        return;
    }
    if (md_signatures[v.sig].wrapper_target) {
        resolve_wrapper(m, id, v.sig, out);
        return;
    }
    out->sig = v.sig;
    out->confidence = "high";
    snprintf(out->how, sizeof out->how,
             v.entry ? "malloc is an alias of %s" : "malloc sits with %s", v.because);
}
