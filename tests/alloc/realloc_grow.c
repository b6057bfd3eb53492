// SPDX-License-Identifier: MIT
// A huge block grown by realloc in small steps: contents are kept, and the address space and
// resident set stay within a small multiple of the block (glibc: one mapping grown by mremap).
// mdalloc used to move the block by copying, into a new mapping with 50% room, keeping the old
// one cached: 4 times glibc's address space and twice its peak RSS. Also checks that a block
// aligned to 2 MiB stays aligned while it grows, and that one aligned beyond the segment size
// keeps its contents. usage: realloc_grow ; prints "ok".
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define MB ((size_t)1 << 20)
#define TARGET (64 * MB)
#define STEP ((size_t)4096)

static long statm_mb(int field)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long v[2] = {-1, -1};
    if (f == NULL || fscanf(f, "%ld %ld", &v[0], &v[1]) != 2)
        v[0] = v[1] = -1;
    if (f != NULL)
        fclose(f);
    return v[field] * 4 / 1024;
}

// Grow *pp from `from` to `to` bytes by STEP, writing each new step; 0 if contents and (when
// align is not 0) alignment held.
static int grow(unsigned char **pp, size_t from, size_t to, size_t align, const char *what)
{
    unsigned char *p = *pp;
    for (size_t len = from; len < to; len += STEP) {
        unsigned char *q = realloc(p, len + STEP);
        if (q == NULL) {
            printf("%s: realloc to %zu bytes failed (VM %ld MB)\n", what, len + STEP, statm_mb(0));
            return 1;
        }
        p = q;
        if (align != 0 && (uintptr_t)p % align != 0) {
            printf("%s: lost its %zu alignment at %zu bytes\n", what, align, len + STEP);
            return 1;
        }
        memset(p + len, (int)(len / STEP % 251), STEP);
    }
    for (size_t len = from; len < to; len += STEP)
        if (p[len] != (unsigned char)(len / STEP % 251) ||
            p[len + STEP - 1] != (unsigned char)(len / STEP % 251)) {
            printf("%s: contents lost at %zu\n", what, len);
            return 1;
        }
    *pp = p;
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    // glibc needs the block plus a little: allow three times the block's size on top of what the
    // program maps already (the old code mapped over four times it).
    long base = statm_mb(0);
    struct rlimit rl;
    rl.rlim_cur = rl.rlim_max = ((rlim_t)base + 3 * (TARGET / MB)) * MB;
    if (setrlimit(RLIMIT_AS, &rl) != 0) {
        perror("setrlimit");
        return 2;
    }
    unsigned char *p = NULL;
    if (grow(&p, 0, TARGET, 0, "plain block"))
        return 1;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long rss_peak_mb = ru.ru_maxrss / 1024;
    printf("grown to %zu MB: VM %ld MB (base %ld), RSS %ld MB, peak RSS %ld MB\n", TARGET / MB,
           statm_mb(0), base, statm_mb(1), rss_peak_mb);
    // Without copies the old and new block are never resident together.
    if (rss_peak_mb > (long)(TARGET / MB) * 3 / 2) {
        printf("peak RSS above 1.5 times the block\n");
        return 1;
    }
    free(p);

    unsigned char *a = NULL;
    if (posix_memalign((void **)&a, 2 * MB, MB) != 0)
        return 1;
    memset(a, 0, MB);
    if (grow(&a, MB, 32 * MB, 2 * MB, "2 MiB aligned block"))
        return 1;
    free(a);

    unsigned char *b = NULL;
    if (posix_memalign((void **)&b, 8 * MB, MB) != 0)
        return 1;
    memset(b, 0, MB);
    if (grow(&b, MB, 16 * MB, 0, "8 MiB aligned block"))
        return 1;
    free(b);
    printf("ok\n");
    return 0;
}
