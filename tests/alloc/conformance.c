// SPDX-License-Identifier: MIT
// API conformance checks for mdalloc, run with the allocator preloaded or linked in. One group of
// checks per command-line argument; prints "ok <group>" or the first failed check and exits 1.
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((weak)) void *pvalloc(size_t n);
// C23, not in every libc: mdalloc provides them, so they must resolve at run time.
__attribute__((weak)) void free_sized(void *p, size_t size);
__attribute__((weak)) void free_aligned_sized(void *p, size_t align, size_t size);

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

// The compiler must not reason about these calls (e.g. drop malloc/free pairs).
static void *(*volatile p_malloc)(size_t) = malloc;
static void *(*volatile p_calloc)(size_t, size_t) = calloc;
static void *(*volatile p_realloc)(void *, size_t) = realloc;
static void *(*volatile p_reallocarray)(void *, size_t, size_t) = reallocarray;
static void *(*volatile p_aligned_alloc)(size_t, size_t) = aligned_alloc;
static void *(*volatile p_memalign)(size_t, size_t) = memalign;
static void (*volatile p_free)(void *) = free;

static int aligned_to(const void *p, size_t a)
{
    return ((uintptr_t)p & (a - 1)) == 0;
}

// What malloc(n) must be aligned to: 16 (max_align_t), except that a block of at most 8 bytes
// needs only 8 since no object that small can require more (C17 DR 445; jemalloc, mimalloc and
// tcmalloc do the same, and mdalloc's 8-byte class depends on it).
static size_t fundamental_alignment(size_t n)
{
    return n <= 8 ? 8 : 16;
}

static void test_zero(void)
{
    CHECK(free_sized != NULL && free_aligned_sized != NULL && pvalloc != NULL);
    void *a = p_malloc(0), *b = p_malloc(0);
    CHECK(a != NULL && b != NULL && a != b); // malloc(0) is unique
    CHECK(aligned_to(a, fundamental_alignment(0)));
    p_free(a);
    p_free(b);
    void *c = p_calloc(0, 10), *d = p_calloc(10, 0);
    CHECK(c != NULL && d != NULL && c != d);
    p_free(c);
    p_free(d);
    p_free(NULL);
    CHECK(malloc_usable_size(NULL) == 0);
    void *r = p_realloc(NULL, 0);
    CHECK(r != NULL);
    p_free(r);
}

static void test_errno(void)
{
    errno = 0;
    CHECK(p_malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(p_malloc(PTRDIFF_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(p_calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM); // overflow
    errno = 0;
    CHECK(p_calloc((size_t)1 << 33, (size_t)1 << 33) == NULL && errno == ENOMEM);
    void *p = p_malloc(100);
    memset(p, 0x5a, 100);
    errno = 0;
    CHECK(p_reallocarray(p, SIZE_MAX / 4, 8) == NULL && errno == ENOMEM); // overflow: p kept
    errno = 0;
    CHECK(p_realloc(p, SIZE_MAX - 10) == NULL && errno == ENOMEM);
    CHECK(((unsigned char *)p)[99] == 0x5a);
    p = p_reallocarray(p, 50, 4);
    CHECK(p != NULL && ((unsigned char *)p)[99] == 0x5a);
    // free preserves errno, for every kind of block
    size_t sizes[] = {8, 1000, 20000, 300000, 5 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        void *q = p_malloc(sizes[i]);
        errno = 1234;
        p_free(q);
        CHECK(errno == 1234);
    }
    p_free(p);
    errno = 0;
    CHECK(p_aligned_alloc(3, 64) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(p_aligned_alloc(0, 64) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(p_memalign((size_t)1 << 63 | 1, 64) == NULL && errno == EINVAL);
    void *out = (void *)1;
    errno = 77;
    CHECK(posix_memalign(&out, 3, 64) == EINVAL && out == (void *)1);
    CHECK(posix_memalign(&out, 4, 64) == EINVAL); // below sizeof(void *)
    CHECK(posix_memalign(&out, 64, SIZE_MAX - 100) == ENOMEM && out == (void *)1);
    CHECK(errno == 77); // posix_memalign reports through its result only
    errno = 0;
    CHECK(pvalloc(SIZE_MAX - 10) == NULL && errno == ENOMEM);
}

static void test_align(void)
{
    size_t sizes[] = {0, 1, 7, 16, 100, 4096, 70000, 600000, 3 << 20};
    for (size_t a = 1; a <= ((size_t)1 << 30); a <<= 1) {
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            size_t n = sizes[i];
            if (a >= ((size_t)1 << 26) && i % 3 != 0)
                continue; // keep the very large alignments cheap
            void *p = p_aligned_alloc(a, n);
            CHECK(p != NULL && aligned_to(p, a));
            CHECK(malloc_usable_size(p) >= n);
            memset(p, 0xab, n);
            void *q = p_memalign(a, n);
            CHECK(q != NULL && aligned_to(q, a));
            void *r = NULL;
            if (a >= sizeof(void *))
                CHECK(posix_memalign(&r, a, n) == 0 && r != NULL && aligned_to(r, a));
            void *g = p_realloc(q, n + 100); // realloc of an aligned block keeps the data
            CHECK(g != NULL);
            p_free(p);
            if (free_aligned_sized != NULL)
                free_aligned_sized(r, a, n);
            p_free(g);
        }
    }
    void *m = p_memalign(24, 10); // glibc: rounded up to a power of two
    CHECK(m != NULL && aligned_to(m, 32));
    p_free(m);
    long ps = sysconf(_SC_PAGESIZE);
    void *v = valloc(10), *pv = pvalloc(10);
    CHECK(v != NULL && aligned_to(v, (size_t)ps));
    CHECK(pv != NULL && aligned_to(pv, (size_t)ps) && malloc_usable_size(pv) >= (size_t)ps);
    p_free(v);
    p_free(pv);
    for (size_t n = 1; n < 5000000; n = n * 3 / 2 + 1) {
        void *p = p_malloc(n);
        CHECK(aligned_to(p, fundamental_alignment(n)));
        p_free(p);
    }
}

// Usable size covers the request and wastes at most 12.5% above 128 bytes (below that: one
// 16-byte step); blocks are writable up to their usable size.
static void test_usable(void)
{
    for (size_t n = 1; n <= 600000; n += (n < 2048 ? 1 : n / 61)) {
        unsigned char *p = p_malloc(n);
        size_t u = malloc_usable_size(p);
        CHECK(u >= n);
        if (n > 128 && n <= 512 * 1024)
            CHECK(u - n <= n / 8 + 16);
        if (n <= 128)
            CHECK(u - n < 16);
        memset(p, 0x11, u);
        p_free(p);
        void *q = p_malloc(n);
        if (free_sized != NULL)
            free_sized(q, n);
    }
}

static void test_calloc_realloc(void)
{
    // calloc memory is zero, also when recycled from dirty blocks
    for (int round = 0; round < 2; round++) {
        size_t sizes[] = {1, 24, 500, 9000, 100000, 700000, 9 << 20};
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            unsigned char *d = p_malloc(sizes[i]);
            memset(d, 0xff, sizes[i]);
            p_free(d);
            unsigned char *c = p_calloc(1, sizes[i]);
            CHECK(c != NULL);
            for (size_t k = 0; k < sizes[i]; k += 1 + k / 64)
                if (c[k] != 0) {
                    CHECK(c[k] == 0);
                    break;
                }
            p_free(c);
        }
    }
    // realloc keeps contents while growing through every size range and shrinking back
    size_t n = 1;
    unsigned char *p = p_malloc(n);
    p[0] = 1;
    while (n < (64u << 20)) {
        size_t m = n * 2 + 3;
        p = p_realloc(p, m);
        CHECK(p != NULL);
        for (size_t k = 0; k < n; k += 1 + k / 32)
            if (p[k] != (unsigned char)(k * 7 + 1)) {
                CHECK(p[k] == (unsigned char)(k * 7 + 1));
                break;
            }
        for (size_t k = n; k < m; k++)
            p[k] = (unsigned char)(k * 7 + 1);
        n = m;
    }
    for (size_t m = n / 3; m > 0; m /= 3) {
        p = p_realloc(p, m);
        CHECK(p != NULL && p[m - 1] == (unsigned char)((m - 1) * 7 + 1));
    }
    p_free(p);
    // realloc(p, 0): glibc frees and returns NULL, musl returns a minimal block
    void *z = p_realloc(p_malloc(10), 0);
#ifdef __GLIBC__
    CHECK(z == NULL);
#else
    CHECK(z != NULL);
    p_free(z);
#endif
}

// Many blocks of one size are distinct and do not overlap.
static void test_distinct(void)
{
    enum { N = 20000 };
    static unsigned char *ptrs[N];
    for (int i = 0; i < N; i++) {
        size_t n = 1 + (size_t)(i * 37) % 3000;
        ptrs[i] = p_malloc(n);
        memset(ptrs[i], i & 0xff, n);
    }
    for (int i = 0; i < N; i++) {
        size_t n = 1 + (size_t)(i * 37) % 3000;
        CHECK(ptrs[i][0] == (i & 0xff) && ptrs[i][n - 1] == (i & 0xff));
        p_free(ptrs[i]);
    }
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } groups[] = {{"zero", test_zero},
                  {"errno", test_errno},
                  {"align", test_align},
                  {"usable", test_usable},
                  {"calloc_realloc", test_calloc_realloc},
                  {"distinct", test_distinct}};
    int close_stderr = 0;
    for (int a = 1; a < argc; a++) {
        // Close fd 2 before exit, as coreutils' close_stdout does (sort, ls): MDALLOC_STATS must
        // print its counters all the same.
        if (strcmp(argv[a], "close_stderr") == 0) {
            close_stderr = 1;
            continue;
        }
        int found = 0;
        for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
            if (strcmp(argv[a], groups[g].name) == 0 || strcmp(argv[a], "all") == 0) {
                groups[g].fn();
                found = 1;
            }
        }
        if (!found) {
            fprintf(stderr, "unknown group %s\n", argv[a]);
            return 2;
        }
    }
    if (failures == 0)
        printf("ok\n");
    if (close_stderr) {
        fflush(stdout);
        close(2);
    }
    return failures ? 1 : 0;
}
