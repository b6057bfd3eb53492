// SPDX-License-Identifier: MIT
// malloc-doctor's probe: an LD_PRELOAD library that counts every allocator call of a dynamic
// program and forwards it to the next allocator (glibc's, musl's, mimalloc, ...).
//
// Cost matters more than anything here: the fast path is a TLS load, a few plain increments in
// this thread's own slot of a shared file mapping, and two tick reads. Calls slower than a
// threshold (the ones that made syscalls, or waited on a lock) are logged with their tick stamps
// so the tool can join them with strace's timestamps and say which request sizes cost syscalls.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

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
    int resolving; // dlsym may allocate: those requests come from boot[]
    struct md_probe_header *shared;
    _Atomic int attach_tried;            // the first allocator call may come before our constructor
    struct md_probe_slot *overflow_slot; // shared by threads that found no slot (atomic adds)
    uint64_t threshold;
    size_t boot_used;
    _Alignas(64) unsigned char boot[BOOT_BYTES];
} probe;

static __thread struct md_probe_slot *tls_slot __attribute__((tls_model("initial-exec")));

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

static void resolve(void)
{
    probe.resolving = 1;
    struct real_allocator r;
    r.malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    r.free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    r.calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    r.realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    r.reallocarray = (void *(*)(void *, size_t, size_t))dlsym(RTLD_NEXT, "reallocarray");
    r.posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    r.aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    r.memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
    r.valloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "valloc");
    r.pvalloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "pvalloc");
    r.usable_size = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    probe.real = r;
    probe.resolving = 0;
}

static void attach_shared(void)
{
    if (atomic_exchange(&probe.attach_tried, 1))
        return;
    const char *path = getenv(MD_PROBE_ENV);
    if (!path)
        return;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        if (fd >= 0)
            close(fd);
        return;
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    struct md_probe_header *h = map;
    if (map == MAP_FAILED || h->magic != MD_PROBE_MAGIC || h->version != MD_PROBE_VERSION ||
        (size_t)st.st_size < md_probe_file_size(h->slot_count, h->slow_max))
        return;
    atomic_fetch_add(&h->processes, 1);
    probe.threshold = h->slow_threshold_ticks;
    probe.overflow_slot = &md_probe_slots(h)[0]; // slot 0 is reserved for overflow
    probe.shared = h;
}

// A forked child is a new process: its threads need slots of their own.
static void forget_slot_in_child(void)
{
    tls_slot = NULL;
}

__attribute__((constructor)) static void probe_init(void)
{
    if (!probe.real.malloc)
        resolve();
    attach_shared();
    pthread_atfork(NULL, NULL, forget_slot_in_child);
}

static struct md_probe_slot *claim_slot(void)
{
    struct md_probe_header *h = probe.shared;
    struct md_probe_slot *slots = md_probe_slots(h);
    for (uint32_t i = atomic_load(&h->slots_used) + 1; i < h->slot_count; i++) {
        uint32_t free_state = 0;
        if (atomic_compare_exchange_strong(&slots[i].claimed, &free_state, 1)) {
            slots[i].pid = (int32_t)getpid();
            slots[i].tid = (int32_t)syscall(SYS_gettid);
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
    return tls_slot = claim_slot();
}

static uint64_t realtime_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

static void log_slow(struct md_probe_slot *s, enum md_probe_op op, uint64_t size, uint64_t ticks,
                     uint64_t end_realtime_ns)
{
    struct md_probe_header *h = probe.shared;
    uint64_t at = atomic_fetch_add(&h->slow_used, 1);
    if (at >= h->slow_max) {
        __atomic_fetch_add(&s->slow_dropped, 1, __ATOMIC_RELAXED);
        return;
    }
    md_probe_slow_log(h)[at] = (struct md_probe_slow){.ticks = ticks,
                                                      .end_realtime_ns = end_realtime_ns,
                                                      .size = size,
                                                      .tid = (int32_t)syscall(SYS_gettid),
                                                      .op = op};
}

static void count_shared(struct md_probe_slot *s, enum md_probe_op op, uint64_t size)
{
    __atomic_fetch_add(&s->ops[op], 1, __ATOMIC_RELAXED);
    if (op == MD_OP_FREE)
        return;
    __atomic_fetch_add(&s->bytes_requested, size, __ATOMIC_RELAXED);
    if (size < MD_HIST_EXACT)
        __atomic_fetch_add(&s->hist_exact[size], 1, __ATOMIC_RELAXED);
    else
        __atomic_fetch_add(&s->hist_log2[md_probe_log2_bin(size)], 1, __ATOMIC_RELAXED);
}

// size is the request; for free the block's usable size, which goes to the slow log only (the
// histogram and byte count describe requests).
static inline void record(enum md_probe_op op, uint64_t size, uint64_t t0)
{
    uint64_t ticks = md_probe_ticks() - t0, end_realtime = 0;
    // read the clock before attaching: attaching makes syscalls of its own. Until then the
    // threshold is 0 and every call reads it, which only the first few calls do.
    if (__builtin_expect(ticks > probe.threshold, 0))
        end_realtime = realtime_ns();
    struct md_probe_slot *s = my_slot();
    if (!s)
        return;
    if (__builtin_expect(s == probe.overflow_slot, 0)) {
        count_shared(s, op, op == MD_OP_FREE ? 0 : size);
    } else if (op == MD_OP_FREE) {
        s->ops[op]++;
    } else {
        s->ops[op]++;
        s->bytes_requested += size;
        if (size < MD_HIST_EXACT)
            s->hist_exact[size]++;
        else
            s->hist_log2[md_probe_log2_bin(size)]++;
    }
    if (__builtin_expect(end_realtime != 0, 0) && ticks > probe.threshold) {
        __atomic_fetch_add(&s->slow_calls, 1, __ATOMIC_RELAXED);
        log_slow(s, op, size, ticks, end_realtime);
    }
}

static inline bool ready(void)
{
    if (__builtin_expect(probe.real.malloc != NULL, 1))
        return true;
    if (!probe.resolving)
        resolve();
    return probe.real.malloc != NULL && !probe.resolving;
}

EXPORT void *malloc(size_t n)
{
    if (!ready())
        return boot_alloc(n);
    uint64_t t0 = md_probe_ticks();
    void *p = probe.real.malloc(n);
    record(MD_OP_MALLOC, n, t0);
    return p;
}

EXPORT void free(void *p)
{
    if (!p || is_boot(p))
        return;
    if (!ready())
        return;
    // the block's size tells which size band a munmap or madvise inside free belongs to
    uint64_t size = probe.real.usable_size ? probe.real.usable_size(p) : 0;
    uint64_t t0 = md_probe_ticks();
    probe.real.free(p);
    record(MD_OP_FREE, size, t0);
}

EXPORT void *calloc(size_t n, size_t each)
{
    if (!ready()) {
        size_t total;
        if (__builtin_mul_overflow(n, each, &total))
            return NULL;
        return boot_alloc(total); // static storage: already zero
    }
    uint64_t t0 = md_probe_ticks();
    void *p = probe.real.calloc(n, each);
    record(MD_OP_CALLOC, (uint64_t)n * each, t0);
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

EXPORT void *realloc(void *old, size_t n)
{
    if (!ready())
        return boot_alloc(n);
    if (is_boot(old))
        return realloc_from_boot(old, n);
    uint64_t t0 = md_probe_ticks();
    void *p = probe.real.realloc(old, n);
    record(MD_OP_REALLOC, n, t0);
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
    uint64_t t0 = md_probe_ticks();
    int rc = probe.real.posix_memalign(out, align, n);
    record(MD_OP_ALIGNED, n, t0);
    return rc;
}

// One body for the pointer-returning aligned variants, which differ only in the function called.
#define ALIGNED_VARIANT(name, params, args, size)                                                  \
    EXPORT void *name params                                                                       \
    {                                                                                              \
        if (!ready() || !probe.real.name)                                                          \
            return NULL;                                                                           \
        uint64_t t0 = md_probe_ticks();                                                            \
        void *p = probe.real.name args;                                                            \
        record(MD_OP_ALIGNED, size, t0);                                                           \
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
