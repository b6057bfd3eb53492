// SPDX-License-Identifier: MIT
// The loaded objects of a traced process and their code (see probe_code.h).
//
// Nothing here allocates: it runs inside the program's allocator calls.
#include "alloc/probe_code.h"
#include "alloc/probe_stamp.h"

#include <dlfcn.h>
#include <link.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

// Executable segments of one process, sorted by start. Two buffers: a rebuild fills the one not
// published and then publishes it, so a reader in another thread reads a whole list. A reader
// still in the old list when a second rebuild reuses it reads a mix: a wrong answer for one
// frame, never a read out of bounds (count never exceeds the array).
#define CODE_SPANS_MAX 2048

struct code_span {
    uint64_t start, end;
};

struct code_list {
    uint32_t count;
    struct code_span span[CODE_SPANS_MAX];
};

// Starts of the objects this process has put into the table: open addressing, 0 empty.
#define RECORDED_MAX 8192

static struct {
    const struct md_probe_view *view; // NULL until the first record
    int32_t pid;
    atomic_flag busy; // one rebuild at a time
    _Atomic(struct code_list *) now;
    _Atomic unsigned long long adds; // the loader's count of loads when the list was built
    struct code_list lists[2];
    uint64_t recorded[RECORDED_MAX];
} code;

bool md_probe_load_span(const struct dl_phdr_info *info, bool exec_only, uint64_t *start,
                        uint64_t *end)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (exec_only && !(ph->p_flags & PF_X)))
            continue;
        lo = ph->p_vaddr < lo ? ph->p_vaddr : lo;
        hi = ph->p_vaddr + ph->p_memsz > hi ? ph->p_vaddr + ph->p_memsz : hi;
    }
    *start = info->dlpi_addr + lo;
    *end = info->dlpi_addr + hi;
    return hi != 0;
}

// Whether the object starting at start was recorded already (and marks it so when not). An
// object loaded where an unloaded one was counts as recorded: its frames get the old name. A full
// set (twice the table's size in loads) records nothing more.
static bool recorded_before(uint64_t start)
{
    uint64_t i = md_probe_mix(start);
    for (uint32_t n = 0; n < RECORDED_MAX; n++, i++) {
        uint64_t *slot = &code.recorded[i & (RECORDED_MAX - 1)];
        if (*slot == start)
            return true;
        if (!*slot) {
            *slot = start;
            return false;
        }
    }
    return true;
}

static void add_to_table(uint64_t bias, uint64_t start, uint64_t end, const char *name)
{
    const struct md_probe_view *v = code.view;
    uint32_t at = atomic_fetch_add(&v->header->objects_used, 1);
    if (at >= v->object_max)
        return;
    struct md_probe_object *o = &v->objects[at];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now); // the vDSO's: no syscall the program would not make
    o->pid = code.pid;
    o->bias = bias;
    o->start = start;
    o->end = end;
    o->recorded_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    // a path too long for the entry stays empty: cut, it would name another file
    if (name && *name) {
        size_t n = strlen(name);
        memcpy(o->path, n < sizeof o->path ? name : "", n < sizeof o->path ? n + 1 : 1);
    } else { // the executable itself
        ssize_t n = readlink("/proc/self/exe", o->path, sizeof o->path);
        o->path[n > 0 && (size_t)n < sizeof o->path ? n : 0] = 0;
    }
    struct stat st;
    if (o->path[0] && stat(o->path, &st) == 0) {
        md_probe_stamp_of(&o->file, &st);
        o->stamped = 1;
    }
}

static void add_code(struct code_list *l, uint64_t start, uint64_t end)
{
    if (l->count == CODE_SPANS_MAX)
        return;
    uint32_t at = l->count++;
    for (; at && l->span[at - 1].start > start; at--) // insertion: objects come almost sorted
        l->span[at] = l->span[at - 1];
    l->span[at] = (struct code_span){start, end};
}

static int add_object(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    uint64_t start, end, code_start, code_end;
    if (!md_probe_load_span(info, false, &start, &end))
        return 0;
    if (!recorded_before(start))
        add_to_table(info->dlpi_addr, start, end, info->dlpi_name);
    if (md_probe_load_span(info, true, &code_start, &code_end))
        add_code(ctx, code_start, code_end);
    return 0;
}

// The list no reader was given: the one a rebuild fills (the caller holds busy).
static struct code_list *unpublished(void)
{
    return atomic_load(&code.now) == &code.lists[0] ? &code.lists[1] : &code.lists[0];
}

// The loader's count of objects it has loaded (the same in every entry: the first is enough).
static int first_adds(struct dl_phdr_info *info, size_t size, void *ctx)
{
    bool has = size >= offsetof(struct dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds;
    *(unsigned long long *)ctx = has ? info->dlpi_adds : 0;
    return 1;
}

static unsigned long long loads_so_far(void)
{
    unsigned long long adds = 0;
    dl_iterate_phdr(first_adds, &adds);
    return adds;
}

void md_probe_code_record(const struct md_probe_view *v, int32_t pid)
{
    while (atomic_flag_test_and_set_explicit(&code.busy, memory_order_acquire))
        sched_yield();
    code.view = v;
    code.pid = pid;
    struct code_list *next = unpublished();
    next->count = 0;
    atomic_store_explicit(&code.adds, loads_so_far(), memory_order_relaxed); // before: a load
    dl_iterate_phdr(add_object, next); // during the walk makes the next refresh rebuild again
    atomic_store_explicit(&code.now, next, memory_order_release);
    atomic_flag_clear_explicit(&code.busy, memory_order_release);
}

void md_probe_code_refresh(const struct md_probe_view *v, int32_t pid)
{
    unsigned long long adds = loads_so_far();
    if (!adds || adds != atomic_load_explicit(&code.adds, memory_order_relaxed))
        md_probe_code_record(v, pid);
}

void md_probe_code_adopt_in_child(int32_t parent, int32_t child)
{
    atomic_flag_clear(&code.busy); // another thread of the parent may have held it
    code.pid = child;
    const struct md_probe_view *v = code.view;
    struct md_probe_object *objects = v->objects;
    uint32_t used = atomic_load(&v->header->objects_used);
    for (uint32_t i = 0; i < used && i < v->object_max; i++) {
        if (objects[i].pid != parent)
            continue;
        uint32_t at = atomic_fetch_add(&v->header->objects_used, 1);
        if (at >= v->object_max)
            return;
        md_probe_object_copy(&objects[at], &objects[i], child);
    }
}

static bool listed(const struct code_list *l, uint64_t addr)
{
    uint32_t lo = 0, hi = l->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (l->span[mid].end <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->count && l->span[lo].start <= addr;
}

// An object loaded since the list was built (dlopen), found without taking a loader lock: this
// runs inside the program's allocator calls, where a thread may hold a lock that another thread
// holds while it waits for the loader. Its whole mapping counts as code (the loader's answer has
// no segments). false when there is none, or another thread is rebuilding.
static bool add_loaded_since(uint64_t addr)
{
#if defined(__GLIBC__) && defined(DLFO_EH_SEGMENT_TYPE)
    struct dl_find_object found;
    if (_dl_find_object((void *)(uintptr_t)addr, &found) != 0 || !found.dlfo_link_map ||
        atomic_flag_test_and_set_explicit(&code.busy, memory_order_acquire))
        return false;
    uint64_t start = (uint64_t)(uintptr_t)found.dlfo_map_start;
    uint64_t end = (uint64_t)(uintptr_t)found.dlfo_map_end;
    if (!recorded_before(start))
        add_to_table(found.dlfo_link_map->l_addr, start, end, found.dlfo_link_map->l_name);
    const struct code_list *now = atomic_load(&code.now);
    struct code_list *next = unpublished();
    memcpy(next->span, now->span, now->count * sizeof now->span[0]);
    next->count = now->count;
    add_code(next, start, end);
    atomic_store_explicit(&code.now, next, memory_order_release);
    atomic_flag_clear_explicit(&code.busy, memory_order_release);
    return start <= addr && addr < end;
#else
    (void)addr;
    return false; // musl has no lock-free lookup: the probe's dlopen records new objects
#endif
}

bool md_probe_code_listed(uint64_t addr)
{
    const struct code_list *l = atomic_load_explicit(&code.now, memory_order_acquire);
    return l && addr >= 0x10000 && listed(l, addr); // below mmap_min_addr nothing is mapped
}

bool md_probe_code_holds(uint64_t addr)
{
    if (!atomic_load_explicit(&code.now, memory_order_acquire))
        return true; // not recorded: nothing to judge by
    return md_probe_code_listed(addr) || (addr >= 0x10000 && add_loaded_since(addr));
}
