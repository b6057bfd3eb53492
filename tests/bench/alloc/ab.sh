#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A/B comparison of two mdalloc builds (e.g. before and after a change) on the bench.c programs,
# robust to a busy machine: runs alternate (A, B, A, B, ...), and each run's throughput is
# counted per CPU second (operations / (user + sys time)), so time the benchmark spent waiting
# for a core taken by someone else does not count. Prints the median of each and B/A.
# Benchmarks that wait for each other, such as prodcons, also burn CPU in sched_yield while
# waiting: WALL=1 compares plain operations per second instead (still alternating, median).
#
# usage: tests/bench/alloc/ab.sh A.so B.so [BENCHES, default "larson churn realloc cjson"] [RUNS, default 7]
# SECS=3 runs each benchmark for 3 s instead of 1 (hugechurn, as the acceptance tester ran it).
set -u
if [ $# -lt 2 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    sed -n 's/^# \(usage: .*\)/\1/p' "$0" >&2
    exit 2
fi
cd "$(dirname "$0")/../../.."
B=${MD_BUILD:-$PWD/build}
a=$1 b=$2 benches=${3:-"larson churn realloc cjson"} runs=${4:-7}
prog=$B/alloc-bench/bench-glibc
[ -x "$prog" ] || { echo "missing $prog: run make alloc-bench-prereqs" >&2; exit 1; }

# ops per CPU second of one run
one() {
    local so=$1 bench=$2 out
    out=$( { /usr/bin/time -f 'CPU %e %U %S' env LD_PRELOAD="$so" "$prog" "$bench" "${SECS:-1}"; } 2>&1) || return 1
    awk -v b="$bench" -v wallclock="${WALL:-0}" '$1 == b {rate = $2} $1 == "CPU" {wall = $2; cpu = $3 + $4}
        END {printf "%.0f\n", wallclock == 1 || cpu == 0 ? rate : rate * wall / cpu}' <<<"$out"
}
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

unit=ops/cpu-s
[ "${WALL:-0}" = 1 ] && unit=ops/s
printf '%-8s %16s %16s %8s\n' bench "A $unit" "B $unit" "B/A"
for bench in $benches; do
    ra=() rb=()
    for _ in $(seq "$runs"); do
        ra+=("$(one "$a" "$bench")")
        rb+=("$(one "$b" "$bench")")
    done
    ma=$(printf '%s\n' "${ra[@]}" | median) mb=$(printf '%s\n' "${rb[@]}" | median)
    printf '%-8s %16s %16s %8s\n' "$bench" "$ma" "$mb" "$(awk -v a="$ma" -v b="$mb" 'BEGIN {printf "%.3f", b / a}')"
done
echo "A: $a"
echo "B: $b"
