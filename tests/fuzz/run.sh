#!/usr/bin/env bash
# Runs one fuzz target for a bounded time and prints one TAP line:
#   ok - fuzz/NAME: N execs in S s, 0 crashes
# Usage: tests/fuzz/run.sh NAME SECONDS [--fresh]
# The committed corpus (tests/fuzz/corpus/NAME) is copied into a scratch corpus under
# $FUZZ_BUILD (build/fuzz) first, so new inputs never land in the source tree; --fresh starts the
# scratch corpus over (the smoke run in `make test`), otherwise it grows from run to run.
# Crash, leak, UBSan and timeout inputs are written to $FUZZ_BUILD/artifacts/NAME/.
set -u
cd "$(dirname "$0")/../.."
name=$1 seconds=$2 fresh=${3:-}
build=${FUZZ_BUILD:-build/fuzz}
bin=$build/fuzz_$name
if [ ! -x "$bin" ]; then
    echo "not ok - fuzz/$name: $bin is not built (make fuzz-bin)"
    exit 1
fi
if [ "$fresh" = --fresh ]; then
    corpus=$build/smoke/$name
    rm -rf "$corpus"
else
    corpus=$build/corpus/$name
fi
artifacts=$build/artifacts/$name
mkdir -p "$corpus" "$artifacts"
cp -n tests/fuzz/corpus/"$name"/* "$corpus"/ 2>/dev/null
dict=()
[ -f tests/fuzz/"$name".dict ] && dict=(-dict=tests/fuzz/"$name".dict)
log=$build/$name${fresh:+-smoke}.log
# -timeout: one input that takes seconds is a bug (a loop); -rss_limit_mb: the machine is shared.
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "${dict[@]}" "$corpus" >"$log" 2>&1
rc=$?
execs=$(sed -nE 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\1/p' "$log" | tail -1)
secs=$(sed -nE 's/^Done ([0-9]+) runs in ([0-9]+) second.*/\2/p' "$log" | tail -1)
if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
    echo "ok - fuzz/$name: $execs execs in $secs s, 0 crashes ($((execs / (secs > 0 ? secs : 1))) exec/s)"
    exit 0
fi
execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
echo "not ok - fuzz/$name: exit $rc after ${execs:-?} execs; input in $artifacts/, log $log"
grep -E -m3 '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|ALARM|Test unit written)' "$log" | sed 's/^/#   /'
exit 1
