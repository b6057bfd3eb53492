// SPDX-License-Identifier: MIT
// malloc_trim gives back at once what the purge delay would keep for a while: 64 MiB of 32 KiB
// blocks is allocated and touched, all but every 64th block freed (so their segments stay in use
// with free pages), and malloc_trim(0) must say it released memory and bring the resident set
// down; a second call finds nothing more. The kept blocks keep their contents and new blocks can
// still be allocated. A call before anything was freed says nothing was released. usage: trim
// [skip] ; "skip" leaves the trim out, to show the check fails without it. Prints RSS numbers and
// "ok".
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCKS 2048
#define BLOCK_SIZE ((size_t)32 << 10)
#define KEEP_EVERY 64

// Read without stdio: fopen allocates, and an allocator call may run the purge it is meant to
// leave out.
static long rss_kb(void)
{
    char text[128] = "";
    int fd = open("/proc/self/statm", O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
    if (fd >= 0)
        close(fd);
    long pages, resident;
    if (n <= 0 || sscanf(text, "%ld %ld", &pages, &resident) != 2)
        return -1;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static int fail(const char *what)
{
    printf("FAIL %s\n", what);
    return 1;
}

int main(int argc, char **argv)
{
    int skip = argc > 1 && !strcmp(argv[1], "skip");
    // nothing freed yet: nothing to give back, whatever the accounting of untouched pages says
    void *volatile one = malloc(100);
    if (!skip && malloc_trim(0))
        return fail("malloc_trim said it released memory when nothing was freed");
    free(one);
    static unsigned char *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        if ((blocks[i] = malloc(BLOCK_SIZE)) == NULL)
            return fail("malloc");
        memset(blocks[i], i & 0xff, BLOCK_SIZE);
    }
    for (int i = 0; i < BLOCKS; i++)
        if (i % KEEP_EVERY)
            free(blocks[i]);
    long before = rss_kb();
    int released = skip ? 1 : malloc_trim(0);
    long after = rss_kb();
    int again = skip ? 0 : malloc_trim(0);
    printf("rss before %ld KiB, after %ld KiB; malloc_trim: %d, again: %d\n", before, after,
           released, again);
    if (before < 0 || after < 0)
        return fail("reading the resident set");
    // 62 of the 64 MiB freed; allow the kept blocks' pages and the allocator's own metadata
    if (!released || after > before - 48 * 1024)
        return fail("malloc_trim gave nothing back");
    if (again)
        return fail("a second malloc_trim found more to give back");
    for (int i = 0; i < BLOCKS; i += KEEP_EVERY)
        for (size_t k = 0; k < BLOCK_SIZE; k += 4096)
            if (blocks[i][k] != (i & 0xff))
                return fail("a kept block lost its contents");
    for (int i = 0; i < BLOCKS; i++) {
        if (i % KEEP_EVERY && (blocks[i] = malloc(BLOCK_SIZE)) == NULL)
            return fail("malloc after the trim");
        memset(blocks[i], 1, BLOCK_SIZE);
    }
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    printf("ok\n");
    return 0;
}
