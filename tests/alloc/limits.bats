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
