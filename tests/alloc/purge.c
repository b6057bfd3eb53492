// SPDX-License-Identifier: MIT
// Memory given back with hysteresis: a burst of large blocks (one per page) is allocated, touched
// and freed every 20 ms, 40 times, while a small block keeps their segment in use. The pages are
// needed again soon after each pause, so purging them every time would be a madvise storm (and
// page faults to refill them). Run with MDALLOC_STATS=1 and count the madvise calls.
// usage: purge ; prints "cycles 40"
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOCKS 24
#define BLOCK_SIZE ((size_t)100 * 1024) // a one-block page of two 64 KiB slices
#define CYCLES 40

static int burst(void)
{
    char *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK_SIZE);
        if (blocks[i] == NULL)
            return -1;
        memset(blocks[i], i + 1, BLOCK_SIZE);
    }
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    return 0;
}

int main(void)
{
    char *keeper = malloc(64); // keeps the segment in use
    if (keeper == NULL)
        return 1;
    for (int round = 0; round < CYCLES; round++) {
        struct timespec pause = {0, 20 * 1000000L};
        nanosleep(&pause, NULL);
        if (burst())
            return 1;
    }
    printf("cycles %d\n", CYCLES);
    free(keeper);
    return 0;
}
