#!/usr/bin/env bash
# Replays the inputs that once crashed, leaked or tripped UBSan in one fuzz target, one TAP line
# each:  ok - fuzz-regress/NAME/FILE
# Usage: tests/fuzz/regress.sh NAME   (inputs: tests/fuzz/regressions/NAME/*)
set -u
cd "$(dirname "$0")/../.."
name=$1
bin=${FUZZ_BUILD:-build/fuzz}/fuzz_$name
dir=tests/fuzz/regressions/$name
if [ ! -x "$bin" ]; then
    echo "not ok - fuzz-regress/$name: $bin is not built (make fuzz-bin)"
    exit 1
fi
status=0
for input in "$dir"/*; do
    [ -f "$input" ] || continue
    # given files instead of a corpus directory, libFuzzer runs each once and fuzzes nothing
    if out=$("$bin" -timeout=10 -rss_limit_mb=2048 "$input" 2>&1); then
        echo "ok - fuzz-regress/$name/${input##*/}"
    else
        echo "not ok - fuzz-regress/$name/${input##*/}"
        grep -E -m3 '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|ALARM)' <<<"$out" | sed 's/^/#   /'
        status=1
    fi
done
exit $status
