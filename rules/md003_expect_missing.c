// SPDX-License-Identifier: GPL-3.0-or-later
// MD003: `--expect ALLOC` and ALLOC does not serve malloc.
//
// When ALLOC is nowhere in the file or its load order and malloc binds to a libc version
// (malloc@GLIBC_2.2.5), the usual cause is that `-lALLOC` was dropped: with --as-needed (Debian's
// default) a library listed before the objects that call malloc satisfies nothing and is
// discarded without a word (seed 000: swoole-cli at 435 req/s instead of 16,432).
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/report.h"
#include "rules/rules.h"

static bool matches(const cJSON *alloc, const char *expect)
{
    const char *id = md_json_get_str(alloc, "id"), *family = md_json_get_str(alloc, "family");
    return (id && !strcmp(id, expect)) || (family && !strcmp(family, expect));
}

static bool present_anywhere(const cJSON *file, const char *expect)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(file, "allocators"))
    {
        if (matches(a, expect))
            return true;
    }
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(file, "load_order"))
    {
        if (matches(cJSON_GetObjectItemCaseSensitive(a, "allocator"), expect))
            return true;
    }
    return false;
}

static bool is_libc_family(const char *name)
{
    return !strncmp(name, "glibc", 5) || !strncmp(name, "musl", 4);
}

// The expected allocator is not linked: what to do depends on what it is. A libc's malloc comes
// with building against that libc, mdalloc has its own ways in, anything else is a -l flag.
static void prescribe(const struct md_rule_input *in, char *fix, size_t size)
{
    const char *kind = md_json_get_str(in->file, "kind");
    bool is_static = kind && !strncmp(kind, "static", 6);
    const char *libc = md_json_get_str(in->file, "libc");
    if (is_libc_family(in->expect))
        snprintf(fix, size,
                 "%s's malloc comes with building against %s (the file's libc is %s): rebuild "
                 "with that libc, or expect the allocator you link instead",
                 in->expect, !strncmp(in->expect, "musl", 4) ? "musl (musl-gcc)" : "glibc",
                 libc ? libc : "unknown");
    else if (!strcmp(in->expect, "mdalloc") && is_static && libc && !strcmp(libc, "musl"))
        md_rule_patch_musl(in, in->file, fix, size);
    else if (!strcmp(in->expect, "mdalloc")) {
        // musl's dynamic programs have the preload build only (musl's archive build goes into
        // libc.a); a static glibc program has the archive only
        bool musl = libc && !strcmp(libc, "musl");
        char archive[PATH_MAX + 128] = "", preload[PATH_MAX + 128] = "";
        if (!musl)
            md_rule_mdalloc_archive(in, archive, sizeof archive);
        if (!is_static)
            snprintf(preload, sizeof preload, "preload %s/%s/libmdalloc.so", md_rule_alloc_dir(in),
                     musl ? "musl" : "glibc");
        snprintf(fix, size, "%s%s%s", archive, archive[0] && preload[0] ? "; or " : "", preload);
    } else if (md_rule_link_name(in->expect))
        snprintf(fix, size,
                 "put -l%s after the objects that call malloc, or keep it with "
                 "-Wl,--no-as-needed -l%s -Wl,--as-needed; for static links add the allocator's "
                 "archive before libc",
                 md_rule_link_name(in->expect), md_rule_link_name(in->expect));
    else if (!strncmp(in->expect, "go", 2)) // Go's comes with its runtime, in Go programs only
        snprintf(fix, size,
                 "%s's allocator comes with its own runtime, not as a library to link: expect the "
                 "allocator this file uses instead",
                 in->expect);
    else // Google's tcmalloc: a dependency of its build system (bazel), no -l name
        snprintf(fix, size,
                 "link %s the way its build system provides it (Google's tcmalloc: its bazel "
                 "target), or expect the allocator this file uses instead",
                 in->expect);
}

// The file's own malloc (or one no signature knows) wins over any allocator linked after it:
// linking or patching one in changes nothing until that definition is gone. Its own libc's then
// serves malloc without more ado.
static void prescribe_own_malloc(const struct md_rule_input *in, char *fix, size_t size)
{
    const char *libc = md_json_get_str(in->file, "libc");
    bool own_libc = libc && is_libc_family(in->expect) &&
                    !strncmp(in->expect, libc, strlen(libc)); // musl-mallocng is musl's
    char then[512] = "";
    if (!own_libc)
        prescribe(in, then, sizeof then);
    snprintf(fix, size,
             "the file defines a malloc of its own (or links an allocator this tool does not "
             "know), which wins over %s's: remove that definition%s%s",
             in->expect, then[0] ? ", then " : "", then);
}

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->file)
        return;
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(in->file, "expect");
    // met: null when there was nothing to judge (a library that never calls malloc)
    if (!in->expect || !expect || !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(expect, "met")))
        return;
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(in->file, "active");
    const char *reason = md_json_get_str(active, "reason");
    bool own_malloc = reason && !strcmp(reason, MD_DEFINED_ELSEWHERE);
    const char *active_name = md_json_get_str(active, "name");
    if (!active_name)
        active_name = own_malloc ? "the file's own malloc (or an allocator this tool does not know)"
                                 : "an unidentified allocator";
    const char *version = md_json_get_str(in->file, "malloc_import_version");
    const cJSON *missing = cJSON_GetObjectItemCaseSensitive(in->file, "missing_libraries");
    char message[512], fix[1024];
    if (!md_json_get_str(active, "id") && cJSON_GetArraySize(missing) > 0) {
        int others = cJSON_GetArraySize(missing) - 1;
        snprintf(message, sizeof message,
                 "expected %s, but who serves malloc is unknown: %s%s could not be found",
                 in->expect, cJSON_GetArrayItem(missing, 0)->valuestring,
                 others ? " and other libraries" : "");
        snprintf(fix, sizeof fix,
                 "inspect it where its libraries are installed, or give their sysroot with "
                 "--root DIR");
    } else if (present_anywhere(in->file, in->expect)) {
        snprintf(message, sizeof message, "expected %s to serve malloc, but %s does", in->expect,
                 active_name);
        snprintf(fix, sizeof fix, "see MD002: make %s override malloc", in->expect);
    } else {
        // a -l flag that --as-needed dropped explains it, for an allocator linked with one
        bool dropped = version && md_rule_link_name(in->expect);
        snprintf(message, sizeof message,
                 "expected %s, but it is not linked at all; malloc is served by %s%s%s%s",
                 in->expect, active_name, dropped ? " (the import is bound to malloc@" : "",
                 dropped ? version : "", dropped ? ": -l" : "");
        if (dropped)
            snprintf(message + strlen(message), sizeof message - strlen(message),
                     "%s was dropped by --as-needed or link order)", md_rule_link_name(in->expect));
        if (own_malloc)
            prescribe_own_malloc(in, fix, sizeof fix);
        else
            prescribe(in, fix, sizeof fix);
    }
    cJSON *ev = md_finding_add(findings, rule, MD_SEV_ERROR, message, fix);
    cJSON_AddStringToObject(ev, "expected", in->expect);
    md_json_str(ev, "active", md_json_get_str(active, "id"));
    md_json_str(ev, "malloc_import_version", version);
}

const struct md_rule md_rule_expect_missing = {
    .id = "MD003",
    .name = "expected-allocator-missing",
    .title = "expected allocator does not serve malloc",
    .severities = MD_SEV_BIT(MD_SEV_ERROR),
    .check = check,
};
