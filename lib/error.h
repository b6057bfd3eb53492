// SPDX-License-Identifier: GPL-3.0-or-later
// Errors from the engine: lib/ never prints and never exits, it fills one of these and returns -1.
#ifndef MD_ERROR_H
#define MD_ERROR_H

#include <stddef.h>

struct md_error {
    char msg[512]; // one line, no trailing newline: "<subject>: <reason>"
};

// Formats the message; always returns -1 so callers can `return md_fail(err, ...)`. A message
// longer than msg keeps its start and its last 300 bytes around "..." (the subject, a path that
// can be longer than PATH_MAX under `inspect -r`, gives way; the reason at its end survives).
// Arguments may point into err->msg itself.
int md_fail(struct md_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Like md_fail, with strerror(errnum) appended as ": <reason>".
int md_fail_errno(struct md_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
