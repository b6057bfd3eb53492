// SPDX-License-Identifier: MIT
// A raw x86-64 syscall: no libc, no errno (the result is -errno on failure). mdalloc's OS layer
// uses it so that its calls never touch the program's errno; the static probe, which has no libc
// at all, uses it for everything.
#ifndef MD_SYSCALL_H
#define MD_SYSCALL_H

#if defined(__x86_64__)
static inline long md_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}
#endif

#endif
