// SPDX-License-Identifier: GPL-3.0-or-later
// Recognising return addresses in a copy of a thread's stack, for call stacks through code built
// without frame pointers (Debian's glibc, musl's libc.a) where the kernel's frame-pointer walk
// stops after one or two frames.
//
// A stack word is taken for a return address when it points into a function of an executable
// mapping and the bytes just before it in the file are a call instruction (x86-64: call rel32,
// or call through a register or memory operand). This is a scan, not an unwind: a return address
// left in a slot that a function reserved but did not overwrite looks the same. Such stale frames
// are dropped when the call is direct and provably cannot lead to the next inner frame (its
// callee neither is that function nor jumps to it, over up to two tail jumps); indirect calls,
// calls through the PLT and callees with an indirect jump cannot be checked and are kept. A frame
// whose return address is beyond the copied bytes is missing.
#ifndef MD_STACK_SCAN_H
#define MD_STACK_SCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/symbolize.h"

// Whether file offset `offset` of the ELF file t follows a call instruction.
bool md_follows_call(const struct md_symtab *t, uint64_t offset);

// Whether the call that returns to file offset ret_offset of t can have entered function inner
// of file inner_t (the next inner frame); false only when that is impossible (see above).
bool md_call_can_reach(const struct md_symtab *t, uint64_t ret_offset,
                       const struct md_symtab *inner_t, const struct md_func_sym *inner);
// The same, told apart: MD_REACH_SURELY when the call provably enters inner (a direct call to it,
// or to a function that jumps to it over up to two tail jumps), MD_REACH_MAYBE when it cannot be
// told (an indirect call, the PLT, an indirect jump, unreadable code).
enum md_reach { MD_REACH_NO, MD_REACH_SURELY, MD_REACH_MAYBE };
enum md_reach md_call_reach(const struct md_symtab *t, uint64_t ret_offset,
                            const struct md_symtab *inner_t, const struct md_func_sym *inner);

// Whether function f of t sets up a frame pointer on entry (x86-64: push %rbp; mov %rsp,%rbp,
// after an optional endbr64). A function that does not hides its caller from a frame-pointer
// walk. Without a decoder, or when the bytes cannot be read: true (nothing to repair).
bool md_keeps_frame_pointer(const struct md_symtab *t, const struct md_func_sym *f);

#endif
