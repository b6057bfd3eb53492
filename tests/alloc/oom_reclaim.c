// SPDX-License-Identifier: MIT
// Under an address-space limit, memory the program freed must be usable for requests that need new
// address space. Fills the limit with small blocks, frees them all, then at once asks for blocks
// that need fresh mappings (a 32 MiB huge block, a 600 KiB one, a 64 MiB block aligned to 8 MiB).
// glibc and musl unmap freed memory; mdalloc keeps freed segments with the thread's heap and in its
// cache, and must give them back when a mapping fails. usage: oom_reclaim ; prints "ok".
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define LIMIT ((size_t)320 << 20) // above what the program maps before it starts filling
#define BLOCK 1000
#define MAX_BLOCKS 400000

static void *blocks[MAX_BLOCKS];

static long vm_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = -1;
    if (f == NULL || fscanf(f, "%ld", &pages) != 1)
        pages = -1;
    if (f != NULL)
        fclose(f);
    return pages * 4 / 1024;
}

static int expect(const char *what, void *p)
{
    printf("%s: %s (VM %ld MB)\n", what, p != NULL ? "ok" : "NULL", vm_mb());
    free(p);
    return p != NULL;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    struct rlimit rl = {(rlim_t)LIMIT, (rlim_t)LIMIT};
    if (setrlimit(RLIMIT_AS, &rl) != 0) {
        perror("setrlimit");
        return 2;
    }
    size_t n = 0;
    while (n < MAX_BLOCKS && (blocks[n] = malloc(BLOCK)) != NULL) {
        memset(blocks[n], 1, BLOCK);
        n++;
    }
    printf("filled %zu MB (VM %ld MB)\n", n * BLOCK >> 20, vm_mb());
    if (n * BLOCK < LIMIT / 2) {
        printf("filled too little\n");
        return 2;
    }
    for (size_t i = 0; i < n; i++)
        free(blocks[i]);
    int good = expect("malloc(32 MiB) after freeing all", malloc((size_t)32 << 20));
    good &= expect("malloc(600 KiB)", malloc((size_t)600 << 10));
    void *aligned = NULL;
    if (posix_memalign(&aligned, (size_t)8 << 20, (size_t)64 << 20) != 0)
        aligned = NULL;
    good &= expect("posix_memalign(8 MiB, 64 MiB)", aligned);
    // And the small blocks come back too.
    size_t again = 0;
    while (again < n && (blocks[again] = malloc(BLOCK)) != NULL)
        again++;
    printf("refilled %zu of %zu blocks\n", again, n);
    good &= again >= n - n / 8;
    for (size_t i = 0; i < again; i++)
        free(blocks[i]);
    if (!good)
        return 1;
    printf("ok\n");
    return 0;
}
