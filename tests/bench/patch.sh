#!/bin/sh
# `malloc-doctor patch`'s payoff (issue 5): the churn fixture (tests/fixtures/src/patch_churn.c)
# linked with `musl-gcc -static` against musl's libc.a as shipped and against a copy patched
# with mdalloc, side by side in one hyperfine run. Goal: at least 10x faster with 2 threads.
# Needs `make tool alloc`. Takes about a minute. Exits 1 if the goal is missed.
set -eu
. "$(dirname "$0")/usage.sh"
bench_usage "$@"
cd "$(dirname "$0")/../.."
T=${MD_TOOL:-build/malloc-doctor}
LIBC=${MUSL_LIBC:-/usr/lib/x86_64-linux-musl/libc.a}
ITERS=${ITERS:-200000}
B=build/bench/patch
rm -rf "$B"
mkdir -p "$B/patched"
"$T" patch -o "$B/patched/libc.a" "$LIBC" >/dev/null
musl-gcc -O2 -static -o "$B/churn-musl" tests/fixtures/src/patch_churn.c
musl-gcc -O2 -static -L"$B/patched" -o "$B/churn-mdalloc" tests/fixtures/src/patch_churn.c
"$T" inspect --expect mdalloc "$B/churn-mdalloc" >/dev/null
"$T" inspect --expect musl "$B/churn-musl" >/dev/null
# the same work: the same checksum from both
[ "$("$B/churn-musl" 2 "$ITERS")" = "$("$B/churn-mdalloc" 2 "$ITERS")" ]

md=$(mktemp) js=$(mktemp)
trap 'rm -f "$md" "$js"' EXIT
echo "patch: churn fixture, $ITERS malloc/free (+calloc, realloc) per thread, static musl 1.2.3:"
hyperfine --warmup 1 --runs 10 --style none --export-markdown "$md" --export-json "$js" \
    -n "1 thread, musl libc.a" "$B/churn-musl 1 $ITERS" \
    -n "1 thread, patched libc.a (mdalloc)" "$B/churn-mdalloc 1 $ITERS" \
    -n "2 threads, musl libc.a" "$B/churn-musl 2 $ITERS" \
    -n "2 threads, patched libc.a (mdalloc)" "$B/churn-mdalloc 2 $ITERS" >/dev/null
cat "$md"
python3 - "$js" <<'PY'
import json, sys
r = {x["command"]: x["mean"] for x in json.load(open(sys.argv[1]))["results"]}
one = r["1 thread, musl libc.a"] / r["1 thread, patched libc.a (mdalloc)"]
two = r["2 threads, musl libc.a"] / r["2 threads, patched libc.a (mdalloc)"]
print(f"\nspeedup: {one:.1f}x with 1 thread, {two:.1f}x with 2 threads (goal: >= 10x with 2)")
sys.exit(0 if two >= 10 else 1)
PY
