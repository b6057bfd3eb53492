// SPDX-License-Identifier: MIT
// malloc-doctor's static probe: counts the allocator calls of a static x86-64 program as the
// LD_PRELOAD probe does for dynamic ones, at a few nanoseconds per call instead of a uprobe trap.
//
//   md-static-probe PROBE_FILE EXECUTABLE HOOKS -- ARGV0 ARGS...
//
// It is a freestanding program (no libc: it shares the process with the program's own libc) that
// runs in place of the program: it maps EXECUTABLE the way the kernel would, overwrites the entry
// of each allocator function named in HOOKS with a jump to a hook of its own, and jumps to the
// program's entry point with the original stack, minus its own five arguments. The hooks count
// into the probe file (alloc/probe_shared.h), so the tool reads it exactly as for the LD_PRELOAD
// probe. Slow calls are found with the tick counter (a rdtsc at both ends of a call).
//
// HOOKS is "NAME=ADDR/SIZE,..." (hex), e.g. "malloc=401930/5,free=401630/5,malloc_usable_size=
// 4019a0/40":
// the tool has planned each hook (alloc/hook_x86.h) on the file's bytes before it starts us.
//
// What differs from a kernel exec, and why it does not matter to programs we count:
//   - /proc/self/exe names this probe. /proc/self/cmdline and comm are set to the program's when
//     the kernel allows it (PR_SET_MM needs CAP_SYS_RESOURCE).
//   - brk starts after this probe's image, not the program's; libcs ask the kernel where it is.
//   - every syscall before MD_STATIC_MARKER (mapping the program) is this probe's own: the tool
//     drops what strace saw before the marker.
#define _POSIX_C_SOURCE 200809L // struct stat's st_mtim and st_ctim (alloc/probe_stamp.h)
#include <elf.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc/hook_x86.h"
#include "alloc/md_syscall.h"
#include "alloc/probe_shared.h"
#include "alloc/probe_stamp.h"
#include "alloc/probe_static.h"

// --- syscalls, and the few libc functions the compiler may call ------------------------------

#define SYS_close 3
#define SYS_fstat 5
#define SYS_lseek 8
#define SYS_mmap 9
#define SYS_mprotect 10
#define SYS_munmap 11
#define SYS_pread64 17
#define SYS_madvise 28
#define SYS_getpid 39
#define SYS_exit_group 231
#define SYS_write 1
#define SYS_prctl 157
#define SYS_arch_prctl 158
#define SYS_gettid 186
#define SYS_clock_gettime 228
#define SYS_openat 257

#define AT_FDCWD_ (-100)
#define O_RDONLY_ 0
#define O_RDWR_ 2
#define SEEK_END_ 2
#define O_CLOEXEC_ 02000000
#define PROT_NONE_ 0
#define PROT_READ_ 1
#define PROT_WRITE_ 2
#define PROT_EXEC_ 4
#define MAP_SHARED_ 1
#define MAP_PRIVATE_ 2
#define MAP_FIXED_ 0x10
#define MAP_ANONYMOUS_ 0x20
#define MAP_FIXED_NOREPLACE_ 0x100000
#define MADV_NORMAL_ 0
#define MADV_WIPEONFORK_ 18
#define ARCH_GET_FS_ 0x1003
#define PR_SET_NAME_ 15
#define PR_GET_NAME_ 16
#define PR_SET_MM_ 35
#define PR_SET_MM_ARG_START_ 8
#define CLOCK_REALTIME_ 0
#define PAGE 4096ul

#define SYS(n, ...) sys_args(n, __VA_ARGS__, 0, 0, 0, 0, 0, 0)
#define sys_args(n, a, b, c, d, e, f, ...)                                                         \
    md_syscall6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

static bool failed(long rc)
{
    return rc < 0 && rc > -4096;
}

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memmove(void *dst, const void *src, size_t n);

void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d < s)
        return memcpy(dst, src, n);
    while (n--)
        d[n] = s[n];
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n);

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x < *y ? -1 : 1;
    return 0;
}

static size_t str_len(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static bool has_prefix(const char *s, const char *prefix)
{
    while (*prefix && *s == *prefix)
        s++, prefix++;
    return !*prefix;
}

static bool str_eq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

// "md-static-probe: EXECUTABLE: what" on stderr, then exit 127 like a failed exec.
__attribute__((noreturn)) static void die(const char *path, const char *what)
{
    static const char prefix[] = "md-static-probe: ";
    SYS(SYS_write, 2, prefix, sizeof prefix - 1);
    if (path) {
        SYS(SYS_write, 2, path, str_len(path));
        SYS(SYS_write, 2, ": ", 2);
    }
    SYS(SYS_write, 2, what, str_len(what));
    SYS(SYS_write, 2, "\n", 1);
    SYS(SYS_exit_group, 127);
    __builtin_unreachable();
}

// --- the hooks -------------------------------------------------------------------------------
//
// Threads are told apart by their thread pointer (%fs:0 holds its own address on x86-64, for
// glibc and musl alike), hashed into a table of this process's threads. The table lives in a
// MADV_WIPEONFORK mapping: a forked child finds it empty and its threads claim slots of their own.
// A thread that reuses a finished thread's TLS block (libcs cache them) shares its slot; totals
// stay exact.

#define THREADS 16384 // power of two, more than the probe file's slots; pages touched on use

struct thread {
    _Atomic uint64_t key; // thread pointer, 0 when free
    uint32_t depth;       // inside a counted call: calls made from it are the allocator's own
    uint32_t stack;       // --stacks, --leaks: the stack entry of caller, 0 when none yet
    uint64_t caller;      // the return address that stack holds
    struct md_probe_slot *slot;
};

struct process {
    int32_t pid;   // 0 until this process has attached (after a fork: wiped)
    int32_t image; // its number for the live-block table (md_probe_take_image)
    struct thread threads[THREADS];
};

// Everything the hooks read, set by the loader before the program runs.
static struct {
    struct md_probe_header *shared;
    struct md_probe_view view; // the file's tables, as they were when the hooks attached
    struct process *process;   // MADV_WIPEONFORK
    uint64_t threshold;        // ticks; longer calls are logged as slow
    bool fs_ready;             // the main thread has its thread pointer
    size_t (*usable_size)(void *);
    uint64_t quiet_start, quiet_end;        // frees called from here are not counted
    void *original[MD_STATIC_KINDS];        // trampolines: the moved entry, then a jump back
    uint32_t flags;                         // md_probe_flags: --stacks, --leaks
    struct md_probe_object exe;             // the program, recorded for each process with stacks
    int (*vdso_clock_gettime)(int, void *); // NULL: the syscall
} hooks;

static bool thread_pointer_set(void)
{
    uint64_t fs = 0;
    return !failed(SYS(SYS_arch_prctl, ARCH_GET_FS_, &fs)) && fs;
}

// A process's stacks are symbolized with the objects it recorded: here only the program.
static void record_program(int32_t pid)
{
    const struct md_probe_view *v = &hooks.view;
    uint32_t at = atomic_fetch_add(&v->header->objects_used, 1);
    if (at >= v->object_max)
        return;
    md_probe_object_copy(&v->objects[at], &hooks.exe, pid);
}

static uint64_t realtime_ns(void)
{
    struct {
        long sec, nsec;
    } ts = {0, 0};
    if (!hooks.vdso_clock_gettime || hooks.vdso_clock_gettime(CLOCK_REALTIME_, &ts))
        SYS(SYS_clock_gettime, CLOCK_REALTIME_, &ts);
    return (uint64_t)ts.sec * 1000000000u + (uint64_t)ts.nsec;
}

static void attach_process(struct process *pr)
{
    pr->pid = (int32_t)SYS(SYS_getpid, 0);
    md_probe_count_process(hooks.shared, pr->pid);
    // no start time: a static program's image is never replaced by a probed one (a program it
    // execs runs without a probe); the tool finds its exec by the time of the recorded execve
    pr->image = md_probe_take_image(hooks.shared, pr->pid, 0, realtime_ns());
    atomic_fetch_or(&hooks.shared->method, MD_METHOD_TICKS);
    if (hooks.flags)
        record_program(pr->pid);
}

static struct md_probe_slot *claim_slot(struct process *pr)
{
    struct md_probe_header *h = hooks.shared;
    struct md_probe_slot *slots = hooks.view.slots;
    for (uint32_t i = atomic_load(&h->slots_used) + 1; i < hooks.view.slot_count; i++) {
        uint32_t free_state = 0;
        if (atomic_compare_exchange_strong(&slots[i].claimed, &free_state, 1)) {
            slots[i].pid = pr->pid;
            slots[i].tid = (int32_t)SYS(SYS_gettid, 0);
            atomic_fetch_add(&h->slots_used, 1);
            return &slots[i];
        }
    }
    atomic_fetch_add(&h->slots_overflow, 1);
    return &slots[0]; // shared by every thread without a slot: atomic adds
}

__attribute__((noinline)) static struct thread *add_thread(struct process *pr, uint64_t key)
{
    if (!pr->pid)
        attach_process(pr);
    for (uint32_t i = (uint32_t)md_probe_mix(key) & (THREADS - 1), n = 0; n < THREADS;
         i = (i + 1) & (THREADS - 1), n++) {
        struct thread *t = &pr->threads[i];
        uint64_t seen = atomic_load_explicit(&t->key, memory_order_relaxed);
        if (seen == key)
            return t;
        if (!seen && atomic_compare_exchange_strong(&t->key, &seen, key)) {
            t->slot = claim_slot(pr);
            return t;
        }
    }
    // the table is full: this call is not counted, and the tool says so
    if (atomic_load_explicit(&hooks.shared->uncounted_calls, memory_order_relaxed) < UINT32_MAX)
        atomic_fetch_add_explicit(&hooks.shared->uncounted_calls, 1, memory_order_relaxed);
    return NULL;
}

// The calling thread's entry, marked busy; NULL for a call made from inside a counted call (or
// before the thread pointer exists), which is forwarded without counting.
static inline struct thread *enter(void)
{
    if (__builtin_expect(!hooks.fs_ready, 0) && !(hooks.fs_ready = thread_pointer_set()))
        return NULL;
    uint64_t key;
    __asm__("mov %%fs:0, %0" : "=r"(key));
    struct process *pr = hooks.process;
    struct thread *t = &pr->threads[(uint32_t)md_probe_mix(key) & (THREADS - 1)];
    if (__builtin_expect(atomic_load_explicit(&t->key, memory_order_relaxed) != key, 0))
        t = add_thread(pr, key);
    // no slot yet: a signal handler's call while this thread's entry is being set up (it is
    // published before its slot is claimed), or a thread pointer whose self word is 0, which
    // matches a free entry
    if (!t || t->depth || !t->slot)
        return NULL;
    t->depth = 1;
    return t;
}

// end: the call's end in CLOCK_REALTIME, stamped before any bookkeeping (which can fault a
// fresh page of the log or the live-block table in: 10 us and more on a VM)
__attribute__((noinline)) static void log_slow(struct md_probe_slot *s, enum md_probe_op op,
                                               uint64_t size, uint64_t duration, uint64_t end,
                                               uint32_t stack)
{
    const struct md_probe_view *v = &hooks.view;
    __atomic_fetch_add(&s->slow_calls, 1, __ATOMIC_RELAXED);
    uint64_t at = v->slow_max ? atomic_fetch_add(&v->header->slow_used, 1) : 0;
    if (at >= v->slow_max) {
        __atomic_fetch_add(&s->slow_dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    v->slow_log[at] = (struct md_probe_slow){.ticks = duration,
                                             .end_realtime_ns = end,
                                             .size = size,
                                             .tid = s->tid ? s->tid : (int32_t)SYS(SYS_gettid, 0),
                                             .op = (uint16_t)op,
                                             .stack = stack};
}

// --stacks and --leaks: the caller's stack (its return address alone: static programs rarely keep
// frame pointers), one more allocation counted to it, the live-block table kept current. Returns
// the stack entry, which a slow call's log names too.
__attribute__((noinline)) static uint32_t track(struct thread *t, enum md_probe_op op,
                                                uint64_t size, const void *result, uint64_t caller)
{
    const struct md_probe_view *v = &hooks.view;
    int32_t pid = hooks.process->pid;
    if (t->caller != caller || !t->stack) {
        t->caller = caller;
        t->stack = md_probe_stack_id(v, pid, &caller, 1);
    }
    if (op == MD_OP_FREE || !result)
        return t->stack;
    if (t->stack && (hooks.flags & MD_PROBE_WANT_STACKS)) {
        struct md_probe_stack *e = &v->stacks[t->stack - 1];
        atomic_fetch_add_explicit(&e->allocations, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->bytes, size, memory_order_relaxed);
    }
    if (hooks.flags & MD_PROBE_WANT_LEAKS)
        md_probe_live_insert(v, hooks.process->image, (uint64_t)result, size, t->stack);
    return t->stack;
}

// The call's end: counted in the thread's own slot (plain increments: only this thread writes
// it), logged when it took longer than the threshold. result: the block returned (a block released
// left the live-block table before the call: release); caller: the program's return address.
static inline void leave(struct thread *t, enum md_probe_op op, uint64_t size, uint64_t t0,
                         const void *result, uint64_t caller)
{
    uint64_t now = md_probe_ticks(), duration = now - t0, end = 0;
    bool slow = __builtin_expect(duration > hooks.threshold, 0);
    if (slow) // half the threshold: the join's slack (mark_end in probe.c)
        end = md_probe_stamp_end(realtime_ns, t0, now, hooks.threshold / 2, &duration);
    struct md_probe_slot *s = t->slot;
    if (__builtin_expect(s == hooks.view.slots, 0))
        md_probe_count_atomic(s, op, size);
    else
        md_probe_count(s, op, size);
    uint32_t stack = 0;
    if (__builtin_expect(hooks.flags != 0, 0))
        stack = track(t, op, size, result, caller);
    if (slow)
        log_slow(s, op, size, duration, end, stack);
    // only now: a signal handler that allocates while this call's bookkeeping makes syscalls
    // (its clock, a seccomp filter's SIGSYS) is not counted, and cannot recurse into it
    t->depth = 0;
}

// --leaks: the block leaves the live-block table before the allocator has it back, while no other
// thread or signal handler can be given its address (md_probe_live_remove). True when it was
// there, with its size and stack, which a failed realloc puts back.
static inline bool release(const void *p, uint64_t *size, uint32_t *stack)
{
    if (__builtin_expect(!(hooks.flags & MD_PROBE_WANT_LEAKS) || !p, 1))
        return false;
    return md_probe_live_remove(&hooks.view, hooks.process->image, (uint64_t)p, size, stack);
}

// The hook's own return address: the program's call site (the patched entry jumps, not calls).
#define CALLER ((uint64_t)__builtin_return_address(0))

typedef void *(*fn_size)(size_t);
typedef void (*fn_ptr)(void *);
typedef void *(*fn_size2)(size_t, size_t);
typedef void *(*fn_ptr_size)(void *, size_t);
typedef int (*fn_memalign)(void **, size_t, size_t);

#define ORIGINAL(kind, type) ((type)hooks.original[kind])

static void *hook_malloc(size_t n)
{
    struct thread *t = enter();
    if (!t)
        return ORIGINAL(MD_STATIC_MALLOC, fn_size)(n);
    uint64_t t0 = md_probe_ticks();
    void *p = ORIGINAL(MD_STATIC_MALLOC, fn_size)(n);
    leave(t, MD_OP_MALLOC, n, t0, p, CALLER);
    return p;
}

static void hook_free(void *p)
{
    struct thread *t = enter();
    if (!t || !p || (CALLER - hooks.quiet_start < hooks.quiet_end - hooks.quiet_start)) {
        if (t)
            t->depth = 0;
        ORIGINAL(MD_STATIC_FREE, fn_ptr)(p);
        return;
    }
    // the block's size tells which size band a munmap or madvise inside free belongs to
    uint64_t size = hooks.usable_size ? hooks.usable_size(p) : 0, was_size;
    uint32_t was_stack;
    release(p, &was_size, &was_stack);
    uint64_t t0 = md_probe_ticks();
    ORIGINAL(MD_STATIC_FREE, fn_ptr)(p);
    leave(t, MD_OP_FREE, size, t0, NULL, CALLER);
}

static void *hook_calloc(size_t n, size_t each)
{
    struct thread *t = enter();
    if (!t)
        return ORIGINAL(MD_STATIC_CALLOC, fn_size2)(n, each);
    uint64_t t0 = md_probe_ticks();
    void *p = ORIGINAL(MD_STATIC_CALLOC, fn_size2)(n, each);
    leave(t, MD_OP_CALLOC, (uint64_t)n * each, t0, p, CALLER);
    return p;
}

static void *hook_realloc(void *old, size_t n)
{
    struct thread *t = enter();
    if (!t)
        return ORIGINAL(MD_STATIC_REALLOC, fn_ptr_size)(old, n);
    uint64_t was_size;
    uint32_t was_stack;
    bool was_live = release(old, &was_size, &was_stack);
    uint64_t t0 = md_probe_ticks();
    void *p = ORIGINAL(MD_STATIC_REALLOC, fn_ptr_size)(old, n);
    // a failed realloc keeps the old block, still the caller's, so it goes back as it was;
    // realloc(p, 0) may free it and return NULL
    if (was_live && !p && n)
        md_probe_live_insert(&hooks.view, hooks.process->image, (uint64_t)old, was_size, was_stack);
    leave(t, MD_OP_REALLOC, n, t0, p, CALLER);
    return p;
}

// aligned_alloc and memalign: (alignment, size).
#define HOOK_ALIGNED(name, kind)                                                                   \
    static void *name(size_t align, size_t n)                                                      \
    {                                                                                              \
        struct thread *t = enter();                                                                \
        if (!t)                                                                                    \
            return ORIGINAL(kind, fn_size2)(align, n);                                             \
        uint64_t t0 = md_probe_ticks();                                                            \
        void *p = ORIGINAL(kind, fn_size2)(align, n);                                              \
        leave(t, MD_OP_ALIGNED, n, t0, p, CALLER);                                                 \
        return p;                                                                                  \
    }
HOOK_ALIGNED(hook_aligned_alloc, MD_STATIC_ALIGNED_ALLOC)
HOOK_ALIGNED(hook_memalign, MD_STATIC_MEMALIGN)

static int hook_posix_memalign(void **out, size_t align, size_t n)
{
    struct thread *t = enter();
    if (!t)
        return ORIGINAL(MD_STATIC_POSIX_MEMALIGN, fn_memalign)(out, align, n);
    uint64_t t0 = md_probe_ticks();
    int rc = ORIGINAL(MD_STATIC_POSIX_MEMALIGN, fn_memalign)(out, align, n);
    leave(t, MD_OP_ALIGNED, n, t0, rc ? NULL : *out, CALLER);
    return rc;
}

// valloc and pvalloc: (size).
#define HOOK_PAGE_ALIGNED(name, kind)                                                              \
    static void *name(size_t n)                                                                    \
    {                                                                                              \
        struct thread *t = enter();                                                                \
        if (!t)                                                                                    \
            return ORIGINAL(kind, fn_size)(n);                                                     \
        uint64_t t0 = md_probe_ticks();                                                            \
        void *p = ORIGINAL(kind, fn_size)(n);                                                      \
        leave(t, MD_OP_ALIGNED, n, t0, p, CALLER);                                                 \
        return p;                                                                                  \
    }
HOOK_PAGE_ALIGNED(hook_valloc, MD_STATIC_VALLOC)
HOOK_PAGE_ALIGNED(hook_pvalloc, MD_STATIC_PVALLOC)

// Indexed by enum md_static_kind; NULL for kinds that are only called, never hooked.
static void *hook_function(enum md_static_kind kind)
{
    switch (kind) {
    case MD_STATIC_MALLOC:
        return (void *)hook_malloc;
    case MD_STATIC_FREE:
        return (void *)hook_free;
    case MD_STATIC_CALLOC:
        return (void *)hook_calloc;
    case MD_STATIC_REALLOC:
        return (void *)hook_realloc;
    case MD_STATIC_ALIGNED_ALLOC:
        return (void *)hook_aligned_alloc;
    case MD_STATIC_MEMALIGN:
        return (void *)hook_memalign;
    case MD_STATIC_POSIX_MEMALIGN:
        return (void *)hook_posix_memalign;
    case MD_STATIC_VALLOC:
        return (void *)hook_valloc;
    case MD_STATIC_PVALLOC:
        return (void *)hook_pvalloc;
    default:
        return NULL;
    }
}

// --- mapping the program ---------------------------------------------------------------------

#define TRAMPOLINE_AREA (64 * 1024ul) // after the image, within rel32 reach of its code

struct image {
    const char *path;
    int fd;
    Elf64_Ehdr ehdr;
    Elf64_Phdr phdr[MD_STATIC_MAX_PHDRS];
    uint64_t bias;                   // load address minus link address (0 for ET_EXEC)
    uint64_t lo, hi;                 // page-aligned link-time span of the PT_LOAD segments
    uint64_t trampolines;            // address of the trampoline area
    uint64_t phdr_addr;              // where the program headers are in memory (AT_PHDR)
    struct md_probe_file_stamp file; // the file when it was opened, if stamped
    bool stamped;
};

static uint64_t page_down(uint64_t x)
{
    return x & ~(PAGE - 1);
}

static uint64_t page_up(uint64_t x)
{
    return (x + PAGE - 1) & ~(PAGE - 1);
}

static void read_headers(struct image *im)
{
    long fd = SYS(SYS_openat, AT_FDCWD_, im->path, O_RDONLY_ | O_CLOEXEC_);
    if (failed(fd))
        die(im->path, "cannot open");
    im->fd = (int)fd;
    // the program as it is now, for the tool's check that it did not change while it ran (the
    // kernel's struct stat is the libc's on x86-64)
    struct stat st;
    if (!failed(SYS(SYS_fstat, fd, &st))) {
        md_probe_stamp_of(&im->file, &st);
        im->stamped = true;
    }
    if (SYS(SYS_pread64, fd, &im->ehdr, sizeof im->ehdr, 0) != (long)sizeof im->ehdr ||
        im->ehdr.e_ident[EI_MAG0] != ELFMAG0 || im->ehdr.e_ident[EI_MAG1] != ELFMAG1 ||
        im->ehdr.e_ident[EI_MAG2] != ELFMAG2 || im->ehdr.e_ident[EI_MAG3] != ELFMAG3 ||
        im->ehdr.e_ident[EI_CLASS] != ELFCLASS64 || im->ehdr.e_machine != EM_X86_64)
        die(im->path, "not an x86-64 ELF file");
    if (im->ehdr.e_type != ET_EXEC && im->ehdr.e_type != ET_DYN)
        die(im->path, "not an executable");
    if (im->ehdr.e_phentsize != sizeof(Elf64_Phdr) || !im->ehdr.e_phnum ||
        im->ehdr.e_phnum > MD_STATIC_MAX_PHDRS)
        die(im->path, "unexpected program headers");
    size_t bytes = im->ehdr.e_phnum * sizeof(Elf64_Phdr);
    if (SYS(SYS_pread64, fd, im->phdr, bytes, im->ehdr.e_phoff) != (long)bytes)
        die(im->path, "truncated program headers");
}

static void find_span(struct image *im)
{
    im->lo = UINT64_MAX;
    im->hi = 0;
    for (int i = 0; i < im->ehdr.e_phnum; i++) {
        const Elf64_Phdr *ph = &im->phdr[i];
        if (ph->p_type == PT_INTERP)
            die(im->path, "a dynamic program (it has an interpreter)");
        if (ph->p_type != PT_LOAD)
            continue;
        if ((ph->p_vaddr - ph->p_offset) % PAGE || ph->p_filesz > ph->p_memsz)
            die(im->path, "a segment is not page-aligned");
        if (page_down(ph->p_vaddr) < im->lo)
            im->lo = page_down(ph->p_vaddr);
        if (page_up(ph->p_vaddr + ph->p_memsz) > im->hi)
            im->hi = page_up(ph->p_vaddr + ph->p_memsz);
    }
    if (im->hi <= im->lo)
        die(im->path, "no loadable segment");
}

// The largest p_align of the PT_LOAD segments that is a power of two, at most 1 GiB.
static uint64_t max_alignment(const struct image *im)
{
    uint64_t align = PAGE;
    for (int i = 0; i < im->ehdr.e_phnum; i++) {
        uint64_t a = im->phdr[i].p_align;
        if (im->phdr[i].p_type == PT_LOAD && a > align && !(a & (a - 1)) && a <= (1ul << 30))
            align = a;
    }
    return align;
}

// One reservation for the image and the trampoline area after it, so the area is always within
// rel32 reach of the code. An ET_EXEC program goes where it was linked; a static PIE anywhere.
static void reserve(struct image *im)
{
    uint64_t span = im->hi - im->lo + TRAMPOLINE_AREA;
    bool fixed = im->ehdr.e_type == ET_EXEC;
    // a static PIE goes at an address aligned as its segments ask (the kernel does the same)
    uint64_t align = fixed ? PAGE : max_alignment(im);
    long at = SYS(SYS_mmap, fixed ? im->lo : 0, span + align - PAGE, PROT_NONE_,
                  MAP_PRIVATE_ | MAP_ANONYMOUS_ | (fixed ? MAP_FIXED_NOREPLACE_ : 0), -1, 0);
    if (failed(at) || (fixed && (uint64_t)at != im->lo))
        die(im->path, "cannot reserve the program's address range");
    uint64_t base = ((uint64_t)at + align - 1) & ~(align - 1);
    if (base > (uint64_t)at)
        SYS(SYS_munmap, at, base - (uint64_t)at);
    if ((uint64_t)at + span + align - PAGE > base + span)
        SYS(SYS_munmap, base + span, (uint64_t)at + span + align - PAGE - (base + span));
    im->bias = base - im->lo;
    im->trampolines = im->bias + im->hi;
}

// Maps every PT_LOAD segment writable (the hooks are written next), zeroes its bss.
static void map_segments(struct image *im)
{
    for (int i = 0; i < im->ehdr.e_phnum; i++) {
        const Elf64_Phdr *ph = &im->phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uint64_t start = im->bias + page_down(ph->p_vaddr);
        uint64_t file_end = im->bias + ph->p_vaddr + ph->p_filesz;
        uint64_t mem_end = im->bias + ph->p_vaddr + ph->p_memsz;
        if (ph->p_filesz && failed(SYS(SYS_mmap, start, file_end - start, PROT_READ_ | PROT_WRITE_,
                                       MAP_PRIVATE_ | MAP_FIXED_, im->fd, page_down(ph->p_offset))))
            die(im->path, "cannot map a segment");
        if (ph->p_filesz && mem_end > file_end) // the rest of the last file page is bss
            memset((void *)file_end, 0, page_up(file_end) - file_end);
        uint64_t anon = ph->p_filesz ? page_up(file_end) : start;
        if (page_up(mem_end) > anon &&
            failed(SYS(SYS_mmap, anon, page_up(mem_end) - anon, PROT_READ_ | PROT_WRITE_,
                       MAP_PRIVATE_ | MAP_ANONYMOUS_ | MAP_FIXED_, -1, 0)))
            die(im->path, "cannot map a segment's bss");
    }
}

static void protect_segments(struct image *im)
{
    for (int i = 0; i < im->ehdr.e_phnum; i++) {
        const Elf64_Phdr *ph = &im->phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        int prot = (ph->p_flags & PF_R ? PROT_READ_ : 0) | (ph->p_flags & PF_W ? PROT_WRITE_ : 0) |
                   (ph->p_flags & PF_X ? PROT_EXEC_ : 0);
        uint64_t start = im->bias + page_down(ph->p_vaddr);
        if (failed(SYS(SYS_mprotect, start, page_up(im->bias + ph->p_vaddr + ph->p_memsz) - start,
                       prot)))
            die(im->path, "cannot protect a segment");
    }
}

// AT_PHDR: PT_PHDR when present, else the loaded bytes of the file that hold the headers.
static void find_phdr(struct image *im)
{
    for (int i = 0; i < im->ehdr.e_phnum; i++) {
        const Elf64_Phdr *ph = &im->phdr[i];
        if (ph->p_type == PT_PHDR) {
            im->phdr_addr = im->bias + ph->p_vaddr;
            return;
        }
        if (ph->p_type == PT_LOAD && ph->p_offset <= im->ehdr.e_phoff &&
            im->ehdr.e_phoff < ph->p_offset + ph->p_filesz)
            im->phdr_addr = im->bias + ph->p_vaddr + (im->ehdr.e_phoff - ph->p_offset);
    }
    if (!im->phdr_addr)
        die(im->path, "the program headers are not loaded");
}

// --- installing the hooks --------------------------------------------------------------------

static const char *const kind_names[MD_STATIC_KINDS] = MD_STATIC_KIND_NAMES;

static bool parse_hex(const char **s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = *s;
    for (; *p; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (d < 0)
            break;
        v = v << 4 | (uint64_t)d;
    }
    if (p == *s)
        return false;
    *s = p;
    *out = v;
    return true;
}

static int parse_kind(const char **s)
{
    for (int k = 0; k < MD_STATIC_KINDS; k++) {
        size_t n = str_len(kind_names[k]);
        const char *p = *s;
        size_t i = 0;
        while (i < n && p[i] == kind_names[k][i])
            i++;
        if (i == n && p[n] == '=') {
            *s = p + n + 1;
            return k;
        }
    }
    return -1;
}

// Is [addr, addr + size) inside one executable segment of the image?
static bool in_code(const struct image *im, uint64_t addr, uint64_t size)
{
    for (int i = 0; i < im->ehdr.e_phnum; i++) {
        const Elf64_Phdr *ph = &im->phdr[i];
        if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && addr >= ph->p_vaddr &&
            size <= ph->p_filesz && addr - ph->p_vaddr <= ph->p_filesz - size)
            return true;
    }
    return false;
}

static void install_hook(struct image *im, int kind, uint64_t link_addr, uint64_t size, int n)
{
    if (!in_code(im, link_addr, size) || size < MD_HOOK_JUMP_LEN)
        die(im->path, "a hook address is outside the program's code");
    if ((uint64_t)(n + 1) * MD_STATIC_TRAMPOLINE_STRIDE > TRAMPOLINE_AREA)
        die(im->path, "too many hooks");
    uint8_t *code = (uint8_t *)(im->bias + link_addr);
    uint64_t addr = (uint64_t)code;
    // per hook: an absolute jump to the hook (the entry's 5-byte jump reaches only this far),
    // then the trampoline that runs the moved instructions
    uint8_t *moved = (uint8_t *)(im->trampolines + MD_STATIC_TRAMPOLINE_AT(n));
    uint8_t *to_hook = (uint8_t *)(im->trampolines + (uint64_t)n * MD_STATIC_TRAMPOLINE_STRIDE);
    struct md_hook_plan plan;
    const char *why = "";
    if (md_hook_plan(code, size, addr, &plan, &why) ||
        md_hook_relocate(code, addr, &plan, moved, (uint64_t)moved) < 0)
        die(im->path, why);
    // jmp *0(%rip), then the hook's address
    uint64_t hook = (uint64_t)hook_function((enum md_static_kind)kind);
    to_hook[0] = 0xff;
    to_hook[1] = 0x25;
    memset(to_hook + 2, 0, 4);
    memcpy(to_hook + 6, &hook, 8);
    hooks.original[kind] = moved;
    if (md_hook_jump(code, addr, (uint64_t)to_hook))
        die(im->path, "the trampoline area is out of reach");
}

static void install_hooks(struct image *im, const char *spec)
{
    long at = SYS(SYS_mmap, im->trampolines, TRAMPOLINE_AREA, PROT_READ_ | PROT_WRITE_,
                  MAP_PRIVATE_ | MAP_ANONYMOUS_ | MAP_FIXED_, -1, 0);
    if (failed(at))
        die(im->path, "cannot map the trampolines");
    int n = 0;
    for (const char *s = spec; *s;) {
        bool quiet = has_prefix(s, MD_STATIC_QUIET_KEY "=");
        if (quiet)
            s += str_len(MD_STATIC_QUIET_KEY "=");
        int kind = quiet ? MD_STATIC_KINDS : parse_kind(&s);
        uint64_t addr, size;
        if (kind < 0 || !parse_hex(&s, &addr) || *s++ != '/' || !parse_hex(&s, &size) ||
            (*s && *s++ != ','))
            die(spec, "malformed hook list");
        if (quiet) {
            if (!in_code(im, addr, size))
                die(im->path, "a quiet caller is outside the program's code");
            hooks.quiet_start = im->bias + addr;
            hooks.quiet_end = im->bias + addr + size;
        } else if (kind == MD_STATIC_USABLE_SIZE) {
            if (!in_code(im, addr, 1))
                die(im->path, "malloc_usable_size is outside the program's code");
            hooks.usable_size = (size_t(*)(void *))(im->bias + addr);
        } else {
            install_hook(im, kind, addr, size, n++);
        }
    }
    if (!hooks.original[MD_STATIC_MALLOC])
        die(im->path, "malloc must be hooked");
    if (failed(SYS(SYS_mprotect, im->trampolines, TRAMPOLINE_AREA, PROT_READ_ | PROT_EXEC_)))
        die(im->path, "cannot protect the trampolines");
}

// --- the probe file, the stack, the jump -----------------------------------------------------

// PT_GNU_STACK with PF_X (e.g. GCC's trampolines for nested functions): the kernel would have
// made the stack executable for the program; it did so for this probe, which asks for none.
#define PROT_GROWSDOWN_ 0x01000000
static void make_stack_executable_if_asked(const struct image *im, const uint64_t *sp)
{
    for (int i = 0; i < im->ehdr.e_phnum; i++)
        if (im->phdr[i].p_type == PT_GNU_STACK && (im->phdr[i].p_flags & PF_X) &&
            failed(SYS(SYS_mprotect, page_down((uint64_t)sp), PAGE,
                       PROT_READ_ | PROT_WRITE_ | PROT_EXEC_ | PROT_GROWSDOWN_)))
            die(im->path, "cannot make the stack executable, as the program asks");
}

// The program as --stacks and --leaks name it (the objects table of alloc/probe_shared.h).
static void describe_program(const struct image *im)
{
    hooks.exe.bias = im->bias;
    hooks.exe.start = im->bias + im->lo;
    hooks.exe.end = im->bias + im->hi;
    size_t n = str_len(im->path);
    if (n >= sizeof hooks.exe.path) // cut, it would name another file
        n = 0;
    memcpy(hooks.exe.path, im->path, n);
    hooks.exe.path[n] = 0;
    hooks.exe.file = im->file;
    hooks.exe.stamped = im->stamped;
}

// This process runs the program's image with the hooks: the tool matches it to the kernel's exit
// record of the process.
static void note_image(void)
{
    char comm[MD_PROBE_COMM] = {0};
    if (!failed(SYS(SYS_prctl, PR_GET_NAME_, comm, 0, 0, 0)))
        md_probe_note_image(hooks.shared, (int32_t)SYS(SYS_getpid, 0), comm);
}

static void attach_file(const char *path)
{
    // the whole file is mapped, then checked: the header is too big to read onto the stack
    long fd = SYS(SYS_openat, AT_FDCWD_, path, O_RDWR_ | O_CLOEXEC_);
    long size = failed(fd) ? fd : SYS(SYS_lseek, fd, 0, SEEK_END_);
    long map = failed(size) || (size_t)size < sizeof(struct md_probe_header)
                   ? -1
                   : SYS(SYS_mmap, 0, size, PROT_READ_ | PROT_WRITE_, MAP_SHARED_, fd, 0);
    if (!failed(fd))
        SYS(SYS_close, fd);
    if (failed(map))
        die(path, "cannot map the probe file");
    struct md_probe_header *header = (struct md_probe_header *)map;
    if (header->magic != MD_PROBE_MAGIC || header->version != MD_PROBE_VERSION ||
        !md_probe_view_init(&hooks.view, header, (size_t)size))
        die(path, "not a probe file");
    hooks.shared = header;
    hooks.threshold = header->slow_threshold_ticks;
    hooks.flags = md_probe_view_flags(&hooks.view);
    long pr = SYS(SYS_mmap, 0, page_up(sizeof(struct process)), PROT_READ_ | PROT_WRITE_,
                  MAP_PRIVATE_ | MAP_ANONYMOUS_, -1, 0);
    if (failed(pr) ||
        failed(SYS(SYS_madvise, pr, page_up(sizeof(struct process)), MADV_WIPEONFORK_)))
        die(path, "cannot map the thread table (MADV_WIPEONFORK needs Linux 4.14)");
    hooks.process = (struct process *)pr;
    attach_process(hooks.process);
}

// The kernel's auxiliary vector, rewritten for the program.
static void fix_auxv(uint64_t *auxv, const struct image *im)
{
    for (; auxv[0] != AT_NULL; auxv += 2) {
        switch (auxv[0]) {
        case AT_PHDR:
            auxv[1] = im->phdr_addr;
            break;
        case AT_PHNUM:
            auxv[1] = im->ehdr.e_phnum;
            break;
        case AT_PHENT:
            auxv[1] = sizeof(Elf64_Phdr);
            break;
        case AT_ENTRY:
            auxv[1] = im->bias + im->ehdr.e_entry;
            break;
        case AT_BASE:
            auxv[1] = 0;
            break;
        case AT_EXECFN:
            auxv[1] = (uint64_t)im->path;
            break;
        default:
            break;
        }
    }
}

// --- the vDSO's clock ------------------------------------------------------------------------
//
// A slow call's end is stamped with CLOCK_REALTIME. As a syscall, clock_gettime costs about a
// microsecond on a VM, and more while perf records syscalls (the raw_syscalls tracepoint runs its
// filter on every syscall), so the stamp came a microsecond or more after the call had ended and
// the call's window missed syscalls made at its very start. The vDSO reads the clock in user
// space; its clock_gettime is found in its dynamic symbols (AT_SYSINFO_EHDR, DT_HASH).

static uint64_t dynamic_entry(const Elf64_Dyn *dyn, int64_t tag)
{
    for (; dyn->d_tag != DT_NULL; dyn++)
        if (dyn->d_tag == tag)
            return dyn->d_un.d_ptr;
    return 0;
}

static int (*find_vdso_clock(const uint64_t *auxv))(int, void *)
{
    const Elf64_Ehdr *eh = NULL;
    for (; auxv[0] != AT_NULL; auxv += 2)
        if (auxv[0] == AT_SYSINFO_EHDR)
            eh = (const Elf64_Ehdr *)auxv[1];
    if (!eh)
        return NULL;
    const Elf64_Phdr *ph = (const Elf64_Phdr *)((const char *)eh + eh->e_phoff);
    uint64_t bias = 0, dynamic = 0;
    bool loaded = false;
    for (size_t i = 0; i < eh->e_phnum; i++) {
        if (ph[i].p_type == PT_LOAD && !loaded) {
            bias = (uint64_t)eh + ph[i].p_offset - ph[i].p_vaddr;
            loaded = true;
        } else if (ph[i].p_type == PT_DYNAMIC) {
            dynamic = ph[i].p_vaddr;
        }
    }
    if (!loaded || !dynamic)
        return NULL;
    const Elf64_Dyn *dyn = (const Elf64_Dyn *)(bias + dynamic);
    uint64_t symtab = dynamic_entry(dyn, DT_SYMTAB), strtab = dynamic_entry(dyn, DT_STRTAB);
    uint64_t hash = dynamic_entry(dyn, DT_HASH); // nbucket, nchain: nchain is the symbol count
    if (!symtab || !strtab || !hash)
        return NULL;
    const Elf64_Sym *sym = (const Elf64_Sym *)(bias + symtab);
    uint32_t count = ((const uint32_t *)(bias + hash))[1];
    for (uint32_t i = 0; i < count; i++)
        if (ELF64_ST_TYPE(sym[i].st_info) == STT_FUNC && sym[i].st_shndx != SHN_UNDEF &&
            str_eq((const char *)(bias + strtab + sym[i].st_name), "__vdso_clock_gettime"))
            return (int (*)(int, void *))(bias + sym[i].st_value);
    return NULL;
}

// The auxiliary vector in the kernel's initial stack: past argv and envp.
static uint64_t *initial_auxv(uint64_t *sp)
{
    uint64_t *p = sp + 1 + sp[0] + 1;
    while (*p)
        p++;
    return p + 1;
}

// The program's stack is the kernel's, without the probe's `skip` leading arguments (0 or 5): the
// vector is moved down by one word per argument and starts as many words higher, so the stack
// pointer stays 16-byte aligned only if skip is odd or 0, which the callers guarantee.
static uint64_t *program_stack(uint64_t *sp, uint64_t skip, const struct image *im)
{
    uint64_t argc = sp[0];
    uint64_t *auxv = initial_auxv(sp), *end = auxv;
    while (end[0] != AT_NULL)
        end += 2;
    end += 2;
    uint64_t *stack = sp;
    if (skip) {
        memmove(sp + skip, sp + skip + 1, (size_t)((char *)end - (char *)(sp + skip + 1)));
        auxv -= 1;
        stack = sp + skip - 1;
        stack[0] = argc - skip;
    }
    fix_auxv(auxv, im);
    return stack;
}

// The value of environment variable name (NAME=value) in the kernel's initial stack, or NULL.
static const char *initial_env(uint64_t *sp, const char *name)
{
    char **env = (char **)(sp + 1 + sp[0] + 1);
    for (; *env; env++) {
        const char *n = name, *e = *env;
        while (*n && *e == *n)
            n++, e++;
        if (!*n && *e == '=')
            return e + 1;
    }
    return NULL;
}

// What to run: from the tool's command line (PROBE_FILE EXECUTABLE HOOKS -- ARGV0 [ARGS...]), or,
// when the program ran itself again through /proc/self/exe, from the environment the tool gave it
// (MD_STATIC_ENV_*) with the arguments as the program passed them. The command line counts as the
// tool's only when it repeats the environment exactly (or there is none, when run by hand).
struct invocation {
    const char *probe_file, *executable, *hooks;
    uint64_t skip; // leading arguments that are the probe's
};

static struct invocation find_invocation(uint64_t *sp)
{
    char **argv = (char **)(sp + 1);
    struct invocation env = {initial_env(sp, MD_STATIC_ENV_FILE),
                             initial_env(sp, MD_STATIC_ENV_EXE),
                             initial_env(sp, MD_STATIC_ENV_HOOKS), 0};
    bool have_env = env.probe_file && env.executable && env.hooks;
    bool tool_form = sp[0] >= 6 && str_eq(argv[4], "--") &&
                     (!have_env || (str_eq(argv[1], env.probe_file) &&
                                    str_eq(argv[2], env.executable) && str_eq(argv[3], env.hooks)));
    if (tool_form)
        return (struct invocation){argv[1], argv[2], argv[3], 5};
    if (!have_env || sp[0] < 1)
        die(NULL, "usage: md-static-probe PROBE_FILE EXECUTABLE HOOKS -- ARGV0 [ARGS...] "
                  "(run by malloc-doctor trace; a program that runs itself again through "
                  "/proc/self/exe needs " MD_STATIC_ENV_FILE ", " MD_STATIC_ENV_EXE
                  " and " MD_STATIC_ENV_HOOKS " in its environment)");
    return env;
}

static const char *base_name(const char *path)
{
    const char *b = path;
    for (const char *p = path; *p; p++)
        if (*p == '/')
            b = p + 1;
    return b;
}

__attribute__((noreturn, used)) void md_static_main(uint64_t *sp);

__attribute__((noreturn, used)) void md_static_main(uint64_t *sp)
{
    struct invocation run = find_invocation(sp);
    hooks.vdso_clock_gettime = find_vdso_clock(initial_auxv(sp));
    realtime_ns(); // its first call faults the vDSO's data pages in: not in a slow call's stamp
    char **program_argv = (char **)(sp + 1) + run.skip;
    struct image im = {.path = run.executable, .fd = -1};
    read_headers(&im);
    find_span(&im);
    reserve(&im);
    map_segments(&im);
    find_phdr(&im);
    install_hooks(&im, run.hooks);
    protect_segments(&im);
    SYS(SYS_close, im.fd);
    make_stack_executable_if_asked(&im, sp);
    describe_program(&im);
    attach_file(run.probe_file);
    SYS(SYS_prctl, PR_SET_NAME_, base_name(im.path), 0, 0, 0);
    note_image(); // the name as the kernel keeps it (cut to 15 bytes)
    SYS(SYS_prctl, PR_SET_MM_, PR_SET_MM_ARG_START_, program_argv[0], 0, 0);
    uint64_t entry = im.bias + im.ehdr.e_entry;
    uint64_t *stack = program_stack(sp, run.skip, &im);
    // what strace sees up to here is ours: the tool drops it
    SYS(SYS_madvise, MD_STATIC_MARKER, 0, MADV_NORMAL_);
    __asm__ volatile("mov %0, %%rsp\n\t"
                     "xor %%edx, %%edx\n\t" // no exit function from a dynamic linker
                     "xor %%ebp, %%ebp\n\t"
                     "jmp *%1"
                     :
                     : "c"(stack), "a"(entry) // not rdx or rbp, which are cleared first
                     : "memory");
    __builtin_unreachable();
}

__asm__(".text\n"
        ".global _start\n"
        "_start:\n\t"
        "xor %ebp, %ebp\n\t"
        "mov %rsp, %rdi\n\t"
        "and $-16, %rsp\n\t"
        "call md_static_main\n\t"
        "ud2\n");
