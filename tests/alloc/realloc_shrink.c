// SPDX-License-Identifier: MIT
// A huge block shrunk by realloc stays where it is and gives its tail back: same pointer,
// contents kept, the resident set drops by about the part cut off. Before session 16 a block
// shrunk below half its size was copied into a new block (100 MB to 1 MB: a new pointer, 1 MB
// copied) and one shrunk less kept its whole tail resident (8 MB to 6 MB: 2 MB for nothing).
// A block shrunk to a small size may move (it goes to a normal page); its contents must stay.
// usage: realloc_shrink ; prints "ok".
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proc_status.h"

#define MB ((size_t)1 << 20)

static void fill(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(i * 7 + i / 4096);
}

static int intact(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 7 + i / 4096))
            return 0;
    return 1;
}

// Shrink a filled block of `from` bytes (aligned to `align`, 0 for malloc) to `to` bytes: it must
// stay in place, keep its contents, and the resident set must drop by at least `drop_kb`.
static int shrink_in_place(size_t align, size_t from, size_t to, long drop_kb)
{
    unsigned char *p = align ? aligned_alloc(align, from) : malloc(from);
    if (p == NULL)
        return 0;
    fill(p, from);
    long before = rss_kb();
    unsigned char *q = realloc(p, to);
    long after = rss_kb();
    int good = q == p && intact(q, to) && before - after >= drop_kb &&
               (align == 0 || (uintptr_t)q % align == 0);
    printf("%zu -> %zu (align %zu): %s, resident %ld -> %ld KB\n", from, to, align,
           q == p ? "in place" : "moved", before, after);
    if (q == NULL)
        return 0;
    // The shrunk block still grows and is freed as usual.
    unsigned char *r = realloc(q, from);
    good = good && r != NULL && intact(r, to);
    free(r != NULL ? r : q);
    return good;
}

// A huge block shrunk to a normal size class: contents kept (it may move).
static int shrink_to_small(void)
{
    unsigned char *p = malloc(8 * MB);
    if (p == NULL)
        return 0;
    fill(p, 8 * MB);
    unsigned char *q = realloc(p, 100 * 1024);
    int good = q != NULL && intact(q, 100 * 1024);
    free(q != NULL ? q : p);
    return good;
}

int main(void)
{
    int ok = shrink_in_place(0, 100 * MB, 1 * MB, 90 * 1024) &&
             shrink_in_place(0, 8 * MB, 3 * MB, 4 * 1024) &&
             shrink_in_place(0, 8 * MB, 6 * MB, 3 * 512) &&
             shrink_in_place(8 * MB, 40 * MB, 2 * MB, 30 * 1024) && shrink_to_small();
    puts(ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
