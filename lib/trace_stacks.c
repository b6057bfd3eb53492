// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/trace_stacks.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc/probe_stamp.h"
#include "lib/clock.h"
#include "lib/report.h"
#include "lib/stack_scan.h"
#include "lib/symbolize.h"
#include "lib/path.h"

#define MD_TOP_STACKS 20
#define MD_FRAME_TEXT 160

// One stack after symbolization; entries with equal text are merged.
struct named_stack {
    char *text;  // frames innermost first, separated by '\n'
    uint32_t id; // the stack table's index + 1 (before merging)
    uint64_t allocations, bytes, leaked_blocks, leaked_bytes, futex_waits, futex_ns;
};

struct symbolizer {
    const struct md_probe_view *v; // the tool's own copy of the file's geometry
    struct md_symcache cache;
    struct md_u64map file_names; // object -> the name of the file it is (owned)
};

// The program can write to the file: a path it did not end is no name.
static bool object_named(const struct md_probe_object *o)
{
    return memchr(o->path, 0, sizeof o->path) != NULL;
}

static const struct md_probe_object *object_of(const struct md_probe_view *v, int32_t pid,
                                               uint64_t addr)
{
    const struct md_probe_object *objects = v->objects;
    uint32_t n = atomic_load(&v->header->objects_used);
    const struct md_probe_object *other = NULL;
    for (uint32_t i = 0; i < n && i < v->object_max; i++) {
        if (addr < objects[i].start || addr >= objects[i].end || !object_named(&objects[i]))
            continue;
        if (objects[i].pid == pid)
            return &objects[i];
        other = &objects[i]; // a forked child shares its parent's objects
    }
    return other;
}

// The name of an object's file as perf's futex stacks name it: the loader's path may be a link
// (libstdc++.so.6 -> libstdc++.so.6.0.30), and one library must have one name in folded stacks.
static const char *file_name(struct symbolizer *s, const struct md_probe_object *o)
{
    uint64_t *known = md_u64map_find(&s->file_names, (uintptr_t)o);
    if (known)
        return (const char *)(uintptr_t)*known;
    char *real = realpath(o->path, NULL);
    char *name = strdup(md_path_base_name(real ? real : o->path));
    free(real);
    if (name && !md_u64map_put(&s->file_names, (uintptr_t)o, (uintptr_t)name)) {
        free(name);
        name = NULL;
    }
    return name ? name : md_path_base_name(o->path);
}

static void frame_text(struct symbolizer *s, int32_t pid, uint64_t addr, char *out, size_t size)
{
    const struct md_probe_object *o = object_of(s->v, pid, addr);
    if (!o) {
        snprintf(out, size, "0x%" PRIx64, addr);
        return;
    }
    // a return address points after the call: step back into the calling instruction
    uint64_t vaddr = addr - o->bias - 1;
    const struct md_symtab *t = md_symcache_get(&s->cache, o->path);
    const struct md_func_sym *f = t ? md_symtab_find(t, vaddr, NULL) : NULL;
    if (f)
        snprintf(out, size, "%s (%s)", md_symcache_shown_name(&s->cache, f), file_name(s, o));
    else
        snprintf(out, size, "0x%" PRIx64 " (%s)", vaddr + 1, file_name(s, o));
}

// The function a return address is in, with its file's symbols; NULL when unknown.
static const struct md_func_sym *function_at(struct symbolizer *s, int32_t pid, uint64_t ret,
                                             const struct md_symtab **t, uint64_t *offset)
{
    const struct md_probe_object *o = object_of(s->v, pid, ret);
    *t = o ? md_symcache_get(&s->cache, o->path) : NULL;
    uint64_t vaddr = o ? ret - o->bias : 0;
    // through the calling instruction: a call may end its segment, its return address past it
    if (!*t || !md_symtab_addr_to_offset(*t, vaddr - 1, offset))
        return NULL;
    *offset += 1;
    return md_symtab_find(*t, vaddr - 1, NULL);
}

// Whether the probe's guess at a caller the walk could not see (MD_PROBE_FRAME_GUESS) is one:
// the innermost function sets up no frame, so its caller is missing, and the guessed word returns
// just after a call that can have entered that function, from another function (a word the
// innermost function left in its own frame returns into itself) than the next frame's.
static bool guess_holds(struct symbolizer *s, const struct md_probe_stack *st, uint64_t guess)
{
    const struct md_symtab *inner_t, *t;
    uint64_t inner_offset, offset;
    const struct md_func_sym *inner =
        function_at(s, st->pid, st->frames[0], &inner_t, &inner_offset);
    if (!inner || md_keeps_frame_pointer(inner_t, inner))
        return false;
    const struct md_func_sym *f = function_at(s, st->pid, guess, &t, &offset);
    if (!f || f == inner || !md_follows_call(t, offset) ||
        !md_call_can_reach(t, offset, inner_t, inner))
        return false;
    return st->depth < 3 || st->frames[2] != guess;
}

static char *stack_text(struct symbolizer *s, const struct md_probe_stack *st)
{
    size_t cap = MD_PROBE_FRAMES * MD_FRAME_TEXT, len = 0;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    text[0] = 0;
    for (uint32_t i = 0; i < st->depth && i < MD_PROBE_FRAMES; i++) {
        uint64_t ret = st->frames[i] & ~MD_PROBE_FRAME_GUESS;
        if (ret != st->frames[i] && !guess_holds(s, st, ret))
            continue;
        // the probe's own frames (a stale return address into it taken for a caller) are
        // never the program's
        const struct md_probe_object *o = object_of(s->v, st->pid, ret);
        if (o && md_path_is_probe(o->path))
            continue;
        char frame[MD_FRAME_TEXT];
        frame_text(s, st->pid, ret, frame, sizeof frame);
        md_lines_append(text, cap, &len, frame);
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

// The used stack entries, symbolized, in a compact list in the order of their ids (until merged):
// the table has 65536 entries and a run uses a few hundred, so nothing is kept (or read, see
// md_probe_file_data_run) per unused entry.
struct stack_list {
    struct named_stack *v;
    size_t count, cap;
};

static int list_add(struct stack_list *l, uint32_t id, char *text, uint64_t allocations,
                    uint64_t bytes)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        struct named_stack *grown = realloc(l->v, cap * sizeof *grown);
        if (!grown)
            return -1;
        l->v = grown, l->cap = cap;
    }
    l->v[l->count++] =
        (struct named_stack){.text = text, .id = id, .allocations = allocations, .bytes = bytes};
    return 0;
}

// The entry of a stack id, NULL when the id names no used entry (the list is in id order).
static struct named_stack *list_find(const struct stack_list *l, uint32_t id)
{
    size_t lo = 0, hi = l->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->count && l->v[lo].id == id ? &l->v[lo] : NULL;
}

static int name_stacks(struct symbolizer *s, const struct md_probe_file *pf, struct stack_list *l)
{
    const struct md_probe_stack *table = s->v->stacks;
    size_t first, end;
    for (size_t from = 0;
         md_probe_file_data_run(pf, table, sizeof *table, s->v->stack_max, from, &first, &end);
         from = end) {
        for (size_t i = first; i < end; i++) {
            if (!atomic_load(&table[i].hash))
                continue;
            char *text = stack_text(s, &table[i]);
            if (!text || list_add(l, (uint32_t)i + 1, text, atomic_load(&table[i].allocations),
                                  atomic_load(&table[i].bytes))) {
                free(text);
                return -1;
            }
        }
    }
    return 0;
}

// Blocks still live at the end: leaks, by stack; or live at exec, when their image was replaced
// by an exec (its heap went with it: not a leak of anything). False when out of memory.
struct leak_totals {
    uint64_t blocks, bytes, exec_blocks, exec_bytes;
};

static bool add_leaks(const struct md_probe_file *pf, const struct md_stack_options *opt,
                      const struct stack_list *l, struct leak_totals *t)
{
    const struct md_probe_live *live = pf->view.live;
    bool *replaced = calloc(MD_PROBE_IMAGES + 1, sizeof *replaced);
    if (!replaced || !md_probe_file_exec_replaced(pf, opt->execs, opt->exec_count, replaced,
                                                  MD_PROBE_IMAGES + 1)) {
        free(replaced);
        return false;
    }
    size_t first, end;
    for (size_t from = 0;
         md_probe_file_data_run(pf, live, sizeof *live, pf->view.live_max, from, &first, &end);
         from = end) {
        for (size_t i = first; i < end; i++) {
            uint64_t a = atomic_load(&live[i].address);
            if (a <= MD_PROBE_LIVE_BUSY) // free, freed, or an insert its process did not finish
                continue;
            int32_t image = live[i].image;
            if (image > 0 && image <= MD_PROBE_IMAGES && replaced[image]) {
                t->exec_blocks++, t->exec_bytes += live[i].size;
                continue;
            }
            t->blocks++, t->bytes += live[i].size;
            struct named_stack *at = list_find(l, live[i].stack);
            if (at)
                at->leaked_blocks++, at->leaked_bytes += live[i].size;
        }
    }
    free(replaced);
    return true;
}

static void free_list(struct stack_list *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->v[i].text);
    free(l->v);
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
    if (n)
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
static void write_folded(FILE *f, const struct named_stack *v, size_t n)
{
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
}

static void add_leak_report(cJSON *report, struct named_stack *v, size_t n,
                            const struct md_stack_options *opt, const struct leak_totals *t,
                            uint64_t dropped)
{
    cJSON *o = cJSON_AddObjectToObject(report, "leaks");
    cJSON_AddTrueToObject(o, "tracked");
    cJSON_AddNumberToObject(o, "blocks", (double)t->blocks);
    cJSON_AddNumberToObject(o, "bytes", (double)t->bytes);
    cJSON *exec = cJSON_AddObjectToObject(o, "live_at_exec");
    cJSON_AddNumberToObject(exec, "blocks", (double)t->exec_blocks);
    cJSON_AddNumberToObject(exec, "bytes", (double)t->exec_bytes);
    cJSON_AddNumberToObject(o, "min_bytes", (double)opt->leak_min_bytes);
    cJSON_AddNumberToObject(o, "untracked", (double)dropped);
    add_top(cJSON_AddArrayToObject(o, "by_stack"), v, n, key_leaked,
            opt->leak_min_bytes ? opt->leak_min_bytes : 1, MD_TOP_STACKS);
}

// Whether the file at path, as it is now (st), changed after a process loaded it: it differs
// from the probe's stamp of any load of it (a build that replaced a library between two
// processes leaves the first one's frames misnamed); a load without a stamp (a file the probe
// could not stat), or no record at all (the program itself under uprobes), has its times
// compared instead: not before the load (or the program's start), to the kernel's timestamp tick.
static bool changed_after_load(const struct md_probe_view *v, const char *path,
                               const struct stat *st, uint64_t run_start_ns)
{
    struct md_probe_file_stamp now;
    md_probe_stamp_of(&now, st);
    uint64_t newest = now.mtime_ns > now.ctime_ns ? now.mtime_ns : now.ctime_ns;
    const struct md_probe_object *objects = v ? v->objects : NULL;
    uint32_t n = v ? atomic_load(&v->header->objects_used) : 0;
    bool recorded = false;
    for (uint32_t i = 0; i < n && i < v->object_max; i++) {
        const struct md_probe_object *o = &objects[i];
        if (strncmp(o->path, path, MD_PROBE_PATH))
            continue;
        recorded = true;
        if (o->stamped ? !md_probe_stamp_equal(&now, &o->file)
                       : newest >= (o->recorded_ns ? o->recorded_ns : run_start_ns))
            return true;
    }
    return !recorded && newest >= run_start_ns;
}

// Files the stacks were named from that changed after a process loaded them (a build replaced a
// library, a test truncated one): their names may not be the code that ran. A file that is gone
// (a program that deletes itself, a test's temporary library) leaves its frames as addresses.
static void warn_changed_files(const struct symbolizer *s, uint64_t run_start_ns, cJSON *report)
{
    const struct md_symcache *c = &s->cache;
    for (size_t i = 0; run_start_ns && i < c->count; i++) {
        struct stat st;
        char warning[PATH_MAX + 160];
        if (stat(c->paths[i], &st)) {
            snprintf(warning, sizeof warning,
                     "%s: cannot be read after the run (%s; removed while the program ran?): "
                     "its frames are shown as addresses",
                     c->paths[i], strerror(errno));
            md_report_warn(report, warning);
            continue;
        }
        if (!changed_after_load(s->v, c->paths[i], &st, run_start_ns))
            continue;
        snprintf(warning, sizeof warning,
                 "%s changed while the program ran (rebuilt or replaced?): the names of its "
                 "frames may not be the code that ran",
                 c->paths[i]);
        md_report_warn(report, warning);
    }
}

int md_trace_stacks(struct md_probe_file *pf, const struct md_stack_options *opt, cJSON *report,
                    struct md_error *err)
{
    struct symbolizer s = {.v = &pf->view};
    md_symcache_init(&s.cache);
    struct stack_list l = {0};
    struct leak_totals leaks = {0};
    if (name_stacks(&s, pf, &l) || (opt->leaks && !add_leaks(pf, opt, &l, &leaks))) {
        free_list(&l);
        md_symcache_free(&s.cache);
        md_u64map_free_owned(&s.file_names);
        return md_fail(err, "out of memory symbolizing stacks");
    }
    for (size_t i = 0; opt->futex_waits && i < l.count; i++)
        l.v[i].futex_waits = opt->futex_waits[l.v[i].id],
        l.v[i].futex_ns = opt->futex_ns[l.v[i].id];
    // merge equal texts (the same stack seen by several processes); no stack, no list
    if (l.count)
        qsort(l.v, l.count, sizeof *l.v, by_text);
    l.count = merge(l.v, l.count);
    struct named_stack *v = l.v;
    size_t used = l.count;
    if (opt->stacks) {
        add_top(cJSON_AddArrayToObject(report, "stacks"), v, used, key_allocations, 1,
                MD_TOP_STACKS);
        add_top(cJSON_AddArrayToObject(report, "futex_stacks"), v, used, key_futex, 1,
                MD_TOP_STACKS);
        if (opt->folded)
            write_folded(opt->folded, v, used);
    }
    if (opt->leaks)
        add_leak_report(report, v, used, opt, &leaks, atomic_load(&pf->header->live_dropped));
    warn_changed_files(&s, opt->run_start_ns, report);
    free_list(&l);
    md_symcache_free(&s.cache);
    md_u64map_free_owned(&s.file_names);
    return 0;
}
