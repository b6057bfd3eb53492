#!/usr/bin/env bats
# C++'s operator new and delete under trace. build/fixtures/cxx-ops calls each of the 20
# replaceable operators a known number of times (tests/fixtures/src/cxx_ops.cpp): 1210 news (607
# of them unaligned, 603 aligned), 1200 deletes, and leaks 7 blocks of 40 B from leak_small and
# 3 of 256 B from leak_aligned. With libstdc++'s new, which calls malloc, each must count once,
# not twice; with an allocator that defines new and delete itself (tcmalloc, jemalloc, mimalloc),
# which never calls malloc for them, each must count at all.

load common

setup() {
    common_setup
}

teardown() {
    common_teardown
}

# Checks the report in $OUT of a run of cxx-ops: the program's own news and deletes exactly, as
# the calls they stand for, and its two leak sites. The allocator's own start-up may add news
# that it keeps for good (tcmalloc: 2): they are the leaked blocks no frame of the program made.
check_cxx_ops() {
    python3 - "$OUT" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ops, leaks = r['ops'], r['leaks']
sites = {s['frames'][0].split(' ')[0]: (s['blocks'], s['bytes']) for s in leaks['by_stack']}
assert sites['leak_small'] == (7, 280) and sites['leak_aligned'] == (3, 768), leaks
# kept for good by the allocator's start-up, in its own code (not the program's, not libstdc++'s)
own = sum(s['blocks'] for s in leaks['by_stack']
          if not s['frames'][0].startswith(('leak_', '0x')) and 'libstdc++' not in s['frames'][0])
assert ops['operator_new'] == 1210 + own and ops['operator_delete'] == 1200, (ops, leaks)
assert ops['aligned'] == 603, ops
# the other mallocs: libstdc++'s exception pool, bad_alloc's exception object, the allocator's
# own start-up; counted twice, the 607 news would make malloc at least 1214
assert 607 + own <= ops['malloc'] <= 607 + own + 4, ops
# every delete, once, and the exception object freed when the catch ended
assert ops['free'] == 1201, ops
assert ops['total'] == sum(ops[k] for k in ('malloc', 'free', 'calloc', 'realloc', 'aligned')), ops
PY
}

@test "C++: libstdc++'s operator new and delete, every variant, count once each (not again as the malloc inside)" {
    run "$T" trace --leaks --json -o "$OUT" -- "$FX/cxx-ops"
    [ "$status" -eq 0 ]
    run check_cxx_ops
    echo "$output"
    [ "$status" -eq 0 ]
    # the text report says how many of the calls were C++'s
    run "$T" trace -- "$FX/cxx-ops"
    [ "$status" -eq 0 ]
    [[ "$output" == *"C++: 1210 of the allocations were operator new, 1200 of the frees operator delete"* ]]
}

@test "C++: new and delete served by tcmalloc (linked) and jemalloc (preloaded) themselves are counted, leaks exact" {
    run "$T" trace --leaks --json -o "$OUT" -- "$FX/cxx-ops-tcmalloc"
    [ "$status" -eq 0 ]
    [[ "$(q "r['target']['malloc_at_run_time']['provider']")" == *libtcmalloc_minimal.so* ]]
    run check_cxx_ops
    echo "$output"
    [ "$status" -eq 0 ]
    # jemalloc preloaded: the run with it that --compare-with makes (an LD_PRELOAD given to trace
    # itself would preload it into the tool too, which its ASan build refuses)
    run "$T" trace --leaks --json -o "$OUT" --compare-with /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
        -- "$FX/cxx-ops" </dev/null
    [ "$status" -eq 0 ]
    qf "$OUT" "json.dumps(r['compare']['report'])" >"$DIR/jemalloc.json"
    mv "$DIR/jemalloc.json" "$OUT"
    [[ "$(q "r['target']['malloc_at_run_time']['provider']")" == *libjemalloc.so.2 ]]
    run check_cxx_ops
    echo "$output"
    [ "$status" -eq 0 ]
}

@test "C++, static: libstdc++'s new and delete are counted through malloc and free, with no note (hooks and uprobes)" {
    # the static probe and uprobes count at the malloc family's entries, where libstdc++'s
    # operators lead: exact counts, and nothing to warn about
    for mode in "" --uprobes; do
        run "$T" trace $mode --json -o "$OUT" -- "$FX/cxx-ops-static"
        [ "$status" -eq 0 ]
        python3 - "$OUT" "$mode" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r['mode'] == ('uprobes' if sys.argv[2] else 'hooks') and r['mode_note'] is None, (r['mode'], r['mode_note'])
ops = r['ops']
# 607 unaligned news as malloc (and start-up's), 603 aligned, 1200 deletes and bad_alloc's object
assert ops['malloc'] >= 607 and ops['aligned'] == 603 and ops['free'] >= 1201, ops
PY
    done
    run "$T" trace -- "$FX/cxx-ops-static"
    [ "$status" -eq 0 ]
    [[ "$output" != *"not counted"* ]]
}

@test "C++, static: tcmalloc's and jemalloc's own new and delete bypass malloc, and the report says they are not counted" {
    # before, the report gave the few mallocs left (tcmalloc: 10 of 1217) as the program's counts,
    # with no note
    for fx in cxx-ops-tcmalloc-static cxx-ops-jemalloc-static; do
        for mode in "" --uprobes; do
            run "$T" trace $mode --json -o "$OUT" -- "$FX/$fx"
            [ "$status" -eq 0 ]
            python3 - "$OUT" "$mode" "$fx" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
counter = 'uprobes' if sys.argv[2] else 'hooks'
allocator = 'tcmalloc (gperftools)' if 'tcmalloc' in sys.argv[3] else 'jemalloc'
assert r['mode'] == counter, r['mode']
note = r['mode_note'] or ''
assert note.startswith('C++ new and delete not counted: the program\'s operators (_Znwm, _Znam, '), note
assert f"are {allocator}'s own and do not call malloc and free, where the {counter} count" in note, note
# what the note says: most of the 607 unaligned news are missing
assert r['ops']['malloc'] < 100, r['ops']
PY
        done
    done
    run "$T" trace -- "$FX/cxx-ops-tcmalloc-static"
    [ "$status" -eq 0 ]
    [[ "$output" == *"note: C++ new and delete not counted: the program's operators (_Znwm, _Znam, _ZnwmRKSt9nothrow_t and 15 more) are tcmalloc (gperftools)'s own"* ]]
}

@test "C++: a memory syscall inside tcmalloc's operator new is tied to its request size; stacks name the caller" {
    # with an argument, cxx-ops news and deletes one block of 48 MiB last; tcmalloc grows its heap
    run "$T" trace --stacks --json -o "$OUT" -- "$FX/cxx-ops-tcmalloc" big
    [ "$status" -eq 0 ]
    python3 -c "
import json; r=json.load(open('$OUT'))
band = [b for b in r['size_bands'] if b['from'] <= 48 << 20 <= b['to']]
assert len(band) == 1 and band[0]['requests'] == 1 and band[0]['memory_syscalls'] >= 1, r['size_bands']
# the program's own call sites, not tcmalloc's or the probe's frames
sites = {s['frames'][0].split(' ')[0]: s['allocations'] for s in r['stacks']}
assert sites.get('leak_small') == 7 and sites.get('leak_aligned') == 3, r['stacks']
assert sites.get('plain_round') == 600 and sites.get('aligned_round') == 600, r['stacks']"
}

@test "C++: --compare-with jemalloc and mimalloc, whose new and delete bypass malloc, compares the runs" {
    # mimalloc aborts where operator new should throw std::bad_alloc: no failing new here
    for lib in libjemalloc.so.2 libmimalloc.so.2; do
        run "$T" trace --json -o "$OUT" --compare-with "/usr/lib/x86_64-linux-gnu/$lib" -- "$FX/cxx-ops" no-bad-alloc </dev/null
        [ "$status" -eq 0 ]
        [ "$(q "r['compare']['possible'], r['compare'].get('reason')")" = "True None" ]
        # the same work: the same counts in both runs (before, jemalloc's run lost 1007 of 2411
        # calls, and mimalloc's 2410, which refused the comparison)
        [ "$(q "r['ops']['total'] - r['compare']['report']['ops']['total']")" = 0 ]
        [ "$(q "r['ops']['operator_new'] == r['compare']['report']['ops']['operator_new'] == 1210")" = True ]
        [ "$(q "r['ops']['operator_delete'] == r['compare']['report']['ops']['operator_delete'] == 1200")" = True ]
    done
}

@test "C++: with no C++ runtime loaded, the probe's own operator new serves from malloc, and a failure says why it aborts" {
    # a C program finds operator new and delete by name: only the probe defines them
    cat >"$DIR/nort.c" <<'C'
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv)
{
    void *(*new_)(unsigned long) = (void *(*)(unsigned long))dlsym(RTLD_DEFAULT, "_Znwm");
    void (*delete_)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "_ZdlPv");
    if (!new_ || !delete_)
        return 2;
    for (int i = 0; i < 10; i++) {
        char *p = new_(100);
        memset(p, 1, 100);
        delete_(p);
    }
    if (argc > 1)
        new_(SIZE_MAX / 2);
    return 0;
}
C
    musl-gcc -O1 -o "$DIR/nort-musl" "$DIR/nort.c"
    gcc -O1 -o "$DIR/nort-glibc" "$DIR/nort.c" -ldl
    for libc in musl glibc; do
        run "$T" trace --json -o "$OUT" -- "$DIR/nort-$libc"
        [ "$status" -eq 0 ]
        [ "$(q "r['run']['exit_code'], r['ops']['operator_new'], r['ops']['operator_delete']")" = "0 10 10" ]
        # C cannot throw std::bad_alloc: a failed new aborts, and says so, instead of returning NULL
        run "$T" trace --json -o "$OUT" -- "$DIR/nort-$libc" huge
        [ "$status" -eq 0 ]
        [ "$(q "r['run']['signal']")" = ABRT ]
        [[ "$output" == *"malloc-doctor probe: operator new failed, and no C++ runtime after the probe defines it"* ]]
    done
}
