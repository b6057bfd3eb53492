// SPDX-License-Identifier: MIT
// What the tool and the static probe (alloc/probe_static.c) agree on: the functions it hooks, by
// the names used in its HOOKS argument, and the marker after which the program runs.
#ifndef MD_PROBE_STATIC_H
#define MD_PROBE_STATIC_H

// The functions of a static program the probe knows. All but the last are hooked and counted;
// the last is only called, to learn a freed block's size.
enum md_static_kind {
    MD_STATIC_MALLOC,
    MD_STATIC_FREE,
    MD_STATIC_CALLOC,
    MD_STATIC_REALLOC,
    MD_STATIC_ALIGNED_ALLOC,
    MD_STATIC_MEMALIGN,
    MD_STATIC_POSIX_MEMALIGN,
    MD_STATIC_VALLOC,
    MD_STATIC_PVALLOC,
    MD_STATIC_USABLE_SIZE,
    MD_STATIC_KINDS,
};

// The names of the kinds in the HOOKS argument: the functions' own names.
#define MD_STATIC_KIND_NAMES                                                                       \
    {                                                                                              \
        [MD_STATIC_MALLOC] = "malloc", [MD_STATIC_FREE] = "free", [MD_STATIC_CALLOC] = "calloc",   \
        [MD_STATIC_REALLOC] = "realloc", [MD_STATIC_ALIGNED_ALLOC] = "aligned_alloc",              \
        [MD_STATIC_MEMALIGN] = "memalign", [MD_STATIC_POSIX_MEMALIGN] = "posix_memalign",          \
        [MD_STATIC_VALLOC] = "valloc", [MD_STATIC_PVALLOC] = "pvalloc",                            \
        [MD_STATIC_USABLE_SIZE] = "malloc_usable_size",                                            \
    }

// Calls to free from this function of the allocator's own (glibc's thread-exit cleanup of its
// block cache) are forwarded without counting; the HOOKS argument names its range with this key.
#define MD_STATIC_QUIET_CALLER "__malloc_arena_thread_freeres"
#define MD_STATIC_QUIET_KEY "quiet"

// Where hook n's trampoline (the moved instructions) goes, as an offset from the end of the image
// (the page after its last PT_LOAD segment): the tool checks the relocation at that address
// before the run, so the probe never meets a target out of reach.
#define MD_STATIC_TRAMPOLINE_STRIDE 128 // per hook: an absolute jump to the hook, the trampoline
#define MD_STATIC_TRAMPOLINE_AT(n) ((uint64_t)(n)*MD_STATIC_TRAMPOLINE_STRIDE + 16)

// The most program headers the probe reads (the tool refuses programs with more).
#define MD_STATIC_MAX_PHDRS 256

// The probe's last syscall before it jumps to the program, madvise(MARKER, 0, MADV_NORMAL): a
// no-op the program never makes. strace lines before it are the probe's own (mapping the
// program), not the program's.
#define MD_STATIC_MARKER 0x6d6400000000ul

// The probe's three arguments, also given to the program in its environment. A program that runs
// itself again through /proc/self/exe (which names the probe) runs the probe with its own
// arguments: the probe then finds PROBE_FILE, EXECUTABLE and HOOKS here, and the new process is
// hooked and counted like the first.
#define MD_STATIC_ENV_FILE "MD_STATIC_PROBE_FILE"
#define MD_STATIC_ENV_EXE "MD_STATIC_PROBE_EXE"
#define MD_STATIC_ENV_HOOKS "MD_STATIC_PROBE_HOOKS"

#endif
