#!/bin/sh
# `make demo`: the main job on bundled examples, built from source by `make fixtures`.
T=build/malloc-doctor
FX=build/fixtures
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

echo "malloc-doctor demo: which allocator really serves malloc?"
say malloc-doctor inspect $FX/musl-static $FX/glibc-dynamic $FX/mimalloc-dynamic $FX/jemalloc-static
$T inspect $FX/musl-static $FX/glibc-dynamic $FX/mimalloc-dynamic $FX/jemalloc-static

echo
echo "Seed 000: -lmimalloc was on the command line, but --as-needed dropped it. A one-line CI gate:"
say malloc-doctor inspect --expect mimalloc $FX/mimalloc-dropped
$T inspect --expect mimalloc $FX/mimalloc-dropped
echo "(exit status $?: 1 means the expectation failed)"

echo
echo "A stripped static binary still tells: musl's size-class table survives strip."
say malloc-doctor inspect -v $FX/musl-static-stripped
$T inspect -v $FX/musl-static-stripped
echo
echo "Seed 004: which request sizes cost a syscall? (a toy allocator whose 1-byte header pushes"
echo "1016-1024 B requests past its small-object limit)"
say malloc-doctor trace -- $FX/toy-driver
$T trace -- $FX/toy-driver 2>/dev/null

echo
echo "The report to read first: inspect + trace + rules, a verdict and the exact fix. Here a musl"
echo "program with two threads, measured again with mdalloc preloaded (--compare):"
say malloc-doctor doctor --compare -- $FX/musl-dynamic-loop 300000
$T doctor --compare -- $FX/musl-dynamic-loop 300000 </dev/null

echo
echo "Seed 001: fix a static musl program by patching a copy of musl's libc.a with mdalloc."
out=build/demo
mkdir -p $out
say malloc-doctor patch -o $out/libc.a /usr/lib/x86_64-linux-musl/libc.a
$T patch -o $out/libc.a /usr/lib/x86_64-linux-musl/libc.a | tail -3
musl-gcc -static -O2 -L $out -o $out/churn-patched tests/fixtures/src/churn.c
say malloc-doctor inspect --expect mdalloc $out/churn-patched
$T inspect --expect mdalloc $out/churn-patched
exit 0
