// SPDX-License-Identifier: GPL-3.0-or-later
// The rule registry: the one place a rule is added.
#include "rules/rules.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "lib/report.h"

extern const struct md_rule md_rule_musl_threads;
extern const struct md_rule md_rule_not_active;
extern const struct md_rule md_rule_expect_missing;
extern const struct md_rule md_rule_size_class_overflow;
extern const struct md_rule md_rule_lock_hotspot;
extern const struct md_rule md_rule_mmap_churn;
extern const struct md_rule md_rule_madvise_storm;
extern const struct md_rule md_rule_brk_churn;
extern const struct md_rule md_rule_fault_churn;
extern const struct md_rule md_rule_leaks;
extern const struct md_rule md_rule_sanitizer;

// one rule a line (clang-format 14 would pack the table in two columns)
// clang-format off
const struct md_rule *const md_rules[] = {
    &md_rule_musl_threads,
    &md_rule_not_active,
    &md_rule_expect_missing,
    &md_rule_size_class_overflow,
    &md_rule_lock_hotspot,
    &md_rule_mmap_churn,
    &md_rule_madvise_storm,
    &md_rule_brk_churn,
    &md_rule_fault_churn,
    &md_rule_leaks,
    &md_rule_sanitizer,
    NULL,
};
// clang-format on

void md_rules_run(const struct md_rule_input *in, cJSON *findings)
{
    for (const struct md_rule *const *r = md_rules; *r; r++)
        (*r)->check(*r, in, findings);
}

static const char *const severity_names[] = {
    [MD_SEV_INFO] = "info",
    [MD_SEV_WARNING] = "warning",
    [MD_SEV_ERROR] = "error",
};

const char *md_severity_name(enum md_severity severity)
{
    return severity_names[severity];
}

int md_severity_parse(const char *name)
{
    for (int i = 0; i < (int)(sizeof severity_names / sizeof severity_names[0]); i++)
        if (!strcmp(severity_names[i], name))
            return i;
    return -1;
}

cJSON *md_finding_add(cJSON *findings, const struct md_rule *rule, enum md_severity severity,
                      const char *message, const char *fix)
{
    cJSON *f = cJSON_CreateObject();
    cJSON_AddStringToObject(f, "id", rule->id);
    cJSON_AddStringToObject(f, "rule", rule->name);
    assert(rule->severities & MD_SEV_BIT(severity)); // `rules --json` would not list it
    cJSON_AddStringToObject(f, "severity", md_severity_name(severity));
    cJSON_AddStringToObject(f, "title", rule->title);
    cJSON_AddStringToObject(f, "message", message);
    md_json_str(f, "fix", fix);
    cJSON *evidence = cJSON_AddObjectToObject(f, "evidence");
    cJSON_AddItemToArray(findings, f);
    return evidence;
}

const char *md_rule_active_family(const cJSON *file)
{
    return md_json_get_str(cJSON_GetObjectItemCaseSensitive(file, "active"), "family");
}

const char *md_rule_active_id(const cJSON *file)
{
    return md_json_get_str(cJSON_GetObjectItemCaseSensitive(file, "active"), "id");
}

double md_rule_trace_ops(const cJSON *trace)
{
    const cJSON *total =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(trace, "ops"), "total");
    return cJSON_IsNumber(total) ? total->valuedouble : 0;
}

const cJSON *md_rule_trace_syscall(const cJSON *trace, const char *name)
{
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(trace, "syscalls"))
    {
        const char *n = md_json_get_str(s, "name");
        if (n && !strcmp(n, name))
            return s;
    }
    return NULL;
}

double md_rule_trace_syscalls(const cJSON *trace, const char *name, bool *attributed)
{
    *attributed = false;
    const cJSON *s = md_rule_trace_syscall(trace, name);
    if (!s)
        return -1;
    const cJSON *inside = cJSON_GetObjectItemCaseSensitive(s, "in_allocator");
    const cJSON *attribution = cJSON_GetObjectItemCaseSensitive(trace, "attribution");
    if (cJSON_IsNumber(inside) && md_json_get_bool(attribution, "available")) {
        *attributed = true;
        return inside->valuedouble;
    }
    return md_json_get_num(s, "count");
}

bool md_rule_trace_brk_moves(const cJSON *trace, struct md_rule_brk_moves *out)
{
    const cJSON *s = md_rule_trace_syscall(trace, "brk");
    const cJSON *shrinks = cJSON_GetObjectItemCaseSensitive(s, "shrinks");
    if (!cJSON_IsNumber(shrinks))
        return false;
    bool attributed;
    md_rule_trace_syscalls(trace, "brk", &attributed);
    const cJSON *inside = cJSON_GetObjectItemCaseSensitive(s, "shrinks_in_allocator");
    const cJSON *grown = cJSON_GetObjectItemCaseSensitive(s, "grows_in_allocator");
    bool told = attributed && cJSON_IsNumber(inside);
    *out = (struct md_rule_brk_moves){
        .shrinks = shrinks->valuedouble,
        .grows = md_json_get_num(s, "grows"),
        .shrinks_in_allocator = told ? inside->valuedouble : -1,
        .grows_in_allocator = told && cJSON_IsNumber(grown) ? grown->valuedouble : -1,
        .trims = told ? inside->valuedouble : shrinks->valuedouble,
    };
    return true;
}

// The least a program's own peak RSS is taken to be, in KiB: a quarter of max_rss_kb and 1 MiB
// (a dynamic program's libc and loader alone map more), never above max_rss_kb. The probe file's
// pages may have been touched after a process's peak, when they were not in it, and then taking
// them out reads the program's RSS low and makes the rules that use it fire more easily: at a
// quarter, MD009's four times the RSS is at worst the whole measured peak RSS faulted in, which
// healthy runs stay under (see MD009_MIN_FAULTED_PER_RSS).
#define MD_RULE_PROGRAM_RSS_MIN_SHARE 0.25
#define MD_RULE_PROGRAM_RSS_MIN_KB 1024.0

// The rules multiply the per-process figure by the process count: an upper bound of the RSS the
// processes had together. max_rss_kb is the largest process's, probe_file_kb all of theirs, and
// each of its pages was written or read by at least one process, so a 1/processes share of it
// per process takes it out of that total once and keeps the total an upper bound. With one
// process it is all of the file (less the header the tool wrote, which the probe reads too).
double md_rule_trace_program_rss_kb(const cJSON *trace, double *processes, bool *clamped)
{
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(trace, "run");
    double n = md_json_get_num(run, "processes");
    *processes = n > 1 ? n : 1;
    double rss = md_json_get_num(run, "max_rss_kb");
    double probe = md_json_get_num(run, "probe_file_kb"); // 0 when null (no probe file)
    double own = rss - (probe > 0 ? probe : 0) / *processes;
    double least = rss * MD_RULE_PROGRAM_RSS_MIN_SHARE;
    if (least < MD_RULE_PROGRAM_RSS_MIN_KB)
        least = MD_RULE_PROGRAM_RSS_MIN_KB;
    if (least > rss)
        least = rss;
    if (clamped)
        *clamped = own < least;
    return own > least ? own : least;
}

double md_rule_trace_program_faults(const cJSON *trace)
{
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(trace, "run");
    double probe_pages = md_json_get_num(run, "probe_file_kb") / 4; // 4 KiB pages
    double faults = md_json_get_num(run, "minor_faults") - (probe_pages > 0 ? probe_pages : 0);
    return faults > 0 ? faults : 0;
}

double md_rule_trace_program_samples(const cJSON *trace)
{
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(trace, "cpu");
    if (!md_json_get_bool(cpu, "sampled"))
        return 0;
    double samples = md_json_get_num(cpu, "samples");
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(cpu, "top_functions"))
    {
        const char *name = md_json_get_str(f, "name");
        if (name && !strcmp(name, "[uprobes]"))
            samples -= md_json_get_num(f, "samples");
    }
    return samples > 0 ? samples : 0;
}

bool md_rule_trace_single_threaded(const cJSON *trace)
{
    if (!md_report_attributed(trace))
        return false; // uprobes and --ops count no calls per thread
    const cJSON *threads = cJSON_GetObjectItemCaseSensitive(trace, "threads"), *t, *u;
    bool allocated = false; // no thread that allocated: nothing to tell by
    cJSON_ArrayForEach(t, threads)
    {
        if (md_json_get_num(t, "ops") <= 0)
            continue;
        allocated = true;
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(t, "pid");
        cJSON_ArrayForEach(u, threads)
        {
            const cJSON *other = cJSON_GetObjectItemCaseSensitive(u, "pid");
            if (u != t && md_json_get_num(u, "ops") > 0 && cJSON_IsNumber(pid) &&
                cJSON_IsNumber(other) && pid->valuedouble == other->valuedouble)
                return false;
        }
    }
    return allocated;
}

size_t md_rule_trace_threads_in_process(const cJSON *trace)
{
    const cJSON *threads = cJSON_GetObjectItemCaseSensitive(trace, "threads"), *t, *u;
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(trace, "run");
    if (md_json_get_num(run, "processes") == 1) // one process holds them all, pid or not
        return (size_t)cJSON_GetArraySize(threads);
    size_t most = 0;
    cJSON_ArrayForEach(t, threads)
    {
        const cJSON *pid = cJSON_GetObjectItemCaseSensitive(t, "pid");
        if (!cJSON_IsNumber(pid)) // a thread that made no counted call: whose, is not known
            continue;
        size_t same = 0;
        cJSON_ArrayForEach(u, threads)
        {
            const cJSON *other = cJSON_GetObjectItemCaseSensitive(u, "pid");
            same += cJSON_IsNumber(other) && other->valuedouble == pid->valuedouble;
        }
        most = same > most ? same : most;
    }
    return most;
}

void md_rule_trace_command(const cJSON *trace, char *out, size_t size)
{
    // a prescription must stay whole: a command longer than this is shown as "PROGRAM ..."
    size_t limit = size < MD_RULE_COMMAND_MAX ? size : MD_RULE_COMMAND_MAX;
    size_t len = 0;
    out[0] = 0;
    const cJSON *argv =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(trace, "target"), "argv");
    const cJSON *arg;
    cJSON_ArrayForEach(arg, argv)
    {
        if (!cJSON_IsString(arg))
            continue;
        if (len)
            md_append_text(out, limit, &len, " ");
        md_append_shell_word(out, limit, &len, arg->valuestring);
    }
    if (!len) {
        snprintf(out, size, "PROGRAM");
        return;
    }
    if (len + 1 < limit) // it fit
        return;
    len = 0;
    out[0] = 0;
    const cJSON *program = cJSON_GetArrayItem(argv, 0);
    if (cJSON_IsString(program))
        md_append_shell_word(out, limit, &len, program->valuestring);
    if (!len || len + 5 >= limit)
        snprintf(out, size, "PROGRAM ...");
    else if (cJSON_GetArraySize(argv) > 1)
        md_append_text(out, limit, &len, " ...");
}

// Where this tool's mdalloc builds are (trace reports carry it as tool.alloc_dir).
static const char *alloc_dir(const cJSON *trace)
{
    const char *dir = md_json_get_str(cJSON_GetObjectItemCaseSensitive(trace, "tool"), "alloc_dir");
    return dir ? dir : "DIR/alloc";
}

const char *md_rule_alloc_dir(const struct md_rule_input *in)
{
    return in->alloc_dir ? in->alloc_dir : alloc_dir(in->trace);
}

// The allocators that come as a library to link, with the -l name their packages install;
// the others come with a libc, a language runtime or this tool.
static const struct {
    const char *family, *lib;
} linked_as[] = {
    {"mimalloc", "mimalloc"}, {"jemalloc", "jemalloc"},     {"tcmalloc", "tcmalloc"},
    {"rpmalloc", "rpmalloc"}, {"snmalloc", "snmallocshim"},
};

const char *md_rule_link_name(const char *expect)
{
    for (size_t i = 0; i < sizeof linked_as / sizeof linked_as[0]; i++)
        if (!strcmp(expect, linked_as[i].family))
            return linked_as[i].lib;
    return NULL;
}

void md_rule_mdalloc_link(const char *alloc_dir, char *out, size_t size)
{
    char archive[PATH_MAX + 32];
    snprintf(archive, sizeof archive, "%s/glibc/libmdalloc.a", alloc_dir);
    size_t len = 0;
    out[0] = 0;
    md_append_text(out, size, &len, "`-Wl,--whole-archive ");
    md_append_shell_word(out, size, &len, archive);
    md_append_text(out, size, &len, " -Wl,--no-whole-archive`");
}

void md_rule_mdalloc_archive(const struct md_rule_input *in, char *out, size_t size)
{
    char link[PATH_MAX + 96];
    md_rule_mdalloc_link(md_rule_alloc_dir(in), link, sizeof link);
    snprintf(out, size, "link all of mdalloc's archive after your objects: %s", link);
}

const char *md_rule_tool(const struct md_rule_input *in)
{
    // a trace report says how it named the tool that made it (reports of older versions do not)
    const char *saved =
        md_json_get_str(cJSON_GetObjectItemCaseSensitive(in->trace, "tool"), "command");
    return in->tool ? in->tool : saved ? saved : "malloc-doctor";
}

void md_rule_patch_musl(const struct md_rule_input *in, const cJSON *file, char *out, size_t size)
{
    const char *machine =
        md_json_get_str(cJSON_GetObjectItemCaseSensitive(file, "format"), "machine");
    const char *kind =
        file ? md_json_get_str(file, "kind") : md_report_program_str(in->trace, "kind");
    // relinked as it was linked: a PIE stays one (musl-gcc -static-pie)
    const char *link = kind && !strcmp(kind, "static-pie") ? "-static-pie" : "-static";
    if (!file || (machine && !strcmp(machine, "x86-64")))
        snprintf(out, size,
                 "`mkdir -p ~/musl-mdalloc && %s patch -o ~/musl-mdalloc/libc.a "
                 "/usr/lib/x86_64-linux-musl/libc.a`, then relink with `musl-gcc %s -L "
                 "~/musl-mdalloc ...`",
                 md_rule_tool(in), link);
    else // mdalloc's embedded build is x86-64 musl's: another target needs its own allocator
        snprintf(out, size,
                 "`%s patch --allocator ALLOCATOR.a -o COPY/libc.a LIBC.a` with the "
                 "libc.a of this %s target's musl toolchain and an allocator archive built for "
                 "it, then relink with -L COPY",
                 md_rule_tool(in), machine ? machine : "file's");
}

// The mdalloc library to preload for the program, as a shell word. A wrapper of the other libc
// (glibc's env running a musl program) cannot load that libc's build: then the path both loaders
// resolve to their own build, DIR/any/$PLATFORM (see md_either_libc_path), quoted.
static void mdalloc_preload(const cJSON *trace, bool musl, char *out, size_t size)
{
    const char *own = md_json_get_str(cJSON_GetObjectItemCaseSensitive(trace, "target"), "libc");
    const char *libc = musl ? "musl" : "glibc";
    if (own && strcmp(own, libc))
        snprintf(out, size, "'%s/any/$PLATFORM/libmdalloc.so'", alloc_dir(trace));
    else
        snprintf(out, size, "%s/%s/libmdalloc.so", alloc_dir(trace), libc);
}

void md_rule_trace_replace_allocator(const struct md_rule_input *in, char *out, size_t size)
{
    const cJSON *trace = in->trace;
    const char *kind = md_report_program_str(trace, "kind");
    const char *libc = md_report_program_str(trace, "libc");
    bool musl = libc && !strcmp(libc, "musl");
    char cmd[512], preload[PATH_MAX + 64];
    md_rule_trace_command(trace, cmd, sizeof cmd);
    mdalloc_preload(trace, musl, preload, sizeof preload);
    if (kind && !strcmp(kind, "dynamic") && in->compared && in->compared_with) {
        char with[PATH_MAX + 64];
        size_t len = 0;
        md_append_shell_word(with, sizeof with, &len, in->compared_with);
        snprintf(out, size,
                 "this report's comparison ran it again with %s preloaded; to keep it: "
                 "`LD_PRELOAD=%s %s`",
                 in->compared_with, with, cmd);
    } else if (kind && !strcmp(kind, "dynamic") && in->compared)
        snprintf(out, size,
                 "this report's comparison ran it again with mdalloc preloaded; to keep "
                 "mdalloc: `LD_PRELOAD=%s %s`",
                 preload, cmd);
    else if (kind && !strcmp(kind, "dynamic"))
        snprintf(out, size,
                 "`%s trace --compare -- %s` runs it again with mdalloc preloaded and "
                 "shows both runs; to keep mdalloc: `LD_PRELOAD=%s %s`",
                 md_rule_tool(in), cmd, preload, cmd);
    else if (musl) {
        char patch[1024];
        md_rule_patch_musl(in, NULL, patch, sizeof patch);
        snprintf(out, size, "static musl cannot be preloaded: %s, then `%s trace -- %s` again",
                 patch, md_rule_tool(in), cmd);
    } else {
        char link[PATH_MAX + 96];
        md_rule_mdalloc_link(alloc_dir(trace), link, sizeof link);
        snprintf(out, size,
                 "a static program cannot be preloaded: relink it with an allocator's archive "
                 "ahead of libc (mdalloc: %s after the objects), then `%s trace -- %s` again",
                 link, md_rule_tool(in), cmd);
    }
}

// The highest mmap threshold glibc takes everywhere: 32 MiB on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX,
// HEAP_MAX_SIZE / 2). mallopt() refuses more, and so did GLIBC_TUNABLES while the check sat in
// do_set_mmap_threshold (glibc 2.26), silently; Debian 12's glibc 2.36 takes a 64 MiB tunable.
// A prescription must work on the user's glibc, so a chunk this size or more gets none.
#define GLIBC_MMAP_THRESHOLD_MAX (32ul << 20)
// Never prescribe less than this: glibc's own dynamic threshold starts at 128 KiB and a smaller
// one would make more mappings, not fewer.
#define KEEP_MIN (1ul << 20)
// glibc's request2size on x86-64: the request plus its size field (SIZE_SZ 8), rounded up to
// MALLOC_ALIGNMENT (16), at least MINSIZE (32). The mmap threshold is compared with this chunk
// size (nb >= mp_.mmap_threshold maps), not with the request: 4194300 B is a 4194320 B chunk.
#define GLIBC_SIZE_SZ 8ul
#define GLIBC_ALIGN_MASK 15ul
#define GLIBC_MIN_CHUNK 32ul

static unsigned long glibc_chunk(unsigned long request)
{
    unsigned long chunk = (request + GLIBC_SIZE_SZ + GLIBC_ALIGN_MASK) & ~GLIBC_ALIGN_MASK;
    return chunk < GLIBC_MIN_CHUNK ? GLIBC_MIN_CHUNK : chunk;
}

// The largest request size the trace saw (the top of its power-of-two bucket, *from its bottom),
// or else the longest mapping length bucket; 0 when the report has neither.
static double largest_size(const cJSON *trace, double *from)
{
    double largest = 0;
    *from = 0;
    const cJSON *histograms[] = {
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(trace, "requests"),
                                         "histogram"),
        cJSON_GetObjectItemCaseSensitive(trace, "mmap_lengths")};
    for (size_t i = 0; i < 2 && largest == 0; i++) {
        const cJSON *b;
        cJSON_ArrayForEach(b, histograms[i])
        {
            if (md_json_get_num(b, "count") > 0 && md_json_get_num(b, "to") > largest) {
                largest = md_json_get_num(b, "to");
                *from = md_json_get_num(b, "from");
            }
        }
    }
    return largest;
}

// A size band whose calls made at least this share of the memory syscalls inside allocator calls
// churns; the rest (a block kept for the whole run: one mmap) need no threshold above them.
#define KEEP_BAND_SHARE 0.1

// The largest size (the band's top, *from its bottom) among the request size bands that made a
// substantial share of the memory syscalls inside allocator calls; failing that, among the freed
// block size bands (glibc's madvise in a thread's arena is made by free alone, its malloc takes
// the pages back without a syscall). Requests come first: a freed block's size is its chunk's,
// page-rounded when mapped, which can put a request at the top of its bucket into the next one.
// 0 when the report has no bands (no probe tied the syscalls to calls).
static double churned_size(const cJSON *trace, double *from)
{
    static const char *const keys[] = {"size_bands", "free_bands"};
    double all = 0, largest = 0;
    *from = 0;
    const cJSON *b;
    for (size_t i = 0; i < 2; i++)
        cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(trace, keys[i]))
        {
            all += md_json_get_num(b, "memory_syscalls");
        }
    const cJSON *most = NULL; // when the churn is spread so thin that no band has its share
    for (size_t i = 0; i < 2 && all > 0 && largest == 0; i++)
        cJSON_ArrayForEach(b, cJSON_GetObjectItemCaseSensitive(trace, keys[i]))
        {
            double calls = md_json_get_num(b, "memory_syscalls");
            if (!most || calls > md_json_get_num(most, "memory_syscalls"))
                most = b;
            if (calls >= KEEP_BAND_SHARE * all && md_json_get_num(b, "to") > largest) {
                largest = md_json_get_num(b, "to");
                *from = md_json_get_num(b, "from");
            }
        }
    if (largest == 0 && most && md_json_get_num(most, "memory_syscalls") > 0) {
        largest = md_json_get_num(most, "to");
        *from = md_json_get_num(most, "from");
    }
    return largest;
}

// GLIBC_TUNABLES' names that a prescription sets (and drops from a setting it merges into)
static const char *const keep_tunables[] = {"glibc.malloc.mmap_threshold",
                                            "glibc.malloc.trim_threshold"};

// setting with the prescribed tunables merged in: its other tunables kept (arena_max, ...), its
// own values of ours dropped. setting may be NULL.
static void merge_tunables(const char *setting, const char *ours, char *out, size_t size)
{
    size_t len = 0;
    out[0] = 0;
    char copy[1024];
    snprintf(copy, sizeof copy, "%s", setting ? setting : "");
    for (char *save = NULL, *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
        size_t name = strcspn(t, "=");
        bool replaced = false;
        for (size_t i = 0; i < sizeof keep_tunables / sizeof keep_tunables[0]; i++)
            replaced |= strlen(keep_tunables[i]) == name && !strncmp(t, keep_tunables[i], name);
        if (replaced)
            continue;
        md_append_text(out, size, &len, t);
        md_append_text(out, size, &len, ":");
    }
    md_append_text(out, size, &len, ours);
}

// The index of the program among env's arguments (after its options and NAME=VALUE
// assignments), or 0 when argv is not env or its options cannot be followed (-S splits a string).
// *tunables: the index of its last GLIBC_TUNABLES assignment (the one that wins), or 0;
// *cleared: env clears the environment (-i) or GLIBC_TUNABLES (-u), so nothing is inherited.
static int env_program(const cJSON *argv, int *tunables, bool *cleared)
{
    *tunables = 0;
    *cleared = false;
    const cJSON *first = cJSON_GetArrayItem(argv, 0);
    if (!cJSON_IsString(first))
        return 0;
    const char *slash = strrchr(first->valuestring, '/');
    if (strcmp(slash ? slash + 1 : first->valuestring, "env"))
        return 0;
    int n = cJSON_GetArraySize(argv);
    bool options = true;
    for (int i = 1; i < n; i++) {
        const char *a = cJSON_GetArrayItem(argv, i)->valuestring;
        if (!a)
            return 0;
        if (options && !strcmp(a, "--")) {
            options = false;
        } else if (options && (!strcmp(a, "-u") || !strcmp(a, "--unset") || !strcmp(a, "-C") ||
                               !strcmp(a, "--chdir"))) {
            bool unset = !strcmp(a, "-u") || !strcmp(a, "--unset");
            const cJSON *next = cJSON_GetArrayItem(argv, ++i); // takes the next word
            *cleared |=
                unset && cJSON_IsString(next) && !strcmp(next->valuestring, "GLIBC_TUNABLES");
        } else if (options && (!strncmp(a, "-S", 2) || !strncmp(a, "--split-string", 14))) {
            return 0;
        } else if (options && a[0] == '-') {
            // -i, -, -0, --unset=NAME, ...
            *cleared |= !strcmp(a, "-i") || !strcmp(a, "-") || !strcmp(a, "--ignore-environment") ||
                        !strcmp(a, "-uGLIBC_TUNABLES") || !strcmp(a, "--unset=GLIBC_TUNABLES");
        } else if (strchr(a, '=')) {
            options = false;
            if (!strncmp(a, "GLIBC_TUNABLES=", 15))
                *tunables = i;
        } else {
            return i;
        }
    }
    return 0;
}

// The traced command with the tunables in force: inside env's own assignments when the command
// is `env ... PROG` (a GLIBC_TUNABLES before env would be overridden by env's, or cleared by
// -i), else before the command, merged with what the program inherited from this tool's
// environment. *inner: the command's own GLIBC_TUNABLES was changed.
static void tunables_command(const cJSON *trace, const char *ours, char *out, size_t size,
                             bool *inner)
{
    const cJSON *target = cJSON_GetObjectItemCaseSensitive(trace, "target");
    const cJSON *argv = cJSON_GetObjectItemCaseSensitive(target, "argv");
    char merged[1280], word[1300], cmd[512];
    int tunables;
    bool cleared;
    int program = env_program(argv, &tunables, &cleared);
    // the setting the program would run with, to keep its other tunables
    const char *inherited = cleared ? NULL : md_json_get_str(target, "glibc_tunables");
    *inner = program && tunables;
    if (program) {
        // the same command with env's assignment changed or added, quoted as the rules quote
        // (word by word: cJSON 1.7.15's cJSON_InsertItemInArray left a duplicated array as it was)
        const cJSON *own = cJSON_GetArrayItem(argv, tunables);
        merge_tunables(tunables ? own->valuestring + 15 : inherited, ours, merged, sizeof merged);
        snprintf(word, sizeof word, "GLIBC_TUNABLES=%s", merged);
        cJSON *copy = cJSON_CreateObject();
        cJSON *args = cJSON_AddArrayToObject(cJSON_AddObjectToObject(copy, "target"), "argv");
        int i = 0;
        const cJSON *arg;
        cJSON_ArrayForEach(arg, argv)
        {
            if (i == program && !tunables)
                cJSON_AddItemToArray(args, cJSON_CreateString(word));
            cJSON_AddItemToArray(args, i == tunables && tunables ? cJSON_CreateString(word)
                                                                 : cJSON_Duplicate(arg, 1));
            i++;
        }
        md_rule_trace_command(copy, out, size);
        cJSON_Delete(copy);
        if (!strstr(out, "GLIBC_TUNABLES=")) // too long: its arguments were elided
            snprintf(out, size, "env ... %s PROGRAM ...", word);
        return;
    }
    merge_tunables(inherited, ours, merged, sizeof merged);
    md_rule_trace_command(trace, cmd, sizeof cmd);
    size_t len = 0;
    out[0] = 0;
    // the value quoted, not the word: a quoted NAME=VALUE is no assignment
    md_append_text(out, size, &len, "GLIBC_TUNABLES=");
    md_append_shell_word(out, size, &len, merged);
    md_append_text(out, size, &len, " ");
    md_append_text(out, size, &len, cmd);
}

void md_rule_trace_keep_memory(const struct md_rule_input *in, char *out, size_t size)
{
    const cJSON *trace = in->trace;
    char replace[1536], cmd[1024], ours[128];
    md_rule_trace_replace_allocator(in, replace, sizeof replace);
    const char *family = md_json_get_str(md_report_ran_allocator(trace), "family");
    if (!family || strcmp(family, "glibc")) {
        snprintf(out, size, "%s", replace);
        return;
    }
    // the threshold must be above the chunk of the largest request that churned (the sizes
    // known to their band, or power-of-two bucket: the top is taken); a block kept for the whole
    // run needs none. Without bands, the largest request of all.
    double from, largest = churned_size(trace, &from);
    const char *which = largest > 0 ? " that churned" : "";
    if (largest <= 0)
        largest = largest_size(trace, &from);
    unsigned long chunk = glibc_chunk((unsigned long)largest);
    unsigned long threshold = KEEP_MIN;
    while (threshold <= chunk && threshold < GLIBC_MMAP_THRESHOLD_MAX)
        threshold <<= 1;
    if (glibc_chunk((unsigned long)from) >= GLIBC_MMAP_THRESHOLD_MAX) {
        snprintf(out, size,
                 "glibc's tunables cannot be relied on to keep these blocks: the largest "
                 "requests%s (up to %.0f B) make chunks of up to %lu B, which need an "
                 "mmap_threshold above 32 MiB, and glibc's mallopt() refuses that while some "
                 "glibc versions ignore it in GLIBC_TUNABLES without a word; instead, %s",
                 which, largest, chunk, replace);
        return;
    }
    // the top bucket reaches past glibc's highest threshold, but its sizes may not: that one keeps
    // requests whose chunk is below it (request + 8 rounded up to 16: up to 24 B less)
    char above[256];
    if (threshold > chunk)
        snprintf(above, sizeof above, "a threshold above the %lu B chunk of the largest request%s",
                 chunk, which);
    else
        snprintf(above, sizeof above,
                 "its highest threshold, 32 MiB, above the chunks of requests up to %lu B (the "
                 "largest requests%s are of %.0f to %.0f B: any above %lu B still get a mapping "
                 "each)",
                 threshold - GLIBC_SIZE_SZ - GLIBC_ALIGN_MASK - 1, which, from, largest,
                 threshold - GLIBC_SIZE_SZ - GLIBC_ALIGN_MASK - 1);
    // a fixed mmap threshold turns glibc's dynamic trim threshold off too: set both, the trim
    // threshold at twice the mmap threshold as glibc's own adjustment does
    snprintf(ours, sizeof ours, "%s=%lu:%s=%lu", keep_tunables[0], threshold, keep_tunables[1],
             2 * threshold);
    bool inner;
    tunables_command(trace, ours, cmd, sizeof cmd, &inner);
    snprintf(out, size,
             "keep freed blocks in glibc's heap with %s: `%s`%s; a program that calls mallopt() "
             "for these overrides them. Or %s",
             above, cmd,
             inner ? " (the command's own GLIBC_TUNABLES, changed: one put before the command "
                     "would be overridden by it)"
                   : "",
             replace);
}
