#!/bin/sh
# trace's overhead on a 2-thread malloc/free loop, side by side with strace -f -c, in one run;
# then trace's fixed cost per run.
# Goals (issue 4): default mode at most 1.3x on glibc dynamic and 2.0x on static musl, --stacks at
# most 3x. Besides the ratios it prints what trace adds per allocator call, in ns: on glibc the
# probe's cost, on static musl the static probe's hooks (and, with --uprobes, a uprobe hit, which
# is this machine's breakpoint trap).
set -eu
. "$(dirname "$0")/usage.sh"
bench_usage "$@"
T=${MD_TOOL:-build/malloc-doctor}
B=build/bench
mkdir -p $B
gcc -O2 -pthread -o $B/mtloop-glibc tests/bench/src/mtloop.c
musl-gcc -O2 -static -o $B/mtloop-musl tests/bench/src/mtloop.c
for r in 0 1; do
    gcc -O2 -fPIC -shared -DFORWARD_RETURNS=$r -o $B/forward-$r.so tests/bench/src/forward_shim.c
done
# what trace's strace stops on (lib/run.c): the floor under trace's own cost
syscalls=mmap,munmap,mremap,madvise,brk,mprotect,futex,execve,execveat
out=$(mktemp)
json=$(mktemp)
# musl's malloc is ~40x slower and every uprobe hit (--uprobes) costs microseconds: fewer
# iterations there.
# threads:iterations; the 1-thread musl run has no lock contention, so its added time is the
# uprobe hits alone. The glibc loop runs twice: 20M pairs (0.2 s, where trace's fixed cost of
# about 50 ms weighs 0.25x by itself) and 100M pairs, where the cost per call dominates.
for v in glibc:2:20000000 glibc:2:100000000 musl:2:200000 musl:1:200000; do
    lib=${v%%:*} rest=${v#*:}
    threads=${rest%%:*} n=${rest#*:}
    p="$B/mtloop-$lib $n $threads"
    echo "trace overhead, $lib (mtloop-$lib: $threads thread(s) x $n malloc/free pairs):"
    # static programs: the static probe's hooks by default; uprobes side by side
    set -- -n "plain" "$p" \
        -n "strace -f -c" "strace -f -c -o /dev/null $p" \
        -n "strace as trace runs it" "strace -D -f --seccomp-bpf --timestamps=unix,ns --syscall-times=ns -e trace=$syscalls -o /dev/null $p" \
        -n "malloc-doctor trace" "$T trace -o /dev/null -- $p" \
        -n "malloc-doctor trace --stacks" "$T trace --stacks -o /dev/null -- $p"
    # the floor under an exact interposer (tests/bench/src/forward_shim.c), and the probe without
    # its tail mode (alloc/probe.c), which regains control after every call
    if [ "$lib" = glibc ]; then
        set -- "$@" -n "preloaded wrapper, tail call" "env LD_PRELOAD=$B/forward-0.so $p" \
            -n "preloaded wrapper that regains control" "env LD_PRELOAD=$B/forward-1.so $p" \
            -n "malloc-doctor trace --no-tail-calls" "$T trace --no-tail-calls -o /dev/null -- $p"
    fi
    # the other syscall recorder side by side: static programs default to perf, dynamic to strace
    if [ "$lib" = glibc ] && [ "$n" -le 20000000 ]; then
        set -- "$@" -n "malloc-doctor trace --syscalls perf" "$T trace --syscalls perf -o /dev/null -- $p"
    elif [ "$lib" = glibc ]; then
        : # 5x of a 1 s program adds nothing the short row does not show
    else
        set -- "$@" -n "malloc-doctor trace --syscalls strace" \
            "$T trace --syscalls strace -o /dev/null -- $p" \
            -n "malloc-doctor trace --uprobes" "$T trace --uprobes -o /dev/null -- $p"
    fi
    if [ "$lib" = glibc ]; then
        # the glibc rows are a few percent apart: interleaved, so that the machine's slow phases
        # hit every command alike (tests/bench/interleave.py)
        python3 tests/bench/interleave.py --rounds 8 --json "$json" "$@"
    else
        hyperfine -N --warmup 1 --runs 5 --style none --export-markdown "$out" --export-json "$json" \
            "$@" >/dev/null
        cat "$out"
    fi
    # one malloc and one free per pair and thread; wall time, so with 2 threads on 2 cores the
    # figure is per call and thread
    python3 - "$json" "$n" "$threads" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))  # hyperfine's export, or interleave.py's medians
runs = {r["command"]: r["mean"] for r in data["results"]} if "results" in data else data
calls = 2 * int(sys.argv[2])
for name in ("preloaded wrapper, tail call", "preloaded wrapper that regains control",
             "malloc-doctor trace", "malloc-doctor trace --no-tail-calls",
             "malloc-doctor trace --stacks", "malloc-doctor trace --uprobes"):
    if name not in runs:
        continue
    added = (runs[name] - runs["plain"]) / calls * 1e9
    print(f"{name}: {added:.1f} ns added per call and thread")
EOF
    echo
done
# the 1-thread static musl loop 10 times longer, so that trace's fixed cost per run (below)
# weighs less; uprobes would take half a minute per run here
p="$B/mtloop-musl 2000000 1"
echo "trace overhead, musl (mtloop-musl: 1 thread(s) x 2000000 malloc/free pairs):"
hyperfine -N --warmup 1 --runs 5 --style none --export-markdown "$out" \
    -n "plain" "$p" \
    -n "malloc-doctor trace" "$T trace -o /dev/null -- $p" \
    -n "malloc-doctor trace --stacks" "$T trace --stacks -o /dev/null -- $p" \
    -n "malloc-doctor trace --syscalls strace" "$T trace --syscalls strace -o /dev/null -- $p" \
    >/dev/null
cat "$out"
echo

# trace's fixed cost per run: an empty static program (plain takes about a millisecond)
printf 'int main(void) { return 0; }\n' >$B/empty.c
musl-gcc -O2 -static -o $B/empty-musl $B/empty.c
echo "trace's fixed cost (an empty static musl program):"
hyperfine -N --warmup 2 --runs 15 --style none --export-markdown "$out" \
    -n "plain" "$B/empty-musl" \
    -n "malloc-doctor trace" "$T trace -o /dev/null -- $B/empty-musl" \
    -n "malloc-doctor trace --sample-hz 0" "$T trace --sample-hz 0 -o /dev/null -- $B/empty-musl" \
    -n "malloc-doctor trace --syscalls strace" "$T trace --syscalls strace -o /dev/null -- $B/empty-musl" \
    >/dev/null
cat "$out"
rm -f "$out" "$json"
