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
exit 0
