#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Randomized multithreaded stress (pattern-checked blocks, cross-thread frees, thread churn),
# fork from a multithreaded process, and bounded memory under thread create/exit churn.
load helpers

stress() {
    run_with "$1" stress 4 3 15000 "$2"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == "ok 4 threads x 3 waves x 15000 ops" ]]
}

@test "stress glibc preload" { stress glibc 1; }
@test "stress glibc preload, second seed" { stress glibc 77; }
@test "stress debug build (internal checks on)" { stress debug 5; }

# The debug build checks free lists, fill patterns, page and segment accounting and heap ownership
# as it goes (alloc/README.md, "Debug build"); more threads than cores make cross-thread frees,
# full pages and thread exits interleave in more ways.
@test "stress debug build, 8 threads x 2 waves (internal checks on)" {
    run_with debug stress 8 2 10000 23
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == "ok 8 threads x 2 waves x 10000 ops" ]]
}
@test "stress musl preload" { stress musl 9; }
@test "stress static musl with embedded mdalloc" { stress static 13; }
@test "stress static glibc with mdalloc's glibc archive" { stress gstatic 17; }

@test "stress: the static program really uses mdalloc, not musl's malloc" {
    run nm "$MDA_TESTS/static/stress"
    [ "$status" -eq 0 ]
    [[ "$output" == *" md_malloc_generic"* ]]
    [[ "$output" != *"__malloc_context"* ]] # musl mallocng's state
    run nm "$MDA_TESTS/static-plain/stress"
    [[ "$output" == *"__malloc_context"* ]]
}

@test "fork in a multithreaded process, allocate in the child: glibc preload" {
    run_with glibc fork_mt 8
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "ok 8 forks" ]
}

@test "fork in a multithreaded process, allocate in the child: static musl (__malloc_atfork)" {
    run_with static fork_mt 8
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "ok 8 forks" ]
}

@test "fork in a multithreaded process, allocate in the child: static glibc" {
    run_with gstatic fork_mt 8
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "ok 8 forks" ]
}

# A library linked by the program registers allocating fork handlers before the preloaded
# mdalloc does, so they run while its prepare handler holds the allocator's locks: the forking
# thread must go through them (glibc hung at alarm() before session 7).
fork_lib() {
    run_with "$1" fork_lib 10
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "ok 10 forks" ]
}
@test "fork with allocating handlers registered before mdalloc's (a library's): glibc preload" { fork_lib glibc; }
@test "fork with allocating handlers registered before mdalloc's (a library's): musl preload" { fork_lib musl; }

@test "fork in a multithreaded process, allocate in the child: musl preload" {
    run_with musl fork_mt 8
    echo "$output"
    [ "$status" -eq 0 ]
    [ "$output" = "ok 8 forks" ]
}

# churn FLAVOR ARGS...: thread create/exit churn (two workers at a time) with bounded RSS. A
# thread that starts while another collects the abandoned heaps must still adopt one: a new heap
# made in that window stays for good with its own segments (seen as RSS growing by 10-40 MB in
# about one run in three). Main thread plus two workers need three heaps, never more.
churn() {
    MDALLOC_STATS=1 run_with "$@"
    echo "$output"
    [ "$status" -eq 0 ]
    grep -qx ok <<<"$output"
    local heaps
    heaps=$(sed -n 's/^mdalloc: stats: heaps_created //p' <<<"$output")
    [ -n "$heaps" ] && [ "$heaps" -le 3 ]
}

@test "thread create/exit churn keeps RSS bounded: glibc preload" { churn glibc churn_rss 2000; }
@test "thread create/exit churn keeps RSS bounded when glibc frees after the exit hook (dlerror)" {
    churn glibc churn_rss 2000 dlerror
}
@test "thread create/exit churn keeps RSS bounded: musl preload" { churn musl churn_rss 2000; }

# A key destructor of the program frees a per-thread cache; mdalloc's key comes first, so its exit
# hook defers itself by one round: those frees are ordinary local frees, not calls after the exit
# hook (each of which borrowed a heap and collected it: 28 s instead of 0.5 s for 128 threads
# freeing 50000 blocks each, and a remote-free node mapped per free when threads exit together).
tsd_cache() {
    churn "$1" churn_rss 1000 tsd
    grep -qx "mdalloc: stats: calls_after_thread_exit 0" <<<"$output"
}
@test "a program's key destructor frees before mdalloc's exit hook: glibc preload" { tsd_cache glibc; }
@test "a program's key destructor frees before mdalloc's exit hook: musl preload" { tsd_cache musl; }
@test "a program's key destructor frees before mdalloc's exit hook: static musl" { tsd_cache static; }
@test "thread create/exit churn keeps RSS bounded: static musl" { churn static churn_rss 2000; }
