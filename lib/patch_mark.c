// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/patch_mark.h"

#include <assert.h>
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/sha256.h"

// The .comment text; the size and the digest follow it.
#define MARK_TEXT "malloc-doctor patch: made from a libc.a of "

void md_patch_mark_of(const struct md_archive *orig, struct md_patch_mark *mark)
{
    assert(orig->sha256[0]); // read with its digest
    mark->size = orig->file_size;
    memcpy(mark->sha256, orig->sha256, sizeof mark->sha256);
}

// An ELF file of like's class (ELF32 or ELF64) and byte order, written field by field.
struct elf_out {
    unsigned char *buf;
    size_t at;
    bool big, wide; // big-endian; 64-bit (addresses, offsets and sizes take 8 bytes, not 4)
};

static void field(struct elf_out *o, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        o->buf[o->at + i] = (unsigned char)(v >> 8 * (o->big ? n - 1 - i : i));
    o->at += n;
}

// An address, offset or size: Elf64_Addr/Off/Xword or their 32-bit counterparts.
static void word(struct elf_out *o, uint64_t v)
{
    field(o, v, o->wide ? 8 : 4);
}

static void section_header(struct elf_out *o, uint32_t name, uint32_t type, uint64_t flags,
                           uint64_t offset, uint64_t size, uint64_t entsize)
{
    field(o, name, 4);
    field(o, type, 4);
    word(o, flags);
    word(o, 0); // address: not loaded
    word(o, offset);
    word(o, size);
    field(o, 0, 4); // link
    field(o, 0, 4); // info
    word(o, 1);     // alignment
    word(o, entsize);
}

// Sections: 0 (null), 1 .comment (the text, a NUL-terminated string as the compilers write it),
// 2 .shstrtab; the section headers follow at an 8-byte boundary.
static void lay_out(struct elf_out *o, const unsigned char *ident, uint16_t machine, uint32_t flags,
                    const char *text, size_t text_size)
{
    static const char names[] = "\0.comment\0.shstrtab";
    size_t ehsize = o->wide ? 64 : 52, shentsize = o->wide ? 64 : 40;
    size_t text_at = ehsize, names_at = text_at + text_size;
    size_t sh_at = (names_at + sizeof names + 7) & ~(size_t)7;
    memcpy(o->buf, ident, EI_NIDENT);
    o->at = EI_NIDENT;
    field(o, ET_REL, 2);
    field(o, machine, 2);
    field(o, EV_CURRENT, 4);
    word(o, 0);     // entry
    word(o, 0);     // program headers: none
    word(o, sh_at); // section headers
    field(o, flags, 4);
    field(o, ehsize, 2);
    field(o, 0, 2); // program header size
    field(o, 0, 2); // and count
    field(o, shentsize, 2);
    field(o, 3, 2); // sections
    field(o, 2, 2); // .shstrtab
    memcpy(o->buf + text_at, text, text_size);
    memcpy(o->buf + names_at, names, sizeof names);
    o->at = sh_at + shentsize; // header 0 stays zero
    section_header(o, 1, SHT_PROGBITS, SHF_MERGE | SHF_STRINGS, text_at, text_size, 1);
    section_header(o, 10, SHT_STRTAB, 0, names_at, sizeof names, 0);
}

static uint64_t read_field(const unsigned char *p, size_t n, bool big)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << 8 * (big ? n - 1 - i : i);
    return v;
}

int md_patch_mark_member(const struct md_ar_member *like, const struct md_patch_mark *mark,
                         struct md_ar_member *out, struct md_error *err)
{
    const unsigned char *h = like->data;
    *out = (struct md_ar_member){0};
    if (like->size < 52 || memcmp(h, ELFMAG, SELFMAG) || h[EI_CLASS] < ELFCLASS32 ||
        h[EI_CLASS] > ELFCLASS64 || h[EI_DATA] < ELFDATA2LSB || h[EI_DATA] > ELFDATA2MSB)
        return md_fail(err, "%s: not an ELF object; cannot make the patch's mark like it",
                       like->name);
    struct elf_out o = {.big = h[EI_DATA] == ELFDATA2MSB, .wide = h[EI_CLASS] == ELFCLASS64};
    if (o.wide && like->size < 64)
        return md_fail(err, "%s: a truncated ELF header", like->name);
    char text[160];
    int len =
        snprintf(text, sizeof text, MARK_TEXT "%zu bytes, sha256 %s", mark->size, mark->sha256);
    size_t text_size = (size_t)len + 1;
    // room for the largest layout: an ELF64 header, the text, the names padded to 8 bytes, and
    // three section headers; lay_out says how much of it the file takes
    out->data = o.buf = calloc(1, 64 + text_size + 32 + 3 * 64);
    out->name = strdup(MD_PATCH_MARK_MEMBER);
    if (!out->data || !out->name) {
        md_patch_mark_free(out);
        return md_fail(err, "out of memory");
    }
    uint32_t flags = (uint32_t)read_field(h + (o.wide ? 48 : 36), 4, o.big);
    lay_out(&o, h, (uint16_t)read_field(h + 18, 2, o.big), flags, text, text_size);
    out->size = o.at;
    return 0;
}

void md_patch_mark_free(struct md_ar_member *m)
{
    free(m->name);
    free(m->data);
    *m = (struct md_ar_member){0};
}

// "N bytes, sha256 HEX" after the mark's text (the archive is untrusted: no sscanf %zu, whose
// behaviour is undefined for a number out of range).
static bool parse_mark(const char *s, struct md_patch_mark *mark)
{
    static const char middle[] = " bytes, sha256 ";
    size_t digits = strspn(s, "0123456789");
    if (digits == 0 || digits > 19 || strncmp(s + digits, middle, strlen(middle)))
        return false;
    const char *hex = s + digits + strlen(middle);
    if (strspn(hex, "0123456789abcdef") != 64)
        return false;
    mark->size = (size_t)strtoull(s, NULL, 10);
    memcpy(mark->sha256, hex, 64);
    mark->sha256[64] = 0;
    return true;
}

bool md_patch_mark_find(const struct md_archive *ar, struct md_patch_mark *mark)
{
    for (size_t i = ar->count; i-- > 0;) {
        const struct md_ar_member *m = &ar->members[i];
        const char *at = strcmp(m->name, MD_PATCH_MARK_MEMBER)
                             ? NULL
                             : memmem(m->data, m->size, MARK_TEXT, strlen(MARK_TEXT));
        // the text ends in a NUL well before the member does (the names and headers follow)
        if (at && memchr(at, 0, m->size - (size_t)(at - (const char *)m->data)) &&
            parse_mark(at + strlen(MARK_TEXT), mark))
            return true;
    }
    return false;
}
