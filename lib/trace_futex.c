// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/trace_futex.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/report.h"

#define TOP_STACKS 20
// How long after the end strace measured a sample may still come: strace takes its entry time
// at its stop, the tracepoint fires once strace has let the thread go on, and under load that
// gap can exceed the wait itself (70 us after a 40 us wait was seen here). When perf records the
// syscalls, the raw_syscalls event and the futex event fire in the same tracepoint, each with
// its own clock reading: the sample may come a little before the recorded start (MATCH_EARLY_NS).
#define MATCH_SLACK_NS 10000000
// How far before a recorded start its sample may come: far less than a futex call takes.
#define MATCH_EARLY_NS 1000

// A blocking futex call as recorded (by strace or perf).
struct strace_wait {
    int32_t tid;
    uint64_t start_ns, dur_ns;
    bool used; // matched with a sample already
};

static int by_tid_time(const void *a, const void *b)
{
    const struct strace_wait *x = a, *y = b;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return x->start_ns < y->start_ns ? -1 : x->start_ns > y->start_ns;
}

static struct strace_wait *strace_waits(const struct md_strace_log *log, size_t *count)
{
    struct strace_wait *w = calloc(log->count ? log->count : 1, sizeof *w);
    size_t n = 0;
    for (size_t i = 0; w && i < log->count; i++) {
        const struct md_sys_event *e = &log->event[i];
        if (e->sys == MD_SYS_FUTEX && e->futex_wait)
            w[n++] = (struct strace_wait){e->tid, e->ts_ns, e->dur_ns, false};
    }
    if (w)
        qsort(w, n, sizeof *w, by_tid_time);
    *count = n;
    return w;
}

static bool takes(const struct strace_wait *c, uint32_t tid, uint64_t t)
{
    return c->tid == (int32_t)tid && !c->used && t <= c->start_ns + c->dur_ns + MATCH_SLACK_NS;
}

// The last recorded wait on tid that started at or before t, unless another sample took it or it
// ended long before t: the recorder sees the call first (strace's seccomp stop comes before the
// kernel's sys_enter tracepoint) and a thread makes one call at a time, so that is the sampled
// call. Failing that, under perf, the first wait that started just after t (MATCH_EARLY_NS).
static struct strace_wait *match(struct strace_wait *w, size_t n, uint32_t tid, uint64_t t)
{
    size_t lo = 0, hi = n; // first entry after (tid, t)
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        bool after =
            w[mid].tid > (int32_t)tid || (w[mid].tid == (int32_t)tid && w[mid].start_ns > t);
        if (after)
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo && takes(&w[lo - 1], tid, t))
        return &w[lo - 1];
    if (lo < n && w[lo].tid == (int32_t)tid && !w[lo].used && w[lo].start_ns <= t + MATCH_EARLY_NS)
        return &w[lo];
    return NULL;
}

struct ranked {
    size_t stack;
    uint64_t waits, ns;
};

static int by_time_then_waits(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->ns != y->ns)
        return x->ns < y->ns ? 1 : -1;
    if (x->waits != y->waits)
        return x->waits < y->waits ? 1 : -1;
    return x->stack < y->stack ? -1 : x->stack > y->stack;
}

// Flame-graph folded form: "[futex-wait];outermost;...;innermost WAITS".
static void write_folded(FILE *f, const struct md_perf_result *perf, const struct ranked *v,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *text = perf->futex_stacks[v[i].stack].frames;
        const char *frames[MD_PERF_FUTEX_FRAMES];
        size_t lens[MD_PERF_FUTEX_FRAMES], depth = 0;
        for (const char *p = text; *p && depth < MD_PERF_FUTEX_FRAMES;) {
            lens[depth] = strcspn(p, "\n");
            frames[depth++] = p;
            p += lens[depth - 1] + (p[lens[depth - 1]] == '\n');
        }
        fputs("[futex-wait]", f);
        for (size_t d = depth; d-- > 0;)
            fprintf(f, ";%.*s", (int)lens[d], frames[d]);
        fprintf(f, " %" PRIu64 "\n", v[i].waits);
    }
}

static void add_summary(cJSON *o, const struct md_perf_result *perf, const struct ranked *v,
                        size_t n, uint64_t matched, uint64_t matched_ns)
{
    uint64_t alloc_waits = 0, alloc_ns = 0;
    for (size_t i = 0; i < n; i++)
        if (perf->futex_stacks[v[i].stack].in_allocator)
            alloc_waits += v[i].waits, alloc_ns += v[i].ns;
    cJSON_AddNumberToObject(o, "waits", (double)perf->futex_wait_count);
    cJSON_AddNumberToObject(o, "timed_waits", (double)matched);
    cJSON_AddNumberToObject(o, "wait_seconds", (double)matched_ns / 1e9);
    cJSON_AddNumberToObject(o, "allocator_waits", (double)alloc_waits);
    cJSON_AddNumberToObject(o, "allocator_wait_seconds", (double)alloc_ns / 1e9);
    cJSON_AddNumberToObject(o, "lost_samples", (double)perf->samples_lost);
    cJSON_AddStringToObject(o, "frames_from", "stack scan");
}

static void add_stacks(cJSON *o, const struct md_perf_result *perf, const struct ranked *v,
                       size_t n)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "stacks");
    for (size_t i = 0; i < n && i < TOP_STACKS; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddItemToObject(s, "frames", md_json_lines(perf->futex_stacks[v[i].stack].frames));
        cJSON_AddNumberToObject(s, "waits", (double)v[i].waits);
        cJSON_AddNumberToObject(s, "wait_seconds", (double)v[i].ns / 1e9);
        cJSON_AddBoolToObject(s, "in_allocator", perf->futex_stacks[v[i].stack].in_allocator);
        cJSON_AddItemToArray(arr, s);
    }
}

int md_trace_futex_stacks(const struct md_perf_result *perf, const char *why,
                          const struct md_strace_log *log, FILE *folded, cJSON *report,
                          struct md_error *err)
{
    cJSON *o = cJSON_AddObjectToObject(report, "futex_wait_stacks");
    cJSON_AddBoolToObject(o, "sampled", perf != NULL);
    md_json_str(o, "error", perf ? NULL : why);
    if (!perf)
        return 0;
    size_t n_strace = 0;
    struct strace_wait *sw = strace_waits(log, &n_strace);
    struct ranked *v = calloc(perf->futex_stack_count ? perf->futex_stack_count : 1, sizeof *v);
    if (!sw || !v) {
        free(sw);
        free(v);
        return md_fail(err, "out of memory matching futex waits");
    }
    for (size_t i = 0; i < perf->futex_stack_count; i++)
        v[i] = (struct ranked){i, perf->futex_stacks[i].waits, 0};
    uint64_t matched = 0, matched_ns = 0;
    for (size_t i = 0; i < perf->futex_wait_count; i++) {
        const struct md_perf_futex_wait *w = &perf->futex_waits[i];
        struct strace_wait *c = match(sw, n_strace, w->tid, w->time_ns);
        if (!c)
            continue;
        c->used = true;
        matched++, matched_ns += c->dur_ns;
        v[w->stack].ns += c->dur_ns;
    }
    qsort(v, perf->futex_stack_count, sizeof *v, by_time_then_waits);
    add_summary(o, perf, v, perf->futex_stack_count, matched, matched_ns);
    add_stacks(o, perf, v, perf->futex_stack_count);
    if (folded)
        write_folded(folded, perf, v, perf->futex_stack_count);
    free(sw);
    free(v);
    return 0;
}
