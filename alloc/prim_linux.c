// SPDX-License-Identifier: MIT
// Linux implementation of prim.h. On x86_64 system calls are issued directly so that errno is
// never written and no libc wrapper is needed; elsewhere the libc `syscall` wrapper is used with
// errno saved and restored.
#define _GNU_SOURCE
#include "prim.h"
#include "md_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include "md_syscall.h"
#else
static long md_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
    int saved = errno;
    long ret = syscall(nr, a, b, c, d, e, f);
    if (ret == -1)
        ret = -errno;
    errno = saved;
    return ret;
}
#endif

static bool md_syscall_failed(long ret)
{
    return (unsigned long)ret > (unsigned long)-4096;
}

// No MAP_NORESERVE: the kernel's heuristic overcommit check (vm.overcommit_memory=0; the strict
// mode 2 ignores the flag anyway) must see every mapping, as it sees glibc's, so that a size it
// cannot back fails here with ENOMEM instead of succeeding and killing the program when touched
// (with MAP_NORESERVE, malloc of 1000 GiB succeeded on a 24 GiB machine). mdalloc maps no address
// space it does not mean to use: the over-mapping that aligns a segment is trimmed at once, and a
// huge block's room for growth is retried without (segment.c).
void *md_prim_mmap(void *hint, size_t size)
{
    long ret = md_syscall6(SYS_mmap, (long)hint, (long)size, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    md_stat_add(&md_stats.mmap_calls);
    if (md_syscall_failed(ret))
        return NULL;
    md_stat_map((int64_t)size);
    return (void *)ret;
}

void md_prim_munmap(void *addr, size_t size)
{
    md_syscall6(SYS_munmap, (long)addr, (long)size, 0, 0, 0, 0);
    md_stat_add(&md_stats.munmap_calls);
    md_stat_map(-(int64_t)size);
}

void md_prim_purge(void *addr, size_t size)
{
    md_syscall6(SYS_madvise, (long)addr, (long)size, MADV_DONTNEED, 0, 0, 0);
    md_stat_add(&md_stats.madvise_calls);
}

bool md_prim_remap_in_place(void *addr, size_t old_size, size_t new_size)
{
    long ret = md_syscall6(SYS_mremap, (long)addr, (long)old_size, (long)new_size, 0, 0, 0);
    if (md_syscall_failed(ret))
        return false;
    md_stat_map((int64_t)new_size - (int64_t)old_size);
    return true;
}

bool md_prim_remap_to(void *addr, size_t old_size, size_t new_size, void *target)
{
    long ret = md_syscall6(SYS_mremap, (long)addr, (long)old_size, (long)new_size,
                           MREMAP_MAYMOVE | MREMAP_FIXED, (long)target, 0);
    if (md_syscall_failed(ret))
        return false;
    md_stat_map(-(int64_t)old_size); // the target was counted when it was mapped
    return true;
}

#ifndef MREMAP_DONTUNMAP // musl's headers may not have it; the kernel's value
#define MREMAP_DONTUNMAP 4
#endif

// Whether mremap can leave the source of a move mapped (MREMAP_DONTUNMAP, Linux 5.7): asked once,
// by moving one page of a two-page scratch mapping. 0: not asked yet, 1: yes, 2: no.
static _Atomic int md_dontunmap_state;

static bool md_prim_can_dontunmap(void)
{
    int state = atomic_load_explicit(&md_dontunmap_state, memory_order_relaxed);
    if (state != 0)
        return state == 1;
    long scratch = md_syscall6(SYS_mmap, 0, 2 * MD_OS_PAGE, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (md_syscall_failed(scratch))
        return false; // no room to ask now (an address-space limit): not remembered
    long moved =
        md_syscall6(SYS_mremap, scratch, MD_OS_PAGE, MD_OS_PAGE,
                    MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, scratch + MD_OS_PAGE, 0);
    md_syscall6(SYS_munmap, scratch, 2 * MD_OS_PAGE, 0, 0, 0, 0);
    state = moved == scratch + MD_OS_PAGE ? 1 : 2;
    atomic_store_explicit(&md_dontunmap_state, state, memory_order_relaxed);
    return state == 1;
}

// The kernel picks the new place (mremap with MREMAP_MAYMOVE only), so the address space needed
// beyond the old mapping is the growth plus two alignments, as for glibc's mremap, instead of a
// second mapping of new_size next to the old one: under `ulimit -v 200000` a 90 MiB block could
// not grow to 120 MiB. The kernel's place is page aligned only, so the mapping is taken two
// alignments bigger and its contents moved up to the aligned base inside it, last chunk first,
// each chunk no longer than the shift so that no move's source and target overlap (page tables
// only, one mremap per chunk of at least `align` bytes). Each chunk's source stays mapped
// (MREMAP_DONTUNMAP), empty: a source left unmapped would be a hole in the middle of the mapping,
// where another thread's mmap could land before the next chunk's MREMAP_FIXED unmapped it. Without
// MREMAP_DONTUNMAP (kernels before 5.7) this returns NULL before anything moves.
void *md_prim_remap_aligned(void *addr, size_t old_size, size_t new_size, size_t align)
{
    if (!md_prim_can_dontunmap())
        return NULL;
    size_t span = new_size + 2 * align;
    long ret =
        md_syscall6(SYS_mremap, (long)addr, (long)old_size, (long)span, MREMAP_MAYMOVE, 0, 0);
    if (md_syscall_failed(ret))
        return NULL;
    uintptr_t from = (uintptr_t)ret;
    uintptr_t base = md_align_up(from + align, align);
    size_t shift = base - from;
    for (size_t end = old_size; end > 0;) {
        size_t chunk = end < shift ? end : shift;
        end -= chunk;
        ret = md_syscall6(SYS_mremap, (long)(from + end), (long)chunk, (long)chunk,
                          MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, (long)(base + end), 0);
        // Within one mapping of ours this fails only when the kernel is out of memory for its own
        // structures; the block is split in two places by then, and neither can be given back.
        if (md_syscall_failed(ret))
            md_fatal("mremap failed while moving a huge block", "");
    }
    md_syscall6(SYS_munmap, (long)from, (long)shift, 0, 0, 0, 0);
    md_syscall6(SYS_munmap, (long)(base + new_size), (long)(from + span - base - new_size), 0, 0, 0,
                0);
    md_stat_map((int64_t)new_size - (int64_t)old_size);
    return (void *)base;
}

uint64_t md_prim_clock_ms(void)
{
    struct timespec ts;
    // CLOCK_MONOTONIC_COARSE is served from the vDSO: no system call. It steps once per kernel
    // tick (4 ms at HZ=250), which the purge delays (milliseconds, a policy) can live with.
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void md_prim_write_stderr(const char *s, size_t len)
{
    md_prim_write_fd(2, s, len);
}

void md_prim_write_fd(int fd, const char *s, size_t len)
{
    while (len > 0) {
        long ret = md_syscall6(SYS_write, fd, (long)s, (long)len, 0, 0, 0);
        if (ret <= 0)
            return;
        s += ret;
        len -= (size_t)ret;
    }
}

// Only files that can be opened again by their path without side effects qualify: a regular file
// or a terminal. A pipe or socket has no path, opening a FIFO for writing blocks, and opening some
// devices acts on them (a tape rewinds when closed).
static bool md_prim_reopenable(int fd, const struct stat *st)
{
    if (S_ISREG(st->st_mode))
        return true;
    char termios[64] __attribute__((aligned(8))); // the kernel's struct termios is 36 bytes
    return S_ISCHR(st->st_mode) &&
           !md_syscall_failed(md_syscall6(SYS_ioctl, fd, TCGETS, (long)termios, 0, 0, 0));
}

bool md_prim_fd_path(int fd, char *buf, size_t size)
{
    struct stat st;
    if (md_syscall_failed(md_syscall6(SYS_fstat, fd, (long)&st, 0, 0, 0, 0)) ||
        !md_prim_reopenable(fd, &st))
        return false;
    char link[32] = "/proc/self/fd/", digits[12];
    size_t nd = 0;
    for (unsigned v = (unsigned)fd; nd == 0 || v > 0; v /= 10)
        digits[nd++] = (char)('0' + v % 10);
    char *p = link + strlen(link);
    while (nd > 0)
        *p++ = digits[--nd];
    *p = 0;
    long n = md_syscall6(SYS_readlinkat, AT_FDCWD, (long)link, (long)buf, (long)size - 1, 0, 0);
    if (md_syscall_failed(n) || n == 0 || (size_t)n >= size - 1 || buf[0] != '/')
        return false; // not there (no /proc), or maybe cut short
    buf[n] = 0;
    return true;
}

bool md_prim_path_identity(const char *path, uint64_t *dev, uint64_t *ino)
{
    // The link itself, not its target (newfstatat, as libc's lstat does): a path that became a
    // symbolic link names another file than the one recorded.
    struct stat st;
    if (md_syscall_failed(md_syscall6(SYS_newfstatat, AT_FDCWD, (long)path, (long)&st,
                                      AT_SYMLINK_NOFOLLOW, 0, 0)) ||
        !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)))
        return false;
    *dev = (uint64_t)st.st_dev;
    *ino = (uint64_t)st.st_ino;
    return true;
}

int md_prim_open_append(const char *path)
{
    // O_NONBLOCK: should the path have become a FIFO since, the open does not wait for a reader.
    // O_NOFOLLOW: nor does it open what a symbolic link put there since names.
    long flags = O_WRONLY | O_APPEND | O_NOCTTY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW;
    long ret = md_syscall6(SYS_openat, AT_FDCWD, (long)path, flags, 0, 0, 0);
    return md_syscall_failed(ret) ? -1 : (int)ret;
}

bool md_prim_fd_identity(int fd, uint64_t *dev, uint64_t *ino)
{
    // The system call, not libc's fstat: inside musl's libc.a every libc call mdalloc makes must be
    // one that cannot pull musl's malloc back in (tests/alloc/programs.bats lists them). The
    // kernel's struct stat is the libc's on x86_64 in glibc and musl.
    struct stat st;
    bool ok = !md_syscall_failed(md_syscall6(SYS_fstat, fd, (long)&st, 0, 0, 0, 0));
    if (ok) {
        *dev = (uint64_t)st.st_dev;
        *ino = (uint64_t)st.st_ino;
    }
    return ok;
}

void md_prim_close(int fd)
{
    md_syscall6(SYS_close, fd, 0, 0, 0, 0, 0);
}

void md_prim_yield(void)
{
    md_syscall6(SYS_sched_yield, 0, 0, 0, 0, 0, 0);
}

// The futex operations by number: musl-gcc builds have no kernel headers. Private: the word is
// never shared with another process.
#define MD_FUTEX_WAIT_PRIVATE 128
#define MD_FUTEX_WAKE_PRIVATE 129

bool md_prim_wait(_Atomic int *word, int expected, uint32_t timeout_ms)
{
    struct timespec timeout = {.tv_sec = timeout_ms / 1000,
                               .tv_nsec = timeout_ms % 1000 * 1000000L};
    return md_syscall6(SYS_futex, (long)word, MD_FUTEX_WAIT_PRIVATE, expected, (long)&timeout, 0,
                       0) == -ETIMEDOUT;
}

void md_prim_wake_all(_Atomic int *word)
{
    md_syscall6(SYS_futex, (long)word, MD_FUTEX_WAKE_PRIVATE, 0x7fffffff, 0, 0, 0);
}

const char *md_prim_getenv(const char *name)
{
    return getenv(name);
}

size_t md_prim_os_page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : MD_OS_PAGE;
}

uint64_t md_prim_random64(void)
{
    uint64_t r = 0;
    const void *bytes = (const void *)getauxval(AT_RANDOM);
    if (bytes != NULL)
        memcpy(&r, bytes, sizeof(r));
    // Without AT_RANDOM, addresses (ASLR) and the clock still differ between runs.
    return r ^ (uint64_t)(uintptr_t)&r ^ ((uint64_t)md_prim_clock_ms() << 20);
}
