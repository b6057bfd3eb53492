// SPDX-License-Identifier: MIT
// Hooking a function of a static x86-64 program at its entry: the first instructions are replaced
// by a 5-byte jump, and moved, adjusted, to a trampoline that runs them and jumps back.
//
// Used twice: by the tool, which plans each hook on the executable's bytes before it runs the
// program (so it can fall back to uprobes with a reason), and by the static probe
// (alloc/probe_static.c), which plans again on the mapped image and writes the trampolines. So
// this file is freestanding: no libc calls, no allocation, no globals.
#ifndef MD_HOOK_X86_H
#define MD_HOOK_X86_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// The jump written over a function's entry: E9 rel32.
#define MD_HOOK_JUMP_LEN 5
// Room a relocated entry needs in a trampoline: the moved instructions (each may grow, e.g. a
// 2-byte jcc becomes 6 bytes) plus the 5-byte jump back.
#define MD_HOOK_TRAMPOLINE_MAX 64
// At most this many instructions are moved.
#define MD_HOOK_MAX_INSNS 8

// One decoded instruction.
struct md_insn {
    uint8_t len;         // its length in bytes
    uint8_t rip_disp_at; // offset of a RIP-relative disp32 (ModRM mod=00 rm=101), 0 when none
    uint8_t branch_at;   // offset of a relative branch's displacement (also xbegin's), 0 when none
    uint8_t branch_size; // 1 or 4: that displacement's size, 0 when none
    bool is_call;        // E8 rel32
    bool is_jcc;         // a conditional branch (70-7F, 0F 80-8F) or loop/jrcxz (E0-E3)
    bool ends_flow;      // jmp, ret, ud2, int3, hlt: nothing after it runs in sequence
};

// Decodes the instruction at code (avail bytes readable). Returns 0, or -1 when it is truncated
// or not understood (the caller then refuses to hook: never guess a length).
int md_insn_decode(const uint8_t *code, size_t avail, struct md_insn *insn);

// How one function's entry is hooked.
struct md_hook_plan {
    uint8_t moved_len;      // bytes of whole instructions the jump covers (>= MD_HOOK_JUMP_LEN)
    uint8_t insn_count;     // how many instructions that is
    uint8_t trampoline_len; // bytes md_hook_relocate writes
    struct md_insn insns[MD_HOOK_MAX_INSNS];
    uint32_t why_at; // on refusal: offset from the entry of the instruction the reason is about
};

// Plans the hook of the function whose code (size bytes, from its symbol) is loaded at address
// addr. Fails with a reason (a static string; plan->why_at then holds the offset it is about)
// when the function is shorter than the jump (the jump would overwrite the next function), an
// instruction in it cannot be decoded or runs past size, a relative branch or a RIP-relative
// operand anywhere in the function lands inside the bytes the jump covers (other than at the
// entry itself), since that code moves away, or a loop/jrcxz (rel8 only) would have to move. A
// function that is just a jmp rel32 (musl's `malloc: jmp __libc_malloc_impl`) is fine: the jump
// is moved and its target adjusted.
int md_hook_plan(const uint8_t *code, size_t size, uint64_t addr, struct md_hook_plan *plan,
                 const char **why);

// Writes the trampoline for a plan: the moved instructions, adjusted for their new address
// to_addr (RIP-relative displacements and relative branches re-aimed at the same targets; short
// branches widened to rel32), then a jmp back to addr + moved_len unless the last moved
// instruction ends the flow. out has MD_HOOK_TRAMPOLINE_MAX bytes. Returns the length written, or
// -1 when a target is out of rel32 range of to_addr.
int md_hook_relocate(const uint8_t *code, uint64_t addr, const struct md_hook_plan *plan,
                     uint8_t *out, uint64_t to_addr);

// Writes the 5-byte jump from `from` to `to` at out; -1 when out of rel32 range.
int md_hook_jump(uint8_t *out, uint64_t from, uint64_t to);

#endif
