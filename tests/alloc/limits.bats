#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The kernel's limits and the program's own resources: impossible sizes fail with ENOMEM, growth
# and the first segment fit under `ulimit -v` where glibc's do, a program that takes every pthread
# key still gets its threads' heaps reused, and the statistics never land in a program's file.
# Each of these failed before its fix (see alloc/README.md, "Limits").
load helpers

FLAVORS="glibc musl static gstatic"

@test "malloc and calloc of 100 and 1000 GiB fail with ENOMEM (overcommit sees the mappings)" {
    [ "$(cat /proc/sys/vm/overcommit_memory)" != 1 ] || skip "overcommit_memory=1 grants any size"
    local gib=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1048576 + 100))
    for flavor in $FLAVORS; do
        for size in $gib 1000; do
            run_with $flavor limits big $size
            echo "$flavor $size GiB: $output"
            [ "$status" -eq 0 ]
        done
    done
}
