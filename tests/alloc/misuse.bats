#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Misuse detection: double free, free of a pointer mdalloc never returned, free of an interior
# pointer, through free, realloc, free_sized, free_aligned_sized and malloc_usable_size, locally
# and across threads. Each case runs in a child process that must die by SIGABRT after printing
# exactly "mdalloc: <call>(): <problem>: <pointer>" (tests/alloc/misuse.c checks both); the
# "valid" case frees every size class, large, huge and over-aligned blocks and must stay silent.
load helpers

CASES=33 # 32 misuses + valid

misuse_all() {
    run_with "$1" misuse all
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"ok valid"* ]]
    [[ "$output" == *"ok $CASES cases" ]]
}

@test "misuse glibc preload: every misuse aborts with its message, valid frees pass" { misuse_all glibc; }
@test "misuse musl preload: every misuse aborts with its message, valid frees pass" { misuse_all musl; }
@test "misuse static musl with embedded mdalloc: every misuse aborts with its message" { misuse_all static; }
@test "misuse static glibc with mdalloc's glibc archive: every misuse aborts with its message" { misuse_all gstatic; }
@test "misuse debug build: the same messages (the debug checks do not get in the way)" { misuse_all debug; }

@test "misuse: what the user sees: one line on stderr, then SIGABRT (exit 134)" {
    for flavor in glibc musl static; do
        run_with "$flavor" misuse --raw double-free
        echo "$flavor: $status: $output"
        [ "$status" -eq 134 ]
        [[ "$output" =~ ^"mdalloc: free(): double free: 0x"[0-9a-f]+$ ]]
        run_with "$flavor" misuse --raw free-stack
        [ "$status" -eq 134 ]
        [[ "$output" =~ ^"mdalloc: free(): pointer not allocated by mdalloc: 0x"[0-9a-f]+$ ]]
        run_with "$flavor" misuse --raw realloc-interior
        [ "$status" -eq 134 ]
        [[ "$output" =~ ^"mdalloc: realloc(): interior pointer (not the start of a block): 0x"[0-9a-f]+$ ]]
    done
}

@test "misuse: the cases fail without mdalloc's checks (glibc's malloc, the test can fail)" {
    run "$MDA_TESTS/glibc/misuse" all
    echo "$output"
    [ "$status" -eq 1 ]
    [[ "$output" == *"FAIL double-free:"* ]]
    [[ "$output" == *"FAIL free-interior:"* ]]
}

@test "debug build catches a write after free when the block is handed out again" {
    run_with debug misuse debug-write-after-free
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "ok debug-write-after-free" ]
}

@test "debug build catches a corrupted free-list link" {
    run_with debug misuse debug-corrupt-free-list
    echo "$output"
    [ "$status" -eq 0 ]
    [ "${lines[0]}" = "ok debug-corrupt-free-list" ]
}

@test "release build: free-block damage is a debug-build check only" {
    run_with glibc misuse debug-write-after-free
    echo "$output"
    [ "$status" -eq 1 ]
    [[ "$output" == *"FAIL debug-write-after-free: exit 97"* ]]
}
