// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/error.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// What a too-long message keeps of its end: the reason comes last ("<subject>: <reason>"), and
// the longest reasons (a corrupt member header with its offset, strerror texts) fit in it.
#define MD_ERROR_TAIL 300
#define MD_ERROR_ELISION "..."

static bool continuation(char c)
{
    return ((unsigned char)c & 0xc0) == 0x80;
}

// Copies full (len bytes) into err, keeping its start and its end around an elision when it does
// not fit: the subject (a path that can be ~12 KB under `inspect -r`) gives way, never the reason.
// Cuts fall on UTF-8 character boundaries so that a name stays readable on both sides.
static void store(struct md_error *err, const char *full, size_t len)
{
    if (len < sizeof err->msg) {
        memcpy(err->msg, full, len + 1);
        return;
    }
    size_t elision = strlen(MD_ERROR_ELISION);
    size_t head = sizeof err->msg - 1 - elision - MD_ERROR_TAIL;
    size_t tail = len - MD_ERROR_TAIL;
    while (head > 0 && continuation(full[head]))
        head--;
    while (tail < len && continuation(full[tail]))
        tail++;
    memcpy(err->msg, full, head);
    memcpy(err->msg + head, MD_ERROR_ELISION, elision);
    memcpy(err->msg + head + elision, full + tail, len - tail + 1);
}

// Formats fmt, then ": suffix" when suffix is given, into err.
static void format(struct md_error *err, const char *suffix, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    char small[sizeof err->msg];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) { // an encoding error: nothing better to say than the format itself
        snprintf(err->msg, sizeof err->msg, "%s", fmt);
        va_end(again);
        return;
    }
    size_t extra = suffix ? strlen(suffix) + 2 : 0;
    size_t len = (size_t)n + extra;
    char *full = len < sizeof small ? small : malloc(len + 1);
    if (!full) { // no memory for the whole text: its start is all there is
        memcpy(err->msg, small, sizeof err->msg);
        va_end(again);
        return;
    }
    if (full != small)
        vsnprintf(full, (size_t)n + 1, fmt, again);
    va_end(again);
    if (suffix)
        snprintf(full + n, extra + 1, ": %s", suffix);
    store(err, full, len);
    if (full != small)
        free(full);
}

int md_fail(struct md_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    format(err, NULL, fmt, ap);
    va_end(ap);
    return -1;
}

int md_fail_errno(struct md_error *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    format(err, strerror(errnum), fmt, ap);
    va_end(ap);
    return -1;
}
