// SPDX-License-Identifier: MIT
// Limits the kernel sets, and what a program owns, that mdalloc must respect:
//   big GIB        malloc and calloc of GIB GiB fail with ENOMEM (the memory is never touched)
//   grow A B       a block of A MiB, filled, grows by realloc to B MiB with its contents
//   small          malloc(10) (under a tight `ulimit -v` the first segment must still fit)
//   small_big      malloc(10), then malloc(1000000), aligned_alloc(64, 100) and calloc(1, 100):
//                  "small ok|failed big ok|failed aligned ok|failed calloc ok|failed"
//   align35        two live blocks aligned to 32 GiB (posix_memalign, then aligned_alloc)
//   keys N         N threads one after the other, each allocating; with MDA_EAT_KEYS=1 a
//                  constructor first takes every pthread key, as a program may before it allocates
//   fds FILE FD... after a first malloc, FILE opened and dup2'd onto each FD, "data" written to
//                  each; the statistics (MDALLOC_STATS=1) must not end up in FILE
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int keys_taken;

__attribute__((constructor)) static void eat_keys(void)
{
    const char *e = getenv("MDA_EAT_KEYS");
    pthread_key_t k;
    if (e != NULL && *e == '1')
        while (pthread_key_create(&k, NULL) == 0)
            keys_taken++;
}

static int big(size_t gib)
{
    size_t n = gib << 30;
    errno = 0;
    void *p = malloc(n);
    int e1 = errno;
    errno = 0;
    void *q = calloc(n, 1);
    int e2 = errno;
    printf("malloc=%p errno=%d calloc=%p errno=%d\n", p, e1, q, e2);
    return p == NULL && e1 == ENOMEM && q == NULL && e2 == ENOMEM ? 0 : 1;
}

static int grow(size_t a, size_t b)
{
    a <<= 20;
    b <<= 20;
    unsigned char *p = malloc(a);
    if (p == NULL) {
        puts("malloc failed");
        return 1;
    }
    for (size_t i = 0; i < a; i++)
        p[i] = (unsigned char)(i * 7 + (i >> 12));
    errno = 0;
    unsigned char *q = realloc(p, b);
    if (q == NULL) {
        printf("realloc failed errno=%d\n", errno);
        return 1;
    }
    for (size_t i = 0; i < a; i++)
        if (q[i] != (unsigned char)(i * 7 + (i >> 12))) {
            printf("byte %zu changed\n", i);
            return 1;
        }
    memset(q + a, 1, b - a);
    free(q);
    puts("grown");
    return 0;
}

static void *thread_work(void *arg)
{
    void *blocks[64];
    for (int i = 0; i < 64; i++)
        blocks[i] = malloc(16384);
    for (int i = 0; i < 64; i++)
        free(blocks[i]);
    return arg;
}

static int keys(int n)
{
    printf("keys taken before the first malloc: %d\n", keys_taken);
    for (int i = 0; i < n; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, thread_work, NULL) != 0 || pthread_join(t, NULL) != 0) {
            puts("thread failed");
            return 1;
        }
    }
    puts("threads done");
    return 0;
}

static int fds(int argc, char **argv)
{
    // The program allocates before it sets up its descriptors, so mdalloc has read its options by
    // then (before, it took its copy of stderr at fd 100 or 1000 there; volatile: a malloc whose
    // block is only freed may be optimised away).
    void *volatile p = malloc(100);
    free(p);
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return 1;
    for (int i = 3; i < argc; i++) {
        int to = atoi(argv[i]);
        if (dup2(fd, to) != to || write(to, "data\n", 5) != 5)
            return 1;
    }
    return 0;
}

static const char *ok(const void *p)
{
    return p != NULL ? "ok" : "failed";
}

static int small_big(void)
{
    void *volatile small = malloc(10);
    void *volatile big = malloc(1000000);
    unsigned char *aligned = aligned_alloc(64, 100);
    unsigned char *zeroed = calloc(1, 100);
    if ((aligned != NULL && (uintptr_t)aligned % 64 != 0) || (zeroed != NULL && zeroed[99] != 0))
        return 1;
    printf("small %s big %s aligned %s calloc %s\n", ok(small), ok(big), ok(aligned), ok(zeroed));
    free(small);
    free(big);
    free(aligned);
    free(zeroed);
    return 0;
}

static int align35(void)
{
    size_t align = (size_t)1 << 35;
    void *a = NULL;
    int err = posix_memalign(&a, align, 100);
    void *b = aligned_alloc(align, 100);
    printf("first %s (%d) second %s (%s)\n", ok(a), err, ok(b), b ? "" : strerror(errno));
    if (((uintptr_t)a | (uintptr_t)b) % align != 0)
        return 1;
    free(a);
    free(b);
    return a == NULL || b == NULL;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "big") == 0)
        return big(strtoull(argv[2], NULL, 0));
    if (argc >= 4 && strcmp(argv[1], "grow") == 0)
        return grow(strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
    if (argc >= 2 && strcmp(argv[1], "small") == 0) {
        void *p = malloc(10);
        printf("malloc(10)=%p\n", p);
        return p == NULL;
    }
    if (argc >= 2 && strcmp(argv[1], "small_big") == 0)
        return small_big();
    if (argc >= 2 && strcmp(argv[1], "align35") == 0)
        return align35();
    if (argc >= 3 && strcmp(argv[1], "keys") == 0)
        return keys(atoi(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "fds") == 0)
        return fds(argc, argv);
    fprintf(stderr, "usage: limits big GIB | grow A B | small | small_big | align35 | keys N | fds "
                    "FILE FD...\n");
    return 2;
}
