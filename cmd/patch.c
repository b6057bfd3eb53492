// SPDX-License-Identifier: GPL-3.0-or-later
// malloc-doctor patch: option parsing, finding mdalloc's embedding archive, and rendering; the
// work is lib/patch.c.
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "lib/patch.h"

enum { OPT_ALLOCATOR = 0x101, OPT_BACKUP, OPT_DRY_RUN, OPT_RESTORE, OPT_JSON };

static const struct md_opt options[] = {
    {"allocator", OPT_ALLOCATOR, "ARCHIVE.a", "add the members of this archive (default: mdalloc)"},
    {"output", 'o', "OUT", "write the patched archive to OUT; LIBC.a stays untouched"},
    {"backup", OPT_BACKUP, "SUFFIX", "keep a file it replaces as FILE SUFFIX (default .orig)"},
    {"dry-run", OPT_DRY_RUN, NULL, "print the plan and the checks; write nothing"},
    {"restore", OPT_RESTORE, NULL, "put the backup back in place of LIBC.a"},
    {"json", OPT_JSON, NULL, "print the report as JSON (schema malloc-doctor/1)"},
    {"verbose", 'v', NULL, "list every symbol checked and what each member defines"},
    {"help", MD_OPT_HELP, NULL, "show this help"},
    {"version", MD_OPT_VERSION, NULL, "show the version"},
    {0},
};

struct patch_args {
    struct md_patch_options opt;
    bool restore, json, verbose;
    int kill_step; // fault injection, see arm_fault_injection
    char allocator[PATH_MAX];
};

// --- finding mdalloc ---------------------------------------------------------------------------

// mdalloc built with musl-gcc for embedding, beside the tool: the build tree
// (build/malloc-doctor + build/alloc/musl/libmdalloc.a) or an install
// (PREFIX/bin/malloc-doctor + PREFIX/lib/malloc-doctor/libmdalloc-musl.a).
static bool find_mdalloc(char *out, size_t size)
{
    static const char *const beside[] = {
        "alloc/musl/libmdalloc.a",
        "../lib/malloc-doctor/libmdalloc-musl.a",
    };
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return false;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return false;
    *slash = 0;
    for (size_t i = 0; i < sizeof beside / sizeof beside[0]; i++) {
        snprintf(out, size, "%s/%s", exe, beside[i]);
        if (!access(out, R_OK))
            return true;
    }
    return false;
}

// --- fault injection ---------------------------------------------------------------------------

// MALLOC_DOCTOR_PATCH_KILL_AT=N (tests only): SIGKILL ourselves at write step N, to prove that
// no interruption of the write can lose the original.
static void kill_at_step(enum md_patch_step step, void *ctx)
{
    if ((int)step == *(const int *)ctx)
        raise(SIGKILL);
}

static void arm_fault_injection(struct patch_args *a)
{
    const char *at = getenv("MALLOC_DOCTOR_PATCH_KILL_AT");
    if (!at || !*at)
        return;
    a->kill_step = atoi(at);
    a->opt.step_hook = kill_at_step;
    a->opt.step_ctx = &a->kill_step;
}

// --- text rendering ------------------------------------------------------------------------

// A string of the report as the text shows it: control characters in a path or member name
// become '?', so one line stays one line. The buffers rotate: a printf takes up to four.
static const char *str_or(const cJSON *o, const char *key, const char *fallback)
{
    static char shown[4][PATH_MAX];
    static unsigned next;
    const char *s = md_json_get_str(o, key);
    if (!s)
        return fallback; // the caller's own text (or NULL)
    return md_cli_printable(s, shown[next++ % 4], sizeof shown[0]);
}

static int count_of(const cJSON *report, const char *key)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(report, key));
}

// Without -v, a line shows this much of a member's symbols or of the members needing a symbol;
// -v shows them all.
enum { DEFINES_SHOWN = 60, NEEDERS_SHOWN = 48 };

// "a b c" from an array of strings, at most width characters of it (0: all), then " ..." when
// some were left out.
static void print_words(const cJSON *arr, size_t width)
{
    char shown[PATH_MAX];
    size_t n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, arr)
    {
        if (!cJSON_IsString(x))
            continue;
        // symbol names of a hostile archive stay on one line
        size_t len = strlen(md_cli_printable(x->valuestring, shown, sizeof shown)) + (n > 0);
        if (width && n + len > width) {
            fputs(n ? " ..." : "...", stdout);
            return;
        }
        printf("%s%s", n ? " " : "", shown);
        n += len;
    }
}

static void print_members(const cJSON *report, const char *key, const char *title, bool verbose)
{
    const cJSON *m;
    printf("%s %d %s:\n", key[0] == 'r' ? "remove" : "add", count_of(report, key), title);
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(report, key))
    {
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(m, "index");
        if (idx)
            printf("  #%-5d %-28s ", idx->valueint, str_or(m, "member", "?"));
        else
            printf("         %-28s ", str_or(m, "member", "?"));
        print_words(cJSON_GetObjectItemCaseSensitive(m, "defines"), verbose ? 0 : DEFINES_SHOWN);
        putchar('\n');
    }
}

static void print_need(const cJSON *o, const char *arrow, bool verbose)
{
    const char *from = md_json_get_str(o, "provided_by");
    if (!from)
        from = str_or(o, "reason", NULL) ? str_or(o, "reason", "") : "";
    printf("  %-24s needed by ", str_or(o, "symbol", "?"));
    if (md_json_get_num(o, "needed_by_count") > 0)
        print_words(cJSON_GetObjectItemCaseSensitive(o, "needed_by"), verbose ? 0 : NEEDERS_SHOWN);
    else
        fputs("programs (public API)", stdout);
    printf("%s  %s %s\n", md_json_get_bool(o, "weak") ? " (weak)" : "", arrow, from);
    if (md_json_get_str(o, "was_defined_by") && !strcmp(arrow, "MISSING"))
        printf("  %-24s (was defined by removed member %s)\n", "", str_or(o, "was_defined_by", ""));
}

static void print_checks(const cJSON *report, bool verbose)
{
    const cJSON *o;
    // "checked": what the allocator defines of those; "missing" is a list of its own (also what
    // the added members need and nothing defines), so not a part of the first count
    int checked = count_of(report, "checked");
    printf("symbols checked: %d that only removed members defined (needed by kept members or "
           "public API), defined by the allocator; %d missing, %d defined twice\n",
           checked, count_of(report, "missing"), count_of(report, "duplicates"));
    if (verbose || checked <= 24)
        cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(report, "checked"))
            print_need(o, "<-", verbose);
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(report, "overrides"))
        printf("  %-24s weak default in kept %s, overridden by %s\n", str_or(o, "symbol", "?"),
               str_or(o, "weak_in", "?"), str_or(o, "strong_in", "?"));
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(report, "missing"))
        print_need(o, "MISSING", verbose);
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(report, "duplicates"))
        printf("  %-24s DEFINED TWICE: kept %s and added %s\n", str_or(o, "symbol", "?"),
               str_or(o, "kept_member", "(another added object)"), str_or(o, "added_member", "?"));
}

static void render_plan(const cJSON *report, bool verbose)
{
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(report, "libc");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(report, "allocator");
    printf("libc:      %s (musl, %s, %d members, %s)\n", str_or(l, "path", "?"),
           str_or(l, "musl_allocator", "no musl allocator"),
           cJSON_GetObjectItemCaseSensitive(l, "members")->valueint, str_or(l, "target", "?"));
    printf("allocator: %s (%d members)\n", str_or(a, "path", "?"),
           cJSON_GetObjectItemCaseSensitive(a, "members")->valueint);
    // every key is in the report; "remove" is null unless a plan was made (not when already
    // patched), and then there is no plan to show
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(report, "remove")))
        return;
    print_members(report, "remove", "members of libc.a (they define the allocator's symbols)",
                  verbose);
    print_members(report, "add", "objects", verbose);
    print_checks(report, verbose);
}

// "wrote OUT" for -o, with the file it replaced when there was one.
static void print_written(const char *lead, const char *verb, const cJSON *report)
{
    const char *backup = md_json_get_str(report, "backup");
    if (md_json_get_bool(report, "unchanged")) {
        printf("%s%s already holds it: nothing replaced\n", lead, str_or(report, "output", "?"));
        return;
    }
    printf("%s%s %s", lead, verb, str_or(report, "output", "?"));
    if (backup)
        printf(" (the file it replaced kept as %s)", str_or(report, "backup", "?"));
    putchar('\n');
}

static void render_outcome(const cJSON *report, bool to_output)
{
    const char *status = str_or(report, "status", "");
    bool written = to_output && md_json_get_str(report, "output") != NULL;
    if (!strcmp(status, "patched") && !to_output)
        printf("patched %s (original kept as %s)\n", str_or(report, "output", "?"),
               str_or(report, "backup", "?"));
    else if (!strcmp(status, "patched"))
        print_written("", "wrote", report);
    else if (!strcmp(status, "planned"))
        puts("dry run: the checks pass; nothing written");
    else if (!strcmp(status, "already-patched") && written)
        print_written("already patched with this allocator: ", "copied it to", report);
    else if (!strcmp(status, "already-patched"))
        puts("already patched with this allocator: nothing to do");
    else if (!strcmp(status, "restored"))
        printf("restored %s from %s\n", str_or(report, "output", "?"),
               str_or(report, "backup", "?"));
    else if (!strcmp(status, "restore-planned"))
        printf("dry run: would restore %s from %s\n", str_or(report, "output", "?"),
               str_or(report, "backup", "?"));
    else if (!strcmp(status, "refused"))
        puts("refused: the patched libc.a would not link (see MISSING / DEFINED TWICE above); "
             "nothing written");
}

// What the run changed on disk, as the error of an unprinted report says it; false if nothing.
static bool describe_change(const cJSON *report, bool to_output, char *out, size_t size)
{
    const char *output = str_or(report, "output", "?"), *backup = str_or(report, "backup", NULL);
    if (!strcmp(str_or(report, "status", ""), "restored"))
        snprintf(out, size, "%s was restored from %s", output, backup ? backup : "?");
    else if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(report, "unchanged")))
        snprintf(out, size, "%s was %s%s%s%s", output, to_output ? "written" : "patched",
                 !backup     ? ""
                 : to_output ? " (the file it replaced kept as "
                             : " (original kept as ",
                 backup ? backup : "", backup ? ")" : "");
    else
        return false;
    return true;
}

// A report that cannot be printed is exit 2, as in every command; but a file written before
// that must not read as "nothing touched", so the error says what changed. Returns the status.
static int check_printed(const struct md_command *cmd, const cJSON *report, bool to_output, int rc)
{
    char change[3 * PATH_MAX];
    int e;
    if (md_cli_flush_stdout(&e) || !describe_change(report, to_output, change, sizeof change))
        return rc; // main reports an unwritable stdout when nothing changed
    md_cli_error(cmd, "%s, but the standard output could not be written%s%s", change, e ? ": " : "",
                 e ? strerror(e) : "");
    clearerr(stdout); // reported here, not again by main
    return MD_EXIT_USAGE;
}

// --- the command ---------------------------------------------------------------------------

static bool parse_option(int key, const char *arg, struct patch_args *a)
{
    switch (key) {
    case OPT_ALLOCATOR:
        a->opt.allocator = arg;
        return true;
    case 'o':
        a->opt.output = arg;
        return true;
    case OPT_BACKUP:
        a->opt.backup_suffix = arg;
        return true;
    case OPT_DRY_RUN:
        a->opt.dry_run = true;
        return true;
    case OPT_RESTORE:
        a->restore = true;
        return true;
    case OPT_JSON:
        a->json = true;
        return true;
    case 'v':
        a->verbose = true;
        return true;
    default:
        return false;
    }
}

// -o names the archive file to write: a directory would leave the result nowhere, and its
// temporary files' name would not be one output's. (md_cli_next refuses an empty -o.)
static bool output_names_a_file(const struct md_command *cmd, const char *output, int *exit_code)
{
    struct stat st;
    size_t n = strlen(output);
    if (output[n - 1] == '/' || (!stat(output, &st) && S_ISDIR(st.st_mode)))
        *exit_code = md_cli_usage_error(
            cmd, "-o %s: a directory; -o names the archive file to write", output);
    else
        return true;
    return false;
}

static bool check_args(const struct md_command *cmd, int argc, char **argv, struct patch_args *a,
                       int *exit_code)
{
    if (optind + 1 != argc) {
        *exit_code =
            md_cli_usage_error(cmd, optind < argc ? "give exactly one LIBC.a" : "no LIBC.a given");
        return false;
    }
    a->opt.libc = argv[optind];
    if (a->restore && (a->opt.output || a->opt.allocator)) {
        *exit_code = md_cli_usage_error(cmd, "--restore takes neither -o nor --allocator");
        return false;
    }
    if (a->opt.output && !output_names_a_file(cmd, a->opt.output, exit_code))
        return false;
    if (a->opt.backup_suffix && (!a->opt.backup_suffix[0] || strchr(a->opt.backup_suffix, '/'))) {
        *exit_code = md_cli_usage_error(cmd, "--backup needs a non-empty SUFFIX without '/'");
        return false;
    }
    if (a->restore || a->opt.allocator)
        return true;
    if (find_mdalloc(a->allocator, sizeof a->allocator)) {
        a->opt.allocator = a->allocator;
        return true;
    }
    *exit_code = md_cli_usage_error(
        cmd, "mdalloc's musl archive is not installed beside this binary (looked for "
             "alloc/musl/libmdalloc.a and ../lib/malloc-doctor/libmdalloc-musl.a next to it); "
             "build it with 'make alloc' or pass --allocator ARCHIVE.a");
    return false;
}

static bool parse(const struct md_command *cmd, int argc, char **argv, struct patch_args *a,
                  int *exit_code)
{
    const char *arg;
    int key;
    *exit_code = MD_EXIT_OK;
    while ((key = md_cli_next(cmd, argc, argv, &arg)) != -1) {
        if (!parse_option(key, arg, a))
            return md_cli_stop(cmd, key, exit_code);
    }
    return check_args(cmd, argc, argv, a, exit_code);
}

static int run(const struct md_command *cmd, int argc, char **argv)
{
    struct patch_args a = {0};
    int rc;
    if (!parse(cmd, argc, argv, &a, &rc))
        return rc;
    arm_fault_injection(&a);
    cJSON *report = md_report_new("patch", MD_VERSION);
    struct md_error err = {{0}};
    enum md_patch_result r =
        a.restore ? md_patch_restore(&a.opt, report, &err) : md_patch(&a.opt, report, &err);
    if (r == MD_PATCH_ERROR)
        md_cli_error(cmd, "%s", err.msg);
    if (a.json)
        md_cli_print_json(report);
    else if (r != MD_PATCH_ERROR) {
        if (!a.restore)
            render_plan(report, a.verbose);
        render_outcome(report, a.opt.output != NULL);
    }
    const cJSON *warning;
    cJSON_ArrayForEach(warning, cJSON_GetObjectItemCaseSensitive(report, "warnings"))
        md_cli_error(cmd, "warning: %s", warning->valuestring);
    rc = r == MD_PATCH_ERROR ? MD_EXIT_USAGE : r == MD_PATCH_REFUSED ? MD_EXIT_CHECK : MD_EXIT_OK;
    rc = check_printed(cmd, report, a.opt.output != NULL, rc);
    cJSON_Delete(report);
    return rc;
}

const struct md_command md_cmd_patch = {
    .name = "patch",
    .summary = "embed mdalloc (or another allocator) into a musl libc.a, safely",
    .synopsis = "[--allocator ARCHIVE.a] [-o OUT] [--backup SUFFIX] [--dry-run] [--restore] "
                "[--json] [-v] LIBC.a",
    .description =
        "Replaces the allocator inside a musl libc.a, so that `musl-gcc -static` programs get\n"
        "the new one without any change to their build. The members to remove are chosen by\n"
        "the symbols they define (the malloc family the new allocator provides, and musl's\n"
        "allocator back end), duplicate member names included. Before writing, a closure\n"
        "check proves the result links: every symbol a kept member needs that only a removed\n"
        "member defined must come from the added objects, and nothing may be defined twice;\n"
        "otherwise the command refuses (exit 1) and lists the symbols.\n\n"
        "The added objects are mdalloc built for embedding, found beside this binary\n"
        "(alloc/musl/libmdalloc.a in the build tree, ../lib/malloc-doctor/libmdalloc-musl.a\n"
        "when installed), or the members of --allocator ARCHIVE.a.\n\n"
        "In place, the original is kept as LIBC.a.orig and the result replaces LIBC.a with\n"
        "a synced temp file and a rename (same mode and owner): an interruption never loses\n"
        "the original. -o over an existing archive keeps it the same way as OUT.orig; -o\n"
        "never replaces a file that is not an archive. Patching twice is a no-op (with -o,\n"
        "a copy); --restore puts the original back, only over a libc.a this tool patched\n"
        "and only from the backup it was made from (its last member, malloc-doctor-patch.o,\n"
        "records the original's size and SHA-256; --backup SUFFIX names another backup).\n"
        "The output is deterministic. glibc's libc.a and non-musl archives are refused.",
    .options = options,
    .exits = MD_EXITS_WITH_CHECKS,
    .run = run,
};
