// SPDX-License-Identifier: MIT
// malloc-doctor's probe: an LD_PRELOAD library that counts every allocator call of a dynamic
// program and forwards it to the next allocator (glibc's, musl's, mimalloc, ...).
//
// Cost matters more than anything here: the fast path is a TLS load, a few plain increments in
// this thread's own slot of a shared file mapping, and a load of the thread's rseq area before and
// after the call. Calls that were switched out (the ones that made syscalls, or waited on a lock)
// are logged with their clock stamps so the tool can join them with strace's timestamps and say
// which request sizes cost syscalls.
#include <dlfcn.h>
#include <link.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "alloc/probe_code.h"
#include "alloc/probe_proc.h"
#include "alloc/probe_shared.h"

#define EXPORT __attribute__((visibility("default")))

// Not declared by <stdlib.h> on every libc; these are the glibc/musl signatures.
void *memalign(size_t align, size_t n);
void *pvalloc(size_t n);
size_t malloc_usable_size(void *p);
#define BOOT_BYTES (256 * 1024)

struct real_allocator {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*usable_size)(void *);
};

// Process-wide state of the probe: set once by the constructor, before the program's threads.
static struct {
    struct real_allocator real;
    int resolving;                  // dlsym may allocate: those requests come from boot[]
    struct md_probe_header *shared; // set last by attach_shared: the probe is counting
    struct md_probe_view view;      // the file's tables, as they were when the probe attached
    _Atomic int attach_tried;       // the first allocator call may come before our constructor
    uint32_t flags;                 // md_probe_flags, set once the objects are recorded
    pid_t own_pid;                  // getpid(): this process's pid in its own namespace
    int32_t pid;                    // the same in the tool's (md_probe_ids_pid)
    enum md_ids_mode ids;           // how its ids read in the tool's namespace
    int32_t image;                  // this image's number (md_probe_take_image): its live blocks
    pthread_t main_thread;          // the thread whose name is the process's (tid == pid)
    bool main_thread_known;
    bool rseq;                           // slow calls are found by the rseq mark (see mark_begin)
    bool tail_calls;                     // threads may enter tail mode (see "the fast path")
    _Atomic bool fast_path_allowed;      // set last by attach_shared (see struct fast_path)
    bool inactive;                       // no probe file: only forward calls
    _Atomic int chunks;                  // enum chunk_reading: how free learns block sizes
    _Atomic uint32_t chunk_checks;       // frees whose inline size agreed so far
    struct md_probe_slot *overflow_slot; // shared by threads that found no slot (atomic adds)
    uint64_t threshold;
    size_t boot_used;
    _Alignas(64) unsigned char boot[BOOT_BYTES];
} probe;

static __thread struct md_probe_slot *tls_slot __attribute__((tls_model("initial-exec")));
// the thread's tid in the tool's namespace, read when it claims a slot (0: not yet)
static __thread int32_t tls_tid __attribute__((tls_model("initial-exec")));

// What the fast path of malloc, free, calloc and realloc needs, in one place: this thread's own
// slot and its rseq_cs field. slot stays NULL, and every call takes the full path, until the
// thread has a slot of its own and the probe times calls with the rseq mark; and always with
// --leaks, which keeps the live-block table. It is NULL again in a forked child. tail is the slot
// too while the thread is in tail mode, else NULL; exact_left counts the calls down to it.
struct fast_path {
    struct md_probe_slot *slot;
    volatile uint64_t *rseq_cs;
    struct md_probe_slot *tail;
    uint64_t exact_left; // UINT64_MAX: this thread never enters tail mode
};
static __thread struct fast_path tls_fast __attribute__((tls_model("initial-exec")));
static __thread uintptr_t tls_stack_top __attribute__((tls_model("initial-exec")));

// Calls the allocator makes to itself while it serves a counted call go through the probe too
// when they use the public symbols: musl's calloc calls malloc, its realloc malloc and free, its
// memalign and posix_memalign aligned_alloc. They are the allocator's own work, so they are
// forwarded and not counted again. The wrappers that can nest clear the fast path for the
// duration, which sends nested calls to the full path, where tls_nested stops them: malloc's and
// free's fast paths pay nothing for it.
static __thread bool tls_nested __attribute__((tls_model("initial-exec")));

static inline struct fast_path nested_begin(void)
{
    struct fast_path outer = tls_fast;
    tls_fast.slot = tls_fast.tail = NULL;
    tls_nested = true;
    return outer;
}

// False when the thread became a forked child's during the call (a signal handler forked): the
// child forgot its parent's slot (forget_slot_in_child), and the outer call's state is not
// restored, or the child would count into its parent's slot for the rest of its life.
static inline bool nested_end(struct fast_path outer)
{
    tls_nested = false;
    if (outer.slot && outer.slot != tls_slot)
        return false;
    tls_fast = outer;
    return true;
}

// Where a hook was called from: its frame (to walk the frame-pointer chain) and return address.
struct caller {
    void *frame, *ret;
};
// Passed by address: two 8-byte stores read back as one 16-byte struct stall store forwarding.
#define CALLER (&(struct caller){__builtin_frame_address(0), __builtin_return_address(0)})

static void *boot_alloc(size_t n)
{
    size_t at = (probe.boot_used + 15) & ~(size_t)15;
    if (n > BOOT_BYTES - at)
        return NULL;
    probe.boot_used = at + n;
    return probe.boot + at;
}

static bool is_boot(const void *p)
{
    return (const unsigned char *)p >= probe.boot &&
           (const unsigned char *)p < probe.boot + BOOT_BYTES;
}

// True when fn is defined in the object whose file is named base (any directory).
static bool defined_in(void *fn, const char *base)
{
    Dl_info info;
    if (!fn || !dladdr(fn, &info) || !info.dli_fname)
        return false;
    const char *slash = strrchr(info.dli_fname, '/');
    return !strcmp(slash ? slash + 1 : info.dli_fname, base);
}

// glibc's debugging malloc (libc_malloc_debug.so.0, preloaded for MALLOC_CHECK_, mcheck and
// mtrace) defines the malloc family under the non-default version GLIBC_2.2.5 only, which dlsym
// passes over: the probe would forward to libc's malloc behind it and silently turn the checks
// off. When that library is loaded, its functions are looked up by version.
#if defined(__GLIBC__) && defined(__x86_64__)
#define MD_DEBUG_MALLOC_LIB "libc_malloc_debug.so.0"
#define MD_DEBUG_MALLOC_VERSION "GLIBC_2.2.5"
#endif

static void *next_function(const char *name, bool debug_malloc)
{
    void *fn = dlsym(RTLD_NEXT, name);
#ifdef MD_DEBUG_MALLOC_LIB
    void *versioned = debug_malloc ? dlvsym(RTLD_NEXT, name, MD_DEBUG_MALLOC_VERSION) : NULL;
    if (versioned && defined_in(versioned, MD_DEBUG_MALLOC_LIB))
        fn = versioned;
#else
    (void)debug_malloc;
#endif
    return fn;
}

#ifdef MD_DEBUG_MALLOC_LIB
static int find_debug_malloc(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size, (void)ctx;
    const char *name = info->dlpi_name, *slash = name ? strrchr(name, '/') : NULL;
    return name && !strcmp(slash ? slash + 1 : name, MD_DEBUG_MALLOC_LIB);
}
#endif

// Read from the loader's list: dlopen(RTLD_NOLOAD) would search the library path and open the
// file, syscalls that would count as the program's.
static bool debug_malloc_loaded(void)
{
#ifdef MD_DEBUG_MALLOC_LIB
    return dl_iterate_phdr(find_debug_malloc, NULL) != 0;
#else
    return false;
#endif
}

static void resolve(void)
{
    probe.resolving = 1;
    bool debug = debug_malloc_loaded();
    struct real_allocator r;
    r.malloc = (void *(*)(size_t))next_function("malloc", debug);
    r.free = (void (*)(void *))next_function("free", debug);
    r.calloc = (void *(*)(size_t, size_t))next_function("calloc", debug);
    r.realloc = (void *(*)(void *, size_t))next_function("realloc", debug);
    r.reallocarray = (void *(*)(void *, size_t, size_t))next_function("reallocarray", debug);
    r.posix_memalign = (int (*)(void **, size_t, size_t))next_function("posix_memalign", debug);
    r.aligned_alloc = (void *(*)(size_t, size_t))next_function("aligned_alloc", debug);
    r.memalign = (void *(*)(size_t, size_t))next_function("memalign", debug);
    r.valloc = (void *(*)(size_t))next_function("valloc", debug);
    r.pvalloc = (void *(*)(size_t))next_function("pvalloc", debug);
    r.usable_size = (size_t(*)(void *))next_function("malloc_usable_size", debug);
    probe.real = r;
    probe.resolving = 0;
}

// --- block sizes at free ---------------------------------------------------------------------
//
// free needs the size of the block it releases (the size band of a munmap inside free), and a
// call to malloc_usable_size costs as much as the rest of the probe's free. glibc's malloc keeps
// each chunk's size in the word before the block, flags in its low 3 bits; malloc_usable_size of
// a block in use from an arena is that size less the 8-byte header. So when free and
// malloc_usable_size both come from glibc's libc.so.6 (not a debugging malloc, not another
// allocator), the probe compares the inline size with malloc_usable_size on the program's first
// frees and, once enough agree, reads the word instead of calling. Mapped chunks (IS_MMAPPED, 2)
// still ask malloc_usable_size: they are rare and their free costs a munmap anyway. One
// disagreement turns the inline read off for good. No extra allocation, so no extra syscall.
enum chunk_reading { CHUNKS_NEVER, CHUNKS_CHECKING, CHUNKS_INLINE };
#define CHUNK_CHECKS 256 // agreeing frees before the inline read is trusted

static enum chunk_reading chunk_reading_start(const struct real_allocator *r)
{
    bool glibc = defined_in((void *)r->malloc, "libc.so.6") &&
                 defined_in((void *)r->free, "libc.so.6") &&
                 defined_in((void *)r->usable_size, "libc.so.6");
    return glibc ? CHUNKS_CHECKING : CHUNKS_NEVER;
}

// Mapped chunks, and every free until the inline read is trusted (or never will be).
__attribute__((noinline)) static uint64_t usable_size_checking(void *p)
{
    uint64_t size = probe.real.usable_size(p);
    if (atomic_load_explicit(&probe.chunks, memory_order_relaxed) != CHUNKS_CHECKING)
        return size;
    size_t word = ((const size_t *)p)[-1];
    if (word & 2) // mapped: asked every time, so not checked
        return size;
    if ((word & ~(size_t)7) - 8 != size) {
        atomic_store_explicit(&probe.chunks, CHUNKS_NEVER, memory_order_relaxed);
        return size;
    }
    // only from CHECKING: a disagreement another thread saw meanwhile stays final
    int checking = CHUNKS_CHECKING;
    if (atomic_fetch_add_explicit(&probe.chunk_checks, 1, memory_order_relaxed) + 1 ==
            CHUNK_CHECKS &&
        atomic_compare_exchange_strong(&probe.chunks, &checking, CHUNKS_INLINE))
        atomic_fetch_or(&probe.shared->method, MD_METHOD_CHUNK_SIZES); // the report says so
    return size;
}

// The block's size read from glibc's chunk header, once that reading is trusted; false for a
// block glibc mapped by itself (its header says so) and where the reading is not trusted.
static inline bool chunk_size_inline(const void *p, uint64_t *size)
{
    if (atomic_load_explicit(&probe.chunks, memory_order_relaxed) != CHUNKS_INLINE)
        return false;
    size_t word = ((const size_t *)p)[-1];
    *size = (word & ~(size_t)7) - 8;
    return !(word & 2);
}

static inline uint64_t block_size_at_free(void *p)
{
    uint64_t size;
    return __builtin_expect(chunk_size_inline(p, &size), 1) ? size : usable_size_checking(p);
}

// --- finding slow calls --------------------------------------------------------------------
//
// Reading a clock at both ends of every call costs two tick reads (~25 ns here), more than a
// whole malloc/free pair. Instead the probe arms the rseq area glibc registers for each thread:
// rseq_cs points at a critical-section descriptor whose range is never executed, and the kernel
// sets rseq_cs back to NULL whenever the thread is switched out. Every syscall strace stops on
// switches the thread out. So a call that finds rseq_cs cleared on return was slow; a call that
// finds it cleared on entry follows a switch in the program's own code, and the current time
// bounds where this call's syscalls can start. Clocks are read only on those rare events. rseq
// users write rseq_cs themselves at the start of their own critical sections, so an armed
// descriptor is invisible to them.

extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

#if defined(__x86_64__)
// The descriptor's range [md_rseq_never, +1) is never executed; the kernel checks the signature
// (x86's RSEQ_SIG) before the abort address of every descriptor it reads.
__asm__(".pushsection .text\n"
        ".balign 16\n"
        "md_rseq_never:\n\tnop\n\tnop\n"
        "\t.long 0x53053053\n"
        "md_rseq_abort:\n\tud2\n"
        ".popsection\n");
extern const char md_rseq_never[] __attribute__((visibility("hidden")));
extern const char md_rseq_abort[] __attribute__((visibility("hidden")));
#define MD_HAVE_RSEQ_MARK 1
#else
#define MD_HAVE_RSEQ_MARK 0
#endif

// The kernel's struct rseq_cs (linux/rseq.h), 32-byte aligned.
struct rseq_descriptor {
    uint32_t version, flags;
    uint64_t start_ip, post_commit_offset, abort_ip;
} __attribute__((aligned(32)));

// used: fast_was_slow names it in assembly
static struct rseq_descriptor never_descriptor __attribute__((used));

// Armed: rseq_cs still points at the probe's descriptor. The kernel clears it at a switch; code
// with rseq critical sections of its own (librseq) writes its own descriptor there, which must
// not pass for the probe's, or a switch before it would go unseen.
static inline bool mark_armed(uint64_t rseq_cs)
{
    return rseq_cs == (uint64_t)&never_descriptor;
}
static __thread uint64_t tls_boundary_ns __attribute__((tls_model("initial-exec")));

struct mark {
    uint64_t t0; // ticks (tick timing only)
    bool rseq;
};

static inline volatile uint64_t *rseq_cs_field(void)
{
    // struct rseq: cpu_id_start, cpu_id, then the rseq_cs pointer at offset 8
    return (volatile uint64_t *)((char *)__builtin_thread_pointer() + __rseq_offset + 8);
}

static uint64_t clock_ns(clockid_t clock)
{
    struct timespec now;
    clock_gettime(clock, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static uint64_t realtime_now(void)
{
    return clock_ns(CLOCK_REALTIME);
}

// True when this kernel clears an armed rseq_cs after a switch (a short sleep always switches).
static bool rseq_mark_works(void)
{
#if MD_HAVE_RSEQ_MARK
    if (!&__rseq_size || !&__rseq_offset || __rseq_size < 16)
        return false;
    never_descriptor = (struct rseq_descriptor){.start_ip = (uint64_t)md_rseq_never,
                                                .post_commit_offset = 1,
                                                .abort_ip = (uint64_t)md_rseq_abort};
    volatile uint64_t *cs = rseq_cs_field();
    *cs = (uint64_t)&never_descriptor;
    struct timespec pause = {0, 20000};
    nanosleep(&pause, NULL);
    return *cs == 0;
#else
    return false;
#endif
}

// --- tail mode ------------------------------------------------------------------------------
//
// Regaining control after a call costs about as much as the rest of the probe (one more call
// level: 1.24x against 1.10x with a tail call on the overhead benchmark's glibc loop). So after
// MD_EXACT_CALLS calls that regained control (exact mode), a thread forwards malloc and free with
// a tail call (tail mode): each call is still counted on entry, and a switch is found at the next
// call's entry instead of at the return. The syscalls of that window may have come from inside
// the last call or from the program after it, so it is logged as MD_SLOW_AFTER_RETURN, which the
// tool reports apart and never ties to a call, and the thread goes back to exact mode, so that
// the syscalls that follow are tied to their calls. A preemption ends tail mode too: telling it
// from a syscall would take a syscall (getrusage's nvcsw), which a program's seccomp filter may
// punish with SIGSYS, and at which strace stops a new thread until its first traced syscall. So
// a thread loses at most one window's attribution per MD_EXACT_CALLS calls, and a program whose
// allocator makes no syscalls pays for a tail call.
#define MD_EXACT_CALLS (1u << 18)

static void log_slow(struct md_probe_slot *s, enum md_probe_op op, uint64_t size, uint64_t ticks,
                     uint64_t start_realtime_ns, uint64_t end_realtime_ns, uint32_t stack,
                     enum md_probe_slow_kind kind);

// The thread leaves tail mode: its next MD_EXACT_CALLS calls regain control (slow ones among
// them do not prolong that: a preemption, which a busy machine brings at any time, would look the
// same as a syscall).
static void exact_again(void)
{
    tls_fast.exact_left = MD_EXACT_CALLS;
    tls_fast.tail = NULL;
}

// The countdown of an exact-mode malloc or free reached 0.
__attribute__((noinline)) static void enter_tail_mode(void)
{
    if (!probe.tail_calls || !tls_fast.slot) {
        tls_fast.exact_left = UINT64_MAX; // this thread stays in exact mode
        return;
    }
    tls_fast.tail = tls_fast.slot;
    tls_fast.slot->tail_entries++;
}

// The kind of a slow call's window. A slow call found while the thread is in tail mode may hold the
// syscalls of tail calls nested in it (a signal handler's, an allocator's own calls through the
// public functions, which never move the boundary): it is not tied to the call either, and the
// thread leaves tail mode.
static enum md_probe_slow_kind slow_call_kind(void)
{
    if (!tls_fast.tail)
        return MD_SLOW_CALL;
    exact_again();
    return MD_SLOW_AFTER_RETURN;
}

// Found cleared on entry in tail mode, at now: the window since the boundary may hold a syscall
// of the last call's, or of the program's after it.
static void close_tail_window(uint64_t now)
{
    struct md_probe_slot *s = tls_fast.tail;
    exact_again();
    log_slow(s, MD_OP_MALLOC, 0, 0, tls_boundary_ns, now, 0, MD_SLOW_AFTER_RETURN);
}

// The thread was switched out since the mark was last checked: the current time bounds where the
// syscalls of the next call can start, and the mark is armed again.
__attribute__((noinline)) static void rearm_after_switch(volatile uint64_t *rseq_cs)
{
    uint64_t now = clock_ns(CLOCK_REALTIME);
    if (tls_fast.tail)
        close_tail_window(now);
    tls_boundary_ns = now;
    *rseq_cs = (uint64_t)&never_descriptor;
}

// On entry: a new boundary when the thread was switched out since the mark was last checked.
static inline void fast_begin(volatile uint64_t *rseq_cs)
{
    if (__builtin_expect(!mark_armed(*rseq_cs), 0))
        rearm_after_switch(rseq_cs);
}

static inline void mark_begin(struct mark *m)
{
    m->rseq = probe.rseq;
    if (probe.inactive)
        return;
    if (!m->rseq) {
        m->t0 = md_probe_ticks();
        return;
    }
    fast_begin(rseq_cs_field());
}

// A slow call's times. call_ticks: the call's own duration (tick timing), which decides whether
// it was slow; window_ticks: the duration logged, up to after the end stamp (md_probe_stamp_end).
struct call_times {
    uint64_t call_ticks, window_ticks, start_realtime, end_realtime;
};

// Whether the call that just returned was slow, with its times. Before the probe has attached the
// threshold is 0 and every call counts as slow, which only the first few calls are; the clock is
// read here, before attaching makes syscalls of its own. The end stamp's two tick reads may lie
// at most half the threshold apart (200 ns of 400 under perf, 1 us of 2 under strace), and the
// duration runs to the later one, so a stall between them can only widen the window at its
// start.
static inline bool mark_end(const struct mark *m, struct call_times *t)
{
    *t = (struct call_times){0};
    if (m->rseq) {
        volatile uint64_t *cs = rseq_cs_field();
        if (mark_armed(*cs))
            return false;
        t->start_realtime = tls_boundary_ns;
        t->end_realtime = tls_boundary_ns = clock_ns(CLOCK_REALTIME);
        *cs = (uint64_t)&never_descriptor; // armed again for the gap before the next call
        return true;
    }
    uint64_t now = md_probe_ticks();
    t->call_ticks = now - m->t0;
    if (t->call_ticks <= probe.threshold)
        return false;
    t->end_realtime =
        md_probe_stamp_end(realtime_now, m->t0, now, probe.threshold / 2, &t->window_ticks);
    return true;
}

// --- loaded objects, call stacks, live blocks (--stacks, --leaks) ---------------------------

// The end of the memory mapping holding this thread's stack, read once per thread from
// /proc/self/maps without allocating; frame pointers are followed only below it.
static uintptr_t stack_top(void)
{
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0), top = sp;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    char buf[4096];
    size_t have = 0;
    ssize_t n;
    while (fd >= 0 && (n = read(fd, buf + have, sizeof buf - have - 1)) > 0) {
        have += (size_t)n;
        buf[have] = 0;
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            char *dash;
            uintptr_t lo = strtoull(line, &dash, 16), hi = strtoull(dash + 1, NULL, 16);
            if (lo <= sp && sp < hi)
                top = hi;
            line = nl + 1;
        }
        have -= (size_t)(line - buf);
        memmove(buf, line, have);
    }
    if (fd >= 0)
        close(fd);
    return top;
}

// Whether next, the saved rbp in the frame at fp, is the next frame up this thread's stack: above
// fp, aligned, and with its two words (saved rbp, return address) below the top. Code built
// without frame pointers keeps any value in rbp (-8 from a running sum): compared without an
// overflow, since next + 16 wraps such a value around to just above zero.
static inline bool next_frame_on_stack(uintptr_t fp, uintptr_t next)
{
    return next > fp && !(next & 7) && next < tls_stack_top && tls_stack_top - next >= 16;
}

// A function built without frame pointers (Debian's libstdc++ and libc: operator new, strdup)
// hides its caller from the walk: rbp still holds the frame of its caller's caller. The return
// address into that caller lies a few words above the one into the function; the first of those
// words that points into code is kept as a guess (MD_PROBE_FRAME_GUESS). The tool shows it only
// when the function at frames[0] sets up no frame and the word follows a call
// (lib/stack_scan.h); elsewhere it is a word of the caller's own that happens to point into code.
#define GUESS_WORDS 8

// Where the guess is: its word's index above the probe's frame (2 is the first above the return
// address), 0 when none of the words points into code. Not bounded by the frame rbp names: a
// frameless function may point rbp at its own data, just above the return address.
static unsigned guess_slot(const struct caller *c)
{
    const uint64_t *w = c->frame;
    for (unsigned i = 2; i < 2 + GUESS_WORDS && (uintptr_t)(w + i + 1) <= tls_stack_top; i++)
        if (md_probe_code_listed(w[i]))
            return i;
    return 0;
}

// Return addresses, innermost first: the hook's caller, the guess at a hidden caller, then the
// frame-pointer chain while it stays on this thread's stack and returns into code (code built
// without frame pointers ends the walk early; a frameless function may keep data in rbp).
static unsigned capture(const struct caller *c, uint64_t *frames, unsigned *slot)
{
    if (!tls_stack_top)
        tls_stack_top = stack_top();
    unsigned depth = 0;
    frames[depth++] = (uint64_t)c->ret;
    (void)md_probe_code_holds((uint64_t)c->ret); // records a library loaded since (dlopen)
    uint64_t walked[MD_PROBE_FRAMES];
    unsigned walk = 0;
    uintptr_t fp = (uintptr_t)c->frame, next = fp ? *(uintptr_t *)fp : 0;
    while (walk < MD_PROBE_FRAMES && next_frame_on_stack(fp, next)) {
        uint64_t ret = ((uint64_t *)next)[1];
        if (!md_probe_code_holds(ret))
            break;
        walked[walk++] = ret;
        fp = next;
        next = *(uintptr_t *)fp;
    }
    *slot = guess_slot(c); // after the walk: it has looked at objects loaded since the last time
    if (*slot && walk && ((const uint64_t *)c->frame)[*slot] == walked[0])
        *slot = 0; // the walk's own next frame: no caller is hidden (and no twin entry)
    if (*slot)
        frames[depth++] = ((const uint64_t *)c->frame)[*slot] | MD_PROBE_FRAME_GUESS;
    for (unsigned i = 0; i < walk && depth < MD_PROBE_FRAMES; i++)
        frames[depth++] = walked[i];
    return depth;
}

// The stack table entry (index + 1) of the caller's stack, inserted on first sight; 0 when full.
static uint32_t stack_id(const struct caller *c, unsigned *guess_slot)
{
    uint64_t frames[MD_PROBE_FRAMES];
    unsigned depth = capture(c, frames, guess_slot);
    return md_probe_stack_id(&probe.view, probe.pid, frames, depth);
}

static void live_insert(void *p, uint64_t size, uint32_t stack)
{
    md_probe_live_insert(&probe.view, probe.image, (uint64_t)p, size, stack);
}

// --leaks: the block leaves the live-block table before the allocator has it back, while no other
// thread or signal handler can be given its address (md_probe_live_remove); the fast path never
// runs with --leaks, so calls there pay nothing for this. True when it was there, with its size
// and stack, which a failed realloc puts back.
static bool live_release(void *p, uint64_t *size, uint32_t *stack)
{
    if (__builtin_expect(!(probe.flags & MD_PROBE_WANT_LEAKS) || probe.inactive || !p, 1))
        return false;
    return md_probe_live_remove(&probe.view, probe.image, (uint64_t)p, size, stack);
}

// What --stacks and --leaks add to a call: the caller's stack, counted per stack; the live-block
// table kept current. Returns the stack id for the slow-call log.
// Most allocations come from the same place as the one before. Each thread remembers its last
// stack (keyed by the caller's frame, its return address, the next one up and the guess at a
// hidden caller, which a virtual call from one place changes) and adds to that stack's shared
// counters in batches, instead of walking, hashing and contending every time.
// A thread that ends mid-batch loses at most MD_STACK_BATCH - 1 counts.
#define MD_STACK_BATCH 64

struct stack_cache {
    uintptr_t frame, ret, ret1;
    uint64_t guess; // the word at guess_slot above frame (0: no guess)
    uint32_t id, pending, guess_slot;
    uint64_t pending_bytes;
};

static __thread struct stack_cache tls_stacks __attribute__((tls_model("initial-exec")));

static void flush_stack_counts(struct stack_cache *k)
{
    if (k->id && k->pending) {
        struct md_probe_stack *e = &probe.view.stacks[k->id - 1];
        atomic_fetch_add_explicit(&e->allocations, k->pending, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->bytes, k->pending_bytes, memory_order_relaxed);
    }
    k->pending = 0;
    k->pending_bytes = 0;
}

static uint32_t cached_stack_id(const struct caller *c)
{
    struct stack_cache *k = &tls_stacks;
    if (!tls_stack_top)
        tls_stack_top = stack_top();
    uintptr_t fp = (uintptr_t)c->frame, next = fp ? *(uintptr_t *)fp : 0, ret1 = 0;
    if (next_frame_on_stack(fp, next))
        ret1 = ((uintptr_t *)next)[1];
    if (k->id && k->frame == fp && k->ret == (uintptr_t)c->ret && k->ret1 == ret1 &&
        (!k->guess_slot || ((const uint64_t *)fp)[k->guess_slot] == k->guess))
        return k->id;
    flush_stack_counts(k);
    *k = (struct stack_cache){.frame = fp, .ret = (uintptr_t)c->ret, .ret1 = ret1};
    k->id = stack_id(c, &k->guess_slot);
    k->guess = k->guess_slot ? ((const uint64_t *)fp)[k->guess_slot] : 0;
    return k->id;
}

// The allocation's stack, and with --stacks one more allocation of its size counted to it.
static uint32_t count_allocation_stack(uint64_t size, const struct caller *c)
{
    uint32_t stack = cached_stack_id(c);
    if (stack && (probe.flags & MD_PROBE_WANT_STACKS)) {
        tls_stacks.pending++;
        tls_stacks.pending_bytes += size;
        if (tls_stacks.pending == MD_STACK_BATCH)
            flush_stack_counts(&tls_stacks);
    }
    return stack;
}

static uint32_t track(enum md_probe_op op, uint64_t size, void *result, const struct caller *c)
{
    if (op == MD_OP_FREE || !result)
        return 0;
    uint32_t stack = count_allocation_stack(size, c);
    if (probe.flags & MD_PROBE_WANT_LEAKS)
        live_insert(result, size, stack);
    return stack;
}

// The calling thread's tid in the tool's namespace, read once per thread (the first is the
// thread that attached or forked).
static int32_t thread_id(void)
{
    if (!tls_tid)
        tls_tid = md_probe_ids_tid(probe.ids, probe.view.header, probe.pid); // mapped first
    return tls_tid;
}

// --- what the probe maps for itself --------------------------------------------------------

struct own_object {
    uint64_t inside, start, end;
};

static int find_own_object(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    struct own_object *o = ctx;
    uint64_t start, end;
    if (!md_probe_load_span(info, false, &start, &end) || o->inside < start || o->inside >= end)
        return 0;
    o->start = start;
    o->end = end;
    return 1; // found: stop
}

// Notes the probe's own mappings, which the tool leaves out of the program's syscalls: this
// library, as the dynamic loader mapped it in the process's only thread before any code ran, and
// the shared file, mapped just now by this thread.
static void note_own_maps(struct md_probe_header *h, const void *file_map, size_t file_mapped)
{
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), now = clock_ns(CLOCK_REALTIME);
    struct own_object self = {.inside = (uint64_t)(uintptr_t)&note_own_maps};
    if (dl_iterate_phdr(find_own_object, &self))
        md_probe_note_own_map(h, probe.pid, self.start & ~(page - 1),
                              (self.end + page - 1) & ~(page - 1), now);
    uint64_t file = (uint64_t)(uintptr_t)file_map;
    md_probe_note_own_map(h, thread_id(), file, file + file_mapped, now);
}

// The first process to attach names the file its malloc comes from, and so does every image it
// execs later (the program's own, unless a shell started it in a child).
static void record_provider(struct md_probe_header *h)
{
    int32_t owner = 0, self = probe.pid;
    Dl_info info;
    if (!atomic_compare_exchange_strong(&h->provider_pid, &owner, self) && owner != self)
        return;
    size_t n = probe.real.malloc && dladdr((void *)probe.real.malloc, &info) && info.dli_fname
                   ? strlen(info.dli_fname)
                   : 0;
    // empty: the executable itself (or unknown); too long: a cut path would name another file
    if (n == 0 || n >= sizeof h->malloc_provider)
        n = 0;
    memcpy(h->malloc_provider, n ? info.dli_fname : "", n + 1);
    char image[sizeof h->malloc_provider_image];
    ssize_t len = readlink("/proc/self/exe", image, sizeof image);
    if (len <= 0 || (size_t)len >= sizeof image)
        len = 0;
    image[len] = 0;
    memcpy(h->malloc_provider_image, image, (size_t)len + 1);
}

// Remembers the main thread (a program may rename it from another thread): the calling thread
// when it is the main one.
static void note_main_thread(void)
{
    probe.main_thread_known = (pid_t)syscall(SYS_gettid) == getpid();
    if (probe.main_thread_known)
        probe.main_thread = pthread_self();
}

// Maps the probe file at path and reads its geometry into probe.view; false when it is no probe
// file. A process started under a tight RLIMIT_AS has no room for the whole file (tens of MB of
// address space). Then it maps only the header and slot 0, the overflow slot that follows it,
// and counts every call there exactly; its slow calls are counted as dropped (no log to hold
// them) and it records no stacks.
static bool map_file(const char *path, size_t *mapped)
{
    const size_t header_only = sizeof(struct md_probe_header) + sizeof(struct md_probe_slot);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    // A process that switched to another user cannot open the tool's file (mode 0600): it uses
    // the descriptor the tool left open, a duplicate, so that the program's own close of that
    // number later leaves the mapping alone (and the original stays for the images it execs).
    int inherited = fd < 0 ? md_probe_inherited_fd() : -1;
    if (inherited >= 0)
        fd = fcntl(inherited, F_DUPFD_CLOEXEC, 0);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || (size_t)st.st_size < header_only) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    *mapped = (size_t)st.st_size;
    void *map = mmap(NULL, *mapped, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED)
        map = mmap(NULL, *mapped = header_only, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return false;
    struct md_probe_header *h = map;
    struct md_probe_view *v = &probe.view;
    if (h->magic != MD_PROBE_MAGIC || h->version != MD_PROBE_VERSION ||
        !md_probe_view_init(v, h, *mapped == header_only ? SIZE_MAX : *mapped)) {
        munmap(map, *mapped);
        return false;
    }
    if (*mapped == header_only)
        *v = (struct md_probe_view){.header = h, .slots = v->slots, .slot_count = 1};
    return true;
}

// This process's ids in the tool's pid namespace and its image's number, and the process counted
// (md_probe_count_process). A process in another namespace that cannot translate its ids says so
// in the file: its syscalls cannot be tied to its calls. Also in a forked child: `unshare -fp`
// forks into the new namespace.
static void learn_ids(struct md_probe_header *h)
{
    probe.own_pid = getpid();
    probe.ids = md_probe_ids_mode(h);
    probe.pid = md_probe_ids_pid(probe.ids, h, &tls_tid);
    // once per process: an exec attaches again
    if (md_probe_count_process(h, probe.pid) && probe.pid < 0)
        atomic_fetch_add(&h->foreign_pid_processes, 1);
    probe.image =
        md_probe_take_image(h, probe.pid, md_probe_start_time(), clock_ns(CLOCK_REALTIME));
}

static void attach_shared(void)
{
    // a plain load first: without a probe file every call comes here, and an exchange on a
    // shared line would make threads fight over it
    if (atomic_load_explicit(&probe.attach_tried, memory_order_relaxed) ||
        atomic_exchange(&probe.attach_tried, 1))
        return;
    const char *path = getenv(MD_PROBE_ENV);
    size_t mapped;
    probe.inactive = true; // until the file checks out
    if (!path || !map_file(path, &mapped))
        return;
    struct md_probe_header *h = probe.view.header;
    learn_ids(h);
    note_own_maps(h, h, mapped);
    char comm[MD_PROBE_COMM] = "";
    if (!syscall(SYS_prctl, PR_GET_NAME, comm, 0, 0, 0)) // not through our own prctl
        md_probe_note_image(h, probe.pid, comm);
    note_main_thread();
    probe.threshold = h->slow_threshold_ticks;
    probe.overflow_slot = &probe.view.slots[0]; // slot 0 is reserved for overflow
    probe.inactive = false;
    probe.rseq = !(h->flags & MD_PROBE_PRECISE) && rseq_mark_works();
    atomic_fetch_or(&h->method, probe.rseq ? MD_METHOD_RSEQ : MD_METHOD_TICKS);
    probe.shared = h;
    record_provider(h);
    uint32_t flags = md_probe_view_flags(&probe.view);
    if (flags)
        md_probe_code_record(&probe.view, probe.pid);
    probe.flags = flags; // last: they need the objects
    // tail mode needs the rseq mark, and --stacks and --leaks need every call's return
    probe.tail_calls = probe.rseq && !flags && (h->flags & MD_PROBE_TAIL_CALLS);
    atomic_store_explicit(&probe.chunks, chunk_reading_start(&probe.real), memory_order_relaxed);
    // the fast path times calls with the rseq mark only (see struct fast_path)
    atomic_store_explicit(&probe.fast_path_allowed, probe.rseq, memory_order_release);
}

// A forked child is a new process: its threads need slots of their own, and its pid names its
// stacks, live blocks and objects.
static void forget_slot_in_child(void)
{
    tls_slot = NULL;
    tls_fast = (struct fast_path){0};
    tls_stacks = (struct stack_cache){0}; // the parent's batch is the parent's
    pid_t parent = probe.pid;
    probe.own_pid = getpid();
    note_main_thread(); // the thread that forked is the child's only one
    if (probe.shared) { // a process of its own that runs with the probe, though it may never exec
        learn_ids(probe.shared);
    }
    if (probe.shared && probe.flags)
        md_probe_code_adopt_in_child(parent, probe.pid);
}

// The exiting thread's last batch; other threads flush when they change stacks. In tail mode,
// the window after its last call (a free's munmap before exit) is closed as at a next call.
__attribute__((destructor)) static void probe_fini(void)
{
    if (tls_fast.tail)
        fast_begin(tls_fast.rseq_cs);
    if (probe.shared && probe.flags)
        flush_stack_counts(&tls_stacks);
}

__attribute__((constructor)) static void probe_init(void)
{
    if (!probe.real.malloc)
        resolve();
    attach_shared();
    // musl's pthread_atfork allocates its entry: the probe's own block, not the program's (it
    // would count as a call, and as a leak with --leaks)
    tls_nested = true;
    pthread_atfork(NULL, NULL, forget_slot_in_child);
    tls_nested = false;
}

static struct md_probe_slot *claim_slot(void)
{
    struct md_probe_header *h = probe.shared;
    struct md_probe_slot *slots = probe.view.slots;
    for (uint32_t i = atomic_load(&h->slots_used) + 1; i < probe.view.slot_count; i++) {
        uint32_t free_state = 0;
        if (atomic_compare_exchange_strong(&slots[i].claimed, &free_state, 1)) {
            slots[i].pid = probe.pid;
            slots[i].tid = thread_id();
            atomic_fetch_add(&h->slots_used, 1);
            return &slots[i];
        }
    }
    atomic_fetch_add(&h->slots_overflow, 1);
    return probe.overflow_slot;
}

static inline struct md_probe_slot *my_slot(void)
{
    if (__builtin_expect(tls_slot != NULL, 1))
        return tls_slot;
    if (!probe.shared)
        attach_shared();
    if (!probe.shared)
        return NULL;
    tls_slot = claim_slot();
    if (atomic_load_explicit(&probe.fast_path_allowed, memory_order_acquire) &&
        tls_slot != probe.overflow_slot && !(probe.flags & MD_PROBE_WANT_LEAKS))
        tls_fast = (struct fast_path){.slot = tls_slot,
                                      .rseq_cs = rseq_cs_field(),
                                      .exact_left = probe.tail_calls ? MD_EXACT_CALLS : UINT64_MAX};
    return tls_slot;
}

static void log_slow(struct md_probe_slot *s, enum md_probe_op op, uint64_t size, uint64_t ticks,
                     uint64_t start_realtime_ns, uint64_t end_realtime_ns, uint32_t stack,
                     enum md_probe_slow_kind kind)
{
    const struct md_probe_view *v = &probe.view;
    // no log (only the header is mapped): dropped without a claim on one
    uint64_t at = v->slow_max ? atomic_fetch_add(&v->header->slow_used, 1) : 0;
    if (at >= v->slow_max) {
        __atomic_fetch_add(&s->slow_dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    v->slow_log[at] = (struct md_probe_slow){.ticks = ticks,
                                             .start_realtime_ns = start_realtime_ns,
                                             .end_realtime_ns = end_realtime_ns,
                                             .size = size,
                                             .tid = thread_id(),
                                             .op = (uint16_t)op,
                                             .kind = (uint16_t)kind,
                                             .stack = stack};
}

// A call found slow when it returned: counted as one and logged; in tail mode only logged, as a
// window set apart (slow_call_kind).
static void log_slow_call(struct md_probe_slot *s, enum md_probe_op op, uint64_t size,
                          const struct call_times *t, uint32_t stack)
{
    enum md_probe_slow_kind kind = slow_call_kind();
    if (kind == MD_SLOW_CALL)
        __atomic_fetch_add(&s->slow_calls, 1, __ATOMIC_RELAXED);
    log_slow(s, op, size, t->window_ticks, t->start_realtime, t->end_realtime, stack, kind);
}

// result: the block returned (a block released left the live-block table before the call:
// live_release).
// Everything but the common case: the first call of a thread, the overflow slot, a slow call,
// and --stacks/--leaks bookkeeping. Kept out of line so the fast path stays small.
__attribute__((noinline)) static void record_slow(enum md_probe_op op, uint64_t size,
                                                  const struct mark *m, void *result,
                                                  const struct caller *c)
{
    struct call_times t;
    bool slow = mark_end(m, &t);
    struct md_probe_slot *s = my_slot();
    if (!s)
        return;
    if (s == probe.overflow_slot)
        md_probe_count_atomic(s, op, size);
    else
        md_probe_count(s, op, size);
    slow = slow && (m->rseq || t.call_ticks > probe.threshold); // the real one, once attached
    uint32_t stack = 0;
    if (probe.flags) {
        stack = track(op, size, result, c);
        unsigned guess_slot;
        if (slow && !stack) // a slow free: its stack names who waited or unmapped
            stack = stack_id(c, &guess_slot);
    }
    if (slow)
        log_slow_call(s, op, size, &t, stack);
}

// True when the call was fast: rseq_cs is still armed, or few ticks passed.
static inline bool mark_fast(const struct mark *m)
{
    if (m->rseq)
        return mark_armed(*rseq_cs_field());
    return md_probe_ticks() - m->t0 <= probe.threshold && probe.threshold;
}

static inline void record(enum md_probe_op op, uint64_t size, const struct mark *m, void *result,
                          const struct caller *c)
{
    if (__builtin_expect(probe.inactive, 0))
        return;
    struct md_probe_slot *s = tls_slot;
    if (__builtin_expect(s && s != probe.overflow_slot && !probe.flags, 1) && mark_fast(m)) {
        md_probe_count(s, op, size);
        return;
    }
    record_slow(op, size, m, result, c);
}

static inline bool ready(void)
{
    if (__builtin_expect(probe.real.malloc != NULL, 1))
        return true;
    if (!probe.resolving)
        resolve();
    return probe.real.malloc != NULL && !probe.resolving;
}

__attribute__((noinline)) static void *malloc_full(size_t n)
{
    if (tls_nested)
        return probe.real.malloc(n);
    if (!ready())
        return boot_alloc(n);
    struct mark m;
    mark_begin(&m);
    void *p = probe.real.malloc(n);
    record(MD_OP_MALLOC, n, &m, p, CALLER);
    return p;
}

// The size of a block about to be freed: it tells which size band a munmap or madvise inside the
// call belongs to. 0 when the allocator cannot say.
static uint64_t freed_block_size(void *p)
{
    return !probe.inactive && probe.real.usable_size ? block_size_at_free(p) : 0;
}

__attribute__((noinline)) static void free_full(void *p)
{
    if (tls_nested && !is_boot(p)) {
        probe.real.free(p);
        return;
    }
    if (!p || is_boot(p))
        return;
    if (!ready())
        return;
    uint64_t size = freed_block_size(p), was_size;
    uint32_t was_stack;
    live_release(p, &was_size, &was_stack);
    struct mark m;
    mark_begin(&m);
    probe.real.free(p);
    record(MD_OP_FREE, size, &m, NULL, CALLER);
}

__attribute__((noinline)) static void *calloc_full(size_t n, size_t each)
{
    if (!ready()) {
        size_t total;
        if (__builtin_mul_overflow(n, each, &total))
            return NULL;
        return boot_alloc(total); // static storage: already zero
    }
    if (tls_nested)
        return probe.real.calloc(n, each);
    struct mark m;
    mark_begin(&m);
    struct fast_path outer = nested_begin();
    void *p = probe.real.calloc(n, each);
    nested_end(outer);
    record(MD_OP_CALLOC, (uint64_t)n * each, &m, p, CALLER);
    return p;
}

static void *realloc_from_boot(void *old, size_t n)
{
    void *p = probe.real.malloc(n);
    if (p && old) {
        size_t room = BOOT_BYTES - (size_t)((unsigned char *)old - probe.boot);
        memcpy(p, old, n < room ? n : room);
    }
    return p;
}

__attribute__((noinline)) static void *realloc_full(void *old, size_t n)
{
    if (!ready())
        return boot_alloc(n);
    if (is_boot(old))
        return realloc_from_boot(old, n);
    if (tls_nested)
        return probe.real.realloc(old, n);
    uint64_t was_size;
    uint32_t was_stack;
    bool was_live = live_release(old, &was_size, &was_stack);
    struct mark m;
    mark_begin(&m);
    struct fast_path outer = nested_begin();
    void *p = probe.real.realloc(old, n);
    nested_end(outer);
    // a failed realloc keeps the old block, still the caller's, so it goes back as it was;
    // realloc(p, 0) may free it and return NULL
    if (was_live && !p && n)
        live_insert(old, was_size, was_stack);
    record(MD_OP_REALLOC, n, &m, p, CALLER);
    return p;
}

// --- the fast path ---------------------------------------------------------------------------
//
// Nearly every call takes only this path. In tail mode (above) malloc and free load the tail slot
// and rseq_cs, count, and forward with a tail call. In exact mode one TLS load says whether the
// path applies, a load of rseq_cs before and after the call says whether the thread was switched
// out (it is re-armed only when it was), then plain increments in the thread's own slot.
// Everything else (a thread's first call,
// live blocks, tick timing, the boot buffer, and in malloc and free a call that must re-arm) is a
// tail call into the full path above, so that path still sees the program's frame as its
// caller's.
//
// malloc and free keep nothing in a register across the forwarded call: the call is counted
// before it is forwarded, its size waits in the stack slot the call's alignment needs anyway, and
// after the call only rseq_cs is read again. So they save no registers: that took about 1.5 ns
// off each malloc/free pair, a third of what the probe added to glibc's (session 9). The size is
// not kept in TLS, where a call nested in this one (a signal handler's, an allocator's own) would
// overwrite it. What needs the caller's stack (a slow call, and with --stacks every allocation)
// runs after the call in a function reached by a tail call, which therefore sees the program's
// frame and return address as its own caller's.

// Cleared on return: the call was switched out (a syscall, a lock wait). With --stacks the
// caller's stack names who waited or unmapped.
__attribute__((noinline)) static void fast_log_slow(struct md_probe_slot *s, enum md_probe_op op,
                                                    uint64_t size, const struct caller *c)
{
    const struct mark m = {.rseq = true};
    struct call_times t;
    if (!mark_end(&m, &t))
        return;
    uint32_t stack = probe.flags & MD_PROBE_WANT_STACKS ? cached_stack_id(c) : 0;
    log_slow_call(s, op, size, &t, stack);
}

// After malloc's or free's forwarded call, when it was slow or --stacks wants the allocation's
// stack; tail-called, so CALLER is the program's. Returns the call's result, so that the wrapper
// keeps it without saving a register.
__attribute__((noinline)) static void *fast_after_call(enum md_probe_op op, void *result,
                                                       uint64_t size)
{
    struct md_probe_slot *s = tls_fast.slot;
    if (!s) // a child forked during the call (by a signal handler): the slot was its parent's
        return result;
    if (!mark_armed(*tls_fast.rseq_cs))
        fast_log_slow(s, op, size, CALLER);
    if (op != MD_OP_FREE && result && (probe.flags & MD_PROBE_WANT_STACKS))
        count_allocation_stack(size, CALLER);
    return result;
}

// After the forwarded call, whether it was switched out. rseq_cs is read again through the
// thread pointer, and compared with the descriptor's address, in one volatile asm, so that the
// compiler keeps no address in a callee-saved register across the call (the fast path only runs
// where the rseq mark works: x86-64).
static inline bool fast_was_slow(void)
{
#if MD_HAVE_RSEQ_MARK
    uint64_t cs, armed;
    __asm__ volatile("movq __rseq_offset@GOTPCREL(%%rip), %0\n\t"
                     "movq (%0), %0\n\t"
                     "movq %%fs:8(%0), %0\n\t"
                     "leaq never_descriptor(%%rip), %1"
                     : "=r"(cs), "=r"(armed)
                     :
                     : "memory"); // the kernel writes the field behind the compiler's back
    return __builtin_expect(cs != armed, 0);
#else
    return !mark_armed(*rseq_cs_field());
#endif
}

// The end of calloc's and realloc's fast path, which keeps its state across the call; with
// --stacks the allocation's stack counts one more allocation of its size.
#define FAST_END_ALLOCATION(f, result, op, size)                                                   \
    do {                                                                                           \
        if (__builtin_expect(!mark_armed(*(f).rseq_cs), 0))                                        \
            fast_log_slow((f).slot, op, size, CALLER);                                             \
        md_probe_count((f).slot, op, size);                                                        \
        if (__builtin_expect((probe.flags & MD_PROBE_WANT_STACKS) && (result), 0))                 \
            count_allocation_stack(size, CALLER);                                                  \
    } while (0)

// The fast path applies and rseq_cs is still armed: re-arming reads the clock, a call that would
// need registers saved around it, so a call that must re-arm takes the full path.
static inline struct md_probe_slot *fast_slot_armed(void)
{
    struct md_probe_slot *s = tls_fast.slot;
    return s && mark_armed(*tls_fast.rseq_cs) ? s : NULL;
}

// An exact-mode malloc or free whose countdown reached 0 (see "tail mode"): it takes the full
// path, and the thread's next calls are tail calls.
static inline bool exact_mode_ends(void)
{
    if (__builtin_expect(--tls_fast.exact_left != 0, 1))
        return false;
    enter_tail_mode();
    return true;
}

__attribute__((noinline)) static void *malloc_exact(size_t n)
{
    struct md_probe_slot *s = fast_slot_armed();
    if (__builtin_expect(!s || exact_mode_ends(), 0))
        return malloc_full(n);
    md_probe_count(s, MD_OP_MALLOC, n);
    volatile uint64_t size = n; // on the stack, not in a saved register
    void *p = probe.real.malloc(n);
    if (__builtin_expect(fast_was_slow() || (probe.flags & MD_PROBE_WANT_STACKS), 0))
        return fast_after_call(MD_OP_MALLOC, p, size);
    return p;
}

__attribute__((noinline)) static void free_exact(void *p)
{
    struct md_probe_slot *s = fast_slot_armed();
    // the block's size tells which size band a munmap or madvise inside free belongs to
    uint64_t block;
    if (__builtin_expect(
            !s || !p || is_boot(p) || !chunk_size_inline(p, &block) || exact_mode_ends(), 0))
        return free_full(p);
    md_probe_count(s, MD_OP_FREE, block);
    volatile uint64_t size = block; // on the stack, not in a saved register
    probe.real.free(p);
    if (fast_was_slow())
        fast_after_call(MD_OP_FREE, NULL, size);
}

// In tail mode: counted, and forwarded with a tail call while the mark is armed. A free does not
// read its block's size there: no syscall is ever tied to a call in tail mode.
EXPORT void *malloc(size_t n)
{
    struct md_probe_slot *s = tls_fast.tail;
    if (__builtin_expect(s && mark_armed(*tls_fast.rseq_cs), 1)) {
        md_probe_count(s, MD_OP_MALLOC, n);
        return probe.real.malloc(n);
    }
    return malloc_exact(n);
}

EXPORT void free(void *p)
{
    struct md_probe_slot *s = tls_fast.tail;
    if (__builtin_expect(s && mark_armed(*tls_fast.rseq_cs) && p && !is_boot(p), 1)) {
        md_probe_count(s, MD_OP_FREE, 0);
        probe.real.free(p);
        return;
    }
    free_exact(p);
}

EXPORT void *calloc(size_t n, size_t each)
{
    const struct fast_path f = tls_fast;
    if (__builtin_expect(!f.slot, 0))
        return calloc_full(n, each);
    fast_begin(f.rseq_cs);
    struct fast_path outer = nested_begin(); // after fast_begin, which may leave tail mode
    void *p = probe.real.calloc(n, each);
    if (nested_end(outer)) // a child forked inside the call leaves the call to its parent's count
        FAST_END_ALLOCATION(f, p, MD_OP_CALLOC, (uint64_t)n * each);
    return p;
}

EXPORT void *realloc(void *old, size_t n)
{
    const struct fast_path f = tls_fast;
    if (__builtin_expect(!f.slot || is_boot(old), 0))
        return realloc_full(old, n);
    fast_begin(f.rseq_cs);
    struct fast_path outer = nested_begin();
    void *p = probe.real.realloc(old, n);
    if (nested_end(outer))
        FAST_END_ALLOCATION(f, p, MD_OP_REALLOC, n);
    return p;
}

EXPORT void *reallocarray(void *old, size_t n, size_t each)
{
    size_t total;
    if (__builtin_mul_overflow(n, each, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(old, total);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    if (!ready() || !probe.real.posix_memalign)
        return ENOMEM;
    if (tls_nested)
        return probe.real.posix_memalign(out, align, n);
    struct mark m;
    mark_begin(&m);
    struct fast_path outer = nested_begin();
    int rc = probe.real.posix_memalign(out, align, n);
    nested_end(outer);
    record(MD_OP_ALIGNED, n, &m, rc ? NULL : *out, CALLER);
    return rc;
}

// One body for the pointer-returning aligned variants, which differ only in the function called.
#define ALIGNED_VARIANT(name, params, args, size)                                                  \
    EXPORT void *name params                                                                       \
    {                                                                                              \
        if (!ready() || !probe.real.name)                                                          \
            return NULL;                                                                           \
        if (tls_nested)                                                                            \
            return probe.real.name args;                                                           \
        struct mark m;                                                                             \
        mark_begin(&m);                                                                            \
        struct fast_path outer = nested_begin();                                                   \
        void *p = probe.real.name args;                                                            \
        nested_end(outer);                                                                         \
        record(MD_OP_ALIGNED, size, &m, p, CALLER);                                                \
        return p;                                                                                  \
    }

ALIGNED_VARIANT(aligned_alloc, (size_t align, size_t n), (align, n), n)
ALIGNED_VARIANT(memalign, (size_t align, size_t n), (align, n), n)
ALIGNED_VARIANT(valloc, (size_t n), (n), n)
ALIGNED_VARIANT(pvalloc, (size_t n), (n), n)

EXPORT size_t malloc_usable_size(void *p)
{
    if (!p || is_boot(p) || !ready() || !probe.real.usable_size)
        return 0;
    return probe.real.usable_size(p);
}

// --- C++ operator new and delete -------------------------------------------------------------
//
// An allocator that defines operator new and delete itself (tcmalloc, jemalloc, mimalloc) serves
// them without calling malloc, so the probe interposes them as well. Each counts as the call it
// stands for: new and new[] (nothrow too) as malloc, their aligned forms as aligned, every delete
// as free; the slot's cxx_new and cxx_delete say how many of those were C++'s. libstdc++'s own
// new calls malloc, its new[] calls new, its sized and array deletes call delete: the allocator's
// own work while it serves a call, forwarded without being counted again (nested_begin). These
// calls take no fast path: they cost one forward more than malloc and free.
//
// operator new may throw (std::bad_alloc, or whatever a new_handler throws) through the wrapper:
// a cleanup then ends the nested state, or every later call of the thread would go uncounted. So
// this file is built with -fexceptions, and its references to the unwinder are weak
// (alloc/probe.mk): the libgcc_s that every C++ runtime loads resolves them, and a C program loads
// nothing more for them.

// name; what serves it when no object after the probe defines it (see cxx_resolve); what
// libstdc++'s definition of it does (see cxx_direct)
#define CXX_FUNCTIONS(X)                                                                           \
    X(_Znwm, cxx_fallback_new, CXX_MALLOC)                                                         \
    X(_Znam, cxx_fallback_new, CXX_MALLOC)                                                         \
    X(_ZnwmRKSt9nothrow_t, cxx_fallback_new_nothrow, CXX_MALLOC)                                   \
    X(_ZnamRKSt9nothrow_t, cxx_fallback_new_nothrow, CXX_MALLOC)                                   \
    X(_ZnwmSt11align_val_t, cxx_fallback_new_aligned, CXX_OWN)                                     \
    X(_ZnamSt11align_val_t, cxx_fallback_new_aligned, CXX_OWN)                                     \
    X(_ZnwmSt11align_val_tRKSt9nothrow_t, cxx_fallback_new_aligned_nothrow, CXX_OWN)               \
    X(_ZnamSt11align_val_tRKSt9nothrow_t, cxx_fallback_new_aligned_nothrow, CXX_OWN)               \
    X(_ZdlPv, cxx_fallback_delete, CXX_FREE)                                                       \
    X(_ZdaPv, cxx_fallback_delete, CXX_FREE)                                                       \
    X(_ZdlPvm, cxx_fallback_delete_n, CXX_FREE)                                                    \
    X(_ZdaPvm, cxx_fallback_delete_n, CXX_FREE)                                                    \
    X(_ZdlPvSt11align_val_t, cxx_fallback_delete_n, CXX_OWN)                                       \
    X(_ZdaPvSt11align_val_t, cxx_fallback_delete_n, CXX_OWN)                                       \
    X(_ZdlPvmSt11align_val_t, cxx_fallback_delete_n_n, CXX_OWN)                                    \
    X(_ZdaPvmSt11align_val_t, cxx_fallback_delete_n_n, CXX_OWN)                                    \
    X(_ZdlPvRKSt9nothrow_t, cxx_fallback_delete_nothrow, CXX_FREE)                                 \
    X(_ZdaPvRKSt9nothrow_t, cxx_fallback_delete_nothrow, CXX_FREE)                                 \
    X(_ZdlPvSt11align_val_tRKSt9nothrow_t, cxx_fallback_delete_n_nothrow, CXX_OWN)                 \
    X(_ZdaPvSt11align_val_tRKSt9nothrow_t, cxx_fallback_delete_n_nothrow, CXX_OWN)

#define CXX_ENUM(name, fallback, libstdcxx) CXX_##name,
enum cxx_fn { CXX_FUNCTIONS(CXX_ENUM) CXX_FNS };

// What libstdc++'s definition does: malloc in a new_handler loop (new, new[] and their nothrow
// forms, through new), free (every unaligned delete, through delete), or its own aligned work.
enum cxx_libstdcxx { CXX_MALLOC, CXX_FREE, CXX_OWN };

// A C++ entry point called where no C++ runtime defines it: only code bound to the probe's own
// definitions can call it (a library loaded later beside a runtime of its own, in its local
// scope). The block then comes from malloc itself; C cannot throw std::bad_alloc, so a throwing
// new that finds no memory says so and aborts instead of returning NULL to code that never checks.
__attribute__((noreturn, cold)) static void cxx_no_runtime(void)
{
    static const char msg[] = "malloc-doctor probe: operator new failed, and no C++ runtime "
                              "after the probe defines it to throw std::bad_alloc; aborting\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    abort();
}

static void *cxx_fallback_new_nothrow(size_t n, const void *nothrow)
{
    (void)nothrow;
    return probe.real.malloc(n ? n : 1);
}

static void *cxx_fallback_new(size_t n)
{
    void *p = cxx_fallback_new_nothrow(n, NULL);
    if (!p)
        cxx_no_runtime();
    return p;
}

static void *cxx_fallback_new_aligned_nothrow(size_t n, size_t align, const void *nothrow)
{
    (void)nothrow;
    void *p;
    if (!probe.real.posix_memalign || probe.real.posix_memalign(&p, align, n ? n : 1))
        return NULL;
    return p;
}

static void *cxx_fallback_new_aligned(size_t n, size_t align)
{
    void *p = cxx_fallback_new_aligned_nothrow(n, align, NULL);
    if (!p)
        cxx_no_runtime();
    return p;
}

static void cxx_fallback_delete(void *p)
{
    probe.real.free(p);
}

static void cxx_fallback_delete_n(void *p, size_t n_or_align)
{
    (void)n_or_align;
    probe.real.free(p);
}

static void cxx_fallback_delete_n_n(void *p, size_t n, size_t align)
{
    (void)n, (void)align;
    probe.real.free(p);
}

static void cxx_fallback_delete_nothrow(void *p, const void *nothrow)
{
    (void)nothrow;
    probe.real.free(p);
}

static void cxx_fallback_delete_n_nothrow(void *p, size_t align, const void *nothrow)
{
    (void)align, (void)nothrow;
    probe.real.free(p);
}

#define CXX_NAME(name, fallback, libstdcxx) #name,
static const char *const cxx_names[CXX_FNS] = {CXX_FUNCTIONS(CXX_NAME)};
#define CXX_FALLBACK(name, fallback, libstdcxx) (void *)fallback,
static void *const cxx_fallbacks[CXX_FNS] = {CXX_FUNCTIONS(CXX_FALLBACK)};
#define CXX_LIBSTDCXX(name, fallback, libstdcxx) libstdcxx,
static const enum cxx_libstdcxx cxx_libstdcxx_does[CXX_FNS] = {CXX_FUNCTIONS(CXX_LIBSTDCXX)};
static _Atomic(void *) cxx_next_fn[CXX_FNS];
// Stored before cxx_next_fn[fn] is published. Atomic (relaxed, a plain load on x86-64): two
// threads may resolve fn at once, and a third read it while the second stores the same value.
static _Atomic bool cxx_direct_fn[CXX_FNS];

#define LIBSTDCXX "libstdc++.so.6"

// Whether the program's calls of name bind to the probe's definition (the first in lookup order).
static bool bound_to_probe(const char *name)
{
    Dl_info fn, own;
    void *found = dlsym(RTLD_DEFAULT, name);
    return found && dladdr(found, &fn) && dladdr((void *)&bound_to_probe, &own) &&
           fn.dli_fbase == own.dli_fbase;
}

// libstdc++'s new is malloc in a new_handler loop and its delete is free; its other unaligned
// forms end in those two. Forwarding to them costs two more passes through libstdc++ and the
// probe (its new calls malloc, which comes back here, nested) than calling malloc and free
// directly: about 16 ns per call here. So the probe calls them itself when that is what
// libstdc++ would do: the program's malloc, free, new and delete bind to the probe (the program
// replaces none of them) and libstdc++'s come next. A failed malloc still goes to libstdc++'s new,
// for the new_handler and std::bad_alloc.
static bool cxx_libstdcxx_direct(void)
{
    // 1 yes, 2 no; racing threads compute the same answer, and write it as an atomic so that the
    // race is defined (relaxed: nothing else is published with it)
    static _Atomic int known;
    int k = atomic_load_explicit(&known, memory_order_relaxed);
    if (!k) {
        k = bound_to_probe("malloc") && bound_to_probe("free") && bound_to_probe("_Znwm") &&
                    bound_to_probe("_ZdlPv") && defined_in(dlsym(RTLD_NEXT, "_Znwm"), LIBSTDCXX) &&
                    defined_in(dlsym(RTLD_NEXT, "_ZdlPv"), LIBSTDCXX)
                ? 1
                : 2;
        atomic_store_explicit(&known, k, memory_order_relaxed);
    }
    return k == 1;
}

// Looks up fn's next definition on its first call, so that a C program pays nothing. A failed
// dlsym allocates its error message: the probe's own work, not counted.
__attribute__((noinline)) static void *cxx_resolve(enum cxx_fn fn)
{
    bool was_nested = tls_nested;
    struct fast_path outer = tls_fast;
    tls_fast.slot = tls_fast.tail = NULL;
    tls_nested = true;
    void *next = dlsym(RTLD_NEXT, cxx_names[fn]);
    bool direct =
        cxx_libstdcxx_does[fn] != CXX_OWN && defined_in(next, LIBSTDCXX) && cxx_libstdcxx_direct();
    atomic_store_explicit(&cxx_direct_fn[fn], direct, memory_order_relaxed);
    tls_nested = was_nested;
    tls_fast = outer;
    if (!next)
        next = cxx_fallbacks[fn];
    atomic_store_explicit(&cxx_next_fn[fn], next, memory_order_release);
    return next;
}

static inline void *cxx_next(enum cxx_fn fn)
{
    void *next = atomic_load_explicit(&cxx_next_fn[fn], memory_order_acquire);
    return __builtin_expect(next != NULL, 1) ? next : cxx_resolve(fn);
}

// Whether fn goes straight to the C allocator (read after cxx_next(fn) has resolved it).
static inline bool cxx_direct(enum cxx_fn fn)
{
    return atomic_load_explicit(&cxx_direct_fn[fn], memory_order_relaxed);
}

// Ends the nested state when the forwarded call returns, and when it throws.
static void cxx_unnest(struct fast_path *outer)
{
    nested_end(*outer);
}

// One more C++ call among those the slot counts (see struct md_probe_slot), after record().
static inline void count_cxx(bool is_new)
{
    struct md_probe_slot *s = tls_slot;
    if (!s || probe.inactive)
        return;
    uint64_t *n = is_new ? &s->cxx_new : &s->cxx_delete;
    if (s == probe.overflow_slot)
        __atomic_fetch_add(n, 1, __ATOMIC_RELAXED);
    else
        (*n)++;
}

// The forwarded call, nested: what the allocator calls while it serves this one is its own work.
#define CXX_FORWARD(call)                                                                          \
    do {                                                                                           \
        struct fast_path outer __attribute__((cleanup(cxx_unnest))) = nested_begin();              \
        call;                                                                                      \
    } while (0)

#define CXX_NEW(name, params, args, op, n)                                                         \
    EXPORT void *name params;                                                                      \
    EXPORT void *name params                                                                       \
    {                                                                                              \
        __typeof__(&name) next = (__typeof__(&name))cxx_next(CXX_##name);                          \
        if (tls_nested || !ready())                                                                \
            return next args;                                                                      \
        struct mark m;                                                                             \
        mark_begin(&m);                                                                            \
        void *p = cxx_direct(CXX_##name) ? probe.real.malloc(n ? n : 1) : NULL;                    \
        if (!p)                                                                                    \
            CXX_FORWARD(p = next args);                                                            \
        record(op, n, &m, p, CALLER);                                                              \
        count_cxx(true);                                                                           \
        return p;                                                                                  \
    }

// delete of NULL does nothing, as free(NULL), and is not counted either.
#define CXX_DELETE(name, params, args, p)                                                          \
    EXPORT void name params;                                                                       \
    EXPORT void name params                                                                        \
    {                                                                                              \
        __typeof__(&name) next = (__typeof__(&name))cxx_next(CXX_##name);                          \
        if (!p || is_boot(p))                                                                      \
            return;                                                                                \
        if (tls_nested || !ready()) {                                                              \
            next args;                                                                             \
            return;                                                                                \
        }                                                                                          \
        uint64_t size = freed_block_size(p), was_size;                                             \
        uint32_t was_stack;                                                                        \
        live_release(p, &was_size, &was_stack);                                                    \
        struct mark m;                                                                             \
        mark_begin(&m);                                                                            \
        if (cxx_direct(CXX_##name))                                                                \
            probe.real.free(p);                                                                    \
        else                                                                                       \
            CXX_FORWARD(next args);                                                                \
        record(MD_OP_FREE, size, &m, NULL, CALLER);                                                \
        count_cxx(false);                                                                          \
    }

// Itanium names: new(size_t), new(size_t, std::align_val_t) (a size_t), new(..., const
// std::nothrow_t &) (a pointer); delete(void *), with the size, the alignment, or nothrow_t.
CXX_NEW(_Znwm, (size_t n), (n), MD_OP_MALLOC, n)
CXX_NEW(_Znam, (size_t n), (n), MD_OP_MALLOC, n)
CXX_NEW(_ZnwmRKSt9nothrow_t, (size_t n, const void *nt), (n, nt), MD_OP_MALLOC, n)
CXX_NEW(_ZnamRKSt9nothrow_t, (size_t n, const void *nt), (n, nt), MD_OP_MALLOC, n)
CXX_NEW(_ZnwmSt11align_val_t, (size_t n, size_t al), (n, al), MD_OP_ALIGNED, n)
CXX_NEW(_ZnamSt11align_val_t, (size_t n, size_t al), (n, al), MD_OP_ALIGNED, n)
CXX_NEW(_ZnwmSt11align_val_tRKSt9nothrow_t, (size_t n, size_t al, const void *nt), (n, al, nt),
        MD_OP_ALIGNED, n)
CXX_NEW(_ZnamSt11align_val_tRKSt9nothrow_t, (size_t n, size_t al, const void *nt), (n, al, nt),
        MD_OP_ALIGNED, n)
CXX_DELETE(_ZdlPv, (void *p), (p), p)
CXX_DELETE(_ZdaPv, (void *p), (p), p)
CXX_DELETE(_ZdlPvm, (void *p, size_t n), (p, n), p)
CXX_DELETE(_ZdaPvm, (void *p, size_t n), (p, n), p)
CXX_DELETE(_ZdlPvSt11align_val_t, (void *p, size_t al), (p, al), p)
CXX_DELETE(_ZdaPvSt11align_val_t, (void *p, size_t al), (p, al), p)
CXX_DELETE(_ZdlPvmSt11align_val_t, (void *p, size_t n, size_t al), (p, n, al), p)
CXX_DELETE(_ZdaPvmSt11align_val_t, (void *p, size_t n, size_t al), (p, n, al), p)
CXX_DELETE(_ZdlPvRKSt9nothrow_t, (void *p, const void *nt), (p, nt), p)
CXX_DELETE(_ZdaPvRKSt9nothrow_t, (void *p, const void *nt), (p, nt), p)
CXX_DELETE(_ZdlPvSt11align_val_tRKSt9nothrow_t, (void *p, size_t al, const void *nt), (p, al, nt),
           p)
CXX_DELETE(_ZdaPvSt11align_val_tRKSt9nothrow_t, (void *p, size_t al, const void *nt), (p, al, nt),
           p)

// --- renamed processes -------------------------------------------------------------------------
//
// The tool tells a process that ran with a probe by the name the kernel has for it at exit
// (md_probe_image_noted). A program that renames its main thread (node's process.title, Ruby's
// $0, Python's setproctitle: prctl(PR_SET_NAME) underneath) would look like one that exec'd a
// program the probe could not follow, so a new name of the main thread is noted as well.
// Writing /proc/self/comm directly is not seen.

static void note_main_thread_name(const char *name)
{
    if (!probe.shared || probe.own_pid != getpid())
        return;
    char comm[MD_PROBE_COMM] = "";
    for (size_t k = 0; k + 1 < MD_PROBE_COMM && name[k]; k++) // the kernel keeps 15 bytes
        comm[k] = name[k];
    md_probe_note_image(probe.shared, probe.pid, comm);
}

EXPORT int prctl(int option, ...)
{
    // glibc's and musl's prctl read four more arguments whatever the option; so does this
    va_list ap;
    va_start(ap, option);
    unsigned long arg[4];
    for (size_t i = 0; i < 4; i++)
        arg[i] = va_arg(ap, unsigned long);
    va_end(ap);
    static int (*next)(int, ...);
    if (!next)
        next = (int (*)(int, ...))dlsym(RTLD_NEXT, "prctl");
    int rc = next ? next(option, arg[0], arg[1], arg[2], arg[3])
                  : (int)syscall(SYS_prctl, option, arg[0], arg[1], arg[2], arg[3]);
    if (rc == 0 && option == PR_SET_NAME && (pid_t)syscall(SYS_gettid) == getpid() && arg[0])
        note_main_thread_name((const char *)arg[0]);
    return rc;
}

EXPORT int pthread_setname_np(pthread_t thread, const char *name)
{
    static int (*next)(pthread_t, const char *);
    if (!next)
        next = (int (*)(pthread_t, const char *))dlsym(RTLD_NEXT, "pthread_setname_np");
    if (!next)
        return ENOSYS;
    int rc = next(thread, name);
    if (rc == 0 && probe.main_thread_known && pthread_equal(thread, probe.main_thread))
        note_main_thread_name(name);
    return rc;
}

#ifndef __GLIBC__
// musl has no lock-free lookup of an object loaded since the start (glibc's _dl_find_object, see
// alloc/probe_code.c), so its new objects are recorded when dlopen returns: outside any allocator
// call and the loader's lock, where dl_iterate_phdr may run.
EXPORT void *dlopen(const char *file, int mode)
{
    typedef void *(*dlopen_fn)(const char *, int);
    static _Atomic(dlopen_fn) next_dlopen; // racing threads find the same function
    dlopen_fn next = atomic_load_explicit(&next_dlopen, memory_order_relaxed);
    if (!next) {
        next = (dlopen_fn)dlsym(RTLD_NEXT, "dlopen");
        atomic_store_explicit(&next_dlopen, next, memory_order_relaxed);
    }
    if (!next)
        return NULL;
    void *handle = next(file, mode);
    if (handle && probe.shared && probe.flags)
        md_probe_code_refresh(&probe.view, probe.pid);
    return handle;
}
#endif
