#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fast-path cost of one mdalloc build against another (e.g. before and after a change): runs the
# fastpath program under each, alternating, and prints the best and the median nanoseconds per
# malloc+free pair of each and the difference. Alternating in one go keeps the machine's load
# about the same for both.
#
# usage: tests/bench/alloc/fastpath.sh BEFORE.so AFTER.so [ALTERNATIONS, default 15]
# (build a "before" .so from an older tree with the flags in alloc/alloc.mk)
set -u
if [ $# -lt 2 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    sed -n 's/^# \(usage: .*\)/\1/p' "$0" >&2
    exit 2
fi
cd "$(dirname "$0")/../../.."
B=${MD_BUILD:-$PWD/build}
before=$1 after=$2 n=${3:-15}
prog=$B/alloc-bench/fastpath
[ -x "$prog" ] || { echo "missing $prog: run make alloc-bench-prereqs" >&2; exit 1; }
declare -a A=() Z=()
for _ in $(seq "$n"); do
    A+=("$(LD_PRELOAD=$before "$prog" 5 2000000 | awk '{print $2}')")
    Z+=("$(LD_PRELOAD=$after "$prog" 5 2000000 | awk '{print $2}')")
done
stats() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "best %.2f median %.2f", v[1], v[int((NR + 1) / 2)]}'; }
sa=$(stats "${A[@]}") sz=$(stats "${Z[@]}")
echo "before: $sa ns per malloc+free ($before)"
echo "after:  $sz ns per malloc+free ($after)"
awk -v a="$sa" -v z="$sz" 'BEGIN {
    split(a, x, " "); split(z, y, " ");
    printf "difference: best %+.2f ns (%+.0f%%), median %+.2f ns (%+.0f%%)\n",
        y[2] - x[2], 100 * (y[2] - x[2]) / x[2], y[4] - x[4], 100 * (y[4] - x[4]) / x[4] }'
