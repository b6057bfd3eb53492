#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# mdalloc benchmarks: every benchmark against every allocator, side by side, in one go.
# Prints throughput relative to mimalloc and peak RSS, plus the geometric mean of the ratios.
#
# usage: tests/bench/alloc/run.sh [SECONDS per run, default 1] [REPEATS, default 3]
# Needs `make alloc-bench-prereqs`. Set BENCHES="churn larson" to run a subset, ALLOCS="mdalloc
# mimalloc" to run some allocators only (mimalloc is the baseline and always runs), and
# MDALLOC_BEFORE=path/to/libmdalloc.so to add a column "mdalloc-before" with another mdalloc build
# (e.g. the previous version) preloaded the same way, measured in the same run.
set -u
cd "$(dirname "$0")/../../.."
B=${MD_BUILD:-$PWD/build}
SECS=${1:-1}
REPEATS=${2:-3}
BENCHES=${BENCHES:-"larson prodcons churn mixed realloc big hugechurn cjson"}
LIBDIR=/usr/lib/x86_64-linux-gnu
ALLOCS=${ALLOCS:-"glibc musl mdalloc mdalloc-musl mimalloc jemalloc tcmalloc"}
[[ " $ALLOCS " == *" mimalloc "* ]] || ALLOCS="$ALLOCS mimalloc"
if [ -n "${MDALLOC_BEFORE:-}" ]; then
    [ -e "$MDALLOC_BEFORE" ] || { echo "missing $MDALLOC_BEFORE" >&2; exit 1; }
    ALLOCS="mdalloc-before $ALLOCS"
fi

# command line for one allocator
cmd_for() {
    case $1 in
    glibc) echo "$B/alloc-bench/bench-glibc" ;;
    musl) echo "$B/alloc-bench/bench-musl" ;;
    mdalloc) echo "env LD_PRELOAD=$B/alloc/glibc/libmdalloc.so $B/alloc-bench/bench-glibc" ;;
    mdalloc-before) echo "env LD_PRELOAD=$MDALLOC_BEFORE $B/alloc-bench/bench-glibc" ;;
    mdalloc-musl) echo "$B/alloc-bench/bench-musl-mdalloc" ;;
    mimalloc) echo "env LD_PRELOAD=$LIBDIR/libmimalloc.so.2 $B/alloc-bench/bench-glibc" ;;
    jemalloc) echo "env LD_PRELOAD=$LIBDIR/libjemalloc.so.2 $B/alloc-bench/bench-glibc" ;;
    tcmalloc) echo "env LD_PRELOAD=$LIBDIR/libtcmalloc_minimal.so.4 $B/alloc-bench/bench-glibc" ;;
    esac
}

for f in "$B/alloc-bench/bench-glibc" "$B/alloc-bench/bench-musl" "$B/alloc/glibc/libmdalloc.so"; do
    [ -e "$f" ] || { echo "missing $f: run make alloc-bench-prereqs" >&2; exit 1; }
done

# run BENCH ALLOC: best throughput of REPEATS runs and the peak RSS (KiB) of that run
measure() {
    local bench=$1 alloc=$2 best=0 best_rss=0 out rate rss
    for _ in $(seq "$REPEATS"); do
        out=$( { /usr/bin/time -f 'RSS %M' $(cmd_for "$alloc") "$bench" "$SECS"; } 2>&1) || { echo "n/a n/a"; return; }
        rate=$(awk -v b="$bench" '$1 == b {print $2}' <<<"$out")
        rss=$(awk '$1 == "RSS" {print $2}' <<<"$out")
        [ -n "$rate" ] || { echo "n/a n/a"; return; }
        if awk -v a="$rate" -v b="$best" 'BEGIN {exit !(a > b)}'; then best=$rate best_rss=$rss; fi
    done
    echo "$best $best_rss"
}

declare -A RATE RSS
for bench in $BENCHES; do
    for alloc in $ALLOCS; do
        read -r r m < <(measure "$bench" "$alloc")
        RATE[$bench,$alloc]=$r RSS[$bench,$alloc]=$m
    done
    echo "measured $bench" >&2
done

printf '\nThroughput relative to mimalloc (higher is better) / peak RSS in MiB; %s s x best of %s, 2 threads\n\n' "$SECS" "$REPEATS"
printf '| %-9s |' benchmark
for alloc in $ALLOCS; do printf ' %-14s |' "$alloc"; done
printf '\n|-----------|'
for alloc in $ALLOCS; do printf '%s|' "----------------"; done
printf '\n'
declare -A LOGSUM COUNT RSSWIN
for bench in $BENCHES; do
    printf '| %-9s |' "$bench"
    base=${RATE[$bench,mimalloc]}
    for alloc in $ALLOCS; do
        r=${RATE[$bench,$alloc]} m=${RSS[$bench,$alloc]}
        if [ "$r" = n/a ] || [ "$base" = n/a ]; then
            printf ' %-14s |' n/a
            continue
        fi
        cell=$(awk -v r="$r" -v b="$base" -v m="$m" 'BEGIN {printf "%.2f / %.0f", r / b, m / 1024}')
        printf ' %-14s |' "$cell"
        LOGSUM[$alloc]=$(awk -v s="${LOGSUM[$alloc]:-0}" -v r="$r" -v b="$base" 'BEGIN {print s + log(r / b)}')
        COUNT[$alloc]=$((${COUNT[$alloc]:-0} + 1))
    done
    printf '\n'
done
printf '| %-9s |' geomean
for alloc in $ALLOCS; do
    if [ "${COUNT[$alloc]:-0}" -gt 0 ]; then
        printf ' %-14s |' "$(awk -v s="${LOGSUM[$alloc]}" -v n="${COUNT[$alloc]}" 'BEGIN {printf "%.2f", exp(s / n)}')"
    else
        printf ' %-14s |' n/a
    fi
done
printf '\n\nRaw throughput (operations per second; prodcons: frees per second)\n\n'
for bench in $BENCHES; do
    printf '%-9s' "$bench"
    for alloc in $ALLOCS; do printf ' %s=%s' "$alloc" "${RATE[$bench,$alloc]}"; done
    printf '\n'
done
# mdalloc vs musl's own malloc, on the same static musl program
printf '\nmdalloc embedded in static musl vs musl malloc:'
for bench in $BENCHES; do
    a=${RATE[$bench,mdalloc-musl]:-n/a} b=${RATE[$bench,musl]:-n/a}
    [ "$a" = n/a ] || [ "$b" = n/a ] && continue
    printf ' %s %sx' "$bench" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.1f", a / b}')"
done
printf '\n'
