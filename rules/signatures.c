// SPDX-License-Identifier: GPL-3.0-or-later
// The signature table. Each list names things that only that allocator (or runtime) defines;
// names shared between allocators (malloc, __libc_malloc, which jemalloc also aliases) are
// deliberately absent, and names other code defines too are `supporting` only. Strings and tables
// are what survives `strip`.
#include "rules/signatures.h"

#include <elf.h>
#include <string.h>

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NONE ((const char *const[]){NULL})
#define TEXT(label_, s)                                                                            \
    {                                                                                              \
        .label = (label_), .text = (s)                                                             \
    }
#define END_BYTES                                                                                  \
    {                                                                                              \
        .label = NULL                                                                              \
    }

// musl mallocng's size classes in 16-byte units (src/malloc/mallocng), a constant table that
// every static mallocng binary carries in .rodata, stripped or not.
static const uint16_t musl_mallocng_size_classes[] = {
    1,   2,   3,   4,    5,    6,    7,    8,    9,    10,   12,   15,   18,   20,   25,   31,
    36,  42,  50,  63,   72,   84,   102,  127,  146,  170,  204,  255,  292,  340,  409,  511,
    584, 682, 818, 1023, 1169, 1364, 1637, 2047, 2340, 2730, 3276, 4095, 4680, 5460, 6552, 8191,
};

static const struct md_byte_sig musl_mallocng_bytes[] = {
    {.label = "size-class table",
     .words = musl_mallocng_size_classes,
     .word_count = sizeof musl_mallocng_size_classes / sizeof musl_mallocng_size_classes[0]},
    END_BYTES,
};

static const struct md_byte_sig glibc_malloc_bytes[] = {
    TEXT("message", "malloc(): corrupted top size"),
    TEXT("message", "malloc_consolidate(): invalid chunk size"),
    TEXT("message", "corrupted size vs. prev_size"),
    TEXT("message", "free(): invalid pointer"),
    END_BYTES,
};

static const struct md_byte_sig mimalloc_bytes[] = {
    TEXT("message", "mimalloc: warning: "),
    TEXT("message", "mimalloc: error: "),
    TEXT("option prefix", "mimalloc_%s"),
    END_BYTES,
};

static const struct md_byte_sig jemalloc_bytes[] = {
    TEXT("message", "<jemalloc>: "),
    END_BYTES,
};

static const struct md_byte_sig tcmalloc_bytes[] = {
    TEXT("message", "tcmalloc: large alloc"),
    TEXT("option", "TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD"),
    END_BYTES,
};

static const struct md_byte_sig go_alloc_bytes[] = {
    // function names live in .gopclntab, which strip keeps
    TEXT("function name", "runtime.mallocgc"),
    END_BYTES,
};

static const struct md_byte_sig mdalloc_bytes[] = {
    TEXT("message prefix", "mdalloc: "),
    // its banner's switch: a second string, so that a stripped program linked with mdalloc's
    // archive (its names hidden, none in .dynsym) is medium, not low
    TEXT("option", "MDALLOC_VERBOSE"),
    END_BYTES,
};

static const struct md_byte_sig glibc_bytes[] = {
    TEXT("string", "GLIBC_PRIVATE"),
    TEXT("string", "GLIBC_TUNABLES"),
    TEXT("message", "Fatal glibc error: "),
    END_BYTES,
};

static const struct md_byte_sig musl_bytes[] = {
    TEXT("strerror text", "No error information"),
    END_BYTES,
};

// musl's x86-64 _start (crt1.o, arch/x86_64/crt_arch.h): xor %rbp,%rbp; mov %rsp,%rdi;
// lea _DYNAMIC(%rip),%rsi; and $-16,%rsp; call _start_c. A stripped static musl program that
// prints no strerror text keeps no musl string, but keeps this. glibc's starts xor %ebp,%ebp.
static const unsigned char musl_start_x86_64[] = {
    0x48, 0x31, 0xed, 0x48, 0x89, 0xe7, 0x48, 0x8d, 0x35, 0, 0, 0, 0, 0x48, 0x83, 0xe4, 0xf0, 0xe8,
};
static const unsigned char musl_start_x86_64_mask[] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff,
};
static const struct md_code_sig musl_entry = {
    .label = "_start (x86-64)",
    .machine = EM_X86_64,
    .bytes = musl_start_x86_64,
    .mask = musl_start_x86_64_mask,
    .len = sizeof musl_start_x86_64,
};

static const struct md_byte_sig go_bytes[] = {
    TEXT("build info", "\xff Go buildinf:"),
    END_BYTES,
};

static const struct md_byte_sig no_bytes[] = {END_BYTES};

static const struct md_byte_sig asan_bytes[] = {
    TEXT("message", "ERROR: AddressSanitizer: "),
    END_BYTES,
};

static const struct md_byte_sig tsan_bytes[] = {
    TEXT("message", "WARNING: ThreadSanitizer: "),
    END_BYTES,
};

static const struct md_byte_sig msan_bytes[] = {
    TEXT("message", "WARNING: MemorySanitizer: "),
    END_BYTES,
};

static const struct md_byte_sig hwasan_bytes[] = {
    TEXT("message", "ERROR: HWAddressSanitizer: "),
    END_BYTES,
};

const struct md_signature md_signatures[] = {
    {
        .id = "musl-mallocng",
        .family = "musl",
        .name = "musl mallocng",
        .symbols = LIST("__malloc_alloc_meta", "__malloc_size_classes", "__malloc_context",
                        "alloc_slot", "alloc_group", "nontrivial_free"),
        .entries = NONE,
        .sections = NONE,
        .bytes = musl_mallocng_bytes,
    },
    {
        .id = "musl-oldmalloc",
        .family = "musl",
        .name = "musl oldmalloc",
        .symbols =
            LIST("__bin_chunk", "alloc_fwd", "alloc_rev", "unbin", "pretrim", "bin_index_up"),
        .entries = NONE,
        .sections = NONE,
        .bytes = no_bytes,
    },
    {
        // musl's malloc() wrapper and its bump allocator, linked alone when free() is unused
        .id = "musl-lite",
        .family = "musl",
        .name = "musl lite_malloc",
        .symbols = LIST("__simple_malloc"),
        // default_malloc is a common name (/usr/bin/node defines one); musl's fork.lo defines a
        // dummy __bump_lockptr for programs without the bump allocator
        .supporting = LIST("default_malloc", "__bump_lockptr"),
        .entries = LIST("__simple_malloc"),
        .sections = NONE,
        .bytes = no_bytes,
        .wrapper_target = "__libc_malloc_impl",
    },
    {
        .id = "glibc-ptmalloc",
        .family = "glibc",
        .name = "glibc ptmalloc",
        .symbols = LIST("_int_malloc", "_int_free", "_int_realloc", "_int_memalign",
                        "malloc_consolidate", "sysmalloc", "main_arena", "arena_get2",
                        "__malloc_arena_thread_freeres"),
        // mdalloc's glibc build defines malloc_trim, mallopt and the reports too (programs call
        // them whatever their malloc), and a program linked with its archive exports them: alone
        // they would make glibc's malloc a second candidate. jemalloc 5.3's tcache.c has a local
        // tcache_init of its own (rustc's .symtab shows it)
        .supporting = LIST("malloc_trim", "malloc_info", "mallinfo2", "tcache_init"),
        .entries = NONE,
        .sections = NONE,
        .bytes = glibc_malloc_bytes,
    },
    {
        .id = "mimalloc",
        .family = "mimalloc",
        .name = "mimalloc",
        .symbols = LIST("mi_malloc", "mi_free", "mi_calloc", "mi_realloc", "mi_zalloc",
                        "mi_heap_malloc", "mi_version", "mi_option_get", "mi_stats_print", "_mi_*"),
        .entries = LIST("mi_malloc"),
        .sections = NONE,
        .bytes = mimalloc_bytes,
    },
    {
        .id = "jemalloc",
        .family = "jemalloc",
        .name = "jemalloc",
        // jemalloc 5.3's internal names where its build leaves them unprefixed (rustc's, through
        // tikv-jemalloc-sys): malloc's neighbours then name it. tcache_bin_flush_* are jemalloc's
        // alone; malloc_default and free_default are generic names, so only supporting
        .symbols = LIST("mallocx", "rallocx", "xallocx", "sallocx", "dallocx", "mallctl",
                        "mallctlnametomib", "mallctlbymib", "malloc_stats_print",
                        "tcache_bin_flush_stashed", "tcache_bin_flush_small",
                        "tcache_bin_flush_large", "je_*", "_rjem_*"),
        // gperftools and Google's tcmalloc have nallocx and sdallocx
        .supporting = LIST("nallocx", "sdallocx", "malloc_default", "free_default"),
        .entries = LIST("je_malloc", "_rjem_malloc"),
        .sections = NONE,
        .bytes = jemalloc_bytes,
    },
    {
        .id = "tcmalloc",
        .family = "tcmalloc",
        .name = "tcmalloc (gperftools)",
        .symbols = LIST("tc_malloc", "tc_free", "tc_calloc", "tc_realloc", "tc_memalign",
                        "tc_newarray", "tc_version", "_ZN8tcmalloc6Static*",
                        "_ZN8tcmalloc11ThreadCache*", "_ZN22TCMallocImplementation*"),
        .supporting = LIST("TCMallocGetenvSafe"), // gperftools' base code: libprofiler has it
        .entries = LIST("tc_malloc"),
        .sections = NONE,
        .bytes = tcmalloc_bytes,
    },
    {
        .id = "tcmalloc-google",
        .family = "tcmalloc",
        .name = "tcmalloc (Google)",
        .symbols = LIST("TCMallocInternal*", "_ZN8tcmalloc17tcmalloc_internal*"),
        .entries = LIST("TCMallocInternalMalloc"),
        .sections = NONE,
        .bytes = no_bytes,
    },
    {
        .id = "snmalloc",
        .family = "snmalloc",
        .name = "snmalloc",
        .symbols =
            LIST("sn_malloc", "sn_free", "sn_rust_alloc", "sn_rust_dealloc", "_ZN8snmalloc*"),
        .entries = LIST("sn_malloc"),
        .sections = NONE,
        .bytes = no_bytes,
    },
    {
        .id = "rpmalloc",
        .family = "rpmalloc",
        .name = "rpmalloc",
        .symbols = LIST("rpmalloc", "rpfree", "rpcalloc", "rprealloc", "rpmalloc_initialize",
                        "rpmalloc_finalize", "rpmalloc_thread_initialize"),
        .entries = LIST("rpmalloc"),
        .sections = NONE,
        .bytes = no_bytes,
    },
    {
        .id = "go-runtime",
        .family = "go",
        .name = "Go runtime allocator",
        .symbols = LIST("runtime.mallocgc", "runtime.mheap_"),
        .entries = NONE,
        .sections = NONE,
        .bytes = go_alloc_bytes,
    },
    {
        .id = "mdalloc",
        .family = "mdalloc",
        .name = "mdalloc",
        // its internal names: a vote by malloc's neighbours finds them in unstripped builds
        // (local symbols, as its archive leaves them in a program's .symtab); md_glibc_init and
        // md_glue_target are its glue's own
        .symbols = LIST("mdalloc_*", "md_malloc_generic", "md_free_generic", "md_heap_get_slow",
                        "md_page_malloc_slow", "md_page_free_remote", "md_segment_alloc",
                        "md_process_init", "md_glue_thread_bind", "md_thread_done", "md_huge_alloc",
                        "md_glibc_init", "md_glue_target"),
        .entries = LIST("mdalloc_malloc"),
        .sections = NONE,
        .bytes = mdalloc_bytes,
    },
    // The sanitizers' runtimes replace malloc with their own checking allocator (a test build's,
    // not a production one). LeakSanitizer alone is not a row: ASan's runtime defines its names
    // too.
    {
        .id = "asan",
        .family = "sanitizer",
        .name = "AddressSanitizer",
        // not "__asan_*": every sanitizer runtime has libbacktrace's functions under that prefix
        .symbols = LIST("__asan_init", "__asan_report_*", "__asan_poison_memory_region",
                        "__asan_unpoison_memory_region", "__asan_version_mismatch_check_*"),
        .entries = NONE,
        .sections = NONE,
        .bytes = asan_bytes,
    },
    {
        .id = "tsan",
        .family = "sanitizer",
        .name = "ThreadSanitizer",
        .symbols = LIST("__tsan_init", "__tsan_func_entry", "__tsan_read*", "__tsan_write*"),
        .entries = NONE,
        .sections = NONE,
        .bytes = tsan_bytes,
    },
    {
        .id = "msan",
        .family = "sanitizer",
        .name = "MemorySanitizer",
        .symbols = LIST("__msan_init", "__msan_poison*", "__msan_unpoison*"),
        .entries = NONE,
        .sections = NONE,
        .bytes = msan_bytes,
    },
    {
        .id = "hwasan",
        .family = "sanitizer",
        .name = "HWAddressSanitizer",
        .symbols = LIST("__hwasan_init", "__hwasan_tag_*", "__hwasan_load*", "__hwasan_store*"),
        .entries = NONE,
        .sections = NONE,
        .bytes = hwasan_bytes,
    },
    {
        .id = "glibc",
        .family = "glibc",
        .name = "glibc",
        .kind = MD_SIG_RUNTIME,
        .symbols = LIST("gnu_get_libc_version", "__libc_start_call_main", "_dl_relocate_static_pie",
                        "__libc_setup_tls", "_IO_stdin_used"),
        .entries = NONE,
        .sections = NONE,
        .bytes = glibc_bytes,
    },
    {
        .id = "musl",
        .family = "musl",
        .name = "musl",
        .kind = MD_SIG_RUNTIME,
        .symbols = LIST("__init_libc", "__libc_start_init", "__dls2", "__dls3"),
        .entries = NONE,
        .sections = NONE,
        .bytes = musl_bytes,
        .entry_code = &musl_entry,
    },
    {
        .id = "go",
        .family = "go",
        .name = "Go runtime",
        .kind = MD_SIG_RUNTIME,
        .symbols = LIST("runtime.main", "runtime.rt0_go"),
        .entries = NONE,
        .sections = LIST(".go.buildinfo", ".gopclntab", ".note.go.buildid"),
        .bytes = go_bytes,
    },
};

const size_t md_signature_count = sizeof md_signatures / sizeof md_signatures[0];

const char *const md_thread_symbols[] = {
    "pthread_create", "__pthread_create", "thrd_create", "_ZNSt6thread15_M_start_thread*", NULL,
};

const struct md_signature *md_signature_find(const char *id_or_family)
{
    for (size_t i = 0; i < md_signature_count; i++)
        if (!strcmp(md_signatures[i].id, id_or_family))
            return &md_signatures[i];
    for (size_t i = 0; i < md_signature_count; i++)
        if (!strcmp(md_signatures[i].family, id_or_family))
            return &md_signatures[i];
    return NULL;
}

int md_allocator_known(const char *id_or_family)
{
    for (size_t i = 0; i < md_signature_count; i++)
        if (md_signatures[i].kind == MD_SIG_ALLOCATOR &&
            (!strcmp(md_signatures[i].id, id_or_family) ||
             !strcmp(md_signatures[i].family, id_or_family)))
            return 1;
    return 0;
}

int md_symbol_pattern_match(const char *pattern, const char *name)
{
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '*')
        return !strncmp(pattern, name, n - 1);
    return !strcmp(pattern, name);
}
