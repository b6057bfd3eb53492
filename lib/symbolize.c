// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/symbolize.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/archive.h"

struct collect_ctx {
    struct md_func_sym *funcs;
    size_t count, cap;
    bool oom;
};

static int collect_func(const struct md_sym *s, void *arg)
{
    struct collect_ctx *c = arg;
    if (!s->defined || (s->type != STT_FUNC && s->type != STT_GNU_IFUNC) || !s->value)
        return 0;
    if (c->count == c->cap) {
        size_t n = c->cap ? 2 * c->cap : 256;
        struct md_func_sym *grown = realloc(c->funcs, n * sizeof *grown);
        if (!grown) {
            c->oom = true;
            return 1;
        }
        c->funcs = grown;
        c->cap = n;
    }
    c->funcs[c->count++] = (struct md_func_sym){s->name, s->value, s->size, s->bind};
    return 0;
}

static int bind_rank(unsigned char bind)
{
    return bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 1 : 2;
}

// glibc's __GI_ names are internal call aliases of the real ones: never the name to show.
static size_t leading_underscores(const char *s)
{
    if (!strncmp(s, "__GI_", 5))
        return SIZE_MAX;
    size_t n = 0;
    while (s[n] == '_')
        n++;
    return n;
}

// Address order; among aliases the name a person would recognise first (malloc before
// __libc_malloc), then by name so that the order never depends on qsort.
static int func_cmp(const void *a, const void *b)
{
    const struct md_func_sym *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    if (bind_rank(x->bind) != bind_rank(y->bind))
        return bind_rank(x->bind) - bind_rank(y->bind);
    size_t ux = leading_underscores(x->name), uy = leading_underscores(y->name);
    if (ux != uy)
        return ux < uy ? -1 : 1;
    return strcmp(x->name, y->name);
}

// .symtab and .dynsym both list exported functions: keep one copy of each (address, name).
static size_t dedup_funcs(struct md_func_sym *f, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (size_t j = out; j-- > 0 && f[j].addr == f[i].addr;)
            dup = dup || !strcmp(f[j].name, f[i].name);
        if (!dup)
            f[out++] = f[i];
    }
    return out;
}

static int read_loads(struct md_symtab *t, struct md_error *err)
{
    t->loads = calloc(t->elf.phnum ? t->elf.phnum : 1, sizeof *t->loads);
    if (!t->loads)
        return md_fail(err, "%s: out of memory", t->path);
    for (size_t i = 0; i < t->elf.phnum; i++) {
        GElf_Phdr ph;
        if (gelf_getphdr(t->elf.elf, (int)i, &ph) && ph.p_type == PT_LOAD)
            t->loads[t->load_count++] = ph;
    }
    return 0;
}

#define DEBUG_ROOT "/usr/lib/debug/.build-id/"

// The GNU build id as lowercase hex into hex (size >= 2 * 64 + 1); false when there is none.
static bool build_id_hex(struct md_elf *e, char *hex, size_t size)
{
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e->elf, scn));) {
        GElf_Shdr sh;
        Elf_Data *d;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_NOTE || !(d = elf_getdata(scn, NULL)))
            continue;
        GElf_Nhdr nh;
        size_t off = 0, name_off, desc_off;
        while ((off = gelf_getnote(d, off, &nh, &name_off, &desc_off)) > 0) {
            if (nh.n_type != NT_GNU_BUILD_ID || nh.n_namesz != 4 || nh.n_descsz > 64 ||
                memcmp((char *)d->d_buf + name_off, "GNU", 4) || 2 * nh.n_descsz + 1 > size)
                continue;
            const unsigned char *id = (const unsigned char *)d->d_buf + desc_off;
            for (size_t i = 0; i < nh.n_descsz; i++)
                snprintf(hex + 2 * i, 3, "%02x", id[i]);
            return nh.n_descsz > 1;
        }
    }
    return false;
}

// Opens the separate debug file of a stripped t, if installed. Its absence is not an error.
static void open_debug_file(struct md_symtab *t)
{
    char hex[129], path[sizeof DEBUG_ROOT + 140];
    if (!build_id_hex(&t->elf, hex, sizeof hex))
        return;
    snprintf(path, sizeof path, DEBUG_ROOT "%.2s/%s.debug", hex, hex + 2);
    bool is_archive = false;
    struct md_error ignored;
    if (access(path, R_OK) || !(t->debug_path = strdup(path)))
        return;
    if (md_elf_open(&t->debug_elf, t->debug_path, &is_archive, &ignored) == 0 && !is_archive) {
        t->debug_open = true;
        return;
    }
    if (is_archive)
        md_elf_close(&t->debug_elf);
    free(t->debug_path);
    t->debug_path = NULL;
}

// How many symbols e's symbol tables (.symtab, .dynsym) hold, at most. A symbol takes 16 bytes
// or more (Elf32_Sym), so a corrupt header cannot claim more than the file can hold.
static size_t symbol_bound(struct md_elf *e)
{
    size_t n = 0, most = e->size / 16;
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e->elf, scn));) {
        GElf_Shdr sh;
        if (gelf_getshdr(scn, &sh) && (sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM) &&
            sh.sh_entsize >= 16 && sh.sh_size <= e->size)
            n += sh.sh_size / sh.sh_entsize;
    }
    return n < most ? n : most;
}

// Maps in the pages of a fresh block in one call. Page faults are slow under virtualisation
// (some 10 us each on the 2-core VM the benchmarks run on), and the array of glibc's libc with
// its debug file (9640 functions, 300 KB) faulted page by page: reading it took 2.0 ms, 1.25 ms
// with this. MADV_POPULATE_WRITE is Linux 5.14; older kernels refuse it, which costs nothing.
static void populate(void *block, size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t from = ((uintptr_t)block + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t to = ((uintptr_t)block + size) & ~(uintptr_t)(page - 1);
#ifdef MADV_POPULATE_WRITE
    if (to > from)
        madvise((void *)from, to - from, MADV_POPULATE_WRITE);
#else
    (void)from, (void)to;
#endif
}

// Room for n functions in one allocation, its pages mapped in at once (populate). Without the
// room, collect_func grows the array as before.
static void reserve_funcs(struct collect_ctx *c, size_t n)
{
    if (n <= c->cap || n > SIZE_MAX / sizeof *c->funcs)
        return;
    struct md_func_sym *grown = realloc(c->funcs, n * sizeof *grown);
    if (!grown)
        return;
    populate(grown + c->count, (n - c->count) * sizeof *grown);
    c->funcs = grown;
    c->cap = n;
}

static int read_funcs(struct md_symtab *t, struct md_error *err)
{
    struct collect_ctx c = {0};
    bool has_symtab = false, debug_symtab = false;
    reserve_funcs(&c, symbol_bound(&t->elf));
    int rc = md_elf_symbols(&t->elf, collect_func, &c, &has_symtab, err);
    if (!rc && !has_symtab)
        open_debug_file(t);
    if (!rc && t->debug_open)
        reserve_funcs(&c, c.count + symbol_bound(&t->debug_elf));
    if (!rc && t->debug_open && md_elf_symbols(&t->debug_elf, collect_func, &c, &debug_symtab, err))
        rc = -1;
    if (rc) {
        free(c.funcs);
        return -1;
    }
    if (c.oom) {
        free(c.funcs);
        return md_fail(err, "%s: out of memory reading symbols", t->path);
    }
    if (c.count)
        qsort(c.funcs, c.count, sizeof *c.funcs, func_cmp);
    t->funcs = c.funcs;
    t->count = dedup_funcs(c.funcs, c.count);
    t->exports_only = !has_symtab && !debug_symtab;
    // the reservation counted every symbol, not only functions: give the rest back, since the
    // table lives as long as the symbol cache
    struct md_func_sym *fitted = t->count ? realloc(c.funcs, t->count * sizeof *c.funcs) : NULL;
    if (fitted)
        t->funcs = fitted;
    return 0;
}

int md_symtab_load(struct md_symtab *t, const char *path, struct md_error *err)
{
    memset(t, 0, sizeof *t);
    t->path = strdup(path);
    if (!t->path)
        return md_fail(err, "%s: out of memory", path);
    bool is_archive = false;
    if (md_elf_open(&t->elf, t->path, &is_archive, err)) {
        md_symtab_free(t);
        return -1;
    }
    t->elf_open = true;
    int rc = -1;
    if (is_archive)
        md_fail(err, "%s: an archive, not a loadable ELF file", path);
    else if (t->elf.ehdr.e_type != ET_EXEC && t->elf.ehdr.e_type != ET_DYN)
        md_fail(err, "%s: not an executable or shared library", path);
    else
        rc = read_loads(t, err) || read_funcs(t, err) ? -1 : 0;
    if (rc)
        md_symtab_free(t);
    return rc;
}

void md_symtab_free(struct md_symtab *t)
{
    if (t->elf_open)
        md_elf_close(&t->elf);
    if (t->debug_open)
        md_elf_close(&t->debug_elf);
    free(t->debug_path);
    free(t->funcs);
    free(t->loads);
    free(t->path);
    memset(t, 0, sizeof *t);
}

bool md_symtab_offset_to_addr(const struct md_symtab *t, uint64_t offset, uint64_t *addr)
{
    for (size_t i = 0; i < t->load_count; i++) {
        const GElf_Phdr *p = &t->loads[i];
        if (offset >= p->p_offset && offset - p->p_offset < p->p_filesz) {
            *addr = offset - p->p_offset + p->p_vaddr;
            return true;
        }
    }
    return false;
}

bool md_symtab_addr_to_offset(const struct md_symtab *t, uint64_t addr, uint64_t *offset)
{
    for (size_t i = 0; i < t->load_count; i++) {
        const GElf_Phdr *p = &t->loads[i];
        if (addr >= p->p_vaddr && addr - p->p_vaddr < p->p_filesz) {
            *offset = addr - p->p_vaddr + p->p_offset;
            return true;
        }
    }
    return false;
}

// Index of the first alias of the last address <= addr, or count when there is none.
static size_t floor_index(const struct md_symtab *t, uint64_t addr)
{
    size_t lo = 0, hi = t->count; // answer: the last i with funcs[i].addr <= addr
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->funcs[mid].addr <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return t->count;
    size_t i = lo - 1;
    while (i > 0 && t->funcs[i - 1].addr == t->funcs[i].addr)
        i--;
    return i;
}

const struct md_func_sym *md_symtab_find(const struct md_symtab *t, uint64_t addr, size_t *aliases)
{
    size_t i = floor_index(t, addr);
    if (i == t->count)
        return NULL;
    size_t n = 1;
    uint64_t size = t->funcs[i].size;
    while (i + n < t->count && t->funcs[i + n].addr == t->funcs[i].addr) {
        if (t->funcs[i + n].size > size)
            size = t->funcs[i + n].size;
        n++;
    }
    // A sized function ends where its size says; an unsized one (hand-written assembly) is
    // trusted up to the next symbol, which is the best a full symbol table can tell. In a
    // stripped object hidden functions follow it unnamed (musl's memset, then its syscall entry):
    // only its first byte is known to be its own.
    if (size ? addr - t->funcs[i].addr >= size : t->exports_only && addr != t->funcs[i].addr)
        return NULL;
    if (aliases)
        *aliases = n;
    return &t->funcs[i];
}

const struct md_func_sym *md_symtab_by_name(const struct md_symtab *t, const char *name)
{
    for (size_t i = 0; i < t->count; i++)
        if (!strcmp(t->funcs[i].name, name))
            return &t->funcs[i];
    return NULL;
}

int md_elf_func_offset(const char *path, const char *name, uint64_t *offset, struct md_error *err)
{
    struct md_symtab t;
    if (md_symtab_load(&t, path, err))
        return -1;
    const struct md_func_sym *f = md_symtab_by_name(&t, name);
    int rc = 0;
    if (!f)
        rc = md_fail(err, "%s: no function named %s in the symbol tables", path, name);
    else if (!md_symtab_addr_to_offset(&t, f->addr, offset))
        rc = md_fail(err, "%s: function %s at 0x%jx is not in a loadable segment", path, name,
                     (uintmax_t)f->addr);
    md_symtab_free(&t);
    return rc;
}

void md_symcache_init(struct md_symcache *c)
{
    memset(c, 0, sizeof *c);
}

void md_symcache_free(struct md_symcache *c)
{
    for (size_t i = 0; i < c->count; i++) {
        if (c->tabs[i]) {
            md_symtab_free(c->tabs[i]);
            free(c->tabs[i]);
        }
        free(c->paths[i]);
    }
    free(c->tabs);
    free(c->paths);
    md_u64map_free_owned(&c->shown);
    memset(c, 0, sizeof *c);
}

// Demangled names longer than this lose their template arguments, so that the part a person
// reads first, the function's own name at the end, stays inside a frame label (127 bytes).
#define MD_SHOWN_NAME_MAX 100

// Whether name[i] is no template bracket: the '<' or '>' of an operator's name ("operator<<",
// "operator->"), or the '>' of an arrow anywhere (decltype(a->b) in an argument).
static bool operator_bracket(const char *name, size_t i)
{
    if (name[i] == '>' && i > 0 && name[i - 1] == '-')
        return true;
    size_t k = i;
    while (k > 0 && strchr("<>=-", name[k - 1]) && i - k < 3)
        k--;
    return k >= 8 && !strncmp(name + k - 8, "operator", 8);
}

// "std::map<long, std::vector<char> >::operator[]" -> "std::map<...>::operator[]": a new string
// (malloc'ed; "<>" grows to "<...>"), or NULL when memory ran out.
static char *without_template_arguments(const char *name)
{
    char *out = malloc(3 * strlen(name) + 1), *o = out;
    int depth = 0;
    for (size_t i = 0; out && name[i]; i++) {
        char ch = name[i];
        bool bracket = (ch == '<' || ch == '>') && !operator_bracket(name, i);
        if (bracket && ch == '<' && depth++ == 0) {
            memcpy(o, "<...", 4);
            o += 4;
        } else if (bracket && ch == '>' && depth > 0) {
            if (--depth == 0)
                *o++ = '>';
        } else if (depth == 0) {
            *o++ = ch;
        }
    }
    if (out)
        *o = 0;
    return out;
}

const char *md_symcache_shown_name(struct md_symcache *c, const struct md_func_sym *f)
{
    // cached as 0 when the name stays as it is
    uint64_t *cached = md_u64map_find(&c->shown, (uintptr_t)f);
    if (cached)
        return *cached ? (const char *)(uintptr_t)*cached : f->name;
    char *demangled = md_demangle(f->name);
    char *shorter = demangled && strlen(demangled) > MD_SHOWN_NAME_MAX
                        ? without_template_arguments(demangled)
                        : NULL;
    if (shorter) {
        free(demangled);
        demangled = shorter;
    }
    if (!md_u64map_put(&c->shown, (uintptr_t)f, (uintptr_t)demangled)) {
        free(demangled);
        return f->name;
    }
    return demangled ? demangled : f->name;
}

static bool symcache_grow(struct md_symcache *c)
{
    if (c->count < c->cap)
        return true;
    size_t n = c->cap ? 2 * c->cap : 16;
    struct md_symtab **tabs = realloc(c->tabs, n * sizeof *tabs);
    if (!tabs)
        return false;
    c->tabs = tabs;
    char **paths = realloc(c->paths, n * sizeof *paths);
    if (!paths)
        return false;
    c->paths = paths;
    c->cap = n;
    return true;
}

const struct md_symtab *md_symcache_get(struct md_symcache *c, const char *path)
{
    for (size_t i = 0; i < c->count; i++)
        if (!strcmp(c->paths[i], path))
            return c->tabs[i];
    char *copy = strdup(path);
    if (!copy || !symcache_grow(c)) {
        free(copy);
        return NULL;
    }
    struct md_symtab *t = malloc(sizeof *t);
    struct md_error err; // an unreadable file just has no names; the caller counts "unknown"
    if (t && md_symtab_load(t, path, &err)) {
        free(t);
        t = NULL;
    }
    c->paths[c->count] = copy;
    c->tabs[c->count++] = t;
    return t;
}

const struct md_func_sym *md_symbolize(struct md_symcache *c, const char *path, uint64_t offset,
                                       size_t *aliases)
{
    const struct md_symtab *t = md_symcache_get(c, path);
    uint64_t addr;
    if (!t || !md_symtab_offset_to_addr(t, offset, &addr))
        return NULL;
    return md_symtab_find(t, addr, aliases);
}
