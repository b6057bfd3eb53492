// SPDX-License-Identifier: GPL-3.0-or-later
// Resolving DT_NEEDED the way the dynamic loader does (like lddtree), without running anything:
// which library's `malloc` a dynamic program binds to.
//
// A needed name that an object already loaded answers to is that object, before any search:
// glibc matches the name each was loaded by and its DT_SONAME, musl the name only. Then glibc
// searches, for a requester without DT_RUNPATH, the DT_RPATH of the requester and of each object
// that loaded it, up to the executable (DT_RUNPATH hides an object's own DT_RPATH); for one with
// DT_RUNPATH, that only; then the ld.so.conf directories, then the default directories;
// /etc/ld.so.preload objects come before all DT_NEEDED ones. musl: the DT_RUNPATH, else DT_RPATH,
// of the requester and of each object that loaded it, then /etc/ld-musl-ARCH.path or
// /lib:/usr/local/lib:/usr/lib; "libc.so" (and libm's, libpthread's, ... names) is the loader
// itself. Either loader takes a file it finds again by another path for the object loaded.
// LD_LIBRARY_PATH and LD_PRELOAD are run-time settings and are deliberately not read.
#ifndef MD_LOADER_H
#define MD_LOADER_H

#include <stdbool.h>

#include "lib/identify.h"

#include <limits.h>
#include <sys/types.h>

#define MD_MAX_SCOPE 256

// What the loader needs to know of one library, kept after the file is closed.
struct md_libinfo {
    char *path;  // as found (inside the root when one is set)
    char *error; // why it could not be read, or NULL
    dev_t dev;   // the file's identity: another path to it is the same object
    ino_t ino;
    char *soname; // DT_SONAME, or NULL
    int elf_class, machine;
    bool exports_malloc;
    char *thread_import;     // a thread symbol it imports: it can start threads (md_ident)
    struct md_active active; // who serves its malloc, when it exports one
    char **needed;
    size_t needed_count;
    char *rpath, *runpath;
};

struct md_loader {
    // The sysroot, its real path ("" for the running system) and a descriptor on it, through
    // which paths inside it are resolved as its own loader would see them (-1: none).
    char root[PATH_MAX];
    int root_fd;
    const struct md_matcher *matcher;
    char **conf_dirs; // ld.so.conf, in order
    size_t conf_count;
    char **preload; // /etc/ld.so.preload entries
    size_t preload_count;
    struct md_libinfo **libs; // every library read so far, by path
    size_t lib_count, lib_cap;
    // The highest x86-64 psABI level (2-4) of this machine's CPU, 0 for none or another
    // architecture: whose glibc-hwcaps subdirectories the loader searches. Read once, as cpuid
    // costs about 15 us in a virtual machine, against every search directory of every library.
    int cpu_level;
    // Which hwcaps subdirectories each search directory has (struct md_dir_subs in loader.c):
    // most have none, and every program's every library is looked up in each of them.
    struct md_dir_subs *dir_subs;
    size_t dir_sub_count, dir_sub_cap;
};

struct md_scope {
    const struct md_libinfo *object[MD_MAX_SCOPE]; // load order after the executable
    const char *name[MD_MAX_SCOPE];                // the needed name each was loaded by
    int loaded_by[MD_MAX_SCOPE]; // index of the object that first needed it; -1: the executable
    size_t count;
    size_t direct_count; // the first ones: /etc/ld.so.preload's and the executable's DT_NEEDED
    const char *missing[MD_MAX_SCOPE]; // needed names that were not found (owned by the loader
    size_t missing_count;              // or the executable)
    size_t direct_missing;             // the first ones: needed by the executable itself
    // the load-order index each missing library would have had: it and what it needs come
    // after every object with a lower index
    size_t missing_at[MD_MAX_SCOPE];
    bool musl;
    // glibc's minor version, read from the interpreter (2.36: 36); -1 when unknown or musl.
    // Before 2.37 the loader also searches the legacy hwcaps subdirectories.
    int glibc_minor;
};

int md_loader_init(struct md_loader *l, const char *root, const struct md_matcher *m,
                   struct md_error *err);
void md_loader_free(struct md_loader *l);
// Forgets what was read of the libraries (one may have changed while it was read).
void md_loader_forget_libraries(struct md_loader *l);

// The legacy hwcaps subdirectories glibc before 2.37 searches on x86-64, in its order.
#define MD_LEGACY_SUBDIRS 5
extern const char *const md_loader_legacy_subdirs[MD_LEGACY_SUBDIRS];

// A copy of li in a legacy hwcaps subdirectory of its directory (x86_64/, tls/, ...), which glibc
// before 2.37 loads instead; its path goes to out. x86-64 only. For a scope whose glibc version
// is unknown: with a known one, the search itself finds such a copy.
bool md_loader_legacy_copy(const struct md_libinfo *li, char *out, size_t size);

// Builds the load order of an executable (or library) e. interp may be NULL.
void md_loader_scope(struct md_loader *l, const char *path, const struct md_elf *e,
                     const struct md_dynamic *dyn, const char *interp, struct md_scope *scope);

#endif
