#!/bin/sh
# trace's overhead on a 2-thread malloc/free loop, side by side with strace -f -c, in one run.
# Goals (issue 4): default mode at most 1.3x on glibc dynamic and 2.0x on static musl.
set -eu
T=${MD_TOOL:-build/malloc-doctor}
B=build/bench
mkdir -p $B
gcc -O2 -pthread -o $B/mtloop-glibc tests/bench/src/mtloop.c
musl-gcc -O2 -static -o $B/mtloop-musl tests/bench/src/mtloop.c
out=$(mktemp)
# musl's malloc is ~40x slower and every uprobe hit costs microseconds: fewer iterations there
for v in glibc:20000000 musl:200000; do
    n=${v#*:} v=${v%:*}
    p="$B/mtloop-$v $n"
    echo "trace overhead, $v (mtloop-$v: 2 threads x $n malloc/free pairs):"
    hyperfine --warmup 1 --runs 5 --style none --export-markdown "$out" \
        -n "plain" "$p" \
        -n "strace -f -c" "strace -f -c -o /dev/null $p" \
        -n "malloc-doctor trace" "$T trace -o /dev/null -- $p" \
        -n "malloc-doctor trace --stacks" "$T trace --stacks -o /dev/null -- $p" >/dev/null
    cat "$out"
    echo
done
rm -f "$out"
