// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/elf_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char elf_magic[4] = {0x7f, 'E', 'L', 'F'};

static int elf_fail(struct md_error *err, const char *path, const char *what)
{
    return md_fail(err, "%s: %s: %s", path, what, elf_errmsg(-1));
}

// An extent [off, off+len) lies inside a file of size bytes, without overflow.
static bool extent_fits(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

static int truncated_table(const struct md_elf *e, const char *table, size_t count, uint64_t off,
                           struct md_error *err)
{
    return md_fail(err,
                   "%s: truncated %s header table (%zu entries at offset %ju, file is %zu bytes)",
                   e->path, table, count, (uintmax_t)off, e->size);
}

// The program header table as the ELF header gives it: libelf counts only the entries that fit
// in the file (and fails when none does), so a cut table would pass for a shorter one. phnum:
// libelf's count, for PN_XNUM (the real count is in section 0); 0 before it was read.
static int check_phdr_extent(const struct md_elf *e, size_t phnum, struct md_error *err)
{
    const GElf_Ehdr *h = &e->ehdr;
    size_t count = h->e_phnum == PN_XNUM ? phnum : h->e_phnum;
    if (count && !extent_fits(h->e_phoff, (uint64_t)count * h->e_phentsize, e->size))
        return truncated_table(e, "program", count, h->e_phoff, err);
    return 0;
}

// A program or library cut short: a PT_LOAD segment whose bytes in the file pass its end. Core
// files are left alone (a dump's segments may be cut on purpose), objects have no segments, and
// so is a file with section headers: the table at its end tells a cut (check_tables), and a
// separate debug file (objcopy --only-keep-debug) keeps the program's headers over sections it
// emptied (SHT_NOBITS), so its segments pass its end by design.
static int check_segments(const struct md_elf *e, struct md_error *err)
{
    if ((e->ehdr.e_type != ET_EXEC && e->ehdr.e_type != ET_DYN) || e->ehdr.e_shnum)
        return 0;
    for (size_t i = 0; i < e->phnum; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e->elf, (int)i, &ph))
            return elf_fail(err, e->path, "corrupt program header");
        if (ph.p_type == PT_LOAD && !extent_fits(ph.p_offset, ph.p_filesz, e->size))
            return md_fail(err, "%s: truncated: segment %zu ends at %ju, file is %zu bytes",
                           e->path, i, (uintmax_t)ph.p_offset + ph.p_filesz, e->size);
    }
    return 0;
}

static int check_tables(struct md_elf *e, struct md_error *err)
{
    const GElf_Ehdr *h = &e->ehdr;
    // the header's own count: libelf reports 0 sections when it cannot read the table
    size_t shnum = h->e_shnum ? h->e_shnum : e->shnum;
    if (h->e_shoff && !extent_fits(h->e_shoff, (uint64_t)shnum * h->e_shentsize, e->size))
        return truncated_table(e, "section", shnum, h->e_shoff, err);
    if (check_phdr_extent(e, e->phnum, err) || check_segments(e, err))
        return -1;
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e->elf, scn));) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh))
            return elf_fail(err, e->path, "corrupt section header");
        if (sh.sh_type != SHT_NOBITS && !extent_fits(sh.sh_offset, sh.sh_size, e->size))
            return md_fail(err, "%s: section %zu extends past the end of the file (truncated?)",
                           e->path, elf_ndxscn(scn));
    }
    return 0;
}

// Validates the ELF header and tables of e->elf, filling ehdr and the table counts.
static int validate_elf(struct md_elf *e, struct md_error *err)
{
    size_t raw_size = 0;
    const char *raw = elf_rawfile(e->elf, &raw_size);
    if (raw_size < e->size) // libelf may map less than the file (archive members: exactly it)
        e->size = raw_size;
    if (!raw || raw_size < EI_NIDENT || memcmp(raw, elf_magic, sizeof elf_magic))
        return md_fail(err, "%s: not an ELF file", e->path);
    if (raw[EI_CLASS] != ELFCLASS32 && raw[EI_CLASS] != ELFCLASS64)
        return md_fail(err, "%s: unsupported ELF class %d", e->path, raw[EI_CLASS]);
    if (raw[EI_DATA] != ELFDATA2LSB && raw[EI_DATA] != ELFDATA2MSB)
        return md_fail(err, "%s: unsupported ELF byte order %d", e->path, raw[EI_DATA]);
    if (!gelf_getehdr(e->elf, &e->ehdr))
        return md_fail(err, "%s: truncated or corrupt ELF header", e->path);
    if (elf_getshdrnum(e->elf, &e->shnum) || elf_getshdrstrndx(e->elf, &e->shstrndx))
        return elf_fail(err, e->path, "corrupt section header table");
    if (check_phdr_extent(e, 0, err)) // before libelf, which calls a table cut short invalid
        return -1;
    if (elf_getphdrnum(e->elf, &e->phnum))
        return elf_fail(err, e->path, "corrupt program header table");
    return check_tables(e, err);
}

// procfs and sysfs report size 0 for files that read as text (/proc/self/maps): one byte tells
// them from an empty file. Nothing they hold is ELF that libelf could map.
static bool has_contents(int fd)
{
    char byte;
    return read(fd, &byte, 1) == 1;
}

int md_open_regular(const char *path, const char *dir_advice, size_t *size, struct md_error *err)
{
    if (!*path) // open's ENOENT would name nothing
        return md_fail(err, "empty file name");
    // O_NONBLOCK: opening a FIFO must not hang; it is refused below.
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 && errno == ENXIO && !stat(path, &st) && S_ISSOCK(st.st_mode))
        return md_fail(err, "%s: not a regular file (a socket)", path);
    if (fd < 0)
        return md_fail_errno(err, errno, "%s", path);
    bool stated = !fstat(fd, &st);
    if (stated && S_ISREG(st.st_mode)) {
        *size = (size_t)st.st_size;
        return fd;
    }
    close(fd);
    if (!stated)
        return md_fail(err, "%s: cannot stat", path);
    if (S_ISDIR(st.st_mode) && dir_advice)
        return md_fail(err, "%s: is a directory (%s)", path, dir_advice);
    return md_fail(err, "%s: %s", path,
                   S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
}

// A file to read as ELF or ar: also not empty (procfs's files, whose size reads as 0, are told
// apart).
static int open_elf_input(const char *path, size_t *size, struct md_error *err)
{
    int fd = md_open_regular(path, "use -r to inspect directories", size, err);
    if (fd < 0 || *size)
        return fd;
    const char *why = has_contents(fd) ? "a special file (its size reads as 0, as in /proc and "
                                         "/sys), not an ELF file or ar archive"
                                       : "empty file";
    close(fd);
    return md_fail(err, "%s: %s", path, why);
}

// Walks the ar member headers once before libelf does, so a corrupt header is reported with its
// offset instead of looking like the end of the archive.
static int check_ar_headers(const struct md_elf *ar, struct md_error *err)
{
    size_t size = 0;
    const char *raw = elf_rawfile(ar->elf, &size);
    size_t off = 8; // after "!<arch>\n"
    while (raw && off < size) {
        char digits[11] = {0};
        char *end;
        if (size - off < 60 || memcmp(raw + off + 58, "`\n", 2))
            return md_fail(err, "%s: corrupt archive member header at offset %zu", ar->path, off);
        memcpy(digits, raw + off + 48, 10);
        unsigned long long len = strtoull(digits, &end, 10);
        if (end == digits || (*end && *end != ' ') || len > size - off - 60)
            return md_fail(err, "%s: corrupt archive member header at offset %zu (bad size)",
                           ar->path, off);
        off += 60 + len + (len & 1);
    }
    return 0;
}

int md_elf_check_image(const void *data, size_t size, const char *label, struct md_error *err)
{
    if (size < sizeof elf_magic || memcmp(data, elf_magic, sizeof elf_magic))
        return 0;
    elf_version(EV_CURRENT);
    // libelf only reads the image: the cast is the API's, not a licence to write
    struct md_elf e = {
        .path = label, .fd = -1, .size = size, .elf = elf_memory((char *)data, size)};
    if (!e.elf)
        return elf_fail(err, label, "not a readable ELF image");
    int rc = validate_elf(&e, err);
    elf_end(e.elf);
    return rc;
}

int md_elf_open(struct md_elf *e, const char *path, bool *is_archive, struct md_error *err)
{
    size_t size;
    int fd = open_elf_input(path, &size, err);
    if (fd < 0) {
        memset(e, 0, sizeof *e);
        e->fd = -1;
        return -1;
    }
    return md_elf_open_fd(e, fd, size, path, is_archive, err);
}

int md_elf_open_fd(struct md_elf *e, int fd, size_t size, const char *path, bool *is_archive,
                   struct md_error *err)
{
    memset(e, 0, sizeof *e);
    e->path = path;
    e->fd = fd;
    e->size = size;
    elf_version(EV_CURRENT);
    e->elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    if (!e->elf) {
        char magic[4] = {0};
        bool elf_magic_seen = pread(fd, magic, 4, 0) == 4 && !memcmp(magic, elf_magic, 4);
        md_elf_close(e);
        if (elf_magic_seen)
            return md_fail(err, "%s: truncated or corrupt ELF header (%s)", path, elf_errmsg(-1));
        return elf_fail(err, path, "cannot read");
    }
    *is_archive = elf_kind(e->elf) == ELF_K_AR;
    if (*is_archive) {
        if (check_ar_headers(e, err)) {
            md_elf_close(e);
            return -1;
        }
        // no member at all (glibc 2.34+ ships libdl.a and libpthread.a so): libelf would fail
        // the first member read with "offset out of range"
        size_t raw_size = 0;
        elf_rawfile(e->elf, &raw_size);
        e->archive_done = raw_size <= 8;
        return 0;
    }
    if (elf_kind(e->elf) != ELF_K_ELF) {
        size_t n = 0;
        const char *raw = elf_rawfile(e->elf, &n);
        bool elf_magic_seen = raw && n >= 4 && !memcmp(raw, elf_magic, 4);
        bool thin = raw && n >= 8 && !memcmp(raw, "!<thin>\n", 8);
        md_elf_close(e); // raw is gone with it
        return md_fail(err, "%s: %s", path,
                       elf_magic_seen ? "truncated or corrupt ELF header"
                       : thin ? "a thin archive (its members are files of their own: inspect those)"
                              : "not an ELF file or ar archive");
    }
    if (validate_elf(e, err)) {
        md_elf_close(e);
        return -1;
    }
    return 0;
}

void md_elf_close(struct md_elf *e)
{
    if (e->elf)
        elf_end(e->elf);
    if (e->fd >= 0)
        close(e->fd);
    e->elf = NULL;
    e->fd = -1;
}

static bool is_archive_index(const char *name)
{
    return !strcmp(name, "/") || !strcmp(name, "//") || !strcmp(name, "/SYM64/");
}

int md_archive_next(struct md_elf *ar, struct md_elf *m, char *label, size_t label_size,
                    size_t *skipped, struct md_error *err)
{
    while (!ar->archive_done) {
        elf_errno(); // clear, so an error below belongs to this call
        Elf *sub = elf_begin(ar->fd, ELF_C_READ_MMAP, ar->elf);
        if (!sub) {
            int code = elf_errno();
            ar->archive_done = true;
            return code ? md_fail(err, "%s: corrupt archive member header: %s", ar->path,
                                  elf_errmsg(code))
                        : 0;
        }
        // elf_getarhdr answers for the archive's current header: read it before elf_next moves on
        Elf_Arhdr *h = elf_getarhdr(sub);
        if (!h || !h->ar_name) {
            elf_end(sub);
            ar->archive_done = true;
            return md_fail(err, "%s: corrupt archive member header", ar->path);
        }
        bool skip = is_archive_index(h->ar_name) || elf_kind(sub) != ELF_K_ELF;
        *skipped += skip && !is_archive_index(h->ar_name);
        snprintf(label, label_size, "%s(%s)", ar->path, h->ar_name);
        // a corrupt header can put line breaks in the name: messages must stay one line
        for (char *c = label; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
        size_t member_size = h->ar_size > 0 ? (size_t)h->ar_size : 0;
        if (elf_next(sub) == ELF_C_NULL)
            ar->archive_done = true;
        if (skip) {
            elf_end(sub);
            continue;
        }
        memset(m, 0, sizeof *m);
        m->path = label;
        m->fd = -1;
        m->elf = sub;
        m->size = member_size;
        if (validate_elf(m, err)) { // the member's bytes, not the archive's: the walk goes on
            md_elf_close(m);
            return 2;
        }
        return 1;
    }
    return 0;
}

const char *md_elf_class_name(const struct md_elf *e)
{
    return e->ehdr.e_ident[EI_CLASS] == ELFCLASS64 ? "ELF64" : "ELF32";
}

bool md_elf_big_endian(const struct md_elf *e)
{
    return e->ehdr.e_ident[EI_DATA] == ELFDATA2MSB;
}

const char *md_elf_machine_name(const struct md_elf *e)
{
    return md_elf_machine_label(e->ehdr.e_machine);
}

const char *md_elf_machine_label(int machine)
{
    static const struct {
        int machine;
        const char *name;
    } names[] = {
        {EM_X86_64, "x86-64"},
        {EM_386, "i386"},
        {EM_AARCH64, "aarch64"},
        {EM_ARM, "arm"},
        {EM_RISCV, "riscv"},
        {EM_PPC64, "ppc64"},
        {EM_PPC, "ppc"},
        {EM_S390, "s390"},
        {EM_MIPS, "mips"},
        {EM_SPARCV9, "sparcv9"},
        {EM_LOONGARCH, "loongarch"},
        {EM_NONE, "none"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].machine == machine)
            return names[i].name;
    return "unknown";
}

// objcopy --only-keep-debug and eu-strip -f keep a linked file's section headers but turn the
// sections it loads into SHT_NOBITS: code that is not there is the mark of such a file.
static bool is_separate_debug(const struct md_elf *e)
{
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e->elf, scn));) {
        GElf_Shdr sh;
        if (gelf_getshdr(scn, &sh) && sh.sh_type == SHT_NOBITS && (sh.sh_flags & SHF_EXECINSTR))
            return true;
    }
    return false;
}

int md_elf_interpreter(struct md_elf *e, const char **interp, struct md_error *err)
{
    *interp = NULL;
    for (size_t i = 0; i < e->phnum; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e->elf, (int)i, &ph) || ph.p_type != PT_INTERP)
            continue;
        if (!ph.p_filesz && is_separate_debug(e)) // it keeps the header, not the name's bytes
            continue;
        Elf_Data *d = elf_getdata_rawchunk(e->elf, (int64_t)ph.p_offset, ph.p_filesz, ELF_T_BYTE);
        if (!d || !d->d_size || !memchr(d->d_buf, 0, d->d_size))
            return md_fail(err, "%s: corrupt PT_INTERP segment", e->path);
        *interp = d->d_buf;
    }
    return 0;
}

// A string table: a section that libelf reads, or, in a file without section headers, the
// DT_STRTAB bytes of the mapped file.
struct strtab {
    Elf *elf;
    size_t ndx;        // the section, when bytes is NULL
    const char *bytes; // DT_STRTAB in the file
    size_t size;       // DT_STRSZ, cut to what the file holds
};

static const char *strtab_get(const struct strtab *t, size_t off)
{
    if (!t->bytes)
        return elf_strptr(t->elf, t->ndx, off);
    // the string must end inside the table: the file is untrusted
    if (off >= t->size || !memchr(t->bytes + off, 0, t->size - off))
        return NULL;
    return t->bytes + off;
}

// The file extent behind virtual address addr: its offset, and how many bytes from there the
// PT_LOAD segment that holds it has in the file (at least 1). False when no segment does.
static bool vaddr_extent(struct md_elf *e, GElf_Addr addr, uint64_t *off, uint64_t *avail)
{
    for (size_t i = 0; i < e->phnum; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e->elf, (int)i, &ph) || ph.p_type != PT_LOAD || addr < ph.p_vaddr ||
            addr - ph.p_vaddr >= ph.p_filesz)
            continue;
        uint64_t delta = addr - ph.p_vaddr;
        if (ph.p_offset > e->size || delta > e->size - ph.p_offset)
            continue;
        *off = ph.p_offset + delta;
        uint64_t in_file = e->size - *off, in_segment = ph.p_filesz - delta;
        *avail = in_file < in_segment ? in_file : in_segment;
        return true;
    }
    return false;
}

// Addresses and sizes the dynamic segment gives, as ld.so reads them (0: absent).
struct dyn_tables {
    Elf_Data *entries; // PT_DYNAMIC
    GElf_Addr strtab, symtab, hash, gnu_hash, versym, verneed, verdef;
    GElf_Xword strsz, syment, verneednum, verdefnum;
};

static void note_dyn_table(struct dyn_tables *t, const GElf_Dyn *d)
{
    switch (d->d_tag) {
    case DT_STRTAB:
        t->strtab = d->d_un.d_ptr;
        break;
    case DT_STRSZ:
        t->strsz = d->d_un.d_val;
        break;
    case DT_SYMTAB:
        t->symtab = d->d_un.d_ptr;
        break;
    case DT_SYMENT:
        t->syment = d->d_un.d_val;
        break;
    case DT_HASH:
        t->hash = d->d_un.d_ptr;
        break;
    case DT_GNU_HASH:
        t->gnu_hash = d->d_un.d_ptr;
        break;
    case DT_VERSYM:
        t->versym = d->d_un.d_ptr;
        break;
    case DT_VERNEED:
        t->verneed = d->d_un.d_ptr;
        break;
    case DT_VERNEEDNUM:
        t->verneednum = d->d_un.d_val;
        break;
    case DT_VERDEF:
        t->verdef = d->d_un.d_ptr;
        break;
    case DT_VERDEFNUM:
        t->verdefnum = d->d_un.d_val;
        break;
    default:
        break;
    }
}

// Reads PT_DYNAMIC into t. No such segment: 0 with t->entries NULL.
static int read_dyn_tables(struct md_elf *e, struct dyn_tables *t, struct md_error *err)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < e->phnum; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e->elf, (int)i, &ph) || ph.p_type != PT_DYNAMIC)
            continue;
        if (!extent_fits(ph.p_offset, ph.p_filesz, e->size) || ph.p_offset > INT64_MAX ||
            !(t->entries =
                  elf_getdata_rawchunk(e->elf, (int64_t)ph.p_offset, ph.p_filesz, ELF_T_DYN)))
            return md_fail(err, "%s: corrupt PT_DYNAMIC segment (empty or outside the file)",
                           e->path);
        GElf_Dyn d;
        for (int k = 0; gelf_getdyn(t->entries, k, &d) && d.d_tag != DT_NULL; k++)
            note_dyn_table(t, &d);
        return 0;
    }
    return 0;
}

static int dyn_corrupt(struct md_elf *e, const char *what, struct md_error *err)
{
    return md_fail(err, "%s: corrupt dynamic segment: %s", e->path, what);
}

// The dynamic string table, read from the file through the PT_LOAD segment that holds it.
static int dyn_strtab(struct md_elf *e, const struct dyn_tables *t, struct strtab *s,
                      struct md_error *err)
{
    memset(s, 0, sizeof *s);
    if (!t->strtab)
        return t->strsz ? dyn_corrupt(e, "DT_STRSZ without DT_STRTAB", err) : 0;
    uint64_t off, avail;
    size_t raw_size = 0;
    const char *raw = elf_rawfile(e->elf, &raw_size);
    // vaddr_extent keeps off within e->size, which validate_elf cut to the mapped size
    if (!raw || !vaddr_extent(e, t->strtab, &off, &avail))
        return dyn_corrupt(e, "DT_STRTAB is not in the file", err);
    if (t->strsz > avail)
        return dyn_corrupt(e, "DT_STRSZ runs past its segment or the end of the file", err);
    s->bytes = raw + off;
    s->size = (size_t)t->strsz;
    return 0;
}

static void record_dyn(const struct strtab *strs, const GElf_Dyn *d, struct md_dynamic *dyn)
{
    const char *s = NULL;
    switch (d->d_tag) {
    case DT_NEEDED:
    case DT_SONAME:
    case DT_RPATH:
    case DT_RUNPATH:
        s = strtab_get(strs, d->d_un.d_val);
        break;
    case DT_FLAGS_1:
        dyn->flags_1 = d->d_un.d_val;
        return;
    default:
        return;
    }
    if (!s)
        return;
    if (d->d_tag == DT_NEEDED && dyn->needed_count < MD_MAX_NEEDED)
        dyn->needed[dyn->needed_count++] = s;
    else if (d->d_tag == DT_SONAME)
        dyn->soname = s;
    else if (d->d_tag == DT_RPATH)
        dyn->rpath = s;
    else if (d->d_tag == DT_RUNPATH)
        dyn->runpath = s;
}

static void record_dyn_entries(Elf_Data *data, const struct strtab *strs, struct md_dynamic *dyn)
{
    dyn->present = true;
    GElf_Dyn d;
    for (int i = 0; gelf_getdyn(data, i, &d) && d.d_tag != DT_NULL; i++)
        record_dyn(strs, &d, dyn);
}

// Without section headers (sstrip), the dynamic section is read as ld.so reads it: PT_DYNAMIC,
// and the strings at DT_STRTAB.
static int dynamic_from_segment(struct md_elf *e, struct md_dynamic *dyn, struct md_error *err)
{
    struct dyn_tables t;
    struct strtab strs;
    if (read_dyn_tables(e, &t, err))
        return -1;
    if (!t.entries)
        return 0;
    if (dyn_strtab(e, &t, &strs, err))
        return -1;
    record_dyn_entries(t.entries, &strs, dyn);
    return 0;
}

int md_elf_dynamic(struct md_elf *e, struct md_dynamic *dyn, struct md_error *err)
{
    memset(dyn, 0, sizeof *dyn);
    if (e->shnum == 0)
        return dynamic_from_segment(e, dyn, err);
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e->elf, scn));) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNAMIC)
            continue;
        Elf_Data *data = elf_getdata(scn, NULL);
        if (!data)
            return elf_fail(err, e->path, "cannot read the dynamic section");
        struct strtab strs = {.elf = e->elf, .ndx = sh.sh_link};
        record_dyn_entries(data, &strs, dyn);
    }
    return 0;
}

enum md_elf_kind md_elf_kind_of(const struct md_elf *e, bool has_interp,
                                const struct md_dynamic *dyn)
{
    if ((e->ehdr.e_type == ET_EXEC || e->ehdr.e_type == ET_DYN) && is_separate_debug(e))
        return MD_KIND_DEBUG;
    switch (e->ehdr.e_type) {
    case ET_REL:
        return MD_KIND_RELOCATABLE;
    case ET_EXEC:
        return has_interp ? MD_KIND_DYNAMIC : MD_KIND_STATIC;
    case ET_DYN:
        if (dyn->flags_1 & DF_1_PIE)
            return has_interp ? MD_KIND_DYNAMIC : MD_KIND_STATIC_PIE;
        // Older linkers did not set DF_1_PIE: an interpreter without a soname is an executable
        // (libc.so.6 has both, and is a library).
        if (has_interp && !dyn->soname)
            return MD_KIND_DYNAMIC;
        if (!has_interp && !dyn->soname && dyn->needed_count == 0 && e->ehdr.e_entry)
            return MD_KIND_STATIC_PIE;
        return MD_KIND_SHARED;
    default:
        return MD_KIND_OTHER;
    }
}

const char *md_elf_kind_name(enum md_elf_kind kind)
{
    static const char *const names[] = {
        [MD_KIND_STATIC] = "static",           [MD_KIND_STATIC_PIE] = "static-pie",
        [MD_KIND_DYNAMIC] = "dynamic",         [MD_KIND_SHARED] = "shared-object",
        [MD_KIND_RELOCATABLE] = "relocatable", [MD_KIND_OTHER] = "other",
        [MD_KIND_DEBUG] = "debug-file",
    };
    return names[kind];
}

// Version names by index, from .gnu.version_r (needed) and .gnu.version_d (defined).
struct version_names {
    const char **name;
    size_t count;
};

#define MD_MAX_VERSION_INDEX 4096

static void version_set(struct version_names *v, size_t index, const char *name)
{
    index &= 0x7fff; // the top bit marks hidden versions
    if (index >= MD_MAX_VERSION_INDEX || !name)
        return;
    if (index >= v->count) {
        size_t n = index + 16;
        const char **grown = realloc(v->name, n * sizeof *grown);
        if (!grown)
            return;
        memset(grown + v->count, 0, (n - v->count) * sizeof *grown);
        v->name = grown;
        v->count = n;
    }
    v->name[index] = name;
}

// The version records are chained by 32-bit byte offsets that libelf takes as int. Offsets are
// summed in size_t and must stay inside the section: cast to int, a sum past 4 GiB would wrap back
// to the start and a chain could loop for sh_info (up to 2^32) rounds.
static bool in_version_section(const Elf_Data *d, size_t off)
{
    return off < d->d_size && off <= INT_MAX;
}

// count: the number of records (sh_info, DT_VERNEEDNUM); names come from strs.
static void read_verneed(Elf_Data *d, size_t count, const struct strtab *strs,
                         struct version_names *v)
{
    size_t off = 0;
    for (size_t i = 0; d && i < count; i++) {
        GElf_Verneed vn;
        if (!in_version_section(d, off) || !gelf_getverneed(d, (int)off, &vn))
            return;
        size_t aux = off + vn.vn_aux;
        for (size_t j = 0; j < vn.vn_cnt; j++) {
            GElf_Vernaux va;
            if (!in_version_section(d, aux) || !gelf_getvernaux(d, (int)aux, &va))
                return;
            version_set(v, va.vna_other, strtab_get(strs, va.vna_name));
            if (!va.vna_next)
                break;
            aux += va.vna_next;
        }
        if (!vn.vn_next)
            return;
        off += vn.vn_next;
    }
}

static void read_verdef(Elf_Data *d, size_t count, const struct strtab *strs,
                        struct version_names *v)
{
    size_t off = 0;
    for (size_t i = 0; d && i < count; i++) {
        GElf_Verdef vd;
        GElf_Verdaux va;
        if (!in_version_section(d, off) || !gelf_getverdef(d, (int)off, &vd))
            return;
        if (in_version_section(d, off + vd.vd_aux) &&
            gelf_getverdaux(d, (int)(off + vd.vd_aux), &va))
            version_set(v, vd.vd_ndx, strtab_get(strs, va.vda_name));
        if (!vd.vd_next)
            return;
        off += vd.vd_next;
    }
}

// Finds the version tables that belong to the .dynsym section with index dynsym_index.
static Elf_Data *read_versions(struct md_elf *e, size_t dynsym_index, struct version_names *v)
{
    Elf_Data *versym = NULL;
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e->elf, scn));) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh))
            continue;
        struct strtab strs = {.elf = e->elf, .ndx = sh.sh_link};
        if (sh.sh_type == SHT_GNU_versym && sh.sh_link == dynsym_index)
            versym = elf_getdata(scn, NULL);
        else if (sh.sh_type == SHT_GNU_verneed)
            read_verneed(elf_getdata(scn, NULL), sh.sh_info, &strs, v);
        else if (sh.sh_type == SHT_GNU_verdef)
            read_verdef(elf_getdata(scn, NULL), sh.sh_info, &strs, v);
    }
    return versym;
}

// A symbol table to walk, from a section or from the dynamic segment.
struct sym_table {
    Elf_Data *syms;
    size_t count;
    struct strtab strs;
    bool dynamic;
    Elf_Data *versym; // dynamic symbols: their version indexes, or NULL
    struct version_names versions;
};

static void walk_syms(const struct sym_table *t, md_sym_fn fn, void *ctx)
{
    int stop = 0;
    for (size_t i = 1; i < t->count && !stop; i++) {
        GElf_Sym s;
        if (!gelf_getsym(t->syms, (int)i, &s))
            break;
        struct md_sym sym = {
            .name = strtab_get(&t->strs, s.st_name),
            .value = s.st_value,
            .size = s.st_size,
            .type = GELF_ST_TYPE(s.st_info),
            .bind = GELF_ST_BIND(s.st_info),
            .defined = s.st_shndx != SHN_UNDEF,
            .dynamic = t->dynamic,
        };
        GElf_Versym vs;
        if (t->versym && gelf_getversym(t->versym, (int)i, &vs) && (vs & 0x7fff) > 1 &&
            (size_t)(vs & 0x7fff) < t->versions.count)
            sym.version = t->versions.name[vs & 0x7fff];
        if (sym.name && *sym.name)
            stop = fn(&sym, ctx);
    }
}

static int walk_symtab(struct md_elf *e, Elf_Scn *scn, const GElf_Shdr *sh, md_sym_fn fn, void *ctx,
                       struct md_error *err)
{
    struct sym_table t = {.syms = elf_getdata(scn, NULL),
                          .strs = {.elf = e->elf, .ndx = sh->sh_link},
                          .dynamic = sh->sh_type == SHT_DYNSYM};
    if (!t.syms)
        return elf_fail(err, e->path, "cannot read a symbol table");
    if (t.dynamic)
        t.versym = read_versions(e, elf_ndxscn(scn), &t.versions);
    size_t entsize = sh->sh_entsize ? sh->sh_entsize : gelf_fsize(e->elf, ELF_T_SYM, 1, EV_CURRENT);
    t.count = entsize ? sh->sh_size / entsize : 0;
    walk_syms(&t, fn, ctx);
    free(t.versions.name);
    return 0;
}

// The bytes at virtual address addr, converted by libelf for type; size 0: all that its PT_LOAD
// segment holds in the file from there. NULL when they are not all in the file.
static Elf_Data *dyn_chunk(struct md_elf *e, GElf_Addr addr, uint64_t size, Elf_Type type)
{
    uint64_t off, avail;
    if (!addr || !vaddr_extent(e, addr, &off, &avail) || off > INT64_MAX)
        return NULL;
    if (!size)
        size = type == ELF_T_WORD ? avail & ~(uint64_t)3 : avail;
    if (!size || size > avail || size > SIZE_MAX)
        return NULL;
    return elf_getdata_rawchunk(e->elf, (int64_t)off, (size_t)size, type);
}

// DT_GNU_HASH gives no symbol count: it is one past the end of the chain of the highest bucket
// (the last entry of a chain has its low bit set). Every index is checked against the n words
// there are, so a chain that never ends stops at the end of the data: -1.
static int gnu_hash_count(const Elf32_Word *w, size_t n, bool elf64, size_t *count)
{
    if (n < 4)
        return -1;
    uint64_t nbuckets = w[0], symoffset = w[1], buckets = 4 + (uint64_t)w[2] * (elf64 ? 2 : 1);
    if (buckets > n || nbuckets > n - buckets)
        return -1;
    uint64_t chains = buckets + nbuckets, last = 0;
    for (uint64_t i = 0; i < nbuckets; i++)
        if (w[buckets + i] > last)
            last = w[buckets + i];
    if (last == 0) { // every bucket empty: only the symbols before symoffset
        *count = symoffset;
        return 0;
    }
    if (last < symoffset)
        return -1;
    for (uint64_t at = chains + (last - symoffset); at < n; at++, last++)
        if (w[at] & 1) {
            *count = last + 1;
            return 0;
        }
    return -1;
}

static int dyn_symbol_count(struct md_elf *e, const struct dyn_tables *t, size_t *count,
                            struct md_error *err)
{
    if (t->hash) { // nchain, the second word, is the number of symbols
        Elf_Data *h = dyn_chunk(e, t->hash, 8, ELF_T_WORD);
        if (!h || h->d_size < 8)
            return dyn_corrupt(e, "DT_HASH is not in the file", err);
        *count = ((const Elf32_Word *)h->d_buf)[1];
        return 0;
    }
    Elf_Data *g = dyn_chunk(e, t->gnu_hash, 0, ELF_T_WORD);
    if (g &&
        !gnu_hash_count(g->d_buf, g->d_size / 4, e->ehdr.e_ident[EI_CLASS] == ELFCLASS64, count))
        return 0;
    if (!t->gnu_hash)
        return dyn_corrupt(e, "DT_SYMTAB without DT_HASH or DT_GNU_HASH", err);
    return dyn_corrupt(e, "DT_GNU_HASH is not in the file or a chain runs past its end", err);
}

// Version names for dynamic symbols read from the segment. Missing or bad tables leave the
// symbols without versions: what they name (malloc@GLIBC_2.2.5) is a detail of the answer.
static void dyn_versions(struct md_elf *e, const struct dyn_tables *dt, struct sym_table *t)
{
    t->versym = dyn_chunk(e, dt->versym, (uint64_t)t->count * 2, ELF_T_HALF);
    if (!t->versym)
        return;
    read_verneed(dyn_chunk(e, dt->verneed, 0, ELF_T_VNEED), dt->verneednum, &t->strs, &t->versions);
    read_verdef(dyn_chunk(e, dt->verdef, 0, ELF_T_VDEF), dt->verdefnum, &t->strs, &t->versions);
}

// Without section headers, the dynamic symbols are found as ld.so finds them: DT_SYMTAB, counted
// by the hash table, named by DT_STRTAB.
static int symbols_from_segment(struct md_elf *e, md_sym_fn fn, void *ctx, struct md_error *err)
{
    struct dyn_tables dt;
    struct sym_table t = {.dynamic = true};
    if (read_dyn_tables(e, &dt, err))
        return -1;
    if (!dt.entries || !dt.symtab)
        return 0;
    size_t entsize = gelf_fsize(e->elf, ELF_T_SYM, 1, EV_CURRENT);
    if (dt.syment && dt.syment != entsize)
        return dyn_corrupt(e, "DT_SYMENT is not the size of a symbol", err);
    if (dyn_strtab(e, &dt, &t.strs, err) || dyn_symbol_count(e, &dt, &t.count, err))
        return -1;
    if (t.count > INT_MAX / entsize ||
        !(t.syms = dyn_chunk(e, dt.symtab, (uint64_t)t.count * entsize, ELF_T_SYM)))
        return dyn_corrupt(e, "the symbol table runs past its segment or the end of the file", err);
    dyn_versions(e, &dt, &t);
    walk_syms(&t, fn, ctx);
    free(t.versions.name);
    return 0;
}

int md_elf_symbols(struct md_elf *e, md_sym_fn fn, void *ctx, bool *has_symtab,
                   struct md_error *err)
{
    *has_symtab = false;
    if (e->shnum == 0)
        return symbols_from_segment(e, fn, ctx, err);
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e->elf, scn));) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM))
            continue;
        if (sh.sh_type == SHT_SYMTAB && sh.sh_size > sh.sh_entsize)
            *has_symtab = true;
        if (walk_symtab(e, scn, &sh, fn, ctx, err))
            return -1;
    }
    return 0;
}

static const char *section_name(struct md_elf *e, const GElf_Shdr *sh)
{
    const char *name = elf_strptr(e->elf, e->shstrndx, sh->sh_name);
    return name ? name : "?";
}

// Unwind tables are large (6 MB in rustc's driver) and never hold strings or constant tables.
static bool is_unwind_section(const char *name)
{
    return strstr(name, "eh_frame") || strstr(name, "gcc_except_table");
}

static int visit_segments(struct md_elf *e, md_bytes_fn fn, void *ctx)
{
    for (size_t i = 0; i < e->phnum; i++) {
        GElf_Phdr ph;
        if (!gelf_getphdr(e->elf, (int)i, &ph) || ph.p_type != PT_LOAD || (ph.p_flags & PF_X))
            continue;
        Elf_Data *d = elf_getdata_rawchunk(e->elf, (int64_t)ph.p_offset, ph.p_filesz, ELF_T_BYTE);
        if (d)
            fn("(segment)", d->d_buf, d->d_size, ctx);
    }
    return 0;
}

int md_elf_data_sections(struct md_elf *e, md_bytes_fn fn, void *ctx, struct md_error *err)
{
    if (e->shnum == 0)
        return visit_segments(e, fn, ctx);
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e->elf, scn));) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh))
            return elf_fail(err, e->path, "corrupt section header");
        if (sh.sh_type != SHT_PROGBITS || !(sh.sh_flags & SHF_ALLOC) ||
            (sh.sh_flags & (SHF_EXECINSTR | SHF_WRITE)) || sh.sh_size == 0 ||
            is_unwind_section(section_name(e, &sh)))
            continue;
        Elf_Data *d = elf_rawdata(scn, NULL);
        if (d && d->d_buf)
            fn(section_name(e, &sh), d->d_buf, d->d_size, ctx);
    }
    return 0;
}

int md_elf_read_vaddr(struct md_elf *e, GElf_Addr addr, void *buf, size_t len)
{
    size_t raw_size = 0;
    const char *raw = elf_rawfile(e->elf, &raw_size);
    uint64_t off, avail;
    if (!raw || !vaddr_extent(e, addr, &off, &avail) || len > avail)
        return -1;
    memcpy(buf, raw + off, len);
    return 0;
}

bool md_elf_has_section(struct md_elf *e, const char *name)
{
    for (Elf_Scn *scn = NULL; (scn = elf_nextscn(e->elf, scn));) {
        GElf_Shdr sh;
        if (gelf_getshdr(scn, &sh) && !strcmp(section_name(e, &sh), name))
            return true;
    }
    return false;
}
