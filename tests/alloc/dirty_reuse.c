// SPDX-License-Identifier: MIT
// Empty segments go to the cache dirty and are purged after the delay; a block that takes a much
// bigger dirty mapping from the cache keeps the rest of it resident for as long as the block
// lives, out of the purge's reach. Frees 128 MiB of small blocks, lets the empty segments reach
// the cache, then keeps 32 blocks of 600 KiB live while the purge delay passes: the resident set
// must come down to about what is live. usage: dirty_reuse ; prints RSS numbers and "ok".
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SMALL_BYTES ((size_t)128 << 20)
#define SMALL_BLOCK 4000
#define BIG_COUNT 32
#define BIG_BLOCK ((size_t)600 << 10)

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = -1;
    if (f == NULL || fscanf(f, "%ld %ld", &pages, &resident) != 2)
        resident = -1;
    if (f != NULL)
        fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// Small allocations for `ms` milliseconds: the heap's maintenance (purge, cache) runs on them.
static void tick(int ms)
{
    struct timespec pause = {0, 1000000};
    for (int i = 0; i < ms; i++) {
        for (int j = 0; j < 64; j++) {
            void *volatile p = malloc(64 + 16 * (size_t)(j % 50));
            free(p);
        }
        void *volatile large = malloc(100000); // a large class: the heap's segment slow path
        free(large);
        nanosleep(&pause, NULL);
    }
}

int main(void)
{
    static void *small[SMALL_BYTES / SMALL_BLOCK];
    size_t count = SMALL_BYTES / SMALL_BLOCK;
    for (size_t i = 0; i < count; i++) {
        small[i] = malloc(SMALL_BLOCK);
        memset(small[i], 7, SMALL_BLOCK);
    }
    for (size_t i = 0; i < count; i++)
        free(small[i]);
    tick(20); // the empty segments are in the cache now, not yet purged
    void *big[BIG_COUNT];
    for (int i = 0; i < BIG_COUNT; i++) {
        big[i] = malloc(BIG_BLOCK);
        memset(big[i], 9, BIG_BLOCK);
    }
    tick(2500); // longer than the longest purge delay (1 s) and its maintenance period
    long rss = rss_kb(), live = (long)(BIG_COUNT * BIG_BLOCK / 1024);
    printf("live %ld KB, rss %ld KB\n", live, rss);
    for (int i = 0; i < BIG_COUNT; i++)
        free(big[i]);
    if (rss > 2 * live + 16 * 1024) {
        fprintf(stderr, "dirty_reuse: %ld KB resident for %ld KB live\n", rss, live);
        return 1;
    }
    printf("ok\n");
    return 0;
}
