// SPDX-License-Identifier: GPL-3.0-or-later
// MD001: musl's malloc serves a program that starts threads.
//
// musl's allocators take one global lock per call (mallocng, oldmalloc's bins), so threads that
// allocate serialise: seed 001 measured a static wasmtime 20x slower on 48 cores, issue 3 measured
// 14-68x against mimalloc on 2 threads. From inspect alone this is a warning: the program may
// allocate little. With a trace of the program it becomes an error when the trace shows the cost:
// futex waits per allocator operation, the share of wall time blocked in them, or the share of
// CPU spent in the allocator.
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/report.h"
#include "rules/rules.h"

// One futex wait per 1000 allocator operations is contention on the lock: a healthy program
// waits only to join or hand over work (musl fixtures: 0.0066-0.0076 waits per op contended,
// 2 waits in all when the threads only compute).
#define MD001_MIN_WAITS_PER_OP 0.001
// Fewer waits than this are thread joins and start-up, whatever the rate.
#define MD001_MIN_WAITS 32
// Waits inside allocator calls are no joins: a few that block a tenth of the wall time are the
// lock's (the static musl fixture: 11 to 52 waits, blocked 22-33% of the wall time).
#define MD001_MIN_ALLOCATOR_WAITS 4
// Blocked inside allocator calls for a tenth of the wall time (only known when a probe ran; the
// dynamic musl fixture with 2 threads: 19%).
#define MD001_MIN_WAIT_SHARE 0.10
// A fifth of the program's CPU samples inside musl's allocator (static musl fixture: 28-33%):
// a thread-caching allocator spends a few percent there.
#define MD001_MIN_ALLOCATOR_CPU_SHARE 0.20
// Below this many samples (0.1 s of CPU at the default rate) a share is noise.
#define MD001_MIN_SAMPLES 100

struct contention {
    double ops, waits, waits_per_op, wait_share, samples, cpu_share;
    // samples in musl's libc.so code that has no symbol (a dynamic program): perhaps the
    // allocator's, so cpu_share is a floor
    double unnamed_samples;
    bool attributed; // waits are those inside allocator calls, not the whole run's
    bool scanned;    // ... known from the waits' call stacks (--stacks), not from the probe
};

// Without the probe (static programs) --stacks still tells the allocator's waits apart: those
// whose call stack passes through an allocator function.
static void use_scanned_stacks(const cJSON *trace, struct contention *c, double wall)
{
    const cJSON *scan = cJSON_GetObjectItemCaseSensitive(trace, "futex_wait_stacks");
    if (c->attributed || !md_json_get_bool(scan, "sampled"))
        return;
    c->attributed = c->scanned = true;
    c->waits = md_json_get_num(scan, "allocator_waits");
    if (wall > 0)
        c->wait_share = md_json_get_num(scan, "allocator_wait_seconds") / wall;
}

static struct contention measure(const cJSON *trace)
{
    const cJSON *futex = cJSON_GetObjectItemCaseSensitive(trace, "futex");
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(trace, "cpu");
    struct contention c = {.ops = md_rule_trace_ops(trace)};
    c.attributed = md_report_attributed(trace);
    c.waits = md_json_get_num(futex, c.attributed ? "allocator_waits" : "waits");
    c.waits_per_op = c.ops > 0 ? c.waits / c.ops : 0;
    double wall = md_json_get_num(cJSON_GetObjectItemCaseSensitive(trace, "run"), "wall_seconds");
    // without attribution the waits include joins and idle workers: no share of wall from them
    if (c.attributed && wall > 0)
        c.wait_share = md_json_get_num(futex, "allocator_wait_seconds") / wall;
    use_scanned_stacks(trace, &c, wall);
    c.samples = md_rule_trace_program_samples(trace);
    if (c.samples > 0)
        c.cpu_share = md_json_get_num(cpu, "allocator_samples") / c.samples;
    c.unnamed_samples = md_json_get_num(cpu, "unnamed_allocator_library_samples");
    return c;
}

// alone: the probe saw one allocating thread per process, so the allocator's CPU share is its
// own work, not threads waiting for its lock (MD005 judges that).
static bool contended(const struct contention *c, bool alone)
{
    bool waits = c->waits >= MD001_MIN_WAITS && c->waits_per_op >= MD001_MIN_WAITS_PER_OP;
    bool blocked = c->attributed && c->waits >= MD001_MIN_ALLOCATOR_WAITS &&
                   c->wait_share >= MD001_MIN_WAIT_SHARE;
    bool cpu =
        !alone && c->samples >= MD001_MIN_SAMPLES && c->cpu_share >= MD001_MIN_ALLOCATOR_CPU_SHARE;
    return waits || blocked || cpu;
}

// Whether the program starts threads: inspect's answer, or for a stripped static program (which
// keeps no pthread_create name: "unknown") the threads the trace saw in one process.
static bool starts_threads(const struct md_rule_input *in, char *evidence, size_t size)
{
    const char *threads = md_json_get_str(in->file, "threads");
    const char *why = md_json_get_str(in->file, "threads_evidence");
    snprintf(evidence, size, "%s", why ? why : "");
    if (threads && !strcmp(threads, "yes"))
        return true;
    size_t seen = in->trace && threads && !strcmp(threads, "unknown")
                      ? md_rule_trace_threads_in_process(in->trace)
                      : 0;
    if (seen < 2)
        return false;
    snprintf(evidence, size, "the trace saw %zu threads in one process", seen);
    return true;
}

static void add_evidence(cJSON *ev, const struct contention *c)
{
    cJSON_AddNumberToObject(ev, "ops", c->ops);
    cJSON_AddNumberToObject(ev, "futex_waits", c->waits);
    cJSON_AddBoolToObject(ev, "futex_waits_in_allocator", c->attributed);
    cJSON_AddStringToObject(ev, "futex_waits_from",
                            c->scanned      ? "stack scan"
                            : c->attributed ? "probe"
                                            : "whole run");
    cJSON_AddNumberToObject(ev, "futex_waits_per_op", c->waits_per_op);
    if (c->attributed)
        cJSON_AddNumberToObject(ev, "allocator_wait_share_of_wall", c->wait_share);
    cJSON_AddNumberToObject(ev, "cpu_samples", c->samples);
    cJSON_AddNumberToObject(ev, "allocator_cpu_share", c->cpu_share);
    cJSON_AddNumberToObject(ev, "unnamed_allocator_library_samples", c->unnamed_samples);
}

static void check(const struct md_rule *rule, const struct md_rule_input *in, cJSON *findings)
{
    if (!in->file)
        return;
    const char *family = md_rule_active_family(in->file);
    const char *kind = md_json_get_str(in->file, "kind");
    char threads[PATH_MAX + 128]; // "pthread_create, imported by LIBRARY"
    if (!family || strcmp(family, "musl") || !kind || !starts_threads(in, threads, sizeof threads))
        return;
    if (!strcmp(kind, "shared-object")) // a library (musl's libc.so itself): no program to fix
        return;
    const cJSON *active = cJSON_GetObjectItemCaseSensitive(in->file, "active");
    bool is_static = !strcmp(kind, "static") || !strcmp(kind, "static-pie");
    struct contention c = {0};
    bool escalate = false, alone = false;
    if (in->trace) {
        c = measure(in->trace);
        alone = md_rule_trace_single_threaded(in->trace);
        escalate = contended(&c, alone);
    }
    char shown[320] = "";
    // the samples in libc code without symbols may be the allocator's: the share is a floor then
    const char *floor = c.unnamed_samples > 0 ? "at least " : "";
    if (escalate && c.attributed)
        snprintf(shown, sizeof shown,
                 "; the trace shows it: %.0f futex waits %s (%.2f per 1000 "
                 "allocator operations), blocked for %.0f%% of the wall time, %s%.0f%% of %.0f CPU "
                 "samples in the allocator",
                 c.waits,
                 c.scanned ? "with the allocator on their stack" : "inside allocator calls",
                 1000 * c.waits_per_op, 100 * c.wait_share, floor, 100 * c.cpu_share, c.samples);
    else if (escalate)
        snprintf(shown, sizeof shown,
                 "; the trace shows it: %.0f futex waits (%.2f per 1000 allocator operations), "
                 "%s%.0f%% of %.0f CPU samples in the allocator",
                 c.waits, 1000 * c.waits_per_op, floor, 100 * c.cpu_share, c.samples);
    char message[768];
    snprintf(message, sizeof message,
             "%s serves malloc in a program that starts threads (%s): musl's allocator takes a "
             "global lock, so threads that allocate wait for each other%s",
             md_json_get_str(active, "name"), threads,
             escalate ? shown
             : alone  ? "; in this run one thread per process allocated, so none waited yet"
                      : "");
    // with a trace, the prescription names the program's command and this tool's mdalloc
    char fix[2048], patch[1024];
    md_rule_patch_musl(in, in->file, patch, sizeof patch);
    if (in->trace)
        md_rule_trace_replace_allocator(in, fix, sizeof fix);
    else if (is_static)
        snprintf(fix, sizeof fix,
                 "patch a copy of musl's libc.a with mdalloc: %s, then check with "
                 "`%s inspect --expect mdalloc PROGRAM`",
                 patch, md_rule_tool(in));
    else
        snprintf(fix, sizeof fix,
                 "preload a thread-caching allocator built for musl (malloc-doctor's "
                 "%s/musl/libmdalloc.so, or a musl build of mimalloc or jemalloc: Debian's are "
                 "glibc's), then measure with `%s trace --compare -- PROGRAM`",
                 md_rule_alloc_dir(in), md_rule_tool(in));
    cJSON *ev =
        md_finding_add(findings, rule, escalate ? MD_SEV_ERROR : MD_SEV_WARNING, message, fix);
    cJSON_AddStringToObject(ev, "active", md_json_get_str(active, "id"));
    cJSON_AddStringToObject(ev, "threads_evidence", threads);
    if (in->trace)
        add_evidence(ev, &c);
}

const struct md_rule md_rule_musl_threads = {
    .id = "MD001",
    .name = "musl-malloc-threads",
    .title = "musl malloc in a multithreaded program",
    .severities = MD_SEV_BIT(MD_SEV_WARNING) | MD_SEV_BIT(MD_SEV_ERROR),
    .check = check,
};
