// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/trace_hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc/hook_x86.h"
#include "alloc/probe_static.h"
#include "lib/symbolize.h"

// Functions longer than this are not read whole, so their branches cannot all be checked.
#define MAX_FUNCTION_BYTES (1u << 20)

// The bytes a hook moves: no branch may land inside them, except at the entry.
struct moved_range {
    uint64_t addr, len;
    const char *name;
};

// The end of the image at link time, where the probe puts its trampolines.
static uint64_t image_end(const struct md_symtab *t)
{
    uint64_t end = 0;
    for (size_t i = 0; i < t->load_count; i++)
        if (t->loads[i].p_vaddr + t->loads[i].p_memsz > end)
            end = t->loads[i].p_vaddr + t->loads[i].p_memsz;
    return (end + 4095) & ~(uint64_t)4095;
}

// Reads the function's bytes and plans its hook, number n, checking its relocation where the
// probe will write it; 0, or -1 with the reason in err.
static int plan_one(const struct md_symtab *t, int fd, const struct md_func_sym *f, size_t n,
                    struct moved_range *moved, struct md_error *err)
{
    uint64_t offset;
    if (!f->size || f->size > MAX_FUNCTION_BYTES)
        return md_fail(err, "%s: %s has no usable symbol size", t->path, f->name);
    if (!md_symtab_addr_to_offset(t, f->addr, &offset))
        return md_fail(err, "%s: %s is not in a loadable segment", t->path, f->name);
    uint8_t *code = malloc(f->size);
    if (!code)
        return md_fail(err, "out of memory");
    ssize_t got = pread(fd, code, f->size, (off_t)offset);
    struct md_hook_plan plan;
    uint8_t trampoline[MD_HOOK_TRAMPOLINE_MAX];
    const char *why = "";
    int rc = 0;
    if (got != (ssize_t)f->size)
        rc = md_fail(err, "%s: %s: the function's bytes are not in the file", t->path, f->name);
    else if (md_hook_plan(code, f->size, f->addr, &plan, &why))
        rc = md_fail(err, "%s: %s cannot be hooked: %s (at +0x%x)", t->path, f->name, why,
                     plan.why_at);
    else if (md_hook_relocate(code, f->addr, &plan, trampoline,
                              image_end(t) + MD_STATIC_TRAMPOLINE_AT(n)) < 0)
        rc = md_fail(err,
                     "%s: %s cannot be hooked: a target of its first instructions is out "
                     "of reach of the trampoline",
                     t->path, f->name);
    else
        *moved = (struct moved_range){f->addr, plan.moved_len, f->name};
    free(code);
    return rc;
}

// Where a decoded relative branch at addr goes.
static uint64_t branch_target(const uint8_t *code, uint64_t addr, const struct md_insn *in)
{
    int64_t disp = in->branch_size == 1 ? (int8_t)code[in->branch_at]
                                        : (int32_t)((uint32_t)code[in->branch_at] |
                                                    (uint32_t)code[in->branch_at + 1] << 8 |
                                                    (uint32_t)code[in->branch_at + 2] << 16 |
                                                    (uint32_t)code[in->branch_at + 3] << 24);
    return addr + in->len + (uint64_t)disp;
}

// Checks one function's relative branches against every moved range; md_hook_plan has checked
// branches within each hooked function already, this catches the others (GCC's `foo.cold`
// parts jump back into foo from outside its symbol).
static int scan_function(const struct md_symtab *t, const struct md_func_sym *f,
                         const uint8_t *code, const struct moved_range *moved, size_t n,
                         struct md_error *err)
{
    for (uint64_t at = 0; at < f->size;) {
        struct md_insn in;
        if (md_insn_decode(code + at, f->size - at, &in))
            return md_fail(err,
                           "%s: %s+0x%jx cannot be decoded, so branches into the hooked "
                           "functions cannot be ruled out",
                           t->path, f->name, (uintmax_t)at);
        uint64_t target = in.branch_size ? branch_target(code + at, f->addr + at, &in) : 0;
        for (size_t i = 0; in.branch_size && i < n; i++)
            if (target > moved[i].addr && target < moved[i].addr + moved[i].len)
                return md_fail(err, "%s: %s+0x%jx branches into the first bytes of %s", t->path,
                               f->name, (uintmax_t)at, moved[i].name);
        at += in.len;
    }
    return 0;
}

// Decodes every function of the program's executable segments.
static int scan_program(const struct md_symtab *t, int fd, const struct moved_range *moved,
                        size_t n, struct md_error *err)
{
    uint8_t *code = NULL;
    int rc = 0;
    uint64_t scanned = UINT64_MAX; // the last address decoded: its aliases are skipped
    for (size_t i = 0; !rc && i < t->count; i++) {
        const struct md_func_sym *f = &t->funcs[i];
        uint64_t offset;
        if (!f->size || f->addr == scanned)
            continue;
        scanned = f->addr;
        if (f->size > MAX_FUNCTION_BYTES || !md_symtab_addr_to_offset(t, f->addr, &offset)) {
            rc = md_fail(err,
                         "%s: %s cannot be read whole, so branches into the hooked "
                         "functions cannot be ruled out",
                         t->path, f->name);
            break;
        }
        uint8_t *grown = realloc(code, f->size);
        if (!grown) {
            rc = md_fail(err, "out of memory");
            break;
        }
        code = grown;
        if (pread(fd, code, f->size, (off_t)offset) != (ssize_t)f->size)
            rc = md_fail(err, "%s: %s: the function's bytes are not in the file", t->path, f->name);
        else
            rc = scan_function(t, f, code, moved, n, err);
    }
    free(code);
    return rc;
}

// The global or weak function of that name; a local one (a program's own static `malloc` in
// some file) only when there is no other.
static const struct md_func_sym *find_function(const struct md_symtab *t, const char *name)
{
    const struct md_func_sym *local = NULL;
    for (size_t i = 0; i < t->count; i++) {
        const struct md_func_sym *f = &t->funcs[i];
        if (strcmp(f->name, name))
            continue;
        if (f->bind != STB_LOCAL)
            return f;
        local = local ? local : f;
    }
    return local;
}

// Is the function inside an executable PT_LOAD segment's file bytes, where the probe hooks it?
static bool in_executable_segment(const struct md_symtab *t, const struct md_func_sym *f)
{
    for (size_t i = 0; i < t->load_count; i++) {
        const GElf_Phdr *ph = &t->loads[i];
        if ((ph->p_flags & PF_X) && f->addr >= ph->p_vaddr &&
            f->addr + f->size <= ph->p_vaddr + ph->p_filesz)
            return true;
    }
    return false;
}

static bool already_hooked(const uint64_t *addrs, size_t n, uint64_t addr)
{
    for (size_t i = 0; i < n; i++)
        if (addrs[i] == addr)
            return true;
    return false;
}

static int append(struct md_hooks_plan *plan, const char *name, const struct md_func_sym *f,
                  struct md_error *err)
{
    size_t used = strlen(plan->spec);
    int n = snprintf(plan->spec + used, sizeof plan->spec - used, "%s%s=%jx/%jx", used ? "," : "",
                     name, (uintmax_t)f->addr, (uintmax_t)f->size);
    if (n < 0 || (size_t)n >= sizeof plan->spec - used)
        return md_fail(err, "hook list too long");
    return 0;
}

static int plan_all(const struct md_symtab *t, int fd, struct md_hooks_plan *plan,
                    struct md_error *err)
{
    static const char *const names[MD_STATIC_KINDS] = MD_STATIC_KIND_NAMES;
    uint64_t hooked[MD_STATIC_KINDS];
    struct moved_range moved[MD_STATIC_KINDS];
    for (int k = 0; k < MD_STATIC_KINDS; k++) {
        const struct md_func_sym *f = find_function(t, names[k]);
        // a program that never frees (musl then links only its bump allocator) has no free to
        // hook, and nothing calls one
        bool required = k == MD_STATIC_MALLOC;
        if (!f && required)
            return md_fail(err, "%s: no %s symbol (stripped, or the program never calls it)",
                           t->path, names[k]);
        if (!f || (k != MD_STATIC_USABLE_SIZE && already_hooked(hooked, plan->hooked, f->addr)))
            continue;
        if (!in_executable_segment(t, f))
            return md_fail(err, "%s: %s is not in an executable segment", t->path, names[k]);
        if (k != MD_STATIC_USABLE_SIZE &&
            plan_one(t, fd, f, plan->hooked, &moved[plan->hooked], err))
            return -1;
        if (append(plan, names[k], f, err))
            return -1;
        if (k != MD_STATIC_USABLE_SIZE)
            hooked[plan->hooked++] = f->addr;
        else
            plan->usable_size = true;
    }
    // glibc frees each thread's cached blocks when the thread ends (tcache_thread_shutdown,
    // inlined here): the program freed them already, and no interposer sees these calls in a
    // dynamic program, so the hooks must not count them either
    const struct md_func_sym *quiet = find_function(t, MD_STATIC_QUIET_CALLER);
    if (quiet && append(plan, MD_STATIC_QUIET_KEY, quiet, err))
        return -1;
    return scan_program(t, fd, moved, plan->hooked, err);
}

int md_hooks_plan(const char *path, struct md_hooks_plan *plan, struct md_error *err)
{
    memset(plan, 0, sizeof *plan);
    struct md_symtab t;
    if (md_symtab_load(&t, path, err))
        return -1;
    int rc = 0;
    int fd = -1;
    // what the static probe itself accepts (alloc/probe_static.c)
    if (t.elf.ehdr.e_machine != EM_X86_64 || t.elf.ehdr.e_ident[EI_CLASS] != ELFCLASS64)
        rc = md_fail(err, "%s: %s %s, not 64-bit x86-64: static hooks are x86-64 only", path,
                     md_elf_class_name(&t.elf), md_elf_machine_name(&t.elf));
    else if (t.elf.phnum > MD_STATIC_MAX_PHDRS)
        rc = md_fail(err, "%s: %zu program headers, the static probe reads at most %d", path,
                     t.elf.phnum, MD_STATIC_MAX_PHDRS);
    else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        rc = md_fail_errno(err, errno, "%s", path);
    else
        rc = plan_all(&t, fd, plan, err);
    if (fd >= 0)
        close(fd);
    md_symtab_free(&t);
    return rc;
}

// The replaceable C++ allocation functions a program can define (as the preload probe's list).
static const char *const cxx_operators[] = {"_Znwm",
                                            "_Znam",
                                            "_ZnwmRKSt9nothrow_t",
                                            "_ZnamRKSt9nothrow_t",
                                            "_ZnwmSt11align_val_t",
                                            "_ZnamSt11align_val_t",
                                            "_ZnwmSt11align_val_tRKSt9nothrow_t",
                                            "_ZnamSt11align_val_tRKSt9nothrow_t",
                                            "_ZdlPv",
                                            "_ZdaPv",
                                            "_ZdlPvm",
                                            "_ZdaPvm",
                                            "_ZdlPvSt11align_val_t",
                                            "_ZdaPvSt11align_val_t",
                                            "_ZdlPvmSt11align_val_t",
                                            "_ZdaPvmSt11align_val_t",
                                            "_ZdlPvRKSt9nothrow_t",
                                            "_ZdaPvRKSt9nothrow_t",
                                            "_ZdlPvSt11align_val_tRKSt9nothrow_t",
                                            "_ZdaPvSt11align_val_tRKSt9nothrow_t",
                                            NULL};

// libstdc++'s operators lead to malloc within three steps: new[] jumps to new, nothrow new
// calls new, which calls malloc.
#define CXX_FOLLOW_DEPTH 3

struct cxx_scan {
    const struct md_symtab *t;
    int fd;
    uint64_t entries[MD_STATIC_KINDS]; // the malloc family's entries: what is counted
    size_t entry_count;
};

static bool is_entry(const struct cxx_scan *s, uint64_t addr)
{
    return already_hooked(s->entries, s->entry_count, addr);
}

// The function that starts at addr when it is one to follow: another C++ operator (nothrow new
// calls new), or any function when the branch is a thunk's only jump (new[] jumps to new).
static const struct md_func_sym *follow_target(const struct cxx_scan *s, uint64_t addr, bool thunk)
{
    size_t aliases;
    const struct md_func_sym *f = md_symtab_find(s->t, addr, &aliases);
    if (!f || f->addr != addr)
        return NULL;
    for (size_t i = 0; !thunk && i < aliases; i++)
        for (const char *const *name = cxx_operators; *name; name++)
            thunk = thunk || !strcmp(f[i].name, *name);
    return thunk ? f : NULL;
}

// Whether a call to f reaches an entry of the malloc family: f is one, or branches to one, or
// to a C++ operator that does. A function that cannot be read or decoded is taken to reach one:
// the report claims a gap in the counts only on evidence.
static bool reaches_allocator(const struct cxx_scan *s, const struct md_func_sym *f, int depth)
{
    static const uint8_t endbr64[] = {0xf3, 0x0f, 0x1e, 0xfa};
    uint64_t offset;
    if (is_entry(s, f->addr))
        return true;
    if (!f->size || f->size > MAX_FUNCTION_BYTES ||
        !md_symtab_addr_to_offset(s->t, f->addr, &offset))
        return true;
    uint8_t *code = malloc(f->size);
    bool reaches = !code || pread(s->fd, code, f->size, (off_t)offset) != (ssize_t)f->size;
    uint64_t first = code && f->size >= 4 && !memcmp(code, endbr64, 4) ? 4 : 0;
    for (uint64_t at = 0; !reaches && at < f->size;) {
        struct md_insn in;
        if (md_insn_decode(code + at, f->size - at, &in)) {
            reaches = true;
            break;
        }
        uint64_t target = in.branch_size ? branch_target(code + at, f->addr + at, &in) : 0;
        const struct md_func_sym *next =
            in.branch_size && depth ? follow_target(s, target, at == first && in.ends_flow) : NULL;
        reaches = (in.branch_size && is_entry(s, target)) ||
                  (next && reaches_allocator(s, next, depth - 1));
        at += in.len;
    }
    free(code);
    return reaches;
}

// Names the operators that bypass the malloc family: the first three, then how many more.
static int list_bypassing(const struct cxx_scan *s, char *out, size_t size)
{
    int count = 0;
    size_t used = 0;
    for (const char *const *name = cxx_operators; *name; name++) {
        const struct md_func_sym *f = find_function(s->t, *name);
        if (!f || f->bind == STB_LOCAL || reaches_allocator(s, f, CXX_FOLLOW_DEPTH))
            continue;
        if (++count > 3)
            continue;
        int n = snprintf(out + used, size - used, "%s%s", used ? ", " : "", *name);
        used = n < 0 || (size_t)n >= size - used ? size - 1 : used + (size_t)n;
    }
    if (count > 3)
        snprintf(out + used, size - used, " and %d more", count - 3);
    return count;
}

int md_cxx_bypassing(const char *path, char *out, size_t size, struct md_error *err)
{
    static const char *const names[MD_STATIC_KINDS] = MD_STATIC_KIND_NAMES;
    out[0] = 0;
    struct md_symtab t;
    if (md_symtab_load(&t, path, err))
        return -1;
    struct cxx_scan s = {.t = &t, .fd = open(path, O_RDONLY | O_CLOEXEC)};
    for (int k = 0; k < MD_STATIC_KINDS; k++) {
        const struct md_func_sym *f =
            k == MD_STATIC_USABLE_SIZE ? NULL : find_function(&t, names[k]);
        if (f)
            s.entries[s.entry_count++] = f->addr;
    }
    int count = 0;
    if (s.fd < 0)
        count = md_fail_errno(err, errno, "%s", path);
    else if (s.entry_count) // no malloc to count at all: nothing to compare with
        count = list_bypassing(&s, out, size);
    if (s.fd >= 0)
        close(s.fd);
    md_symtab_free(&t);
    return count;
}
