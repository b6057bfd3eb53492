#!/usr/bin/env bats
# End-to-end tests of `malloc-doctor inspect` on fixtures built from source (tests/fixtures).
# MD_TOOL selects the binary (the normal or the sanitizer build); tests/run sets it.

setup() {
    cd "${MD_ROOT:-$BATS_TEST_DIRNAME/../..}"
    T=${MD_TOOL:-build/malloc-doctor}
    FX=build/fixtures
    TOOL_CMD=$(realpath "$T") # how fixes name the tool: PATH finds no malloc-doctor here
}

# the active allocator's id in the JSON report of one file
active_id() {
    "$T" inspect --json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["active"]["id"])'
}

# python assertions ($1) over f, the first file entry of the JSON report in $output
check_first() {
    python3 -c "import json,sys
f=json.loads(sys.argv[1])['files'][0]
$1" "$output"
}

# one field of the first file entry, as JSON
field() {
    "$T" inspect --json "$1" | python3 -c "import json,sys; print(json.dumps(json.load(sys.stdin)['files'][0]$2))"
}

@test "the top level: help forms, stray arguments, and a stdout that cannot take the output" {
    run "$T" help
    [ "$status" -eq 0 ]
    [[ "$output" == *"commands:"* ]]
    for bad in "--version extra" "-h x" "help nope" "help inspect x" "--bogus" "nope"; do
        run "$T" $bad
        [ "$status" -eq 2 ]
        [ "${#lines[@]}" -eq 1 ]
    done
    run bash -c '"$1" --version >/dev/full' _ "$T"
    [ "$status" -eq 2 ]
    [[ "$output" == *"cannot write the standard output"* ]]
    # a closed stdout is not a silent success
    run bash -c '"$1" inspect "$2" >&-' _ "$T" "$FX/musl-static"
    [ "$status" -eq 2 ]
    [[ "$output" == *"inspect: cannot write the standard output: Bad file descriptor"* ]]
}

@test "--help and --version for the tool and for inspect" {
    run "$T" --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"inspect"* ]]
    run "$T" --version
    [ "$status" -eq 0 ]
    [[ "$output" =~ ^malloc-doctor\ [0-9]+\.[0-9]+\.[0-9]+$ ]]
    run "$T" inspect --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"--expect ALLOC"* ]]
    [[ "$output" == *"exit status"* ]]
    run "$T" help inspect
    [ "$status" -eq 0 ]
    [[ "$output" == *"usage: malloc-doctor inspect"* ]]
}

@test "usage errors exit 2 with one clear line" {
    run "$T"
    [ "$status" -eq 2 ]
    run "$T" frobnicate
    [ "$status" -eq 2 ]
    [[ "$output" == *"'frobnicate' is not a command"* ]]
    run "$T" inspect --bogus "$FX/musl-static"
    [ "$status" -eq 2 ]
    [[ "$output" == *"unknown option --bogus"* ]]
    run "$T" inspect
    [ "$status" -eq 2 ]
    [[ "$output" == *"no FILE given"* ]]
    run "$T" inspect --expect nosuchalloc "$FX/musl-static"
    [ "$status" -eq 2 ]
    # the same prefix as a file's error: one pattern matches every error of the tool
    [[ "${lines[0]}" == "malloc-doctor: inspect: unknown allocator 'nosuchalloc'"* ]]
    # the ids and the families --expect takes, each once
    [[ "$output" == *"mimalloc"* && "$output" == *", musl,"* && "$output" == *", glibc,"* ]]
    [ "$(echo "$output" | grep -o 'tcmalloc,' | wc -l)" -eq 1 ]
    run "$T" inspect --expect mimalloc --expect jemalloc "$FX/musl-static"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--expect mimalloc and --expect jemalloc: one allocator serves malloc"* ]]
}

@test "musl static (mallocng): active allocator, libc, threads, MD001" {
    run "$T" inspect "$FX/musl-static"
    [ "$status" -eq 0 ]
    [[ "$output" == *"static"*"musl"*"yes"*"musl mallocng (high)"* ]]
    [[ "$output" == *"warning MD001"* ]]
    [ "$(active_id "$FX/musl-static")" = musl-mallocng ]
    [ "$(field "$FX/musl-static" '["libc"]')" = '"musl"' ]
    [ "$(field "$FX/musl-static" '["threads"]')" = '"yes"' ]
    [ "$(field "$FX/musl-static" '["findings"][0]["id"]')" = '"MD001"' ]
}

@test "threads started by a library: a strong pthread_create import counts; a weak one, libstdc++'s and one further down do not" {
    lib=$FX/threadlib
    [ "$(field "$lib/strong/user" '["threads"]')" = '"yes"' ]
    [[ "$(field "$lib/strong/user" '["threads_evidence"]')" == '"pthread_create, imported by '*"/threadlib/strong/libthreadlib.so\"" ]]
    [ "$(field "$lib/weak/user" '["threads"]')" = '"no"' ]
    [ "$(field "$lib/std/user" '["threads"]')" = '"no"' ]
    # only libraries the program links itself: the strong one one level down does not count
    [ "$(field "$lib/indirect/user" '["threads"]')" = '"no"' ]
    [ "$(field "$lib/indirect/libthreadmid.so" '["threads"]')" = '"yes"' ]
    # the library itself can start threads whichever way it references pthread_create
    [ "$(field "$lib/weak/libthreadlib.so" '["threads"]')" = '"yes"' ]
}

@test "threads of a stripped dynamic program: its .dynsym and its libraries' tell" {
    lib=$FX/threadlib
    [ "$(field "$lib/weak/user-stripped" '["stripped"]')" = true ]
    [ "$(field "$lib/weak/user-stripped" '["threads"]')" = '"no"' ]
    [ "$(field "$lib/strong/user-stripped" '["threads"]')" = '"yes"' ]
    [[ "$(field "$lib/strong/user-stripped" '["threads_evidence"]')" == '"pthread_create, imported by '* ]]
    # a library it needs that is not found could start threads: that is not known
    cp "$lib/weak/user-stripped" "$BATS_TEST_TMPDIR/alone"
    [ "$(field "$BATS_TEST_TMPDIR/alone" '["threads"]')" = '"unknown"' ]
    [ "$(field "$BATS_TEST_TMPDIR/alone" '["threads_evidence"]')" = '"libthreadlib.so was not found (it could import one)"' ]
}

@test "musl static stripped: identified from the size-class table that survives strip" {
    [ "$(active_id "$FX/musl-static-stripped")" = musl-mallocng ]
    [ "$(field "$FX/musl-static-stripped" '["stripped"]')" = true ]
    run "$T" inspect -v "$FX/musl-static-stripped"
    [[ "$output" == *"table size-class table"* ]]
    [ "$(field "$FX/musl-static-stripped" '["libc"]')" = '"musl"' ]
}

@test "stripped static musl without musl strings: libc musl from _start's code; no evidence is unknown, not none" {
    for f in musl-plain-stripped musl-threads-stripped; do
        ! strings "$FX/$f" | grep -q "No error information"
        [ "$(field "$FX/$f" '["stripped"]')" = true ]
        [ "$(field "$FX/$f" '["libc"]')" = '"musl"' ]
    done
    run "$T" inspect "$FX/musl-threads-stripped"
    [[ "${lines[1]}" == *"static"*"musl"*"unknown"* ]]
    # the same file with its entry point moved off _start: nothing tells its libc
    tmp=$(mktemp -d)
    cp "$FX/musl-plain-stripped" "$tmp/moved"
    python3 -c "import struct,sys; f=open(sys.argv[1],'r+b'); f.seek(24); e=struct.unpack('<Q',f.read(8))[0]; f.seek(24); f.write(struct.pack('<Q',e+3))" "$tmp/moved"
    [ "$(field "$tmp/moved" '["libc"]')" = '"unknown"' ]
    rm -rf "$tmp"
    # glibc's static programs, stripped, stay glibc
    strip -o "$BATS_TEST_TMPDIR/glibc" "$FX/glibc-static"
    [ "$(field "$BATS_TEST_TMPDIR/glibc" '["libc"]')" = '"glibc"' ]
}

@test "strings and tables alone do not make an allocator present where a symbol table would show it" {
    for f in sig-strings sig-strings-musl-static; do
        run "$T" inspect --json "$FX/$f"
        [ "$status" -eq 0 ]
        check_first 'ids=[a["id"] for a in f["allocators"]]
assert not set(ids) & {"mimalloc","jemalloc","tcmalloc","go-runtime","mdalloc"}, ids
assert f["findings"] == [], f["findings"]'
    done
    [ "$(active_id "$FX/sig-strings")" = glibc-ptmalloc ]
    # the tool itself quotes every signature
    run "$T" inspect "$T"
    [[ "$output" != *MD002* ]]
    # a stripped static file: the strings are all there is, so they still count
    strip -o "$BATS_TEST_TMPDIR/s" "$FX/sig-strings-musl-static"
    run "$T" inspect --json "$BATS_TEST_TMPDIR/s"
    check_first 'assert "mimalloc" in [a["id"] for a in f["allocators"]]'
}

@test "a stripped dynamic program keeps .dynsym: strings alone are a mention, not an allocator, and fire no MD002" {
    dir=$BATS_TEST_TMPDIR
    # it imports malloc: what serves it is elsewhere, whatever its strings quote
    strip -o "$dir/s" "$FX/sig-strings"
    run "$T" inspect --json --fail-on warning "$dir/s"
    [ "$status" -eq 0 ]
    check_first 'assert [a["id"] for a in f["allocators"]] == [], f["allocators"]
assert f["active"]["id"] == "glibc-ptmalloc", f["active"]
assert not f["findings"], f["findings"]'
    # it defines malloc itself: the strings are all that can say whose, but no allocator is
    # known to be linked beside it
    gcc -O2 -s -o "$dir/own" tests/fixtures/src/sig_strings.c tests/fixtures/src/jemalloc53_layout.c
    run "$T" inspect --json --fail-on warning "$dir/own"
    [ "$status" -eq 0 ]
    check_first 'assert "mimalloc" in [a["id"] for a in f["allocators"]], f["allocators"]
assert not f["findings"], f["findings"]'
}

@test "glibc-hwcaps: the copy ld.so loads on this CPU serves malloc; a legacy x86_64/ copy by glibc's version" {
    /lib64/ld-linux-x86-64.so.2 --help | grep -q 'x86-64-v2 (supported' || skip "this CPU is not x86-64-v2"
    run "$T" inspect --json "$FX/hwcaps/hwcaps/prog"
    check_first 'a=f["active"]
assert a["id"] == "jemalloc" and a["confidence"] == "high", a
assert a["provider"].endswith("/lib/glibc-hwcaps/x86-64-v2/libmimalloc.so.2"), a
assert "this machine\x27s CPU (x86-64-v2)" in a["how"], a'
    # glibc 2.36 (this machine's, read from the interpreter) loads the legacy copy: jemalloc
    minor=$(/lib64/ld-linux-x86-64.so.2 --version | sed -n '1s/.* 2\.\([0-9]*\)\.$/\1/p')
    [ "$minor" -lt 37 ] || skip "glibc 2.$minor ignores legacy hwcaps subdirectories"
    run "$T" inspect --json "$FX/hwcaps/legacy/prog"
    check_first 'a=f["active"]
assert a["id"] == "jemalloc" and a["confidence"] == "high", a
assert a["provider"].endswith("/lib/x86_64/libmimalloc.so.2"), a
assert "glibc 2.'"$minor"' loads this copy in the legacy hwcaps subdirectory x86_64/" in a["how"], a'
    LD_DEBUG=libs "$FX/hwcaps/legacy/prog" 2>&1 | grep -q "calling init: .*/lib/x86_64/libmimalloc.so.2"
    # a sysroot whose loader says 2.37: the plain library, high; without a loader to read,
    # the plain library at medium, naming the copy an older glibc would load
    root=$BATS_TEST_TMPDIR/root
    mkdir -p "$root/lib64"
    cp -r "$FX/hwcaps/legacy/lib" "$FX/hwcaps/legacy/prog" "$root/"
    run "$T" inspect --json --root "$root" "$root/prog"
    check_first 'a=f["active"]
assert a["id"] == "mimalloc" and a["confidence"] == "medium", a
assert "/lib/x86_64/libmimalloc.so.2, a legacy hwcaps subdirectory" in a["how"], a'
    printf 'ld.so (GNU libc) stable release version 2.37.\n' > "$root/lib64/ld-linux-x86-64.so.2"
    run "$T" inspect --json --root "$root" "$root/prog"
    check_first 'a=f["active"]
assert a["id"] == "mimalloc" and a["confidence"] == "high" and "legacy" not in a["how"], a'
    # without the subdirectory copies: the plain library, high
    [ "$(field "$FX/mimalloc-dynamic" '["active"]["confidence"]')" = '"high"' ]
}

@test "musl without free(): only the bump allocator is linked" {
    [ "$(active_id "$FX/musl-nofree")" = musl-lite ]
}

@test "glibc static and dynamic" {
    [ "$(active_id "$FX/glibc-static")" = glibc-ptmalloc ]
    [ "$(field "$FX/glibc-static" '["kind"]')" = '"static"' ]
    [ "$(active_id "$FX/glibc-dynamic")" = glibc-ptmalloc ]
    [ "$(field "$FX/glibc-dynamic" '["kind"]')" = '"dynamic"' ]
    [[ "$(field "$FX/glibc-dynamic" '["active"]["provider"]')" == *"libc.so.6"* ]]
    run "$T" inspect "$FX/glibc-dynamic"
    [[ "$output" == *"glibc ptmalloc (high) via libc.so.6"* ]]
}

@test "dynamic program linked with -lmimalloc: mimalloc serves malloc" {
    [ "$(active_id "$FX/mimalloc-dynamic")" = mimalloc ]
    [[ "$(field "$FX/mimalloc-dynamic" '["active"]["provider"]')" == *"libmimalloc.so.2"* ]]
    run "$T" inspect --expect mimalloc "$FX/mimalloc-dynamic"
    [ "$status" -eq 0 ]
}

@test "-lmimalloc dropped by --as-needed: --expect fails with MD003 naming the cause" {
    [ "$(active_id "$FX/mimalloc-dropped")" = glibc-ptmalloc ]
    [ "$(field "$FX/mimalloc-dropped" '["malloc_import_version"]')" = '"GLIBC_2.2.5"' ]
    run "$T" inspect --expect mimalloc "$FX/mimalloc-dropped"
    [ "$status" -eq 1 ]
    [[ "$output" == *"error MD003"* ]]
    [[ "$output" == *"malloc@GLIBC_2.2.5"*"--as-needed"* ]]
    run "$T" inspect --json --expect mimalloc "$FX/mimalloc-dropped"
    [ "$status" -eq 1 ]
    echo "$output" | python3 -c 'import json,sys; f=json.load(sys.stdin)["files"][0]; assert f["expect"]=={"allocator":"mimalloc","met":False}, f["expect"]'
}

@test "MD003's fix fits what was expected: a libc, mdalloc, or libraries that were not found" {
    run "$T" inspect --expect musl "$FX/glibc-dynamic"
    [ "$status" -eq 1 ]
    [[ "$output" == *"fix: musl's malloc comes with building against musl (musl-gcc) (the file's libc is glibc)"* ]]
    [[ "$output" != *"-lmusl"* ]]
    run "$T" inspect --expect mdalloc "$FX/musl-static"
    [ "$status" -eq 1 ]
    [[ "$output" == *'fix: `mkdir -p ~/musl-mdalloc && '"$TOOL_CMD"' patch -o ~/musl-mdalloc/libc.a'* ]]
    root=$(mktemp -d)
    run "$T" inspect --root "$root" --expect glibc "$FX/glibc-dynamic"
    rmdir "$root"
    [ "$status" -eq 1 ]
    [[ "$output" == *"who serves malloc is unknown: libc.so.6 could not be found"* ]]
    [[ "$output" == *"--root DIR"* && "$output" != *"-lglibc"* ]]
    # only allocators that come as a library get a -l hint; mdalloc's builds are named where
    # they are, from any directory
    run "$T" inspect --expect go "$FX/glibc-dynamic"
    [ "$status" -eq 1 ]
    [[ "$output" == *"comes with its own runtime"* && "$output" != *"-lgo"* ]]
    run "$T" inspect --expect tcmalloc "$FX/glibc-dynamic"
    [[ "$output" == *"-ltcmalloc was dropped"* ]]
    run "$T" inspect --expect tcmalloc-google "$FX/glibc-dynamic" # Google's is not -ltcmalloc
    [[ "$output" != *"-ltcmalloc"* ]]
    tool=$(realpath "$T")
    run bash -c 'cd / && "$1" inspect --expect mdalloc "$2"' _ "$tool" "$(realpath "$FX/glibc-dynamic")"
    [ "$status" -eq 1 ]
    preload=$(echo "$output" | sed -n 's/.*or preload \([^ ]*libmdalloc.so\).*/\1/p')
    [[ "$preload" == /* ]]
    [ -f "$preload" ]
    # a musl file of another architecture is not sent to x86-64's libc.a
    run "$T" inspect "$FX/elf64-msb"
    [[ "$output" == *"MD001"* && "$output" != *"x86_64-linux-musl"* ]]
}

@test "--expect has nothing to judge in a library that never calls malloc" {
    ldso=$(readlink -f /lib64/ld-linux-x86-64.so.2)
    run "$T" inspect --json --expect mimalloc "$ldso" "$FX/glibc-dynamic"
    [ "$status" -eq 1 ] # the program still fails it
    python3 -c '
import json,sys
r=json.loads(sys.argv[1])
ld,prog=r["files"]
assert ld["expect"]["met"] is None and "neither defines malloc nor imports" in ld["expect"]["reason"], ld["expect"]
assert not [f for f in ld["findings"] if f["id"]=="MD003"], ld["findings"]
assert prog["expect"]["met"] is False and r["summary"]["expect_failed"]==1, r["summary"]' "$output"
    run "$T" inspect --expect mimalloc "$ldso"
    [ "$status" -eq 0 ]
    # a library that allocates by another way than malloc is judged: calloc, C++'s operator new
    dir=$BATS_TEST_TMPDIR
    printf '#include <stdlib.h>\nvoid *f(void) { return calloc(1, 8); }\n' > "$dir/cal.c"
    printf 'void *_Znwm(unsigned long);\nvoid *f(void) { return _Znwm(8); }\n' > "$dir/new.c"
    gcc -shared -fPIC -o "$dir/libcal.so" "$dir/cal.c"
    gcc -shared -fPIC -o "$dir/libnew.so" "$dir/new.c"
    run "$T" inspect --json --expect mimalloc "$dir/libcal.so" "$dir/libnew.so"
    [ "$status" -eq 1 ]
    python3 -c '
import json,sys
r=json.loads(sys.argv[1])
assert [f["expect"]["met"] for f in r["files"]]==[False, False], r["files"]' "$output"
    # a musl library names no loader: its libc.so is musl's, which serves its calloc
    musl-gcc -shared -fPIC -o "$dir/libmcal.so" "$dir/cal.c"
    run "$T" inspect --json --expect musl "$dir/libmcal.so"
    [ "$status" -eq 0 ]
    python3 -c '
import json,sys
f=json.loads(sys.argv[1])["files"][0]
assert f["libc"]=="musl" and f["active"]["id"]=="musl-mallocng" and f["missing_libraries"]==[], f' "$output"
}

@test "a program that never calls malloc: none (malloc not linked), JSON id null with a reason" {
    run "$T" inspect "$FX/quiet-musl-static" "$FX/musl-static"
    [ "$status" -eq 0 ]
    [[ "${lines[1]}" == *" none (malloc not linked) "* ]]
    [[ "${lines[1]}" != *"unknown"* ]]
    [[ "${lines[2]}" == *"musl mallocng (high)"* ]]
    run "$T" inspect --json "$FX/quiet-musl-static"
    check_first 'a=f["active"]
assert a["id"] is None and a["name"] is None and a["reason"] == "malloc-not-linked", a'
    run "$T" inspect -v "$FX/quiet-musl-static"
    [[ "$output" == *"active: none (malloc not linked); the file does not link malloc"* ]]
    # an allocator that serves malloc has no reason; one not identified is still unknown
    [ "$(field "$FX/musl-static" '["active"]["reason"]')" = null ]
    run "$T" inspect "$FX/musl-plain-stripped"
    [[ "${lines[1]}" == *" unknown (low) "* ]]
}

@test "--expect has nothing to judge in a static program that never calls malloc" {
    printf 'int main(void) { return 0; }\n' > "$BATS_TEST_TMPDIR/n.c"
    musl-gcc -static -o "$BATS_TEST_TMPDIR/n" "$BATS_TEST_TMPDIR/n.c"
    run "$T" inspect --json --expect musl "$BATS_TEST_TMPDIR/n"
    [ "$status" -eq 0 ]
    check_first '
assert f["expect"]["met"] is None and "links no allocator" in f["expect"]["reason"], f["expect"]
assert not f["findings"], f["findings"]'
    run "$T" inspect --expect musl "$BATS_TEST_TMPDIR/n"
    [ "$status" -eq 0 ]
    [[ "$output" == *"n: note: --expect musl not judged: the program links no allocator"* ]]
    [[ "$output" != *MD003* ]]
}

@test "--expect that checks no program or library fails: an archive, a walk that finds none" {
    run "$T" inspect --expect musl "$FX/libc-musl.a"
    [ "$status" -eq 1 ]
    [[ "$output" == *"libc-musl.a: note: --expect musl not judged: an archive is not linked yet"* ]]
    [[ "$output" == *"malloc-doctor: inspect: --expect musl: no program or shared library was checked"* ]]
    run "$T" inspect --json --expect musl "$FX/libc-musl.a"
    [ "$status" -eq 1 ]
    python3 -c '
import json,sys
out=sys.argv[1]
r=json.loads(out[out.index("{"):])  # after the stderr line
assert r["files"][0]["expect"]["met"] is None, r["files"][0]
assert r["summary"]["expect_checked"]==0 and r["summary"]["expect_failed"]==0, r["summary"]' "$output"
    mkdir "$BATS_TEST_TMPDIR/empty"
    run "$T" inspect -r --expect glibc "$BATS_TEST_TMPDIR/empty"
    [ "$status" -eq 1 ]
    [[ "$output" == *"--expect glibc: no program or shared library was checked"* ]]
    # with a program beside it, the program is what --expect judges
    run "$T" inspect --expect musl "$FX/libc-musl.a" "$FX/musl-static"
    [ "$status" -eq 0 ]
}

@test "glibc static program with Debian's libjemalloc.a" {
    [ "$(active_id "$FX/jemalloc-static")" = jemalloc ]
    run "$T" inspect --expect jemalloc "$FX/jemalloc-static"
    [ "$status" -eq 0 ]
    run "$T" inspect --expect glibc "$FX/jemalloc-static"
    [ "$status" -eq 1 ]
}

@test "jemalloc 5.3 unprefixed in a dynamic program (rustc's shape): jemalloc serves malloc, glibc's name tcache_init is not ptmalloc" {
    fx=$FX/jemalloc53-layout
    nm "$fx" | grep -q ' t tcache_init$' # jemalloc's own, a name glibc's malloc.c has too
    run "$T" inspect --json --expect jemalloc "$fx"
    [ "$status" -eq 0 ]
    check_first 'a=f["active"]
assert (a["id"], a["confidence"]) == ("jemalloc", "high"), a
assert [x["id"] for x in f["allocators"]] == ["jemalloc"], f["allocators"]
assert not f["findings"], f["findings"]'
}

@test "names other code defines too (nallocx in tcmalloc, TCMallocGetenvSafe in libprofiler) prove nothing alone" {
    lib=/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4
    nm -D --defined-only "$lib" | grep -q ' T nallocx$' # what used to mislead
    run "$T" inspect --json "$lib"
    [ "$status" -eq 0 ]
    echo "$output" | python3 -c '
import json, sys
f = json.load(sys.stdin)["files"][0]
assert f["active"]["id"] == "tcmalloc", f["active"]
assert [a["id"] for a in f["allocators"]] == ["tcmalloc"], f["allocators"]
assert not f["findings"], f["findings"]'
    # gperftools' CPU profiler shares tcmalloc's base code (TCMallocGetenvSafe), not its malloc
    run "$T" inspect --json /usr/lib/x86_64-linux-gnu/libprofiler.so.0
    [ "$status" -eq 0 ]
    echo "$output" | python3 -c '
import json, sys
f = json.load(sys.stdin)["files"][0]
assert [a["id"] for a in f["allocators"]] == [], f["allocators"]
assert not f["findings"], f["findings"]'
}

@test "mimalloc-like symbols beside musl malloc: musl is active, MD002 says so" {
    [ "$(active_id "$FX/fake-mimalloc-musl")" = musl-mallocng ]
    run "$T" inspect "$FX/fake-mimalloc-musl"
    [ "$status" -eq 0 ]
    [[ "$output" == *"warning MD002"* ]]
    [[ "$output" == *"mimalloc is linked into this file but malloc is served by musl mallocng"* ]]
    # the fix is mimalloc's own way to override malloc, not another allocator's
    [[ "$output" == *"fix: link mimalloc's override object (mimalloc.o of an MI_OVERRIDE build) before libc"* ]]
    [[ "$output" != *jemalloc* && "$output" != *libmdalloc* ]]
    run "$T" inspect --expect mimalloc "$FX/fake-mimalloc-musl"
    [ "$status" -eq 1 ]
    [[ "$output" == *"expected mimalloc to serve malloc, but musl mallocng does"* ]]
}

@test "--expect accepts a family name" {
    run "$T" inspect --expect musl "$FX/musl-static"
    [ "$status" -eq 0 ]
    run "$T" inspect --expect musl "$FX/glibc-static"
    [ "$status" -eq 1 ]
}

@test "32-bit and big-endian ELF files are inspected" {
    run "$T" inspect --json "$FX/elf32-lsb" "$FX/elf64-msb"
    [ "$status" -eq 0 ]
    echo "$output" | python3 -c '
import json,sys
a,b=json.load(sys.stdin)["files"]
assert a["format"]=={"class":"ELF32","machine":"i386","byte_order":"little"}, a["format"]
assert b["format"]=={"class":"ELF64","machine":"ppc64","byte_order":"big"}, b["format"]
for f in (a,b):
    assert f["active"]["id"]=="musl-mallocng", f["active"]
    ev=[e["value"] for x in f["allocators"] if x["id"]=="musl-mallocng" for e in x["evidence"]]
    assert any("size-class table" in v for v in ev), ev'
}

@test "bad inputs: one clear line each, exit 2" {
    chk() { # file, expected message part
        run "$T" inspect "$1"
        [ "$status" -eq 2 ] || { echo "status $status for $1"; return 1; }
        [ "${#lines[@]}" -eq 1 ] || { echo "not one line: $output"; return 1; }
        [[ "$output" == "malloc-doctor: inspect: $1: "*"$2"* ]] || { echo "$output"; return 1; }
    }
    chk "$FX/does-not-exist" "No such file or directory"
    chk "$FX/bad" "is a directory (use -r"
    chk "$FX/bad/empty" "empty file"
    run "$T" inspect ""
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: inspect: empty file name" ]
    chk "$FX/bad/text.txt" "not an ELF file or ar archive"
    # procfs says size 0 for a file that has contents: not "empty"
    chk /proc/self/maps "a special file (its size reads as 0, as in /proc and /sys)"
    # a newline in a name stays inside the one line
    run "$T" inspect "$(printf '/nonexistent/two\nlines')"
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: inspect: /nonexistent/two?lines: No such file or directory" ]
    # a sysroot that is not a directory would make every dynamic file "unknown"
    run "$T" inspect --root /nonexistent/root "$FX/glibc-dynamic"
    [ "$status" -eq 2 ]
    [[ "${lines[0]}" == *"--root /nonexistent/root: No such file or directory" ]]
    run "$T" inspect --root /etc/passwd "$FX/glibc-dynamic"
    [ "$status" -eq 2 ]
    [[ "${lines[0]}" == *"--root /etc/passwd: not a directory" ]]
    fifo=$(mktemp -u)
    mkfifo "$fifo"
    run timeout 10 "$T" inspect "$fifo" # opening a FIFO waits for a writer: never done
    rm -f "$fifo"
    [ "$status" -eq 2 ]
    [[ "$output" == *"not a regular file"* ]]
    script=$(mktemp)
    printf '#!/usr/bin/env  python3 \n' >"$script"
    chk "$script" "a #! script, not an ELF file: inspect its interpreter, /usr/bin/env python3"
    rm -f "$script"
    chk "$FX/bad/truncated-header" "truncated or corrupt ELF header"
    chk "$FX/bad/truncated-shtab" "truncated section header table"
    chk "$FX/bad/corrupt-member.a" "corrupt archive member header at offset 8"
    run "$T" inspect "$FX/bad/truncated-member.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"truncated-member.a(half.o): truncated section header table"* ]]
}

@test "permission denied is reported, not fatal" {
    dir=$(mktemp -d)
    cp "$FX/musl-static" "$dir/secret"
    cp "$T" "$dir/tool"
    chmod 000 "$dir/secret"
    chmod 755 "$dir"
    if [ "$(id -u)" = 0 ]; then
        run setpriv --reuid=65534 --regid=65534 --clear-groups "$dir/tool" inspect "$dir/secret"
    else
        run "$dir/tool" inspect "$dir/secret"
    fi
    rm -rf "$dir"
    [ "$status" -eq 2 ]
    [[ "$output" == *"secret: Permission denied"* ]]
}

@test "-r: a file the walk cannot examine is an error, and --expect does not pass over it" {
    [ "$(id -u)" = 0 ] || skip "needs root to act as another user"
    dir=$(mktemp -d)
    mkdir "$dir/d"
    cp "$FX/musl-static" "$dir/d/prog"
    cp "$T" "$dir/tool"
    chmod 755 "$dir"
    chmod 644 "$dir/d" # readable, not searchable: the names are listed, the files cannot be examined
    run setpriv --reuid=65534 --regid=65534 --clear-groups "$dir/tool" inspect --expect mimalloc \
        -r "$dir/d"
    [ "$status" -eq 2 ]
    [[ "$output" == *"d/prog: Permission denied"* ]]
    # the summary counts each path of the report once: a directory that cannot be read is one of
    # the files, as a file that cannot be read is, and each is one of the errors
    mkdir "$dir/t" "$dir/t/locked" "$dir/t/ok"
    cp "$FX/musl-static" "$dir/t/ok/prog"
    cp "$FX/musl-static" "$dir/t/locked/prog"
    chmod 700 "$dir/t/locked"
    chmod 755 "$dir/t" "$dir/t/ok"
    run bash -c 'setpriv --reuid=65534 --regid=65534 --clear-groups "$1/tool" inspect --json -r \
        "$1/t" "$1/d" 2>/dev/null' _ "$dir"
    rm -rf "$dir"
    [ "$status" -eq 2 ]
    python3 -c 'import json,sys
r=json.loads(sys.argv[1]); s=r["summary"]; e=r["files"]
assert (s["files"], s["errors"]) == (3, 2), s
assert s["files"] == len(e) and s["errors"] == sum(f["status"] == "error" for f in e), (s, e)' "$output"
}

@test "a file that shrinks while inspect reads it is an error of its own, never a crash" {
    big=$(find /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -name '*.so*' -size +20M | head -1)
    [ -n "$big" ] || skip "no shared library of 20 MB or more here"
    copy=$BATS_TEST_TMPDIR/big.so
    cp "$big" "$copy"
    start=$(date +%s%N)
    "$T" inspect "$copy" >/dev/null
    took_ms=$((($(date +%s%N) - start) / 1000000))
    shrank=0
    # truncated at points through the read: the pages it has yet to read are gone
    for pct in 10 20 35 50 65 80; do
        cp "$big" "$copy"
        "$T" inspect "$copy" >/dev/null 2>"$BATS_TEST_TMPDIR/err" &
        pid=$!
        sleep "$(awk -v t="$took_ms" -v p="$pct" 'BEGIN { print t * p / 100000 }')"
        truncate -s 4096 "$copy"
        rc=0
        wait "$pid" || rc=$?
        [ "$rc" -lt 128 ] # no SIGBUS
        if grep -q "big.so: the file, or a library it needs, shrank while it was read" "$BATS_TEST_TMPDIR/err"; then
            shrank=$((shrank + 1))
            [ "$rc" -eq 2 ]
        fi
    done
    [ "$shrank" -gt 0 ]
}

@test "a PIE with musl's libc.a linked in that still names a loader (musl-gcc -static-pie) is judged as static, stripped or not" {
    # it needs no library and imports nothing: the loader only relocates it, so its own malloc
    # serves it; stripped, its .dynsym says nothing of malloc, and its bytes must (was: dynamic,
    # "no library in the load order defines malloc", threads no, --expect failed; unstripped,
    # MD001 said to preload mdalloc, which cannot reach a malloc bound at link time)
    stock=$FX/musl-static-pie-loader
    md=$FX/patch/churn-musl-static-pie-mdalloc
    # mdalloc really serves malloc: its banner
    MDALLOC_VERBOSE=1 run "$md-stripped" 2 100
    [[ "$output" == *"mdalloc: version"* ]]
    for f in "$stock" "$stock-stripped" "$md" "$md-stripped"; do
        expect=musl
        [[ "$f" == "$md"* ]] && expect=mdalloc
        run "$T" inspect --json --expect "$expect" "$f"
        [ "$status" -eq 0 ]
        check_first "
stripped = f['stripped']; expect = '$expect'
assert f['kind'] == 'static-pie' and f['interpreter'] == '/lib/ld-musl-x86_64.so.1', (f['kind'], f['interpreter'])
assert f['libc'] == 'musl' and not f['needed'] and 'load_order' not in f, f
assert f['active']['family'] == expect and f['active']['provider'] is None, f['active']
assert f['active']['confidence'] == ('medium' if stripped else 'high'), f['active']
assert f['expect']['met'] is True, f['expect']
# as for a stripped static program: pthread_create leaves no name behind
assert f['threads'] == ('unknown' if stripped else 'yes'), f['threads']
ids = [x['id'] for x in f['findings']]
assert 'MD002' not in ids and 'MD003' not in ids, f['findings']
assert ids == (['MD001'] if expect == 'musl' and not stripped else []), f['findings']
for x in f['findings']:
    assert 'patch -o' in x['fix'] and 'musl-gcc -static-pie -L' in x['fix'], x['fix']
    assert 'preload' not in x['fix'], x['fix']"
    done
    # the stripped program's text report: a static-pie served by mdalloc
    run "$T" inspect "$md-stripped"
    [ "$status" -eq 0 ]
    [[ "${lines[1]}" == *"static-pie    musl   unknown mdalloc (medium)"* ]]
    # and the other way round: a stripped stock one is no mdalloc program
    run "$T" inspect --expect mdalloc "$stock-stripped"
    [ "$status" -eq 1 ]
    [[ "$output" == *"MD003"*"malloc is served by musl mallocng"* ]]
    [[ "$output" == *"musl-gcc -static-pie -L ~/musl-mdalloc"* ]]
}

@test "a glibc program linked with mdalloc's archive is served by mdalloc, stripped or not, dynamic or static" {
    dir=$BATS_TEST_TMPDIR
    archive=build/alloc/glibc/libmdalloc.a
    gcc -O2 -o "$dir/dyn" tests/fixtures/src/plain.c "$archive"
    gcc -O2 -static -o "$dir/static" tests/fixtures/src/plain.c "$archive"
    for f in dyn static; do
        strip -o "$dir/$f-stripped" "$dir/$f"
        # mdalloc really serves malloc: its banner
        MDALLOC_VERBOSE=1 run "$dir/$f"
        [[ "$output" == *"mdalloc: version"* ]]
    done
    for f in dyn static dyn-stripped static-stripped; do
        run "$T" inspect --json --expect mdalloc "$dir/$f"
        [ "$status" -eq 0 ]
        python3 -c '
import json,sys
f=json.loads(sys.argv[1])["files"][0]
assert f["active"]["id"]=="mdalloc", f["active"]
# its glibc glue defines malloc_trim: not glibc malloc evidence of its own
assert [a["id"] for a in f["allocators"]]==["mdalloc"], f["allocators"]
assert f["active"]["confidence"]==("medium" if f["stripped"] else "high"), f["active"]
assert not f["findings"], f["findings"]' "$output"
    done
    # a program that never calls malloc itself (strdup does, inside libc) takes no member of a
    # plain archive: the prescribed link takes all of it
    printf '#include <stdio.h>\n#include <string.h>\nint main(int c, char **v) { puts(strdup(v[0])); return 0; }\n' >"$dir/dup.c"
    gcc -O2 -o "$dir/dup" "$dir/dup.c" "$archive"
    MDALLOC_VERBOSE=1 run "$dir/dup"
    [[ "$output" != *"mdalloc: version"* ]]
    run "$T" inspect --expect mdalloc "$dir/dup"
    [ "$status" -eq 1 ]
    flags=$(echo "$output" | sed -n 's/.*fix: link all of mdalloc.s archive after your objects: `\([^`]*\)`.*/\1/p')
    [[ "$flags" == "-Wl,--whole-archive $(realpath "$archive") -Wl,--no-whole-archive" ]]
    for mode in "" -static; do
        gcc -O2 $mode -o "$dir/dup2" "$dir/dup.c" $flags
        MDALLOC_VERBOSE=1 run "$dir/dup2"
        [[ "$output" == *"mdalloc: version"* ]]
        run "$T" inspect --expect mdalloc "$dir/dup2"
        [ "$status" -eq 0 ]
    done
}

@test "MD002 for a library loaded after libc prescribes the exact LD_PRELOAD command, and it works" {
    dir=$BATS_TEST_TMPDIR
    # libmimalloc.so.2 after libc.so.6 in DT_NEEDED: glibc's malloc comes first
    gcc -O2 -o "$dir/late" tests/fixtures/src/who_serves_malloc.c -Wl,--no-as-needed -lc -lmimalloc
    run "$dir/late"
    [[ "$output" == "malloc from /lib/x86_64-linux-gnu/libc.so.6, 0 args" ]]
    lib=$(realpath /usr/lib/x86_64-linux-gnu/libmimalloc.so.2)
    tool=$(realpath "$T")
    cd "$dir"
    run "$tool" inspect late
    [[ "$output" == *"warning MD002"* ]]
    # a bare name would be looked up in PATH: the command names ./late
    cmd=$(echo "$output" | sed -n 's/.*fix: preload it: `\([^`]*\)`.*/\1/p')
    [[ "$cmd" == "LD_PRELOAD="*"/libmimalloc.so.2 ./late" ]]
    run bash -c "$cmd"
    [[ "$output" == "malloc from "*"/libmimalloc.so.2, 0 args" ]]
    [ "$(realpath "$(echo "$output" | sed 's/^malloc from \(.*\), 0 args$/\1/')")" = "$lib" ]
    # doctor names the traced command, arguments and all
    run "$tool" doctor --no-leaks -- ./late 'a b' c
    cmd=$(echo "$output" | sed -n 's/.*fix: preload it: `\([^`]*\)`.*/\1/p')
    [[ "$cmd" == "LD_PRELOAD="*"/libmimalloc.so.2 ./late 'a b' c" ]]
    run bash -c "$cmd"
    [[ "$output" == "malloc from "*"/libmimalloc.so.2, 2 args" ]]
    # mdalloc has no -l name: its fix is the preload of the very file that was loaded late
    md=$(dirname "$tool")/alloc/glibc
    gcc -O2 -o "$dir/mdlate" "$OLDPWD/tests/fixtures/src/who_serves_malloc.c" -Wl,--no-as-needed -lc \
        "$md/libmdalloc.so" -Wl,-rpath,"$md"
    run "$tool" inspect mdlate
    [[ "$output" == *"mdalloc is loaded (later in the load order) but malloc is served by glibc ptmalloc"* ]]
    [[ "$output" == *'fix: preload it: `LD_PRELOAD='"$md"'/libmdalloc.so ./mdlate`'* ]]
    [[ "$output" != *-lmdalloc* && "$output" != *MI_OVERRIDE* ]]
    cmd=$(echo "$output" | sed -n 's/.*fix: preload it: `\([^`]*\)`.*/\1/p')
    MDALLOC_VERBOSE=1 run bash -c "$cmd"
    [[ "$output" == *"mdalloc: version"*"malloc from $md/libmdalloc.so, 0 args"* ]]
}

@test "a thin archive and a socket are named for what they are; a stripped static musl file's libc is musl" {
    dir=$BATS_TEST_TMPDIR
    ar --thin rc "$dir/thin.a" "$FX/bad/plain.o"
    python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$dir/sock"
    run "$T" inspect "$dir/thin.a" "$dir/sock"
    [ "$status" -eq 2 ]
    [[ "$output" == *"thin.a: a thin archive (its members are files of their own: inspect those)"* ]]
    [[ "$output" == *"sock: not a regular file (a socket)"* ]]
    [ "$(field "$FX/musl-static-stripped" "['libc']")" = '"musl"' ]
}

@test "the text table keeps one row per file, whatever the name holds" {
    name=$(printf '%s/tab\tand\nline' "$BATS_TEST_TMPDIR")
    cp "$FX/glibc-dynamic" "$name"
    run "$T" inspect "$name"
    [ "$status" -eq 0 ]
    [ "${#lines[@]}" -eq 2 ]
    [[ "${lines[1]}" == *"tab?and?line  dynamic"* ]]
}

@test "text output shows a name's control characters as '?': -v's header, findings, usage errors" {
    tool=$(realpath "$T")
    cp "$FX/musl-static" "$BATS_TEST_TMPDIR/$(printf 'musl\nprog\033[31m')"
    cd "$BATS_TEST_TMPDIR"
    name=$(printf 'musl\nprog\033[31m')
    run "$tool" inspect -v "$name"
    [ "$status" -eq 0 ]
    [[ "$output" != *$'\033'* ]]
    [[ "$output" == *$'\nmusl?prog?[31m:\n  format: '* ]]
    [[ "$output" == *$'\nmusl?prog?[31m: warning MD001'* ]]
    run "$tool" inspect --root "$name" "$name"
    [ "$status" -eq 2 ]
    [ "${#lines[@]}" -eq 2 ]
    [[ "${lines[0]}" == "malloc-doctor: inspect: --root musl?prog?[31m: not a directory" ]]
}

@test "C1 controls are '?' too: U+0080..U+009F, and lone bytes 0x80..0x9f (an 8-bit CSI)" {
    mkdir "$BATS_TEST_TMPDIR/odd3"
    cp "$FX/glibc-dynamic" "$BATS_TEST_TMPDIR/odd3/$(printf 'c\xc2\x9b31m')"
    cp "$FX/glibc-dynamic" "$BATS_TEST_TMPDIR/odd3/$(printf 'r\x9b2J\xc2\x85-\xc2\xa0\xa0')"
    run "$T" inspect -r "$BATS_TEST_TMPDIR/odd3"
    [ "$status" -eq 0 ]
    python3 -c '
import sys
out = sys.argv[1].encode("utf-8", "surrogateescape")
for c1 in (b"\xc2\x9b", b"\xc2\x85", b"\x9b"):
    assert c1 not in out, (c1, out)
assert b"/c?31m " in out and b"/r?2J?-\xc2\xa0\xa0 " in out, out
rows = out.decode("utf-8", "replace").splitlines()
assert rows[1].index("dynamic") == rows[2].index("dynamic"), rows' "$output"
    # error lines of every command go through the same function
    name=$(printf 'x\x9b2J\xc2\x9b')
    for cmd in inspect trace patch; do
        run "$T" $cmd "$name"
        [[ "$output" != *$'\x9b'* ]]
    done
    run "$T" inspect "$name"
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: inspect: x?2J?: No such file or directory" ]
}

@test "the text table's columns line up under names with non-ASCII letters" {
    # the same number of terminal columns in each name: KIND starts in the same column. A
    # composed and a decomposed umlaut (u + U+0308) take one column, a CJK character two.
    cp "$FX/glibc-dynamic" "$BATS_TEST_TMPDIR/prögrämm-ü"
    cp "$FX/glibc-dynamic" "$BATS_TEST_TMPDIR/plain-12345"
    cp "$FX/glibc-dynamic" "$BATS_TEST_TMPDIR/$(printf 'pru\xcc\x88fung-12')"
    cp "$FX/glibc-dynamic" "$BATS_TEST_TMPDIR/程序-12345"
    run "$T" inspect "$BATS_TEST_TMPDIR/prögrämm-ü" "$BATS_TEST_TMPDIR/plain-12345" \
        "$BATS_TEST_TMPDIR/$(printf 'pru\xcc\x88fung-12')" "$BATS_TEST_TMPDIR/程序-12345"
    [ "$status" -eq 0 ]
    python3 -c '
import sys, unicodedata
def width(s):
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)
rows = sys.argv[1].splitlines()[:5]
cols = [width(r[:r.index("KIND" if i == 0 else "dynamic")]) for i, r in enumerate(rows)]
assert len(set(cols)) == 1, (cols, rows)' "$output"
}

@test "one bad file never stops the others" {
    run "$T" inspect --json "$FX/bad/empty" "$FX/musl-static" "$FX/bad/text.txt" "$FX/glibc-static"
    [ "$status" -eq 2 ]
    python3 -c '
import json,sys
r=json.loads(sys.argv[1][sys.argv[1].index("{"):])
st=[f["status"] for f in r["files"]]
assert st==["error","ok","error","ok"], st
assert r["summary"]["errors"]==2 and r["summary"]["files"]==4, r["summary"]' "$output"
}

@test "error exit code wins over a failed --expect" {
    run "$T" inspect --expect mimalloc "$FX/glibc-static" "$FX/bad/empty"
    [ "$status" -eq 2 ]
}

@test "directories with -r: ELF files only, symlinks not followed, sorted" {
    run "$T" inspect -r --json "$FX/tree"
    [ "$status" -eq 0 ]
    python3 -c '
import json,sys
r=json.loads(sys.argv[1])
paths=[f["path"] for f in r["files"]]
assert paths==["build/fixtures/tree/bin/glibc-dynamic","build/fixtures/tree/bin/musl-static"], paths
assert r["summary"]["skipped"]==2, r["summary"]' "$output"
}

@test "musl's libc.so, also its dynamic linker, is a library: no static-pie, no MD001" {
    run "$T" inspect --json /usr/lib/x86_64-linux-musl/libc.so
    [ "$status" -eq 0 ]
    echo "$output" | python3 -c '
import json, sys
f = json.load(sys.stdin)["files"][0]
assert f["kind"] == "shared-object" and f["active"]["id"] == "musl-mallocng", (f["kind"], f["active"])
assert not f["findings"], f["findings"]'
    # a real static PIE stays one
    [ "$(active_id "$FX/glibc-static-pie")" = glibc-ptmalloc ]
    run "$T" inspect --json "$FX/glibc-static-pie"
    [ "$(echo "$output" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["kind"])')" = static-pie ]
}

@test "an archive with no member (glibc's libdl.a since 2.34) is inspected, not an error" {
    empty=$(mktemp --suffix=.a)
    printf '!<arch>\n' >"$empty"
    run "$T" inspect --json "$empty"
    rm -f "$empty"
    [ "$status" -eq 0 ]
    python3 -c '
import json, sys
r = json.loads(sys.argv[1])
f = r["files"][0]
assert f["status"] == "ok" and f["kind"] == "archive" and f["members"] == 0, f
assert r["summary"]["errors"] == 0, r["summary"]' "$output"
}

@test "JSON stays valid UTF-8 when a file name is not" {
    dir=$(mktemp -d)
    cp "$FX/musl-static" "$dir/$(printf 'bad\377name')"
    run "$T" inspect --json -r "$dir"
    rm -rf "$dir"
    [ "$status" -eq 0 ]
    [ "$(echo "$output" | python3 -c 'import json,sys; print(json.loads(sys.stdin.buffer.read().decode("utf-8"))["files"][0]["path"].endswith("bad\ufffdname"))')" = True ]
}

@test "-r over a directory without ELF files says so instead of printing nothing" {
    dir=$(mktemp -d)
    echo text >"$dir/notes.txt"
    run "$T" inspect -r "$dir"
    rm -rf "$dir"
    [ "$status" -eq 0 ]
    [ "$output" = "malloc-doctor: inspect: no ELF file or archive found (1 files skipped: not ELF)" ]
}

@test "archives: one entry per member that defines allocator symbols" {
    run "$T" inspect --json "$FX/libc-musl.a"
    [ "$status" -eq 0 ]
    python3 -c '
import json,sys
r=json.loads(sys.argv[1])
head=r["files"][0]
assert head["kind"]=="archive" and head["members"]>1000, head
members={f["member"]:f for f in r["files"][1:]}
assert "malloc.lo" in members and "lite_malloc.lo" in members, list(members)
assert head["allocator_members"]==len(members)
ids={a["id"] for a in members["malloc.lo"]["allocators"]}
assert ids=={"musl-mallocng"}, ids
assert members["lite_malloc.lo"]["active"]["id"]=="musl-lite"' "$output"
}

@test "archives: members that are not ELF are counted in the text and the JSON; findings is there, empty" {
    run "$T" inspect "$FX/bitcode.a"
    [ "$status" -eq 0 ]
    [[ "$output" == *"0 of 1 members define allocator symbols (1 more not ELF, such as LTO bitcode: not read)"* ]]
    run "$T" inspect --json "$FX/bitcode.a" "$FX/bad/plain.o"
    [ "$status" -eq 0 ]
    python3 -c '
import json,sys
r=json.loads(sys.argv[1])
head,obj=r["files"]
assert head["skipped_members"]==1 and head["members"]==1, head
assert head["findings"]==[] and obj["findings"]==[], r["files"]' "$output"
}

@test "archives: a member that cannot be read is an error of its own; the others and the archive's row stay" {
    dir=$(mktemp -d)
    (cd "$dir" && ar x "$OLDPWD/$FX/libc-musl.a" malloc.lo && head -c 1000 "$OLDPWD/$FX/bad/plain.o" >bad.o &&
        ar rcS mix.a bad.o malloc.lo && ar rcS mix2.a malloc.lo bad.o)
    run "$T" inspect "$dir/mix.a" "$dir/mix2.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"inspect: $dir/mix.a(bad.o): truncated section header table"* ]]
    [[ "$output" == *"inspect: $dir/mix2.a(bad.o): truncated section header table"* ]]
    for a in mix mix2; do
        [[ "$output" == *"$dir/$a.a "*"archive       1 of 2 members define allocator symbols (1 could not be read)"* ]] || { echo "$output"; return 1; }
        [[ "$output" == *"$dir/$a.a(malloc.lo) "*"mallocng"* ]] || { echo "$output"; return 1; }
    done
    run bash -c '"$1" inspect --json "$2" 2>/dev/null' _ "$T" "$dir/mix.a"
    rm -rf "$dir"
    [ "$status" -eq 2 ]
    python3 -c '
import json,sys
r=json.loads(sys.argv[1])
head,bad,good=r["files"]
assert head["status"]=="ok" and head["members"]==2 and head["allocator_members"]==1, head
assert head["unreadable_members"]==1 and head["skipped_members"]==0, head
assert bad["path"].endswith("mix.a(bad.o)") and bad["status"]=="error", bad
assert bad["member"]=="bad.o" and bad["archive"]==head["path"], bad
assert "truncated section header table" in bad["error"], bad
assert good["member"]=="malloc.lo" and good["allocators"][0]["id"]=="musl-mallocng", good
assert r["summary"]["errors"]==1 and r["summary"]["files"]==1, r["summary"]' "$output"
}

@test "--root resolves DT_NEEDED inside a sysroot" {
    root=$(mktemp -d)
    mkdir -p "$root/usr/bin" "$root/opt/alloc" "$root/etc/ld.so.conf.d" "$root/lib/x86_64-linux-gnu"
    cp "$FX/glibc-dynamic" "$root/usr/bin/prog"
    echo "include /etc/ld.so.conf.d/*.conf" > "$root/etc/ld.so.conf"
    echo "/opt/alloc" > "$root/etc/ld.so.conf.d/alloc.conf"
    # in this sysroot libc.so.6 is really mimalloc: only --root can know that
    cp /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 "$root/opt/alloc/libc.so.6"
    run "$T" inspect --json --root "$root" "$root/usr/bin/prog"
    rm -rf "$root"
    [ "$status" -eq 0 ]
    python3 -c '
import json,sys
f=json.loads(sys.argv[1])["files"][0]
assert f["active"]["id"]=="mimalloc", f["active"]
assert f["active"]["provider"].endswith("/opt/alloc/libc.so.6"), f["active"]' "$output"
}

@test "--root: absolute links resolve inside the sysroot, and glibc's own directories are searched" {
    root=$(mktemp -d)
    mkdir -p "$root/usr/bin" "$root/opt/alloc" "$root/lib/x86_64-linux-gnu"
    cp "$FX/glibc-dynamic" "$root/usr/bin/prog"
    # no etc/ld.so.conf: glibc's built-in multiarch directory is searched; libc.so.6 is a link
    # whose absolute target exists in the sysroot only
    cp /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 "$root/opt/alloc/libmimalloc.so.2"
    ln -s /opt/alloc/libmimalloc.so.2 "$root/lib/x86_64-linux-gnu/libc.so.6"
    run "$T" inspect --json --root "$root" "$root/usr/bin/prog"
    [ "$status" -eq 0 ]
    python3 -c '
import json,sys
f=json.loads(sys.argv[1])["files"][0]
assert f["active"]["id"]=="mimalloc", f["active"]
assert f["active"]["provider"].endswith("/opt/alloc/libmimalloc.so.2"), f["active"]
assert f["missing_libraries"]==[], f' "$output"
    # a link to a path that exists only on this machine is missing in the sysroot, listed once
    ln -sf /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 "$root/lib/x86_64-linux-gnu/libc.so.6"
    run "$T" inspect --json --root "$root" "$root/usr/bin/prog"
    rm -rf "$root"
    python3 -c '
import json,sys
f=json.loads(sys.argv[1][sys.argv[1].index("{"):])["files"][0]
assert f["missing_libraries"]==["libc.so.6"], f["missing_libraries"]
assert f["active"]["id"]!="mimalloc", f["active"]' "$output"
    run "$T" inspect --root /nonexistent/root "$FX/glibc-dynamic"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--root /nonexistent/root: No such file or directory"* ]]
}

@test "missing libraries are listed and the answer says it is unsure" {
    root=$(mktemp -d)
    mkdir -p "$root/usr/bin"
    cp "$FX/glibc-dynamic" "$root/usr/bin/prog"
    run "$T" inspect --json --root "$root" "$root/usr/bin/prog"
    rm -rf "$root"
    [ "$status" -eq 0 ]
    python3 -c '
import json,sys
f=json.loads(sys.argv[1])["files"][0]
assert f["missing_libraries"]==["libc.so.6"], f["missing_libraries"]
assert f["active"]["id"] is None and f["active"]["confidence"]=="low", f["active"]' "$output"
    # libc found, another library not: it could come first and define malloc
    dir=$BATS_TEST_TMPDIR
    printf 'void foo(void);\nint main(void) { foo(); return 0; }\n' > "$dir/p.c"
    printf 'void foo(void) {}\n' > "$dir/foo.c"
    gcc -shared -fPIC -o "$dir/libfoo.so" "$dir/foo.c"
    gcc -o "$dir/p" "$dir/p.c" -L"$dir" -lfoo
    run "$T" inspect --json "$dir/p"
    python3 -c '
import json,sys
a=json.loads(sys.argv[1])["files"][0]["active"]
assert a["id"]=="glibc-ptmalloc" and a["confidence"]=="low", a
assert "libfoo.so was not found (it could define malloc first)" in a["how"], a' "$output"
}

@test "a library already loaded satisfies a need before any search, as each loader does it" {
    # glibc: libmiddle.so, without a search path, needs libmym.so, which the program loaded
    # through its DT_RUNPATH; the loader agrees (the program runs)
    "$FX/loaded/glibc/prog"
    run "$T" inspect --json "$FX/loaded/glibc/prog"
    [ "$status" -eq 0 ]
    check_first '
assert f["missing_libraries"]==[], f["missing_libraries"]
paths=[o["path"] for o in f["load_order"]]
assert paths[0].endswith("/loaded/glibc/lib/libmiddle.so") and paths[1].endswith("/lib/libmym.so"), paths
assert f["active"]["provider"].endswith("/loaded/glibc/lib/libmym.so"), f["active"]
assert "not found" not in f["active"]["how"], f["active"]'
    # musl: the program needs only libmiddle.so, whose libmym.so musl finds by the path of the
    # program that loaded it; it comes after musl's libc.so, which serves malloc
    "$FX/loaded/musl/prog"
    run "$T" inspect --json "$FX/loaded/musl/prog"
    [ "$status" -eq 0 ]
    check_first '
assert f["missing_libraries"]==[], f["missing_libraries"]
assert f["load_order"][-1]["path"].endswith("/loaded/musl/lib/libmym.so"), f["load_order"]
assert f["active"]["id"]=="musl-mallocng" and f["active"]["confidence"]=="high", f["active"]'
    # glibc also matches a loaded object by its DT_SONAME: one preloaded by its path
    root=$BATS_TEST_TMPDIR/root
    mkdir -p "$root/usr/bin" "$root/opt" "$root/etc" "$root/lib/x86_64-linux-gnu"
    cp "$FX/loaded/glibc/prog" "$root/usr/bin/prog"
    cp "$FX/loaded/glibc/lib/libmym.so" "$root/opt/preloaded.so"
    cp "$FX/loaded/glibc/lib/libmiddle.so" /lib/x86_64-linux-gnu/libc.so.6 "$root/lib/x86_64-linux-gnu/"
    echo /opt/preloaded.so > "$root/etc/ld.so.preload"
    run "$T" inspect --json --root "$root" "$root/usr/bin/prog"
    [ "$status" -eq 0 ]
    check_first '
assert "libmym.so" not in f["missing_libraries"], f["missing_libraries"]
assert f["active"]["provider"].endswith("/opt/preloaded.so"), f["active"]'
}

@test "a library not found is a doubt only when it would come before the one that serves malloc" {
    cp -r "$FX/loaded/musl" "$BATS_TEST_TMPDIR/"
    rm "$BATS_TEST_TMPDIR/musl/lib/libmym.so"
    # libmym.so, needed by libmiddle.so, would come after musl's libc.so, which the program needs
    run "$T" inspect --json "$BATS_TEST_TMPDIR/musl/prog"
    [ "$status" -eq 0 ]
    check_first '
assert f["missing_libraries"]==["libmym.so"], f["missing_libraries"]
a=f["active"]
assert a["id"]=="musl-mallocng" and a["confidence"]=="high", a
assert "libmym.so was not found, but would come after it" in a["how"], a'
    # the program needs it before libc.so.6: it could define malloc first
    cp -r "$FX/loaded/glibc" "$BATS_TEST_TMPDIR/"
    rm "$BATS_TEST_TMPDIR/glibc/lib/libmym.so"
    run "$T" inspect --json "$BATS_TEST_TMPDIR/glibc/prog"
    check_first '
a=f["active"]
assert a["id"]=="glibc-ptmalloc" and a["confidence"]=="low", a
assert "libmym.so was not found (it could define malloc first)" in a["how"], a'
}

@test "JSON carries the schema and every documented top-level field" {
    run "$T" inspect --json "$FX/musl-static"
    [ "$status" -eq 0 ]
    python3 -c '
import json,sys
r=json.loads(sys.argv[1])
assert r["schema"]=="malloc-doctor/1" and r["command"]=="inspect"
f=r["files"][0]
for k in ["path","status","format","kind","libc","interpreter","stripped","threads","threads_evidence",
          "needed","malloc_import_version","allocators","references","active","findings"]:
    assert k in f, k
for k in ["id","family","name","confidence","how","provider","note"]:
    assert k in f["active"], k
for x in f["findings"]:
    for k in ["id","rule","severity","title","message","fix","evidence"]:
        assert k in x, k' "$output"
}

@test "inspect never runs the file" {
    dir=$(mktemp -d)
    # an executable that would leave a mark if it were run
    printf '#include <stdio.h>\nint main(void){FILE*f=fopen("%s/ran","w");return f==0;}\n' "$dir" > "$dir/p.c"
    gcc -o "$dir/p" "$dir/p.c"
    run "$T" inspect "$dir/p"
    [ "$status" -eq 0 ]
    [ ! -e "$dir/ran" ]
    rm -rf "$dir"
}

# sstrip removes the section headers: the dynamic section and .dynsym are then read as ld.so reads
# them, from PT_DYNAMIC (tests/fixtures/src/sstrip.c makes the copies).
@test "sstripped glibc threaded program: DT_NEEDED and the imports read from PT_DYNAMIC, as before sstrip" {
    ss=$FX/glibc-dynamic-sstripped
    [ "$(field "$ss" '["stripped"]')" = true ]
    [ "$(field "$ss" '["threads"]')" = '"yes"' ]
    [ "$(field "$ss" '["threads_evidence"]')" = '"pthread_create"' ]
    [ "$(active_id "$ss")" = glibc-ptmalloc ]
    # the same answer as the file with its section headers, confidence and versions included
    for key in '["active"]' '["malloc_import_version"]' '["kind"]' '["libc"]'; do
        [ "$(field "$ss" "$key")" = "$(field "$FX/glibc-dynamic" "$key")" ] || { echo "$key differs"; return 1; }
    done
    [ "$(field "$ss" '["malloc_import_version"]')" = '"GLIBC_2.2.5"' ]
    # symbols counted by DT_HASH (--hash-style=sysv) instead of DT_GNU_HASH
    [ "$(field "$FX/glibc-sysv-hash-sstripped" '["active"]')" = "$(field "$FX/glibc-sysv-hash" '["active"]')" ]
    [ "$(field "$FX/glibc-sysv-hash-sstripped" '["threads"]')" = '"yes"' ]
    run "$T" inspect "$ss"
    [[ "$output" == *"yes     glibc ptmalloc (high) via libc.so.6"* ]]
    run "$T" inspect --expect glibc "$ss"
    [ "$status" -eq 0 ]
    # only the header's section fields zeroed (e_shoff, e_shentsize..e_shstrndx), the file kept whole
    cp "$FX/glibc-dynamic" "$BATS_TEST_TMPDIR/zeroed"
    printf '\0\0\0\0\0\0\0\0' | dd of="$BATS_TEST_TMPDIR/zeroed" bs=1 seek=40 conv=notrunc 2>/dev/null
    printf '\0\0\0\0\0\0' | dd of="$BATS_TEST_TMPDIR/zeroed" bs=1 seek=58 conv=notrunc 2>/dev/null
    [ "$(od -An -tx1 -j58 -N6 "$BATS_TEST_TMPDIR/zeroed" | tr -d ' ')" = 000000000000 ]
    [ "$(field "$BATS_TEST_TMPDIR/zeroed" '["active"]')" = "$(field "$FX/glibc-dynamic" '["active"]')" ]
    [ "$(field "$BATS_TEST_TMPDIR/zeroed" '["threads"]')" = '"yes"' ]
    # toy-mt: its own libtoy.so (found through $ORIGIN in DT_RUNPATH) is first to define malloc
    run "$T" inspect -v "$FX/toy-mt-sstripped"
    [[ "${lines[1]}" == *"yes     unknown (low) via libtoy.so"* ]]
    [[ "$output" == *"load order: $(realpath "$FX")/libtoy.so  (defines malloc)"* ]]
}

@test "sstripped program linked with -lmimalloc: mimalloc serves malloc" {
    [ "$(active_id "$FX/mimalloc-dynamic-sstripped")" = mimalloc ]
    [ "$(field "$FX/mimalloc-dynamic-sstripped" '["active"]')" = "$(field "$FX/mimalloc-dynamic" '["active"]')" ]
    run "$T" inspect --expect mimalloc "$FX/mimalloc-dynamic-sstripped"
    [ "$status" -eq 0 ]
}

@test "sstripped fixtures still run and load what they loaded; a static one is still scanned by segment" {
    for f in toy-mt glibc-dynamic glibc-sysv-hash mimalloc-dynamic musl-static; do
        [ "$(od -An -tx8 -j40 -N8 "$FX/$f-sstripped" | tr -d ' ')" = 0000000000000000 ] # e_shoff
        run "$FX/$f-sstripped" 2000
        [ "$status" -eq 0 ] || { echo "$f-sstripped: exit $status"; return 1; }
        [ "$f" = musl-static ] && continue
        # the loader's view survives sstrip: the same libraries in the same order
        [ "$("$T" inspect -v "$FX/$f-sstripped" | grep 'load order:')" = \
            "$("$T" inspect -v "$FX/$f" | grep 'load order:')" ] || { echo "$f: load order differs"; return 1; }
    done
    [ "$(active_id "$FX/musl-static-sstripped")" = musl-mallocng ]
}

@test "a program cut short without section headers: its program header table or a segment, exit 2" {
    dir=$(mktemp -d)
    ss=$FX/glibc-dynamic-sstripped
    ms=$FX/musl-static-sstripped
    head -c 700 "$ss" >"$dir/ss.700" # 13 program headers of 56 bytes at 64 end at 792
    head -c 65 "$ss" >"$dir/ss.65"
    head -c 64 "$ss" >"$dir/ss.64" # libelf itself calls this one invalid data
    head -c 200 "$ms" >"$dir/ms.200" # 6 program headers end at 400
    head -c 500 "$ms" >"$dir/ms.500" # the table is whole, the segments are not
    head -c 5000 "$ms" >"$dir/ms.5000"
    for cut in ss.700:"truncated program header table (13 entries at offset 64, file is 700 bytes)" \
        ss.65:"truncated program header table (13 entries at offset 64, file is 65 bytes)" \
        ss.64:"truncated program header table (13 entries at offset 64, file is 64 bytes)" \
        ms.200:"truncated program header table (6 entries at offset 64, file is 200 bytes)" \
        ms.500:"truncated: segment 1 ends at " ms.5000:"truncated: segment 1 ends at "; do
        f=$dir/${cut%%:*}
        run bash -c '"$1" inspect --json "$2" 2>/dev/null' _ "$T" "$f"
        [ "$status" -eq 2 ] || { echo "status $status for $f: $output"; return 1; }
        check_first 'assert f["status"]=="error", f' || return 1
        run "$T" inspect "$f"
        [ "${#lines[@]}" -eq 1 ] || { echo "not one line: $output"; return 1; }
        [[ "$output" == "malloc-doctor: inspect: $f: ${cut#*:}"* ]] || { echo "$output"; return 1; }
    done
    [[ "$output" == *", file is 5000 bytes" ]]
    # a separate debug file keeps the program's segments over sections it emptied: not cut short
    objcopy --only-keep-debug "$FX/musl-static" "$dir/musl-static.debug"
    run "$T" inspect --json "$dir/musl-static.debug"
    [ "$status" -eq 0 ] || { echo "$output"; return 1; }
    rm -rf "$dir"
}

@test "MD002 does not judge a file that never links malloc, whatever allocator names it holds" {
    # two functions of the program's own that carry mdalloc's names: mdalloc "present", malloc
    # not linked; MD002 said malloc was "served by an unidentified allocator"
    dir=$(mktemp -d)
    printf '#include <stdio.h>\nvoid md_malloc_generic(void) { puts("a"); }\nvoid md_heap_get_slow(void) { puts("b"); }\nint main(void) { md_malloc_generic(); md_heap_get_slow(); return 0; }\n' >"$dir/names.c"
    musl-gcc -static -O2 -o "$dir/names" "$dir/names.c"
    run "$T" inspect --json "$dir/names"
    rm -rf "$dir"
    [ "$status" -eq 0 ]
    echo "$output" | python3 -c '
import json, sys
f = json.load(sys.stdin)["files"][0]
assert f["active"]["reason"] == "malloc-not-linked", f["active"]
assert [a["id"] for a in f["allocators"]] == ["mdalloc"] and f["findings"] == [], f
' || return 1
}

@test "text table: every column starts where its header does, however wide a cell is" {
    # "mimalloc (high) via libmimalloc.so.2" is wider than the 34 columns the table once had
    run "$T" inspect "$FX/musl-static" "$FX/mimalloc-dynamic" "$FX/glibc-dynamic" "$FX/jemalloc-static"
    [ "$status" -eq 0 ]
    python3 - "$output" <<'PY'
import sys
lines = sys.argv[1].split("\n")[:5]
starts = [lines[0].index(h) for h in ("KIND", "LIBC", "THREADS", "ACTIVE ALLOCATOR", "ALSO PRESENT")]
for row in lines[1:]:
    for at in starts:  # a column starts after a blank, with a character of its own
        assert row[at - 1] == " " and row[at] != " ", (row, at)
PY
}

@test "every dynamic file has load_order and missing_libraries, also one that serves malloc itself" {
    run "$T" inspect --json /usr/lib/x86_64-linux-gnu/libmimalloc.so.2 "$FX/glibc-dynamic" "$FX/musl-static"
    [ "$status" -eq 0 ]
    echo "$output" | python3 -c '
import json, sys
lib, prog, static = json.load(sys.stdin)["files"]
assert lib["active"]["id"] == "mimalloc", lib["active"]
for f in (lib, prog):
    assert [e["path"].rsplit("/", 1)[1] for e in f["load_order"]][0] == "libc.so.6", f["load_order"]
    assert f["missing_libraries"] == [], f
assert "load_order" not in static and "missing_libraries" not in static, static
' || return 1
}

@test "separate debug files: kind debug-file, the program's allocator by its symbols, judged by neither --expect nor the rules" {
    dir=$(mktemp -d)
    cp "$FX/musl-static" "$FX/mimalloc-dynamic" "$dir/"
    # the dynamic program's debug file keeps a PT_INTERP without bytes: once refused as corrupt
    for p in musl-static mimalloc-dynamic; do
        objcopy --only-keep-debug "$dir/$p" "$dir/$p.debug"
    done
    run "$T" inspect --json "$dir/musl-static.debug" "$dir/mimalloc-dynamic.debug"
    [ "$status" -eq 0 ] || { echo "$output"; return 1; }
    echo "$output" | python3 -c '
import json, sys
s, d = json.load(sys.stdin)["files"]
for f in (s, d):
    assert f["status"] == "ok" and f["kind"] == "debug-file", f
    assert f["libc"] is None and f["threads"] is None and f["interpreter"] is None, f
    assert f["findings"] == [], f
assert s["active"]["id"] == "musl-mallocng", s["active"]
assert d.get("active") is None, d
' || return 1
    # a release tree of programs and their debug files: --expect judges the programs only
    run "$T" inspect -r --expect mdalloc --json "$dir"
    [ "$status" -eq 1 ] || { echo "status $status: $output"; return 1; }
    echo "$output" | python3 -c '
import json, sys
judged = sorted(f["path"].rsplit("/", 1)[1] for f in json.load(sys.stdin)["files"] if "expect" in f)
assert judged == ["mimalloc-dynamic", "musl-static"], judged
' || return 1
    # an empty PT_INTERP is a debug file's alone: in a program it is still corrupt
    python3 - "$dir/mimalloc-dynamic" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], 'rb').read())
phoff, = struct.unpack_from('<Q', d, 0x20)
size, count = struct.unpack_from('<HH', d, 0x36)
for i in range(count):
    if struct.unpack_from('<I', d, phoff + i * size)[0] == 3:  # PT_INTERP: p_filesz 0
        struct.pack_into('<Q', d, phoff + i * size + 32, 0)
open(sys.argv[1], 'wb').write(d)
PY
    run "$T" inspect "$dir/mimalloc-dynamic"
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: inspect: $dir/mimalloc-dynamic: corrupt PT_INTERP segment" ]
    rm -rf "$dir"
}

@test "a corrupt PT_DYNAMIC in an sstripped file: one clear line, exit 2, no crash" {
    for what in strtab:"DT_STRTAB is not in the file" \
        strsz:"DT_STRSZ runs past its segment or the end of the file" \
        gnu-hash:"DT_GNU_HASH is not in the file or a chain runs past its end"; do
        f=$FX/bad/sstripped-${what%%:*}
        run "$T" inspect "$f"
        [ "$status" -eq 2 ] || { echo "status $status for $f"; return 1; }
        [ "${#lines[@]}" -eq 1 ] || { echo "not one line: $output"; return 1; }
        [ "$output" = "malloc-doctor: inspect: $f: corrupt dynamic segment: ${what#*:}" ] || { echo "$output"; return 1; }
    done
}
