// SPDX-License-Identifier: MIT
// mdalloc misuse detection: each case does one misuse (double free, free of a pointer mdalloc
// never returned, free of an interior pointer; through free, realloc, free_sized, across threads)
// in a forked child whose stderr goes to a pipe. The child must die by SIGABRT having printed
// exactly "mdalloc: <call>(): <problem>: <pointer>" for the pointer it passed. The "valid" case
// frees blocks of every size class, large, huge and over-aligned blocks, locally and from other
// threads, and must exit normally without a word.
//
// The debug-* cases damage a free block (write after free, a corrupted free-list link): only the
// debug build catches those, so they are not part of "all".
//
// usage: misuse all | misuse CASE        (prints "ok CASE" per case, then "ok N cases")
//        misuse --raw CASE                 (the misuse itself, in this process)
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((weak)) void free_sized(void *p, size_t size);
__attribute__((weak)) void free_aligned_sized(void *p, size_t align, size_t size);

#define NOT_OURS "pointer not allocated by mdalloc"
#define INTERIOR "interior pointer (not the start of a block)"

// What the child reports before the misuse: the call, the problem and the pointer it expects in
// the message, written to fd 3 (a pipe to the parent) so stderr carries only mdalloc's words.
// (The address is passed as a number: the compiler would take a pointer to a fresh block as a read
// of uninitialized memory.)
static void expect_addr(const char *call, const char *problem, uintptr_t addr)
{
    char line[256];
    int n =
        snprintf(line, sizeof(line), "mdalloc: %s(): %s: 0x%" PRIxPTR "\n", call, problem, addr);
    if (write(3, line, (size_t)n) != n)
        _exit(90);
}

static void expect_message(const char *line)
{
    size_t n = strlen(line);
    if (write(3, line, n) != (ssize_t)n)
        _exit(90);
}

static int static_object;

// The compiler sees most of these misuses and refuses to build them (-Werror): call through
// pointers it cannot see through.
static void (*volatile free_fn)(void *) = free;
static void *(*volatile realloc_fn)(void *, size_t) = realloc;
static void *(*volatile malloc_fn)(size_t) = malloc;

// Run fn on a new thread and wait for it (blocks owned by another heap).
static void *on_thread(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    void *ret;
    if (pthread_create(&t, NULL, fn, arg) != 0 || pthread_join(t, &ret) != 0)
        _exit(91);
    return ret;
}

static void *thread_malloc(void *arg)
{
    return malloc((size_t)(uintptr_t)arg);
}

static void *thread_free(void *arg)
{
    free(arg);
    return NULL;
}

static void *thread_free_twice(void *arg)
{
    free_fn(arg);
    free_fn(arg);
    return NULL;
}

// A free by another thread than the block's owner does not read the block: the owner checks it
// when it drains the frees other threads handed it (at their exit, among other times), on its
// next malloc slow path. Allocating a few hundred blocks of a class no case uses makes the
// owner take its slow path several times, and never hands out the block under test again.
static void owner_drains(void)
{
    for (int i = 0; i < 256; i++) {
        void *volatile keep = malloc_fn(3000);
        (void)keep;
    }
}

// The owner thread of a cross-thread case: allocates the block, lets the main thread have it
// freed by a third thread that then exits, and drains.
struct owner_run {
    size_t size;
    char *block;
    pthread_barrier_t allocated, freed;
};

static void *owner_thread(void *arg)
{
    struct owner_run *o = arg;
    o->block = malloc(o->size);
    pthread_barrier_wait(&o->allocated);
    pthread_barrier_wait(&o->freed);
    owner_drains(); // must die here
    return NULL;
}

// A block of a live thread freed twice by another thread: the report comes from the owner.
static void double_free_remote_twice(size_t size)
{
    static struct owner_run o;
    o.size = size;
    pthread_t t;
    if (pthread_barrier_init(&o.allocated, NULL, 2) != 0 ||
        pthread_barrier_init(&o.freed, NULL, 2) != 0 ||
        pthread_create(&t, NULL, owner_thread, &o) != 0)
        _exit(91);
    pthread_barrier_wait(&o.allocated);
    expect_addr("free", "double free", (uintptr_t)(o.block));
    on_thread(thread_free_twice, o.block);
    pthread_barrier_wait(&o.freed);
    pthread_join(t, NULL); // reached only if the owner did not notice
}

// ---- the misuses -----------------------------------------------------------------------------

static void double_free_small(void)
{
    char *p = malloc(100);
    free_fn(p);
    expect_addr("free", "double free", (uintptr_t)(p));
    free_fn(p);
}

static void double_free_16(void)
{
    char *p = malloc(16);
    char *q = malloc(16);
    free_fn(p);
    free_fn(q);
    expect_addr("free", "double free", (uintptr_t)(p));
    free_fn(p);
}

static void double_free_8(void)
{
    // the 8-byte class: the block's only word is both the free-list link and the free mark
    char *p = malloc(8);
    char *q = malloc(3);
    free_fn(p);
    free_fn(q);
    expect_addr("free", "double free", (uintptr_t)(p));
    free_fn(p);
}

static void double_free_8_cross_thread(void)
{
    // an 8-byte block (the link word is the whole block) freed twice by another thread
    double_free_remote_twice(8);
}

static void double_free_not_head(void)
{
    // p is no longer the head of its page's free list when it is freed again
    char *p = malloc(48), *q = malloc(48), *r = malloc(48);
    free_fn(p);
    free_fn(q);
    free_fn(r);
    expect_addr("free", "double free", (uintptr_t)(p));
    free_fn(p);
}

static void double_free_medium(void)
{
    char *p = malloc(20000);
    char *keep = malloc(20000);
    free_fn(p);
    expect_addr("free", "double free", (uintptr_t)(p));
    free_fn(p);
    free_fn(keep);
}

static void double_free_large(void)
{
    char *p = malloc(300 * 1024); // one block per page: the page goes back to its segment
    free_fn(p);
    expect_addr("free", "double free", (uintptr_t)(p));
    free_fn(p);
}

// A large block that realloc grew in place: its one-block page took the free slices after it
// (left committed by a block freed before) and changed class, so the checks must follow the new
// size. Exits 97 if realloc moved the block instead: then the case would not test what it says.
static char *large_block_grown_in_place(void)
{
    char *volatile earlier = malloc(300 * 1024); // leaves committed slices behind when freed
    free(earlier);
    char *p = malloc(100 * 1024);
    char *q = realloc(p, 300 * 1024);
    if (q != p)
        _exit(97);
    return q;
}

static void double_free_grown(void)
{
    char *p = large_block_grown_in_place();
    free_fn(p);
    expect_addr("free", "double free", (uintptr_t)(p));
    free_fn(p);
}

static void free_interior_grown(void)
{
    char *p = large_block_grown_in_place(); // beyond the old block's end, inside the grown one
    expect_addr("free", INTERIOR, (uintptr_t)(p + 200 * 1024));
    free_fn(p + 200 * 1024);
}

static void double_free_huge(void)
{
    char *p = malloc(8u << 20);
    free_fn(p);
    expect_addr("free", "double free", (uintptr_t)(p));
    free_fn(p);
}

static void double_free_aligned(void)
{
    void *p;
    if (posix_memalign(&p, 256, 1000) != 0)
        _exit(92);
    void *q = aligned_alloc(4096, 5000);
    free_fn(p);
    free_fn(q);
    expect_addr("free", "double free", (uintptr_t)(p));
    free_fn(p);
}

static void double_free_cross_thread(void)
{
    // freed twice by another thread: both pointers travel in one buffer to the owner
    double_free_remote_twice(64);
}

static void double_free_after_remote(void)
{
    // freed by another thread (handed over to this heap at its exit), then freed again by the
    // owner before it drained the first free: the drain finds the block free already
    char *p = malloc(64);
    char *keep = malloc(64);
    on_thread(thread_free, p);
    free_fn(p);
    expect_addr("free", "double free", (uintptr_t)(p));
    owner_drains();
    free_fn(keep);
}

static void double_free_remote_after_local(void)
{
    // freed by the owner, then by another thread: the owner's drain finds it free
    char *p = malloc(64);
    char *keep = malloc(64);
    free_fn(p);
    on_thread(thread_free, p);
    expect_addr("free", "double free", (uintptr_t)(p));
    owner_drains();
    free_fn(keep);
}

static void free_stack(void)
{
    char local[64];
    memset(local, 0, sizeof(local));
    expect_addr("free", NOT_OURS, (uintptr_t)(local + 16));
    free_fn(local + 16);
}

static void free_static(void)
{
    expect_addr("free", NOT_OURS, (uintptr_t)(&static_object));
    free_fn(&static_object);
}

static void free_mmap(void)
{
    // another mapping: the 4 MiB-aligned address below it is usually unmapped, so reading
    // "segment metadata" there would crash instead of reporting
    char *m = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        _exit(93);
    expect_addr("free", NOT_OURS, (uintptr_t)(m + 32));
    free_fn(m + 32);
}

static void free_wild(void)
{
    void *p = (void *)(uintptr_t)0x123456789ab0ull;
    expect_addr("free", NOT_OURS, (uintptr_t)(p));
    free_fn(p);
}

static void *never_returned_thread(void *arg)
{
    // a fresh heap: the first 3000-byte block is the first of a fresh page, whose next blocks
    // were carved (blocks 1..3) or not yet (block 10), but never handed out
    char *p = malloc(3000);
    size_t block = 3072;
    char *q = p + block * (size_t)(uintptr_t)arg;
    expect_addr("free", NOT_OURS, (uintptr_t)(q));
    free_fn(q);
    return NULL;
}

static void free_never_returned_carved(void)
{
    on_thread(never_returned_thread, (void *)(uintptr_t)1);
}

static void free_never_returned_uncarved(void)
{
    on_thread(never_returned_thread, (void *)(uintptr_t)10);
}

static void free_interior_small(void)
{
    char *p = malloc(100);
    expect_addr("free", INTERIOR, (uintptr_t)(p + 16));
    free_fn(p + 16);
}

static void free_interior_odd(void)
{
    char *p = malloc(1000);
    expect_addr("free", INTERIOR, (uintptr_t)(p + 1));
    free_fn(p + 1);
}

static void free_interior_large(void)
{
    char *p = malloc(200000);
    expect_addr("free", INTERIOR, (uintptr_t)(p + 16));
    free_fn(p + 16);
}

static void free_interior_huge(void)
{
    char *p = malloc(16u << 20);
    expect_addr("free", INTERIOR, (uintptr_t)(p + 16));
    free_fn(p + 16);
}

static void free_interior_huge_far(void)
{
    char *p = malloc(16u << 20);
    expect_addr("free", INTERIOR,
                (uintptr_t)(p + (9u << 20))); // past the first 4 MiB: no segment starts there
    free_fn(p + (9u << 20));
}

static void free_interior_cross_thread(void)
{
    char *p = on_thread(thread_malloc, (void *)(uintptr_t)500);
    expect_addr("free", INTERIOR, (uintptr_t)(p + 32));
    free_fn(p + 32);
}

static void realloc_freed(void)
{
    char *p = malloc(100);
    free_fn(p);
    expect_addr("realloc", "pointer already freed", (uintptr_t)(p));
    p = realloc_fn(p, 50); // would fit in place: must still be caught
}

static void realloc_foreign(void)
{
    char local[32];
    memset(local, 0, sizeof(local));
    expect_addr("realloc", NOT_OURS, (uintptr_t)(local));
    char *p = realloc_fn(local, 64);
    (void)p;
}

static void realloc_interior(void)
{
    char *p = malloc(300);
    expect_addr("realloc", INTERIOR, (uintptr_t)(p + 48));
    p = realloc_fn(p + 48, 10);
}

static void free_sized_double(void)
{
    if (free_sized == NULL)
        _exit(94);
    char *p = malloc(40);
    free_sized(p, 40);
    expect_addr("free_sized", "double free", (uintptr_t)(p));
    free_sized(p, 40);
}

static void free_aligned_sized_interior(void)
{
    if (free_aligned_sized == NULL)
        _exit(94);
    char *p = aligned_alloc(64, 640);
    expect_addr("free_aligned_sized", INTERIOR, (uintptr_t)(p + 16));
    free_aligned_sized(p + 16, 16, 600);
}

static void usable_size_foreign(void)
{
    expect_addr("malloc_usable_size", NOT_OURS, (uintptr_t)(&static_object));
    size_t n = malloc_usable_size(&static_object);
    (void)n;
}

// ---- caught by the debug build only (MDALLOC_DEBUG): damage to free blocks ---------------------

static char fake_block[64] __attribute__((aligned(16)));

static void debug_write_after_free(void)
{
    char *p = malloc_fn(64);
    free_fn(p);
    p[40] = 'x'; // past the link word: the debug build's fill pattern
    expect_message("mdalloc: free block modified after free (write after free?)\n");
    p = malloc_fn(64); // the same block again: its fill is checked as it is handed out
}

static void debug_corrupt_free_list(void)
{
    char *p = malloc_fn(64);
    free_fn(p);
    *(void **)p = fake_block; // overwrite the free list link
    expect_message("mdalloc: free list holds a block that is not marked free (list corrupted)\n");
    p = malloc_fn(64);
    p = malloc_fn(64); // would be fake_block
}

// ---- valid use never trips the checks -----------------------------------------------------------

static void *free_list(void *arg)
{
    void **blocks = arg;
    for (size_t i = 0; blocks[i] != NULL; i++)
        free(blocks[i]);
    return NULL;
}

static void valid(void)
{
    enum { N = 4096 };
    static void *blocks[N + 1];
    size_t n = 0;
    // every size up to 8 KiB in 16-byte steps (and 1 to 8), then every class boundary up to 8 MiB
    for (size_t size = 1; size <= 8; size++)
        blocks[n++] = malloc(size);
    for (size_t size = 0; size <= 8192 && n < N / 2; size += 16)
        blocks[n++] = malloc(size);
    for (size_t size = 8192; size <= (8u << 20) && n < N - 64; size += size / 8) {
        blocks[n++] = malloc(size);
        blocks[n++] = malloc(size + 1);
    }
    for (size_t align = 32; align <= (8u << 20); align *= 2) { // over-aligned, small to huge
        void *p;
        if (posix_memalign(&p, align, align / 3 + 8) != 0)
            _exit(95);
        blocks[n++] = p;
    }
    blocks[n] = NULL;
    // the odd ones freed by another thread, the even ones here, in reverse
    static void *odd[N / 2 + 1];
    size_t k = 0;
    for (size_t i = 1; i < n; i += 2)
        odd[k++] = blocks[i];
    odd[k] = NULL;
    on_thread(free_list, odd);
    for (size_t i = (n - 1) & ~(size_t)1;; i -= 2) {
        free(blocks[i]);
        if (i < 2)
            break;
    }
    // realloc, free_sized and a block freed right after another thread allocated it
    char *p = NULL;
    for (size_t size = 1; size < (4u << 20); size = size * 3 / 2 + 1)
        p = realloc(p, size);
    free(p);
    if (free_sized != NULL) {
        for (size_t size = 1; size < 100000; size = size * 2 + 3)
            free_sized(malloc(size), size);
        free_aligned_sized(aligned_alloc(128, 1280), 128, 1280);
    }
    free(on_thread(thread_malloc, (void *)(uintptr_t)2000));
    // A block in use that holds a copy of a free block's link word (a program copying stale
    // memory, as realloc of a block that was never written does) is not taken for a free one:
    // the mark is bound to the block's address.
    for (size_t size = 1; size <= 64; size *= 2) {
        uintptr_t *freed = malloc(size), *live = malloc(size);
        free_fn(freed);
        live[0] = freed[0];
        free(live);
    }
    if (malloc_usable_size(malloc(10)) < 10)
        _exit(96);
}

struct misuse_case {
    const char *name;
    void (*fn)(void);
    int debug_only; // not part of "all": only the debug build catches it
};

static const struct misuse_case cases[] = {
    {"double-free", double_free_small, 0},
    {"double-free-16", double_free_16, 0},
    {"double-free-8", double_free_8, 0},
    {"double-free-8-cross-thread", double_free_8_cross_thread, 0},
    {"double-free-not-head", double_free_not_head, 0},
    {"double-free-medium", double_free_medium, 0},
    {"double-free-large", double_free_large, 0},
    {"double-free-grown", double_free_grown, 0},
    {"double-free-huge", double_free_huge, 0},
    {"double-free-aligned", double_free_aligned, 0},
    {"double-free-cross-thread", double_free_cross_thread, 0},
    {"double-free-after-remote", double_free_after_remote, 0},
    {"double-free-remote-after-local", double_free_remote_after_local, 0},
    {"free-stack", free_stack, 0},
    {"free-static", free_static, 0},
    {"free-mmap", free_mmap, 0},
    {"free-wild", free_wild, 0},
    {"free-never-returned-carved", free_never_returned_carved, 0},
    {"free-never-returned-uncarved", free_never_returned_uncarved, 0},
    {"free-interior", free_interior_small, 0},
    {"free-interior-odd", free_interior_odd, 0},
    {"free-interior-large", free_interior_large, 0},
    {"free-interior-grown", free_interior_grown, 0},
    {"free-interior-huge", free_interior_huge, 0},
    {"free-interior-huge-far", free_interior_huge_far, 0},
    {"free-interior-cross-thread", free_interior_cross_thread, 0},
    {"realloc-freed", realloc_freed, 0},
    {"realloc-foreign", realloc_foreign, 0},
    {"realloc-interior", realloc_interior, 0},
    {"free-sized-double", free_sized_double, 0},
    {"free-aligned-sized-interior", free_aligned_sized_interior, 0},
    {"usable-size-foreign", usable_size_foreign, 0},
    {"valid", valid, 0},
    {"debug-write-after-free", debug_write_after_free, 1},
    {"debug-corrupt-free-list", debug_corrupt_free_list, 1},
};

// Read everything from fd into buf (NUL-terminated).
static void slurp(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = 0;
}

// Fork, run the case with stderr and fd 3 on pipes, and judge how the child ended.
static int run_case(const struct misuse_case *c)
{
    int err[2], exp[2];
    if (pipe(err) != 0 || pipe(exp) != 0)
        return 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid == 0) {
        close(err[0]); // first: one of the read ends may be fd 3
        close(exp[0]);
        dup2(err[1], 2);
        dup2(exp[1], 3);
        c->fn();
        _exit(strcmp(c->name, "valid") == 0 ? 0 : 97); // 97: the misuse went unnoticed
    }
    close(err[1]);
    close(exp[1]);
    char got[1024], want[512];
    slurp(exp[0], want, sizeof(want));
    slurp(err[0], got, sizeof(got));
    close(err[0]);
    close(exp[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return 0;
    int ok;
    if (strcmp(c->name, "valid") == 0) {
        ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 && got[0] == 0;
    } else {
        ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && want[0] != 0 &&
             strcmp(got, want) == 0;
    }
    if (!ok) {
        printf("FAIL %s: ", c->name);
        if (WIFSIGNALED(status))
            printf("killed by signal %d", WTERMSIG(status));
        else
            printf("exit %d", WEXITSTATUS(status));
        printf("\n  expected: %s  stderr:   %s\n", want[0] ? want : "(nothing)\n",
               got[0] ? got : "(nothing)\n");
    }
    return ok;
}

// --raw CASE: do the misuse in this process, for a caller that checks the exit itself.
static int run_raw(const char *name)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (strcmp(cases[i].name, name) != 0)
            continue;
        int null = open("/dev/null", O_WRONLY);
        if (null < 0 || dup2(null, 3) != 3) // the expected message goes nowhere
            return 2;
        cases[i].fn();
        return 0;
    }
    fprintf(stderr, "misuse: no case named %s\n", name);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--raw") == 0)
        return run_raw(argv[2]);
    if (argc != 2) {
        fprintf(stderr, "usage: misuse all|CASE|--raw CASE\n");
        return 2;
    }
    size_t ncases = sizeof(cases) / sizeof(cases[0]), run = 0, failed = 0;
    for (size_t i = 0; i < ncases; i++) {
        bool all = strcmp(argv[1], "all") == 0;
        if (all ? cases[i].debug_only : strcmp(argv[1], cases[i].name) != 0)
            continue;
        run++;
        if (run_case(&cases[i]))
            printf("ok %s\n", cases[i].name);
        else
            failed++;
    }
    if (run == 0) {
        fprintf(stderr, "misuse: no case named %s\n", argv[1]);
        return 2;
    }
    if (failed != 0)
        return 1;
    printf("ok %zu cases\n", run);
    return 0;
}
