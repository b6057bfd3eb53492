// SPDX-License-Identifier: GPL-3.0-or-later
// A preloaded malloc and free that only forward to glibc's: the floor under an exact interposer,
// for the trace benchmark. Built twice. FORWARD_RETURNS=0 forwards with a tail call, so glibc's
// function returns straight to the program: what being interposed costs at all.
// FORWARD_RETURNS=1 regains control after the call, as the probe must to see whether the call was
// switched out (a syscall inside it): on some CPUs that extra call level alone costs more than a
// nanosecond per call.
#define _GNU_SOURCE
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
#if FORWARD_RETURNS
    __asm__ volatile("" : "+r"(p)); // work after the call: no tail call
#endif
    return p;
}

void free(void *p)
{
    __libc_free(p);
#if FORWARD_RETURNS
    __asm__ volatile("" ::: "memory");
#endif
}
