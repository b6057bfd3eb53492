// SPDX-License-Identifier: GPL-3.0-or-later
// malloc-doctor inspect: option parsing and rendering; the work is lib/inspect.c.
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cli.h"
#include "lib/inspect.h"
#include "lib/path.h"

enum { OPT_ROOT = 0x101, OPT_EXPECT, OPT_JSON };

static const struct md_opt options[] = {
    {"recursive", 'r', NULL, "inspect the ELF files and archives under each directory"},
    {"root", OPT_ROOT, "DIR", "resolve libraries inside the sysroot DIR"},
    {"expect", OPT_EXPECT, "ALLOC", "exit 1 unless ALLOC serves malloc (e.g. mimalloc, musl)"},
    MD_OPT_FAIL_ON_ENTRY,
    {"json", OPT_JSON, NULL, "print the report as JSON (schema malloc-doctor/1)"},
    {"verbose", 'v', NULL, "show the evidence and the load order for each file"},
    {"help", MD_OPT_HELP, NULL, "show this help"},
    {"version", MD_OPT_VERSION, NULL, "show the version"},
    {0},
};

struct inspect_args {
    struct md_inspect_options opt;
    bool json, verbose;
    struct md_gate_args gate; // only --fail-on: inspect has no run to compare
};

// --- text rendering ------------------------------------------------------------------------

static const char *str_or(const cJSON *o, const char *key, const char *fallback)
{
    const char *s = md_json_get_str(o, key);
    return s ? s : fallback;
}

static void active_cell(const cJSON *file, char *out, size_t size)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(file, "active");
    if (!a) {
        snprintf(out, size, "-");
        return;
    }
    const char *provider = md_json_get_str(a, "provider");
    const char *path = md_json_get_str(file, "path");
    bool elsewhere = provider && path && strcmp(provider, path);
    if (md_json_get_str(a, "reason")) { // no allocator to be sure of: no confidence to show
        snprintf(out, size, "%s", md_cli_active_name(a));
        return;
    }
    snprintf(out, size, "%s (%s)%s%s", md_cli_active_name(a), str_or(a, "confidence", "?"),
             elsewhere ? " via " : "", elsewhere ? md_path_base_name(provider) : "");
}

// Allocators present in the file other than the active one.
static void others_cell(const cJSON *file, char *out, size_t size)
{
    const char *active = md_json_get_str(cJSON_GetObjectItemCaseSensitive(file, "active"), "id");
    size_t n = 0;
    const cJSON *a;
    out[0] = 0;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(file, "allocators"))
    {
        const char *id = md_json_get_str(a, "id");
        if (n < size && (!active || strcmp(id, active)))
            n += (size_t)snprintf(out + n, size - n, "%s%s", n ? ", " : "",
                                  md_json_get_str(a, "name"));
    }
    if (!n)
        snprintf(out, size, "-");
}

// s left-aligned in width columns, then the column gap.
static void print_cell(const char *s, int width)
{
    printf("%s%*s  ", s, width > md_cli_display_width(s) ? width - md_cli_display_width(s) : 0, "");
}

// Column widths of the table: each as wide as its widest cell (the path at most 60), so that
// "unknown" or a long allocator name ("glibc ptmalloc (high) via libc.so.6") never runs into the
// next column.
struct columns {
    int path, libc, active;
};

static void widen(int *width, int len)
{
    if (len > *width)
        *width = len;
}

static struct columns column_widths(const cJSON *files)
{
    struct columns w = {.path = 4, .libc = 6, .active = 34};
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        widen(&w.path, md_cli_display_width(str_or(f, "path", "")));
        if (strcmp(str_or(f, "status", ""), "ok") || !strcmp(str_or(f, "kind", ""), "archive"))
            continue;
        char active[256];
        active_cell(f, active, sizeof active);
        widen(&w.libc, (int)strlen(str_or(f, "libc", "-")));
        widen(&w.active, md_cli_display_width(active));
    }
    if (w.path > 60)
        w.path = 60;
    return w;
}

// A file name for the table: a line break or tab in it would break the rows.
static const char *table_path(const cJSON *f, char *out, size_t size)
{
    return md_cli_printable(str_or(f, "path", ""), out, size);
}

// A count of an archive's entry; 0 when absent.
static int member_count(const cJSON *f, const char *key)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(f, key);
    return cJSON_IsNumber(n) ? n->valueint : 0;
}

static void print_archive_row(const cJSON *f, int width)
{
    char path[PATH_MAX];
    int unreadable = member_count(f, "unreadable_members"),
        skipped = member_count(f, "skipped_members");
    print_cell(table_path(f, path, sizeof path), width);
    printf("%-13s %d of %d members define allocator symbols", "archive",
           member_count(f, "allocator_members"), member_count(f, "members"));
    if (unreadable) // each is an error line of its own
        printf(" (%d could not be read)", unreadable);
    if (skipped)
        printf(" (%d more not ELF, such as LTO bitcode: not read)", skipped);
    putchar('\n');
}

static void print_row(const cJSON *f, const struct columns *w)
{
    char path[PATH_MAX];
    const char *kind = str_or(f, "kind", "-");
    if (!strcmp(kind, "archive")) {
        print_archive_row(f, w->path);
        return;
    }
    char active[256], others[256];
    active_cell(f, active, sizeof active);
    others_cell(f, others, sizeof others);
    print_cell(table_path(f, path, sizeof path), w->path);
    int pad = w->active - md_cli_display_width(active);
    printf("%-13s %-*s %-7s %s%*s %s\n", kind, w->libc, str_or(f, "libc", "-"),
           str_or(f, "threads", "-"), active, pad > 0 ? pad : 0, "", others);
}

// "  LABEL: TEXT", TEXT printable: the names of files and libraries are the file's own bytes.
static void print_named(const char *label, const char *text, const char *suffix)
{
    char shown[PATH_MAX + 512]; // a path, or an active allocator's reasoning with one
    printf("  %s: %s%s\n", label, md_cli_printable(text, shown, sizeof shown), suffix);
}

static void print_details(const cJSON *f)
{
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(f, "format");
    char path[PATH_MAX];
    printf("%s:\n  format: %s %s, %s-endian%s\n", table_path(f, path, sizeof path),
           str_or(fmt, "class", "?"), str_or(fmt, "machine", "?"), str_or(fmt, "byte_order", "?"),
           md_json_get_bool(f, "stripped") ? ", stripped" : "");
    if (md_json_get_str(f, "interpreter"))
        print_named("interpreter", md_json_get_str(f, "interpreter"), "");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(f, "active");
    if (a) {
        char active[PATH_MAX + 512];
        snprintf(active, sizeof active, "%s; %s", md_cli_active_name(a), str_or(a, "how", ""));
        print_named("active", active, "");
    }
    const cJSON *alloc, *ev, *lib;
    cJSON_ArrayForEach(alloc, cJSON_GetObjectItemCaseSensitive(f, "allocators"))
    {
        printf("  present: %s (%s):", str_or(alloc, "name", "?"), str_or(alloc, "confidence", "?"));
        cJSON_ArrayForEach(ev, cJSON_GetObjectItemCaseSensitive(alloc, "evidence"))
            printf(" %s %s;", str_or(ev, "type", "?"), str_or(ev, "value", "?"));
        putchar('\n');
    }
    cJSON_ArrayForEach(lib, cJSON_GetObjectItemCaseSensitive(f, "load_order"))
        print_named("load order", str_or(lib, "path", "?"),
                    md_json_get_bool(lib, "exports_malloc") ? "  (defines malloc)" : "");
    cJSON_ArrayForEach(lib, cJSON_GetObjectItemCaseSensitive(f, "missing_libraries"))
        print_named("not found", lib->valuestring, "");
}

// A file --expect had nothing to judge in passes it: the note says why, so a pass is not taken
// for a match.
static void print_unjudged(const cJSON *f)
{
    const cJSON *expect = cJSON_GetObjectItemCaseSensitive(f, "expect");
    if (!expect || !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(expect, "met")))
        return;
    char path[PATH_MAX];
    printf("\n%s: note: --expect %s not judged: %s\n", table_path(f, path, sizeof path),
           str_or(expect, "allocator", "?"), str_or(expect, "reason", "?"));
}

static void print_findings(const cJSON *files)
{
    const cJSON *f, *x;
    cJSON_ArrayForEach(f, files)
    {
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(f, "findings"))
            md_cli_print_finding(str_or(f, "path", ""), x); // made printable there
        print_unjudged(f);
    }
}

static void render_text(const cJSON *report, bool verbose)
{
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(report, "files"), *f;
    struct columns w = column_widths(files);
    bool header = false;
    cJSON_ArrayForEach(f, files)
    {
        if (strcmp(str_or(f, "status", ""), "ok"))
            continue;
        if (!header)
            printf("%-*s  %-13s %-*s %-7s %-*s %s\n", w.path, "FILE", "KIND", w.libc, "LIBC",
                   "THREADS", w.active, "ACTIVE ALLOCATOR", "ALSO PRESENT");
        header = true;
        print_row(f, &w);
    }
    if (verbose)
        cJSON_ArrayForEach(f, files)
        {
            if (!strcmp(str_or(f, "status", ""), "ok") && strcmp(str_or(f, "kind", ""), "archive"))
                putchar('\n'), print_details(f);
        }
    print_findings(files);
}

// --- the command ---------------------------------------------------------------------------

// Returns true when the command should run; otherwise *exit_code says how to exit (--help and
// --version: 0, a usage error: 2).
static bool parse(const struct md_command *cmd, int argc, char **argv, struct inspect_args *a,
                  int *exit_code)
{
    const char *arg;
    int key;
    *exit_code = MD_EXIT_OK;
    md_cli_gate_init(&a->gate);
    while ((key = md_cli_next(cmd, argc, argv, &arg)) != -1) {
        switch (key) {
        case MD_OPT_FAIL_ON:
            if (!md_cli_gate_option(cmd, key, arg, &a->gate, exit_code))
                return false;
            break;
        case 'r':
            a->opt.recursive = true;
            break;
        case 'v':
            a->verbose = true;
            break;
        case OPT_ROOT: {
            struct stat st; // a wrong sysroot would make every dynamic file "unknown"
            const char *why = stat(arg, &st)         ? strerror(errno)
                              : !S_ISDIR(st.st_mode) ? "not a directory"
                                                     : NULL;
            if (why) {
                *exit_code = md_cli_usage_error(cmd, "--root %s: %s", arg, why);
                return false;
            }
            a->opt.root = arg;
            break;
        }
        case OPT_EXPECT: // one allocator serves malloc: two different ones cannot both pass
            if (a->opt.expect && strcmp(a->opt.expect, arg)) {
                *exit_code = md_cli_usage_error(cmd,
                                                "--expect %s and --expect %s: one allocator "
                                                "serves malloc",
                                                a->opt.expect, arg);
                return false;
            }
            a->opt.expect = arg;
            break;
        case OPT_JSON:
            a->json = true;
            break;
        default:
            return md_cli_stop(cmd, key, exit_code);
        }
    }
    if (optind < argc)
        return true;
    *exit_code = md_cli_usage_error(cmd, "no FILE given");
    return false;
}

static void print_errors(const struct md_command *cmd, const cJSON *files)
{
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        if (md_json_get_str(f, "error"))
            md_cli_error(cmd, "%s", md_json_get_str(f, "error"));
    }
}

// An input error wins; then a failed --expect, or one that checked nothing (an archive, a walk
// that found no program: a gate that saw nothing has not passed); then --fail-on.
static int exit_status(const struct md_command *cmd, const struct inspect_args *a,
                       const struct md_inspector *in, cJSON *report)
{
    bool nothing_checked = a->opt.expect && !in->expect_checked;
    if (nothing_checked)
        md_cli_error(cmd, "--expect %s: no program or shared library was checked", a->opt.expect);
    int rc = md_cli_gate_apply(cmd, &a->gate, NULL, report);
    return in->errors ? MD_EXIT_USAGE : in->expect_failed || nothing_checked ? MD_EXIT_CHECK : rc;
}

static int run(const struct md_command *cmd, int argc, char **argv)
{
    struct inspect_args a = {0};
    int rc;
    if (!parse(cmd, argc, argv, &a, &rc))
        return rc;
    cJSON *report = md_report_new("inspect", MD_VERSION);
    cJSON *files = cJSON_AddArrayToObject(report, "files");
    struct md_inspector in;
    struct md_error err;
    md_cli_guard_mappings();
    a.opt.mapping_faults = &md_cli_mapping_faults;
    if (md_inspector_init(&in, &a.opt, files, &err)) {
        cJSON_Delete(report);
        return md_cli_usage_error(cmd, "%s", err.msg);
    }
    for (int i = optind; i < argc; i++)
        md_inspect_path(&in, argv[i]);
    md_inspect_summary(&in, report);
    print_errors(cmd, files);
    if (!a.json && cJSON_GetArraySize(files) == 0) // -r over scripts and data only: say so
        fprintf(
            stderr,
            "malloc-doctor: inspect: no ELF file or archive found (%zu files skipped: not ELF)\n",
            in.skipped);
    if (a.json)
        md_cli_print_json(report);
    else
        render_text(report, a.verbose);
    rc = exit_status(cmd, &a, &in, report);
    md_inspector_free(&in);
    cJSON_Delete(report);
    return rc;
}

const struct md_command md_cmd_inspect = {
    .name = "inspect",
    .summary = "which allocators an ELF file contains and which one serves malloc",
    .synopsis = "[-r] [--root DIR] [--expect ALLOC] [--fail-on LEVEL] [--json] [-v] FILE|DIR...",
    .description =
        "Reads ELF executables, shared libraries, objects and ar archives (never runs them) and\n"
        "reports every allocator whose signature is present, with evidence, and the allocator\n"
        "that really serves malloc: from the symbol table for static files, by resolving\n"
        "DT_NEEDED in the loader's order for dynamic ones. Errors go to stderr, one line per\n"
        "file; the other files are still inspected.",
    .options = options,
    .exits = MD_EXITS_WITH_CHECKS,
    .run = run,
};
