// SPDX-License-Identifier: MIT
// Allocate and free in a loop at every size boundary (page kinds, the huge threshold, glibc's
// mmap threshold, the segment size). Run with MDALLOC_STATS=1: the number of mmap, munmap and
// madvise calls must not grow with the number of iterations.
// usage: boundaries ITERATIONS
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t sizes[] = {
    8192,
    8193,
    65536,
    65537,
    128 * 1024 - 16,
    128 * 1024,
    128 * 1024 + 16,
    524288,
    524289,
    1 << 20,
    (1 << 20) + 1,
    (4 << 20) - 12288,
    4 << 20,
    (4 << 20) + 1,
    32 << 20,
    (32 << 20) + 4096,
};

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 10000;
    size_t n = sizeof(sizes) / sizeof(sizes[0]);
    void *keep = malloc(100);
    for (long i = 0; i < iterations; i++) {
        for (size_t k = 0; k < n; k++) { // one size at a time, then alternating neighbours
            char *p = malloc(sizes[k]);
            if (p == NULL)
                return 1;
            p[0] = p[sizes[k] - 1] = 1;
            free(p);
        }
        char *a = malloc(sizes[i % n]), *b = malloc(sizes[(i + 1) % n]);
        if (a == NULL || b == NULL)
            return 1;
        a[0] = b[0] = 2;
        free(a);
        free(b);
    }
    free(keep);
    printf("ok %ld iterations\n", iterations);
    return 0;
}
