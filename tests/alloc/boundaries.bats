#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# No mmap/munmap per allocation at any size boundary, and no madvise storm: the counts of those
# system calls must not grow with the number of alloc/free iterations.
load helpers

# syscalls FLAVOR ITERATIONS: prints "mmap munmap madvise" as counted by MDALLOC_STATS
syscalls() {
    MDALLOC_STATS=1 run_with "$1" boundaries "$2"
    [ "$status" -eq 0 ] || { echo "$output"; return 1; }
    [[ "$output" == *"ok $2 iterations"* ]] || return 1
    local mm mu ma
    mm=$(awk '/stats: mmap_calls/ {print $4}' <<<"$output")
    mu=$(awk '/stats: munmap_calls/ {print $4}' <<<"$output")
    ma=$(awk '/stats: madvise_calls/ {print $4}' <<<"$output")
    [ -n "$mm" ] && [ -n "$mu" ] && [ -n "$ma" ] || return 1
    echo "$mm $mu $ma"
}

check_flat() {
    local few many
    few=$(syscalls "$1" 500) || { echo "$few"; return 1; }
    many=$(syscalls "$1" 5000) || { echo "$many"; return 1; }
    echo "500 iterations: $few; 5000 iterations: $many (mmap munmap madvise)"
    read -r a1 b1 c1 <<<"$few"
    read -r a2 b2 c2 <<<"$many"
    # 16 sizes x 5000 iterations = 80000 allocations; allow a handful of calls, not one per round
    # (one check per line: under set -e only the last command of an && list can fail a test)
    [ "$a2" -le $((a1 + 4)) ]
    [ "$b2" -le $((b1 + 4)) ]
    [ "$c2" -le $((c1 + 8)) ]
    [ "$a2" -lt 64 ]
    [ "$b2" -lt 64 ]
    [ "$c2" -lt 64 ]
}

@test "boundaries: no system calls per allocation, glibc preload" { check_flat glibc; }
@test "boundaries: no system calls per allocation, static musl" { check_flat static; }

@test "boundaries: the check can fail (without the segment cache every huge free unmaps)" {
    few=$(MDALLOC_CACHE_SEGMENTS=0 syscalls glibc 100)
    many=$(MDALLOC_CACHE_SEGMENTS=0 syscalls glibc 1000)
    read -r a1 b1 _ <<<"$few"
    read -r a2 b2 _ <<<"$many"
    echo "mmap: $a1 vs $a2, munmap: $b1 vs $b2"
    [ "$a2" -gt $((a1 + 500)) ] && [ "$b2" -gt $((b1 + 500)) ]
}

# madvise calls of the purge program (tests/alloc/purge.c), given extra environment
purge_madvise() {
    MDALLOC_STATS=1 run_with "$1" purge
    [ "$status" -eq 0 ] && [[ "$output" == *"cycles 40"* ]] || { echo "$output"; return 1; }
    awk '/stats: madvise_calls/ {print $4}' <<<"$output"
}

@test "purge: pages freed and needed again every 20 ms are not purged every time (hysteresis)" {
    for flavor in glibc static; do
        calls=$(purge_madvise "$flavor") || { echo "$calls"; return 1; }
        echo "$flavor: $calls madvise calls in 40 cycles"
        # the heap starts with a 5 ms delay and doubles it each time purged memory comes back
        # sooner than the longest delay: a few purges, then none
        [ "$calls" -le 12 ]
    done
}

@test "purge: the check can fail (a fixed 5 ms delay purges every cycle)" {
    calls=$(MDALLOC_PURGE_DELAY=5 purge_madvise glibc) || { echo "$calls"; return 1; }
    echo "fixed 5 ms: $calls madvise calls in 40 cycles"
    [ "$calls" -ge 30 ]
}

# A block that takes a much bigger dirty mapping from the segment cache keeps the rest resident
# for its whole life, out of the purge's reach (tests/alloc/dirty_reuse.c: 131 MB resident for
# 19 MB live before session 7).
# PROGRAM [ARGS], run with mdalloc as BUILD links it, ends with "ok" (its own checks passed)
ends_ok() {
    run_with "$@"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *ok ]]
}
@test "purge: memory a block does not use is not kept resident by reusing a bigger cached mapping, glibc preload" { ends_ok glibc dirty_reuse; }
@test "purge: memory a block does not use is not kept resident by reusing a bigger cached mapping, static musl" { ends_ok static dirty_reuse; }

# Freed huge blocks wait in the segment cache; how much of them stays resident follows the live
# memory (tests/alloc/huge_purge.c). Before session 8 the cache kept up to 128 MiB of them dirty,
# maintained only on a heap's slow path, so until exit: a buffer doubled to 128 MiB peaked at
# 256 MB (bound 176 MB), eight blocks of 48-104 MiB shrunk by realloc to 1 MiB left 116 MB
# resident (bound 24 MB).
@test "purge: freed huge blocks do not stay resident, doubling buffer, glibc preload" { ends_ok glibc huge_purge grow; }
@test "purge: freed huge blocks do not stay resident, doubling buffer, static musl" { ends_ok static huge_purge grow; }
@test "purge: freed huge blocks do not stay resident, realloc shrink, glibc preload" { ends_ok glibc huge_purge shrink; }
@test "purge: freed huge blocks do not stay resident, realloc shrink, static musl" { ends_ok static huge_purge shrink; }

# Memory a program dropped is given back while a steady loop runs whose calls all take the fast
# paths or are huge blocks (tests/alloc/steady_purge.c): the purge ran only on a slow path, so it
# stayed resident for as long as the loop ran (400 MB for 3 s and more, acceptance in session 19).
@test "purge: a steady loop of fast-path calls after a big free gives the memory back, glibc preload" {
    ends_ok glibc steady_purge small
    ends_ok glibc steady_purge huge
}
@test "purge: a steady loop of fast-path calls after a big free gives the memory back, static musl" {
    ends_ok static steady_purge small
    ends_ok static steady_purge huge
}

# huge_reuse FLAVOR WHAT OP LIMIT: runs `huge_purge reuse` (a filled 32 MiB block freed and
# allocated again 200 times, then freed) and checks WHAT (calls: madvise calls; rss: KB resident
# after the last free) OP LIMIT, e.g. `huge_reuse glibc calls -le 12`
huge_reuse() {
    MDALLOC_STATS=1 run_with "$1" huge_purge reuse
    [ "$status" -eq 0 ] && [[ "$output" == *ok ]] || { echo "$output"; return 1; }
    local calls rss
    calls=$(awk '/stats: madvise_calls/ {print $4}' <<<"$output")
    rss=$(awk '/resident after free/ {print $4}' <<<"$output")
    echo "$1: $calls madvise calls in 200 cycles of 32 MiB, $rss KB resident after the last free"
    [ "${!2}" "$3" "$4" ]
}

# A program that frees and allocates the same big block over and over keeps it dirty: the cache
# backs off as a heap does (its delay doubles, and so does what may stay dirty, each time a purged
# entry comes back within the longest delay), so a few purges, then none.
@test "purge: a huge block freed and allocated again is not purged every time (hysteresis)" {
    huge_reuse glibc calls -le 12
    huge_reuse static calls -le 12
}

# MDALLOC_PURGE_DELAY=0 purges a freed huge block at once, also when the program makes no other
# allocator call after the free (before session 8 it was purged only at the next heap slow path).
@test "purge: MDALLOC_PURGE_DELAY=0 purges a freed huge block at once" {
    MDALLOC_PURGE_DELAY=0 huge_reuse glibc rss -lt 16384
    MDALLOC_PURGE_DELAY=0 huge_reuse static rss -lt 16384
}
@test "purge: the check can fail (by default the reused block stays resident)" {
    huge_reuse glibc rss -gt 32768
}

# Under an address-space limit, freed memory must serve requests that need new mappings: when a
# mapping fails, the thread's empty segments and the segment cache are unmapped and the mapping
# is tried again (tests/alloc/oom_reclaim.c: the 32 MiB malloc after freeing everything failed
# for 10 s, until the cache unmapped its entries by age, before mappings were retried).
@test "address-space limit: freed memory serves new mappings at once, glibc preload" { ends_ok glibc oom_reclaim; }
@test "address-space limit: freed memory serves new mappings at once, static musl" { ends_ok static oom_reclaim; }
@test "address-space limit: freed memory serves new mappings at once, musl preload" { ends_ok musl oom_reclaim; }

# Slices never touched since their segment was mapped (or purged) are not purged again: counting
# them as purged costs no system call (tests/alloc/fresh_purge.c made one madvise of untouched
# memory per fresh segment before).
fresh_purge() {
    MDALLOC_STATS=1 MDALLOC_PURGE_DELAY=5 run_with "$1" fresh_purge
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"stats: madvise_calls 0"* ]]
}
@test "purge: memory never touched is not madvised, glibc preload" { fresh_purge glibc; }
@test "purge: memory never touched is not madvised, static musl" { fresh_purge static; }

# A huge block grown by realloc in 4 KiB steps moves by mremap (page tables, no copy) when it
# cannot grow in place: contents kept, peak RSS about the block, alignment up to the segment size
# kept (tests/alloc/realloc_grow.c: 126 MB peak RSS for a 64 MiB block with copies before).
@test "realloc: a huge block grown in small steps is moved without copies, glibc preload" { ends_ok glibc realloc_grow; }
@test "realloc: a huge block grown in small steps is moved without copies, static musl" { ends_ok static realloc_grow; }
@test "realloc: a huge block grown in small steps is moved without copies, debug build" { ends_ok debug realloc_grow; }

# A huge block shrunk by realloc stays in place and gives its tail back with one mremap (before:
# shrunk below half its size it was copied to a new block, shrunk less it kept its tail resident;
# tests/alloc/realloc_shrink.c).
@test "realloc: a huge block shrinks in place and its tail is returned, glibc preload" { ends_ok glibc realloc_shrink; }
@test "realloc: a huge block shrinks in place and its tail is returned, static musl" { ends_ok static realloc_shrink; }
@test "realloc: a huge block shrinks in place and its tail is returned, debug build" { ends_ok debug realloc_shrink; }

# malloc_trim (glibc's extension) gives back at once what the purge delay would keep: a glibc
# program's call reached glibc's own malloc_trim before, which trims arenas mdalloc never used
# (tests/alloc/trim.c: 67 MB resident before and after). The banner shows mdalloc served it.
trim_ok() {
    MDALLOC_VERBOSE=1 run_with "$1" trim
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"mdalloc: version "* ]]
    [[ "$output" == *ok ]]
}
@test "malloc_trim: free pages go back at once, glibc preload" { trim_ok glibc; }
@test "malloc_trim: free pages go back at once, static glibc" { trim_ok gstatic; }
@test "malloc_trim: the check can fail (without the call the pages stay resident)" {
    run_with glibc trim skip
    echo "$output"
    [ "$status" -eq 1 ]
    [[ "$output" == *"FAIL malloc_trim gave nothing back"* ]]
}
