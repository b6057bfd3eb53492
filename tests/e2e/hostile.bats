#!/usr/bin/env bats
# Hostile targets for `malloc-doctor trace` (issue 7): programs that start hundreds of threads or
# processes, close every descriptor, daemonize, ignore SIGTERM, flood stdout or run out of address
# space, and an environment that denies ptrace. Each fixture knows its own allocation counts;
# the report must match them exactly, and the tool must never hang (`timeout 60` turns a hang
# into a failure).

setup() {
    cd "${MD_ROOT:-$BATS_TEST_DIRNAME/../..}"
    T=${MD_TOOL:-build/malloc-doctor}
    H=build/fixtures/hostile
    OUT=$(mktemp)
    PIDS=$(mktemp -u)
}

teardown() {
    # a test that failed half-way must not leave its targets running; a pid is killed only while
    # it is still one of our fixtures (pids are reused)
    local pid
    if [ -f "$PIDS" ]; then
        while read -r pid; do
            [[ "$(readlink "/proc/$pid/exe" 2>/dev/null)" != "$PWD/$H/"* ]] || kill -KILL "$pid"
        done <"$PIDS"
    fi
    rm -f "$OUT" "$PIDS" "$PIDS.probe"
}

# a python expression over the report r, printed
q() {
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($1)" "$OUT"
}

# python statements over the report r (assertions)
check() {
    python3 -c "import json,sys,collections; r=json.load(open(sys.argv[1]))
$1" "$OUT"
}

# succeeds when none of the pids in the file is alive
all_gone() {
    [ -s "$1" ] || return 1
    local pid
    while read -r pid; do
        ! kill -0 "$pid" 2>/dev/null || return 1
    done <"$1"
}

# Runs the tool on noterm in a session of its own, waits until both processes wrote their pids,
# sends signal $1 the way $2 says (tool: to the tool alone; group: to the tool's process group),
# and prints the tool's exit status (negative: killed by that signal, after its report).
signal_tool() {
    python3 - "$1" "$2" "$T" "$OUT" "$H/noterm" "$PIDS" <<'PY'
import os, signal, subprocess, sys, time
sig, how, tool, out, prog, pids = sys.argv[1:]
def default_signals():  # a shell's background job starts with SIGINT and SIGQUIT ignored
    for s in (signal.SIGINT, signal.SIGQUIT):
        signal.signal(s, signal.SIG_DFL)
# not bats's output pipe: a process that outlives the tool (noterm's child, after a SIGKILL)
# would hold it open, and bats would wait for it
p = subprocess.Popen([tool, 'trace', '--json', '-o', out, '--', prog, '10', pids],
                     start_new_session=True, preexec_fn=default_signals,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(200):  # the fixture writes both pids after its allocations
    if os.path.exists(pids) and len(open(pids).read().split()) == 2:
        break
    time.sleep(0.05)
# the program's probe file, for a test to find what a killed tool left behind
env = open('/proc/%s/environ' % open(pids).read().split()[0], 'rb').read().split(b'\0')
with open(pids + '.probe', 'wb') as f:
    f.write(b''.join(e[len(b'MD_PROBE_FILE='):] for e in env if e.startswith(b'MD_PROBE_FILE=')))
(os.kill if how == 'tool' else os.killpg)(p.pid, getattr(signal, 'SIG' + sig))
print(p.wait(timeout=30))
PY
}

@test "the tool gets SIGTERM: the program's tree is ended, the report written, no file left" {
    tmp=$BATS_TEST_TMPDIR/tmp
    mkdir "$tmp"
    TMPDIR=$tmp run signal_tool TERM tool
    [ "$status" -eq 0 ]
    [ "$output" = -15 ] # died of SIGTERM, as it was told, after the report
    [ "$(ls "$tmp" | wc -l)" -eq 0 ]
    probe=$(cat "$PIDS.probe")
    [[ "$probe" == /dev/shm/malloc-doctor-probe-* ]]
    [ ! -e "$probe" ]
    check "
run, ops = r['run'], r['ops']
assert run['interrupted_by'] == 'TERM' and run['timed_out'] is False, run
assert run['signal'] == 'KILL', run  # noterm ignores SIGTERM: SIGKILL after the grace period
assert ops['malloc'] == 20 and ops['free'] == 20, ops"
    all_gone "$PIDS"
}

# succeeds while pid $1 runs (a zombie whose new parent has not reaped it yet does not count)
running() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) && [ "$state" != Z ]
}

@test "the tool gets SIGKILL: the program dies with it; the next run removes the files it left" {
    tmp=$BATS_TEST_TMPDIR/tmp
    mkdir "$tmp"
    TMPDIR=$tmp run signal_tool KILL tool
    [ "$status" -eq 0 ]
    [ "$output" = -9 ]
    parent=$(head -1 "$PIDS")
    for _ in $(seq 50); do running "$parent" || break; sleep 0.1; done
    # the child in its own session is the program's business (teardown ends it)
    run running "$parent"
    [ "$status" -ne 0 ]
    # what the killed run could not remove: strace's log and the probe file
    [ "$(ls "$tmp" | grep -c '^malloc-doctor-strace-')" -eq 1 ]
    probe=$(cat "$PIDS.probe")
    [[ "$probe" == /dev/shm/malloc-doctor-probe-* ]]
    [ -e "$probe" ]
    # a young file may be a run that has not locked it yet: kept
    TMPDIR=$tmp "$T" trace -o /dev/null -- true
    [ "$(ls "$tmp" | wc -l)" -eq 1 ]
    [ -e "$probe" ]
    touch -d '2 minutes ago' "$tmp"/* "$probe"
    TMPDIR=$tmp "$T" trace -o /dev/null -- true
    [ "$(ls "$tmp" | wc -l)" -eq 0 ]
    [ ! -e "$probe" ]
}

@test "SIGINT to the process group, and SIGHUP: report written, the tool dies of it, tree gone" {
    run signal_tool INT group
    [ "$status" -eq 0 ]
    [ "$output" = -2 ]
    [ "$(q "r['run']['interrupted_by']")" = INT ]
    all_gone "$PIDS"
    rm -f "$PIDS"
    run signal_tool HUP tool
    [ "$status" -eq 0 ]
    [ "$output" = -1 ]
    [ "$(q "r['run']['interrupted_by']")" = HUP ]
    all_gone "$PIDS"
}

# Runs the tool with the arguments after $1 on a program that ignores SIGINT and sleeps 2 s, sends
# the tool $1 SIGINTs from 1 s on (from a process, to the tool alone: a session of its own), and
# prints the program's output and the tool's exit status (negative: died of that signal).
sigints() {
    python3 - "$T" "$@" <<'PY'
import signal, subprocess, sys, time
tool, count, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
p = subprocess.Popen([tool] + args + ['--', 'sh', '-c', 'trap "" INT; sleep 2; echo survived'],
                     start_new_session=True,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
time.sleep(1)
for _ in range(count):
    p.send_signal(signal.SIGINT)
    time.sleep(0.5)  # a second Ctrl-C, not a copy of the first (lib/run.c: 0.15 s)
print(p.stdout.read().decode().strip() or '-', p.wait(timeout=30))
PY
}

@test "one SIGINT that the program ignores: passed on, the run goes to its end, the tool exits 0" {
    run sigints 1 trace --json -o "$OUT"
    [ "$status" -eq 0 ]
    [ "$output" = "survived 0" ]
    check "
run = r['run']
assert run['interrupted_by'] is None and run['signal_passed_on'] == 'INT', run
assert run['exit_code'] == 0 and run['wall_seconds'] >= 1.9, run"
    # the text does not call the run cut short
    run sigints 1 doctor -o "$BATS_TEST_TMPDIR/text"
    [ "$output" = "survived 0" ]
    grep -q "^note: SIGINT reached the program during the run (the tool passes the first one on" "$BATS_TEST_TMPDIR/text"
    run grep -q "INTERRUPTED" "$BATS_TEST_TMPDIR/text"
    [ "$status" -ne 0 ]
    # a run that no signal reached says nothing of one
    "$T" trace --json -o "$OUT" -- true
    [ "$(q "r['run']['interrupted_by'], r['run']['signal_passed_on']")" = "None None" ]
}

@test "a second SIGINT ends the program that ignored the first: cut short, the tool dies of it" {
    run sigints 2 trace --json -o "$OUT"
    [ "$status" -eq 0 ]
    [ "$output" = "- -2" ]
    check "
run = r['run']
assert run['interrupted_by'] == 'INT' and run['signal_passed_on'] == 'INT', run
assert run['exit_code'] is None and run['wall_seconds'] < 1.9, run"
}

@test "a SIGINT sent to the tool and, just after, to its group is one: the program gets it once" {
    # the group's copy reaches the program itself; taken for a second Ctrl-C, it ended the run
    run python3 - "$T" "$OUT" <<'PY'
import os, signal, subprocess, sys, time
counter = ('import signal, time\nn = [0]\n'
           'signal.signal(signal.SIGINT, lambda s, f: n.__setitem__(0, n[0] + 1))\n'
           'time.sleep(2)\nprint("caught", n[0])')
p = subprocess.Popen([sys.argv[1], 'trace', '--json', '-o', sys.argv[2], '--', 'python3', '-c',
                      counter], start_new_session=True,
                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
time.sleep(1)
os.kill(p.pid, signal.SIGINT)
time.sleep(0.03)  # apart, so that the two are not merged into one pending signal
os.killpg(p.pid, signal.SIGINT)
print(p.stdout.read().decode().strip(), p.wait(timeout=30))
PY
    [ "$status" -eq 0 ]
    [ "$output" = "caught 1 0" ]
    check "
run = r['run']
assert run['interrupted_by'] is None and run['signal_passed_on'] == 'INT', run
assert run['exit_code'] == 0, run"
}

@test "200 threads at once: each worker's operations exact, threads and futex waits plausible" {
    run timeout 60 "$T" trace --json -o "$OUT" -- "$H/threads" 200 500
    [ "$status" -eq 0 ]
    [[ "$output" == *"hostile-threads: 200 threads, 500 malloc 500 free each"* ]]
    check "
ops, threads, futex = r['ops'], r['threads'], r['futex']
# glibc starts and ends threads with calloc and free (thread-local storage vectors), never
# malloc: every malloc in the report is a worker's
assert ops['malloc'] == 200 * 500, ops
assert ops['free'] >= 200 * 500, ops
workers = [t for t in threads if t['ops'] == 2 * 500]
assert len(workers) == 200, collections.Counter(t['ops'] for t in threads)
assert len(threads) == 201 and len({t['tid'] for t in threads}) == 201, len(threads)
assert len({t['pid'] for t in threads}) == 1, 'one process'
assert r['run']['probed_processes'] == 1 and r['run']['exit_code'] == 0, r['run']
# the barrier and pthread_join block: at least one wait, and not thousands
assert 1 <= futex['waits'] <= futex['calls'] <= 10 * 200, futex
assert futex['wait_seconds'] >= 0 and futex['allocator_waits'] <= futex['waits'], futex"
}

@test "50 forked children: every process's count exact, every process counted" {
    run timeout 60 "$T" trace --json -o "$OUT" -- "$H/forks" 50 10
    [ "$status" -eq 0 ]
    [[ "$output" == *"hostile-forks: 50 children, 0 failed"* ]]
    check "
ops = r['ops']
assert ops['malloc'] == 10 * 50 * 51 // 2 and ops['free'] == ops['malloc'], ops
per_pid = collections.Counter()
for t in r['threads']:
    per_pid[t['pid']] += t['ops']
# child i made i*10 pairs: 20, 40, ... 1000 operations, one process each
assert sorted(v for v in per_pid.values() if v) == [20 * i for i in range(1, 51)], per_pid
assert r['run']['processes'] == 51, r['run']"
}

@test "all descriptors closed, then allocations and an exec with nothing open: counts complete" {
    run timeout 60 "$T" trace --json --propagate-exit -o "$OUT" -- "$H/closefds" 3000
    # 0: the exec'd child found fd 1 closed too (its write failed with EBADF)
    [ "$status" -eq 0 ]
    check "
assert r['ops']['malloc'] == 6000 and r['ops']['free'] == 6000, r['ops']
per_pid = collections.Counter()
for t in r['threads']:
    per_pid[t['pid']] += t['ops']
assert sorted(per_pid.values()) == [6000, 6000], per_pid
assert r['run']['probed_processes'] == 2 and r['run']['processes'] == 2, r['run']"
}

@test "a daemon (double fork, setsid, parent exits at once): trace waits for it and counts it" {
    run timeout 60 "$T" trace --json -o "$OUT" -- "$H/daemon" 1000 200 "$PIDS"
    [ "$status" -eq 0 ]
    check "
assert r['ops']['malloc'] == 200 and r['ops']['free'] == 200, r['ops']
run = r['run']
assert run['exit_code'] == 0 and run['timed_out'] is False, run
assert run['wall_seconds'] >= 1.0, run   # the daemon's second, not the launcher's instant
assert run['processes'] == 3, run        # launcher, session leader, daemon"
    all_gone "$PIDS"
}

@test "--timeout shorter than the daemon's life: it is killed, the report says so" {
    run timeout 60 "$T" trace --timeout 1.5 --json -o "$OUT" -- "$H/daemon" 6000 600 "$PIDS"
    [ "$status" -eq 0 ]
    check "
run, ops = r['run'], r['ops']
assert run['timed_out'] is True and run['timeout_seconds'] == 1.5, run
assert run['exit_code'] == 0, run          # the launcher itself exited at once
assert 1.5 <= run['wall_seconds'] < 5, run  # not the daemon's 6 s
assert run['processes'] == 3, run          # the killed daemon is counted
# killed part-way: some pairs made, at most one malloc without its free
assert 0 < ops['malloc'] < 600 and ops['malloc'] - 1 <= ops['free'] <= ops['malloc'], ops"
    all_gone "$PIDS"
}

@test "CPU time counts the processes trace reaps itself: a daemon, a child the timeout left" {
    # both are reaped by trace, not by a parent that waits for them: their time (and faults) went
    # uncounted, 0.003 s of CPU for runs that were busy all along
    printf '#!/bin/sh\ni=0; while [ $i -lt 300000 ]; do i=$((i+1)); done\n' >"$BATS_TEST_TMPDIR/busy"
    printf '#!/bin/sh\nwhile :; do :; done\n' >"$BATS_TEST_TMPDIR/spin"
    chmod +x "$BATS_TEST_TMPDIR/busy" "$BATS_TEST_TMPDIR/spin"
    run timeout 60 "$T" trace --json -o "$OUT" -- sh -c '(setsid "$1" &); exit 0' _ "$BATS_TEST_TMPDIR/busy"
    [ "$status" -eq 0 ]
    check "assert r['run']['user_seconds'] + r['run']['sys_seconds'] >= 0.1, r['run']"
    run timeout 60 "$T" trace --timeout 1 --json -o "$OUT" -- sh -c '"$1"; true' _ "$BATS_TEST_TMPDIR/spin"
    [ "$status" -eq 0 ]
    check "assert r['run']['timed_out'] and r['run']['user_seconds'] + r['run']['sys_seconds'] >= 0.1, r['run']"
}

@test "ignores SIGTERM, runs forever, a child in another session: --timeout 2 ends the whole tree" {
    run timeout 60 "$T" trace --timeout 2 --propagate-exit --json -o "$OUT" -- "$H/noterm" 1000 "$PIDS"
    [ "$status" -eq 124 ]
    check "
run, ops = r['run'], r['ops']
assert run['timed_out'] is True and run['signal'] == 'KILL', run  # SIGTERM was ignored
assert 2 <= run['wall_seconds'] < 8, run
assert run['processes'] == 2, run
assert ops['malloc'] == 2000 and ops['free'] == 2000, ops"
    [ "$(wc -l <"$PIDS")" -eq 2 ]
    all_gone "$PIDS"
    rm -f "$PIDS"
    run timeout 60 "$T" trace --timeout 1 -- "$H/noterm" 10 "$PIDS"
    [ "$status" -eq 0 ]
    [[ "$output" == *"exit: killed by SIGKILL"* ]]
    [[ "$output" == *"TIMED OUT after 1 s"* ]]
    [[ "$output" == *"allocator operations: 40 "* ]]
    all_gone "$PIDS"
}

@test "static program (uprobes) ignoring SIGTERM: --timeout ends it, the uprobe counts survive" {
    run timeout 60 "$T" trace --uprobes --timeout 1 --json -o "$OUT" -- "$H/noterm-musl-static" 500 "$PIDS"
    [ "$status" -eq 0 ]
    check "
run, ops = r['run'], r['ops']
assert r['mode'] == 'uprobes' and ops['source'] == 'uprobes', (r['mode'], ops)
assert run['timed_out'] is True and run['signal'] == 'KILL' and run['processes'] == 2, run
assert ops['malloc'] == 1000 and ops['free'] == 1000, ops"
    all_gone "$PIDS"
}

@test "static program (hooks) ignoring SIGTERM: --timeout ends it, the hooks' counts survive" {
    run timeout 60 "$T" trace --timeout 1 --json -o "$OUT" -- "$H/noterm-musl-static" 500 "$PIDS"
    [ "$status" -eq 0 ]
    check "
run, ops = r['run'], r['ops']
assert r['mode'] == 'hooks' and ops['source'] == 'hooks', (r['mode'], ops)
assert run['timed_out'] is True and run['signal'] == 'KILL' and run['processes'] == 2, run
assert run['probed_processes'] == 2, run  # the forked child attached on its own
assert ops['malloc'] == 1000 and ops['free'] == 1000, ops"
    all_gone "$PIDS"
}

@test "100 MB on stdout: every byte arrives, the report goes to -o, counts exact" {
    run bash -c 'set -o pipefail; timeout 60 "$1" trace --json -o "$2" -- "$3" 100 | wc -c' \
        _ "$T" "$OUT" "$H/bigout"
    [ "$status" -eq 0 ]
    [ "$output" -eq 104857600 ]
    check "
assert r['ops']['malloc'] == 1600 and r['ops']['free'] == 1600, r['ops']
assert r['run']['exit_code'] == 0, r['run']"
}

@test "tiny RLIMIT_AS: failed mallocs counted, and a process exec'd under 40 MiB is still counted" {
    run timeout 60 "$T" trace --json -o "$OUT" -- "$H/rlimit" 20
    [ "$status" -eq 0 ]
    [[ "$output" == *"hostile-rlimit parent: 20 ENOMEM of 20, 20 small ok"* ]]
    [[ "$output" == *"hostile-rlimit child: 20 ENOMEM of 20, 20 small ok"* ]]
    check "
ops, run = r['ops'], r['run']
# per process: 20 failed 64 MiB mallocs, 20 small malloc/free pairs (free(NULL) is not a call)
assert ops['malloc'] == 80 and ops['free'] == 40, ops
assert run['probed_processes'] == 2 and run['processes'] == 2 and run['exit_code'] == 0, run
mmap = [s for s in r['syscalls'] if s['name'] == 'mmap'][0]
assert mmap['failed'] >= 40, mmap   # each failed request was refused by the kernel"
}

@test "ptrace denied (seccomp, as in a container): a clear error before the program runs" {
    # LeakSanitizer stops the world with ptrace, which the filter denies
    run env ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        timeout 60 "$H/noptrace" "$T" trace -- build/fixtures/lifecycle exit 10
    [ "$status" -eq 2 ]
    [[ "$output" == *"ptrace is not permitted here (PTRACE_SEIZE: Operation not permitted)"* ]]
    [[ "$output" == *"seccomp filter denies it"*"--cap-add=SYS_PTRACE"* ]]
    [[ "$output" != *"lifecycle"* ]] # the program was not run untraced
}

@test "--timeout: a run that ends in time is not marked; bad values are usage errors" {
    run timeout 60 "$T" trace --timeout 30 --json -o "$OUT" -- build/fixtures/lifecycle exit 100
    [ "$status" -eq 0 ]
    check "
run = r['run']
assert run['timed_out'] is False and run['timeout_seconds'] == 30 and run['wall_seconds'] < 20, run
assert r['ops']['malloc'] == 100, r['ops']"
    for bad in 0 -1 -0.5; do
        run "$T" trace --timeout "$bad" -- build/fixtures/lifecycle exit 1
        [ "$status" -eq 2 ]
        [[ "$output" == *"--timeout needs a number of seconds greater than 0 (e.g. 2 or 0.5), not '$bad'"* ]]
    done
    # strtod's other forms are refused as forms: 1e3 is not "not greater than 0"
    for bad in abc nan inf 1e3 0x10 "" . 1e999; do
        run "$T" trace --timeout "$bad" -- build/fixtures/lifecycle exit 1
        [ "$status" -eq 2 ]
        [[ "$output" == *"--timeout takes seconds in plain decimal digits (e.g. 2 or 0.5), not '$bad'"* ]]
    done
    run "$T" trace --timeout 99999999 -- build/fixtures/lifecycle exit 1
    [ "$status" -eq 2 ]
    [[ "$output" == *"--timeout: at most 31536000 seconds"* ]]
    run "$T" trace --help
    [[ "$output" == *"--timeout SECONDS"* ]]
}

@test "a standard output that cannot be written: exit 2 and why, never a silent 0" {
    run bash -c '"$1" inspect build/fixtures/musl-static >/dev/full' _ "$T"
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: inspect: cannot write the standard output: No space left on device" ]
    run bash -c '"$1" trace -- true >/dev/full' _ "$T"
    [ "$status" -eq 2 ]
    [[ "$output" == *"malloc-doctor: trace: cannot write the standard output: No space left on device" ]]
    # a pipe whose reader left before the report: the run's result is lost, so it says so
    # (the program itself still dies of its SIGPIPE, as without the tool)
    run bash -c 'set -o pipefail; "$1" trace -- yes 2>"$2" | head -2 >/dev/null' _ "$T" "$OUT"
    [ "$status" -eq 2 ]
    [ "$(cat "$OUT")" = "malloc-doctor: trace: cannot write the standard output: Broken pipe" ]
    # a closed stdout is held by /dev/full, so the report cannot land in a descriptor the tool
    # opened for something else (its taskstats socket took fd 1 before)
    run bash -c '"$1" trace --json -o "$2" -- true >&-' _ "$T" "$OUT"
    [ "$status" -eq 0 ]
    [ "$(q "r['run']['exit_code']")" = 0 ]
}

@test "standard descriptors the caller closed stay closed for the program (preload and the static probe)" {
    local seen=$BATS_TEST_TMPDIR/fds
    for prog in stdfds stdfds-musl-static; do
        # the program alone sees them closed; under trace (the report to a file) as well
        "$H/$prog" "$seen" <&- >&-
        [ "$(sed -n 1,2p "$seen")" = "0 closed
1 closed" ]
        for sys in strace perf; do
            [ "$sys" = strace ] || [ "$(id -u)" = 0 ] || continue
            run bash -c '"$1" trace --syscalls "$2" --json -o "$3" -- "$4" "$5" <&- >&-' _ "$T" \
                "$sys" "$OUT" "$H/$prog" "$seen"
            [ "$status" -eq 0 ]
            [ "$(q "r['run']['exit_code']")" = 0 ]
            [ "$(sed -n 1,2p "$seen")" = "0 closed
1 closed" ]
        done
    done
    # stderr too
    run bash -c '"$1" trace --json -o "$2" -- "$3" "$4" 2>&-' _ "$T" "$OUT" "$H/stdfds" "$seen"
    [ "$status" -eq 0 ]
    [ "$(sed -n 3p "$seen")" = "2 closed" ]
}

@test "the program truncates the probe file: a warning in the report, never a crash of the tool" {
    # the tool has the file mapped across the run: reading its lost pages raised SIGBUS
    run timeout 60 "$T" trace --json -o "$OUT" -- sh -c 'truncate -s 0 "$MD_PROBE_FILE"'
    [ "$status" -eq 0 ]
    [[ "$(q "r['warnings'][0]")" == "the probe's file was truncated or rewritten during the run"* ]]
    # its zeros are not counts: no operations counted, no process said to have run unprobed
    [ "$(q "r['ops']['source'], r['run']['probed_processes'], r['run']['unprobed_programs']")" = "None None None" ]
    run timeout 60 "$T" trace -- sh -c 'truncate -s 0 "$MD_PROBE_FILE"; ls / >/dev/null'
    [ "$status" -eq 0 ]
    [[ "$output" == *"warning: the probe's file was truncated"* ]]
    [[ "$output" != *"ran without the probe"* ]]
    # grown back to its size, the file has lost its header all the same
    run timeout 60 "$T" trace --json -o "$OUT" -- sh -c 's=$(stat -c %s "$MD_PROBE_FILE"); truncate -s 0 "$MD_PROBE_FILE"; truncate -s "$s" "$MD_PROBE_FILE"'
    [ "$status" -eq 0 ]
    [[ "$(q "r['warnings'][0]")" == "the probe's file was truncated or rewritten during the run"* ]]
    # doctor does not call such a run healthy; the shell's own probe, writing to the lost pages,
    # dies of SIGBUS (the program cut the file it writes to), and the verdict says so first
    run timeout 60 "$T" doctor -- sh -c 'truncate -s 0 "$MD_PROBE_FILE"; ls / >/dev/null'
    [ "$status" -eq 0 ]
    [[ "$output" == *"warning: the probe's file was truncated"* ]]
    [[ "$output" == *"verdict: not judged: the program was killed by SIGBUS"* ]]
    [[ "$output" != *healthy,* ]]
    # an ordinary run has no warnings at all
    "$T" trace --json -o "$OUT" -- true
    [ "$(q "'warnings' in r")" = False ]
}

@test "the program rewrites the probe file's header in place: a warning, never a crash of the tool or of itself" {
    # a table count blown up: the tool once read its slots from it, past the end of the mapping
    run timeout 60 "$T" trace --json -o "$OUT" -- sh -c 'printf "\377\377\377\177" | dd of="$MD_PROBE_FILE" bs=1 seek=12 conv=notrunc 2>/dev/null; ls / >/dev/null'
    [ "$status" -eq 0 ]
    [[ "$(q "r['warnings'][0]")" == "the probe's file was truncated or rewritten during the run"* ]]
    [ "$(q "r['run']['exit_code']")" = 0 ]
    # the header zeroed, with leaks tracked (doctor's default): the shell's probe once found its
    # live-block table at an offset made of zeros and crashed the shell; now it keeps the
    # geometry it read when it attached
    run timeout 60 "$T" doctor -- sh -c 'dd if=/dev/zero of="$MD_PROBE_FILE" bs=64 count=1 conv=notrunc 2>/dev/null; ls / >/dev/null'
    [ "$status" -eq 0 ]
    [[ "$output" == *"exit: 0 "* ]]
    [[ "$output" == *"verdict: not judged: the numbers the rules judge may be missing or wrong"* ]]
}
