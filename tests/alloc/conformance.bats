#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# API conformance of every mdalloc build: errno, alignment, overflow, zero sizes, usable size.
load helpers

check_group() {
    run_with "$1" conformance "$2"
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = ok ]
}

@test "conformance: each build announces itself with MDALLOC_VERBOSE=1" {
    for flavor in glibc debug musl static gstatic; do
        expect_banner "$flavor" conformance
    done
}

@test "conformance: without MDALLOC_VERBOSE nothing is printed" {
    run_with glibc conformance zero
    [ "$status" -eq 0 ]
    [ "$output" = ok ]
}

@test "conformance: on/off options take yes/true/on, a bad value is reported, not silently ignored" {
    MDALLOC_VERBOSE=yes MDALLOC_STATS=On run_with glibc conformance zero
    [ "$status" -eq 0 ]
    [[ "$output" == *"cache_segments=128 stats=1"* ]]
    [[ "$output" == *"mdalloc: stats: mmap_calls "* ]]
    MDALLOC_VERBOSE=1 MDALLOC_STATS=maybe MDALLOC_PURGE_DELAY=5ms run_with static conformance zero
    [ "$status" -eq 0 ]
    [[ "$output" == *"MDALLOC_STATS=maybe: not 1/yes/true/on or 0/no/false/off, ignored"* ]]
    [[ "$output" == *"MDALLOC_PURGE_DELAY=5ms: not a number, ignored"* ]]
    [[ "$output" == *"purge_delay_ms=5..1000 cache_segments=128 stats=0"* ]]
}

@test "conformance: MDALLOC_CACHE_SEGMENTS above the cache's slots is clamped with a warning" {
    MDALLOC_VERBOSE=1 MDALLOC_CACHE_SEGMENTS=100000 run_with glibc conformance zero
    [ "$status" -eq 0 ]
    [[ "$output" == *"MDALLOC_CACHE_SEGMENTS=100000: too large, using the maximum 256"* ]]
    [[ "$output" == *"cache_segments=256 "* ]]
    MDALLOC_VERBOSE=1 MDALLOC_CACHE_SEGMENTS=0 run_with glibc conformance zero
    [[ "$output" == *"cache_segments=0 "* ]]
}

@test "conformance: the checks fail without mdalloc (they can fail)" {
    run "$MDA_TESTS/glibc/conformance" zero
    [ "$status" -ne 0 ]
    [[ "$output" == *"FAIL"*"free_sized"* ]]
}

@test "conformance glibc: zero sizes" { check_group glibc zero; }
@test "conformance glibc: errno and overflow" { check_group glibc errno; }
@test "conformance glibc: alignment 1 B .. 1 GiB" { check_group glibc align; }
@test "conformance glibc: usable size and class waste" { check_group glibc usable; }
@test "conformance glibc: calloc zeroes, realloc keeps data" { check_group glibc calloc_realloc; }
@test "conformance glibc: distinct blocks" { check_group glibc distinct; }

@test "conformance debug build: all groups" { check_group debug all; }
@test "conformance musl preload: all groups" { check_group musl all; }
@test "conformance static musl with embedded mdalloc: all groups" { check_group static all; }
@test "conformance static glibc with mdalloc's glibc archive: all groups" { check_group gstatic all; }
