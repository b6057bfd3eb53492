// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/trace_stacks.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/report.h"
#include "lib/symbolize.h"

#define MD_TOP_STACKS 20
#define MD_FRAME_TEXT 160

// One stack after symbolization; entries with equal text are merged.
struct named_stack {
    char *text; // frames innermost first, separated by '\n'
    uint64_t allocations, bytes, leaked_blocks, leaked_bytes, futex_waits, futex_ns;
};

struct symbolizer {
    struct md_probe_header *h;
    struct md_symcache cache;
};

static const struct md_probe_object *object_of(const struct md_probe_header *h, int32_t pid,
                                               uint64_t addr)
{
    const struct md_probe_object *objects = md_probe_objects((struct md_probe_header *)h);
    uint32_t n = atomic_load(&((struct md_probe_header *)h)->objects_used);
    const struct md_probe_object *other = NULL;
    for (uint32_t i = 0; i < n && i < h->object_max; i++) {
        if (addr < objects[i].start || addr >= objects[i].end)
            continue;
        if (objects[i].pid == pid)
            return &objects[i];
        other = &objects[i]; // a forked child shares its parent's objects
    }
    return other;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void frame_text(struct symbolizer *s, int32_t pid, uint64_t addr, char *out, size_t size)
{
    const struct md_probe_object *o = object_of(s->h, pid, addr);
    if (!o) {
        snprintf(out, size, "0x%" PRIx64, addr);
        return;
    }
    // a return address points after the call: step back into the calling instruction
    uint64_t vaddr = addr - o->bias - 1;
    const struct md_symtab *t = md_symcache_get(&s->cache, o->path);
    const struct md_func_sym *f = t ? md_symtab_find(t, vaddr, NULL) : NULL;
    if (f)
        snprintf(out, size, "%s (%s)", f->name, base_name(o->path));
    else
        snprintf(out, size, "0x%" PRIx64 " (%s)", vaddr + 1, base_name(o->path));
}

static char *stack_text(struct symbolizer *s, const struct md_probe_stack *st)
{
    size_t cap = MD_PROBE_FRAMES * MD_FRAME_TEXT, len = 0;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    text[0] = 0;
    for (uint32_t i = 0; i < st->depth && i < MD_PROBE_FRAMES; i++) {
        char frame[MD_FRAME_TEXT];
        frame_text(s, st->pid, st->frames[i], frame, sizeof frame);
        len += (size_t)snprintf(text + len, cap - len, "%s%s", i ? "\n" : "", frame);
    }
    return text;
}

static int by_text(const void *a, const void *b)
{
    return strcmp(((const struct named_stack *)a)->text, ((const struct named_stack *)b)->text);
}

// Merges neighbours with equal text (the array is sorted by text); returns the new count.
static size_t merge(struct named_stack *v, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (out && !strcmp(v[out - 1].text, v[i].text)) {
            struct named_stack *m = &v[out - 1];
            m->allocations += v[i].allocations, m->bytes += v[i].bytes;
            m->leaked_blocks += v[i].leaked_blocks, m->leaked_bytes += v[i].leaked_bytes;
            m->futex_waits += v[i].futex_waits, m->futex_ns += v[i].futex_ns;
            free(v[i].text);
        } else {
            v[out++] = v[i];
        }
    }
    return out;
}

// Every used stack entry, symbolized; index i of the result is stack id i + 1.
static struct named_stack *name_stacks(struct symbolizer *s, size_t *count)
{
    struct md_probe_header *h = s->h;
    struct named_stack *v = calloc(h->stack_max ? h->stack_max : 1, sizeof *v);
    if (!v)
        return NULL;
    const struct md_probe_stack *table = md_probe_stacks(h);
    for (uint32_t i = 0; i < h->stack_max; i++) {
        if (!atomic_load(&table[i].hash))
            continue;
        v[i].allocations = atomic_load(&table[i].allocations);
        v[i].bytes = atomic_load(&table[i].bytes);
        if (!(v[i].text = stack_text(s, &table[i]))) {
            *count = i;
            return v;
        }
    }
    *count = h->stack_max;
    return v;
}

static void add_leaks(struct md_probe_header *h, struct named_stack *v, uint64_t *blocks,
                      uint64_t *bytes)
{
    const struct md_probe_live *live = md_probe_live_table(h);
    for (uint64_t i = 0; i < h->live_max; i++) {
        uint64_t a = atomic_load(&live[i].address);
        if (a <= MD_PROBE_LIVE_TOMBSTONE)
            continue;
        (*blocks)++, *bytes += live[i].size;
        if (live[i].stack && v[live[i].stack - 1].text)
            v[live[i].stack - 1].leaked_blocks++, v[live[i].stack - 1].leaked_bytes += live[i].size;
    }
}

typedef uint64_t (*stack_key)(const struct named_stack *);
static uint64_t key_allocations(const struct named_stack *s)
{
    return s->allocations;
}
static uint64_t key_leaked(const struct named_stack *s)
{
    return s->leaked_bytes;
}
static uint64_t key_futex(const struct named_stack *s)
{
    return s->futex_ns + s->futex_waits; // waits break ties between zero-length waits
}

static int by_key_desc(const void *a, const void *b, void *key)
{
    uint64_t x = (*(stack_key *)key)(a), y = (*(stack_key *)key)(b);
    return x < y ? 1 : x > y ? -1 : 0;
}

static void add_top(cJSON *arr, struct named_stack *v, size_t n, stack_key key, uint64_t min,
                    size_t max)
{
    qsort_r(v, n, sizeof *v, by_key_desc, &key);
    for (size_t i = 0; i < n && i < max && key(&v[i]) && key(&v[i]) >= min; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "frames", md_json_lines(v[i].text));
        if (key == key_allocations) {
            cJSON_AddNumberToObject(o, "allocations", (double)v[i].allocations);
            cJSON_AddNumberToObject(o, "bytes", (double)v[i].bytes);
        } else if (key == key_leaked) {
            cJSON_AddNumberToObject(o, "blocks", (double)v[i].leaked_blocks);
            cJSON_AddNumberToObject(o, "bytes", (double)v[i].leaked_bytes);
        } else {
            cJSON_AddNumberToObject(o, "waits", (double)v[i].futex_waits);
            cJSON_AddNumberToObject(o, "wait_seconds", (double)v[i].futex_ns / 1e9);
        }
        cJSON_AddItemToArray(arr, o);
    }
}

// Flame-graph tools want "outermost;...;innermost COUNT" per line.
static int write_folded(const char *path, const struct named_stack *v, size_t n,
                        struct md_error *err)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return md_fail_errno(err, errno, "%s", path);
    for (size_t i = 0; i < n; i++) {
        if (!v[i].allocations)
            continue;
        const char *frames[MD_PROBE_FRAMES];
        size_t lens[MD_PROBE_FRAMES], depth = 0;
        for (const char *p = v[i].text; *p && depth < MD_PROBE_FRAMES;) {
            lens[depth] = strcspn(p, "\n");
            frames[depth++] = p;
            p += lens[depth - 1] + (p[lens[depth - 1]] == '\n');
        }
        for (size_t d = depth; d-- > 0;)
            fprintf(f, "%.*s%s", (int)lens[d], frames[d], d ? ";" : "");
        fprintf(f, " %" PRIu64 "\n", v[i].allocations);
    }
    if (fclose(f))
        return md_fail_errno(err, errno, "%s", path);
    return 0;
}

static void add_leak_report(cJSON *report, struct named_stack *v, size_t n,
                            const struct md_stack_options *opt, uint64_t blocks, uint64_t bytes,
                            uint64_t dropped)
{
    cJSON *o = cJSON_AddObjectToObject(report, "leaks");
    cJSON_AddTrueToObject(o, "tracked");
    cJSON_AddNumberToObject(o, "blocks", (double)blocks);
    cJSON_AddNumberToObject(o, "bytes", (double)bytes);
    cJSON_AddNumberToObject(o, "min_bytes", (double)opt->leak_min_bytes);
    cJSON_AddNumberToObject(o, "untracked", (double)dropped);
    add_top(cJSON_AddArrayToObject(o, "by_stack"), v, n, key_leaked,
            opt->leak_min_bytes ? opt->leak_min_bytes : 1, MD_TOP_STACKS);
}

int md_trace_stacks(struct md_probe_file *pf, const struct md_stack_options *opt, cJSON *report,
                    struct md_error *err)
{
    struct symbolizer s = {.h = pf->header};
    md_symcache_init(&s.cache);
    size_t n = 0;
    struct named_stack *v = name_stacks(&s, &n);
    if (!v) {
        md_symcache_free(&s.cache);
        return md_fail(err, "out of memory symbolizing stacks");
    }
    uint64_t blocks = 0, bytes = 0;
    if (opt->leaks)
        add_leaks(pf->header, v, &blocks, &bytes);
    for (size_t i = 0; opt->futex_waits && i < n; i++)
        v[i].futex_waits = opt->futex_waits[i + 1], v[i].futex_ns = opt->futex_ns[i + 1];
    size_t used = 0; // drop the empty entries, then merge equal texts
    for (size_t i = 0; i < n; i++)
        if (v[i].text)
            v[used++] = v[i];
    qsort(v, used, sizeof *v, by_text);
    used = merge(v, used);
    int rc = 0;
    if (opt->stacks) {
        add_top(cJSON_AddArrayToObject(report, "stacks"), v, used, key_allocations, 1,
                MD_TOP_STACKS);
        add_top(cJSON_AddArrayToObject(report, "futex_stacks"), v, used, key_futex, 1,
                MD_TOP_STACKS);
        if (opt->folded)
            rc = write_folded(opt->folded, v, used, err);
    }
    if (opt->leaks)
        add_leak_report(report, v, used, opt, blocks, bytes,
                        atomic_load(&pf->header->live_dropped));
    for (size_t i = 0; i < used; i++)
        free(v[i].text);
    free(v);
    md_symcache_free(&s.cache);
    return rc;
}
