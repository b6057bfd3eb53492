// SPDX-License-Identifier: GPL-3.0-or-later
// MD002: a third-party allocator is linked, but malloc is served by another one.
//
// The classic cases: a Rust crate that links mimalloc without making it the global allocator, a
// static link where libc's malloc.o won the archive order, or a dynamic program whose
// libmimalloc.so comes after libc.so.6 in the load order.
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/report.h"
#include "rules/rules.h"

// Allocators that are part of a libc or language runtime are expected to be present.
static bool is_runtime_family(const char *family)
{
    return !strcmp(family, "musl") || !strcmp(family, "glibc") || !strcmp(family, "go");
}

// The command to run: the traced one, else the inspected program (its arguments are the user's).
static void program_command(const struct md_rule_input *in, char *out, size_t size)
{
    if (in->trace) {
        md_rule_trace_command(in->trace, out, size);
        return;
    }
    const char *path = md_json_get_str(in->file, "path");
    char runnable[PATH_MAX + 8];
    // a name without a slash would be looked up in PATH, not taken from this directory
    snprintf(runnable, sizeof runnable, "%s%s", path && !strchr(path, '/') ? "./" : "",
             path ? path : "PROGRAM");
    size_t len = 0;
    out[0] = 0;
    md_append_shell_word(out, size, &len, runnable);
}

// How an allocator linked into a file (its objects, not a library) takes over malloc: each has
// its own way, and mdalloc's glibc archive needs all its members (nothing may pull them in).
static void override_fix(const struct md_rule_input *in, const char *id, const char *family,
                         const char *name, char *fix, size_t size)
{
    const char *libc = md_json_get_str(in->file, "libc");
    const char *kind = md_json_get_str(in->file, "kind");
    if (!strcmp(family, "mdalloc") && libc && !strcmp(libc, "musl") && kind &&
        !strncmp(kind, "static", 6))
        md_rule_patch_musl(in, in->file, fix, size);
    else if (!strcmp(family, "mdalloc"))
        md_rule_mdalloc_archive(in, fix, size);
    else if (!strcmp(family, "mimalloc"))
        snprintf(fix, size,
                 "link mimalloc's override object (mimalloc.o of an MI_OVERRIDE build) before "
                 "libc; in Rust, make it the #[global_allocator] (mimalloc crate)");
    else if (!strcmp(family, "jemalloc"))
        snprintf(fix, size,
                 "link a jemalloc built without a prefix (Debian's libjemalloc.a) before libc; a "
                 "prefixed one (je_malloc, Rust's tikv-jemallocator) never replaces malloc: in "
                 "Rust, make it the #[global_allocator] so that Rust's allocations use it");
    else if (!strcmp(id, "tcmalloc")) // gperftools' (Google's comes with its bazel build)
        snprintf(fix, size,
                 "link tcmalloc's archive (gperftools' libtcmalloc_minimal.a) before libc with "
                 "-Wl,--whole-archive ... -Wl,--no-whole-archive");
    else
        snprintf(fix, size,
                 "make %s override malloc: link the object that defines its malloc before libc "
                 "(in Rust: #[global_allocator])",
                 name);
}

// library: the loaded library that holds it, or NULL when it is linked into the file.
static void report(const struct md_rule *rule, const struct md_rule_input *in, const cJSON *alloc,
                   const char *where, const char *library, cJSON *findings)
{
    const cJSON *file = in->file;
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(file, "active");
    const char *active_name = md_json_get_str(active, "name");
    char message[512], fix[2048], cmd[512], preload[PATH_MAX + 64] = "";
    const char *name = md_json_get_str(alloc, "name");
    const char *family = md_json_get_str(alloc, "family");
    snprintf(message, sizeof message, "%s is %s but malloc is served by %s", name, where,
             active_name ? active_name : "an unidentified allocator");
    size_t len = 0;
    if (library) // the path the loader found: preloading that very file puts it first
        md_append_shell_word(preload, sizeof preload, &len, library);
    program_command(in, cmd, sizeof cmd);
    const char *kind = md_json_get_str(file, "kind");
    const char *lib = md_rule_link_name(md_json_get_str(alloc, "id"));
    const char *reason = md_json_get_str(active, "reason");
    bool own_malloc = !library && reason && !strcmp(reason, MD_DEFINED_ELSEWHERE);
    if (own_malloc) // patching or relinking would not change who wins: the file's own malloc
        snprintf(fix, sizeof fix,
                 "the file defines a malloc of its own (or links an allocator this tool does not "
                 "know), which wins over %s's: remove that definition for %s to serve malloc, or "
                 "keep it on purpose (%s then serves only libc's own calls)",
                 name, name, name);
    else if (kind && !strcmp(kind, "dynamic") && library && !lib)
        snprintf(fix, sizeof fix, "preload it: `LD_PRELOAD=%s %s`", preload, cmd);
    else if (kind && !strcmp(kind, "dynamic") && library)
        snprintf(fix, sizeof fix,
                 "preload it: `LD_PRELOAD=%s %s`; or link it before libc (-l%s right after your "
                 "objects)",
                 preload, cmd, lib);
    else
        override_fix(in, md_json_get_str(alloc, "id"), family, name, fix, sizeof fix);
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_WARNING, message, fix);
    cJSON_AddStringToObject(ev, "present", md_json_get_str(alloc, "id"));
    md_json_str(ev, "active", md_json_get_str(active, "id"));
}

// An allocator known in a dynamically linked file by its strings alone: that file defines malloc
// (else inspect drops such evidence) and they may say whose it is, but an allocator linked in
// without serving malloc would show in .dynsym no more than a string one of its messages quotes.
static bool strings_only_in_dynamic(const cJSON *file, const cJSON *alloc)
{
    const char *kind = md_json_get_str(file, "kind");
    if (!kind || (strcmp(kind, "dynamic") && strcmp(kind, "shared-object")))
        return false;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(alloc, "evidence"))
    {
        const char *type = md_json_get_str(ev, "type");
        if (!type || (strcmp(type, "string") && strcmp(type, "table")))
            return false;
    }
    return true;
}

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    // a file that does not link malloc has nothing serving it: no allocator is passed over
    const char *reason =
        md_json_get_str(cJSON_GetObjectItemCaseSensitive(in->file, "active"), "reason");
    if (!in->file || (reason && !strcmp(reason, MD_NOT_LINKED)))
        return;
    const char *active_id = md_rule_active_id(in->file);
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(in->file, "allocators"))
    {
        const char *id = md_json_get_str(a, "id");
        if (id && !is_runtime_family(md_json_get_str(a, "family")) &&
            (!active_id || strcmp(id, active_id)) && !strings_only_in_dynamic(in->file, a))
            report(rule, in, a, "linked into this file", NULL, findings);
    }
    const cJSON *lib;
    cJSON_ArrayForEach(lib, cJSON_GetObjectItemCaseSensitive(in->file, "load_order"))
    {
        const cJSON *alloc = cJSON_GetObjectItemCaseSensitive(lib, "allocator");
        const char *id = md_json_get_str(alloc, "id");
        if (id && md_json_get_bool(lib, "exports_malloc") &&
            !is_runtime_family(md_json_get_str(alloc, "family")) &&
            (!active_id || strcmp(id, active_id)))
            report(rule, in, alloc, "loaded (later in the load order)",
                   md_json_get_str(lib, "path"), findings);
    }
}

const struct md_rule md_rule_not_active = {
    .id = "MD002",
    .name = "allocator-not-active",
    .title = "allocator linked but not serving malloc",
    .severities = MD_SEV_BIT(MD_SEV_WARNING),
    .check = check,
};
