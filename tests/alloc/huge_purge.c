// SPDX-License-Identifier: MIT
// Freed huge blocks go to the segment cache; what stays resident there must follow the live
// memory, not a fixed budget. Before session 8 up to 128 MiB of freed blocks stayed resident until
// exit (the cache kept that much dirty and was maintained only on a heap's slow path): a vector
// grown by doubling peaked at twice its size, and eight 100 MB blocks shrunk by realloc to 1 MB
// kept 109 MB resident (glibc: 134 MB and 9 MB). usage:
//   huge_purge grow    a vector-like buffer doubles to 128 MiB (new block, copy, free the old):
//                      peak RSS must stay below final + final / 4 + 16 MiB
//   huge_purge shrink  8 x (malloc 48, 56, ... 104 MiB, fill, realloc to 1 MiB): RSS below 24 MiB
//                      afterwards (growing sizes: no block reuses a freed one, so nothing tells
//                      the cache that keeping them would pay, see "reuse")
//   huge_purge reuse   a filled 32 MiB block freed and allocated again 200 times, then freed:
//   prints
//                      "resident after free N KB" (the caller checks the madvise count with
//                      MDALLOC_STATS, and the RSS with MDALLOC_PURGE_DELAY=0)
// Each mode prints "ok" when its own check passed.
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc_status.h"

#define MIB ((size_t)1 << 20)

// VmHWM: the peak resident set so far.
static long peak_kb(void)
{
    return status_field("/proc/self/status", "VmHWM:", 1);
}

// std::vector's growth: a new buffer twice as big, the old contents copied, the old buffer freed,
// then the rest filled. Only the allocations of the buffers call the allocator.
static int grow(void)
{
    size_t cap = MIB, final = 128 * MIB;
    char *v = malloc(cap);
    memset(v, 1, cap);
    while (cap < final) {
        char *w = malloc(2 * cap);
        if (w == NULL)
            return 1;
        memcpy(w, v, cap);
        free(v);
        memset(w + cap, 1, cap);
        v = w;
        cap *= 2;
    }
    long peak = peak_kb(), bound = (long)((final + final / 4 + 16 * MIB) / 1024);
    printf("final %zu KB, peak %ld KB, bound %ld KB\n", final / 1024, peak, bound);
    free(v);
    if (peak < 0 || peak > bound) {
        fprintf(stderr, "huge_purge: grow peaked at %ld KB\n", peak);
        return 1;
    }
    return 0;
}

static int shrink(void)
{
    char *p[8];
    for (int i = 0; i < 8; i++) {
        size_t size = (48 + 8 * (size_t)i) * MIB;
        p[i] = malloc(size);
        if (p[i] == NULL)
            return 1;
        memset(p[i], 1, size);
        p[i] = realloc(p[i], MIB);
    }
    long rss = rss_kb(), bound = (long)(24 * MIB / 1024);
    printf("8 blocks of 48-104 MiB shrunk to 1 MiB: rss %ld KB, bound %ld KB\n", rss, bound);
    for (int i = 0; i < 8; i++)
        free(p[i]);
    if (rss < 0 || rss > bound) {
        fprintf(stderr, "huge_purge: %ld KB resident after the shrink\n", rss);
        return 1;
    }
    return 0;
}

static int reuse(void)
{
    for (int i = 0; i < 200; i++) {
        char *volatile p = malloc(32 * MIB);
        if (p == NULL)
            return 1;
        memset(p, 1, 32 * MIB);
        free(p);
    }
    long rss = rss_kb(); // before printf, which may allocate its buffer
    printf("resident after free %ld KB\n", rss);
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    int rc;
    if (strcmp(mode, "grow") == 0)
        rc = grow();
    else if (strcmp(mode, "shrink") == 0)
        rc = shrink();
    else if (strcmp(mode, "reuse") == 0)
        rc = reuse();
    else {
        fprintf(stderr, "usage: huge_purge grow|shrink|reuse\n");
        return 2;
    }
    if (rc == 0)
        printf("ok\n");
    return rc;
}
