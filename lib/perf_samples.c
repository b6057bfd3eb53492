// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/perf_samples.h"

#include <linux/perf_event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/probe_shared.h"
#include "lib/path.h"
#include "lib/report.h"
#include "lib/stack_scan.h"
#include "lib/symbolize.h"
#include "lib/u64map.h"

#define MAX_FRAMES 256

// ---- the raw record log -------------------------------------------------------------------

void md_perf_log_init(struct md_perf_log *l, size_t max)
{
    memset(l, 0, sizeof *l);
    l->max = max;
}

void md_perf_log_free(struct md_perf_log *l)
{
    free(l->data);
    memset(l, 0, sizeof *l);
}

static bool log_reserve(struct md_perf_log *l, size_t size)
{
    if (l->cap - l->len >= size)
        return true;
    size_t n = l->cap ? l->cap : 1 << 20;
    while (n - l->len < size)
        n *= 2;
    unsigned char *grown = realloc(l->data, n);
    if (!grown)
        return false;
    l->data = grown;
    l->cap = n;
    return true;
}

static bool is_sys_record(const struct md_perf_names *n, const void *rec, size_t size);

void md_perf_log_add(struct md_perf_log *l, const void *rec, size_t size)
{
    struct perf_event_header h;
    memcpy(&h, rec, sizeof h);
    bool sample = h.type == PERF_RECORD_SAMPLE;
    if ((sample && l->len + size > l->max) || !log_reserve(l, size)) {
        if (sample)
            l->dropped_samples++;
        else
            l->dropped_other++;
        if (sample && is_sys_record(l->names, rec, size))
            l->dropped_syscalls++;
        return;
    }
    memcpy(l->data + l->len, rec, size);
    l->len += size;
}

// ---- small hash tables --------------------------------------------------------------------

// Sample counts by function label; labels are copied.
struct counter {
    char **keys;
    uint64_t *vals;
    size_t cap, count;
};

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ULL;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static bool counter_grow(struct counter *c)
{
    struct counter bigger = {0};
    bigger.cap = c->cap ? 2 * c->cap : 256;
    bigger.keys = calloc(bigger.cap, sizeof *bigger.keys);
    bigger.vals = calloc(bigger.cap, sizeof *bigger.vals);
    if (!bigger.keys || !bigger.vals) {
        free(bigger.keys);
        free(bigger.vals);
        return false;
    }
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->keys[i])
            continue;
        size_t j = hash_str(c->keys[i]) & (bigger.cap - 1);
        while (bigger.keys[j])
            j = (j + 1) & (bigger.cap - 1);
        bigger.keys[j] = c->keys[i];
        bigger.vals[j] = c->vals[i];
    }
    bigger.count = c->count;
    free(c->keys);
    free(c->vals);
    *c = bigger;
    return true;
}

// The value of key, created as 0 when new (*created says so); NULL when out of memory.
static uint64_t *counter_slot(struct counter *c, const char *key, bool *created)
{
    *created = false;
    if (2 * (c->count + 1) > c->cap && !counter_grow(c))
        return NULL;
    size_t i = hash_str(key) & (c->cap - 1);
    while (c->keys[i] && strcmp(c->keys[i], key))
        i = (i + 1) & (c->cap - 1);
    if (!c->keys[i]) {
        c->keys[i] = strdup(key);
        if (!c->keys[i])
            return NULL;
        c->count++;
        *created = true;
    }
    return &c->vals[i];
}

static bool counter_add(struct counter *c, const char *key)
{
    bool created;
    uint64_t *v = counter_slot(c, key, &created);
    if (v)
        (*v)++;
    return v != NULL;
}

static void counter_free(struct counter *c)
{
    for (size_t i = 0; i < c->cap; i++)
        free(c->keys[i]);
    free(c->keys);
    free(c->vals);
    memset(c, 0, sizeof *c);
}

static int func_count_cmp(const void *a, const void *b)
{
    const struct md_perf_func *x = a, *y = b;
    if (x->samples != y->samples)
        return x->samples > y->samples ? -1 : 1;
    return strcmp(x->name, y->name);
}

// The top n entries of c into out, most samples first, ties by name.
static int counter_top(const struct counter *c, unsigned n, struct md_perf_func *out,
                       size_t *out_count, struct md_error *err)
{
    struct md_perf_func *all = calloc(c->count ? c->count : 1, sizeof *all);
    if (!all)
        return md_fail(err, "perf: out of memory ranking functions");
    size_t k = 0;
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->keys[i])
            continue;
        snprintf(all[k].name, sizeof all[k].name, "%s", c->keys[i]);
        all[k++].samples = c->vals[i];
    }
    qsort(all, k, sizeof *all, func_count_cmp);
    *out_count = k < n ? k : n;
    memcpy(out, all, *out_count * sizeof *out);
    free(all);
    return 0;
}

// ---- replay state -------------------------------------------------------------------------

struct mapping {
    uint64_t start, len, pgoff;
    const char *file; // inside the log
    // file is the preload probe (md_path_is_probe): found once per mapping, not per sample
    bool is_probe;
};

struct proc {
    struct mapping *maps;
    size_t count, cap;
};

struct thread {
    char comm[16];
};

// A process the static probe started the program in (its marker), and what it exec'd since: an
// exec under the same name runs the program's file again without the probe, which the probe's
// table of (pid, name) pairs cannot tell from the hooked image.
struct hooked {
    uint32_t pid;
    char comm[16];  // the process's name when the probe jumped to the program
    bool same_name; // it exec'd since, and the last exec kept that name
};

struct replay {
    const struct md_perf_names *names;
    struct md_perf_result *res;
    struct md_symcache syms;
    struct md_u64map proc_index, thread_index, alloc_memo; // -> index + 1 / memo: 1 no, 2 yes
    struct proc *procs;
    size_t proc_count, proc_cap;
    struct thread *threads;
    size_t thread_count, thread_cap;
    struct counter all, alloc;
    struct counter futex_index; // stack text -> index + 1 into res->futex_stacks
    size_t futex_stack_cap, futex_wait_cap;
    struct md_u64map tree;        // whole-CPU records: pid + 1 -> 1 while in the program's tree
    struct md_u64map sys_pending; // tid + 1 -> index + 1 into res->sys_events of its open call
    size_t sys_cap;
    // pid + 1 -> index + 1 into hooked: the processes the static probe started an image in
    struct md_u64map hooked_index;
    struct hooked *hooked;
    size_t hooked_count, hooked_cap;
    bool oom;
};

static void *grow_array(void *arr, size_t *cap, size_t count, size_t elem)
{
    if (count < *cap)
        return arr;
    size_t n = *cap ? 2 * *cap : 64;
    void *grown = realloc(arr, n * elem);
    if (grown)
        *cap = n;
    return grown;
}

// The process with this pid, created empty when unknown; NULL only when out of memory.
static struct proc *proc_get(struct replay *r, uint32_t pid)
{
    uint64_t *v = md_u64map_find(&r->proc_index, (uint64_t)pid + 1);
    if (v)
        return &r->procs[*v - 1];
    struct proc *grown = grow_array(r->procs, &r->proc_cap, r->proc_count, sizeof *grown);
    if (!grown)
        return NULL;
    r->procs = grown;
    if (!md_u64map_put(&r->proc_index, (uint64_t)pid + 1, r->proc_count + 1))
        return NULL;
    memset(&r->procs[r->proc_count], 0, sizeof *r->procs);
    return &r->procs[r->proc_count++];
}

static struct thread *thread_get(struct replay *r, uint32_t tid)
{
    uint64_t *v = md_u64map_find(&r->thread_index, (uint64_t)tid + 1);
    if (v)
        return &r->threads[*v - 1];
    struct thread *grown = grow_array(r->threads, &r->thread_cap, r->thread_count, sizeof *grown);
    if (!grown)
        return NULL;
    r->threads = grown;
    if (!md_u64map_put(&r->thread_index, (uint64_t)tid + 1, r->thread_count + 1))
        return NULL;
    memset(&r->threads[r->thread_count], 0, sizeof *r->threads);
    return &r->threads[r->thread_count++];
}

static bool proc_add_map(struct proc *p, const struct mapping *m)
{
    struct mapping *grown = grow_array(p->maps, &p->cap, p->count, sizeof *grown);
    if (!grown)
        return false;
    p->maps = grown;
    p->maps[p->count++] = *m;
    return true;
}

// Newest mapping first: a later mmap over the same addresses replaces the earlier one.
static const struct mapping *proc_find_map(const struct proc *p, uint64_t ip)
{
    for (size_t i = p->count; i-- > 0;)
        if (ip >= p->maps[i].start && ip - p->maps[i].start < p->maps[i].len)
            return &p->maps[i];
    return NULL;
}

// ---- records ------------------------------------------------------------------------------

// Bodies as the kernel writes them with sample_id_all; sample_id (pid, tid, time, identifier) is
// the last 24 bytes of every non-sample record.
#define SAMPLE_ID_BYTES 24
struct rec_comm {
    uint32_t pid, tid;
    char comm[];
};

struct rec_fork {
    uint32_t pid, ppid, tid, ptid;
    uint64_t time;
};

struct rec_mmap2 {
    uint32_t pid, tid;
    uint64_t addr, len, pgoff;
    uint32_t maj, min;
    uint64_t ino, ino_generation;
    uint32_t prot, flags;
    char filename[];
};

// The static probe's marker: pid now runs the program hooked, under its thread's current name
// (the probe named it after the program just before).
static void hooked_start(struct replay *r, uint32_t pid, uint32_t tid)
{
    uint64_t *at = md_u64map_find(&r->hooked_index, (uint64_t)pid + 1);
    if (!at) {
        struct hooked *grown =
            grow_array(r->hooked, &r->hooked_cap, r->hooked_count, sizeof *grown);
        if (!grown) {
            r->oom = true;
            return;
        }
        r->hooked = grown; // grow_array has freed the old array: kept before anything can fail
        if (!md_u64map_put(&r->hooked_index, (uint64_t)pid + 1, r->hooked_count + 1)) {
            r->oom = true;
            return;
        }
        at = md_u64map_find(&r->hooked_index, (uint64_t)pid + 1);
        r->hooked_count++;
    }
    struct hooked *e = &r->hooked[*at - 1];
    const struct thread *t = thread_get(r, tid);
    *e = (struct hooked){.pid = pid};
    if (t)
        memcpy(e->comm, t->comm, sizeof e->comm);
}

// An exec of pid: when the static probe had started the program in it, the new image runs
// without the probe unless it is the probe again (which sends its own marker).
static void hooked_exec(struct replay *r, uint32_t pid, const char *comm)
{
    uint64_t *at = md_u64map_find(&r->hooked_index, (uint64_t)pid + 1);
    if (!at)
        return;
    struct hooked *e = &r->hooked[*at - 1];
    e->same_name = !strncmp(e->comm, comm, sizeof e->comm);
}

// The processes whose last image came from an exec, under the name of the image the static
// probe hooked before it: res->unhooked_execs (malloc'd).
static void hooked_collect(struct replay *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->hooked_count; i++)
        n += r->hooked[i].same_name;
    if (!n)
        return;
    r->res->unhooked_execs = malloc(n * sizeof *r->res->unhooked_execs);
    if (!r->res->unhooked_execs) {
        r->oom = true;
        return;
    }
    for (size_t i = 0; i < r->hooked_count; i++)
        if (r->hooked[i].same_name)
            r->res->unhooked_execs[r->res->unhooked_exec_count++] = (int32_t)r->hooked[i].pid;
}

// An exec of pid at time (the COMM record's, written once the exec could no longer fail and
// before the new image ran): res->execs.
static void note_exec(struct replay *r, uint32_t pid, uint64_t time)
{
    struct md_perf_result *res = r->res;
    struct md_exec_event *grown =
        grow_array(res->execs, &res->exec_cap, res->exec_count, sizeof *grown);
    if (!grown) {
        r->oom = true;
        return;
    }
    res->execs = grown;
    res->execs[res->exec_count++] = (struct md_exec_event){.pid = (int32_t)pid, .ts_ns = time};
}

static uint64_t record_time(const struct perf_event_header *h, const unsigned char *rec)
{
    uint64_t t = 0;
    if (h->type == PERF_RECORD_SAMPLE && h->size >= sizeof *h + 32)
        memcpy(&t, rec + sizeof *h + 24, sizeof t); // after identifier, ip and pid/tid
    else if (h->type != PERF_RECORD_SAMPLE && h->size >= sizeof *h + 24)
        memcpy(&t, rec + h->size - 16, sizeof t); // sample_id: pid/tid, time, identifier
    return t;
}

static void on_comm(struct replay *r, const struct perf_event_header *h, const unsigned char *body)
{
    struct rec_comm c;
    if (h->size < sizeof *h + sizeof c + SAMPLE_ID_BYTES)
        return;
    memcpy(&c, body, sizeof c);
    size_t room = h->size - sizeof *h - sizeof c - SAMPLE_ID_BYTES;
    struct thread *t = thread_get(r, c.tid);
    if (!t) {
        r->oom = true;
        return;
    }
    size_t n = strnlen((const char *)body + sizeof c, room);
    if (n >= sizeof t->comm)
        n = sizeof t->comm - 1;
    memcpy(t->comm, body + sizeof c, n);
    t->comm[n] = 0;
    if (!(h->misc & PERF_RECORD_MISC_COMM_EXEC))
        return;
    // exec replaced the address space: the old mappings are gone
    struct proc *p = proc_get(r, c.pid);
    if (p)
        p->count = 0;
    if (c.pid == c.tid)
        hooked_exec(r, c.pid, t->comm);
    note_exec(r, c.pid, record_time(h, body - sizeof *h));
}

static void on_fork(struct replay *r, const unsigned char *body)
{
    struct rec_fork f;
    memcpy(&f, body, sizeof f);
    struct thread *parent = thread_get(r, f.ptid);
    char comm[16] = {0}; // a parent never seen (enabled before its COMM) has no name
    if (parent)
        memcpy(comm, parent->comm, sizeof comm);
    struct thread *child = thread_get(r, f.tid);
    if (!child) {
        r->oom = true;
        return;
    }
    memcpy(child->comm, comm, sizeof comm);
    if (f.pid == f.ppid)
        return; // a thread shares its process's mappings
    // fork copies the address space without new MMAP records
    struct proc *pp = proc_get(r, f.ppid);
    size_t parent_index = pp ? (size_t)(pp - r->procs) : 0;
    struct proc *cp = proc_get(r, f.pid); // may move r->procs
    if (!pp || !cp) {
        r->oom = true;
        return;
    }
    pp = &r->procs[parent_index];
    cp->count = 0;
    for (size_t i = 0; i < pp->count && !r->oom; i++)
        r->oom = !proc_add_map(cp, &pp->maps[i]);
}

static void on_mmap2(struct replay *r, const struct perf_event_header *h, const unsigned char *body)
{
    struct rec_mmap2 m;
    if (h->size < sizeof *h + sizeof m + SAMPLE_ID_BYTES)
        return;
    memcpy(&m, body, sizeof m);
    const char *file = (const char *)body + sizeof m;
    size_t room = h->size - sizeof *h - sizeof m - SAMPLE_ID_BYTES;
    if (!memchr(file, 0, room))
        return;
    struct proc *p = proc_get(r, m.pid);
    struct mapping map = {m.addr, m.len, m.pgoff, file, md_path_is_probe(file)};
    if (!p || !proc_add_map(p, &map))
        r->oom = true;
}

// ---- samples ------------------------------------------------------------------------------

struct frame_name {
    const struct md_func_sym *func; // NULL when unknown
    size_t aliases;
    char label[MD_PERF_NAME_MAX];
};

// Names the function at ip in process p; return addresses (not the leaf) are looked up at ip - 1
// because a call may be the last instruction of its function.
static void name_frame(struct replay *r, const struct proc *p, uint64_t ip, bool leaf,
                       struct frame_name *out)
{
    out->func = NULL;
    out->aliases = 0;
    snprintf(out->label, sizeof out->label, "[unknown]");
    const struct mapping *m = p ? proc_find_map(p, leaf ? ip : ip - 1) : NULL;
    if (!m)
        return;
    uint64_t offset = (leaf ? ip : ip - 1) - m->start + m->pgoff;
    if (m->file[0] == '/')
        out->func = md_symbolize(&r->syms, m->file, offset, &out->aliases);
    if (out->func)
        snprintf(out->label, sizeof out->label, "%s", md_symcache_shown_name(&r->syms, out->func));
    else if (m->file[0] == '[')
        snprintf(out->label, sizeof out->label, "%s", m->file); // [vdso]
    else
        snprintf(out->label, sizeof out->label, "[%s]", md_path_base_name(m->file));
}

static bool func_is_alloc(struct replay *r, const struct md_func_sym *f, size_t aliases)
{
    uint64_t *memo = md_u64map_find(&r->alloc_memo, (uint64_t)(uintptr_t)f);
    if (memo)
        return *memo == 2;
    bool yes = false;
    for (size_t i = 0; i < aliases && !yes; i++)
        yes = md_perf_name_in(f[i].name, r->names->api) ||
              (r->names->internal && md_perf_name_in(f[i].name, r->names->internal));
    md_u64map_put(&r->alloc_memo, (uint64_t)(uintptr_t)f, yes ? 2 : 1);
    return yes;
}

// The user-space part of a callchain: entries after PERF_CONTEXT_USER, up to the next marker.
static size_t user_frames(const uint64_t *chain, size_t nr, uint64_t *out)
{
    size_t k = 0;
    bool user = false;
    for (size_t i = 0; i < nr && k < MAX_FRAMES; i++) {
        if (chain[i] >= (uint64_t)PERF_CONTEXT_MAX) {
            user = chain[i] == (uint64_t)PERF_CONTEXT_USER;
            continue;
        }
        if (user)
            out[k++] = chain[i];
    }
    return k;
}

// A uprobe hit traps into the kernel (int3, then a single step in the "[uprobes]" page unless the
// instruction is emulated), costing far more than a malloc. Samples taken in the kernel while the
// user ip is the breakpoint (offset or offset + 1, after the int3) or in that page are the
// measurement's own cost: counted apart, left out of the program's total.
static bool in_uprobe_handling(const struct replay *r, const struct proc *p, uint64_t ip)
{
    const struct mapping *m = p ? proc_find_map(p, ip) : NULL;
    if (!m)
        return false;
    if (!strcmp(m->file, "[uprobes]"))
        return true;
    uint64_t offset = ip - m->start + m->pgoff;
    for (size_t i = 0; i < r->names->probe_count; i++)
        if ((offset == r->names->probe_offsets[i] || offset == r->names->probe_offsets[i] + 1) &&
            !strcmp(m->file, r->names->probe_paths[i]))
            return true;
    return false;
}

// A sample in the preload probe's own code (counting a call, recording a stack): the
// measurement's cost, not the program's nor its allocator's, though a probe function sits under
// the probe's `malloc`.
static bool in_probe_code(const struct proc *p, uint64_t ip)
{
    const struct mapping *m = p ? proc_find_map(p, ip) : NULL;
    return m && m->is_probe;
}

struct sample {
    uint64_t id, ip;
    uint32_t pid, tid;
    uint64_t time, nr;
};

// Whether ip lies in the library that is all allocator (md_perf_names.alloc_library): an
// allocator the signature table does not know names none of its functions, and one built without
// frame pointers (as Debian builds them) leaves its entry point off the callchain of a sample in
// its inner functions.
static bool in_alloc_library(const struct replay *r, const struct proc *p, uint64_t ip)
{
    const struct mapping *m = r->names->alloc_library && p ? proc_find_map(p, ip) : NULL;
    return m && !strcmp(m->file, r->names->alloc_library);
}

// Whether ip lies in the libc whose own allocator serves malloc (md_perf_names.libc_library).
static bool in_libc_library(const struct replay *r, const struct proc *p, uint64_t ip)
{
    const struct mapping *m = r->names->libc_library && p ? proc_find_map(p, ip) : NULL;
    return m && !strcmp(m->file, r->names->libc_library);
}

static void count_sample(struct replay *r, const struct proc *p, const uint64_t *frames, size_t n)
{
    struct frame_name leaf;
    name_frame(r, p, frames[0], true, &leaf);
    bool in_alloc = (leaf.func && func_is_alloc(r, leaf.func, leaf.aliases)) ||
                    in_alloc_library(r, p, frames[0]);
    for (size_t i = 1; i < n && !in_alloc; i++) {
        struct frame_name caller;
        name_frame(r, p, frames[i], false, &caller);
        in_alloc = (caller.func && func_is_alloc(r, caller.func, caller.aliases)) ||
                   in_alloc_library(r, p, frames[i] - 1);
    }
    r->res->samples_unknown += !leaf.func;
    // musl's libc.so names only its exported functions: mallocng's inner ones (which keep no
    // frame pointer, so malloc is not on their callchain) show as unnamed libc code
    r->res->samples_unnamed_libc += !leaf.func && !in_alloc && in_libc_library(r, p, frames[0]);
    r->res->samples_alloc += in_alloc;
    if (!counter_add(&r->all, leaf.label) || (in_alloc && !counter_add(&r->alloc, leaf.label)))
        r->oom = true;
}

// ---- futex waits --------------------------------------------------------------------------

// One frame of a futex wait's stack: where it is, and its text.
struct scan_frame {
    const struct md_symtab *t;
    const struct md_func_sym *f;
    size_t aliases;  // entries from f on at the same address
    uint64_t offset; // of the return address (of the ip for the leaf) in t's file
    bool in_probe;   // in the preload probe's code: the measurement's frame
    bool sure_link;  // its call provably enters the frame kept inside it (md_call_reach)
    char label[MD_PERF_NAME_MAX + 64]; // "function (object)"
};

// The function at ip (a return address unless leaf); false when ip is in no known file or no
// function of it.
static bool scan_frame_at(struct replay *r, const struct proc *p, uint64_t ip, bool leaf,
                          struct scan_frame *out)
{
    uint64_t at = leaf ? ip : ip - 1;
    const struct mapping *m = p && ip > 4096 ? proc_find_map(p, at) : NULL;
    if (!m || m->file[0] != '/')
        return false;
    out->t = md_symcache_get(&r->syms, m->file);
    out->offset = ip - m->start + m->pgoff;
    out->in_probe = m->is_probe;
    uint64_t addr;
    if (!out->t || !md_symtab_offset_to_addr(out->t, at - m->start + m->pgoff, &addr))
        return false;
    out->f = md_symtab_find(out->t, addr, &out->aliases);
    if (!out->f)
        return false;
    snprintf(out->label, sizeof out->label, "%s (%s)", md_symcache_shown_name(&r->syms, out->f),
             md_path_base_name(m->file));
    return true;
}

// Whether the stack word w is a return address in p: a function's code, after a call.
static bool return_address_frame(struct replay *r, const struct proc *p, uint64_t w,
                                 struct scan_frame *out)
{
    return scan_frame_at(r, p, w, false, out) && md_follows_call(out->t, out->offset);
}

static enum md_reach frame_reach(const struct scan_frame *outer, const struct scan_frame *inner)
{
    return md_call_reach(outer->t, outer->offset, inner->t, inner->f);
}

// The outermost frame of a thread or process: what the stack copy holds beyond it is not a frame.
static bool is_root_frame(const struct scan_frame *f)
{
    static const char *const roots[] = {"_start", "clone", "clone3", "__clone", NULL};
    return md_perf_name_in(f->f->name, roots);
}

// main is called only by libc's start code, through a pointer (which cannot be checked as a
// direct call can): above it on the stack, return addresses of anything else are slots left
// from the start code's earlier calls (musl: __init_libc -> __init_ssp -> memcpy), which the
// held-frame rule would take for a missed frame, as each calls the next.
static bool stale_above_main(const struct scan_frame *inner, const struct scan_frame *candidate)
{
    static const char *const main_callers[] = {"__libc_start_main",
                                               "__libc_start_call_main",
                                               "libc_start_main_stage2",
                                               "_start_c",
                                               "_start",
                                               NULL};
    return !strcmp(inner->f->name, "main") && !md_perf_name_in(candidate->f->name, main_callers);
}

// One frame of a wait's stack into its text: whether it shows the wait inside the allocator. The
// preload probe's frames are not shown (the measurement's, as in the allocation stacks), but
// one of its allocator wrappers on the stack (an entry point or a slow path; not its dlopen or
// prctl) puts the wait inside an allocator call, also where the allocator's own functions have
// no names (musl's stripped libc.so).
static bool add_wait_frame(struct replay *r, const struct scan_frame *f, char *text, size_t size,
                           size_t *len, size_t *frames)
{
    static const char *const slow_paths[] = MD_PROBE_SLOW_PATHS;
    if (f->in_probe)
        return md_perf_name_in(f->f->name, slow_paths) || func_is_alloc(r, f->f, f->aliases);
    md_lines_append(text, size, len, f->label);
    (*frames)++;
    return func_is_alloc(r, f->f, f->aliases);
}

// A candidate whose call cannot enter the outermost frame kept so far, but provably enters one
// further in, frames[at], whose link to the frame kept outside it is not proven: those frames
// were a chain of stale return addresses left by an earlier call, each plausible after the other
// (musl's free and its callees below a function that reserved their region and then waited), and
// the candidate is the real caller. A proven link is never cut for one: a stale slot of a call
// made earlier from the same caller (drain() then F(), both calling the waiting function) would
// replace F. Returns at + 1, or 0.
static size_t called_frame_below(const struct scan_frame *candidate,
                                 const struct scan_frame *frames, size_t count)
{
    for (size_t at = count - 1; at-- > 0;)
        if (!frames[at + 1].sure_link && frame_reach(candidate, &frames[at]) == MD_REACH_SURELY)
            return at + 1;
    return 0;
}

// The frames of one wait's stack, innermost first, into frames (at most max): the leaf (where the
// syscall was made; *leaf_known false when it is in no known function), then the return
// addresses found in the copied stack. A candidate whose call cannot lead to the frame inside it
// is a stale slot and is held back; if the next candidate's call leads to it, a real frame was
// missed in between and both are kept. A candidate that provably calls a frame further in may
// cut the frames kept since then (called_frame_below). Returns the number of frames.
static size_t futex_stack_frames(struct replay *r, const struct proc *p, uint64_t leaf,
                                 const unsigned char *stack, size_t bytes,
                                 struct scan_frame *frames, size_t max, bool *leaf_known)
{
    struct scan_frame candidate, held;
    bool holding = false;
    *leaf_known = scan_frame_at(r, p, leaf, true, &frames[0]);
    size_t n = *leaf_known;
    for (size_t off = 0; p && off + 8 <= bytes && n < max; off += 8) {
        uint64_t w;
        memcpy(&w, stack + off, sizeof w);
        if (!return_address_frame(r, p, w, &candidate) ||
            (n && stale_above_main(&frames[n - 1], &candidate)))
            continue;
        enum md_reach reach = n ? frame_reach(&candidate, &frames[n - 1]) : MD_REACH_MAYBE;
        if (reach == MD_REACH_NO) {
            size_t cut = called_frame_below(&candidate, frames, n);
            if (cut) {
                n = cut, reach = MD_REACH_SURELY;
            } else if (!holding || (reach = frame_reach(&candidate, &held)) == MD_REACH_NO) {
                held = candidate, holding = true;
                continue;
            } else {
                held.sure_link = false;
                frames[n++] = held;
                if (n == max)
                    break;
            }
        }
        holding = false;
        candidate.sure_link = reach == MD_REACH_SURELY;
        frames[n++] = candidate;
        if (is_root_frame(&candidate))
            break;
    }
    return n;
}

// One wait's stack as text, up to MD_PERF_FUTEX_FRAMES shown frames (the probe's are not shown);
// returns whether a frame is an allocator function.
static bool futex_stack_text(struct replay *r, const struct proc *p, uint64_t leaf,
                             const unsigned char *stack, size_t bytes, char *text, size_t size)
{
    // room for the probe's frames, which are not shown, besides the shown ones
    struct scan_frame frames[MD_PERF_FUTEX_FRAMES + 8];
    bool leaf_known, in_alloc = false;
    size_t n = futex_stack_frames(r, p, leaf, stack, bytes, frames,
                                  sizeof frames / sizeof frames[0], &leaf_known);
    size_t len = 0, shown = 0;
    text[0] = 0;
    if (!leaf_known)
        md_lines_append(text, size, &len, "[unknown]"), shown++;
    for (size_t i = 0; i < n && shown < MD_PERF_FUTEX_FRAMES; i++)
        in_alloc |= add_wait_frame(r, &frames[i], text, size, &len, &shown);
    if (!len) // only the probe's frames
        md_lines_append(text, size, &len, "[unknown]");
    return in_alloc;
}

static void futex_count(struct replay *r, const char *text, bool in_alloc, uint32_t tid,
                        uint64_t time)
{
    struct md_perf_result *res = r->res;
    bool created;
    uint64_t *index = counter_slot(&r->futex_index, text, &created);
    if (!index) {
        r->oom = true;
        return;
    }
    if (created) {
        struct md_perf_futex_stack *grown = grow_array(res->futex_stacks, &r->futex_stack_cap,
                                                       res->futex_stack_count, sizeof *grown);
        char *copy = strdup(text);
        if (grown)
            res->futex_stacks = grown;
        if (!grown || !copy) {
            free(copy);
            r->oom = true;
            return;
        }
        res->futex_stacks[res->futex_stack_count] = (struct md_perf_futex_stack){copy, 0, in_alloc};
        *index = ++res->futex_stack_count;
    }
    res->futex_stacks[*index - 1].waits++;
    struct md_perf_futex_wait *waits =
        grow_array(res->futex_waits, &r->futex_wait_cap, res->futex_wait_count, sizeof *waits);
    if (!waits) {
        r->oom = true;
        return;
    }
    res->futex_waits = waits;
    waits[res->futex_wait_count++] = (struct md_perf_futex_wait){tid, time, *index - 1};
}

static bool is_futex_event(const struct replay *r, uint64_t id)
{
    for (size_t i = 0; i < r->names->futex_id_count; i++)
        if (r->names->futex_ids[i] == id)
            return true;
    return false;
}

// A futex wait sample: the sample header, the callchain (its first user entry is where the
// syscall was made), then the user stack copy (size, bytes, dyn_size: how many were filled).
static void on_futex_sample(struct replay *r, const struct sample *s, const unsigned char *body,
                            size_t body_size)
{
    struct thread *t = thread_get(r, s->tid);
    if (t && !strcmp(t->comm, "strace")) {
        r->res->futex_excluded++;
        return;
    }
    uint64_t chain[MAX_FRAMES], frames[MAX_FRAMES], size = 0, filled = 0;
    size_t nr = s->nr < MAX_FRAMES ? (size_t)s->nr : MAX_FRAMES;
    memcpy(chain, body + sizeof *s, nr * sizeof *chain);
    size_t n = user_frames(chain, nr, frames);
    size_t at = sizeof *s + (size_t)s->nr * sizeof *chain;
    if (at + 8 <= body_size)
        memcpy(&size, body + at, 8);
    if (size && at + 16 + size <= body_size)
        memcpy(&filled, body + at + 8 + size, 8);
    if (filled > size)
        filled = size;
    uint64_t *pv = md_u64map_find(&r->proc_index, (uint64_t)s->pid + 1);
    const struct proc *p = pv ? &r->procs[*pv - 1] : NULL;
    char text[MD_PERF_FUTEX_FRAMES * (MD_PERF_NAME_MAX + 64)];
    bool in_alloc =
        futex_stack_text(r, p, n ? frames[0] : 0, body + at + 8, (size_t)filled, text, sizeof text);
    futex_count(r, text, in_alloc, s->tid, s->time);
}

// ---- syscalls ----------------------------------------------------------------------------

static bool id_in(uint64_t id, const uint64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

static bool is_sys_id(const struct md_perf_names *n, uint64_t id)
{
    return n && (id_in(id, n->sys_enter_ids, n->sys_id_count) ||
                 id_in(id, n->sys_exit_ids, n->sys_id_count));
}

// Whether a whole sample record (header first) is one of the syscall events'.
static bool is_sys_record(const struct md_perf_names *n, const void *rec, size_t size)
{
    uint64_t id;
    if (!n || size < sizeof(struct perf_event_header) + sizeof id)
        return false;
    memcpy(&id, (const unsigned char *)rec + sizeof(struct perf_event_header), sizeof id);
    return is_sys_id(n, id);
}

// A raw_syscalls record (MD_PERF_SYS_SAMPLE_TYPE) after the header: identifier, ip, pid/tid,
// time, then the raw size and the tracepoint's record.
struct sys_sample {
    uint64_t id, ip;
    uint32_t pid, tid;
    uint64_t time;
    uint32_t raw_size;
};
#define SYS_RAW_AT (sizeof(uint64_t) * 4 + sizeof(uint32_t)) // where the raw record starts

// The thread's syscalls so far were not the program's: they become tombstones (sys ==
// MD_SYS_COUNT), removed after the replay, so that the indices of open calls stay valid.
static void sys_drop_thread(struct replay *r, uint32_t tid)
{
    struct md_perf_result *res = r->res;
    for (size_t i = 0; i < res->sys_event_count; i++)
        if (res->sys_events[i].tid == (int32_t)tid && res->sys_events[i].sys != MD_SYS_COUNT) {
            res->sys_events[i].sys = MD_SYS_COUNT;
            res->sys_probe_own++;
        }
    uint64_t *open = md_u64map_find(&r->sys_pending, (uint64_t)tid + 1);
    if (open)
        *open = 0;
}

static void sys_remove_tombstones(struct md_perf_result *res)
{
    size_t kept = 0;
    for (size_t i = 0; i < res->sys_event_count; i++)
        if (res->sys_events[i].sys != MD_SYS_COUNT)
            res->sys_events[kept++] = res->sys_events[i];
    res->sys_event_count = kept;
}

static void sys_enter(struct replay *r, const struct sys_sample *s, enum md_sys sys,
                      const unsigned char *raw, size_t raw_size)
{
    struct md_perf_result *res = r->res;
    struct md_sys_event *grown =
        grow_array(res->sys_events, &r->sys_cap, res->sys_event_count, sizeof *grown);
    if (!grown) {
        r->oom = true;
        return;
    }
    res->sys_events = grown;
    uint64_t args[6] = {0};
    size_t at = r->names->sys_args_at;
    if (raw_size >= at + sizeof args)
        memcpy(args, raw + at, sizeof args);
    if (sys == MD_SYS_MADVISE && r->names->sys_marker && args[0] == r->names->sys_marker &&
        args[1] == 0) {
        sys_drop_thread(r, s->tid);
        hooked_start(r, s->pid, s->tid);
        return;
    }
    int length_arg = md_sys_length_arg(sys);
    struct md_sys_event e = {
        .tid = (int32_t)s->tid, .pid = (int32_t)s->pid, .sys = sys, .ts_ns = s->time};
    e.length = length_arg >= 0 ? args[length_arg] : 0;
    e.address = md_sys_address_arg(sys) ? args[0] : 0;
    e.futex_wait = sys == MD_SYS_FUTEX && md_sys_futex_op_blocks((uint32_t)args[1]); // an int
    res->sys_events[res->sys_event_count++] = e;
    // an earlier call of the thread still open lost its exit record: it stays unfinished
    if (!md_u64map_put(&r->sys_pending, (uint64_t)s->tid + 1, res->sys_event_count))
        r->oom = true;
}

static void sys_exit(struct replay *r, const struct sys_sample *s, enum md_sys sys,
                     const unsigned char *raw, size_t raw_size)
{
    uint64_t *open = md_u64map_find(&r->sys_pending, (uint64_t)s->tid + 1);
    if (!open || !*open)
        return; // entered before the events were enabled, or its entry was lost
    struct md_sys_event *e = &r->res->sys_events[*open - 1];
    *open = 0;
    if (e->sys != sys)
        return;
    int64_t ret = 0;
    size_t at = r->names->sys_ret_at;
    if (raw_size >= at + sizeof ret)
        memcpy(&ret, raw + at, sizeof ret);
    e->finished = true;
    e->failed = ret < 0 && ret >= -4095;
    if (sys == MD_SYS_MMAP && !e->failed)
        e->address = (uint64_t)ret;
    if (sys == MD_SYS_BRK && !e->failed)
        e->brk_after = (uint64_t)ret;
    e->dur_ns = s->time > e->ts_ns ? s->time - e->ts_ns : 0;
}

// Whether the sample is a syscall record; if so it is taken into res->sys_events.
static bool on_sys_sample(struct replay *r, const unsigned char *body, size_t body_size)
{
    const struct md_perf_names *n = r->names;
    struct sys_sample s;
    if (!n->sys_id_count || body_size < sizeof s)
        return false;
    memcpy(&s, body, sizeof s);
    if (!is_sys_id(n, s.id))
        return false;
    bool enter = id_in(s.id, n->sys_enter_ids, n->sys_id_count);
    const unsigned char *raw = body + SYS_RAW_AT;
    size_t raw_size = s.raw_size < body_size - SYS_RAW_AT ? s.raw_size : body_size - SYS_RAW_AT;
    int64_t nr = -1;
    if (raw_size >= n->sys_nr_at + sizeof nr)
        memcpy(&nr, raw + n->sys_nr_at, sizeof nr);
    int sys = md_sys_from_number((long)nr);
    if (sys < 0)
        return true; // the filter lets none through; a kernel without it would
    if (enter)
        sys_enter(r, &s, (enum md_sys)sys, raw, raw_size);
    else
        sys_exit(r, &s, (enum md_sys)sys, raw, raw_size);
    return true;
}

static void on_sample(struct replay *r, const struct perf_event_header *h,
                      const unsigned char *body)
{
    struct sample s;
    size_t body_size = h->size - sizeof *h;
    if (on_sys_sample(r, body, body_size) || body_size < sizeof s)
        return;
    memcpy(&s, body, sizeof s);
    if (s.nr > (body_size - sizeof s) / sizeof(uint64_t))
        return; // corrupt; cannot happen with the kernel's own records
    if (is_futex_event(r, s.id)) {
        on_futex_sample(r, &s, body, body_size);
        return;
    }
    struct thread *t = thread_get(r, s.tid);
    if (t && !strcmp(t->comm, "strace")) {
        r->res->samples_excluded++;
        return;
    }
    bool kernel = (h->misc & PERF_RECORD_MISC_CPUMODE_MASK) == PERF_RECORD_MISC_KERNEL;
    uint64_t chain[MAX_FRAMES], frames[MAX_FRAMES];
    size_t nr = s.nr < MAX_FRAMES ? (size_t)s.nr : MAX_FRAMES;
    memcpy(chain, body + sizeof s, nr * sizeof *chain);
    size_t n = user_frames(chain, nr, frames);
    if (n == 0 && !kernel) // no callchain at all: the sampled ip is the only frame
        frames[n++] = s.ip;
    uint64_t *pv = md_u64map_find(&r->proc_index, (uint64_t)s.pid + 1);
    const struct proc *p = pv ? &r->procs[*pv - 1] : NULL;
    if (kernel && n && in_uprobe_handling(r, p, frames[0])) {
        r->res->samples_uprobe++;
        return;
    }
    if (n && in_probe_code(p, frames[0])) {
        r->res->samples_probe++;
        return;
    }
    r->res->samples_total++;
    r->res->samples_kernel += kernel;
    if (n)
        count_sample(r, p, frames, n);
    else if (!counter_add(&r->all, "[kernel]"))
        r->oom = true;
}

// ---- the program's tree, when whole CPUs were sampled ---------------------------------------

// The tree maps pid + 1 to the process's live threads: it is a member while it has any.
static bool in_tree(struct replay *r, uint32_t pid)
{
    uint64_t *v = md_u64map_find(&r->tree, (uint64_t)pid + 1);
    return v && *v;
}

// A thread joins: the first of a new process (its count starts again: a pid may be reused), or
// one more of a member.
static void tree_add_thread(struct replay *r, uint32_t pid, bool new_process)
{
    uint64_t *v = md_u64map_find(&r->tree, (uint64_t)pid + 1);
    if (v)
        *v = new_process ? 1 : *v + 1;
    else if (!md_u64map_put(&r->tree, (uint64_t)pid + 1, 1))
        r->oom = true;
}

static void tree_end_thread(struct replay *r, uint32_t pid)
{
    uint64_t *v = md_u64map_find(&r->tree, (uint64_t)pid + 1);
    if (v && *v)
        (*v)--;
}

// Whether a record of whole-CPU sampling is the program's. The root joins the tree at its exec
// (before, it is the tool's child), a process forked by a member joins, and a process whose last
// thread exits leaves (its pid may be reused by anyone; its main thread may end before the
// others). Records come in time order (index_log), so a fork is seen before its child's first
// record. The syscall and futex events are per task and inherited by the tree only: kept.
static bool keep_record(struct replay *r, const struct perf_event_header *h,
                        const unsigned char *body)
{
    uint32_t root = (uint32_t)r->names->system_wide_root;
    if (!root)
        return true;
    size_t size = h->size - sizeof *h;
    struct rec_fork f;
    uint32_t pid;
    uint64_t id;
    switch (h->type) {
    case PERF_RECORD_SAMPLE: // id, ip, then pid
        if (size < sizeof(struct sample))
            return false;
        memcpy(&id, body, sizeof id);
        if (is_sys_id(r->names, id) || is_futex_event(r, id))
            return true;
        memcpy(&pid, body + 16, sizeof pid);
        return in_tree(r, pid);
    case PERF_RECORD_COMM:
    case PERF_RECORD_MMAP2:
        if (size < sizeof pid)
            return false;
        memcpy(&pid, body, sizeof pid);
        if (h->type == PERF_RECORD_COMM && pid == root && (h->misc & PERF_RECORD_MISC_COMM_EXEC) &&
            !in_tree(r, pid))
            tree_add_thread(r, pid, true);
        return in_tree(r, pid);
    case PERF_RECORD_FORK:
    case PERF_RECORD_EXIT:
        if (size < sizeof f)
            return false;
        memcpy(&f, body, sizeof f);
        if (!in_tree(r, f.ppid) && !in_tree(r, f.pid))
            return false;
        if (h->type == PERF_RECORD_FORK)
            tree_add_thread(r, f.pid, f.pid == f.tid);
        else
            tree_end_thread(r, f.pid);
        return true;
    default: // lost samples, throttling: of the whole CPU, the program's among them
        return true;
    }
}

// The kernel counts lost records per ring and names the event that writes the next record, not
// the one that lost them: a ring the syscall events share with others may have lost syscalls
// whichever event the record names. So with syscalls recorded every loss counts against them
// too (a warning that errs on the safe side).
static void on_lost(struct replay *r, const unsigned char *body)
{
    uint64_t lost;
    memcpy(&lost, body + 8, sizeof lost);
    r->res->samples_lost += lost;
    if (r->names->sys_id_count)
        r->res->sys_lost += lost;
}

static void on_exit_record(struct replay *r, const unsigned char *body)
{
    struct rec_fork f;
    memcpy(&f, body, sizeof f);
    r->res->process_exits += f.pid == f.tid;
}

static void on_record(struct replay *r, const struct perf_event_header *h,
                      const unsigned char *body)
{
    if (!keep_record(r, h, body))
        return;
    uint64_t lost;
    switch (h->type) {
    case PERF_RECORD_SAMPLE:
        on_sample(r, h, body);
        break;
    case PERF_RECORD_COMM:
        on_comm(r, h, body);
        break;
    case PERF_RECORD_FORK:
        if (h->size >= sizeof *h + sizeof(struct rec_fork))
            on_fork(r, body);
        break;
    case PERF_RECORD_MMAP2:
        on_mmap2(r, h, body);
        break;
    case PERF_RECORD_LOST: // id, lost
        if (h->size >= sizeof *h + 16)
            on_lost(r, body);
        break;
    case PERF_RECORD_EXIT:
        if (h->size >= sizeof *h + sizeof(struct rec_fork))
            on_exit_record(r, body);
        break;
    case PERF_RECORD_LOST_SAMPLES:
        if (h->size >= sizeof *h + 8) {
            memcpy(&lost, body, sizeof lost);
            r->res->samples_lost += lost;
        }
        break;
    case PERF_RECORD_THROTTLE:
        r->res->throttled++;
        break;
    default:
        break;
    }
}

// ---- ordering -----------------------------------------------------------------------------

struct rec_ref {
    uint64_t time;
    size_t offset; // into the log; also the tie-break, which keeps arrival order
};

static int ref_cmp(const void *a, const void *b)
{
    const struct rec_ref *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int index_log(const struct md_perf_log *l, struct rec_ref **out, size_t *count,
                     struct md_error *err)
{
    size_t n = 0, cap = 1024;
    struct rec_ref *refs = malloc(cap * sizeof *refs);
    for (size_t off = 0; refs && off + sizeof(struct perf_event_header) <= l->len;) {
        struct perf_event_header h;
        memcpy(&h, l->data + off, sizeof h);
        if (h.size < sizeof h || h.size > l->len - off)
            break; // the log only holds whole records, so this is not reached
        if (n == cap) {
            struct rec_ref *grown = realloc(refs, 2 * cap * sizeof *refs);
            if (!grown) {
                free(refs);
                refs = NULL;
                break;
            }
            refs = grown;
            cap *= 2;
        }
        refs[n++] = (struct rec_ref){record_time(&h, l->data + off), off};
        off += h.size;
    }
    if (!refs)
        return md_fail(err, "perf: out of memory sorting %zu bytes of samples", l->len);
    qsort(refs, n, sizeof *refs, ref_cmp);
    *out = refs;
    *count = n;
    return 0;
}

static void replay_free(struct replay *r)
{
    md_symcache_free(&r->syms);
    md_u64map_free(&r->proc_index);
    md_u64map_free(&r->thread_index);
    md_u64map_free(&r->alloc_memo);
    md_u64map_free(&r->tree);
    md_u64map_free(&r->sys_pending);
    for (size_t i = 0; i < r->proc_count; i++)
        free(r->procs[i].maps);
    free(r->procs);
    free(r->threads);
    free(r->hooked);
    md_u64map_free(&r->hooked_index);
    counter_free(&r->all);
    counter_free(&r->alloc);
    counter_free(&r->futex_index);
}

int md_perf_replay(const struct md_perf_log *l, const struct md_perf_names *names,
                   struct md_perf_result *res, struct md_error *err)
{
    struct rec_ref *refs = NULL;
    size_t count = 0;
    if (index_log(l, &refs, &count, err))
        return -1;
    struct replay r = {.names = names, .res = res};
    md_symcache_init(&r.syms);
    for (size_t i = 0; i < count && !r.oom; i++) {
        struct perf_event_header h;
        memcpy(&h, l->data + refs[i].offset, sizeof h);
        on_record(&r, &h, l->data + refs[i].offset + sizeof h);
    }
    free(refs);
    sys_remove_tombstones(res);
    hooked_collect(&r);
    res->samples_lost += l->dropped_samples - l->dropped_syscalls;
    res->sys_lost += l->dropped_syscalls;
    int rc = 0;
    if (r.oom)
        rc = md_fail(err, "perf: out of memory replaying samples");
    else if (counter_top(&r.all, names->top_n, res->top_all, &res->top_all_count, err) ||
             counter_top(&r.alloc, names->top_n, res->top_alloc, &res->top_alloc_count, err))
        rc = -1;
    replay_free(&r);
    return rc;
}
