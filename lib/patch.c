// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/patch.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/archive.h"
#include "lib/patch_mark.h"
#include "lib/tempfile.h"
#include "lib/path.h"
#include "rules/signatures.h"

// The public malloc API. A member of libc.a that defines one of these is replaced only when the
// new allocator defines the same name: musl's thin wrappers (valloc on top of memalign) stay
// when the allocator has no version of its own.
static const char *const malloc_family[] = {
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "aligned_alloc",
    "posix_memalign",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
    "free_sized",
    "free_aligned_sized",
    NULL,
};

// musl's allocator back end (src/malloc/*): the names the rest of libc calls (the __libc_*
// entries, __malloc_donate from the dynamic linker, __malloc_atfork from fork). A member that
// defines one belongs to musl's allocator and always goes; the signature table adds each musl
// allocator's internals (mallocng's __malloc_context, oldmalloc's __bin_chunk, ...).
static const char *const musl_backend[] = {
    "__libc_malloc",   "__libc_malloc_impl", "__libc_free",       "__libc_realloc", "__libc_calloc",
    "__malloc_donate", "__malloc_atfork",    "__malloc_allzerop", "__malloc_lock",  NULL,
};

// Defined by the linker or by crt*.o, never by libc.a members.
static const char *const linker_symbols[] = {
    "_GLOBAL_OFFSET_TABLE_",
    "_DYNAMIC",
    "__ehdr_start",
    "__executable_start",
    "_end",
    "_etext",
    "_edata",
    "__bss_start",
    "__dso_handle",
    "__TMC_END__",
    "__init_array_start",
    "__init_array_end",
    "__fini_array_start",
    "__fini_array_end",
    "__preinit_array_start",
    "__preinit_array_end",
    "_init",
    "_fini",
    "main",
    NULL,
};

static bool in_list(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (!strcmp(*list, name))
            return true;
    return false;
}

// libgcc, which gcc (and musl-gcc) adds to every link: its routines are named after the machine
// mode they work on (__popcountdi2, __divti3, __floatditf, __mulodi4), and
// __builtin_cpu_supports needs __cpu_model. Not the unwinder (_Unwind_*, libgcc_eh): Debian's is
// built for glibc and does not link into a static musl program (it needs _dl_find_object).
static bool mode_suffix(const char *s)
{
    // integer, float (half, bfloat, single, double, x87, quad) and complex modes
    static const char *const modes[] = {"qi", "hi", "si", "di", "ti", "hf", "bf", "sf", "df",
                                        "xf", "tf", "hc", "sc", "dc", "xc", "tc", NULL};
    for (const char *const *m = modes; *m; m++)
        if (!strncmp(s, *m, 2))
            return true;
    return false;
}

static bool compiler_runtime_symbol(const char *name)
{
    static const char *const named[] = {"__cpu_model", "__cpu_features2", "__cpu_indicator_init",
                                        NULL};
    if (in_list(named, name))
        return true;
    size_t n = strlen(name), letters = 0;
    if (n < 6 || strncmp(name, "__", 2))
        return false;
    while (name[2 + letters] >= 'a' && name[2 + letters] <= 'z')
        letters++;
    const char *end = name + n;
    if (2 + letters == n - 1 && end[-1] >= '1' && end[-1] <= '5') // __popcountdi2
        return mode_suffix(end - 3);
    if (2 + letters == n && (!strncmp(name, "__float", 7) || !strncmp(name, "__fix", 5)))
        return mode_suffix(end - 2) && mode_suffix(end - 4); // __floatditf, __fixunsdfdi
    return false;
}

// --- a symbol table over the three sides of the plan ----------------------------------------

enum { SIDE_KEPT, SIDE_REMOVED, SIDE_ADDED, SIDES };

struct sym {
    const char *name;
    int def[SIDES];      // defining member index + 1 on each side, 0 if none
    int strong[SIDES];   // strong definitions on each side
    int needs;           // references to it from kept members
    bool weak_only_need; // every reference is weak
};

struct symtab {
    struct sym *slot;
    size_t cap, count;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static struct sym *probe(struct sym *slot, size_t cap, const char *name)
{
    size_t i = hash(name) & (cap - 1);
    while (slot[i].name && strcmp(slot[i].name, name))
        i = (i + 1) & (cap - 1);
    return &slot[i];
}

static int symtab_grow(struct symtab *t)
{
    size_t ncap = t->cap ? t->cap * 2 : 4096;
    struct sym *n = calloc(ncap, sizeof *n);
    if (!n)
        return -1;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slot[i].name)
            *probe(n, ncap, t->slot[i].name) = t->slot[i];
    free(t->slot);
    t->slot = n;
    t->cap = ncap;
    return 0;
}

// The entry for name, created empty; NULL when out of memory.
static struct sym *symtab_get(struct symtab *t, const char *name)
{
    if (2 * (t->count + 1) > t->cap && symtab_grow(t))
        return NULL;
    struct sym *s = probe(t->slot, t->cap, name);
    if (!s->name) {
        *s = (struct sym){.name = name, .weak_only_need = true};
        t->count++;
    }
    return s;
}

// --- the plan ---------------------------------------------------------------------------------

struct plan {
    const struct md_patch_options *opt;
    struct md_archive libc, alloc;
    bool *removed; // per libc member
    size_t removed_count;
    struct symtab syms;
    const char *flavor; // the musl allocator found: "mallocng", "oldmalloc", "lite", or NULL
    int missing, duplicates;
};

static bool defines(const struct md_ar_member *m, const char *name)
{
    for (size_t j = 0; j < m->nsyms; j++)
        if (!strcmp(m->syms[j].name, name) && md_sym_is_def(m->syms[j].kind))
            return true;
    return false;
}

// Defines (globally, or locally for static functions) a symbol of signature row s. Weak
// definitions do not count: fork.lo carries weak stubs of lite_malloc's __bump_lockptr.
static bool has_signature(const struct md_archive *ar, const struct md_signature *s)
{
    for (size_t i = 0; i < ar->count; i++)
        for (size_t j = 0; j < ar->members[i].nsyms; j++) {
            const struct md_ar_symbol *y = &ar->members[i].syms[j];
            if (md_sym_is_undef(y->kind) || y->kind == MD_SYM_WEAK)
                continue;
            for (const char *const *p = s->symbols; *p; p++)
                if (md_symbol_pattern_match(*p, y->name))
                    return true;
        }
    return false;
}

static bool is_musl_internal(const char *name)
{
    if (in_list(musl_backend, name))
        return true;
    for (size_t i = 0; i < md_signature_count; i++) {
        const struct md_signature *s = &md_signatures[i];
        if (s->kind != MD_SIG_ALLOCATOR || strcmp(s->family, "musl"))
            continue;
        for (const char *const *p = s->symbols; *p; p++)
            if (md_symbol_pattern_match(*p, name))
                return true;
    }
    return false;
}

static bool alloc_defines(const struct plan *p, const char *name)
{
    for (size_t i = 0; i < p->alloc.count; i++)
        if (defines(&p->alloc.members[i], name))
            return true;
    return false;
}

// Why a member goes: the first global it defines that the allocator replaces; NULL if it stays.
// p NULL: the allocator is not known (--restore judging an older result), so it may have replaced
// any malloc function.
static const char *removal_reason(const struct plan *p, const struct md_ar_member *m)
{
    for (size_t j = 0; j < m->nsyms; j++) {
        const struct md_ar_symbol *y = &m->syms[j];
        if (y->kind == MD_SYM_LOCAL || !md_sym_is_def(y->kind))
            continue;
        // a weak internal is a stub for when the allocator is absent (fork.lo's
        // __malloc_atfork): it stays, and the added strong definition wins at link time
        if ((y->kind != MD_SYM_WEAK && is_musl_internal(y->name)) ||
            (in_list(malloc_family, y->name) && (!p || alloc_defines(p, y->name))))
            return y->name;
    }
    return NULL;
}

static void choose_removals(struct plan *p)
{
    for (size_t i = 0; i < p->libc.count; i++)
        if (removal_reason(p, &p->libc.members[i])) {
            p->removed[i] = true;
            p->removed_count++;
        }
}

static int index_member(struct plan *p, const struct md_ar_member *m, int side, int idx)
{
    for (size_t j = 0; j < m->nsyms; j++) {
        const struct md_ar_symbol *y = &m->syms[j];
        if (y->kind == MD_SYM_LOCAL)
            continue;
        struct sym *s = symtab_get(&p->syms, y->name);
        if (!s)
            return -1;
        if (md_sym_is_def(y->kind)) {
            if (!s->def[side])
                s->def[side] = idx + 1;
            s->strong[side] += y->kind == MD_SYM_DEFINED;
        } else if (side == SIDE_KEPT) {
            s->needs++;
            s->weak_only_need &= y->kind == MD_SYM_WEAK_UNDEF;
        }
    }
    return 0;
}

static int index_all(struct plan *p, struct md_error *err)
{
    for (size_t i = 0; i < p->libc.count; i++)
        if (index_member(p, &p->libc.members[i], p->removed[i] ? SIDE_REMOVED : SIDE_KEPT, (int)i))
            return md_fail(err, "out of memory");
    for (size_t i = 0; i < p->alloc.count; i++)
        if (index_member(p, &p->alloc.members[i], SIDE_ADDED, (int)i))
            return md_fail(err, "out of memory");
    return 0;
}

// --- report building -------------------------------------------------------------------------

// Every key of the report, in order. Each result has them all (null where one does not apply), so
// a reader finds one shape whatever happened.
static const char *const report_keys[] = {
    "libc",
    "allocator",
    "dry_run",
    "status",
    "error",
    "output",
    "backup",
    "unchanged",
    "members_written",
    "bytes_written",
    "stale_temps_removed",
    "remove",
    "add",
    "checked",
    "missing",
    "duplicates",
    "overrides",
    "warnings",
    NULL,
};

// Sets one key of the report (present from report_skeleton on); returns item.
static cJSON *put(cJSON *report, const char *key, cJSON *item)
{
    cJSON_ReplaceItemInObjectCaseSensitive(report, key, item);
    return item;
}

static cJSON *put_str(cJSON *report, const char *key, const char *value)
{
    return put(report, key, value ? cJSON_CreateString(value) : cJSON_CreateNull());
}

// libc and allocator by path, what is known before either is read.
static cJSON *input_object(const char *path, const char *const *unknown)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", path);
    for (; *unknown; unknown++)
        cJSON_AddNullToObject(o, *unknown);
    return o;
}

static void report_skeleton(const struct md_patch_options *opt, cJSON *report)
{
    static const char *const libc_keys[] = {"target", "members", "musl_allocator", NULL};
    static const char *const alloc_keys[] = {"members", NULL};
    for (const char *const *k = report_keys; *k; k++)
        cJSON_AddNullToObject(report, *k);
    put(report, "libc", input_object(opt->libc, libc_keys));
    if (opt->allocator) // --restore adds nothing
        put(report, "allocator", input_object(opt->allocator, alloc_keys));
    put(report, "dry_run", cJSON_CreateBool(opt->dry_run));
    put(report, "warnings", cJSON_CreateArray());
}

// A refusal's status and why: the input error, or the checks that failed.
static void report_refusal(cJSON *report, const char *why)
{
    put_str(report, "status", "refused");
    put_str(report, "error", why);
}

static void add_defines(cJSON *o, const struct md_ar_member *m)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "defines");
    for (size_t j = 0; j < m->nsyms; j++)
        if (m->syms[j].kind != MD_SYM_LOCAL && md_sym_is_def(m->syms[j].kind))
            cJSON_AddItemToArray(arr, cJSON_CreateString(m->syms[j].name));
}

static void report_members(const struct plan *p, cJSON *report)
{
    cJSON *rm = put(report, "remove", cJSON_CreateArray());
    for (size_t i = 0; i < p->libc.count; i++) {
        if (!p->removed[i])
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "member", p->libc.members[i].name);
        cJSON_AddNumberToObject(o, "index", (double)i);
        cJSON_AddStringToObject(o, "because", removal_reason(p, &p->libc.members[i]));
        add_defines(o, &p->libc.members[i]);
        cJSON_AddItemToArray(rm, o);
    }
    cJSON *add = put(report, "add", cJSON_CreateArray());
    for (size_t i = 0; i < p->alloc.count; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "member", p->alloc.members[i].name);
        add_defines(o, &p->alloc.members[i]);
        cJSON_AddItemToArray(add, o);
    }
}

static const char *libc_member(const struct plan *p, int idx_plus_one)
{
    return idx_plus_one ? p->libc.members[idx_plus_one - 1].name : NULL;
}

static const char *alloc_member(const struct plan *p, int idx_plus_one)
{
    return idx_plus_one ? p->alloc.members[idx_plus_one - 1].name : NULL;
}

// A reference to name (strong_only: a strong one) in m.
static bool references(const struct md_ar_member *m, const char *name, bool strong_only)
{
    for (size_t j = 0; j < m->nsyms; j++)
        if ((strong_only ? m->syms[j].kind == MD_SYM_UNDEF : md_sym_is_undef(m->syms[j].kind)) &&
            !strcmp(m->syms[j].name, name))
            return true;
    return false;
}

// Every member of ar that references name, but the removed ones (removed may be NULL), in
// archive order.
static cJSON *needers(const struct md_archive *ar, const bool *removed, const char *name,
                      bool strong_only)
{
    cJSON *by = cJSON_CreateArray();
    for (size_t i = 0; i < ar->count; i++)
        if (!(removed && removed[i]) && references(&ar->members[i], name, strong_only))
            cJSON_AddItemToArray(by, cJSON_CreateString(ar->members[i].name));
    return by;
}

// The symbol with every kept member that needs it, in archive order (found again here rather
// than kept per symbol: only the few symbols a check reports need the list).
static cJSON *need_entry(const struct plan *p, const struct sym *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "symbol", s->name);
    cJSON *by = s->needs ? needers(&p->libc, p->removed, s->name, false) : cJSON_CreateArray();
    cJSON_AddItemToObject(o, "needed_by", by);
    cJSON_AddNumberToObject(o, "needed_by_count", cJSON_GetArraySize(by));
    return o;
}

static int by_symbol(const void *a, const void *b)
{
    return strcmp((*(const struct sym *const *)a)->name, (*(const struct sym *const *)b)->name);
}

// The table's entries sorted by name, so reports do not depend on hashing.
static const struct sym **sorted(const struct symtab *t)
{
    const struct sym **v = calloc(t->count + 1, sizeof *v);
    size_t n = 0;
    for (size_t i = 0; v && i < t->cap; i++)
        if (t->slot[i].name)
            v[n++] = &t->slot[i];
    if (v)
        qsort(v, n, sizeof *v, by_symbol);
    return v;
}

// --- the checks --------------------------------------------------------------------------------

// A kept member needs s, nothing kept defines it and a removed member did: the added objects must.
static void check_kept_need(struct plan *p, const struct sym *s, cJSON *checked, cJSON *missing)
{
    if (!s->needs || s->def[SIDE_KEPT] || !s->def[SIDE_REMOVED])
        return;
    cJSON *o = need_entry(p, s);
    cJSON_AddStringToObject(o, "was_defined_by", libc_member(p, s->def[SIDE_REMOVED]));
    if (s->weak_only_need)
        cJSON_AddBoolToObject(o, "weak", true);
    if (s->def[SIDE_ADDED]) {
        cJSON_AddStringToObject(o, "provided_by", alloc_member(p, s->def[SIDE_ADDED]));
        cJSON_AddItemToArray(checked, o);
    } else {
        cJSON_AddItemToArray(missing, o);
        p->missing++;
    }
}

// The malloc API a program may call must survive: no family function may disappear.
static void check_api(struct plan *p, const struct sym *s, cJSON *checked, cJSON *missing)
{
    if (!in_list(malloc_family, s->name) || !s->def[SIDE_REMOVED] || s->def[SIDE_KEPT] || s->needs)
        return;
    cJSON *o = need_entry(p, s);
    cJSON_AddStringToObject(o, "was_defined_by", libc_member(p, s->def[SIDE_REMOVED]));
    cJSON_AddStringToObject(o, "reason", "public malloc API that programs call");
    if (s->def[SIDE_ADDED]) {
        cJSON_AddStringToObject(o, "provided_by", alloc_member(p, s->def[SIDE_ADDED]));
        cJSON_AddItemToArray(checked, o);
        return;
    }
    cJSON_AddItemToArray(missing, o);
    p->missing++;
}

// A kept weak default (fork.lo's __malloc_atfork) that an added strong definition overrides.
static void note_override(const struct plan *p, const struct sym *s, cJSON *overrides)
{
    if (!s->def[SIDE_KEPT] || s->strong[SIDE_KEPT] || !s->strong[SIDE_ADDED])
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "symbol", s->name);
    cJSON_AddStringToObject(o, "weak_in", libc_member(p, s->def[SIDE_KEPT]));
    cJSON_AddStringToObject(o, "strong_in", alloc_member(p, s->def[SIDE_ADDED]));
    cJSON_AddItemToArray(overrides, o);
}

// The added objects' own strong references must be met by kept members or each other.
static void check_added_need(struct plan *p, const struct sym *s, cJSON *missing)
{
    if (s->def[SIDE_KEPT] || s->def[SIDE_ADDED] || in_list(linker_symbols, s->name) ||
        compiler_runtime_symbol(s->name))
        return;
    cJSON *by = needers(&p->alloc, NULL, s->name, true);
    if (!cJSON_GetArraySize(by)) {
        cJSON_Delete(by);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "symbol", s->name);
    cJSON_AddItemToObject(o, "needed_by", by);
    cJSON_AddNumberToObject(o, "needed_by_count", cJSON_GetArraySize(by));
    if (s->def[SIDE_REMOVED])
        cJSON_AddStringToObject(o, "was_defined_by", libc_member(p, s->def[SIDE_REMOVED]));
    else
        cJSON_AddStringToObject(o, "reason", "defined nowhere in the libc.a");
    cJSON_AddItemToArray(missing, o);
    p->missing++;
}

static void check_duplicate(struct plan *p, const struct sym *s, cJSON *dups)
{
    if (!s->strong[SIDE_ADDED] || (!s->strong[SIDE_KEPT] && s->strong[SIDE_ADDED] < 2))
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "symbol", s->name);
    if (s->strong[SIDE_KEPT])
        cJSON_AddStringToObject(o, "kept_member", libc_member(p, s->def[SIDE_KEPT]));
    cJSON_AddStringToObject(o, "added_member", alloc_member(p, s->def[SIDE_ADDED]));
    cJSON_AddNumberToObject(o, "definitions",
                            s->strong[SIDE_ADDED] + (s->strong[SIDE_KEPT] ? 1 : 0));
    cJSON_AddItemToArray(dups, o);
    p->duplicates++;
}

static int run_checks(struct plan *p, cJSON *report, struct md_error *err)
{
    const struct sym **v = sorted(&p->syms);
    if (!v)
        return md_fail(err, "out of memory");
    cJSON *checked = put(report, "checked", cJSON_CreateArray());
    cJSON *missing = put(report, "missing", cJSON_CreateArray());
    cJSON *dups = put(report, "duplicates", cJSON_CreateArray());
    cJSON *overrides = put(report, "overrides", cJSON_CreateArray());
    for (size_t i = 0; i < p->syms.count; i++) {
        check_kept_need(p, v[i], checked, missing);
        check_api(p, v[i], checked, missing);
        note_override(p, v[i], overrides);
        check_added_need(p, v[i], missing);
        check_duplicate(p, v[i], dups);
    }
    free(v);
    return 0;
}

// --- identifying the input -------------------------------------------------------------------

static bool has_sig(const struct md_archive *ar, const char *id)
{
    const struct md_signature *s = md_signature_find(id);
    return s && has_signature(ar, s);
}

// What a libc.a is, by the symbols its members define.
enum libc_kind { LIBC_GLIBC, LIBC_NOT_MUSL, LIBC_MUSL };

static enum libc_kind libc_kind(const struct md_archive *ar)
{
    if (has_sig(ar, "glibc") || has_sig(ar, "glibc-ptmalloc"))
        return LIBC_GLIBC;
    return has_sig(ar, "musl") ? LIBC_MUSL : LIBC_NOT_MUSL;
}

// musl's own allocator in a musl libc.a: "mallocng", "oldmalloc" or "lite_malloc"; NULL when it
// is gone, which is how a libc.a this tool patched is told from one it did not.
static const char *musl_flavor(const struct md_archive *ar)
{
    static const char *const flavors[][2] = {
        {"musl-mallocng", "mallocng"},
        {"musl-oldmalloc", "oldmalloc"},
        {"musl-lite", "lite_malloc"},
    };
    for (size_t i = 0; i < sizeof flavors / sizeof flavors[0]; i++)
        if (has_sig(ar, flavors[i][0]))
            return flavors[i][1];
    return NULL;
}

static int check_is_musl(struct plan *p, struct md_error *err)
{
    const char *path = p->libc.path;
    enum libc_kind kind = libc_kind(&p->libc);
    if (kind == LIBC_GLIBC)
        return md_fail(err,
                       "%s: this is glibc's libc.a, not musl's: glibc's malloc is woven into "
                       "the rest of its libc (arenas, fork, thread exit), so it cannot be "
                       "swapped by replacing members; link mdalloc ahead of libc instead",
                       path);
    if (kind != LIBC_MUSL)
        return md_fail(err,
                       "%s: not a musl libc.a: no member defines musl's startup "
                       "(__init_libc, __libc_start_init); only musl's libc.a can be patched",
                       path);
    if (strcmp(p->libc.target, p->alloc.target))
        return md_fail(err, "%s: objects are %s but the allocator %s has %s objects", path,
                       p->libc.target, p->alloc.path, p->alloc.target);
    p->flavor = musl_flavor(&p->libc);
    return 0;
}

// --allocator names an archive of allocator objects. A libc, or the input itself, holds every
// member of the input: it would read as "already patched" and nothing would be done.
static int check_allocator(const struct plan *p, struct md_error *err)
{
    struct stat a, l;
    const char *path = p->alloc.path;
    if (!stat(path, &a) && !stat(p->libc.path, &l) && a.st_dev == l.st_dev && a.st_ino == l.st_ino)
        return md_fail(err,
                       "%s: --allocator names the input libc.a itself; it takes an archive "
                       "of allocator objects (such as mdalloc's libmdalloc.a)",
                       path);
    if (libc_kind(&p->alloc) != LIBC_NOT_MUSL)
        return md_fail(err,
                       "%s: a libc, not an allocator: --allocator takes an archive of "
                       "allocator objects (such as mdalloc's libmdalloc.a)",
                       path);
    return 0;
}

static bool same_member(const struct md_ar_member *a, const struct md_ar_member *b)
{
    return a->size == b->size && !strcmp(a->name, b->name) && !memcmp(a->data, b->data, a->size);
}

// Every member of alloc is in ar, byte for byte.
static bool holds_members(const struct md_archive *ar, const struct md_archive *alloc)
{
    for (size_t i = 0; i < alloc->count; i++) {
        bool found = false;
        for (size_t j = 0; j < ar->count && !found; j++)
            found = same_member(&alloc->members[i], &ar->members[j]);
        if (!found)
            return false;
    }
    return true;
}

// Every added object is already in libc.a: this allocator was patched in before.
static bool already_patched(const struct plan *p)
{
    return holds_members(&p->libc, &p->alloc);
}

// The member that defines malloc, or NULL.
static const char *malloc_definer(const struct md_archive *ar)
{
    for (size_t i = 0; i < ar->count; i++)
        if (defines(&ar->members[i], "malloc"))
            return ar->members[i].name;
    return NULL;
}

static void report_inputs(const struct plan *p, cJSON *report)
{
    cJSON *l = put(report, "libc", cJSON_CreateObject());
    cJSON_AddStringToObject(l, "path", p->libc.path);
    cJSON_AddStringToObject(l, "target", p->libc.target);
    cJSON_AddNumberToObject(l, "members", (double)p->libc.count);
    md_json_str(l, "musl_allocator", p->flavor);
    cJSON *a = put(report, "allocator", cJSON_CreateObject());
    cJSON_AddStringToObject(a, "path", p->alloc.path);
    cJSON_AddNumberToObject(a, "members", (double)p->alloc.count);
}

// --- writing -------------------------------------------------------------------------------

static void step(const struct md_patch_options *opt, enum md_patch_step s)
{
    if (opt->step_hook)
        opt->step_hook(s, opt->step_ctx);
}

static int write_all(int fd, const unsigned char *buf, size_t size)
{
    while (size) {
        ssize_t n = write(fd, buf, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n, size -= (size_t)n;
    }
    return 0;
}

static int fsync_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return -1;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    // EINVAL: a file system that cannot sync a directory (some network and FUSE ones); its
    // entries are as durable as it makes them, and nothing here can do better
    return rc && e != EINVAL ? -1 : 0;
}

// The directory of a file renamed into place did not reach the disk: the file is there (every
// reader sees it) but a crash could bring the old entry back. Not an error of the command, which
// did what it was asked: a warning in the report.
static void warn_dir_not_synced(cJSON *report, const char *path, int e)
{
    char why[PATH_MAX + 160];
    snprintf(why, sizeof why,
             "%s: the directory could not be synced (%s); the change is in place but may not "
             "survive a crash until the file system syncs it",
             path, strerror(e));
    cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(report, "warnings"),
                         cJSON_CreateString(why));
}

// Mode always; owner when patching in place (a root-owned toolchain file stays root's). Errors
// here and in write_temp name the file being replaced (a symlink's target), not its temporary
// file, which is removed.
static int copy_attributes(int fd, const struct stat *like, bool owner, const char *name,
                           struct md_error *err)
{
    if (fchmod(fd, like->st_mode & 07777))
        return md_fail_errno(err, errno, "%s: chmod", name);
    if (owner && fchown(fd, like->st_uid, like->st_gid) && errno != EPERM)
        return md_fail_errno(err, errno, "%s: chown", name);
    return 0;
}

static int write_temp(const struct md_patch_options *opt, int fd, const char *name,
                      const unsigned char *buf, size_t size, struct md_error *err)
{
    step(opt, MD_STEP_TEMP_CREATED);
    if (write_all(fd, buf, size / 2))
        return md_fail_errno(err, errno, "%s: write", name);
    step(opt, MD_STEP_HALF_WRITTEN);
    if (write_all(fd, buf + size / 2, size - size / 2))
        return md_fail_errno(err, errno, "%s: write", name);
    step(opt, MD_STEP_WRITTEN);
    if (fsync(fd))
        return md_fail_errno(err, errno, "%s: fsync", name);
    step(opt, MD_STEP_SYNCED);
    return 0;
}

// Reads the written file back through the same reader: a valid archive, an index, every member.
static int verify_written(const char *tmp, size_t members, struct md_error *err)
{
    struct md_archive back;
    int rc = md_archive_read(&back, tmp, err);
    if (!rc && (!back.has_map || back.count != members))
        rc = md_fail(err, "%s: read back %zu members (want %zu)%s", tmp, back.count, members,
                     back.has_map ? "" : " and no symbol index");
    md_archive_free(&back);
    return rc;
}

// flags: O_NOFOLLOW for a name that must be the file itself, never a link elsewhere.
// O_NONBLOCK: a FIFO put at the name since it was checked reads as empty instead of hanging.
static int read_file(const char *path, int flags, unsigned char **buf, size_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | flags);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "rb");
    if (!f) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    size_t cap = 1 << 20, n = 0;
    unsigned char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        unsigned char *nb = realloc(b, cap *= 2);
        if (!nb)
            free(b);
        b = nb;
    }
    int rc = ferror(f) || !b ? -1 : 0;
    fclose(f);
    *buf = b, *size = n;
    return rc;
}

static bool holds_bytes(const char *path, const unsigned char *buf, size_t size)
{
    unsigned char *x = NULL;
    size_t n = 0;
    bool same = !read_file(path, O_NOFOLLOW, &x, &n) && n == size && !memcmp(x, buf, n);
    free(x);
    return same;
}

static bool same_file_bytes(const char *a, const char *b)
{
    unsigned char *x = NULL;
    size_t n = 0;
    bool same = !read_file(a, 0, &x, &n) && holds_bytes(b, x, n);
    free(x);
    return same;
}

// Why what lstat found at a backup's name cannot be a backup, or NULL. The backup must be the
// file itself: a symbolic link would show whatever it points at, the patched file included
// (libc.a.orig -> libc.a), and a rename of it would put the link in place of the original.
static const char *not_a_backup(const struct stat *st)
{
    if (S_ISLNK(st->st_mode))
        return "a symbolic link";
    return S_ISREG(st->st_mode) ? NULL : "not a regular file";
}

// What is at the backup's name: nothing (*exists false), or a regular file holding libc's bytes
// (a backup an interrupted run made: a hard link of libc, which the rename leaves holding the
// original). Anything else is refused, before anything is written.
static int check_backup_name(const char *libc, const char *backup, bool *exists,
                             struct md_error *err)
{
    struct stat st;
    *exists = !lstat(backup, &st);
    if (!*exists)
        return errno == ENOENT ? 0 : md_fail_errno(err, errno, "%s", backup);
    const char *why = not_a_backup(&st);
    if (why)
        return md_fail(err,
                       "%s: %s; the backup of %s must be a regular file holding its bytes: "
                       "move it away or choose another --backup suffix",
                       backup, why, libc);
    if (same_file_bytes(libc, backup))
        return 0;
    return md_fail(err,
                   "%s exists and differs from %s; move it away or choose another "
                   "--backup suffix",
                   backup, libc);
}

// Keeps the original as libc + suffix: a hard link (instant, same bytes, mode and owner). An
// existing backup is kept only if it is a regular file and identical.
static int backup_original(const char *libc, const char *backup, struct md_error *err)
{
    bool exists;
    if (check_backup_name(libc, backup, &exists, err))
        return -1;
    if (exists)
        return 0;
    // link() never follows or replaces what is at backup: a name that appeared since the check
    // fails with EEXIST instead
    if (link(libc, backup))
        return md_fail_errno(err, errno, "%s: cannot create backup", backup);
    // the backup must be on disk before the original is replaced. If not, refused: the original
    // is untouched and the backup a second name of it, which the next run takes as its own
    if (fsync_dir_of(backup))
        return md_fail(err, "%s: the directory could not be synced (%s); %s is unchanged", backup,
                       strerror(errno), libc);
    return 0;
}

// Serializes the runs that write into one directory, so that temp files a killed run left can
// be removed without racing a live run. Returns the locked directory (closing it unlocks).
static int lock_dir(const char *dir, struct md_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return md_fail_errno(err, errno, "%s", dir);
    if (!flock(fd, LOCK_EX | LOCK_NB))
        return fd;
    if (errno == EWOULDBLOCK)
        md_fail(err, "%s: another malloc-doctor patch is writing in this directory", dir);
    else
        md_fail_errno(err, errno, "%s: lock", dir);
    close(fd);
    return -1;
}

// Where a file's temporary files go: its directory, and "<file name>.md-tmp", to which
// md_temp_create adds "-XXXXXX". A path that names no file ("", "dir/", "..") is refused: its
// prefix would not be one output's, and a sweep would take files that are not.
struct place {
    char dir[PATH_MAX];
    char prefix[NAME_MAX + 16];
};

static int place_of(const char *path, struct place *pl, struct md_error *err)
{
    const char *base = md_path_base_name(path);
    if (!*path)
        return md_fail(err, "empty file name");
    if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
        return md_fail(err, "'%s': names a directory, not a file", path);
    char *copy = strdup(path);
    if (!copy)
        return md_fail(err, "out of memory");
    bool fits =
        (size_t)snprintf(pl->dir, sizeof pl->dir, "%s", dirname(copy)) < sizeof pl->dir &&
        (size_t)snprintf(pl->prefix, sizeof pl->prefix, "%s.md-tmp", base) < sizeof pl->prefix;
    free(copy);
    return fits ? 0 : md_fail(err, "%s: the name is too long", path);
}

// Removes the temp files a killed run left for this file. Under the directory lock no live patch
// run writes here, so they are orphans at any age; md_temp_sweep still takes only unlocked
// regular files of this user with exactly that name.
static int sweep_temps(const struct place *pl)
{
    return md_temp_sweep(pl->dir, pl->prefix, 0);
}

// The file to replace: a symlinked libc.a (a toolchain's lib/ pointing elsewhere) is patched
// where it really lives, and -o through a link writes its target, so the link stays a link.
static char *replaced_path(const char *libc, struct md_error *err)
{
    struct stat st;
    bool link = !lstat(libc, &st) && S_ISLNK(st.st_mode);
    char *path = link ? realpath(libc, NULL) : strdup(libc);
    if (!path && link && errno == ENOENT) // as cp, not through a link to nothing
        md_fail(err, "%s: a symbolic link to a file that does not exist; not written through it",
                libc);
    else if (!path)
        md_fail_errno(err, errno, "%s", libc);
    return path;
}

struct target {
    char *path;   // the file the result replaces (a link's target)
    char *backup; // path + suffix; NULL when nothing is there to keep (a new -o file)
    struct place place;
    struct stat like; // mode (and owner) to give the result
    bool owner;
};

// Writes buf to a locked temp file beside t->path, reads it back, keeps what t->path holds as
// t->backup, and renames. The temp stays locked until the rename, so no sweep can take it.
static int commit(const struct md_patch_options *opt, const struct target *t,
                  const unsigned char *buf, size_t size, size_t members, cJSON *report,
                  struct md_error *err)
{
    char tmp[sizeof t->place.dir + sizeof t->place.prefix + 8];
    int fd = md_temp_create(t->place.dir, t->place.prefix, tmp, sizeof tmp, err);
    if (fd < 0)
        return -1;
    int rc = copy_attributes(fd, &t->like, t->owner, t->path, err);
    if (!rc)
        rc = write_temp(opt, fd, t->path, buf, size, err);
    if (!rc && !(rc = verify_written(tmp, members, err)))
        step(opt, MD_STEP_VERIFIED);
    if (!rc && t->backup && !(rc = backup_original(t->path, t->backup, err)))
        step(opt, MD_STEP_BACKED_UP);
    if (!rc && rename(tmp, t->path))
        rc = md_fail_errno(err, errno, "%s: rename onto %s", tmp, t->path);
    if (rc) {
        md_temp_remove(tmp, fd);
        return -1;
    }
    close(fd); // fsync has reported any write error; this only drops the lock
    step(opt, MD_STEP_RENAMED);
    if (fsync_dir_of(t->path))
        warn_dir_not_synced(report, t->path, errno);
    return 0;
}

static char *backup_path(const char *libc, const char *suffix)
{
    size_t n = strlen(libc) + strlen(suffix) + 1;
    char *b = malloc(n);
    if (b)
        snprintf(b, n, "%s%s", libc, suffix);
    return b;
}

// Checked here too, before the temp file is written: a backup name that cannot be used is
// refused with nothing touched.
// What --restore works on: *libc, the file itself (a link's target), and the backup name it
// returns. Both malloc'ed; NULL with err filled on failure.
static char *restore_names(const struct md_patch_options *opt, char **libc, struct md_error *err)
{
    char *backup = NULL;
    *libc = replaced_path(opt->libc, err);
    if (*libc && !(backup = backup_path(*libc, opt->backup_suffix ? opt->backup_suffix : ".orig")))
        md_fail(err, "out of memory");
    return backup;
}

static int set_backup(const struct md_patch_options *opt, struct target *t, struct md_error *err)
{
    bool exists;
    t->backup = backup_path(t->path, opt->backup_suffix ? opt->backup_suffix : ".orig");
    if (!t->backup)
        return md_fail(err, "out of memory");
    return check_backup_name(t->path, t->backup, &exists, err);
}

// An archive that holds every member of alloc byte for byte: an earlier result of patch with
// this allocator, which a run from its input makes again (a musl libc.a a user patched with
// another allocator is not one).
static bool holds_allocator(const char *path, const struct md_archive *alloc)
{
    struct md_archive ar;
    struct md_error e;
    bool all = !md_archive_read(&ar, path, &e) && alloc->count > 0 && holds_members(&ar, alloc);
    md_archive_free(&ar);
    return all;
}

// What -o may replace: an ar archive (kept as the backup) or an empty file; never a program or a
// document that happens to have OUT's name.
static int check_replaceable(const char *path, struct md_error *err)
{
    char magic[8];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); // it was a regular file: never wait
    ssize_t n = fd < 0 ? -1 : read(fd, magic, sizeof magic);
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (n < 0)
        return md_fail_errno(err, e, "%s", path);
    if (!n ||
        (n == sizeof magic && (!memcmp(magic, "!<arch>\n", n) || !memcmp(magic, "!<thin>\n", n))))
        return 0;
    return md_fail(err,
                   "%s: exists and is not an ar archive; -o replaces only an archive (or an "
                   "empty file)",
                   path);
}

// -o onto a file that is there: it must be a regular file other than the input, holding an
// archive; the result takes its mode and owner, and it is kept as OUT + suffix.
static int resolve_output(const struct md_patch_options *opt, const struct md_archive *alloc,
                          const struct stat *in, struct target *t, struct md_error *err)
{
    struct stat out;
    if (stat(t->path, &out)) { // a new file: the input's mode, the caller's owner
        t->like = *in;
        return 0;
    }
    if (out.st_dev == in->st_dev && out.st_ino == in->st_ino)
        return md_fail(err, "%s: -o names the input itself; leave out -o to patch in place",
                       opt->output);
    // The result is renamed over OUT: over a device (-o /dev/null) that would replace the node
    // with a regular file for every other program. --dry-run is the way to write nothing.
    if (!S_ISREG(out.st_mode))
        return md_fail(err,
                       "%s: not a regular file; -o writes an archive file (--dry-run writes "
                       "nothing)",
                       opt->output);
    if (check_replaceable(t->path, err))
        return -1;
    t->like = out;
    t->owner = true;
    // an earlier result of patch is made again from its input: a backup of it would only be
    // in the way of the next run (MD001's prescription reruns -o after every musl update)
    return holds_allocator(t->path, alloc) ? 0 : set_backup(opt, t, err);
}

static int resolve_target(const struct md_patch_options *opt, const struct md_archive *alloc,
                          struct target *t, struct md_error *err)
{
    struct stat in;
    t->path = replaced_path(opt->output ? opt->output : opt->libc, err);
    if (!t->path || place_of(t->path, &t->place, err))
        return -1;
    if (stat(opt->libc, &in))
        return md_fail_errno(err, errno, "%s", opt->libc);
    if (opt->output)
        return resolve_output(opt, alloc, &in, t, err);
    t->like = in;
    t->owner = true;
    return set_backup(opt, t, err);
}

static void report_written(cJSON *report, const struct target *t, bool unchanged, size_t members,
                           size_t size)
{
    put_str(report, "output", t->path);
    put_str(report, "backup", unchanged ? NULL : t->backup);
    put(report, "unchanged", cJSON_CreateBool(unchanged));
    if (unchanged)
        return;
    put(report, "members_written", cJSON_CreateNumber((double)members));
    put(report, "bytes_written", cJSON_CreateNumber((double)size));
}

// Puts buf, an archive of that many members, in place; the caller holds the directory lock
// (lock_output_dir).
static int write_bytes(const struct md_patch_options *opt, const struct md_archive *alloc,
                       const unsigned char *buf, size_t size, size_t members, cJSON *report,
                       struct md_error *err)
{
    struct target t = {0};
    int rc = resolve_target(opt, alloc, &t, err);
    // -o run again: OUT (there already: t.owner) holds the result; nothing to replace
    bool unchanged = !rc && opt->output && t.owner && holds_bytes(t.path, buf, size);
    if (!rc) {
        put(report, "stale_temps_removed", cJSON_CreateNumber(sweep_temps(&t.place)));
        rc = unchanged ? 0 : commit(opt, &t, buf, size, members, report, err);
    }
    if (!rc)
        report_written(report, &t, unchanged, members, size);
    free(t.path), free(t.backup);
    return rc;
}

// The mark of the input (lib/patch_mark.h), made like its first member, which --restore checks
// the backup against.
static int mark_input(const struct plan *p, struct md_ar_member *mark, struct md_error *err)
{
    struct md_patch_mark m;
    md_patch_mark_of(&p->libc, &m);
    return md_patch_mark_member(&p->libc.members[0], &m, mark, err);
}

// The kept members in their order, then the added ones, then the mark.
static int write_result(struct plan *p, cJSON *report, struct md_error *err)
{
    size_t n = p->libc.count - p->removed_count + p->alloc.count + 1, k = 0;
    const struct md_ar_member **order = calloc(n + 1, sizeof *order);
    struct md_ar_member mark = {0};
    if (!order || mark_input(p, &mark, err)) {
        free(order);
        return order ? -1 : md_fail(err, "out of memory");
    }
    for (size_t i = 0; i < p->libc.count; i++)
        if (!p->removed[i])
            order[k++] = &p->libc.members[i];
    for (size_t i = 0; i < p->alloc.count; i++)
        order[k++] = &p->alloc.members[i];
    order[k++] = &mark;
    unsigned char *buf = NULL;
    size_t size = 0;
    int rc = md_archive_serialize(order, n, &buf, &size, err);
    if (!rc)
        rc = write_bytes(p->opt, &p->alloc, buf, size, n, report, err);
    free(buf), free(order);
    md_patch_mark_free(&mark);
    return rc;
}

// -o from a libc.a already patched with this allocator: OUT must exist afterwards all the same
// (a later link searches its directory), so it gets the input's bytes, those its members were
// read from, written the same safe way.
static int write_copy(const struct plan *p, cJSON *report, struct md_error *err)
{
    return write_bytes(p->opt, &p->alloc, p->libc.bytes, p->libc.file_size, p->libc.count, report,
                       err);
}

// --- entry points ----------------------------------------------------------------------------

static void plan_free(struct plan *p)
{
    md_archive_free(&p->libc);
    md_archive_free(&p->alloc);
    free(p->removed);
    free(p->syms.slot);
}

static int load(struct plan *p, struct md_error *err)
{
    if (md_archive_read_digest(&p->libc, p->opt->libc, err) ||
        md_archive_read(&p->alloc, p->opt->allocator, err))
        return -1;
    p->removed = calloc(p->libc.count + 1, sizeof *p->removed);
    if (!p->removed)
        return md_fail(err, "out of memory");
    return check_is_musl(p, err) || check_allocator(p, err) ? -1 : 0;
}

// The backup --restore would put back in place of libc, or NULL when there is none (an earlier
// -o result has none: its original is the musl libc.a it was made from). Malloc'ed.
static char *backup_of(const struct md_patch_options *opt)
{
    struct md_error e;
    struct stat st;
    char *libc = NULL;
    char *backup = restore_names(opt, &libc, &e);
    free(libc);
    if (backup && !lstat(backup, &st))
        return backup;
    free(backup);
    return NULL;
}

// Patched with another allocator: what undoes that is --restore when a backup is there, else
// patching the original musl libc.a instead.
static void refuse_patched_before(const struct plan *p, struct md_error *err)
{
    const char *who = malloc_definer(&p->libc);
    char *backup = backup_of(p->opt);
    md_fail(err,
            "%s: musl's allocator is not in this libc.a (malloc comes from %s): it was "
            "patched before (with another allocator, or another build of it); %s%s%s",
            p->libc.path, who ? who : "nowhere",
            backup ? "run --restore first (the original is kept as "
                   : "there is no backup to "
                     "--restore: patch the original musl libc.a instead",
            backup ? backup : "", backup ? ")" : "");
    free(backup);
}

// Patched before: with this allocator (a no-op) or with another one (refused).
static enum md_patch_result patched_before(struct plan *p, cJSON *report, struct md_error *err)
{
    if (!already_patched(p)) {
        refuse_patched_before(p, err);
        return MD_PATCH_ERROR;
    }
    if (p->opt->output && !p->opt->dry_run && write_copy(p, report, err))
        return MD_PATCH_ERROR;
    if (!p->opt->output) { // in place: libc.a already holds the result
        put_str(report, "output", p->libc.path);
        put(report, "unchanged", cJSON_CreateBool(true));
    }
    put_str(report, "status", "already-patched");
    return MD_PATCH_DONE;
}

static enum md_patch_result plan_and_write(struct plan *p, cJSON *report, struct md_error *err)
{
    if (!p->flavor || already_patched(p))
        return patched_before(p, report, err);
    choose_removals(p);
    if (index_all(p, err))
        return MD_PATCH_ERROR;
    report_members(p, report);
    if (run_checks(p, report, err))
        return MD_PATCH_ERROR;
    if (p->missing || p->duplicates) {
        char why[128];
        snprintf(why, sizeof why,
                 "the patched libc.a would not link: %d missing, %d defined twice; nothing written",
                 p->missing, p->duplicates);
        report_refusal(report, why);
        return MD_PATCH_REFUSED;
    }
    if (p->opt->dry_run) {
        put_str(report, "status", "planned");
        return MD_PATCH_DONE;
    }
    if (write_result(p, report, err))
        return MD_PATCH_ERROR;
    put_str(report, "status", "patched");
    return MD_PATCH_DONE;
}

// The lock of the directory the result goes to, taken before the input is read: a run that read
// libc.a while another replaced it would plan from the old bytes and then find the other's
// backup in its way. Under the lock, a run reads either the original or the finished result.
static int lock_output_dir(const struct md_patch_options *opt, struct md_error *err)
{
    char *path = replaced_path(opt->output ? opt->output : opt->libc, err);
    struct place pl;
    int lock = path && !place_of(path, &pl, err) ? lock_dir(pl.dir, err) : -1;
    free(path);
    return lock;
}

enum md_patch_result md_patch(const struct md_patch_options *opt, cJSON *report,
                              struct md_error *err)
{
    struct plan p = {.opt = opt};
    enum md_patch_result rc = MD_PATCH_ERROR;
    report_skeleton(opt, report);
    int lock = opt->dry_run ? -1 : lock_output_dir(opt, err);
    if ((opt->dry_run || lock >= 0) && !load(&p, err)) {
        report_inputs(&p, report);
        rc = plan_and_write(&p, report, err);
    }
    if (lock >= 0)
        close(lock);
    plan_free(&p);
    if (rc == MD_PATCH_ERROR)
        report_refusal(report, err->msg);
    return rc;
}

// err's reason without its leading "path: ", to quote inside another message.
static const char *reason_of(const struct md_error *err, const char *path)
{
    size_t n = strlen(path);
    bool prefixed = !strncmp(err->msg, path, n) && !strncmp(err->msg + n, ": ", 2);
    return prefixed ? err->msg + n + 2 : err->msg;
}

// Why the archive at path, read into ar (the caller releases it), is not what --restore expects
// there: a libc.a this tool patched (musl's, with musl's own allocator gone) when want_patched,
// else an unpatched musl libc.a. Fills why and returns true on a mismatch.
static bool restore_mismatch(const char *path, struct md_archive *ar, bool want_patched, char *why,
                             size_t size)
{
    struct md_error e;
    // the original's digest, for made_from
    bool unreadable =
        (want_patched ? md_archive_read(ar, path, &e) : md_archive_read_digest(ar, path, &e)) != 0;
    enum libc_kind kind = unreadable ? LIBC_NOT_MUSL : libc_kind(ar);
    const char *flavor = unreadable ? NULL : musl_flavor(ar);
    if (unreadable)
        snprintf(why, size, "%s", reason_of(&e, path));
    else if (kind == LIBC_GLIBC)
        snprintf(why, size, "this is glibc's libc.a");
    else if (kind != LIBC_MUSL)
        snprintf(why, size, "not a musl libc.a");
    else if (want_patched && flavor)
        snprintf(why, size, "musl's own %s is in it", flavor);
    else if (!want_patched && !flavor)
        snprintf(why, size, "musl's allocator is not in it");
    else
        return false;
    return true;
}

// A libc.a patched before the mark (lib/patch_mark.h), judged by its members: the original's, in
// order and byte for byte, but for musl's allocator, come first. (Which of the members after them
// the allocator added is not known, so a member appended to a newer libc.a goes unnoticed.)
static bool made_from_members(const struct md_archive *patched, const struct md_archive *orig,
                              char *why, size_t size)
{
    size_t j = 0;
    for (size_t i = 0; i < orig->count; i++) {
        const struct md_ar_member *m = &orig->members[i];
        if (j < patched->count && same_member(m, &patched->members[j]))
            j++;
        else if (!removal_reason(NULL, m)) { // a member the plan may have removed
            snprintf(why, size, "the backup's member %s (#%zu) is not in it", m->name, i);
            return false;
        }
    }
    return true;
}

// Whether the patched libc.a was made from the backup: by the mark patch left in it (the
// original's size and SHA-256), or by its members when an older malloc-doctor patched it.
static bool made_from(const struct md_archive *patched, const struct md_archive *orig, char *why,
                      size_t size)
{
    struct md_patch_mark want, have;
    if (!md_patch_mark_find(patched, &want))
        return made_from_members(patched, orig, why, size);
    md_patch_mark_of(orig, &have);
    if (have.size == want.size && !strcmp(have.sha256, want.sha256))
        return true;
    snprintf(why, size, "it was made from a libc.a of %zu bytes, sha256 %s", want.size,
             want.sha256);
    return false;
}

// A refusal's "it stays%s%s": and so does libc, when there is one.
#define STAYS_TOO(have_libc, libc) (have_libc) ? ", and so does " : "", (have_libc) ? (libc) : ""

// The rename discards what is at libc, so that must be a libc.a this tool patched (or nothing:
// then nothing is lost), and what it puts there must be the unpatched musl libc.a that libc was
// made from, not an older one a toolchain update left behind.
static int check_backed_up(const char *libc, bool have_libc, const char *backup,
                           struct md_error *err)
{
    char why[256];
    struct md_archive patched = {0}, orig = {0};
    int rc = 0;
    if (have_libc && restore_mismatch(libc, &patched, true, why, sizeof why))
        rc = md_fail(err,
                     "%s: not a libc.a this tool patched (%s); restoring %s would discard it; "
                     "move it away first",
                     libc, why, backup);
    else if (restore_mismatch(backup, &orig, false, why, sizeof why))
        rc = md_fail(err, "%s: not an unpatched musl libc.a (%s); it stays%s%s", backup, why,
                     STAYS_TOO(have_libc, libc));
    else if (have_libc && !made_from(&patched, &orig, why, sizeof why))
        rc = md_fail(err,
                     "%s: not patched from %s (%s); both stay: name its backup with --backup "
                     "SUFFIX, and remove a stale one",
                     libc, backup, why);
    md_archive_free(&patched), md_archive_free(&orig);
    return rc;
}

static int check_restorable(const char *libc, const char *backup, struct md_error *err)
{
    struct stat st;
    if (lstat(backup, &st))
        return md_fail_errno(err, errno, "%s: no backup to restore", backup);
    bool have_libc = !access(libc, F_OK);
    if (not_a_backup(&st))
        return md_fail(err, "%s: %s, not a backup this tool made; it stays%s%s", backup,
                       not_a_backup(&st), STAYS_TOO(have_libc, libc));
    return check_backed_up(libc, have_libc, backup, err);
}

// Renames the backup over libc (same bytes, mode and owner), after checking both under the
// directory lock, so that no other patch run changes either in between.
static enum md_patch_result restore_from(const struct md_patch_options *opt, const char *libc,
                                         const char *backup, cJSON *report, struct md_error *err)
{
    struct place pl;
    if (place_of(libc, &pl, err))
        return MD_PATCH_ERROR;
    int lock = opt->dry_run ? -1 : lock_dir(pl.dir, err);
    if (!opt->dry_run && lock < 0)
        return MD_PATCH_ERROR;
    int rc = check_restorable(libc, backup, err);
    if (!rc && !opt->dry_run) {
        put(report, "stale_temps_removed", cJSON_CreateNumber(sweep_temps(&pl)));
        if (rename(backup, libc))
            rc = md_fail_errno(err, errno, "%s: cannot restore from %s", libc, backup);
        else if (fsync_dir_of(libc))
            warn_dir_not_synced(report, libc, errno);
    }
    if (lock >= 0)
        close(lock);
    if (rc)
        return MD_PATCH_ERROR;
    put_str(report, "output", libc);
    put_str(report, "backup", backup);
    put_str(report, "status", opt->dry_run ? "restore-planned" : "restored");
    return MD_PATCH_DONE;
}

enum md_patch_result md_patch_restore(const struct md_patch_options *opt, cJSON *report,
                                      struct md_error *err)
{
    char *libc = NULL;
    char *backup = restore_names(opt, &libc, err);
    enum md_patch_result rc = MD_PATCH_ERROR;
    report_skeleton(opt, report);
    if (backup)
        rc = restore_from(opt, libc, backup, report, err);
    free(backup), free(libc);
    if (rc == MD_PATCH_ERROR)
        report_refusal(report, err->msg);
    return rc;
}
