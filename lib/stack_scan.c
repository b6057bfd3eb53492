// SPDX-License-Identifier: GPL-3.0-or-later
#include "lib/stack_scan.h"

#include <stddef.h>
#include <string.h>

// x86-64 call encodings that end at the return address, by length: the ModRM byte of an indirect
// call (opcode FF) has reg field 2; its mod and r/m fields decide how many displacement (and SIB)
// bytes follow.
static bool modrm_call_ends_here(const unsigned char *end, size_t avail)
{
    // call *%reg: FF D0+r (2 bytes)
    if (avail >= 2 && end[-2] == 0xff && (end[-1] & 0xf8) == 0xd0)
        return true;
    // call *(%reg): FF 10+r, r/m not 4 (SIB) or 5 (rip-relative)
    if (avail >= 2 && end[-2] == 0xff && (end[-1] & 0xf8) == 0x10 && (end[-1] & 7) != 4 &&
        (end[-1] & 7) != 5)
        return true;
    // call *disp8(%reg): FF 50+r d8, or with SIB FF 54 sib d8
    if (avail >= 3 && end[-3] == 0xff && (end[-2] & 0xf8) == 0x50 && (end[-2] & 7) != 4)
        return true;
    if (avail >= 4 && end[-4] == 0xff && end[-3] == 0x54)
        return true;
    // call *(%rsp)-style SIB without displacement: FF 14 sib
    if (avail >= 3 && end[-3] == 0xff && end[-2] == 0x14)
        return true;
    // call *disp32(%rip): FF 15 d32; call *disp32(%reg): FF 90+r d32; with SIB FF 94 sib d32
    if (avail >= 6 && end[-6] == 0xff &&
        (end[-5] == 0x15 || ((end[-5] & 0xf8) == 0x90 && (end[-5] & 7) != 4)))
        return true;
    if (avail >= 7 && end[-7] == 0xff && end[-6] == 0x94)
        return true;
    return false;
}

bool md_follows_call(const struct md_symtab *t, uint64_t offset)
{
    size_t size = 0;
    const unsigned char *file =
        t->elf_open ? (const unsigned char *)elf_rawfile(t->elf.elf, &size) : NULL;
    if (!file || offset == 0 || offset > size)
        return false;
    const unsigned char *end = file + offset;
    size_t avail = offset < 8 ? (size_t)offset : 8;
#if defined(__x86_64__)
    if (avail >= 5 && end[-5] == 0xe8) // call rel32
        return true;
    return modrm_call_ends_here(end, avail); // a REX prefix sits before FF: nothing to check
#else
    (void)end;
    (void)avail;
    return true; // no decoder: any address inside a function is taken
#endif
}

// ---- stale frames -------------------------------------------------------------------------

#define TAIL_JUMPS 2 // callee -> tail jump -> tail jump -> inner, at most

static const unsigned char *file_bytes(const struct md_symtab *t, size_t *size)
{
    *size = 0;
    return t->elf_open ? (const unsigned char *)elf_rawfile(t->elf.elf, size) : NULL;
}

static int32_t rel32_at(const unsigned char *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

// Function f's length: its size, or for an unsized one (assembly: musl's memcpy) up to the next
// symbol, as md_symtab_find trusts it, where the symbol table is whole; 0 when unknown.
static uint64_t func_length(const struct md_symtab *t, const struct md_func_sym *f)
{
    if (f->size || t->exports_only)
        return f->size;
    for (const struct md_func_sym *g = f + 1; g < t->funcs + t->count; g++)
        if (g->addr > f->addr)
            return g->addr - f->addr;
    return 0;
}

static enum md_reach callee_reaches(const struct md_symtab *t, const struct md_func_sym *f,
                                    uint64_t inner_addr, int depth);

// A direct jump from function f to dest: what it says about reaching inner_addr. Destinations
// inside another function's body are not real jumps (bytes of other instructions decoded as
// one); a destination in no function (the PLT) cannot be followed.
static enum md_reach jump_reaches(const struct md_symtab *t, const struct md_func_sym *f,
                                  uint64_t dest, uint64_t inner_addr, int depth)
{
    uint64_t off;
    if (dest >= f->addr && dest - f->addr < func_length(t, f))
        return MD_REACH_NO; // inside f
    if (!md_symtab_addr_to_offset(t, dest, &off))
        return MD_REACH_NO; // not code of this file: not a real jump
    const struct md_func_sym *g = md_symtab_find(t, dest, NULL);
    if (!g)
        return MD_REACH_MAYBE; // no function there: a PLT entry
    if (g->addr != dest)
        return MD_REACH_NO;
    if (dest == inner_addr)
        return MD_REACH_SURELY;
    return depth > 0 ? callee_reaches(t, g, inner_addr, depth - 1) : MD_REACH_NO;
}

// Whether function f of t is, or jumps (directly, over up to depth more tail jumps, or
// indirectly) to, the function at inner_addr (UINT64_MAX: in another file, reached through the
// PLT only).
static enum md_reach callee_reaches(const struct md_symtab *t, const struct md_func_sym *f,
                                    uint64_t inner_addr, int depth)
{
    size_t size;
    const unsigned char *file = file_bytes(t, &size);
    uint64_t start, length = func_length(t, f);
    if (f->addr == inner_addr)
        return MD_REACH_SURELY;
    if (!file || !length || !md_symtab_addr_to_offset(t, f->addr, &start) || start > size ||
        length > size - start)
        return MD_REACH_MAYBE; // cannot read it
    const unsigned char *code = file + start;
    enum md_reach found = MD_REACH_NO;
    for (uint64_t i = 0; i + 2 <= length; i++) {
        uint64_t next = f->addr + i;
        if (code[i] == 0xff && (code[i + 1] & 0x38) == 0x20)
            found = MD_REACH_MAYBE; // jmp *...: anywhere
        enum md_reach r = MD_REACH_NO;
        if (code[i] == 0xe9 && i + 5 <= length)
            r = jump_reaches(t, f, next + 5 + (uint64_t)(int64_t)rel32_at(code + i + 1), inner_addr,
                             depth);
        else if (code[i] == 0xeb)
            r = jump_reaches(t, f, next + 2 + (uint64_t)(int64_t)(int8_t)code[i + 1], inner_addr,
                             depth);
        else if (code[i] == 0x0f && (code[i + 1] & 0xf0) == 0x80 && i + 6 <= length)
            r = jump_reaches(t, f, next + 6 + (uint64_t)(int64_t)rel32_at(code + i + 2), inner_addr,
                             depth);
        if (r == MD_REACH_SURELY)
            return MD_REACH_SURELY;
        if (r == MD_REACH_MAYBE)
            found = MD_REACH_MAYBE;
    }
    return found;
}

enum md_reach md_call_reach(const struct md_symtab *t, uint64_t ret_offset,
                            const struct md_symtab *inner_t, const struct md_func_sym *inner)
{
#if defined(__x86_64__)
    size_t size;
    const unsigned char *file = file_bytes(t, &size);
    uint64_t ret_addr;
    if (!inner || !file || ret_offset < 5 || ret_offset > size || file[ret_offset - 5] != 0xe8 ||
        !md_symtab_offset_to_addr(t, ret_offset, &ret_addr))
        return MD_REACH_MAYBE; // an indirect call (or unreadable)
    uint64_t target = ret_addr + (uint64_t)(int64_t)rel32_at(file + ret_offset - 4);
    const struct md_func_sym *callee = md_symtab_find(t, target, NULL);
    if (!callee || callee->addr != target)
        return MD_REACH_MAYBE; // the PLT, or no symbol
    uint64_t inner_addr = inner_t == t ? inner->addr : UINT64_MAX;
    return callee_reaches(t, callee, inner_addr, TAIL_JUMPS);
#else
    (void)t, (void)ret_offset, (void)inner_t, (void)inner;
    return MD_REACH_MAYBE;
#endif
}

bool md_call_can_reach(const struct md_symtab *t, uint64_t ret_offset,
                       const struct md_symtab *inner_t, const struct md_func_sym *inner)
{
    return md_call_reach(t, ret_offset, inner_t, inner) != MD_REACH_NO;
}

bool md_keeps_frame_pointer(const struct md_symtab *t, const struct md_func_sym *f)
{
#if defined(__x86_64__)
    static const unsigned char endbr64[] = {0xf3, 0x0f, 0x1e, 0xfa};
    // push %rbp, then mov %rsp,%rbp in either of its encodings
    static const unsigned char prologue[2][4] = {{0x55, 0x48, 0x89, 0xe5},
                                                 {0x55, 0x48, 0x8b, 0xec}};
    size_t size;
    const unsigned char *file = file_bytes(t, &size);
    uint64_t at;
    if (!file || !md_symtab_addr_to_offset(t, f->addr, &at) || at + 8 > size)
        return true;
    const unsigned char *code = file + at;
    if (!memcmp(code, endbr64, sizeof endbr64))
        code += sizeof endbr64;
    return !memcmp(code, prologue[0], 4) || !memcmp(code, prologue[1], 4);
#else
    (void)t, (void)f;
    return true;
#endif
}
