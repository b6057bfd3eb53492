// SPDX-License-Identifier: GPL-3.0-or-later
// Fuzz target: the x86-64 decoder and hook planner (alloc/hook_x86.c) on arbitrary function
// bytes. The bytes sit in a heap buffer of exactly their length, so a read past the function is
// an ASan report. Whatever the input: every decoded instruction is 1-15 bytes and its fields lie
// inside it; a plan that succeeds covers the jump with whole instructions, and relocating it
// writes exactly trampoline_len bytes (or refuses a target out of rel32 reach).
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc/hook_x86.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_insn(const struct md_insn *in)
{
    if (in->len < 1 || in->len > 15 || in->rip_disp_at + (in->rip_disp_at ? 4 : 0) > in->len ||
        in->branch_at + in->branch_size > in->len ||
        (in->branch_size != 0 && in->branch_size != 1 && in->branch_size != 4))
        abort();
}

static void decode_all(const uint8_t *code, size_t size)
{
    for (size_t at = 0; at < size;) {
        struct md_insn in;
        if (md_insn_decode(code + at, size - at, &in))
            return;
        check_insn(&in);
        if (at + in.len > size)
            abort();
        at += in.len;
    }
}

static void plan_and_relocate(const uint8_t *code, size_t size)
{
    const uint64_t addr = 0x401000;
    struct md_hook_plan plan;
    const char *why = NULL;
    if (md_hook_plan(code, size, addr, &plan, &why)) {
        if (!why || !*why)
            abort(); // a refusal always says why
        return;
    }
    if (plan.moved_len < MD_HOOK_JUMP_LEN || plan.moved_len > size ||
        plan.insn_count > MD_HOOK_MAX_INSNS || plan.trampoline_len > MD_HOOK_TRAMPOLINE_MAX)
        abort();
    size_t covered = 0;
    for (unsigned i = 0; i < plan.insn_count; i++) {
        check_insn(&plan.insns[i]);
        covered += plan.insns[i].len;
    }
    if (covered != plan.moved_len)
        abort();
    uint8_t *out = malloc(MD_HOOK_TRAMPOLINE_MAX);
    if (!out)
        abort();
    // A target may fall out of rel32 reach anywhere, even at the function's own address (a
    // widened short branch moves the instructions after it); when none does, the length is the
    // planned one.
    const uint64_t to[] = {addr, addr + 0x100000, addr + (5ull << 30)};
    for (size_t i = 0; i < sizeof to / sizeof to[0]; i++) {
        int n = md_hook_relocate(code, addr, &plan, out, to[i]);
        if (n != -1 && n != plan.trampoline_len)
            abort();
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *code = malloc(size ? size : 1);
    if (!code)
        abort();
    memcpy(code, data, size);
    decode_all(code, size);
    plan_and_relocate(code, size);
    free(code);
    return 0;
}
