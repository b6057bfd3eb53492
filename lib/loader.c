// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/loader.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MD_CONF_DEPTH 8 // include nesting in ld.so.conf

// A list of owned strings.
struct strlist {
    char ***items;
    size_t *count;
};

static int strlist_add(struct strlist l, const char *s, size_t len)
{
    char **grown = realloc(*l.items, (*l.count + 1) * sizeof *grown);
    if (!grown)
        return -1;
    *l.items = grown;
    if (!(grown[*l.count] = strndup(s, len)))
        return -1;
    (*l.count)++;
    return 0;
}

static void strlist_free(char **items, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(items[i]);
    free(items);
}

// Where path (absolute, inside the root) is on this machine, with every symlink resolved as the
// target system resolves it: with the root as "/" (openat2's RESOLVE_IN_ROOT). An absolute link
// in a sysroot (/lib64/ld-linux..., /etc/alternatives/...) names a file of the sysroot, not of
// this machine. 1: resolved; 0: it does not exist in the root; -1: cannot tell here (a kernel
// before 5.6, a seccomp policy, no /proc).
static int resolve_in_root(const struct md_loader *l, const char *path, char *out, size_t size)
{
    struct open_how how = {.flags = O_PATH | O_CLOEXEC, .resolve = RESOLVE_IN_ROOT};
    int fd = (int)syscall(SYS_openat2, l->root_fd, path, &how, sizeof how);
    if (fd < 0) // missing; anything else (a seccomp EPERM, EACCES, EAGAIN) is not an answer
        return errno == ENOENT || errno == ENOTDIR || errno == ELOOP ? 0 : -1;
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, size - 1);
    close(fd);
    if (n <= 0 || (size_t)n >= size - 1)
        return -1;
    out[n] = 0;
    return 1;
}

// A path inside the root (absolute ones; relative ones are left alone) as a path on this machine;
// "" (which names no file) when it does not exist there. Where that cannot be told, the plain
// join, whose links the kernel follows out of the root.
static void rooted(const struct md_loader *l, const char *path, char *out, size_t size)
{
    int found = path[0] == '/' && l->root_fd >= 0 ? resolve_in_root(l, path, out, size) : -1;
    if (found == 0)
        out[0] = 0;
    else if (found < 0)
        snprintf(out, size, "%s%s", path[0] == '/' ? l->root : "", path);
}

// The same for a path on this machine that lies in the root (a directory found by rooted(), an
// $ORIGIN): its symlinks are resolved inside the root too.
static void rerooted(const struct md_loader *l, const char *host_path, char *out, size_t size)
{
    size_t n = strlen(l->root);
    if (l->root_fd >= 0 && !strncmp(host_path, l->root, n) && host_path[n] == '/')
        rooted(l, host_path + n, out, size);
    else
        snprintf(out, size, "%s", host_path);
}

// Adds each word of s (separated by white space, ':' or ',') to the list.
static int add_words(struct strlist list, const char *s)
{
    while (*s) {
        size_t skip = strspn(s, " \t:,\n"), len;
        s += skip;
        len = strcspn(s, " \t:,\n");
        if (len && strlist_add(list, s, len))
            return -1;
        s += len;
    }
    return 0;
}

static int read_conf(struct md_loader *l, const char *path, int depth);

static int include_conf(struct md_loader *l, const char *conf_path, const char *pattern, int depth)
{
    char dir[PATH_MAX], full[PATH_MAX], rooted_pattern[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", conf_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    const char *base = strrchr(pattern, '/');
    if (pattern[0] == '/') { // the directory resolves inside the root; the pattern stays
        char pattern_dir[PATH_MAX], resolved[PATH_MAX];
        snprintf(pattern_dir, sizeof pattern_dir, "%.*s", (int)(base - pattern), pattern);
        rooted(l, pattern_dir[0] ? pattern_dir : "/", resolved, sizeof resolved);
        if (!resolved[0]) // not in the root: "" + "/*.conf" would glob this machine's "/"
            return 0;
        snprintf(rooted_pattern, sizeof rooted_pattern, "%s%s", resolved, base);
    } else {
        snprintf(rooted_pattern, sizeof rooted_pattern, "%s/%s", dir, pattern);
    }
    glob_t g;
    if (glob(rooted_pattern, 0, NULL, &g))
        return 0;
    int rc = 0;
    for (size_t i = 0; i < g.gl_pathc && !rc; i++) {
        snprintf(full, sizeof full, "%s", g.gl_pathv[i]);
        rc = read_conf(l, full, depth + 1);
    }
    globfree(&g);
    return rc;
}

// path is already inside the root.
static int read_conf(struct md_loader *l, const char *path, int depth)
{
    if (depth > MD_CONF_DEPTH)
        return 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return 0; // a missing ld.so.conf means "no extra directories"
    char line[PATH_MAX + 64];
    int rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        line[strcspn(line, "#\n")] = 0;
        char *s = line + strspn(line, " \t");
        if (!strncmp(s, "include", 7) && (s[7] == ' ' || s[7] == '\t')) {
            s += 8 + strspn(s + 8, " \t");
            s[strcspn(s, " \t")] = 0;
            rc = include_conf(l, path, s, depth);
        } else if (strncmp(s, "hwcap", 5)) {
            rc = add_words((struct strlist){&l->conf_dirs, &l->conf_count}, s);
        }
    }
    fclose(f);
    return rc;
}

static int read_preload(struct md_loader *l)
{
    char path[PATH_MAX];
    rooted(l, "/etc/ld.so.preload", path, sizeof path);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    char line[PATH_MAX];
    int rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        line[strcspn(line, "#\n")] = 0;
        rc = add_words((struct strlist){&l->preload, &l->preload_count}, line);
    }
    fclose(f);
    return rc;
}

static int cpu_best_level(void);

int md_loader_init(struct md_loader *l, const char *root, const struct md_matcher *m,
                   struct md_error *err)
{
    memset(l, 0, sizeof *l);
    l->root_fd = -1;
    l->matcher = m;
    l->cpu_level = cpu_best_level();
    if (root && *root) {
        // paths the loader reports and $ORIGIN are real paths: the root must be one too
        if (!realpath(root, l->root) ||
            (l->root_fd = open(l->root, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
            return md_fail_errno(err, errno, "--root %s", root);
        if (!strcmp(l->root, "/"))
            l->root[0] = 0; // the running system's own root: nothing to prefix
    }
    char path[PATH_MAX];
    rooted(l, "/etc/ld.so.conf", path, sizeof path);
    if (read_conf(l, path, 0) || read_preload(l)) {
        md_loader_free(l);
        return md_fail(err, "out of memory reading the loader configuration");
    }
    return 0;
}

static void libinfo_free(struct md_libinfo *li)
{
    free(li->path);
    free(li->error);
    free(li->soname);
    strlist_free(li->needed, li->needed_count);
    free(li->rpath);
    free(li->runpath);
    free(li->thread_import);
    free(li);
}

struct md_dir_subs {
    char *dir;        // the expanded search directory
    unsigned present; // bit i: its subdirectory subdir_name(i) exists
};

void md_loader_forget_libraries(struct md_loader *l)
{
    for (size_t i = 0; i < l->lib_count; i++)
        libinfo_free(l->libs[i]);
    l->lib_count = 0;
    for (size_t i = 0; i < l->dir_sub_count; i++)
        free(l->dir_subs[i].dir);
    l->dir_sub_count = 0;
}

void md_loader_free(struct md_loader *l)
{
    if (l->root_fd >= 0)
        close(l->root_fd);
    strlist_free(l->conf_dirs, l->conf_count);
    strlist_free(l->preload, l->preload_count);
    md_loader_forget_libraries(l);
    free(l->libs);
    free(l->dir_subs);
    memset(l, 0, sizeof *l);
    l->root_fd = -1;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void fill_libinfo(struct md_loader *l, struct md_libinfo *li)
{
    struct md_elf e;
    struct md_error err;
    bool is_archive = false;
    if (md_elf_open(&e, li->path, &is_archive, &err)) {
        li->error = strdup(err.msg);
        return;
    }
    struct md_dynamic dyn;
    struct md_ident id;
    if (is_archive || md_elf_dynamic(&e, &dyn, &err) || md_identify(l->matcher, &e, &id, &err)) {
        li->error = strdup(is_archive ? "an archive, not a shared library" : err.msg);
        md_elf_close(&e);
        return;
    }
    li->elf_class = e.ehdr.e_ident[EI_CLASS];
    li->machine = e.ehdr.e_machine;
    li->exports_malloc = id.exports_malloc;
    li->thread_import = dup_or_null(id.thread_import);
    if (id.exports_malloc)
        md_active_local(l->matcher, &id, &li->active);
    for (size_t i = 0; i < dyn.needed_count; i++)
        strlist_add((struct strlist){&li->needed, &li->needed_count}, dyn.needed[i],
                    strlen(dyn.needed[i]));
    li->rpath = dup_or_null(dyn.rpath);
    li->runpath = dup_or_null(dyn.runpath);
    li->soname = dup_or_null(dyn.soname);
    struct stat st;
    if (!stat(li->path, &st))
        li->dev = st.st_dev, li->ino = st.st_ino;
    md_ident_free(&id);
    md_elf_close(&e);
}

// The cached facts of the library at path (read on first use), or NULL when out of memory.
static struct md_libinfo *library(struct md_loader *l, const char *path)
{
    for (size_t i = 0; i < l->lib_count; i++)
        if (!strcmp(l->libs[i]->path, path))
            return l->libs[i];
    if (l->lib_count == l->lib_cap) {
        size_t cap = l->lib_cap ? 2 * l->lib_cap : 32;
        struct md_libinfo **grown = realloc(l->libs, cap * sizeof *grown);
        if (!grown)
            return NULL;
        l->libs = grown;
        l->lib_cap = cap;
    }
    struct md_libinfo *li = calloc(1, sizeof *li);
    if (!li || !(li->path = strdup(path))) {
        free(li);
        return NULL;
    }
    fill_libinfo(l, li);
    l->libs[l->lib_count++] = li;
    return li;
}

struct requester {
    const char *origin; // directory of the requesting object (for $ORIGIN)
    const char *rpath, *runpath;
    int elf_class, machine;
    bool glibc; // searched by glibc's loader, which looks in glibc-hwcaps subdirectories first
    bool legacy_hwcaps; // and then, before 2.37, in the legacy ones (md_loader_legacy_subdirs)
};

// Expands $ORIGIN, $LIB and $PLATFORM in one search directory; roots absolute results.
static void expand_dir(const struct md_loader *l, const struct requester *r, const char *dir,
                       char *out, size_t size)
{
    char tmp[PATH_MAX];
    size_t n = 0;
    bool from_origin = false;
    for (const char *s = dir; *s && n + 1 < sizeof tmp;) {
        const char *val = NULL;
        size_t skip = 0;
        if (!strncmp(s, "$ORIGIN", 7) || !strncmp(s, "${ORIGIN}", 9)) {
            val = r->origin, skip = s[1] == '{' ? 9 : 7, from_origin = s == dir;
        } else if (!strncmp(s, "$LIB", 4) || !strncmp(s, "${LIB}", 6)) {
            val = r->elf_class == ELFCLASS64 ? "lib64" : "lib", skip = s[1] == '{' ? 6 : 4;
        } else if (!strncmp(s, "$PLATFORM", 9) || !strncmp(s, "${PLATFORM}", 11)) {
            val = "x86_64", skip = s[1] == '{' ? 11 : 9;
        }
        if (val) {
            n += (size_t)snprintf(tmp + n, sizeof tmp - n, "%s", val);
            s += skip;
        } else {
            tmp[n++] = *s++;
        }
    }
    tmp[n < sizeof tmp ? n : sizeof tmp - 1] = 0;
    if (from_origin) // $ORIGIN is already a real path inside the root
        snprintf(out, size, "%s", tmp);
    else
        rooted(l, tmp, out, size);
}

#if defined(__x86_64__)
#include <cpuid.h>

// The feature bits of an x86-64 psABI level (v2: CMPXCHG16B, LAHF, POPCNT, SSE3 to SSE4.2;
// v3: AVX, AVX2, BMI1/2, F16C, FMA, LZCNT, MOVBE, with the OS saving YMM state; v4: AVX-512
// F/BW/CD/DQ/VL, with ZMM state). Read with cpuid: GCC and clang do not agree on the names
// __builtin_cpu_supports takes for the levels.
static bool cpu_has_level(int level)
{
    unsigned a, b, c1, d, c81 = 0, b7 = 0, c7, d7;
    if (!__get_cpuid(1, &a, &b, &c1, &d))
        return false;
    __get_cpuid(0x80000001, &a, &b, &c81, &d);
    __get_cpuid_count(7, 0, &a, &b7, &c7, &d7);
    const unsigned v2_ecx = 1u << 0 | 1u << 9 | 1u << 13 | 1u << 19 | 1u << 20 | 1u << 23;
    bool v2 = (c1 & v2_ecx) == v2_ecx && (c81 & 1u);
    if (level <= 2 || !v2)
        return v2;
    unsigned xcr0_lo = 0, xcr0_hi = 0;
    if (c1 & 1u << 27) // OSXSAVE: xgetbv is allowed
        __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    const unsigned v3_ecx = 1u << 12 | 1u << 22 | 1u << 28 | 1u << 29;
    const unsigned v3_ebx7 = 1u << 3 | 1u << 5 | 1u << 8;
    bool v3 = (c1 & v3_ecx) == v3_ecx && (b7 & v3_ebx7) == v3_ebx7 && (c81 & 1u << 5) &&
              (xcr0_lo & 0x6) == 0x6;
    if (level == 3 || !v3)
        return v3;
    const unsigned v4_ebx7 = 1u << 16 | 1u << 17 | 1u << 28 | 1u << 30 | 1u << 31;
    return (b7 & v4_ebx7) == v4_ebx7 && (xcr0_lo & 0xe6) == 0xe6;
}
#endif

// glibc's x86-64 levels: glibc loads DIR/glibc-hwcaps/LEVEL/NAME before DIR/NAME for each level
// the CPU supports, best first. This machine's CPU: the one that runs the program may differ.
static int cpu_best_level(void)
{
#if defined(__x86_64__)
    for (int level = 4; level >= 2; level--)
        if (cpu_has_level(level))
            return level;
#endif
    return 0;
}

// dir/sub/name when it is a library the requester can load.
static const struct md_libinfo *try_file(struct md_loader *l, const struct requester *r,
                                         const char *dir, const char *sub, const char *name)
{
    char joined[PATH_MAX], path[PATH_MAX];
    if (snprintf(joined, sizeof joined, "%s/%s%s", dir, sub, name) >= (int)sizeof joined)
        return NULL;
    rerooted(l, joined, path, sizeof path); // the file itself may be a link
    if (access(path, F_OK))
        return NULL;
    const struct md_libinfo *li = library(l, path);
    // the loader skips files of another class or machine and keeps searching
    if (!li || li->error || li->elf_class != r->elf_class || li->machine != r->machine)
        return NULL;
    return li;
}

// glibc before 2.37 on x86-64, after the glibc-hwcaps levels and before the directory itself
// (its LD_DEBUG=libs search path): the tls and platform ("x86_64", AT_PLATFORM) subdirectories.
const char *const md_loader_legacy_subdirs[MD_LEGACY_SUBDIRS] = {
    "tls/x86_64/x86_64/", "tls/x86_64/", "tls/", "x86_64/x86_64/", "x86_64/"};

// The subdirectories a search directory may have, by bit: glibc-hwcaps/x86-64-v2 to v4, then
// the legacy ones.
#define MD_HWCAPS_SUBDIRS 3
static void subdir_name(unsigned i, char *out, size_t size)
{
    if (i < MD_HWCAPS_SUBDIRS)
        snprintf(out, size, "glibc-hwcaps/x86-64-v%u/", i + 2);
    else
        snprintf(out, size, "%s", md_loader_legacy_subdirs[i - MD_HWCAPS_SUBDIRS]);
}

// Which subdirectories of dir exist, checked once per directory: a failed access() for every
// library name in every absent one made most of a run over /usr/bin. All of them when the
// answer cannot be kept (out of memory): the files are then tried one by one, as before.
static unsigned present_subdirs(struct md_loader *l, const char *dir)
{
    for (size_t i = 0; i < l->dir_sub_count; i++)
        if (!strcmp(l->dir_subs[i].dir, dir))
            return l->dir_subs[i].present;
    if (l->dir_sub_count == l->dir_sub_cap) {
        size_t cap = l->dir_sub_cap ? 2 * l->dir_sub_cap : 16;
        struct md_dir_subs *grown = realloc(l->dir_subs, cap * sizeof *grown);
        if (!grown)
            return ~0u;
        l->dir_subs = grown, l->dir_sub_cap = cap;
    }
    struct md_dir_subs *d = &l->dir_subs[l->dir_sub_count];
    if (!(d->dir = strdup(dir)))
        return ~0u;
    d->present = 0;
    for (unsigned i = 0; i < MD_HWCAPS_SUBDIRS + MD_LEGACY_SUBDIRS; i++) {
        char sub[32], joined[PATH_MAX], path[PATH_MAX];
        subdir_name(i, sub, sizeof sub);
        if (snprintf(joined, sizeof joined, "%s/%s", dir, sub) >= (int)sizeof joined)
            continue;
        rerooted(l, joined, path, sizeof path);
        if (!access(path, F_OK))
            d->present |= 1u << i;
    }
    l->dir_sub_count++;
    return d->present;
}

static const struct md_libinfo *try_dir(struct md_loader *l, const struct requester *r,
                                        const char *dir, const char *name)
{
    char expanded[PATH_MAX], sub[32];
    expand_dir(l, r, dir, expanded, sizeof expanded);
    bool x86_64_glibc = r->glibc && r->machine == EM_X86_64;
    unsigned present = x86_64_glibc ? present_subdirs(l, expanded) : 0;
    const struct md_libinfo *li = NULL;
    for (int level = l->cpu_level; level >= 2 && !li; level--) {
        subdir_name((unsigned)level - 2, sub, sizeof sub);
        li = present & 1u << (level - 2) ? try_file(l, r, expanded, sub, name) : NULL;
    }
    for (unsigned i = 0; r->legacy_hwcaps && i < MD_LEGACY_SUBDIRS && !li; i++)
        if (present & 1u << (MD_HWCAPS_SUBDIRS + i))
            li = try_file(l, r, expanded, md_loader_legacy_subdirs[i], name);
    return li ? li : try_file(l, r, expanded, "", name);
}

bool md_loader_legacy_copy(const struct md_libinfo *li, char *out, size_t size)
{
    const char *slash = strrchr(li->path, '/');
    if (li->machine != EM_X86_64 || !slash || strstr(li->path, "/glibc-hwcaps/"))
        return false;
    for (size_t i = 0; i < MD_LEGACY_SUBDIRS; i++) {
        int n = snprintf(out, size, "%.*s/%s%s", (int)(slash - li->path), li->path,
                         md_loader_legacy_subdirs[i], slash + 1);
        if (n > 0 && (size_t)n < size && !access(out, F_OK))
            return true;
    }
    return false;
}

// glibc's minor version from its loader's banner ("ld.so (...) stable release version 2.36."),
// read from the file the program names as its interpreter (inside the root); -1 when unknown.
static int glibc_minor_of(const struct md_loader *l, const char *interp)
{
    static const char banner[] = "release version 2.";
    char path[PATH_MAX];
    rooted(l, interp, path, sizeof path);
    int fd = path[0] ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > (16 << 20)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    ssize_t n = buf ? pread(fd, buf, (size_t)st.st_size, 0) : -1;
    close(fd);
    int minor = -1;
    char *at = n > 0 ? memmem(buf, (size_t)n, banner, sizeof banner - 1) : NULL;
    if (at) {
        buf[n] = 0; // a banner at the very end still ends
        char *end;
        long v = strtol(at + sizeof banner - 1, &end, 10);
        minor = end != at + sizeof banner - 1 && v >= 0 && v < 1000 ? (int)v : -1;
    }
    free(buf);
    return minor;
}

static const struct md_libinfo *try_list(struct md_loader *l, const struct requester *r,
                                         const char *list, const char *name)
{
    char dirs[PATH_MAX * 4];
    snprintf(dirs, sizeof dirs, "%s", list ? list : "");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        const struct md_libinfo *li = try_dir(l, r, d, name);
        if (li)
            return li;
    }
    return NULL;
}

static const char *musl_default_dirs(const struct md_loader *l, char *buf, size_t size)
{
    char path[PATH_MAX];
    rooted(l, "/etc/ld-musl-x86_64.path", path, sizeof path);
    FILE *f = fopen(path, "re");
    if (!f)
        return "/lib:/usr/local/lib:/usr/lib";
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = 0;
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = ':';
    return buf;
}

// glibc's built-in directories, searched after ld.so.conf's: Debian's and Ubuntu's multiarch
// ones (`ld.so --help` lists them), then upstream's.
static const char *glibc_system_dirs(const struct requester *r)
{
    switch (r->machine) {
    case EM_X86_64:
        return r->elf_class == ELFCLASS64
                   ? "/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64:/usr/lib64:/lib:/usr/"
                     "lib"
                   : "/lib/x86_64-linux-gnux32:/usr/lib/x86_64-linux-gnux32:/libx32:/usr/libx32";
    case EM_386:
        return "/lib/i386-linux-gnu:/usr/lib/i386-linux-gnu:/lib:/usr/lib";
    case EM_AARCH64:
        return "/lib/aarch64-linux-gnu:/usr/lib/aarch64-linux-gnu:/lib64:/usr/lib64:/lib:/usr/lib";
    default:
        return r->elf_class == ELFCLASS64 ? "/lib64:/usr/lib64:/lib:/usr/lib" : "/lib:/usr/lib";
    }
}

// Another path to a file already loaded (a link, /lib beside /usr/lib) is that object.
static bool same_object(const struct md_libinfo *a, const struct md_libinfo *b)
{
    return a == b || (a->ino && a->ino == b->ino && a->dev == b->dev);
}

static bool in_scope(const struct md_scope *scope, const struct md_libinfo *li)
{
    for (size_t i = 0; i < scope->count; i++)
        if (same_object(scope->object[i], li))
            return true;
    return false;
}

static void scope_add(struct md_scope *scope, const struct md_libinfo *li, const char *name,
                      int loaded_by)
{
    if (scope->count == MD_MAX_SCOPE || in_scope(scope, li))
        return;
    scope->name[scope->count] = name;
    scope->loaded_by[scope->count] = loaded_by;
    scope->object[scope->count++] = li;
}

// The directory of path, resolved through symlinks as the loader's $ORIGIN is.
static void origin_of(const char *path, char *out, size_t size)
{
    char real[PATH_MAX];
    snprintf(out, size, "%s", realpath(path, real) ? real : path);
    char *slash = strrchr(out, '/');
    if (slash == out)
        out[1] = 0;
    else if (slash)
        *slash = 0;
    else
        snprintf(out, size, ".");
}

static void requester_of(const struct md_libinfo *li, char *origin, size_t size,
                         struct requester *r)
{
    origin_of(li->path, origin, size);
    *r = (struct requester){.origin = origin,
                            .rpath = li->rpath,
                            .runpath = li->runpath,
                            .elf_class = li->elf_class,
                            .machine = li->machine};
}

// One md_loader_scope: the executable and the scope being built.
struct walk {
    struct md_loader *l;
    struct md_scope *scope;
    const struct requester *exe;
    const char *exe_soname;
    const char *interp;
};

// The requester at a load-order index (-1: the executable); origin receives its $ORIGIN.
static const struct requester *requester_at(const struct walk *w, int index, char *origin,
                                            size_t size, struct requester *r)
{
    if (index < 0)
        return w->exe;
    requester_of(w->scope->object[index], origin, size, r);
    r->glibc = !w->scope->musl;
    r->legacy_hwcaps = w->exe->legacy_hwcaps;
    return r;
}

// The paths of the requester at index and of each object that loaded it, up to the executable,
// as the loader reads them (loader.h): glibc takes DT_RPATH only, musl DT_RUNPATH or DT_RPATH.
static const struct md_libinfo *try_loaders(const struct walk *w, int index, const char *name)
{
    const struct md_libinfo *li = NULL;
    for (int i = index;; i = w->scope->loaded_by[i]) {
        char origin[PATH_MAX];
        struct requester buf;
        const struct requester *r = requester_at(w, i, origin, sizeof origin, &buf);
        const char *list = !r->runpath ? r->rpath : w->scope->musl ? r->runpath : NULL;
        if ((li = try_list(w->l, r, list, name)) || i < 0)
            return li;
    }
}

static const struct md_libinfo *search(const struct walk *w, int index, const char *name)
{
    struct md_loader *l = w->l;
    if (strchr(name, '/')) {
        char path[PATH_MAX];
        rooted(l, name, path, sizeof path);
        return access(path, F_OK) ? NULL : library(l, path);
    }
    char origin[PATH_MAX];
    struct requester buf;
    const struct requester *r = requester_at(w, index, origin, sizeof origin, &buf);
    bool musl = w->scope->musl;
    // glibc: a DT_RUNPATH replaces the DT_RPATH chain (and is not inherited)
    const struct md_libinfo *li =
        musl || !r->runpath ? try_loaders(w, index, name) : try_list(l, r, r->runpath, name);
    if (musl) {
        char dirs[PATH_MAX];
        return li ? li : try_list(l, r, musl_default_dirs(l, dirs, sizeof dirs), name);
    }
    for (size_t i = 0; !li && i < l->conf_count; i++)
        li = try_dir(l, r, l->conf_dirs[i], name);
    return li ? li : try_list(l, r, glibc_system_dirs(r), name);
}

// Whether an object already loaded answers to name (loader.h), which ends the loader's look-up.
static bool already_loaded(const struct walk *w, const char *name)
{
    const struct md_scope *s = w->scope;
    if (s->musl && strchr(name, '/')) // musl opens a path, then compares the file
        return false;
    if (!s->musl && w->exe_soname && !strcmp(w->exe_soname, name))
        return true;
    for (size_t i = 0; i < s->count; i++) {
        const char *soname = s->musl ? NULL : s->object[i]->soname;
        if (!strcmp(s->name[i], name) || (soname && !strcmp(soname, name)))
            return true;
    }
    return false;
}

// musl's loader is also its libc, libm, libpthread, librt, libdl, libutil and libxnet: a needed
// name "lib" + one of those + "." ("libc.so", "libm.so.6") is the interpreter file.
static const struct md_libinfo *musl_libc(struct md_loader *l, const char *interp, const char *name)
{
    static const char *const builtin[] = {"c", "pthread", "rt", "m", "dl", "util", "xnet"};
    bool is_builtin = false;
    for (size_t i = 0; i < sizeof builtin / sizeof *builtin && !strncmp(name, "lib", 3); i++) {
        size_t n = strlen(builtin[i]);
        is_builtin |= !strncmp(name + 3, builtin[i], n) && name[3 + n] == '.';
    }
    if (!is_builtin)
        return NULL;
    char path[PATH_MAX], real[PATH_MAX];
    rooted(l, interp, path, sizeof path);
    const char *use = realpath(path, real) ? real : path;
    return access(use, F_OK) ? NULL : library(l, use);
}

// Each name once: a library two objects need is missing once.
static bool is_missing(const struct md_scope *scope, const char *name)
{
    for (size_t i = 0; i < scope->missing_count; i++)
        if (!strcmp(scope->missing[i], name))
            return true;
    return false;
}

// The needs of the object at load-order index (-1: the executable, and /etc/ld.so.preload).
static void resolve_needed(const struct walk *w, int index, char **needed, size_t count)
{
    struct md_scope *scope = w->scope;
    for (size_t i = 0; i < count; i++) {
        if (already_loaded(w, needed[i]))
            continue;
        const struct md_libinfo *li = scope->musl ? musl_libc(w->l, w->interp, needed[i]) : NULL;
        if (!li)
            li = search(w, index, needed[i]);
        if (li) {
            scope_add(scope, li, needed[i], index);
        } else if (scope->missing_count < MD_MAX_SCOPE && !is_missing(scope, needed[i])) {
            scope->missing_at[scope->missing_count] = scope->count;
            scope->missing[scope->missing_count++] = needed[i];
        }
    }
}

// A library names no loader. One that needs "libc.so" (musl's name for itself; glibc's is
// libc.so.6) is loaded by musl's, which is also its libc.
static const char *loader_of(const struct md_elf *e, const struct md_dynamic *dyn,
                             const char *interp)
{
    for (size_t i = 0; !interp && i < dyn->needed_count; i++)
        if (!strcmp(dyn->needed[i], "libc.so") && e->ehdr.e_machine == EM_X86_64)
            return "/lib/ld-musl-x86_64.so.1";
    return interp;
}

void md_loader_scope(struct md_loader *l, const char *path, const struct md_elf *e,
                     const struct md_dynamic *dyn, const char *interp, struct md_scope *scope)
{
    memset(scope, 0, sizeof *scope);
    interp = loader_of(e, dyn, interp);
    scope->musl = interp && strstr(interp, "ld-musl");
    scope->glibc_minor = !scope->musl && interp ? glibc_minor_of(l, interp) : -1;
    char origin[PATH_MAX];
    origin_of(path, origin, sizeof origin);
    struct requester exe = {.origin = origin,
                            .rpath = dyn->rpath,
                            .runpath = dyn->runpath,
                            .elf_class = e->ehdr.e_ident[EI_CLASS],
                            .machine = e->ehdr.e_machine,
                            .glibc = !scope->musl,
                            .legacy_hwcaps = scope->glibc_minor >= 0 && scope->glibc_minor < 37};
    struct walk w = {
        .l = l, .scope = scope, .exe = &exe, .exe_soname = dyn->soname, .interp = interp};
    if (!scope->musl)
        resolve_needed(&w, -1, l->preload, l->preload_count);
    resolve_needed(&w, -1, (char **)dyn->needed, dyn->needed_count);
    scope->direct_count = scope->count;
    scope->direct_missing = scope->missing_count;
    // breadth first: each object's needs are appended after everything already in scope
    for (size_t i = 0; i < scope->count; i++)
        resolve_needed(&w, (int)i, scope->object[i]->needed, scope->object[i]->needed_count);
}
