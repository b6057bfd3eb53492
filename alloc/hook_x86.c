// SPDX-License-Identifier: MIT
// x86-64 instruction lengths and entry hooks; see hook_x86.h.
//
// The decoder only needs lengths and the few fields a move has to adjust, so each opcode map is a
// table of operand shapes (ModRM, immediate sizes, relative branch); the opcodes whose shape
// depends on ModRM.reg or on a prefix are handled by name in code. Whatever the tables do not
// describe is refused, never guessed: a wrong length would move half an instruction.
//
// Freestanding (the static probe includes it in a -nostdlib loader): no libc, no mutable state,
// and only tables of plain bytes, which need no relocation.
#include "alloc/hook_x86.h"

// Operand shape of an opcode.
enum {
    OP_MODRM = 0x01,  // a ModRM byte (and SIB, displacement) follows
    OP_IMM8 = 0x02,   // then an 8-bit immediate
    OP_IMM16 = 0x04,  // a 16-bit immediate (C8 enter has IMM16 | IMM8)
    OP_IMMZ = 0x08,   // 32-bit immediate, 16-bit with a 66 prefix (and no REX.W)
    OP_IMMV = 0x10,   // B8-BF: 64-bit with REX.W, else as OP_IMMZ
    OP_REL8 = 0x20,   // an 8-bit relative branch
    OP_REL32 = 0x40,  // a 32-bit relative branch
    OP_SPECIAL = 0x80 // decoded by name (prefixes, escapes, groups, invalid opcodes)
};

#define M OP_MODRM
#define I8 OP_IMM8
#define I16 OP_IMM16
#define IZ OP_IMMZ
#define IV OP_IMMV
#define R8 OP_REL8
#define R32 OP_REL32
#define S OP_SPECIAL

// The one-byte map in 64-bit mode. S marks prefixes, escapes, VEX/EVEX, groups whose operands
// depend on ModRM.reg, and opcodes that are invalid in 64-bit mode (06, 27, 60, 82, 9A, D4, ...).
// clang-format off
static const uint8_t one_byte_map[256] = {
    /* 00 */ M, M, M, M, I8, IZ, S, S, M, M, M, M, I8, IZ, S, S,
    /* 10 */ M, M, M, M, I8, IZ, S, S, M, M, M, M, I8, IZ, S, S,
    /* 20 */ M, M, M, M, I8, IZ, S, S, M, M, M, M, I8, IZ, S, S,
    /* 30 */ M, M, M, M, I8, IZ, S, S, M, M, M, M, I8, IZ, S, S,
    /* 40 */ S, S, S, S, S, S, S, S, S, S, S, S, S, S, S, S,
    /* 50 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 60 */ S, S, S, M, S, S, S, S, IZ, M | IZ, I8, M | I8, 0, 0, 0, 0,
    /* 70 */ R8, R8, R8, R8, R8, R8, R8, R8, R8, R8, R8, R8, R8, R8, R8, R8,
    /* 80 */ M | I8, M | IZ, S, M | I8, M, M, M, M, M, M, M, M, M, M, M, S,
    /* 90 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, S, 0, 0, 0, 0, 0,
    /* A0 */ S, S, S, S, 0, 0, 0, 0, I8, IZ, 0, 0, 0, 0, 0, 0,
    /* B0 */ I8, I8, I8, I8, I8, I8, I8, I8, IV, IV, IV, IV, IV, IV, IV, IV,
    /* C0 */ M | I8, M | I8, I16, 0, S, S, S, S, I16 | I8, 0, I16, 0, 0, I8, S, 0,
    /* D0 */ M, M, M, M, S, S, S, 0, M, M, M, M, M, M, M, M,
    /* E0 */ R8, R8, R8, R8, I8, I8, I8, I8, R32, R32, S, R8, 0, 0, 0, 0,
    /* F0 */ S, 0, S, S, 0, 0, S, S, 0, 0, 0, 0, 0, 0, S, S,
};
// clang-format on

// The 0F map (legacy encoding). S: 0F 38 and 0F 3A escapes, prefix-dependent opcodes (78, 79,
// B8) and the invalid or 3DNow! ones (04, 0A, 0C, 0E, 0F, 24-27, 36, 39, 3B-3F, 7A, 7B, A6, A7).
// clang-format off
static const uint8_t two_byte_map[256] = {
    /* 00 */ M, M, M, M, S, 0, 0, 0, 0, 0, S, 0, S, M, S, S,
    /* 10 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 20 */ M, M, M, M, S, S, S, S, M, M, M, M, M, M, M, M,
    /* 30 */ 0, 0, 0, 0, 0, 0, S, 0, S, S, S, S, S, S, S, S,
    /* 40 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 50 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 60 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* 70 */ M | I8, M | I8, M | I8, M | I8, M, M, M, 0, S, S, S, S, M, M, M, M,
    /* 80 */ R32, R32, R32, R32, R32, R32, R32, R32, R32, R32, R32, R32, R32, R32, R32, R32,
    /* 90 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* A0 */ 0, 0, 0, M, M | I8, M, S, S, 0, 0, 0, M, M | I8, M, M, M,
    /* B0 */ M, M, M, M, M, M, M, M, S, M, M | I8, M, M, M, M, M,
    /* C0 */ M, M, M | I8, M, M | I8, M | I8, M | I8, M, 0, 0, 0, 0, 0, 0, 0, 0,
    /* D0 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* E0 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
    /* F0 */ M, M, M, M, M, M, M, M, M, M, M, M, M, M, M, M,
};
// clang-format on

#undef M
#undef I8
#undef I16
#undef IZ
#undef IV
#undef R8
#undef R32
#undef S

// Instructions are at most 15 bytes long; longer ones fault.
#define MAX_INSN_LEN 15

// Opcode maps, numbered as VEX.mmmmm numbers them.
enum { MAP_0F = 1, MAP_0F38 = 2, MAP_0F3A = 3 };

// What the prefixes said.
struct prefixes {
    bool opsize; // 66
    bool addr32; // 67
    bool rep;    // F3
    bool repne;  // F2
    bool lock;   // F0
    uint8_t rex; // the REX byte right before the opcode, 0 when none
};

static bool is_legacy_prefix(uint8_t b)
{
    switch (b) {
    case 0x66:
    case 0x67:
    case 0xF2:
    case 0xF3:
    case 0xF0:
    case 0x2E:
    case 0x36:
    case 0x3E:
    case 0x26:
    case 0x64:
    case 0x65:
        return true;
    default:
        return false;
    }
}

// Reads the prefixes; returns the offset of the first byte after them. A REX byte counts only
// when it comes last: a legacy prefix after it makes the processor ignore it.
static size_t read_prefixes(const uint8_t *code, size_t avail, struct prefixes *p)
{
    size_t at = 0;
    for (; at < avail && at < MAX_INSN_LEN; at++) {
        uint8_t b = code[at];
        if (b >= 0x40 && b <= 0x4F) {
            p->rex = b;
            continue;
        }
        if (!is_legacy_prefix(b))
            break;
        p->rex = 0;
        p->opsize |= b == 0x66;
        p->addr32 |= b == 0x67;
        p->rep |= b == 0xF3;
        p->repne |= b == 0xF2;
        p->lock |= b == 0xF0;
    }
    return at;
}

// The ModRM byte at code[at] and what follows it (SIB, displacement): sets *end past them. In
// 64-bit mode the 67 prefix keeps this form (there is no 16-bit addressing), so it changes no
// length. mod=00 rm=101 is RIP-relative disp32 whatever REX.B says; so is SIB base=101 with
// mod=00 a bare disp32.
static int skip_modrm(const uint8_t *code, size_t avail, size_t at, size_t *end,
                      uint8_t *rip_disp_at)
{
    if (at >= avail)
        return -1;
    uint8_t modrm = code[at];
    unsigned mod = modrm >> 6, rm = modrm & 7;
    size_t next = at + 1, disp = 0;
    if (mod != 3) {
        if (rm == 4) {
            if (next >= avail)
                return -1;
            if (mod == 0 && (code[next] & 7) == 5)
                disp = 4;
            next++;
        } else if (mod == 0 && rm == 5) {
            *rip_disp_at = (uint8_t)next;
            disp = 4;
        }
        if (mod == 1)
            disp = 1;
        else if (mod == 2)
            disp = 4;
    }
    *end = next + disp;
    return 0;
}

// Immediate bytes for the OP_IMM* bits of shape.
static size_t immediate_size(uint8_t shape, const struct prefixes *p)
{
    bool rex_w = (p->rex & 0x08) != 0;
    size_t z = rex_w || !p->opsize ? 4 : 2;
    size_t n = 0;
    if (shape & OP_IMM8)
        n += 1;
    if (shape & OP_IMM16)
        n += 2;
    if (shape & OP_IMMZ)
        n += z;
    if (shape & OP_IMMV)
        n += rex_w ? 8 : z;
    return n;
}

// Shape of an S opcode of the one-byte map that is not a prefix or escape, from ModRM.reg where
// it matters; 0xFF when invalid. Sets ends_flow for the indirect jumps.
#define SHAPE_INVALID 0xFF
static uint8_t one_byte_group_shape(uint8_t op, uint8_t modrm, const struct prefixes *p,
                                    struct md_insn *insn)
{
    unsigned reg = (modrm >> 3) & 7, mod = modrm >> 6;
    switch (op) {
    case 0x8F: // pop r/m; other reg values are AMD's XOP prefix
        return reg == 0 ? OP_MODRM : SHAPE_INVALID;
    case 0xC6: // mov r/m8, imm8; xabort imm8
        return reg == 0 || modrm == 0xF8 ? OP_MODRM | OP_IMM8 : SHAPE_INVALID;
    case 0xC7: // mov r/m, imm32; C7 F8 is xbegin rel32 (its abort target is a branch)
        if (reg == 0)
            return OP_MODRM | OP_IMMZ;
        if (modrm == 0xF8 && !p->opsize)
            return OP_MODRM | OP_REL32;
        return SHAPE_INVALID;
    case 0xF6: // test r/m8, imm8 (/0 and its alias /1); not, neg, mul, div: no immediate
        return reg <= 1 ? OP_MODRM | OP_IMM8 : OP_MODRM;
    case 0xF7:
        return reg <= 1 ? OP_MODRM | OP_IMMZ : OP_MODRM;
    case 0xFE: // inc, dec r/m8
        return reg <= 1 ? OP_MODRM : SHAPE_INVALID;
    case 0xFF: // inc, dec, call, callf, jmp, jmpf, push
        if (reg == 7 || ((reg == 3 || reg == 5) && mod == 3))
            return SHAPE_INVALID;
        insn->ends_flow = reg == 4 || reg == 5;
        return OP_MODRM;
    default:
        return SHAPE_INVALID;
    }
}

static bool is_group_opcode(uint8_t op)
{
    return op == 0x8F || op == 0xC6 || op == 0xC7 || op == 0xF6 || op == 0xF7 || op == 0xFE ||
           op == 0xFF;
}

// Finishes an instruction whose (last) opcode byte is at code[at] and whose operand shape is known:
// ModRM, branch displacement, immediate. The length must stay within 15 bytes and avail.
static int finish(const uint8_t *code, size_t avail, size_t at, uint8_t shape,
                  const struct prefixes *p, struct md_insn *insn)
{
    size_t end = at + 1;
    if ((shape & OP_MODRM) && skip_modrm(code, avail, end, &end, &insn->rip_disp_at) < 0)
        return -1;
    // An EIP-relative operand (67 with the RIP form) wraps at 4 GiB; compilers never emit it and
    // a moved copy would not compute the same address.
    if (insn->rip_disp_at && p->addr32)
        return -1;
    if (shape & (OP_REL8 | OP_REL32)) {
        // 66 on a near branch truncates RIP to 16 bits on AMD and is ignored on Intel, and makes
        // E8/E9/0F 8x rel16 on AMD: either way not one meaning.
        if (p->opsize)
            return -1;
        insn->branch_at = (uint8_t)end;
        insn->branch_size = shape & OP_REL8 ? 1 : 4;
        end += insn->branch_size;
    }
    end += immediate_size(shape, p);
    if (end > avail || end > MAX_INSN_LEN)
        return -1;
    insn->len = (uint8_t)end;
    return 0;
}

static bool vex_map1_has_imm8(uint8_t op)
{
    return (op >= 0x70 && op <= 0x73) || op == 0xC2 || op == 0xC4 || op == 0xC5 || op == 0xC6;
}

// VEX (C4: 3 bytes, C5: 2 bytes) and EVEX (62: 4 bytes) prefixed instructions at code[at]. In
// 64-bit mode these bytes are always such prefixes (LES, LDS and BOUND do not exist there). Every
// opcode takes a ModRM except VEX 0F 77 (vzeroupper, vzeroall); map 0F 3A and a few map 0F
// opcodes take an imm8. Legacy 66/F2/F3/F0 or REX before them fault.
static int decode_vex(const uint8_t *code, size_t avail, size_t at, const struct prefixes *p,
                      struct md_insn *insn)
{
    if (p->rex || p->opsize || p->rep || p->repne || p->lock)
        return -1;
    uint8_t kind = code[at];
    size_t prefix_len = kind == 0xC5 ? 2 : kind == 0xC4 ? 3 : 4;
    if (at + prefix_len >= avail)
        return -1;
    unsigned map;
    if (kind == 0xC5) {
        map = MAP_0F;
    } else if (kind == 0xC4) {
        map = code[at + 1] & 0x1F;
    } else {
        // EVEX P0 bit 3 and P1 bit 2 are fixed (0 and 1); maps 5 and 6 (FP16) and APX's map 4
        // are not described here.
        if ((code[at + 1] & 0x08) || !(code[at + 2] & 0x04))
            return -1;
        map = code[at + 1] & 0x07;
    }
    if (map < MAP_0F || map > MAP_0F3A)
        return -1;
    size_t op_at = at + prefix_len;
    uint8_t op = code[op_at];
    uint8_t shape = OP_MODRM;
    if (map == MAP_0F && op == 0x77) {
        if (kind == 0x62) // no EVEX form exists
            return -1;
        shape = 0;
    }
    if (map == MAP_0F3A || (map == MAP_0F && vex_map1_has_imm8(op)))
        shape |= OP_IMM8;
    return finish(code, avail, op_at, shape, p, insn);
}

// The 0F map's opcodes that the table marks special.
static uint8_t two_byte_special_shape(uint8_t op, const struct prefixes *p)
{
    switch (op) {
    case 0x78: // vmread, vmwrite; with 66 or F2 they are SSE4a extrq/insertq with two immediates
    case 0x79:
        return p->opsize || p->repne ? SHAPE_INVALID : OP_MODRM;
    case 0xB8: // popcnt needs F3; without it this is IA-64's jmpe
        return p->rep ? OP_MODRM : SHAPE_INVALID;
    default:
        return SHAPE_INVALID;
    }
}

// An instruction whose first opcode byte 0F is at code[at].
static int decode_0f(const uint8_t *code, size_t avail, size_t at, const struct prefixes *p,
                     struct md_insn *insn)
{
    if (at + 1 >= avail)
        return -1;
    uint8_t op = code[at + 1];
    if (op == 0x38 || op == 0x3A) {
        // The three-byte maps are uniform: every opcode has a ModRM, and 0F 3A an imm8.
        if (at + 2 >= avail)
            return -1;
        return finish(code, avail, at + 2, op == 0x38 ? OP_MODRM : OP_MODRM | OP_IMM8, p, insn);
    }
    uint8_t shape = two_byte_map[op];
    if (shape == OP_SPECIAL)
        shape = two_byte_special_shape(op, p);
    if (shape == SHAPE_INVALID)
        return -1;
    if (op >= 0x80 && op <= 0x8F)
        insn->is_jcc = true;
    insn->ends_flow = op == 0x0B; // ud2
    return finish(code, avail, at + 1, shape, p, insn);
}

static bool one_byte_ends_flow(uint8_t op)
{
    // jmp rel32, jmp rel8, ret imm16, ret, retf imm16, retf, int3, hlt
    return op == 0xE9 || op == 0xEB || op == 0xC2 || op == 0xC3 || op == 0xCA || op == 0xCB ||
           op == 0xCC || op == 0xF4;
}

int md_insn_decode(const uint8_t *code, size_t avail, struct md_insn *insn)
{
    *insn = (struct md_insn){0};
    struct prefixes p = {0};
    size_t at = read_prefixes(code, avail, &p);
    if (at >= avail || at >= MAX_INSN_LEN)
        return -1;
    uint8_t op = code[at];
    if (op == 0x0F)
        return decode_0f(code, avail, at, &p, insn);
    if (op == 0xC4 || op == 0xC5 || op == 0x62)
        return decode_vex(code, avail, at, &p, insn);
    uint8_t shape = one_byte_map[op];
    if (op >= 0xA0 && op <= 0xA3) {
        // mov to or from a 64-bit absolute address (moffs), 32-bit with 67
        size_t end = at + 1 + (p.addr32 ? 4 : 8);
        if (end > avail || end > MAX_INSN_LEN)
            return -1;
        insn->len = (uint8_t)end;
        return 0;
    }
    if (shape == OP_SPECIAL) {
        if (!is_group_opcode(op) || at + 1 >= avail)
            return -1;
        shape = one_byte_group_shape(op, code[at + 1], &p, insn);
        if (shape == SHAPE_INVALID)
            return -1;
    }
    insn->is_call = op == 0xE8;
    insn->is_jcc = (op >= 0x70 && op <= 0x7F) || (op >= 0xE0 && op <= 0xE3);
    insn->ends_flow |= one_byte_ends_flow(op);
    return finish(code, avail, at, shape, &p, insn);
}

// ---- hooks ----

// The rel32 that reaches target from from_end (the end of the instruction holding it); false when
// out of range.
static bool rel32_to(uint64_t from_end, uint64_t target, int32_t *rel)
{
    int64_t d = (int64_t)(target - from_end);
    if (d < INT32_MIN || d > INT32_MAX)
        return false;
    *rel = (int32_t)d;
    return true;
}

static void put_le32(uint8_t *out, int32_t v)
{
    uint32_t u = (uint32_t)v;
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t)(u >> (8 * i));
}

static int32_t get_le32(const uint8_t *in)
{
    uint32_t u = 0;
    for (int i = 0; i < 4; i++)
        u |= (uint32_t)in[i] << (8 * i);
    return (int32_t)u;
}

// The signed displacement of an instruction's relative branch.
static int64_t branch_disp(const uint8_t *code, const struct md_insn *insn)
{
    if (insn->branch_size == 1)
        return (int8_t)code[insn->branch_at];
    return get_le32(code + insn->branch_at);
}

// The opcode byte right before a short branch's displacement.
static uint8_t short_branch_opcode(const uint8_t *code, const struct md_insn *insn)
{
    return code[insn->branch_at - 1];
}

static bool is_loop_or_jrcxz(const uint8_t *code, const struct md_insn *insn)
{
    uint8_t op = short_branch_opcode(code, insn);
    return insn->branch_size == 1 && op >= 0xE0 && op <= 0xE3;
}

// Bytes an instruction takes once moved: short branches become rel32 ones (jmp: E9, 5 bytes;
// jcc: 0F 8x, 6 bytes; their prefixes, only hints in 64-bit mode, are dropped); the rest keep
// their length.
static size_t relocated_len(const uint8_t *code, const struct md_insn *insn)
{
    if (insn->branch_size != 1)
        return insn->len;
    return short_branch_opcode(code, insn) == 0xEB ? 5 : 6;
}

int md_hook_jump(uint8_t *out, uint64_t from, uint64_t to)
{
    int32_t rel;
    if (!rel32_to(from + MD_HOOK_JUMP_LEN, to, &rel))
        return -1;
    out[0] = 0xE9;
    put_le32(out + 1, rel);
    return 0;
}

static int refuse(const char **why, const char *reason, struct md_hook_plan *plan, size_t at)
{
    *why = reason;
    plan->why_at = (uint32_t)at;
    return -1;
}

// The instructions the jump overwrites: whole ones, at least MD_HOOK_JUMP_LEN bytes, all inside
// the function.
static int plan_moved(const uint8_t *code, size_t size, struct md_hook_plan *plan, const char **why)
{
    size_t off = 0;
    while (off < MD_HOOK_JUMP_LEN) {
        if (plan->insn_count == MD_HOOK_MAX_INSNS)
            return refuse(why, "too many instructions under the jump", plan, off);
        struct md_insn *insn = &plan->insns[plan->insn_count];
        if (md_insn_decode(code + off, size - off, insn) < 0)
            return refuse(why, "undecodable instruction under the jump", plan, off);
        if (insn->branch_size && is_loop_or_jrcxz(code + off, insn))
            return refuse(why, "loop or jrcxz under the jump", plan, off);
        plan->trampoline_len += (uint8_t)relocated_len(code + off, insn);
        plan->insn_count++;
        off += insn->len;
    }
    plan->moved_len = (uint8_t)off;
    if (!plan->insns[plan->insn_count - 1].ends_flow)
        plan->trampoline_len += MD_HOOK_JUMP_LEN;
    if (plan->trampoline_len > MD_HOOK_TRAMPOLINE_MAX)
        return refuse(why, "moved instructions too long for a trampoline", plan, 0);
    return 0;
}

// Every instruction of the function: all must decode, and none may branch or point into the bytes
// the jump covers (the entry itself is fine: that is where callers go too).
static int plan_scan(const uint8_t *code, size_t size, struct md_hook_plan *plan, const char **why)
{
    int64_t covered = plan->moved_len;
    for (size_t off = 0; off < size;) {
        struct md_insn insn;
        if (md_insn_decode(code + off, size - off, &insn) < 0)
            return refuse(why, "undecodable instruction in the function", plan, off);
        int64_t end = (int64_t)(off + insn.len);
        if (insn.branch_size) {
            int64_t target = end + branch_disp(code + off, &insn);
            if (target > 0 && target < covered)
                return refuse(why, "a branch lands inside the bytes the jump covers", plan, off);
        }
        if (insn.rip_disp_at) {
            int64_t target = end + get_le32(code + off + insn.rip_disp_at);
            if (target > 0 && target < covered)
                return refuse(why, "an operand points inside the bytes the jump covers", plan, off);
        }
        off += insn.len;
    }
    return 0;
}

int md_hook_plan(const uint8_t *code, size_t size, uint64_t addr, struct md_hook_plan *plan,
                 const char **why)
{
    *plan = (struct md_hook_plan){0};
    *why = NULL;
    if (size < MD_HOOK_JUMP_LEN)
        return refuse(why, "function shorter than the 5-byte jump", plan, 0);
    if (addr + size < addr)
        return refuse(why, "function wraps around the address space", plan, 0);
    if (plan_moved(code, size, plan, why) < 0 || plan_scan(code, size, plan, why) < 0)
        return -1;
    return 0;
}

// Writes one moved instruction (at from, now at to) at out; returns its new length or -1.
static int relocate_one(const uint8_t *code, const struct md_insn *insn, uint64_t from,
                        uint8_t *out, uint64_t to)
{
    int32_t rel;
    if (insn->branch_size == 1) {
        if (is_loop_or_jrcxz(code, insn))
            return -1;
        uint64_t target = from + insn->len + (uint64_t)branch_disp(code, insn);
        uint8_t op = short_branch_opcode(code, insn);
        size_t n = relocated_len(code, insn);
        if (!rel32_to(to + n, target, &rel))
            return -1;
        if (op == 0xEB) {
            out[0] = 0xE9;
        } else {
            out[0] = 0x0F;
            out[1] = (uint8_t)(0x80 | (op & 0x0F));
        }
        put_le32(out + n - 4, rel);
        return (int)n;
    }
    for (size_t i = 0; i < insn->len; i++)
        out[i] = code[i];
    uint8_t field = insn->branch_size == 4 ? insn->branch_at : insn->rip_disp_at;
    if (field) {
        uint64_t target = from + insn->len + (uint64_t)(int64_t)get_le32(code + field);
        if (!rel32_to(to + insn->len, target, &rel))
            return -1;
        put_le32(out + field, rel);
    }
    return insn->len;
}

int md_hook_relocate(const uint8_t *code, uint64_t addr, const struct md_hook_plan *plan,
                     uint8_t *out, uint64_t to_addr)
{
    size_t in = 0, written = 0;
    for (unsigned i = 0; i < plan->insn_count; i++) {
        const struct md_insn *insn = &plan->insns[i];
        if (written + relocated_len(code + in, insn) > MD_HOOK_TRAMPOLINE_MAX)
            return -1;
        int n = relocate_one(code + in, insn, addr + in, out + written, to_addr + written);
        if (n < 0)
            return -1;
        in += insn->len;
        written += (size_t)n;
    }
    if (plan->insn_count == 0 || !plan->insns[plan->insn_count - 1].ends_flow) {
        if (written + MD_HOOK_JUMP_LEN > MD_HOOK_TRAMPOLINE_MAX ||
            md_hook_jump(out + written, to_addr + written, addr + in) < 0)
            return -1;
        written += MD_HOOK_JUMP_LEN;
    }
    return (int)written;
}
