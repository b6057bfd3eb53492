// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/inspect.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/run.h"
#include "lib/script.h"
#include "rules/rules.h"

int md_inspector_init(struct md_inspector *in, const struct md_inspect_options *opt, cJSON *files,
                      struct md_error *err)
{
    memset(in, 0, sizeof *in);
    in->opt = *opt;
    in->files = files;
    in->file_entries = (size_t)cJSON_GetArraySize(files);
    md_tool_dir(in->alloc_dir, sizeof in->alloc_dir - 8);
    strcat(in->alloc_dir, "/alloc");
    md_tool_command(in->tool, sizeof in->tool);
    if (opt->expect) {
        if (!md_allocator_known(opt->expect)) {
            char names[512];
            md_inspect_allocator_names(names, sizeof names);
            return md_fail(err, "unknown allocator '%s' (known: %s)", opt->expect, names);
        }
    }
    if (md_matcher_init(&in->matcher, err))
        return -1;
    return md_loader_init(&in->loader, opt->root, &in->matcher, err);
}

void md_inspector_free(struct md_inspector *in)
{
    md_loader_free(&in->loader);
}

void md_inspect_allocator_names(char *out, size_t size)
{
    const char *listed[2 * MD_MAX_SIGNATURES];
    size_t count = 0, n = 0;
    out[0] = 0;
    for (size_t i = 0; i < md_signature_count; i++) {
        const struct md_signature *s = &md_signatures[i];
        const char *names[] = {s->id, s->family};
        for (size_t k = 0; k < 2 && s->kind == MD_SIG_ALLOCATOR; k++) {
            bool seen = false;
            for (size_t j = 0; j < count && !seen; j++)
                seen = !strcmp(listed[j], names[k]);
            if (seen || n >= size)
                continue;
            listed[count++] = names[k];
            n += (size_t)snprintf(out + n, size - n, "%s%s", n ? ", " : "", names[k]);
        }
    }
}

static void append_entry(struct md_inspector *in, cJSON *entry)
{
    cJSON_AddItemToArray(in->files, entry);
    in->file_entries++;
}

static cJSON *new_entry(struct md_inspector *in, const char *path)
{
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddStringToObject(entry, "path", path);
    append_entry(in, entry);
    return entry;
}

// Appends entry (its path and names already set) as one that could not be read.
static void add_error_to(struct md_inspector *in, cJSON *entry, const struct md_error *err)
{
    cJSON_AddStringToObject(entry, "status", "error");
    cJSON_AddStringToObject(entry, "error", err->msg);
    append_entry(in, entry);
    in->errors++;
}

static void add_error(struct md_inspector *in, const char *path, const struct md_error *err)
{
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddStringToObject(entry, "path", path);
    add_error_to(in, entry, err);
}

static cJSON *signature_json(int sig)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", md_signatures[sig].id);
    cJSON_AddStringToObject(o, "family", md_signatures[sig].family);
    cJSON_AddStringToObject(o, "name", md_signatures[sig].name);
    return o;
}

static void add_format(cJSON *entry, const struct md_elf *e)
{
    cJSON *f = cJSON_AddObjectToObject(entry, "format");
    cJSON_AddStringToObject(f, "class", md_elf_class_name(e));
    cJSON_AddStringToObject(f, "machine", md_elf_machine_name(e));
    cJSON_AddStringToObject(f, "byte_order", md_elf_big_endian(e) ? "big" : "little");
}

static void add_allocators(cJSON *entry, const struct md_ident *id)
{
    cJSON *list = cJSON_AddArrayToObject(entry, "allocators");
    cJSON *refs = cJSON_AddArrayToObject(entry, "references");
    for (size_t s = 0; s < md_signature_count; s++) {
        const struct md_hit *h = &id->hit[s];
        const char *confidence = md_hit_confidence(h);
        if (md_signatures[s].kind != MD_SIG_ALLOCATOR)
            continue;
        if (!confidence) {
            if (h->imports) // the program calls this allocator's API without containing it
                cJSON_AddItemToArray(refs, cJSON_CreateString(md_signatures[s].id));
            continue;
        }
        cJSON *a = signature_json((int)s);
        cJSON_AddStringToObject(a, "confidence", confidence);
        cJSON *ev = cJSON_AddArrayToObject(a, "evidence");
        for (unsigned i = 0; i < h->evidence_count; i++) {
            cJSON *item = cJSON_CreateObject();
            cJSON_AddStringToObject(item, "type", h->evidence[i].type);
            cJSON_AddStringToObject(item, "value", h->evidence[i].value);
            cJSON_AddItemToArray(ev, item);
        }
        cJSON_AddItemToArray(list, a);
    }
}

// libc from the interpreter when there is one, else from the runtime signatures.
static const char *libc_of(const struct md_ident *id, const char *interp,
                           const struct md_dynamic *dyn)
{
    // a library names no loader, but the libc it needs: musl's libc.so or glibc's libc.so.6
    for (size_t i = 0; !interp && i < dyn->needed_count; i++)
        if (!strcmp(dyn->needed[i], "libc.so") || !strcmp(dyn->needed[i], "libc.so.6"))
            return dyn->needed[i][7] ? "glibc" : "musl";
    if (interp)
        return strstr(interp, "ld-musl")    ? "musl"
               : strstr(interp, "ld-linux") ? "glibc"
                                            : "unknown";
    const char *best = "none";
    unsigned best_score = 0;
    for (size_t s = 0; s < md_signature_count; s++) {
        const struct md_hit *h = &id->hit[s];
        unsigned score = 3 * (h->sections + h->code) + 2 * h->symbols + h->strings;
        if (md_signatures[s].kind == MD_SIG_RUNTIME && score > best_score)
            best = md_signatures[s].id, best_score = score;
    }
    if (!strcmp(best, "none") && id->glibc_versions)
        return "glibc";
    // stripped static: a libc's own allocator found by its strings names the libc
    for (size_t s = 0; s < md_signature_count && !strcmp(best, "none"); s++) {
        const char *family = md_signatures[s].family;
        if (md_signatures[s].kind != MD_SIG_RUNTIME && md_hit_confidence(&id->hit[s]) &&
            (!strcmp(family, "musl") || !strcmp(family, "glibc")))
            best = family;
    }
    // "none" is a fact of a symbol table that shows no libc (Free Pascal); a stripped file
    // without libc evidence may well have one
    return !strcmp(best, "none") && !id->has_symtab ? "unknown" : best;
}

// A library the program links directly that imports pthread_create can start threads of its own
// (liblzma for `xz -T0`, libcurl's resolver, libgomp): "yes", with why. Libraries further down are
// not counted: most programs never reach the code of theirs that does (ps links libsystemd, which
// links liblzma and libzstd, and starts none). One not found could: "unknown". Else "no".
static const char *threads_of_libraries(const struct md_scope *scope, char *why, size_t size)
{
    for (size_t i = 0; i < scope->direct_count; i++) {
        const struct md_libinfo *li = scope->object[i];
        if (li->thread_import) {
            snprintf(why, size, "%s, imported by %s", li->thread_import, li->path);
            return "yes";
        }
    }
    if (!scope->direct_missing)
        return "no";
    snprintf(why, size, "%s was not found (it could import one)", scope->missing[0]);
    return "unknown";
}

// scope: a dynamic object's libraries, or NULL.
static void add_threads(cJSON *entry, const struct md_ident *id, const char *libc,
                        const struct md_scope *scope)
{
    const char *answer = "no", *because = id->thread_symbol;
    char from_library[PATH_MAX + 64];
    if (!strcmp(libc, "go"))
        answer = "yes", because = "Go runtime";
    else if (id->thread_symbol)
        answer = "yes";
    else if (scope) { // .dynsym survives strip and lists every import: none is a thread symbol
        answer = threads_of_libraries(scope, from_library, sizeof from_library);
        because = strcmp(answer, "no") ? from_library : NULL;
    } else if (!id->has_symtab && !id->imports_malloc && !id->exports_malloc)
        answer = "unknown"; // stripped static: pthread_create leaves no name behind
    cJSON_AddStringToObject(entry, "threads", answer);
    md_json_str(entry, "threads_evidence", because);
}

static void add_active(cJSON *entry, const struct md_active *a, const char *provider,
                       const char *note)
{
    cJSON *o = a->sig >= 0 ? signature_json(a->sig) : cJSON_CreateObject();
    if (a->sig < 0) {
        cJSON_AddNullToObject(o, "id");
        cJSON_AddNullToObject(o, "family");
        cJSON_AddNullToObject(o, "name");
    }
    cJSON_AddStringToObject(o, "confidence", a->confidence);
    cJSON_AddStringToObject(o, "how", a->how);
    md_json_str(o, "reason", a->reason);
    md_json_str(o, "provider", provider);
    md_json_str(o, "note", note);
    cJSON_AddItemToObject(entry, "active", o);
}

static void add_load_order(cJSON *entry, const struct md_scope *scope)
{
    cJSON *order = cJSON_AddArrayToObject(entry, "load_order");
    for (size_t i = 0; i < scope->count; i++) {
        const struct md_libinfo *li = scope->object[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "path", li->path);
        cJSON_AddBoolToObject(o, "exports_malloc", li->exports_malloc);
        if (li->exports_malloc && li->active.sig >= 0)
            cJSON_AddItemToObject(o, "allocator", signature_json(li->active.sig));
        else
            cJSON_AddNullToObject(o, "allocator");
        cJSON_AddItemToArray(order, o);
    }
    md_json_strs(entry, "missing_libraries", scope->missing, scope->missing_count);
}

static const char runtime_note[] =
    "LD_PRELOAD, /etc/ld.so.preload changes and LD_LIBRARY_PATH can change this at run time";

// The libraries not found that would come before the object at provider in load order: they, or
// what they need, could define malloc first. Returns how many; *first names one.
static size_t missing_before(const struct md_scope *scope, size_t provider, const char **first)
{
    size_t n = 0;
    for (size_t i = 0; i < scope->missing_count; i++)
        if (scope->missing_at[i] <= provider && !n++)
            *first = scope->missing[i];
    return n;
}

// Appends to a.how what the libraries not found change (missing_before).
static void caveat_missing(struct md_active *a, const struct md_scope *scope, size_t provider)
{
    const char *first = NULL;
    size_t before = missing_before(scope, provider, &first);
    char how[sizeof a->how];
    if (before == 1)
        snprintf(how, sizeof how, "%s; but %s was not found (it could define malloc first)", a->how,
                 first);
    else if (before)
        snprintf(how, sizeof how,
                 "%s; but %s and %zu more were not found (one could define malloc first)", a->how,
                 first, before - 1);
    else if (scope->missing_count) // found or not, they come after the provider
        snprintf(how, sizeof how, "%s; %s was not found, but would come after it", a->how,
                 scope->missing[0]);
    else
        return;
    a->confidence = before ? "low" : a->confidence;
    snprintf(a->how, sizeof a->how, "%s", how);
}

// Appends to a.how which copy of the provider glibc's hwcaps subdirectories make it load.
// The legacy hwcaps subdirectory ("x86_64/", ...) path's file is in, or NULL.
static const char *legacy_subdir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    for (int i = 0; slash && i < MD_LEGACY_SUBDIRS; i++) {
        size_t n = strlen(md_loader_legacy_subdirs[i]);
        if ((size_t)(slash + 1 - path) > n && slash[-(ptrdiff_t)n] == '/' &&
            !strncmp(slash + 1 - n, md_loader_legacy_subdirs[i], n))
            return md_loader_legacy_subdirs[i];
    }
    return NULL;
}

static void caveat_hwcaps(struct md_active *a, const struct md_scope *scope,
                          const struct md_libinfo *li)
{
    char how[sizeof a->how], copy[PATH_MAX];
    const char *level = strstr(li->path, "/glibc-hwcaps/");
    const char *legacy = legacy_subdir_of(li->path);
    if (scope->musl)
        return;
    if (level) {
        snprintf(how, sizeof how,
                 "%s; glibc loads this glibc-hwcaps copy on this machine's CPU (%.*s); another "
                 "CPU may load another copy",
                 a->how, (int)strcspn(level + 14, "/"), level + 14);
    } else if (legacy && scope->glibc_minor >= 0) { // the search chose it, knowing the version
        snprintf(how, sizeof how,
                 "%s; glibc 2.%d loads this copy in the legacy hwcaps subdirectory %s before the "
                 "directory's own (glibc 2.37 and later do not)",
                 a->how, scope->glibc_minor, legacy);
    } else if (scope->glibc_minor < 0 && md_loader_legacy_copy(li, copy, sizeof copy)) {
        snprintf(how, sizeof how,
                 "%s; but %s, a legacy hwcaps subdirectory's copy, is what glibc before 2.37 "
                 "loads on a CPU it matches",
                 a->how, copy);
        if (!strcmp(a->confidence, "high"))
            a->confidence = "medium";
    } else {
        return;
    }
    snprintf(a->how, sizeof a->how, "%s", how);
}

// Dynamic objects: malloc binds to the first object in load order that exports it.
static void active_dynamic(cJSON *entry, const char *path, const struct md_scope *scope,
                           const struct md_ident *id, const struct md_matcher *matcher)
{
    struct md_active a;
    add_load_order(entry, scope); // whoever serves malloc: the libraries are facts of the file
    // exported, it interposes on the libraries' malloc too; defined but neither exported nor
    // imported (a static libc linked into a PIE that still names a loader, as musl-gcc
    // -static-pie gives), the file's own calls are bound to it at link time
    if (id->exports_malloc || (id->defines_malloc && !id->imports_malloc)) {
        md_active_local(matcher, id, &a);
        add_active(entry, &a, path, runtime_note);
        return;
    }
    for (size_t i = 0; i < scope->count; i++) {
        const struct md_libinfo *li = scope->object[i];
        if (!li->exports_malloc)
            continue;
        a = li->active;
        char how[sizeof a.how];
        snprintf(how, sizeof how, "malloc binds to %s (first in load order to define it); %s",
                 li->path, li->active.how);
        snprintf(a.how, sizeof a.how, "%s", how);
        caveat_missing(&a, scope, i);
        caveat_hwcaps(&a, scope, li);
        add_active(entry, &a, li->path, runtime_note);
        return;
    }
    a = (struct md_active){.sig = -1, .confidence = "low"};
    snprintf(a.how, sizeof a.how, "no library in the load order defines malloc%s",
             scope->missing_count ? " (some libraries were not found)" : "");
    add_active(entry, &a, NULL, runtime_note);
}

// What runs: not an object before linking, nor a separate debug file (the program it was split
// from is what runs, and is judged on its own).
static bool takes_expect(const char *kind)
{
    return strcmp(kind, "relocatable") && strcmp(kind, "other") && strcmp(kind, "debug-file");
}

// Why no allocator serves the file, or NULL when one may: a library that neither defines malloc
// nor imports any way into the allocator (identify.h: imports_alloc_api; libX11-xcb, the dynamic
// loader), or a static program whose symbol table shows neither malloc nor any allocator (one
// that never allocates: musl leaves malloc out). A dynamic program is served by its libraries'.
static const char *nothing_allocates(enum md_elf_kind kind, const struct md_ident *id)
{
    if (id->defines_malloc || id->imports_alloc_api)
        return NULL;
    for (size_t s = 0; s < md_signature_count; s++)
        if (md_signatures[s].kind == MD_SIG_ALLOCATOR && md_hit_confidence(&id->hit[s]))
            return NULL; // an allocator by another name (Go's runtime.mallocgc)
    if (kind == MD_KIND_SHARED)
        return "the library neither defines malloc nor imports any allocation function";
    if ((kind == MD_KIND_STATIC || kind == MD_KIND_STATIC_PIE) && id->has_symtab)
        return "the program links no allocator: it never calls malloc";
    return NULL;
}

// {allocator, met: null, reason}: --expect has nothing to judge there.
static void expect_not_judged(const struct md_inspector *in, cJSON *entry, const char *reason)
{
    cJSON *o = cJSON_AddObjectToObject(entry, "expect");
    cJSON_AddStringToObject(o, "allocator", in->opt.expect);
    cJSON_AddNullToObject(o, "met");
    cJSON_AddStringToObject(o, "reason", reason);
}

// nothing: nothing_allocates' answer; no allocator serves the file, so it cannot fail --expect.
static void check_expect(struct md_inspector *in, cJSON *entry, const char *kind,
                         const char *nothing)
{
    if (!in->opt.expect || !takes_expect(kind))
        return;
    in->expect_checked++;
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(entry, "active");
    const char *id = md_json_get_str(active, "id"), *family = md_json_get_str(active, "family");
    bool met = (id && !strcmp(id, in->opt.expect)) || (family && !strcmp(family, in->opt.expect));
    if (nothing && !met) {
        expect_not_judged(in, entry, nothing);
        return;
    }
    cJSON *o = cJSON_AddObjectToObject(entry, "expect");
    cJSON_AddStringToObject(o, "allocator", in->opt.expect);
    cJSON_AddBoolToObject(o, "met", met);
    in->expect_failed += !met;
}

static void add_findings(struct md_inspector *in, cJSON *entry)
{
    cJSON *findings = cJSON_AddArrayToObject(entry, "findings");
    struct md_rule_input input = {
        .file = entry, .expect = in->opt.expect, .alloc_dir = in->alloc_dir, .tool = in->tool};
    md_rules_run(&input, findings);
}

// The kind the headers give, corrected by what the symbols show of how the file runs.
static enum md_elf_kind kind_of(const struct md_elf *e, const char *interp,
                                const struct md_dynamic *dyn, const struct md_ident *id)
{
    enum md_elf_kind kind = md_elf_kind_of(e, interp != NULL, dyn);
    // A static PIE exports nothing to a dynamic linker; musl's libc.so (also its dynamic linker:
    // an entry point, no soname, no interpreter) exports malloc and is a library.
    if (kind == MD_KIND_STATIC_PIE && id->exports_malloc && !(dyn->flags_1 & DF_1_PIE))
        return MD_KIND_SHARED;
    // A program that names a loader but needs no library and imports nothing (musl-gcc
    // -static-pie links libc.a into a PIE and keeps musl's loader) is static at run time: the
    // loader only relocates it, every call is bound at link time, LD_PRELOAD cannot reach its
    // malloc. Stripped, its .dynsym says nothing of malloc, so the file's own code must.
    if (kind == MD_KIND_DYNAMIC && !dyn->needed_count && !id->dynamically_linked)
        return e->ehdr.e_type == ET_EXEC ? MD_KIND_STATIC : MD_KIND_STATIC_PIE;
    return kind;
}

// Fills entry for one ELF object. Returns -1 with err set when the file is unreadable.
static int describe_elf(struct md_inspector *in, struct md_elf *e, const char *path, cJSON *entry,
                        struct md_error *err)
{
    const char *interp;
    struct md_dynamic dyn;
    struct md_ident id;
    if (md_elf_interpreter(e, &interp, err) || md_elf_dynamic(e, &dyn, err) ||
        md_identify(&in->matcher, e, &id, err))
        return -1;
    enum md_elf_kind kind = kind_of(e, interp, &dyn, &id);
    const char *kind_name = md_elf_kind_name(kind), *libc = libc_of(&id, interp, &dyn);
    cJSON_AddStringToObject(entry, "status", "ok");
    add_format(entry, e);
    cJSON_AddStringToObject(entry, "kind", kind_name);
    // libc and threads are facts of linked files; a debug file has lost the code and dynamic
    // section that tell them
    bool linked = kind != MD_KIND_RELOCATABLE && kind != MD_KIND_DEBUG;
    md_json_str(entry, "libc", linked ? libc : NULL);
    md_json_str(entry, "interpreter", interp);
    cJSON_AddBoolToObject(entry, "stripped", !id.has_symtab);
    bool dynamic = kind == MD_KIND_DYNAMIC || kind == MD_KIND_SHARED;
    struct md_scope scope;
    if (dynamic)
        md_loader_scope(&in->loader, path, e, &dyn, interp, &scope);
    if (linked)
        add_threads(entry, &id, libc, dynamic ? &scope : NULL);
    else
        cJSON_AddNullToObject(entry, "threads"), cJSON_AddNullToObject(entry, "threads_evidence");
    md_json_strs(entry, "needed", dyn.needed, dyn.needed_count);
    md_json_str(entry, "malloc_import_version", id.imports_malloc ? id.malloc_version : NULL);
    add_allocators(entry, &id);
    struct md_active a;
    if (dynamic) {
        active_dynamic(entry, path, &scope, &id, &in->matcher);
    } else if (linked || id.defines_malloc) {
        md_active_local(&in->matcher, &id, &a);
        add_active(entry, &a, NULL, NULL);
    }
    check_expect(in, entry, kind_name, nothing_allocates(kind, &id));
    if (takes_expect(kind_name))
        add_findings(in, entry);
    else // no rule judges an object that is not linked yet, or a debug file; the key stays
        cJSON_AddArrayToObject(entry, "findings");
    md_ident_free(&id);
    return 0;
}

static bool has_allocator_evidence(const cJSON *entry)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(entry, "allocators")) > 0 ||
           cJSON_GetObjectItemCaseSensitive(entry, "active");
}

// An archive member's entry: its label ("archive(member)") and the names it is made of.
static cJSON *member_entry(const char *archive, const char *label)
{
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddStringToObject(entry, "path", label);
    cJSON_AddStringToObject(entry, "archive", archive);
    char member[256]; // label is "archive(member)"
    snprintf(member, sizeof member, "%.*s", (int)(strlen(label) - strlen(archive) - 2),
             label + strlen(archive) + 1);
    cJSON_AddStringToObject(entry, "member", member);
    return entry;
}

struct member_counts {
    size_t members, matched, unreadable, skipped;
};

// One member the walk handed out: rc is md_archive_next's, 1 (m is open) or 2 (err says why it
// could not be read). Listed are those with allocator evidence and those that could not be read.
static void inspect_member(struct md_inspector *in, struct md_elf *m, const char *archive,
                           const char *label, int rc, struct md_error *err, struct member_counts *n)
{
    n->members++;
    cJSON *entry = member_entry(archive, label);
    bool failed = rc == 2 || describe_elf(in, m, label, entry, err);
    if (rc == 1)
        md_elf_close(m);
    if (failed) {
        cJSON_Delete(entry);
        entry = member_entry(archive, label); // describe_elf may have filled some of it
        n->unreadable++;
        add_error_to(in, entry, err);
    } else if (has_allocator_evidence(entry)) {
        n->matched++;
        append_entry(in, entry);
    } else {
        cJSON_Delete(entry);
    }
}

static void inspect_archive(struct md_inspector *in, struct md_elf *ar, const char *path)
{
    cJSON *summary = new_entry(in, path);
    struct member_counts n = {0};
    char label[PATH_MAX + 256];
    struct md_elf m;
    struct md_error err;
    int rc;
    while ((rc = md_archive_next(ar, &m, label, sizeof label, &n.skipped, &err)) > 0)
        inspect_member(in, &m, path, label, rc, &err, &n);
    cJSON_AddStringToObject(summary, "status", rc < 0 ? "error" : "ok");
    if (rc < 0) {
        cJSON_AddStringToObject(summary, "error", err.msg);
        in->errors++;
    }
    cJSON_AddStringToObject(summary, "kind", "archive");
    cJSON_AddNumberToObject(summary, "members", (double)n.members);
    cJSON_AddNumberToObject(summary, "allocator_members", (double)n.matched);
    cJSON_AddNumberToObject(summary, "unreadable_members", (double)n.unreadable);
    cJSON_AddNumberToObject(summary, "skipped_members", (double)n.skipped);
    cJSON_AddArrayToObject(summary, "findings");
    if (in->opt.expect) // which member a link takes for malloc depends on the link
        expect_not_judged(in, summary,
                          "an archive is not linked yet: --expect judges programs and shared "
                          "libraries; inspect a program linked with it");
}

// A script is no ELF file: name the interpreter that runs it, which is the file to inspect.
static void explain_script(const char *path, struct md_error *err)
{
    struct md_script_hop hop;
    struct md_error unread;
    if (md_script_read(path, &hop, &unread) == 1)
        md_fail(err, "%s: a #! script, not an ELF file: inspect its interpreter, %s%s%s", path,
                hop.interpreter, hop.has_argument ? " " : "", hop.has_argument ? hop.argument : "");
}

static void inspect_file_now(struct md_inspector *in, const char *path)
{
    struct md_elf e;
    struct md_error err;
    bool is_archive = false;
    in->inspected++;
    if (md_elf_open(&e, path, &is_archive, &err)) {
        explain_script(path, &err);
        add_error(in, path, &err);
        return;
    }
    if (is_archive) {
        inspect_archive(in, &e, path);
    } else {
        cJSON *entry = cJSON_CreateObject();
        cJSON_AddStringToObject(entry, "path", path);
        if (describe_elf(in, &e, path, entry, &err)) {
            cJSON_Delete(entry);
            add_error(in, path, &err);
        } else {
            append_entry(in, entry);
        }
    }
    md_elf_close(&e);
}

// A file that shrank while it was mapped was read partly as zeros (mapping_faults): its entries
// and counts are taken back, and it is an error of its own.
static void inspect_file(struct md_inspector *in, const char *path)
{
    const volatile sig_atomic_t *faults = in->opt.mapping_faults;
    sig_atomic_t faults_before = faults ? *faults : 0;
    size_t entries = in->file_entries;
    size_t errors = in->errors, expect_failed = in->expect_failed, checked = in->expect_checked;
    inspect_file_now(in, path);
    if (!faults || *faults == faults_before)
        return;
    for (; in->file_entries > entries; in->file_entries--)
        cJSON_DeleteItemFromArray(in->files, (int)entries);
    in->errors = errors;
    in->expect_failed = expect_failed;
    in->expect_checked = checked;
    // the file that shrank may be a library it needs, which the next files would meet again
    md_loader_forget_libraries(&in->loader);
    struct md_error err;
    md_fail(&err,
            "%s: the file, or a library it needs, shrank while it was read (being rewritten?); "
            "inspect it again",
            path);
    add_error(in, path, &err);
}

// In a directory walk only ELF files and archives are inspected; scripts and data are skipped.
static bool looks_inspectable(const char *path)
{
    unsigned char magic[8] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return true; // let inspect_file report the error
    ssize_t n = read(fd, magic, sizeof magic);
    close(fd);
    return n >= 4 && (!memcmp(magic,
                              "\x7f"
                              "ELF",
                              4) ||
                      (n == 8 && !memcmp(magic, "!<arch>\n", 8)));
}

static void walk_dir(struct md_inspector *in, const char *dir);

// A name the walk reached but could not examine (an unreadable directory, a failed lstat): a
// path of the report like a file that could not be read, so summary.files counts it with them.
static void walk_error(struct md_inspector *in, const char *path, const struct md_error *err)
{
    in->inspected++;
    add_error(in, path, err);
}

// One name in a directory walk. A name that cannot be examined is an error, not a skip: a
// walk that silently lost files would let --expect pass over them.
static void walk_entry(struct md_inspector *in, const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    struct md_error err;
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return;
    bool too_long = snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path;
    int stat_error = too_long || !lstat(path, &st) ? 0 : errno;
    if (too_long) {
        md_fail(&err, "%s/%s: path too long", dir, name);
        walk_error(in, dir, &err);
    } else if (stat_error == ENOENT) {
        in->skipped++; // gone since the listing: a live build tree
    } else if (stat_error) {
        md_fail_errno(&err, stat_error, "%s", path);
        walk_error(in, path, &err);
    } else if (S_ISDIR(st.st_mode)) { // symlinks are not followed: no loops, each file once
        walk_dir(in, path);
    } else if (S_ISREG(st.st_mode) && looks_inspectable(path)) {
        inspect_file(in, path);
    } else {
        in->skipped++;
    }
}

static void walk_dir(struct md_inspector *in, const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort); // sorted: the report is deterministic
    if (n < 0) {
        struct md_error err;
        md_fail_errno(&err, errno, "%s", dir);
        walk_error(in, dir, &err);
        return;
    }
    for (int i = 0; i < n; i++) {
        walk_entry(in, dir, names[i]->d_name);
        free(names[i]);
    }
    free(names);
}

void md_inspect_path(struct md_inspector *in, const char *path)
{
    struct stat st;
    if (in->opt.recursive && !stat(path, &st) && S_ISDIR(st.st_mode))
        walk_dir(in, path);
    else
        inspect_file(in, path);
}

void md_inspect_summary(const struct md_inspector *in, cJSON *report)
{
    cJSON *s = cJSON_AddObjectToObject(report, "summary");
    cJSON_AddNumberToObject(s, "files", (double)in->inspected);
    cJSON_AddNumberToObject(s, "errors", (double)in->errors);
    cJSON_AddNumberToObject(s, "skipped", (double)in->skipped);
    md_json_str(s, "expect", in->opt.expect);
    cJSON_AddNumberToObject(s, "expect_failed", (double)in->expect_failed);
    cJSON_AddNumberToObject(s, "expect_checked", (double)in->expect_checked);
}
