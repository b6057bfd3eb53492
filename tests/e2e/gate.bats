#!/usr/bin/env bats
# The CI gate: --fail-on on inspect, trace and doctor, and --baseline/--max-regression on real
# runs: an unchanged run passes, a deliberately regressed one fails with one line per regression.

load common

setup() {
    common_setup
}

teardown() {
    common_teardown
}

@test "inspect --fail-on: exit 1 at or above the level, 0 below it, 2 for a bad level" {
    run "$T" inspect --fail-on warning "$FX/musl-static"
    [ "$status" -eq 1 ]
    [[ "$output" == *"1 finding at or above warning (--fail-on)"* ]]
    run "$T" inspect --fail-on error "$FX/musl-static"
    [ "$status" -eq 0 ]
    run "$T" inspect --fail-on info "$FX/glibc-dynamic"
    [ "$status" -eq 0 ]
    run "$T" inspect --fail-on fatal "$FX/musl-static"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--fail-on needs info, warning or error, not 'fatal'"* ]]
}

@test "trace --fail-on error fails on the seed-004 toy's size-class overflow" {
    run "$T" trace --fail-on error -o "$DIR/r.txt" -- "$FX/toy-driver"
    [ "$status" -eq 1 ]
    [[ "$output" == *"at or above error (--fail-on)"* ]]
    grep -q "error MD004" "$DIR/r.txt"
    run "$T" trace --fail-on error -o "$DIR/r.txt" -- "$FX/toy-driver-fixed"
    [ "$status" -eq 0 ]
}

@test "--baseline: an unchanged run passes, a regressed run fails with one line per regression" {
    # the baseline: the seed-004 program with its allocator fixed; the regression: the header bug
    run "$T" trace --json -o "$DIR/base.json" -- "$FX/toy-driver-fixed"
    [ "$status" -eq 0 ]
    run "$T" trace --json --baseline "$DIR/base.json" -o "$DIR/same.json" \
        -- "$FX/toy-driver-fixed"
    [ "$status" -eq 0 ]
    [ "$(qf "$DIR/same.json" "r['gate']['passed']")" = True ]
    [ "$(qf "$DIR/same.json" "len(r['gate']['compared']) >= 3")" = True ]
    [ "$(qf "$DIR/same.json" "r['gate']['same_program']")" = True ]
    [[ "$output" != *"another program"* ]]
    run "$T" trace --baseline "$DIR/base.json" --max-regression 5 -o "$DIR/reg.txt" \
        -- "$FX/toy-driver"
    [ "$status" -eq 1 ]
    regressions=$(grep -c "regression:" <<<"$output")
    [ "$regressions" -ge 1 ]
    [[ "$output" == *"regression: memory syscalls per 1000 ops "*" -> "*"limit 5%)"* ]]
    # rates to three decimals, a whole one too, in the line and the table
    [[ "$output" =~ "regression: memory syscalls per 1000 ops "[0-9]+\.[0-9]{3}" -> "[0-9]+\.[0-9]{3}" (" ]]
    grep -Eq '^memory syscalls per 1000 ops +[0-9]+\.[0-9]{3} +[0-9]+\.[0-9]{3} ' "$DIR/reg.txt"
    # another program's report: compared, and said so
    [[ "$output" == *"warning: $DIR/base.json is a report of $FX/toy-driver-fixed, another program than this run's"* ]]
    grep -q "gate: against $DIR/base.json, at most +5% per metric: FAILED" "$DIR/reg.txt"
}

@test "--baseline with a doctor report, and the JSON gate lists each regression once" {
    run "$T" doctor --json -o "$DIR/base.json" -- "$FX/toy-driver-fixed"
    [ "$status" -eq 0 ]
    run "$T" doctor --json --baseline "$DIR/base.json" -o "$DIR/reg.json" -- "$FX/toy-driver"
    [ "$status" -eq 1 ]
    [ "$(qf "$DIR/reg.json" "[x['metric'] for x in r['gate']['regressions']].count('memory_syscalls_per_op')")" = 1 ]
    [ "$(qf "$DIR/reg.json" "r['gate']['passed']")" = False ]
}

@test "peak RSS of a run that tracked leaks is not gated against one that did not" {
    # keeper keeps 200000 blocks of 32 B live: doctor's live-block table (leaks are tracked by
    # default) doubled its peak RSS against trace's, and an unchanged program failed the gate
    run "$T" trace --json -o "$DIR/trace.json" -- "$FX/keeper" 200000
    [ "$status" -eq 0 ]
    run "$T" doctor --baseline "$DIR/trace.json" --json -o "$DIR/doctor.json" -- "$FX/keeper" 200000
    [ "$status" -eq 0 ]
    python3 - "$DIR/doctor.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))['gate']
assert g['passed'] and 'peak_rss_kb' in g['not_comparable'], g
assert 'peak_rss_kb' not in [c['metric'] for c in g['compared']], g
PY
    # alike runs compare it
    run "$T" trace --baseline "$DIR/trace.json" --json -o "$DIR/again.json" -- "$FX/keeper" 200000
    [ "$status" -le 1 ] # compared: whether it passes is the noise's, not this test's
    python3 - "$DIR/again.json" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))['gate']
assert 'peak_rss_kb' in [c['metric'] for c in g['compared']], g
PY
}

@test "bad baselines are refused before the program runs" {
    run "$T" trace --baseline "$DIR/missing.json" -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"$DIR/missing.json: No such file or directory"* ]]
    [[ "$output" != *ran* ]]
    echo '{"schema": "malloc-doctor/1", "command": "inspect", "files": []}' >"$DIR/inspect.json"
    run "$T" trace --baseline "$DIR/inspect.json" -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"inspect.json: not a malloc-doctor trace report"* ]]
    # a report of a later schema is named as one, not as something else
    echo '{"schema": "malloc-doctor/2", "command": "trace", "run": {"max_rss_kb": 2048}}' >"$DIR/v2.json"
    run "$T" doctor --baseline "$DIR/v2.json" -- /bin/echo ran
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: doctor: $DIR/v2.json: a report of schema malloc-doctor/2, which this version does not read (it reads malloc-doctor/1)" ]
    printf '{"schema": "malloc-doctor/1", "comm' >"$DIR/cut.json"
    run "$T" trace --baseline "$DIR/cut.json" -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"cut.json: not JSON"* ]]
    # a report without a metric the gate compares would pass every run
    echo '{"schema": "malloc-doctor/1", "command": "trace"}' >"$DIR/empty.json"
    run "$T" trace --baseline "$DIR/empty.json" -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"empty.json: a report without any metric the gate compares"* ]]
    [[ "$output" != *ran* ]]
    run "$T" trace --max-regression 5 -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"--max-regression needs --baseline FILE"* ]]
    run "$T" trace --baseline "$DIR/cut.json" --max-regression -3 -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"--max-regression needs a percentage"* ]]
}

@test "--baseline on a FIFO or a directory is refused at once, not waited on" {
    mkfifo "$DIR/fifo"
    run timeout 10 "$T" trace --baseline "$DIR/fifo" -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"$DIR/fifo: not a regular file"* ]]
    [[ "$output" != *ran* ]]
    run timeout 10 "$T" trace --baseline "$DIR" -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"$DIR: not a regular file"* ]]
}

@test "--max-regression takes plain decimal digits, and 10% is told to drop the sign" {
    for bad in 0x10 " 10" 1e1 inf -3 "" 1.2.3; do
        run "$T" trace --baseline "$DIR/missing.json" --max-regression "$bad" -- /bin/echo ran
        [ "$status" -eq 2 ]
        [[ "$output" == *"--max-regression needs a percentage in plain decimal digits (e.g. 10 or 2.5), not '$bad'"* ]]
    done
    run "$T" trace --baseline "$DIR/missing.json" --max-regression 10% -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"--max-regression takes the number without the %: '10', not '10%'"* ]]
    run "$T" trace --baseline "$DIR/missing.json" --max-regression 2000000 -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"--max-regression: at most 1000000"* ]]
    # the accepted forms get as far as reading the baseline
    for good in 10 2.5 0 1000000; do
        run "$T" trace --baseline "$DIR/missing.json" --max-regression "$good" -- /bin/echo ran
        [[ "$output" == *"missing.json: No such file or directory"* ]]
    done
}

@test "--baseline and -o naming one file are refused: a failing run would replace its baseline" {
    echo '{"schema": "malloc-doctor/1", "command": "trace", "run": {"max_rss_kb": 2048}}' \
        >"$DIR/base.json"
    cp "$DIR/base.json" "$DIR/kept.json"
    ln "$DIR/base.json" "$DIR/hard.json"
    ln -s base.json "$DIR/sym.json"
    for out in "$DIR/base.json" "$DIR/hard.json" "$DIR/sym.json" "$DIR/../${DIR##*/}/base.json"; do
        for cmd in trace doctor; do
            run "$T" $cmd --json --baseline "$DIR/base.json" -o "$out" -- /bin/echo ran
            [ "$status" -eq 2 ]
            [[ "$output" == *"--baseline and -o name the same file: $out"* ]]
            [[ "$output" != *ran* ]]
        done
    done
    cmp "$DIR/base.json" "$DIR/kept.json"
}

@test "--folded naming the --baseline file is refused: folded stacks would replace the baseline" {
    echo '{"schema": "malloc-doctor/1", "command": "trace", "run": {"max_rss_kb": 2048}}' \
        >"$DIR/base.json"
    cp "$DIR/base.json" "$DIR/kept.json"
    ln "$DIR/base.json" "$DIR/hard.json"
    for folded in "$DIR/base.json" "$DIR/hard.json"; do
        run "$T" trace --baseline "$DIR/base.json" --stacks --folded "$folded" -- /bin/echo ran
        [ "$status" -eq 2 ]
        [[ "$output" == *"--baseline and --folded name the same file: $folded"* ]]
        [[ "$output" != *ran* ]]
    done
    cmp "$DIR/base.json" "$DIR/kept.json"
}

@test "-o replaces the report file only when the report is complete" {
    echo previous >"$DIR/report.txt"
    run "$T" trace --baseline "$DIR/missing.json" -o "$DIR/report.txt" -- /bin/true
    [ "$status" -eq 2 ]
    [ "$(cat "$DIR/report.txt")" = previous ]
    run "$T" trace -o "$DIR/report.txt" -- /bin/true
    [ "$status" -eq 0 ]
    grep -q "^trace: /bin/true" "$DIR/report.txt"
    [ -z "$(ls "$DIR" | grep 'report.txt.')" ]
}

@test "an empty file or directory name is a usage error naming the option, before the program runs" {
    for args in "trace -o" "doctor -o" "trace --output" "trace --baseline" "doctor --baseline" \
        "trace --compare-with" "trace --stacks --folded"; do
        run "$T" $args '' -- /bin/echo ran
        echo "$args '': $output"
        [ "$status" -eq 2 ]
        [ "${lines[0]}" = "malloc-doctor: ${args%% *}: ${args##* } needs a file name" ]
        [ "${lines[1]}" = "Try 'malloc-doctor ${args%% *} --help'." ]
    done
    run "$T" trace --baseline= -- /bin/echo ran
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "malloc-doctor: trace: --baseline needs a file name" ]
    run "$T" trace --probe-dir '' -- /bin/echo ran
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "malloc-doctor: trace: --probe-dir needs a directory name" ]
    run "$T" inspect --root '' /bin/true
    [ "$status" -eq 2 ]
    [ "${lines[0]}" = "malloc-doctor: inspect: --root needs a directory name" ]
}

@test "a baseline number that is not a measurement is refused, naming the file and the field" {
    check() { # JSON of the run object (and more), the error expected
        echo "{\"schema\": \"malloc-doctor/1\", \"command\": \"trace\", $1}" >"$DIR/b.json"
        run "$T" trace --baseline "$DIR/b.json" -- /bin/echo ran
        echo "$1: $output"
        [ "$status" -eq 2 ]
        [ "$output" = "malloc-doctor: trace: $DIR/b.json: $2" ]
    }
    check '"run": {"max_rss_kb": 1e999}' "run.max_rss_kb is inf: not a measurement (not a finite number)"
    check '"run": {"max_rss_kb": -5}' "run.max_rss_kb is -5: not a measurement (negative)"
    check '"run": {"max_rss_kb": 2048}, "futex": {"waits": -1}' \
        "futex.waits is -1: not a measurement (negative)"
    check '"run": {"max_rss_kb": 2048}, "syscalls": [{"name": "mmap", "count": -3}]' \
        "syscalls[].count is -3: not a measurement (negative)"
    # finite, but wider than the table's column
    check '"run": {"max_rss_kb": 1e308}' "peak_rss_kb would be 1e+308: too large for a measurement"
    # finite numbers whose quotient is not
    check '"ops": {"total": 1e-300, "source": "probe"}, "syscalls": [{"name": "mmap", "count": 1e300}]' \
        "memory_syscalls_per_op would be inf: too large for a measurement"
    check '"ops": {"total": 1, "source": "probe"}, "futex": {"waits": 1e300}' \
        "futex_waits_per_op would be 1e+300: too large for a measurement"
}

@test "a baseline near 0 keeps the gate's table in its columns" {
    echo '{"schema": "malloc-doctor/1", "command": "trace", "run": {"max_rss_kb": 1e-300}}' \
        >"$DIR/tiny.json"
    # 8 MiB more than the baseline's nothing: past the noise floor, a regression
    run "$T" trace --baseline "$DIR/tiny.json" -- python3 -c 'x = bytearray(8 << 20)'
    [ "$status" -eq 1 ]
    header=$(grep '^METRIC .*CHANGE$' <<<"$output")
    row=$(grep '^peak RSS (KiB) ' <<<"$output")
    echo "$header"$'\n'"$row"
    [[ "$row" =~ ^peak\ RSS\ \(KiB\)\ +1e-300\ +[0-9]+\ +\>\+99999%$ ]]
    [ "${#row}" -eq "${#header}" ]
    [[ "$output" == *"regression: peak RSS (KiB) 1e-300 -> "*" (>+99999%, limit 10%)"* ]]
}

@test "a baseline number edited into a string is refused before the run, naming the field" {
    # a doctor report edited by hand: its metrics went missing, and the gate compared nothing
    run "$T" doctor --json -o "$DIR/base.json" -- "$FX/toy-driver-fixed"
    [ "$status" -eq 0 ]
    for edit in "d['ops']['total'] = str(d['ops']['total'])" \
        "d['run']['max_rss_kb'] = str(d['run']['max_rss_kb'])" \
        "d['futex']['waits'] = {'n': 1}"; do
        python3 -c "import json; d = json.load(open('$DIR/base.json')); $edit
json.dump(d, open('$DIR/edited.json', 'w'))"
        run "$T" doctor --baseline "$DIR/edited.json" --json -o "$DIR/sn.json" -- /bin/echo ran
        echo "$edit: $output"
        [ "$status" -eq 2 ]
        [[ "$output" == "malloc-doctor: doctor: $DIR/edited.json: "*": not a number" ]]
        [[ "$output" != *ran* ]]
        [ ! -e "$DIR/sn.json" ]
    done
    [[ "$output" == *"futex.waits is an object: not a number" ]]
}

@test "a gate that compares no metric fails with exit 2 instead of passing" {
    # peak RSS alone, of a run that tracked leaks (doctor's), against a trace run: not alike
    echo '{"schema": "malloc-doctor/1", "command": "doctor", "run": {"max_rss_kb": 2048},
           "leaks": {"tracked": true}}' >"$DIR/base.json"
    run "$T" trace --baseline "$DIR/base.json" --json -o "$DIR/r.json" -- /bin/echo ran
    [ "$status" -eq 2 ]
    [[ "$output" == *"gate: nothing compared with $DIR/base.json: no metric was measured alike in both runs (peak_rss_kb, "* ]]
    [ "$(qf "$DIR/r.json" "(r['gate']['passed'], r['gate']['compared'])")" = "(False, [])" ]
}

@test "a baseline of a run that stopped short is compared with a warning" {
    run "$T" trace --timeout 0.2 --json -o "$DIR/base.json" -- sleep 5
    [ "$(qf "$DIR/base.json" "r['run']['timed_out']")" = True ]
    run "$T" trace --baseline "$DIR/base.json" --max-regression 1000000 --json -o "$DIR/r.json" \
        -- "$FX/toy-driver-fixed"
    [ "$status" -le 1 ]
    [[ "$output" == *"warning: $DIR/base.json covers only part of a run (the program timed out (--timeout)): this run is compared with that part"* ]]
    [ "$(qf "$DIR/r.json" "[w for w in r['gate']['warnings'] if 'covers only part' in w] != []")" = True ]
}

@test "the gate's table says new for a change from 0, and why a change past the limit passed" {
    run "$T" trace --json -o "$DIR/base.json" -- "$FX/toy-driver-fixed"
    [ "$status" -eq 0 ]
    # one memory syscall per 100000 ops: toy-driver-fixed's 0.1 or so per 1000 is +900% or more,
    # but under the floor of 1 per 1000; none: the header bug's 9 per 1000 is new
    python3 - "$DIR" <<'PY'
import json, sys
d = json.load(open(sys.argv[1] + '/base.json'))
d['syscalls'] = [{'name': 'mmap', 'count': d['ops']['total'] / 100000}]
json.dump(d, open(sys.argv[1] + '/one.json', 'w'))
d['syscalls'] = []
json.dump(d, open(sys.argv[1] + '/none.json', 'w'))
PY
    run "$T" trace --baseline "$DIR/one.json" -o "$DIR/floor.txt" -- "$FX/toy-driver-fixed"
    [ "$status" -le 1 ] # peak RSS is the noise's
    row=$(grep '^memory syscalls per 1000 ops ' "$DIR/floor.txt")
    echo "$row"
    [[ "$row" =~ ^memory\ syscalls\ per\ 1000\ ops\ +0\.010\ +[0-9.]+\ +\+[0-9.]+%\ \(below\ noise\ floor\)$ ]]
    run "$T" trace --baseline "$DIR/none.json" -o "$DIR/new.txt" -- "$FX/toy-driver"
    [ "$status" -eq 1 ]
    header=$(grep '^METRIC .*CHANGE$' "$DIR/new.txt")
    row=$(grep '^memory syscalls per 1000 ops ' "$DIR/new.txt")
    echo "$header"$'\n'"$row"
    [[ "$row" =~ ^memory\ syscalls\ per\ 1000\ ops\ +0\.000\ +[0-9.]+\ +new$ ]]
    [ "${#row}" -eq "${#header}" ]
    [[ "$output" == *"regression: memory syscalls per 1000 ops 0.000 -> "*" (new, limit 10%)"* ]]
}
