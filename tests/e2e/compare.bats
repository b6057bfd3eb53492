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

@test "--compare: time and memory come from a run of each without strace or the probe" {
    # each run of CMD notes what it had preloaded: the two traced runs have the probe, the two
    # untraced ones nothing and mdalloc alone (the probe's cost per call differs with the
    # allocator it forwards to: a 1.6x faster mdalloc showed as 1.3x slower)
    notes="$DIR/preloads"
    run "$T" trace --compare --json -o "$OUT" -- sh -c 'echo "${LD_PRELOAD:-none}" >>"$1"' _ "$notes" </dev/null
    [ "$status" -eq 0 ]
    [ "$(q "r['compare']['possible']")" = True ]
    mapfile -t seen <"$notes"
    [ "${#seen[@]}" -eq 4 ]
    [[ "${seen[0]}" == */libmdprobe.so ]]
    [[ "${seen[1]}" == */libmdprobe.so:*/libmdalloc.so ]]
    [ "${seen[2]}" = none ]
    [[ "${seen[3]}" == */libmdalloc.so && "${seen[3]}" != *libmdprobe* ]]
    python3 - "$OUT" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))['compare']
frm = {m['metric']: m['from'] for m in c['metrics']}
for k in ('wall_seconds', 'cpu_seconds', 'peak_rss_kb', 'minor_faults'):
    assert frm[k] == 'untraced', frm
assert frm['memory_syscalls_per_op'] == 'traced', frm
rows = {m['metric']: m for m in c['metrics']}
for side in ('own', 'with'):
    assert c['untraced'][side]['exit_code'] == 0, c['untraced']
    assert rows['wall_seconds'][side] == c['untraced'][side]['wall_seconds'], (rows, c['untraced'])
PY
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
    # the waits inside allocator calls apart (the whole share has the main thread's join in it)
    grep -Eq "^futex wait share in allocator +[0-9]+\.[0-9]% +[0-9]+\.[0-9]% " "$OUT"
}

@test "--compare-with preloads another allocator; a missing one is an error before any run" {
    lib=$(ls /usr/lib/x86_64-linux-gnu/libmimalloc.so.2* | head -1)
    run "$T" trace --compare-with "$lib" --json -o "$OUT" -- "$FX/glibc-dynamic"
    [ "$status" -eq 0 ]
    [ "$(q "r['compare']['allocator']")" = "${lib##*/}" ]
    [ "$(q "r['compare']['possible']")" = True ]
    # the text table keeps its columns under a heading for a long file name
    run "$T" trace --compare-with "$lib" -o "$OUT" -- "$FX/glibc-dynamic"
    [ "$status" -eq 0 ]
    header=$(grep '^METRIC' "$OUT")
    row=$(grep -A1 '^METRIC' "$OUT" | tail -1)
    [[ "$header" == *" WITH    RATIO" ]]
    [ "${#header}" -eq "${#row}" ]
    run "$T" trace --compare-with /nonexistent/libx.so -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"/nonexistent/libx.so: No such file or directory"* ]]
    [[ "$output" != *ran* ]]
    # a PIE executable is ET_DYN as a library is, but the loader cannot preload it
    run "$T" trace --compare-with "$FX/toy-driver" -- /bin/echo ran
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: trace: $FX/toy-driver: not a shared library (LD_PRELOAD needs a .so)" ]
}

@test "--compare-with: the fixes name the library the comparison ran with, not mdalloc" {
    lib=$(ls /usr/lib/x86_64-linux-gnu/libmimalloc.so.2* | head -1)
    run "$T" doctor --compare-with "$lib" --json -o "$OUT" -- "$FX/toy-driver"
    [ "$status" -eq 0 ]
    [ "$(q "r['compare']['possible']")" = True ]
    LIB="$lib" python3 -c "
import json, os; r=json.load(open('$OUT')); lib=os.environ['LIB']
fixes=[f['fix'] for f in r['findings'] if 'comparison ran it again' in f['fix']]
assert fixes, [f['fix'] for f in r['findings']]
for fix in fixes:
    assert 'ran it again with %s preloaded' % lib in fix and 'LD_PRELOAD=%s ' % lib in fix, fix
    assert 'mdalloc' not in fix, fix"
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

@test "--compare: stdin from a file is read again by the second run, from where it stood" {
    seq 1 2000 >"$DIR/in.txt"
    # the shell's read leaves the file's offset after the first line: both runs start there
    run bash -c '{ read -r first; "$0" trace --compare --json -o "$1" -- sort -n; } <"$2"' \
        "$T" "$OUT" "$DIR/in.txt"
    [ "$status" -eq 0 ]
    [ "$(grep -cx 2000 <<<"$output")" -eq 2 ]
    [ "$(grep -cx 2 <<<"$output")" -eq 2 ]
    [ "$(grep -cx 1 <<<"$output")" -eq 0 ]
    [ "$(q "r['compare']['possible']")" = True ]
    [ "$(q "abs(r['ops']['total'] - r['compare']['report']['ops']['total']) < 10")" = True ]
}

@test "--compare: stdin from a pipe or a socket is refused before CMD runs, unless CMD is static" {
    run bash -c 'seq 10 | "$0" doctor --compare -- sh -c "echo ran; cat >/dev/null"' "$T"
    [ "$status" -eq 2 ]
    [[ "$output" == *"doctor: stdin is a pipe: --compare runs CMD more than once, and a later run could not read what the first one read; redirect stdin from a file (< FILE), or from /dev/null when CMD does not read it"* ]]
    [[ "$output" != *ran* ]]
    run python3 -c '
import socket, subprocess, sys
a, b = socket.socketpair()
sys.exit(subprocess.call(sys.argv[1:], stdin=a))' "$T" trace --compare -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"trace: stdin is a socket: --compare runs CMD more than once"* && "$output" != *ran* ]]
    # /dev/null gives both runs the same (nothing)
    run "$T" trace --compare --json -o "$OUT" -- /bin/echo ran </dev/null
    [ "$status" -eq 0 ]
    [ "$(q "r['compare']['possible']")" = True ]
    # a static program gets no second run, so a pipe is no reason to refuse it
    run bash -c 'seq 10 | "$0" trace --compare --json -o "$1" -- "$2"' "$T" "$OUT" "$FX/musl-static"
    [ "$status" -eq 0 ]
    [ "$(q "r['compare']['possible']")" = False ]
    [[ "$(q "r['compare']['reason']")" == *"linked statically"* ]]
    # but a dynamic launcher of it does (its second run would preload mdalloc into env)
    run bash -c 'seq 10 | "$0" trace --compare -- env "$1"' "$T" "$FX/musl-static"
    [ "$status" -eq 2 ]
    [[ "$output" == *"trace: stdin is a pipe: --compare runs CMD more than once"* ]]
}

@test "--compare: runs whose allocator operations differ more than 2x are not compared" {
    # the first run finds the file, removes it and does the work; the second finds nothing to do
    # and exits 0 as well, so only the counts tell
    touch "$DIR/todo"
    run "$T" doctor --compare --json -o "$OUT" -- \
        sh -c '[ ! -e "$1" ] || { rm "$1"; "$2"; }' sh "$DIR/todo" "$FX/toy-driver"
    [ "$status" -eq 0 ]
    [ "$(q "r['compare']['possible'], 'metrics' in r['compare'], 'report' in r['compare']")" = "False False True" ]
    [ "$(q "r['ops']['total'] >= 100000 and r['compare']['report']['ops']['total'] < 1000")" = True ]
    [[ "$(q "r['compare']['reason']")" == "the run with $PWD/build/alloc/glibc/libmdalloc.so made "[0-9]*" allocator operations, the first run "[0-9]*": an allocator does not change how often a program allocates, so the two runs did not do the same work"* ]]
    # the fixes prescribe a comparison instead of pointing at this one, which did not happen
    [ "$(q "'MD004' in [f['id'] for f in r['findings'] if 'trace --compare --' in f['fix']]")" = True ]
    [ "$(q "[f['id'] for f in r['findings'] if 'comparison ran it again' in f['fix']]")" = "[]" ]
    # the text shows why, and no ratios to read a speedup from
    touch "$DIR/todo"
    run "$T" doctor --compare -o "$DIR/report.txt" -- \
        sh -c '[ ! -e "$1" ] || { rm "$1"; "$2"; }' sh "$DIR/todo" "$FX/toy-driver"
    [ "$status" -eq 0 ]
    grep -q "^compare: no comparison: the run with .* made [0-9]* allocator operations, the first run [0-9]*: " "$DIR/report.txt"
    [ "$(grep -Ec "RATIO|better with|[0-9]x$" "$DIR/report.txt")" -eq 0 ]
}

@test "--compare: runs stopped by --timeout are not compared" {
    # both runs last the timeout: a wall time ratio of 1.00x would say nothing of the allocator
    run "$T" trace --compare --timeout 1 --json -o "$OUT" -- sleep 3 </dev/null
    [ "$status" -eq 0 ]
    [ "$(q "r['run']['timed_out'], r['compare']['possible'], 'metrics' in r['compare']")" = "True False False" ]
    [[ "$(q "r['compare']['reason']")" == "both runs were stopped by --timeout: a run cut short did not do the whole work"* ]]
    # one run cut short is no comparison either: only the second stops here
    touch "$DIR/first"
    run "$T" trace --compare --timeout 1 --json -o "$OUT" -- \
        sh -c 'if [ -e "$1" ]; then rm "$1"; else sleep 3; fi' sh "$DIR/first" </dev/null
    [ "$status" -eq 0 ]
    [[ "$(q "r['compare']['reason']")" == "the run with $PWD/build/alloc/glibc/libmdalloc.so was stopped by --timeout"* ]]
}
