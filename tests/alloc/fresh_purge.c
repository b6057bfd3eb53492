// SPDX-License-Identifier: MIT
// Memory never touched needs no purge: a program that allocates small blocks, and frees none of
// them until the end, for longer than the purge delay must make no madvise call (its segment's free
// slices were never touched: purging them is a system call for nothing). Run with MDALLOC_STATS=1
// MDALLOC_PURGE_DELAY=5 and read madvise_calls. usage: fresh_purge ; prints "ok".
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MS 60

int main(void)
{
    // Every millisecond 4 KiB more of small blocks, kept: each step carves more of a page, which
    // takes malloc's slow path, where the heap's maintenance (the purge) runs. The pages in use
    // are a few slices; the rest of the segment is never touched.
    static void *kept[MS][64];
    struct timespec pause = {0, 1000000};
    for (int ms = 0; ms < MS; ms++) { // 60 ms: many purge delays of 5 ms
        for (int j = 0; j < 64; j++)
            if ((kept[ms][j] = malloc(64)) == NULL)
                return 1;
        nanosleep(&pause, NULL);
    }
    for (int ms = 0; ms < MS; ms++)
        for (int j = 0; j < 64; j++)
            free(kept[ms][j]);
    printf("ok\n");
    return 0;
}
