// SPDX-License-Identifier: MIT
// For the tests that check the resident set: /proc/self fields read without stdio.
#ifndef MD_TEST_PROC_STATUS_H
#define MD_TEST_PROC_STATUS_H

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Read with open/read into a buffer on the stack: stdio would allocate, and a small allocation
// runs a heap's maintenance, which could purge the cache this test must see unpurged.
static long status_field(const char *path, const char *field, int nth)
{
    char buf[4096];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *at = field != NULL ? strstr(buf, field) : buf;
    if (at == NULL)
        return -1;
    at += field != NULL ? strlen(field) : 0;
    long v = -1;
    for (int i = 0; i < nth; i++)
        v = strtol(at, (char **)&at, 10);
    return v;
}

static long rss_kb(void)
{
    long pages = status_field("/proc/self/statm", NULL, 2);
    return pages < 0 ? -1 : pages * (sysconf(_SC_PAGESIZE) / 1024);
}

#endif
