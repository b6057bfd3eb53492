#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The kernel's limits and the program's own resources: impossible sizes fail with ENOMEM, growth
# and the first segment fit under `ulimit -v` where glibc's do, a program that takes every pthread
# key still gets its threads' heaps reused, and the statistics never land in a program's file.
# Each of these failed before its fix (see alloc/README.md, "Limits").
load helpers

FLAVORS="glibc musl static gstatic"

# ulimit_run FLAVOR KIB ARGS...: run the limits program as run_with does, under `ulimit -v KIB`.
ulimit_run() {
    local flavor=$1 kib=$2 pre="" prog
    shift 2
    case $flavor in
    glibc) pre=$MDA_GLIBC_SO prog=$MDA_TESTS/glibc/limits ;;
    musl) pre=$MDA_MUSL_SO prog=$MDA_TESTS/musl/limits ;;
    *) prog=$MDA_TESTS/$flavor/limits ;;
    esac
    PRE=$pre run bash -c 'ulimit -v "$1" && shift && exec env ${PRE:+LD_PRELOAD=$PRE} "$@"' _ \
        "$kib" "$prog" "$@"
}

@test "malloc and calloc of 100 and 1000 GiB fail with ENOMEM (overcommit sees the mappings)" {
    [ "$(cat /proc/sys/vm/overcommit_memory)" != 1 ] || skip "overcommit_memory=1 grants any size"
    # heuristic overcommit refuses one mapping larger than RAM and swap together
    local gib=$(($(awk '/MemTotal|SwapTotal/ {kib += $2} END {print kib}' /proc/meminfo) / 1048576 + 100))
    for flavor in $FLAVORS; do
        for size in $gib 1000; do
            run_with $flavor limits big $size
            echo "$flavor $size GiB: $output"
            [ "$status" -eq 0 ]
        done
    done
}

@test "realloc grows a 90 MiB block to 120 MiB under ulimit -v 200000 (mremap needs the growth only)" {
    for flavor in $FLAVORS; do
        ulimit_run $flavor 200000 grow 90 120
        echo "$flavor: $output"
        [ "$status" -eq 0 ]
        [[ "$output" == *grown* ]]
    done
}

@test "the first malloc(10) succeeds under ulimit -v 17000 (the first segment without over-mapping)" {
    for flavor in $FLAVORS; do
        ulimit_run $flavor 17000 small
        echo "$flavor: $output"
        [ "$status" -eq 0 ]
    done
}

# Between about 9 and 14 MB (by build) a 4 MiB segment no longer fits but a page still does: a
# small block then gets a mapping of its own. Before, malloc(10) failed there while
# malloc(1000000), aligned_alloc and calloc then succeeded; with the preloads even the page failed,
# as the one aligned address tried below the kernel's place held a library.
@test "under a tight ulimit -v malloc(10) never fails where malloc(1000000) succeeds" {
    for flavor in $FLAVORS; do
        for kib in $(seq 11000 1000 18000); do
            ulimit_run $flavor $kib small_big
            echo "$flavor $kib: $status $output"
            [[ "$output" != *"small failed big ok"* ]]
            [[ "$output" != *"small failed"*"aligned ok"* ]]
        done
        ulimit_run $flavor 18000 small_big
        [[ "$output" == *"small ok big ok aligned ok calloc ok"* ]]
    done
}

# The over-mapping for a 32 GiB alignment is refused by heuristic overcommit on a machine with
# less memory: the block is mapped at its size at an aligned address below the kernel's place.
# Only the first such address was tried, which the first block holds: the second failed (ENOMEM).
@test "two live blocks aligned to 32 GiB (the over-mapping refused by overcommit)" {
    local kib
    kib=$(awk '/MemTotal|SwapTotal/ {kib += $2} END {print kib}' /proc/meminfo)
    [ "$(cat /proc/sys/vm/overcommit_memory)" = 0 ] && [ "$kib" -lt 33554432 ] ||
        skip "overcommit grants the 32 GiB over-mapping here"
    for flavor in $FLAVORS; do
        run_with $flavor limits align35
        echo "$flavor: $output"
        [ "$status" -eq 0 ]
    done
}

@test "threads' heaps are reused when a constructor took every pthread key before the first malloc" {
    for flavor in $FLAVORS; do
        MDA_EAT_KEYS=1 MDALLOC_STATS=1 run_with $flavor limits keys 300
        echo "$flavor: $output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"threads done"* ]]
        local heaps
        heaps=$(printf '%s\n' "$output" | sed -n 's/^mdalloc: stats: heaps_created //p')
        [ -n "$heaps" ] && [ "$heaps" -le 4 ]
    done
}

@test "MDALLOC_STATS: a program's dup2 onto fd 100 or 1000 gets none of the statistics" {
    local fds="100"
    [ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -gt 1001 ] && fds="100 1000"
    for flavor in $FLAVORS; do
        MDALLOC_STATS=1 run_with $flavor limits fds "$BATS_TEST_TMPDIR/f" $fds
        echo "$flavor: $output"
        [ "$status" -eq 0 ]
        [[ "$output" == *"mdalloc: stats: mmap_calls"* ]] # stderr is still the original file
        for fd in $fds; do echo data; done | cmp - "$BATS_TEST_TMPDIR/f"
    done
}

@test "MDALLOC_STATS: bash can use fd 100 for its own file" {
    cd "$BATS_TEST_TMPDIR"
    MDALLOC_STATS=1 LD_PRELOAD=$MDA_GLIBC_SO run bash -c 'exec 100>out100; echo data >&100'
    [ "$status" -eq 0 ]
    [[ "$output" == *"mdalloc: stats: mmap_calls"* ]]
    [ "$(cat out100)" = data ]
}

# bash takes an open close-on-exec descriptor for one of its own: `exec N>file` on it leaves it
# in place and moves the file away, so while mdalloc kept its copy of stderr at fd 1000 (100 where
# RLIMIT_NOFILE is 1000 or less) a script's `echo >&1000` went to stderr. No descriptor is held now.
@test "MDALLOC_STATS: a bash script can use fd 1000, and fd 100 under ulimit -n 1000" {
    cd "$BATS_TEST_TMPDIR"
    printf 'exec 1000>out1000\necho via-exec >&1000\n' >s.sh
    MDALLOC_STATS=1 LD_PRELOAD=$MDA_GLIBC_SO bash s.sh 2>err
    cat err
    [ "$(cat out1000)" = via-exec ]
    grep -q '^mdalloc: stats: mmap_calls' err
    ! grep -q via-exec err
    printf 'exec 100>out100\necho to100 >&100\n' >s100.sh
    (ulimit -n 1000 && MDALLOC_STATS=1 LD_PRELOAD=$MDA_GLIBC_SO bash s100.sh 2>err)
    cat err
    [ "$(cat out100)" = to100 ]
    grep -q '^mdalloc: stats: mmap_calls' err
}
