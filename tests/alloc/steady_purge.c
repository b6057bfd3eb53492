// SPDX-License-Identifier: MIT
// A program that loads a big structure, drops it, and then runs a steady loop whose mallocs and
// frees all take the fast paths (or are huge blocks) must still give the dropped memory back:
// the heap's maintenance (the purge) used to run only on a slow path, so 400 MB freed stayed
// resident for as long as such a loop ran (acceptance, session 19; glibc gave it back at once).
// usage: steady_purge small|huge  (the loop's requests: 64 B, or 1 MiB); prints "ok" when the
// resident set fell by at least three quarters of the dropped memory within 3 s of the loop.
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proc_status.h"

#define RECORDS 640
#define RECORD_SIZE 100000 // 64 MB in all: a normal (not huge) block each

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t request = argc > 1 && !strcmp(argv[1], "huge") ? (size_t)1 << 20 : 64;
    static char *records[RECORDS];
    for (int i = 0; i < RECORDS; i++) {
        if ((records[i] = malloc(RECORD_SIZE)) == NULL)
            return 1;
        memset(records[i], 'x', RECORD_SIZE);
    }
    long loaded = rss_kb();
    for (int i = 0; i < RECORDS; i++)
        free(records[i]);
    long target = loaded - (long)RECORDS * RECORD_SIZE / 1024 * 3 / 4, rss = loaded;
    double start = now_s();
    for (long n = 1; now_s() - start < 3; n++) {
        char *volatile p = malloc(request);
        if (p == NULL)
            return 1;
        p[0] = (char)n;
        free(p);
        if (n % 1000 == 0 && (rss = rss_kb()) <= target)
            break;
    }
    printf("loaded %ld KB, after the loop %ld KB (at most %ld KB)\n", loaded, rss, target);
    if (rss > target)
        return 1;
    printf("ok\n");
    return 0;
}
