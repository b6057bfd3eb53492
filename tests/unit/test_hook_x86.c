// SPDX-License-Identifier: GPL-3.0-or-later
// alloc/hook_x86: the length decoder against objdump on every function of real static programs
// (built by `make fixtures`) and on hand-written encodings; hook plans, trampolines and jumps
// executed on hand-assembled functions and on a compiled function of this very test.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "alloc/hook_x86.h"
#include "lib/elf_file.h"

// ---- hand-written encodings ----

// TRUNC: a refusal because the bytes end there (decoded with exactly n bytes available; other
// refusals get more valid-looking bytes after them, so a truncation cannot pass for one).
enum { CALL = 1, JCC = 2, ENDS = 4, TRUNC = 8 };

struct decode_case {
    const char *what;
    uint8_t bytes[16];
    size_t n;    // bytes given
    int len;     // expected length, -1 when refused
    uint8_t rip; // expected rip_disp_at
    uint8_t branch_at, branch_size;
    uint8_t flags;
};

#define B(...) {__VA_ARGS__}, sizeof((uint8_t[]){__VA_ARGS__})
#define D4 0x11, 0x22, 0x33, 0x44
#define D8 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x08

static const struct decode_case decode_cases[] = {
    // plain, prefixes, REX
    {"nop", B(0x90), 1, 0, 0, 0, 0},
    {"push rbp", B(0x55), 1, 0, 0, 0, 0},
    {"push r15", B(0x41, 0x57), 2, 0, 0, 0, 0},
    {"mov rbp,rsp", B(0x48, 0x89, 0xE5), 3, 0, 0, 0, 0},
    {"xchg ax,ax", B(0x66, 0x90), 2, 0, 0, 0, 0},
    {"rep stosb", B(0xF3, 0xAA), 2, 0, 0, 0, 0},
    {"fs mov rax,[0]", B(0x64, 0x48, 0x8B, 0x04, 0x25, 0, 0, 0, 0), 9, 0, 0, 0, 0},
    // objdump stops at 14 prefixes; the CPU runs this as one 15-byte instruction
    {"14 prefixes + nop = 15",
     B(0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x90),
     15, 0, 0, 0, 0},
    // ModRM, SIB, displacements
    {"mov rax,[rip+d]", B(0x48, 0x8B, 0x05, D4), 7, 3, 0, 0, 0},
    {"mov eax,[rip+d] with REX.B", B(0x41, 0x8B, 0x05, D4), 7, 3, 0, 0, 0},
    {"mov rax,[abs32] (SIB, no base)", B(0x48, 0x8B, 0x04, 0x25, D4), 8, 0, 0, 0, 0},
    {"mov eax,[rax*1+d32] (SIB base 101 mod 00)", B(0x8B, 0x04, 0x05, D4), 7, 0, 0, 0, 0},
    {"mov eax,[r13*1+d32]", B(0x42, 0x8B, 0x04, 0x2D, D4), 8, 0, 0, 0, 0},
    {"mov eax,[rbp+rax+d8] (SIB base 101 mod 01)", B(0x8B, 0x44, 0x05, 0x00), 4, 0, 0, 0, 0},
    {"mov rax,[rsp+8]", B(0x48, 0x8B, 0x44, 0x24, 0x08), 5, 0, 0, 0, 0},
    {"mov rax,[rsp+d32]", B(0x48, 0x8B, 0x84, 0x24, D4), 8, 0, 0, 0, 0},
    {"mov r13,[rbp+0]", B(0x4C, 0x8B, 0x6D, 0x00), 4, 0, 0, 0, 0},
    {"mov rax,[r13+0]", B(0x49, 0x8B, 0x45, 0x00), 4, 0, 0, 0, 0},
    {"mov eax,[r12]", B(0x41, 0x8B, 0x04, 0x24), 4, 0, 0, 0, 0},
    {"mov rax,[rdi+d32]", B(0x48, 0x8B, 0x87, D4), 7, 0, 0, 0, 0},
    {"mov eax,[ebx] (67)", B(0x67, 0x8B, 0x03), 3, 0, 0, 0, 0},
    {"mov eax,[esp+8] (67)", B(0x67, 0x8B, 0x44, 0x24, 0x08), 5, 0, 0, 0, 0},
    {"lea rax,[rdi+rdi]", B(0x48, 0x8D, 0x04, 0x3F), 4, 0, 0, 0, 0},
    // immediates
    {"add al,imm8", B(0x04, 0x7F), 2, 0, 0, 0, 0},
    {"add eax,imm32", B(0x05, D4), 5, 0, 0, 0, 0},
    {"add ax,imm16", B(0x66, 0x05, 0x34, 0x12), 4, 0, 0, 0, 0},
    {"add rax,imm32", B(0x48, 0x05, D4), 6, 0, 0, 0, 0},
    {"66 REX.W add: REX.W wins, imm32", B(0x66, 0x48, 0x05, D4), 7, 0, 0, 0, 0},
    {"REX.W then 66: REX ignored, imm16 (objdump splits it; the CPU does not)",
     B(0x48, 0x66, 0x05, 0x34, 0x12), 5, 0, 0, 0, 0},
    {"add edi,imm32", B(0x81, 0xC7, D4), 6, 0, 0, 0, 0},
    {"add di,imm16", B(0x66, 0x81, 0xC7, 0x00, 0x01), 5, 0, 0, 0, 0},
    {"add esp,imm8", B(0x83, 0xC4, 0x08), 3, 0, 0, 0, 0},
    {"sub rsp,imm32", B(0x48, 0x81, 0xEC, D4), 7, 0, 0, 0, 0},
    {"cmp byte [rip+d],imm8", B(0x80, 0x3D, D4, 0x00), 7, 2, 0, 0, 0},
    {"mov qword [rip+d],imm32", B(0x48, 0xC7, 0x05, D4, 1, 0, 0, 0), 11, 3, 0, 0, 0},
    {"mov dword [rsp+8],imm32", B(0xC7, 0x44, 0x24, 0x08, D4), 8, 0, 0, 0, 0},
    {"mov word [rsp+8],imm16", B(0x66, 0xC7, 0x44, 0x24, 0x08, 1, 0), 7, 0, 0, 0, 0},
    {"mov byte [rbp-16],imm8", B(0xC6, 0x45, 0xF0, 0x01), 4, 0, 0, 0, 0},
    {"mov eax,imm32", B(0xB8, D4), 5, 0, 0, 0, 0},
    {"mov ax,imm16", B(0x66, 0xB8, 0x01, 0x00), 4, 0, 0, 0, 0},
    {"movabs rax,imm64", B(0x48, 0xB8, D8), 10, 0, 0, 0, 0},
    {"mov r10d,imm32", B(0x41, 0xBA, D4), 6, 0, 0, 0, 0},
    {"movabs r10,imm64", B(0x49, 0xBA, D8), 10, 0, 0, 0, 0},
    {"mov al,imm8", B(0xB0, 0x01), 2, 0, 0, 0, 0},
    {"push imm32", B(0x68, D4), 5, 0, 0, 0, 0},
    {"push imm16", B(0x66, 0x68, 0x00, 0x01), 4, 0, 0, 0, 0},
    {"push imm8", B(0x6A, 0x01), 2, 0, 0, 0, 0},
    {"imul eax,eax,imm32", B(0x69, 0xC0, D4), 6, 0, 0, 0, 0},
    {"imul eax,eax,imm8", B(0x6B, 0xC0, 0x10), 3, 0, 0, 0, 0},
    {"mov al,[moffs64]", B(0xA0, D8), 9, 0, 0, 0, 0},
    {"mov rax,[moffs64]", B(0x48, 0xA1, D8), 10, 0, 0, 0, 0},
    {"mov [moffs32],al (67)", B(0x67, 0xA2, D4), 6, 0, 0, 0, 0},
    {"test cl,imm8 (F6 /0)", B(0xF6, 0xC1, 0x01), 3, 0, 0, 0, 0},
    {"test cl,imm8 (F6 /1 alias)", B(0xF6, 0xC9, 0x01), 3, 0, 0, 0, 0},
    {"neg al (F6 /3)", B(0xF6, 0xD8), 2, 0, 0, 0, 0},
    {"test edi,imm32", B(0xF7, 0xC7, D4), 6, 0, 0, 0, 0},
    {"test di,imm16", B(0x66, 0xF7, 0xC7, 0x01, 0x00), 5, 0, 0, 0, 0},
    {"test qword [rip+d],imm32", B(0x48, 0xF7, 0x05, D4, D4), 11, 3, 0, 0, 0},
    {"div rcx", B(0x48, 0xF7, 0xF1), 3, 0, 0, 0, 0},
    {"enter imm16,imm8", B(0xC8, 0x10, 0x00, 0x00), 4, 0, 0, 0, 0},
    {"shl al,imm8", B(0xC0, 0xE0, 0x04), 3, 0, 0, 0, 0},
    {"shr eax,1", B(0xD1, 0xE8), 2, 0, 0, 0, 0},
    {"int 0x80", B(0xCD, 0x80), 2, 0, 0, 0, 0},
    {"fld qword [rsp+8]", B(0xDD, 0x44, 0x24, 0x08), 4, 0, 0, 0, 0},
    {"pop qword [rax]", B(0x8F, 0x00), 2, 0, 0, 0, 0},
    {"inc byte [rax]", B(0xFE, 0x00), 2, 0, 0, 0, 0},
    {"xabort imm8", B(0xC6, 0xF8, 0x01), 3, 0, 0, 0, 0},
    // 0F map
    {"nop dword [rax+rax+0]", B(0x0F, 0x1F, 0x44, 0x00, 0x00), 5, 0, 0, 0, 0},
    {"nop dword [rax+d32]", B(0x0F, 0x1F, 0x80, D4), 7, 0, 0, 0, 0},
    {"cs nopw (10 bytes)", B(0x66, 0x2E, 0x0F, 0x1F, 0x84, 0x00, D4), 10, 0, 0, 0, 0},
    {"data16 cs nopw (11 bytes)", B(0x66, 0x66, 0x2E, 0x0F, 0x1F, 0x84, 0x00, D4), 11, 0, 0, 0, 0},
    {"endbr64", B(0xF3, 0x0F, 0x1E, 0xFA), 4, 0, 0, 0, 0},
    {"syscall", B(0x0F, 0x05), 2, 0, 0, 0, 0},
    {"rdtsc", B(0x0F, 0x31), 2, 0, 0, 0, 0},
    {"cpuid", B(0x0F, 0xA2), 2, 0, 0, 0, 0},
    {"xgetbv", B(0x0F, 0x01, 0xD0), 3, 0, 0, 0, 0},
    {"cmove eax,ecx", B(0x0F, 0x44, 0xC1), 3, 0, 0, 0, 0},
    {"sete al", B(0x0F, 0x94, 0xC0), 3, 0, 0, 0, 0},
    {"movzx eax,al", B(0x0F, 0xB6, 0xC0), 3, 0, 0, 0, 0},
    {"movsx rax,al", B(0x48, 0x0F, 0xBE, 0xC0), 4, 0, 0, 0, 0},
    {"bt eax,imm8", B(0x0F, 0xBA, 0xE0, 0x03), 4, 0, 0, 0, 0},
    {"bts [rdi],eax", B(0x0F, 0xAB, 0x07), 3, 0, 0, 0, 0},
    {"bsf eax,ecx", B(0x0F, 0xBC, 0xC1), 3, 0, 0, 0, 0},
    {"bsr rax,[rip+d]", B(0x48, 0x0F, 0xBD, 0x05, D4), 8, 4, 0, 0, 0},
    {"shld edx,eax,imm8", B(0x0F, 0xA4, 0xC2, 0x04), 4, 0, 0, 0, 0},
    {"shrd edx,eax,cl", B(0x0F, 0xAD, 0xC2), 3, 0, 0, 0, 0},
    {"popcnt eax,edi", B(0xF3, 0x0F, 0xB8, 0xC7), 4, 0, 0, 0, 0},
    {"tzcnt rax,rdi", B(0xF3, 0x48, 0x0F, 0xBC, 0xC7), 5, 0, 0, 0, 0},
    {"lzcnt rax,rdi", B(0xF3, 0x48, 0x0F, 0xBD, 0xC7), 5, 0, 0, 0, 0},
    {"lock xadd [rdi],rax", B(0xF0, 0x48, 0x0F, 0xC1, 0x07), 5, 0, 0, 0, 0},
    {"lock cmpxchg [rdi],rdx", B(0xF0, 0x48, 0x0F, 0xB1, 0x17), 5, 0, 0, 0, 0},
    {"lock cmpxchg16b [rdi]", B(0xF0, 0x48, 0x0F, 0xC7, 0x0F), 5, 0, 0, 0, 0},
    {"rdrand eax", B(0x0F, 0xC7, 0xF0), 3, 0, 0, 0, 0},
    {"prefetcht0 [rdi]", B(0x0F, 0x18, 0x0F), 3, 0, 0, 0, 0},
    {"prefetchw [rdi]", B(0x0F, 0x0D, 0x0F), 3, 0, 0, 0, 0},
    {"mfence", B(0x0F, 0xAE, 0xF0), 3, 0, 0, 0, 0},
    {"bswap rax", B(0x48, 0x0F, 0xC8), 3, 0, 0, 0, 0},
    {"movups xmm0,[rip+d]", B(0x0F, 0x10, 0x05, D4), 7, 3, 0, 0, 0},
    {"movdqa xmm0,[rip+d]", B(0x66, 0x0F, 0x6F, 0x05, D4), 8, 4, 0, 0, 0},
    {"movsd xmm0,[rsp+8]", B(0xF2, 0x0F, 0x10, 0x44, 0x24, 0x08), 6, 0, 0, 0, 0},
    {"pshufd xmm0,xmm1,imm8", B(0x66, 0x0F, 0x70, 0xC1, 0x1B), 5, 0, 0, 0, 0},
    {"psrldq xmm0,imm8", B(0x66, 0x0F, 0x73, 0xD8, 0x08), 5, 0, 0, 0, 0},
    {"pinsrw xmm0,eax,imm8", B(0x66, 0x0F, 0xC4, 0xC0, 0x01), 5, 0, 0, 0, 0},
    {"shufps xmm0,[rip+d],imm8", B(0x0F, 0xC6, 0x05, D4, 0x1B), 8, 3, 0, 0, 0},
    {"pshufb xmm0,xmm1 (0F 38)", B(0x66, 0x0F, 0x38, 0x00, 0xC1), 5, 0, 0, 0, 0},
    {"crc32 eax,byte [rdi] (0F 38)", B(0xF2, 0x0F, 0x38, 0xF0, 0x07), 5, 0, 0, 0, 0},
    {"palignr xmm0,xmm1,imm8 (0F 3A)", B(0x66, 0x0F, 0x3A, 0x0F, 0xC1, 0x08), 6, 0, 0, 0, 0},
    {"pcmpistri xmm0,[rip+d],imm8", B(0x66, 0x0F, 0x3A, 0x63, 0x05, D4, 0x1A), 10, 5, 0, 0, 0},
    {"ud2", B(0x0F, 0x0B), 2, 0, 0, 0, ENDS},
    // VEX
    {"vzeroupper (no ModRM)", B(0xC5, 0xF8, 0x77), 3, 0, 0, 0, 0},
    {"vmovdqa ymm0,[rdi]", B(0xC5, 0xFD, 0x6F, 0x07), 4, 0, 0, 0, 0},
    {"vmovdqa ymm0,[rip+d]", B(0xC5, 0xFD, 0x6F, 0x05, D4), 8, 4, 0, 0, 0},
    {"vpshufd xmm0,xmm1,imm8 (C5 map 0F imm)", B(0xC5, 0xF9, 0x70, 0xC1, 0x1B), 5, 0, 0, 0, 0},
    {"vmovdqu xmm0,[r12] (C4 map 0F)", B(0xC4, 0xC1, 0x7A, 0x6F, 0x04, 0x24), 6, 0, 0, 0, 0},
    {"vpshufb ymm0,ymm0,ymm1 (map 0F38)", B(0xC4, 0xE2, 0x7D, 0x00, 0xC1), 5, 0, 0, 0, 0},
    {"shlx rax,rdi,rax (map 0F38)", B(0xC4, 0xE2, 0xF9, 0xF7, 0xC7), 5, 0, 0, 0, 0},
    {"vpalignr (map 0F3A imm8)", B(0xC4, 0xE3, 0x7D, 0x0F, 0xC1, 0x08), 6, 0, 0, 0, 0},
    {"vcmpps ymm0,ymm1,[rdi],imm8 (map 0F imm)", B(0xC5, 0xF4, 0xC2, 0x07, 0x01), 5, 0, 0, 0, 0},
    {"vpinsrw xmm0,xmm0,eax,imm8", B(0xC5, 0xF9, 0xC4, 0xC0, 0x01), 5, 0, 0, 0, 0},
    {"vpextrw eax,xmm0,imm8", B(0xC5, 0xF9, 0xC5, 0xC0, 0x01), 5, 0, 0, 0, 0},
    {"vshufps ymm0,ymm1,ymm2,imm8", B(0xC5, 0xF4, 0xC6, 0xC2, 0x1B), 5, 0, 0, 0, 0},
    {"vpsrldq xmm0,xmm1,imm8", B(0xC5, 0xF9, 0x73, 0xD9, 0x08), 5, 0, 0, 0, 0},
    {"vpxor ymm0,ymm0,ymm0 (map 0F, no imm)", B(0xC5, 0xFD, 0xEF, 0xC0), 4, 0, 0, 0, 0},
    {"rorx rax,[rip+d],imm8", B(0xC4, 0xE3, 0xFB, 0xF0, 0x05, D4, 0x05), 10, 5, 0, 0, 0},
    // EVEX
    {"vmovdqa64 zmm0,[rdi]", B(0x62, 0xF1, 0xFD, 0x48, 0x6F, 0x07), 6, 0, 0, 0, 0},
    {"vmovdqa64 zmm0,[rdi+64] (disp8*N)", B(0x62, 0xF1, 0xFD, 0x48, 0x6F, 0x47, 0x01), 7, 0, 0, 0,
     0},
    {"vmovdqa64 zmm0,[rip+d]", B(0x62, 0xF1, 0xFD, 0x48, 0x6F, 0x05, D4), 10, 6, 0, 0, 0},
    {"vpshufd zmm0,zmm1,imm8 (map 0F imm)", B(0x62, 0xF1, 0x7D, 0x48, 0x70, 0xC1, 0x1B), 7, 0, 0, 0,
     0},
    {"vcmpps k1,zmm0,zmm1,imm8 (map 0F imm)", B(0x62, 0xF1, 0x7C, 0x48, 0xC2, 0xC9, 0x01), 7, 0, 0,
     0, 0},
    {"vpternlogd (map 0F3A imm8)", B(0x62, 0xF3, 0x75, 0x48, 0x25, 0xC2, 0x96), 7, 0, 0, 0, 0},
    {"vpcmpeqb k1,zmm0,[rdi+d32] (map 0F)", B(0x62, 0xF1, 0x7D, 0x48, 0x74, 0x8F, D4), 10, 0, 0, 0,
     0},
    {"vpminub (map 0F) with SIB", B(0x62, 0xF1, 0x7D, 0x48, 0xDA, 0x04, 0x24), 7, 0, 0, 0, 0},
    {"vpbroadcastb zmm0,eax (map 0F38)", B(0x62, 0xF2, 0x7D, 0x48, 0x7A, 0xC0), 6, 0, 0, 0, 0},
    // flow
    {"call rel32", B(0xE8, D4), 5, 0, 1, 4, CALL},
    {"jmp rel32", B(0xE9, D4), 5, 0, 1, 4, ENDS},
    {"jmp rel8", B(0xEB, 0x10), 2, 0, 1, 1, ENDS},
    {"je rel8", B(0x74, 0x10), 2, 0, 1, 1, JCC},
    {"jg rel8 with a cs hint", B(0x2E, 0x7F, 0x10), 3, 0, 2, 1, JCC},
    {"je rel32", B(0x0F, 0x84, D4), 6, 0, 2, 4, JCC},
    {"jrcxz", B(0xE3, 0x10), 2, 0, 1, 1, JCC},
    {"jecxz (67)", B(0x67, 0xE3, 0x10), 3, 0, 2, 1, JCC},
    {"loop", B(0xE2, 0xFE), 2, 0, 1, 1, JCC},
    {"bnd jmp rel32", B(0xF2, 0xE9, D4), 6, 0, 2, 4, ENDS},
    {"xbegin rel32", B(0xC7, 0xF8, D4), 6, 0, 2, 4, 0},
    {"ret", B(0xC3), 1, 0, 0, 0, ENDS},
    {"repz ret", B(0xF3, 0xC3), 2, 0, 0, 0, ENDS},
    {"bnd ret", B(0xF2, 0xC3), 2, 0, 0, 0, ENDS},
    {"ret imm16", B(0xC2, 0x08, 0x00), 3, 0, 0, 0, ENDS},
    {"retf", B(0xCB), 1, 0, 0, 0, ENDS},
    {"retf imm16", B(0xCA, 0x10, 0x00), 3, 0, 0, 0, ENDS},
    {"int3", B(0xCC), 1, 0, 0, 0, ENDS},
    {"hlt", B(0xF4), 1, 0, 0, 0, ENDS},
    {"jmp rax", B(0xFF, 0xE0), 2, 0, 0, 0, ENDS},
    {"jmp r11", B(0x41, 0xFF, 0xE3), 3, 0, 0, 0, ENDS},
    {"notrack jmp rax", B(0x3E, 0xFF, 0xE0), 3, 0, 0, 0, ENDS},
    {"jmp [rip+d]", B(0xFF, 0x25, D4), 6, 2, 0, 0, ENDS},
    {"jmp [rax*8+d32]", B(0xFF, 0x24, 0xC5, D4), 7, 0, 0, 0, ENDS},
    {"jmp far [rax]", B(0xFF, 0x28), 2, 0, 0, 0, ENDS},
    {"call rax (not a relative call)", B(0xFF, 0xD0), 2, 0, 0, 0, 0},
    {"call [rip+d]", B(0xFF, 0x15, D4), 6, 2, 0, 0, 0},
    // refused
    {"nothing", {0}, 0, -1, 0, 0, 0, TRUNC},
    {"prefixes only", B(0x66, 0x2E), -1, 0, 0, 0, TRUNC},
    {"15 prefixes + nop = 16",
     B(0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
       0x90),
     -1, 0, 0, 0, 0},
    {"push es", B(0x06), -1, 0, 0, 0, 0},
    {"pop ds", B(0x1F), -1, 0, 0, 0, 0},
    {"daa", B(0x27), -1, 0, 0, 0, 0},
    {"pusha", B(0x60), -1, 0, 0, 0, 0},
    {"82 alias", B(0x82, 0xC0, 0x01), -1, 0, 0, 0, 0},
    {"callf ptr16:32", B(0x9A, D4, 0x00, 0x00), -1, 0, 0, 0, 0},
    {"jmpf ptr16:32", B(0xEA, D4, 0x00, 0x00), -1, 0, 0, 0, 0},
    {"into", B(0xCE), -1, 0, 0, 0, 0},
    {"aam", B(0xD4, 0x0A), -1, 0, 0, 0, 0},
    {"salc", B(0xD6), -1, 0, 0, 0, 0},
    {"XOP (8F /1)", B(0x8F, 0xE9, 0x78, 0xE1, 0xC1), -1, 0, 0, 0, 0},
    {"FE /2", B(0xFE, 0xD0), -1, 0, 0, 0, 0},
    {"FF /7", B(0xFF, 0xF8), -1, 0, 0, 0, 0},
    {"callf with a register", B(0xFF, 0xD8), -1, 0, 0, 0, 0},
    {"C6 /1", B(0xC6, 0xC8, 0x01), -1, 0, 0, 0, 0},
    {"C7 /1", B(0xC7, 0xC8, D4), -1, 0, 0, 0, 0},
    {"0F 04", B(0x0F, 0x04), -1, 0, 0, 0, 0},
    {"3DNow!", B(0x0F, 0x0F, 0xC1, 0xB4), -1, 0, 0, 0, 0},
    {"0F 24", B(0x0F, 0x24, 0xC0), -1, 0, 0, 0, 0},
    {"0F 39", B(0x0F, 0x39, 0xC0), -1, 0, 0, 0, 0},
    {"jmpe (0F B8 without F3)", B(0x0F, 0xB8, D4), -1, 0, 0, 0, 0},
    {"extrq (66 0F 78)", B(0x66, 0x0F, 0x78, 0xC0, 0x01, 0x02), -1, 0, 0, 0, 0},
    {"EIP-relative (67 + RIP form)", B(0x67, 0x8B, 0x05, D4), -1, 0, 0, 0, 0},
    {"66 call rel32", B(0x66, 0xE8, D4), -1, 0, 0, 0, 0},
    {"66 je rel8", B(0x66, 0x74, 0x10), -1, 0, 0, 0, 0},
    {"REX before VEX", B(0x48, 0xC5, 0xF8, 0x77), -1, 0, 0, 0, 0},
    {"66 before VEX", B(0x66, 0xC5, 0xF9, 0x6F, 0xC1), -1, 0, 0, 0, 0},
    {"VEX map 0", B(0xC4, 0xE0, 0x7D, 0x6F, 0xC1), -1, 0, 0, 0, 0},
    {"VEX map 4", B(0xC4, 0xE4, 0x7D, 0x6F, 0xC1), -1, 0, 0, 0, 0},
    {"EVEX with P0 bit 3 set", B(0x62, 0xF9, 0xFD, 0x48, 0x6F, 0x07), -1, 0, 0, 0, 0},
    {"EVEX with P1 bit 2 clear", B(0x62, 0xF1, 0xF9, 0x48, 0x6F, 0x07), -1, 0, 0, 0, 0},
    {"EVEX map 5 (FP16)", B(0x62, 0xF5, 0x7C, 0x48, 0x58, 0xC1), -1, 0, 0, 0, 0},
};

static void check_case(const struct decode_case *c)
{
    struct md_insn insn;
    // Followed by bytes that would be a valid continuation, so a decoder that reads too far would
    // return a different length.
    uint8_t buf[48];
    memset(buf, 0x05, sizeof buf);
    memcpy(buf, c->bytes, c->n);
    int rc = md_insn_decode(buf, c->flags & TRUNC ? c->n : sizeof buf, &insn);
    if (c->len < 0) {
        if (rc != -1)
            fail_msg("%s: decoded as %u bytes, expected a refusal", c->what, insn.len);
        return;
    }
    if (rc != 0)
        fail_msg("%s: refused", c->what);
    if (insn.len != c->len || insn.rip_disp_at != c->rip || insn.branch_at != c->branch_at ||
        insn.branch_size != c->branch_size || insn.is_call != !!(c->flags & CALL) ||
        insn.is_jcc != !!(c->flags & JCC) || insn.ends_flow != !!(c->flags & ENDS))
        fail_msg("%s: len %u rip %u branch %u/%u call %d jcc %d ends %d; expected len %d rip %u "
                 "branch %u/%u flags %u",
                 c->what, insn.len, insn.rip_disp_at, insn.branch_at, insn.branch_size,
                 insn.is_call, insn.is_jcc, insn.ends_flow, c->len, c->rip, c->branch_at,
                 c->branch_size, c->flags);
    // Every truncation of it is refused: the decoder never reads past avail.
    for (size_t avail = 0; avail < (size_t)c->len; avail++) {
        uint8_t *cut = malloc(avail ? avail : 1); // ASan catches a read past avail
        memcpy(cut, c->bytes, avail);
        if (md_insn_decode(cut, avail, &insn) != -1)
            fail_msg("%s: cut to %zu bytes, still decoded (%u bytes)", c->what, avail, insn.len);
        free(cut);
    }
    // And it needs no more than its own bytes.
    uint8_t *exact = malloc((size_t)c->len);
    memcpy(exact, c->bytes, (size_t)c->len);
    assert_int_equal(md_insn_decode(exact, (size_t)c->len, &insn), 0);
    assert_int_equal(insn.len, c->len);
    free(exact);
}

static void hand_written_encodings(void **state)
{
    (void)state;
    size_t refused = 0;
    for (size_t i = 0; i < sizeof decode_cases / sizeof decode_cases[0]; i++) {
        check_case(&decode_cases[i]);
        refused += decode_cases[i].len < 0;
    }
    print_message("%zu encodings, %zu of them refused\n",
                  sizeof decode_cases / sizeof decode_cases[0], refused);
}

// ---- objdump agreement on whole programs ----

struct addr_list {
    uint64_t *v;
    size_t n, cap;
};

static void addr_push(struct addr_list *l, uint64_t a)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 4096;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        assert_non_null(l->v);
    }
    l->v[l->n++] = a;
}

static int addr_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

// The first index whose address is >= a.
static size_t addr_lower_bound(const struct addr_list *l, uint64_t a)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (l->v[mid] < a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

// Every instruction address objdump prints for the file's code ("  401000:\tendbr64").
static void objdump_boundaries(const char *path, struct addr_list *out)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "objdump -d -z -w --no-show-raw-insn '%s'", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[4096];
    while (fgets(line, sizeof line, p)) {
        if (line[0] != ' ')
            continue;
        char *end;
        unsigned long long a = strtoull(line, &end, 16);
        if (end != line && end[0] == ':' && end[1] == '\t')
            addr_push(out, a);
    }
    assert_int_equal(pclose(p), 0);
    qsort(out->v, out->n, sizeof *out->v, addr_cmp);
}

struct func {
    const char *name;
    uint64_t addr, size;
};

struct func_list {
    struct func *v;
    size_t n, cap;
};

static int collect_function(const struct md_sym *sym, void *ctx)
{
    struct func_list *l = ctx;
    if (sym->dynamic || !sym->defined || sym->size == 0 ||
        (sym->type != STT_FUNC && sym->type != STT_GNU_IFUNC))
        return 0;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        assert_non_null(l->v);
    }
    l->v[l->n++] = (struct func){sym->name, sym->value, sym->size};
    return 0;
}

static int func_cmp(const void *a, const void *b)
{
    const struct func *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

// The bytes at [addr, addr + size) from the executable section holding them, or NULL.
static const uint8_t *code_at(struct md_elf *e, uint64_t addr, uint64_t size)
{
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(e->elf, scn))) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_PROGBITS || !(sh.sh_flags & SHF_EXECINSTR))
            continue;
        if (addr < sh.sh_addr || addr + size > sh.sh_addr + sh.sh_size)
            continue;
        Elf_Data *d = elf_getdata(scn, NULL);
        if (!d || d->d_size != sh.sh_size)
            return NULL;
        return (const uint8_t *)d->d_buf + (addr - sh.sh_addr);
    }
    return NULL;
}

// Functions whose whole code must decode (the ones the tracer hooks).
static const char *const hooked_names[] = {"malloc",
                                           "free",
                                           "calloc",
                                           "realloc",
                                           "aligned_alloc",
                                           "posix_memalign",
                                           "__libc_malloc_impl",
                                           "__libc_free",
                                           NULL};

static bool is_hooked_name(const char *name)
{
    for (const char *const *n = hooked_names; *n; n++)
        if (strcmp(*n, name) == 0)
            return true;
    return false;
}

struct agreement {
    size_t functions, refused, insns, hooked_seen;
};

// Decodes one function and compares every boundary with objdump's. Returns false when the decoder
// refused an instruction in it.
static bool agree_on_function(const struct func *f, const uint8_t *code,
                              const struct addr_list *objdump, struct agreement *a)
{
    size_t k = addr_lower_bound(objdump, f->addr);
    for (uint64_t off = 0; off < f->size;) {
        struct md_insn insn;
        if (md_insn_decode(code + off, f->size - off, &insn) < 0) {
            if (a->refused < 10)
                print_message(
                    "  refused: %s at +0x%llx (bytes %02x %02x %02x %02x)\n", f->name,
                    (unsigned long long)off, code[off], off + 1 < f->size ? code[off + 1] : 0,
                    off + 2 < f->size ? code[off + 2] : 0, off + 3 < f->size ? code[off + 3] : 0);
            return false;
        }
        if (k >= objdump->n || objdump->v[k] != f->addr + off)
            fail_msg("%s+0x%llx: the decoder starts an instruction (%u bytes) where objdump has "
                     "none (objdump's next: 0x%llx)",
                     f->name, (unsigned long long)off, insn.len,
                     k < objdump->n ? (unsigned long long)objdump->v[k] : 0ull);
        k++;
        off += insn.len;
        a->insns++;
    }
    // objdump must not have an instruction start in the function that the decoder skipped over:
    // the loop above consumed exactly the starts below the end.
    if (k < objdump->n && objdump->v[k] < f->addr + f->size)
        fail_msg("%s: objdump has an instruction at 0x%llx that the decoder did not", f->name,
                 (unsigned long long)objdump->v[k]);
    return true;
}

static void agree_with_objdump(const char *path, size_t min_functions, size_t min_hooked)
{
    if (access(path, R_OK) != 0)
        fail_msg("%s missing: run `make fixtures` first", path);
    struct addr_list objdump = {0};
    objdump_boundaries(path, &objdump);
    struct md_elf e;
    struct md_error err;
    bool is_archive;
    if (md_elf_open(&e, path, &is_archive, &err))
        fail_msg("%s", err.msg);
    struct func_list funcs = {0};
    bool has_symtab;
    assert_int_equal(md_elf_symbols(&e, collect_function, &funcs, &has_symtab, &err), 0);
    qsort(funcs.v, funcs.n, sizeof *funcs.v, func_cmp);
    struct agreement a = {0};
    char hooked[256] = "";
    bool whole = false;
    for (size_t i = 0; i < funcs.n; i++) {
        const struct func *f = &funcs.v[i];
        // An alias of the previous symbol (glibc's malloc and __libc_malloc) is decoded once.
        bool alias = i > 0 && funcs.v[i - 1].addr == f->addr && funcs.v[i - 1].size == f->size;
        if (!alias) {
            const uint8_t *code = code_at(&e, f->addr, f->size);
            if (!code)
                fail_msg("%s: %s is not inside an executable section", path, f->name);
            a.functions++;
            whole = agree_on_function(f, code, &objdump, &a);
            a.refused += !whole;
        }
        if (is_hooked_name(f->name)) {
            if (!whole)
                fail_msg("%s: %s does not decode", path, f->name);
            a.hooked_seen++;
            snprintf(hooked + strlen(hooked), sizeof hooked - strlen(hooked), " %s", f->name);
        }
    }
    print_message("%s: %zu functions, %zu instructions agree with objdump, %zu functions refused; "
                  "decoded whole:%s\n",
                  path, a.functions, a.insns, a.refused, hooked);
    assert_true(a.functions >= min_functions);
    assert_true(a.hooked_seen >= min_hooked);
    free(funcs.v);
    free(objdump.v);
    md_elf_close(&e);
}

static void agrees_with_objdump_on_musl_static(void **state)
{
    (void)state;
    agree_with_objdump("build/fixtures/musl-static", 50, 4);
}

static void agrees_with_objdump_on_glibc_static(void **state)
{
    (void)state;
    agree_with_objdump("build/fixtures/glibc-static", 500, 7);
}

static void agrees_with_objdump_on_jemalloc_static(void **state)
{
    (void)state;
    agree_with_objdump("build/fixtures/jemalloc-static", 1000, 6);
}

// musl's libc.a, member by member: every function of the C library (the whole mallocng
// allocator, the assembly string functions), in the relocatable form (branch displacements are
// still zero there, which changes no length). objdump prints each member's sections with
// addresses from 0, so its instruction starts are kept per (member, section).
struct objdump_section {
    size_t member; // ordinal of the member in the archive
    char *name;
    struct addr_list addrs;
};

struct objdump_archive {
    struct objdump_section *v;
    size_t n, cap;
    char **member_names;
    size_t members;
};

static void archive_objdump(const char *path, struct objdump_archive *out)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "objdump -d -z -w --no-show-raw-insn '%s'", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[4096];
    struct objdump_section *cur = NULL;
    while (fgets(line, sizeof line, p)) {
        char *format = strstr(line, ":     file format ");
        if (format && line[0] != ' ') {
            *format = 0;
            out->member_names = realloc(out->member_names, (out->members + 1) * sizeof(char *));
            assert_non_null(out->member_names);
            out->member_names[out->members++] = strdup(line);
            cur = NULL;
            continue;
        }
        const char *header = "Disassembly of section ";
        if (strncmp(line, header, strlen(header)) == 0) {
            assert_true(out->members > 0);
            if (out->n == out->cap) {
                out->cap = out->cap ? 2 * out->cap : 1024;
                out->v = realloc(out->v, out->cap * sizeof *out->v);
                assert_non_null(out->v);
            }
            cur = &out->v[out->n++];
            char *name = strdup(line + strlen(header));
            name[strcspn(name, ":\n")] = 0;
            *cur = (struct objdump_section){out->members - 1, name, {0}};
            continue;
        }
        char *end;
        unsigned long long a = strtoull(line, &end, 16);
        if (line[0] == ' ' && end != line && end[0] == ':' && end[1] == '\t') {
            assert_non_null(cur);
            addr_push(&cur->addrs, a);
        }
    }
    assert_int_equal(pclose(p), 0);
}

static const struct addr_list *archive_section(const struct objdump_archive *a, size_t member,
                                               const char *name)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].member == member && strcmp(a->v[i].name, name) == 0)
            return &a->v[i].addrs;
    return NULL;
}

// Checks the functions of one archive member against objdump's listing of it.
static void agree_on_member(struct md_elf *m, size_t ordinal, const struct objdump_archive *od,
                            struct agreement *a, char *hooked, size_t hooked_size)
{
    size_t shstrndx;
    assert_int_equal(elf_getshdrstrndx(m->elf, &shstrndx), 0);
    Elf_Scn *scn = NULL;
    while ((scn = elf_nextscn(m->elf, scn))) {
        GElf_Shdr sh;
        if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_SYMTAB)
            continue;
        Elf_Data *syms = elf_getdata(scn, NULL);
        assert_non_null(syms);
        for (size_t i = 0; i < sh.sh_size / sh.sh_entsize; i++) {
            GElf_Sym sym;
            assert_non_null(gelf_getsym(syms, (int)i, &sym));
            unsigned type = GELF_ST_TYPE(sym.st_info);
            if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_size == 0 ||
                sym.st_shndx == SHN_UNDEF || sym.st_shndx >= SHN_LORESERVE)
                continue;
            Elf_Scn *code_scn = elf_getscn(m->elf, sym.st_shndx);
            GElf_Shdr code_sh;
            assert_non_null(gelf_getshdr(code_scn, &code_sh));
            const char *secname = elf_strptr(m->elf, shstrndx, code_sh.sh_name);
            Elf_Data *d = elf_getdata(code_scn, NULL);
            assert_true(secname && d && sym.st_value + sym.st_size <= d->d_size);
            const struct addr_list *addrs = archive_section(od, ordinal, secname);
            if (!addrs)
                fail_msg("%s: objdump shows no section %s", m->path, secname);
            const char *name = elf_strptr(m->elf, sh.sh_link, sym.st_name);
            struct func f = {name, sym.st_value, sym.st_size};
            a->functions++;
            bool whole = agree_on_function(&f, (const uint8_t *)d->d_buf + sym.st_value, addrs, a);
            a->refused += !whole;
            if (name && is_hooked_name(name)) {
                if (!whole)
                    fail_msg("%s: %s does not decode", m->path, name);
                a->hooked_seen++;
                size_t used = strlen(hooked);
                snprintf(hooked + used, hooked_size - used, " %s", name);
            }
        }
    }
}

static void agrees_with_objdump_on_musl_libc_archive(void **state)
{
    (void)state;
    const char *path = "build/fixtures/libc-musl.a";
    if (access(path, R_OK) != 0)
        fail_msg("%s missing: run `make fixtures` first", path);
    struct objdump_archive od = {0};
    archive_objdump(path, &od);
    struct md_elf ar, m;
    struct md_error err;
    bool is_archive;
    if (md_elf_open(&ar, path, &is_archive, &err))
        fail_msg("%s", err.msg);
    assert_true(is_archive);
    char label[512], hooked[512] = "";
    size_t skipped = 0, ordinal = 0;
    struct agreement a = {0};
    int rc;
    while ((rc = md_archive_next(&ar, &m, label, sizeof label, &skipped, &err)) == 1) {
        // Members are matched by position; their names (not unique: free.lo twice) agree too.
        assert_int_equal(skipped, 0);
        assert_true(ordinal < od.members);
        char expect[512];
        snprintf(expect, sizeof expect, "%s(%s)", path, od.member_names[ordinal]);
        assert_string_equal(label, expect);
        agree_on_member(&m, ordinal, &od, &a, hooked, sizeof hooked);
        md_elf_close(&m);
        ordinal++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(ordinal, od.members);
    print_message("%s: %zu members, %zu functions, %zu instructions agree with objdump, %zu "
                  "functions refused; decoded whole:%s\n",
                  path, ordinal, a.functions, a.insns, a.refused, hooked);
    assert_true(a.functions >= 1000);
    // malloc, free, calloc, realloc, aligned_alloc, posix_memalign, __libc_malloc_impl (lite and
    // mallocng), __libc_free: all present in musl 1.2's libc.a.
    assert_true(a.hooked_seen >= 8);
    for (size_t i = 0; i < od.n; i++) {
        free(od.v[i].name);
        free(od.v[i].addrs.v);
    }
    for (size_t i = 0; i < od.members; i++)
        free(od.member_names[i]);
    free(od.member_names);
    free(od.v);
    md_elf_close(&ar);
}

// ---- plans on the real allocator entry points ----

struct entry_plans {
    struct md_elf *e;
    size_t planned;
    char report[1024];
};

static int plan_entry(const struct md_sym *sym, void *ctx)
{
    struct entry_plans *ep = ctx;
    if (sym->dynamic || !sym->defined || sym->type != STT_FUNC || !is_hooked_name(sym->name))
        return 0;
    const uint8_t *code = code_at(ep->e, sym->value, sym->size);
    assert_non_null(code);
    struct md_hook_plan plan;
    const char *why;
    if (md_hook_plan(code, sym->size, sym->value, &plan, &why) != 0)
        fail_msg("%s: %s: %s (at +0x%x)", ep->e->path, sym->name, why, plan.why_at);
    // A trampoline page 1 GiB below the image, as the loader could place it.
    uint8_t out[MD_HOOK_TRAMPOLINE_MAX];
    uint64_t to = sym->value + 0x40000000u;
    assert_int_equal(md_hook_relocate(code, sym->value, &plan, out, to), plan.trampoline_len);
    ep->planned++;
    size_t used = strlen(ep->report);
    snprintf(ep->report + used, sizeof ep->report - used, " %s(%u insns, %u bytes)", sym->name,
             plan.insn_count, plan.moved_len);
    return 0;
}

static void plans_allocator_entries(const char *path, size_t expected)
{
    struct md_elf e;
    struct md_error err;
    bool is_archive, has_symtab;
    if (md_elf_open(&e, path, &is_archive, &err))
        fail_msg("%s", err.msg);
    struct entry_plans ep = {.e = &e};
    assert_int_equal(md_elf_symbols(&e, plan_entry, &ep, &has_symtab, &err), 0);
    print_message("%s: hooks planned:%s\n", path, ep.report);
    assert_int_equal(ep.planned, expected);
    md_elf_close(&e);
}

static void plans_hooks_on_static_allocators(void **state)
{
    (void)state;
    plans_allocator_entries("build/fixtures/musl-static", 4);
    plans_allocator_entries("build/fixtures/glibc-static", 7);
    plans_allocator_entries("build/fixtures/jemalloc-static", 6);
}

// ---- hooks executed ----

// The hook every test installs: counts, then runs the original through its trampoline.
static long hook_calls;
static long (*hook_original)(long);

static long counting_hook(long x)
{
    hook_calls++;
    return hook_original(x);
}

typedef long (*long_fn)(long);

static long_fn as_fn(const void *code)
{
    long_fn f;
    memcpy(&f, &code, sizeof f);
    return f;
}

// Hand-assembled functions, each at its own offset of a 2 MiB RWX region; their trampolines are
// 1 MiB further (so no moved branch still reaches its target with the old displacement), and
// their jumps go to a jump pad in the region that jumps on to counting_hook (the test binary may be
// more than 2 GiB away).
#define REGION_SIZE (2u << 20)
#define TRAMPOLINES 0x100000u
#define JUMP_PADS 0x1000u
#define DATA 0x300u

// musl's free: test rdi,rdi; je out; ...  f(0) = 42, f(x) = 2x.
#define FREE_LIKE 0x000u
static const uint8_t free_like[] = {
    0x48, 0x85, 0xFF,             // test rdi,rdi
    0x74, 0x05,                   // je +5 (to offset 10)
    0x48, 0x8D, 0x04, 0x3F,       // lea rax,[rdi+rdi]
    0xC3,                         // ret
    0xB8, 0x2A, 0x00, 0x00, 0x00, // mov eax,42
    0xC3,                         // ret
};
// x + 1: the target of the jumps and calls below.
#define PLUS_ONE 0x040u
static const uint8_t plus_one[] = {0x48, 0x8D, 0x47, 0x01, 0xC3}; // lea rax,[rdi+1]; ret
// musl's malloc: jmp __libc_malloc_impl.
#define JMP_ENTRY 0x080u
static const uint8_t jmp_entry[] = {0xE9, 0xBB, 0xFF, 0xFF, 0xFF}; // jmp PLUS_ONE (0x40 - 0x85)
// A RIP-relative load from DATA (which holds 1000) in the first 5 bytes: x + 1000.
#define RIP_LOAD 0x0C0u
static const uint8_t rip_load[] = {
    0x48, 0x8B, 0x05, 0x39, 0x02, 0x00, 0x00, // mov rax,[rip+0x239] (0x300 - 0xC7)
    0x48, 0x01, 0xF8,                         // add rax,rdi
    0xC3,                                     // ret
};
// A call in the moved bytes: its return lands in the trampoline. plus_one(x) + 1.
#define CALL_ENTRY 0x100u
static const uint8_t call_entry[] = {
    0xE8, 0x3B, 0xFF, 0xFF, 0xFF, // call PLUS_ONE (0x40 - 0x105)
    0x48, 0x83, 0xC0, 0x01,       // add rax,1
    0xC3,                         // ret
};
// A short jmp over padding: x + 7.
#define SHORT_JMP 0x140u
static const uint8_t short_jmp[] = {
    0xEB, 0x03,             // jmp +3 (to offset 5)
    0xCC, 0xCC, 0xCC,       // int3 padding
    0x48, 0x8D, 0x47, 0x07, // lea rax,[rdi+7]
    0xC3,                   // ret
};

// A jcc with a branch-hint prefix (its displacement counts from the end of all 3 bytes): f(0) = 99,
// f(x) = x + 2.
#define HINTED_JCC 0x180u
static const uint8_t hinted_jcc[] = {
    0x48, 0x85, 0xFF,             // test rdi,rdi
    0x2E, 0x74, 0x05,             // cs je +5 (to offset 11)
    0x48, 0x8D, 0x47, 0x02,       // lea rax,[rdi+2]
    0xC3,                         // ret
    0xB8, 0x63, 0x00, 0x00, 0x00, // mov eax,99
    0xC3,                         // ret
};

struct region {
    uint8_t *base;
    int pads;
};

static struct region map_region(void)
{
    void *p = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    struct region r = {p, 0};
    memcpy(r.base + FREE_LIKE, free_like, sizeof free_like);
    memcpy(r.base + PLUS_ONE, plus_one, sizeof plus_one);
    memcpy(r.base + JMP_ENTRY, jmp_entry, sizeof jmp_entry);
    memcpy(r.base + RIP_LOAD, rip_load, sizeof rip_load);
    memcpy(r.base + CALL_ENTRY, call_entry, sizeof call_entry);
    memcpy(r.base + SHORT_JMP, short_jmp, sizeof short_jmp);
    memcpy(r.base + HINTED_JCC, hinted_jcc, sizeof hinted_jcc);
    int64_t thousand = 1000;
    memcpy(r.base + DATA, &thousand, sizeof thousand);
    return r;
}

// movabs r11, counting_hook; jmp r11
static uint8_t *write_jump_pad(struct region *r)
{
    uint8_t *pad = r->base + JUMP_PADS + 32 * r->pads++;
    uint64_t target = (uint64_t)(uintptr_t)counting_hook;
    pad[0] = 0x49;
    pad[1] = 0xBB;
    memcpy(pad + 2, &target, 8);
    pad[10] = 0x41;
    pad[11] = 0xFF;
    pad[12] = 0xE3;
    return pad;
}

// Plans, writes the trampoline (at TRAMPOLINES + slot * 64) and the jump; the function at off is
// size bytes long. Returns the trampoline.
static uint8_t *hook(struct region *r, size_t off, size_t size, struct md_hook_plan *plan)
{
    uint8_t *fn = r->base + off;
    const char *why;
    if (md_hook_plan(fn, size, (uint64_t)(uintptr_t)fn, plan, &why) != 0)
        fail_msg("plan at 0x%zx refused: %s", off, why);
    uint8_t *tramp = r->base + TRAMPOLINES + off;
    int n = md_hook_relocate(fn, (uint64_t)(uintptr_t)fn, plan, tramp, (uint64_t)(uintptr_t)tramp);
    assert_int_equal(n, plan->trampoline_len);
    uint8_t *pad = write_jump_pad(r);
    assert_int_equal(md_hook_jump(fn, (uint64_t)(uintptr_t)fn, (uint64_t)(uintptr_t)pad), 0);
    return tramp;
}

static int32_t rel32_at(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

// The hooked function returns the same as before, and the hook ran once per call.
static void expect_hooked_calls(const uint8_t *fn, const uint8_t *tramp, long x, long expect)
{
    hook_original = as_fn(tramp);
    long before = hook_calls;
    assert_int_equal(as_fn(fn)(x), expect);
    assert_int_equal(hook_calls, before + 1);
}

static void hooks_a_jcc_entry(void **state)
{
    (void)state;
    struct region r = map_region();
    uint8_t *fn = r.base + FREE_LIKE;
    assert_int_equal(as_fn(fn)(0), 42);
    assert_int_equal(as_fn(fn)(5), 10);
    struct md_hook_plan plan;
    uint8_t *tramp = hook(&r, FREE_LIKE, sizeof free_like, &plan);
    assert_int_equal(plan.insn_count, 2);
    assert_int_equal(plan.moved_len, 5);
    // test (3) + je widened to 0F 84 rel32 (6) + jmp back (5)
    assert_int_equal(plan.trampoline_len, 14);
    assert_memory_equal(tramp, free_like, 3);
    assert_int_equal(tramp[3], 0x0F);
    assert_int_equal(tramp[4], 0x84);
    assert_true(tramp + 9 + rel32_at(tramp + 5) == fn + 10);
    assert_int_equal(tramp[9], 0xE9);
    assert_true(tramp + 14 + rel32_at(tramp + 10) == fn + 5);
    assert_int_equal(fn[0], 0xE9);         // the entry now jumps to the pad
    expect_hooked_calls(fn, tramp, 0, 42); // je taken, from the trampoline
    expect_hooked_calls(fn, tramp, 5, 10); // not taken: back to the function after the jump

    fn = r.base + HINTED_JCC;
    assert_int_equal(as_fn(fn)(0), 99);
    assert_int_equal(as_fn(fn)(3), 5);
    tramp = hook(&r, HINTED_JCC, sizeof hinted_jcc, &plan);
    assert_int_equal(plan.moved_len, 6);
    assert_int_equal(plan.trampoline_len, 14); // the hint is dropped: 3 + 6 + 5
    assert_true(tramp + 9 + rel32_at(tramp + 5) == fn + 11);
    expect_hooked_calls(fn, tramp, 0, 99);
    expect_hooked_calls(fn, tramp, 3, 5);
    munmap(r.base, REGION_SIZE);
}

static void hooks_a_jmp_entry(void **state)
{
    (void)state;
    struct region r = map_region();
    uint8_t *fn = r.base + JMP_ENTRY;
    assert_int_equal(as_fn(fn)(5), 6);
    struct md_hook_plan plan;
    uint8_t *tramp = hook(&r, JMP_ENTRY, sizeof jmp_entry, &plan);
    assert_int_equal(plan.moved_len, 5);
    assert_int_equal(plan.trampoline_len, 5); // the jmp ends the flow: no jump back
    assert_int_equal(tramp[0], 0xE9);
    assert_true(tramp + 5 + rel32_at(tramp + 1) == r.base + PLUS_ONE);
    expect_hooked_calls(fn, tramp, 5, 6);
    expect_hooked_calls(fn, tramp, -1, 0);
    munmap(r.base, REGION_SIZE);
}

static void hooks_a_rip_relative_load(void **state)
{
    (void)state;
    struct region r = map_region();
    uint8_t *fn = r.base + RIP_LOAD;
    assert_int_equal(as_fn(fn)(5), 1005);
    struct md_hook_plan plan;
    uint8_t *tramp = hook(&r, RIP_LOAD, sizeof rip_load, &plan);
    assert_int_equal(plan.insn_count, 1);
    assert_int_equal(plan.moved_len, 7);
    assert_int_equal(plan.insns[0].rip_disp_at, 3);
    assert_int_equal(plan.trampoline_len, 12);
    assert_true(tramp + 7 + rel32_at(tramp + 3) == r.base + DATA);
    expect_hooked_calls(fn, tramp, 5, 1005);
    int64_t changed = 2000; // the moved load still reads the same slot
    memcpy(r.base + DATA, &changed, sizeof changed);
    expect_hooked_calls(fn, tramp, 5, 2005);
    munmap(r.base, REGION_SIZE);
}

static void hooks_a_call_and_a_short_jmp(void **state)
{
    (void)state;
    struct region r = map_region();
    struct md_hook_plan plan;
    uint8_t *fn = r.base + CALL_ENTRY;
    assert_int_equal(as_fn(fn)(5), 7);
    uint8_t *tramp = hook(&r, CALL_ENTRY, sizeof call_entry, &plan);
    assert_int_equal(plan.trampoline_len, 10); // call rel32 + jmp back
    assert_true(plan.insns[0].is_call);
    expect_hooked_calls(fn, tramp, 5, 7);

    fn = r.base + SHORT_JMP;
    assert_int_equal(as_fn(fn)(5), 12);
    tramp = hook(&r, SHORT_JMP, sizeof short_jmp, &plan);
    // EB widened to E9 (5), then the three int3 (the last one ends the flow: no jump back)
    assert_int_equal(plan.insn_count, 4);
    assert_int_equal(plan.trampoline_len, 8);
    assert_int_equal(tramp[0], 0xE9);
    assert_true(tramp + 5 + rel32_at(tramp + 1) == fn + 5);
    expect_hooked_calls(fn, tramp, 5, 12);
    munmap(r.base, REGION_SIZE);
}

// A compiled function of this test, hooked in place in the test binary (its text made writable
// for the test) with its trampoline mapped within rel32 range, the way the static loader hooks a
// program's own image. Its size comes from the binary's symbol table.
static long __attribute__((noinline, noipa)) scaled_or_marker(long x)
{
    if (!x)
        return -7;
    return x * 3 + 1;
}

struct own_symbol {
    const char *name;
    uint64_t value, size;
};

static int find_own_symbol(const struct md_sym *sym, void *ctx)
{
    struct own_symbol *want = ctx;
    if (sym->dynamic || strcmp(sym->name, want->name) != 0)
        return 0;
    want->value = sym->value;
    want->size = sym->size;
    return 1;
}

// An anonymous page within 1 GiB below or above near, or NULL.
static uint8_t *map_near(const void *near)
{
    uintptr_t page = (uintptr_t)near & ~(uintptr_t)0xFFF;
    for (uintptr_t step = 16u << 20; step < (1u << 30); step += 16u << 20) {
        uintptr_t hints[2] = {page - step, page + step};
        for (int i = 0; i < 2; i++) {
            void *p = mmap((void *)hints[i], 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED)
                continue;
            uintptr_t d = (uintptr_t)p > page ? (uintptr_t)p - page : page - (uintptr_t)p;
            if (d < (1u << 30))
                return p;
            munmap(p, 4096);
        }
    }
    return NULL;
}

static void hooks_a_compiled_function_in_place(void **state)
{
    (void)state;
    struct own_symbol sym = {"scaled_or_marker", 0, 0};
    struct md_elf e;
    struct md_error err;
    bool is_archive, has_symtab;
    if (md_elf_open(&e, "/proc/self/exe", &is_archive, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(md_elf_symbols(&e, find_own_symbol, &sym, &has_symtab, &err), 0);
    md_elf_close(&e);
    assert_true(sym.size >= MD_HOOK_JUMP_LEN);
    long_fn target = scaled_or_marker;
    uint8_t *fn;
    memcpy(&fn, &target, sizeof fn);
    assert_int_equal(target(0), -7);
    assert_int_equal(target(4), 13);

    struct md_hook_plan plan;
    const char *why;
    if (md_hook_plan(fn, sym.size, (uint64_t)(uintptr_t)fn, &plan, &why) != 0)
        fail_msg("scaled_or_marker: %s at +0x%x", why, plan.why_at);
    uint8_t *tramp = map_near(fn);
    assert_non_null(tramp);
    assert_int_equal(
        md_hook_relocate(fn, (uint64_t)(uintptr_t)fn, &plan, tramp, (uint64_t)(uintptr_t)tramp),
        plan.trampoline_len);
    uintptr_t first = (uintptr_t)fn & ~(uintptr_t)0xFFF;
    size_t span = (uintptr_t)fn + MD_HOOK_JUMP_LEN - first;
    assert_int_equal(mprotect((void *)first, span, PROT_READ | PROT_WRITE | PROT_EXEC), 0);
    uint8_t saved[MD_HOOK_JUMP_LEN];
    memcpy(saved, fn, sizeof saved);
    // The hook is in this binary too, in rel32 range: the entry jumps straight to it.
    long_fn hook_fn = counting_hook;
    uint8_t *hook_addr;
    memcpy(&hook_addr, &hook_fn, sizeof hook_addr);
    assert_int_equal(md_hook_jump(fn, (uint64_t)(uintptr_t)fn, (uint64_t)(uintptr_t)hook_addr), 0);
    expect_hooked_calls(fn, tramp, 0, -7);
    expect_hooked_calls(fn, tramp, 4, 13);
    expect_hooked_calls(fn, tramp, -5, -14);
    memcpy(fn, saved, sizeof saved);
    assert_int_equal(mprotect((void *)first, span, PROT_READ | PROT_EXEC), 0);
    long before = hook_calls;
    assert_int_equal(target(4), 13);
    assert_int_equal(hook_calls, before);
    print_message("scaled_or_marker: %u instructions (%u bytes) moved, trampoline %u bytes\n",
                  plan.insn_count, plan.moved_len, plan.trampoline_len);
    munmap(tramp, 4096);
}

// ---- refusals ----

static void expect_refusal(const uint8_t *code, size_t size, const char *reason_part, uint32_t at)
{
    struct md_hook_plan plan;
    const char *why = NULL;
    assert_int_equal(md_hook_plan(code, size, 0x401000, &plan, &why), -1);
    assert_non_null(why);
    if (!strstr(why, reason_part))
        fail_msg("refused with \"%s\", expected \"%s\"", why, reason_part);
    assert_int_equal(plan.why_at, at);
}

static void refuses_what_cannot_move(void **state)
{
    (void)state;
    // Shorter than the jump: it would overwrite the next function.
    expect_refusal((const uint8_t[]){0xC3}, 1, "shorter than the 5-byte jump", 0);
    expect_refusal((const uint8_t[]){0x31, 0xC0, 0xC3, 0x90}, 4, "shorter", 0);
    // A 7-byte load in a 5-byte function runs past its end.
    expect_refusal((const uint8_t[]){0x48, 0x8B, 0x05, 0, 0, 0, 0}, 5, "undecodable", 0);
    // A loop back to offset 2, inside the moved bytes.
    static const uint8_t loop_inside[] = {
        0x31, 0xC0,       // xor eax,eax
        0x48, 0x01, 0xF8, // add rax,rdi (offset 2)
        0x48, 0xFF, 0xCF, // dec rdi
        0x75, 0xF8,       // jnz offset 2 (at 8)
        0xC3,
    };
    expect_refusal(loop_inside, sizeof loop_inside, "branch lands inside", 8);
    // The same loop back to the entry itself is fine.
    static const uint8_t loop_to_entry[] = {
        0x48, 0x01, 0xF8, // add rax,rdi
        0x48, 0xFF, 0xCF, // dec rdi
        0x75, 0xF8,       // jnz offset 0
        0xC3,
    };
    struct md_hook_plan plan;
    const char *why;
    assert_int_equal(md_hook_plan(loop_to_entry, sizeof loop_to_entry, 0x401000, &plan, &why), 0);
    assert_int_equal(plan.moved_len, 6);
    // A rel32 branch far down the function into the moved bytes.
    uint8_t far_branch[300] = {0x48, 0x89, 0xF8, 0x48, 0x01, 0xF8}; // mov rax,rdi; add rax,rdi
    memset(far_branch + 6, 0x90, sizeof far_branch - 6);
    far_branch[280] = 0x0F; // jne to offset 3: 3 - 286
    far_branch[281] = 0x85;
    int32_t rel = 3 - 286;
    memcpy(far_branch + 282, &rel, 4);
    far_branch[299] = 0xC3;
    expect_refusal(far_branch, sizeof far_branch, "branch lands inside", 280);
    // An operand pointing into the moved bytes: lea rax,[rip-5] lands at offset 2.
    expect_refusal((const uint8_t[]){0x48, 0x8D, 0x05, 0xFB, 0xFF, 0xFF, 0xFF, 0xC3}, 8,
                   "points inside", 0);
    // jrcxz under the jump.
    expect_refusal((const uint8_t[]){0xE3, 0x03, 0x48, 0x89, 0xF8, 0xC3}, 6, "loop or jrcxz", 0);
    // Undecodable under the jump, and deep in the function.
    expect_refusal((const uint8_t[]){0xD6, 0x48, 0x89, 0xF8, 0xC3, 0x90}, 6, "under the jump", 0);
    expect_refusal((const uint8_t[]){0x48, 0x89, 0xF8, 0x48, 0x01, 0xF8, 0x90, 0x06, 0xC3}, 9,
                   "undecodable instruction in the function", 7);
    // A function whose last instruction is cut by its symbol size.
    expect_refusal((const uint8_t[]){0x48, 0x89, 0xF8, 0x48, 0x01, 0xF8, 0xE8, 0, 0, 0}, 10,
                   "undecodable instruction in the function", 6);
}

static void relocation_and_jumps_stay_in_rel32_range(void **state)
{
    (void)state;
    struct md_hook_plan plan;
    const char *why;
    uint8_t out[MD_HOOK_TRAMPOLINE_MAX];
    const uint64_t addr = 0x7f0000000000ull, far = 3ull << 30;
    // The RIP-relative load and the jcc are re-aimed at their old targets, which are out of reach
    // 3 GiB away; so is the jump back even when nothing else moves.
    assert_int_equal(md_hook_plan(rip_load, sizeof rip_load, addr, &plan, &why), 0);
    assert_int_equal(md_hook_relocate(rip_load, addr, &plan, out, addr + far), -1);
    assert_int_equal(md_hook_relocate(rip_load, addr, &plan, out, addr - far), -1);
    // 1.5 GiB above: in range, and the displacement is the old target's distance.
    uint64_t to = addr + (3ull << 29);
    assert_int_equal(md_hook_relocate(rip_load, addr, &plan, out, to), 12);
    assert_true(to + 7 + (uint64_t)(int64_t)rel32_at(out + 3) == addr + 7 + 0x239);
    assert_int_equal(md_hook_plan(free_like, sizeof free_like, addr, &plan, &why), 0);
    assert_int_equal(md_hook_relocate(free_like, addr, &plan, out, addr + far), -1);
    static const uint8_t plain[] = {0x48, 0x89, 0xF8, 0x48, 0x01, 0xF8, 0xC3};
    assert_int_equal(md_hook_plan(plain, sizeof plain, addr, &plan, &why), 0);
    assert_int_equal(md_hook_relocate(plain, addr, &plan, out, addr + far), -1);
    assert_int_equal(md_hook_relocate(plain, addr, &plan, out, addr + 4096), 11);
    assert_memory_equal(out, plain, 6);
    assert_true(addr + 4096 + 11 + (uint64_t)(int64_t)rel32_at(out + 7) == addr + 6);
    // The jump's own limits, to the byte.
    uint8_t jmp[MD_HOOK_JUMP_LEN];
    assert_int_equal(md_hook_jump(jmp, addr, addr + 5 + INT32_MAX), 0);
    assert_int_equal(rel32_at(jmp + 1), INT32_MAX);
    assert_int_equal(md_hook_jump(jmp, addr, addr + 5 + INT32_MAX + 1ull), -1);
    assert_int_equal(md_hook_jump(jmp, addr, addr + 5 - 0x80000000ull), 0);
    assert_int_equal(rel32_at(jmp + 1), INT32_MIN);
    assert_int_equal(md_hook_jump(jmp, addr, addr + 5 - 0x80000001ull), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hand_written_encodings),
        cmocka_unit_test(agrees_with_objdump_on_musl_static),
        cmocka_unit_test(agrees_with_objdump_on_glibc_static),
        cmocka_unit_test(agrees_with_objdump_on_jemalloc_static),
        cmocka_unit_test(agrees_with_objdump_on_musl_libc_archive),
        cmocka_unit_test(plans_hooks_on_static_allocators),
        cmocka_unit_test(hooks_a_jcc_entry),
        cmocka_unit_test(hooks_a_jmp_entry),
        cmocka_unit_test(hooks_a_rip_relative_load),
        cmocka_unit_test(hooks_a_call_and_a_short_jmp),
        cmocka_unit_test(hooks_a_compiled_function_in_place),
        cmocka_unit_test(refuses_what_cannot_move),
        cmocka_unit_test(relocation_and_jumps_stay_in_rel32_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
