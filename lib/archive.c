// SPDX-License-Identifier: GPL-3.0-or-later
// Reading goes through libbfd (member iteration with duplicate names, long names, every object
// format binutils knows); writing is done by hand because bfd's archive writer stamps dates and
// owners, and the output must be byte-for-byte reproducible.
#define PACKAGE "malloc-doctor"
#define PACKAGE_VERSION MD_VERSION
#include "lib/archive.h"

#include <bfd.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/elf_file.h"
#include "lib/sha256.h"

#define AR_MAGIC "!<arch>\n"
#define AR_HDR 60
#define AR_SHORT_NAME 15 // longer names go to the "//" table

static const char *bfd_reason(void)
{
    return bfd_errmsg(bfd_get_error());
}

// --- reading -------------------------------------------------------------------------------

static bool is_lto_section(const char *name)
{
    return !strncmp(name, ".gnu.lto_", 9) || !strcmp(name, ".llvmbc") || !strcmp(name, ".llvm.lto");
}

static bool has_lto(bfd *m)
{
    if (m->lto_slim_object)
        return true;
    for (asection *s = m->sections; s; s = s->next)
        if (is_lto_section(bfd_section_name(s)))
            return true;
    return false;
}

// Classifies one bfd symbol; returns false for symbols of no interest (sections, files).
static bool classify(const asymbol *s, enum md_sym_kind *kind)
{
    flagword f = s->flags;
    if (!s->name || !s->name[0])
        return false;
    if (bfd_is_und_section(s->section))
        *kind = (f & BSF_WEAK) ? MD_SYM_WEAK_UNDEF : MD_SYM_UNDEF;
    else if (bfd_is_com_section(s->section))
        *kind = MD_SYM_COMMON;
    else if (f & BSF_WEAK)
        *kind = MD_SYM_WEAK;
    else if (f & (BSF_GLOBAL | BSF_GNU_UNIQUE))
        *kind = MD_SYM_DEFINED;
    else if (f & (BSF_SECTION_SYM | BSF_FILE | BSF_DEBUGGING))
        return false;
    else
        *kind = MD_SYM_LOCAL;
    return true;
}

static int read_symbols(const struct md_archive *ar, bfd *m, struct md_ar_member *out,
                        struct md_error *err)
{
    long bound = bfd_get_symtab_upper_bound(m);
    if (bound < 0)
        return md_fail(err, "%s(%s): symbols: %s", ar->path, out->name, bfd_reason());
    asymbol **tab = malloc((size_t)bound + sizeof *tab);
    long n = tab ? bfd_canonicalize_symtab(m, tab) : -1;
    if (n < 0) {
        free(tab);
        return md_fail(err, "%s(%s): symbols: %s", ar->path, out->name,
                       tab ? bfd_reason() : "out of memory");
    }
    out->syms = calloc((size_t)n + 1, sizeof *out->syms);
    for (long i = 0; out->syms && i < n; i++) {
        enum md_sym_kind kind;
        if (classify(tab[i], &kind))
            out->syms[out->nsyms++] = (struct md_ar_symbol){strdup(tab[i]->name), kind};
    }
    free(tab);
    return out->syms ? 0 : md_fail(err, "%s: out of memory", out->name);
}

static int read_bytes(const struct md_archive *ar, bfd *m, struct md_ar_member *out,
                      struct md_error *err)
{
    ufile_ptr size = bfd_get_file_size(m);
    out->size = (size_t)size;
    out->data = malloc(out->size ? out->size : 1);
    if (!out->data)
        return md_fail(err, "%s: out of memory", out->name);
    if (bfd_seek(m, 0, SEEK_SET) || bfd_bread(out->data, size, m) != size)
        return md_fail(err, "%s(%s): cannot read member: %s", ar->path, out->name, bfd_reason());
    return 0;
}

// libbfd reads a member whose tables reach past its end with no more than a warning (found by
// fuzzing), and patch would then copy a truncated object into the new libc.a: such a member is
// refused, with the checks inspect makes on files (lib/elf_file.c), before bfd sees it.
static int check_elf_member(const struct md_archive *ar, const struct md_ar_member *m,
                            struct md_error *err)
{
    char label[PATH_MAX + 256];
    snprintf(label, sizeof label, "%s(%s)", ar->path, m->name);
    return md_elf_check_image(m->data, m->size, label, err);
}

// The target of the archive's objects: libbfd's name, and for a machine this libbfd was not
// built for, where it says only "elf64-little", the machine from the ELF header (checked by
// md_elf_check_image), so that two foreign archives of different machines do not pass for one.
static void name_target(struct md_archive *ar, bfd *m, const struct md_ar_member *member)
{
    const char *bfd_name = bfd_get_target(m);
    const unsigned char *h = member->data;
    bool generic = strstr(bfd_name, "-little") || strstr(bfd_name, "-big");
    if (!generic || member->size < 20) {
        snprintf(ar->target, sizeof ar->target, "%s", bfd_name);
        return;
    }
    int machine = h[EI_DATA] == ELFDATA2MSB ? h[18] << 8 | h[19] : h[19] << 8 | h[18];
    snprintf(ar->target, sizeof ar->target, "%s (%s)", bfd_name, md_elf_machine_label(machine));
}

static int read_member(struct md_archive *ar, bfd *m, struct md_ar_member *out,
                       struct md_error *err)
{
    const char *name = bfd_get_filename(m);
    // an empty name cannot be written back: it would read as the "/" symbol index
    if (!name || !name[0])
        return md_fail(err, "%s: member %zu has no name (corrupt member header)", ar->path,
                       ar->count);
    // nor can a line break ("//" table entries end at one), and messages must stay one line
    for (const char *c = name; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return md_fail(err,
                           "%s: member %zu has control characters in its name (corrupt member "
                           "header)",
                           ar->path, ar->count);
    out->name = strdup(name);
    if (!out->name)
        return md_fail(err, "%s: out of memory", ar->path);
    if (read_bytes(ar, m, out, err))
        return -1;
    if (out->size >= 4 && !memcmp(out->data, "BC\xc0\xde", 4))
        return md_fail(err, "%s(%s): LLVM bitcode (LTO) member; an LTO libc cannot be patched",
                       ar->path, out->name);
    if (check_elf_member(ar, out, err))
        return -1;
    if (!bfd_check_format(m, bfd_object))
        return md_fail(err, "%s(%s): not an object file: %s", ar->path, out->name, bfd_reason());
    if (has_lto(m))
        return md_fail(err,
                       "%s(%s): LTO member (GCC intermediate code); rebuild the library "
                       "without -flto",
                       ar->path, out->name);
    if (!ar->target[0])
        name_target(ar, m, out);
    return read_symbols(ar, m, out, err);
}

static int grow(struct md_archive *ar, size_t *cap, struct md_error *err)
{
    if (ar->count < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 256;
    struct md_ar_member *n = realloc(ar->members, ncap * sizeof *n);
    if (!n)
        return md_fail(err, "%s: out of memory", ar->path);
    memset(n + *cap, 0, (ncap - *cap) * sizeof *n);
    ar->members = n;
    *cap = ncap;
    return 0;
}

static int read_members(struct md_archive *ar, bfd *abfd, struct md_error *err)
{
    size_t cap = 0;
    bfd *m = NULL;
    while ((m = bfd_openr_next_archived_file(abfd, m))) {
        if (grow(ar, &cap, err) || read_member(ar, m, &ar->members[ar->count++], err))
            return -1;
    }
    if (bfd_get_error() != bfd_error_no_more_archived_files)
        return md_fail(err, "%s: damaged archive: %s", ar->path, bfd_reason());
    if (!ar->count)
        return md_fail(err, "%s: empty archive", ar->path);
    return 0;
}

// A damaged member header (a truncated copy) reads to libbfd as "not an archive" or as a
// truncated member: inspect's header walk (md_elf_open) names the header and its offset, so both
// commands say the same. Only for a regular file with the ar magic: anything else is bfd's.
// Reads the archive's descriptor, not its path again: the file checked is the one libbfd reads.
static int check_member_headers(int fd, size_t size, const char *path, struct md_error *err)
{
    char magic[8];
    if (pread(fd, magic, sizeof magic, 0) != sizeof magic || memcmp(magic, "!<arch>\n", 8))
        return 0; // not an archive: open_archive says so
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (copy < 0)
        return md_fail_errno(err, errno, "%s", path);
    struct md_elf e;
    bool is_archive;
    if (md_elf_open_fd(&e, copy, size, path, &is_archive, err))
        return -1;
    md_elf_close(&e);
    return 0;
}

static int refuse_thin(const char *path, struct md_error *err)
{
    return md_fail(err,
                   "%s: thin archive (members are references to other files); make a normal "
                   "archive first (ar -rcs)",
                   path);
}

// A thin archive is refused by its magic, before libbfd sees it: probing one whose member is an
// archive, bfd_check_format keeps an allocation that bfd_close does not free (libbfd 2.40).
static int check_not_thin(int fd, const char *path, struct md_error *err)
{
    char magic[8];
    if (pread(fd, magic, sizeof magic, 0) == sizeof magic && !memcmp(magic, "!<thin>\n", 8))
        return refuse_thin(path, err);
    return 0;
}

static int open_archive(bfd *abfd, const char *path, struct md_error *err)
{
    if (!bfd_check_format(abfd, bfd_archive)) {
        if (bfd_get_error() == bfd_error_wrong_format ||
            bfd_get_error() == bfd_error_file_not_recognized)
            return md_fail(err, "%s: not an ar archive", path);
        return md_fail(err, "%s: %s", path, bfd_reason());
    }
    if (bfd_is_thin_archive(abfd)) // made thin since check_not_thin read it
        return refuse_thin(path, err);
    return 0;
}

// libbfd prints warnings ("BFD: x.o: invalid string offset ...") and internal assertion failures
// to stderr by default; the engine never prints, and what matters reaches the caller through
// bfd_get_error, so both are dropped while an archive is read.
static void quiet_bfd_error(const char *fmt, va_list ap)
{
    (void)fmt, (void)ap;
}

static void quiet_bfd_assert(const char *fmt, const char *bfd_version, const char *file, int line)
{
    (void)fmt, (void)bfd_version, (void)file, (void)line;
}

// The handlers do not see everything: the warnings libbfd (2.40) collects while bfd_check_format
// tries the formats are printed with fprintf(stderr) directly ("has a corrupt string table
// index", found by fuzzing). glibc's stderr is an ordinary variable that may be assigned, so the
// stream points at /dev/null while bfd runs; file descriptor 2, where sanitizer reports go, is
// left alone.
struct quiet_bfd {
    bfd_error_handler_type error;
    bfd_assert_handler_type assert_fail;
    FILE *saved_stderr, *sink;
};

static void quiet_bfd_begin(struct quiet_bfd *q)
{
    q->error = bfd_set_error_handler(quiet_bfd_error);
    q->assert_fail = bfd_set_assert_handler(quiet_bfd_assert);
    q->saved_stderr = stderr;
    q->sink = fopen("/dev/null", "we");
    if (q->sink)
        stderr = q->sink;
}

static void quiet_bfd_end(struct quiet_bfd *q)
{
    stderr = q->saved_stderr;
    if (q->sink)
        fclose(q->sink);
    bfd_set_error_handler(q->error);
    bfd_set_assert_handler(q->assert_fail);
}

// The size bytes of fd into ar->bytes and their SHA-256, read with pread so that libbfd's offset
// stays where it is.
static int digest_fd(int fd, size_t size, const char *path, struct md_archive *ar,
                     struct md_error *err)
{
    unsigned char *buf = ar->bytes = malloc(size ? size : 1);
    if (!buf)
        return md_fail(err, "%s: out of memory", path);
    size_t got = 0;
    ssize_t n = 1;
    while (got < size && (n = pread(fd, buf + got, size - got, (off_t)got)) > 0)
        got += (size_t)n;
    int rc = 0;
    if (n < 0)
        rc = md_fail_errno(err, errno, "%s", path);
    else if (got < size)
        rc = md_fail(err, "%s: shrank while being read", path);
    else
        md_sha256_hex(buf, size, ar->sha256);
    return rc;
}

// libbfd opens its file blocking: a FIFO would hang there, under patch's directory lock. The file
// is opened here without blocking and handed to libbfd only when it is a regular file.
static int read_archive(struct md_archive *ar, const char *path, bool digest, struct md_error *err)
{
    size_t size;
    int fd = md_open_regular(path, NULL, &size, err);
    if (fd < 0)
        return -1;
    ar->file_size = size;
    if (check_not_thin(fd, path, err) || check_member_headers(fd, size, path, err) ||
        (digest && digest_fd(fd, size, path, ar, err))) {
        close(fd);
        return -1;
    }
    bfd_set_error(bfd_error_no_error);
    bfd *abfd = bfd_fdopenr(path, NULL, fd); // closes fd, also when it fails
    if (!abfd)
        return md_fail(err, "%s: %s", path, bfd_reason());
    int rc = open_archive(abfd, path, err);
    if (!rc) {
        ar->has_map = bfd_has_map(abfd);
        rc = read_members(ar, abfd, err);
    }
    bfd_close(abfd);
    return rc;
}

static int read_quietly(struct md_archive *ar, const char *path, bool digest, struct md_error *err)
{
    *ar = (struct md_archive){.path = strdup(path)};
    if (!ar->path)
        return md_fail(err, "%s: out of memory", path);
    bfd_init();
    struct quiet_bfd quiet;
    quiet_bfd_begin(&quiet);
    int rc = read_archive(ar, path, digest, err);
    quiet_bfd_end(&quiet);
    return rc;
}

int md_archive_read(struct md_archive *ar, const char *path, struct md_error *err)
{
    return read_quietly(ar, path, false, err);
}

int md_archive_read_digest(struct md_archive *ar, const char *path, struct md_error *err)
{
    return read_quietly(ar, path, true, err);
}

void md_archive_free(struct md_archive *ar)
{
    for (size_t i = 0; i < ar->count; i++) {
        struct md_ar_member *m = &ar->members[i];
        for (size_t j = 0; j < m->nsyms; j++)
            free(m->syms[j].name);
        free(m->syms);
        free(m->data);
        free(m->name);
    }
    free(ar->members);
    free(ar->path);
    free(ar->bytes);
    *ar = (struct md_archive){0};
}

// --- writing -------------------------------------------------------------------------------

struct layout {
    size_t nsyms, sym_strsize; // symbol index: entry count and name bytes
    size_t names_size;         // "//" table
    size_t index_size;         // the "/" member's data
    size_t first_member;       // offset of the first member header
};

static size_t even(size_t n)
{
    return n + (n & 1);
}

static bool long_name(const char *name)
{
    return strlen(name) > AR_SHORT_NAME || strchr(name, '/');
}

static void measure(const struct md_ar_member *const *members, size_t count, struct layout *l)
{
    *l = (struct layout){0};
    for (size_t i = 0; i < count; i++) {
        for (size_t j = 0; j < members[i]->nsyms; j++)
            if (md_sym_is_def(members[i]->syms[j].kind)) {
                l->nsyms++;
                l->sym_strsize += strlen(members[i]->syms[j].name) + 1;
            }
        if (long_name(members[i]->name))
            l->names_size += strlen(members[i]->name) + 2; // "name/\n"
    }
    l->index_size = 4 + 4 * l->nsyms + l->sym_strsize;
    l->first_member = strlen(AR_MAGIC) + AR_HDR + even(l->index_size);
    if (l->names_size)
        l->first_member += AR_HDR + even(l->names_size);
}

// One 60-byte header; fields are space padded, exactly as GNU ar writes them.
static void header(unsigned char *p, const char *name, const char *date, const char *mode,
                   size_t size)
{
    char h[AR_HDR + 1];
    snprintf(h, sizeof h, "%-16s%-12s%-6s%-6s%-8s%-10zu`\n", name, date, date[0] ? "0" : "",
             date[0] ? "0" : "", mode, size);
    memcpy(p, h, AR_HDR);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static unsigned char *write_index(unsigned char *p, const struct md_ar_member *const *members,
                                  size_t count, const struct layout *l, const size_t *offsets)
{
    header(p, "/", "0", "0", l->index_size);
    p += AR_HDR;
    put_be32(p, (uint32_t)l->nsyms);
    unsigned char *entry = p + 4, *str = p + 4 + 4 * l->nsyms;
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < members[i]->nsyms; j++)
            if (md_sym_is_def(members[i]->syms[j].kind)) {
                put_be32(entry, (uint32_t)offsets[i]);
                entry += 4;
                size_t len = strlen(members[i]->syms[j].name) + 1;
                memcpy(str, members[i]->syms[j].name, len);
                str += len;
            }
    if (l->index_size & 1)
        *str++ = '\n';
    return str;
}

static unsigned char *write_names(unsigned char *p, const struct md_ar_member *const *members,
                                  size_t count, const struct layout *l, size_t *name_off)
{
    if (!l->names_size)
        return p;
    header(p, "//", "", "", l->names_size);
    unsigned char *base = p + AR_HDR, *q = base;
    for (size_t i = 0; i < count; i++)
        if (long_name(members[i]->name)) {
            size_t len = strlen(members[i]->name);
            name_off[i] = (size_t)(q - base);
            memcpy(q, members[i]->name, len);
            memcpy(q + len, "/\n", 2);
            q += len + 2;
        }
    if (l->names_size & 1)
        *q++ = '\n';
    return q;
}

static unsigned char *write_member(unsigned char *p, const struct md_ar_member *m, size_t name_off)
{
    char name[32];
    if (long_name(m->name))
        snprintf(name, sizeof name, "/%zu", name_off);
    else
        snprintf(name, sizeof name, "%s/", m->name);
    header(p, name, "0", "644", m->size);
    memcpy(p + AR_HDR, m->data, m->size);
    p += AR_HDR + m->size;
    if (m->size & 1)
        *p++ = '\n';
    return p;
}

int md_archive_serialize(const struct md_ar_member *const *members, size_t count,
                         unsigned char **out, size_t *size, struct md_error *err)
{
    struct layout l;
    measure(members, count, &l);
    size_t *offsets = calloc(count + 1, sizeof *offsets);
    size_t *name_off = calloc(count + 1, sizeof *name_off);
    size_t total = l.first_member;
    for (size_t i = 0; offsets && i < count; i++) {
        offsets[i] = total;
        total += AR_HDR + even(members[i]->size);
    }
    unsigned char *buf = offsets && name_off ? malloc(total) : NULL;
    if (!buf || total > UINT32_MAX) {
        free(offsets), free(name_off), free(buf);
        return md_fail(err, "archive of %zu bytes: %s", total,
                       buf ? "too large for a 32-bit symbol index" : "out of memory");
    }
    memcpy(buf, AR_MAGIC, strlen(AR_MAGIC));
    unsigned char *p = write_index(buf + strlen(AR_MAGIC), members, count, &l, offsets);
    p = write_names(p, members, count, &l, name_off);
    for (size_t i = 0; i < count; i++)
        p = write_member(p, members[i], name_off[i]);
    free(offsets), free(name_off);
    *out = buf;
    *size = total;
    return 0;
}

// --- demangling ----------------------------------------------------------------------------

// libiberty's option bits (its demangle.h is not installed): no DMGL_PARAMS, so no parameter
// list; the style is left to the name (Itanium C++ "_Z", Rust "_R" and legacy "_ZN...17h...E").
#define MD_DMGL_NO_OPTS 0

char *md_demangle(const char *name)
{
    if (strncmp(name, "_Z", 2) && strncmp(name, "_R", 2))
        return NULL; // C names pass as they are; the demangler would try other styles on them
    return bfd_demangle(NULL, name, MD_DMGL_NO_OPTS);
}
