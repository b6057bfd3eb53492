#!/usr/bin/env bats
# trace --compare and doctor --compare: the same program with its own allocator and with mdalloc
# preloaded, side by side; static programs get the patch prescription instead.

load common

setup() {
    common_setup
}

teardown() {
    common_teardown
}

metric() { # metric key, field
    q "[m for m in r['compare']['metrics'] if m['metric']=='$1'][0]['$2']"
}

@test "--compare on musl-dynamic churn: mdalloc runs it with less CPU" {
    run "$T" trace --compare --json -o "$OUT" -- "$FX/musl-dynamic-loop" 500000
    [ "$status" -eq 0 ]
    [ "$(q "r['compare']['possible']")" = True ]
    [ "$(q "r['compare']['allocator']")" = mdalloc ]
    [[ "$(q "r['compare']['library']")" == */alloc/musl/libmdalloc.so ]]
    # both runs did the same work: 2 threads x 500000 malloc/free pairs (+ libc's own few)
    [ "$(q "r['ops']['total'] >= 2000000")" = True ]
    [ "$(q "abs(r['compare']['report']['ops']['total'] - r['ops']['total']) < 100")" = True ]
    # time and memory, always
    for m in wall_seconds cpu_seconds peak_rss_kb minor_faults memory_syscalls_per_op \
        futex_waits_per_op futex_wait_seconds; do
        [ "$(metric $m own)" != "" ]
        [ "$(metric $m with)" != "" ]
    done
    # musl's global lock against per-thread heaps: about 0.5 measured, a wide margin here (how
    # often musl's lock falls back to futex waits depends on scheduling, so that is not asserted)
    [ "$(q "[m for m in r['compare']['metrics'] if m['metric']=='cpu_seconds'][0]['ratio'] < 0.9")" = True ]
}

@test "--compare text: a side-by-side table with ratios" {
    run "$T" trace --compare -o "$OUT" -- "$FX/musl-dynamic-loop" 100000
    [ "$status" -eq 0 ]
    grep -q "^compare: the program's allocator vs mdalloc" "$OUT"
    grep -Eq "^wall time \(s\) +[0-9.e-]+ +[0-9.e-]+ +[0-9.]+x$" "$OUT"
    grep -Eq "^peak RSS \(KiB\) +[0-9]+ +[0-9]+ +[0-9.]+x$" "$OUT"
    # seconds to the millisecond and shares in percent, as the rest of the report prints them
    grep -Eq "^wall time \(s\) +[0-9]+\.[0-9]{3} +[0-9]+\.[0-9]{3} " "$OUT"
    grep -Eq "^futex wait share of wall time +[0-9]+\.[0-9]% +[0-9]+\.[0-9]% " "$OUT"
}

@test "--compare-with preloads another allocator; a missing one is an error before any run" {
    lib=$(ls /usr/lib/x86_64-linux-gnu/libmimalloc.so.2* | head -1)
    run "$T" trace --compare-with "$lib" --json -o "$OUT" -- "$FX/glibc-dynamic"
    [ "$status" -eq 0 ]
    [ "$(q "r['compare']['allocator']")" = "${lib##*/}" ]
    [ "$(q "r['compare']['possible']")" = True ]
    run "$T" trace --compare-with /nonexistent/libx.so -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"/nonexistent/libx.so: No such file or directory"* ]]
    [[ "$output" != *ran* ]]
}

@test "--compare-with: no ratios from a library that did not serve malloc or broke the run" {
    # not a shared library at all: refused before the first run
    notlib=$(mktemp)
    echo text >"$notlib"
    run "$T" trace --compare-with "$notlib" -- /bin/echo ran
    rm -f "$notlib"
    [ "$status" -eq 2 ]
    [[ "$output" == *"not an ELF file"* && "$output" != *ran* ]]
    # a library without malloc: loaded, but malloc still came from libc
    run "$T" trace --compare-with /lib/x86_64-linux-gnu/libz.so.1 --json -o "$OUT" -- "$FX/glibc-dynamic"
    [ "$status" -eq 0 ]
    [ "$(q "r['compare']['possible'], 'metrics' in r['compare']")" = "False False" ]
    [[ "$(q "r['compare']['reason']")" == *"libz.so.1 did not serve malloc in the run with it (malloc came from /lib/x86_64-linux-gnu/libc.so.6)"* ]]
    # musl's mdalloc preloaded into a glibc program: the loader refuses, the run exits 127
    run "$T" trace --compare-with "$PWD/build/alloc/musl/libmdalloc.so" --json -o "$OUT" -- "$FX/glibc-dynamic"
    [ "$status" -eq 0 ]
    [ "$(q "r['compare']['possible']")" = False ]
    # the reason stands alone in JSON: it says what happened, not where to look ("above")
    [ "$(q "r['compare']['reason']")" = "the run with $PWD/build/alloc/musl/libmdalloc.so ended differently (exit 127, the first run: exit 0): the two runs did not do the same work, so their numbers are not compared" ]
    [ "$(q "r['compare']['report']['run']['exit_code']")" = 127 ]
}

@test "--compare on a static musl program says why and prescribes patch" {
    run "$T" trace --compare --json -o "$OUT" -- "$FX/musl-static"
    [ "$status" -eq 0 ]
    [ "$(q "r['compare']['possible']")" = False ]
    [[ "$(q "r['compare']['reason']")" == *"linked statically"* ]]
    [[ "$(q "r['compare']['fix']")" == *"$TOOL_CMD patch -o ~/musl-mdalloc/libc.a"* ]]
    [ "$(q "'report' in r['compare']")" = False ]
}

@test "--compare: a warning of the second run is shown with the first run's, named by its library" {
    run "$T" trace --compare --json -o "$OUT" -- sh -c 'truncate -s 0 "$MD_PROBE_FILE"'
    [ "$status" -eq 0 ]
    python3 -c "
import json; r=json.load(open('$OUT')); w=r['warnings']
assert len(w) == 2 and w[0].startswith(\"the probe's file was truncated\"), w
assert w[1].startswith('the run with ') and 'libmdalloc.so: the probe' in w[1], w"
}
