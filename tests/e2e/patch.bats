#!/usr/bin/env bats
# End-to-end tests of `malloc-doctor patch` on copies of the real musl libc.a (never the system
# file), on an oldmalloc-layout libc.a and on broken allocator archives (tests/fixtures/patch.mk).

MUSL_LIBC=/usr/lib/x86_64-linux-musl/libc.a

setup_file() {
    cd "${MD_ROOT:-$BATS_TEST_DIRNAME/../..}"
    T=${MD_TOOL:-build/malloc-doctor}
    # one reference result, patched with -o, shared by the tests that only read it
    mkdir -p "$BATS_FILE_TMPDIR/ref"
    "$T" patch -o "$BATS_FILE_TMPDIR/ref/libc.a" "$MUSL_LIBC" >/dev/null
}

setup() {
    cd "${MD_ROOT:-$BATS_TEST_DIRNAME/../..}"
    T=${MD_TOOL:-build/malloc-doctor}
    case $T in /*) ;; *) T=$PWD/$T ;; esac
    PX=$PWD/build/fixtures/patch
    REF=$BATS_FILE_TMPDIR/ref/libc.a
    W=$BATS_TEST_TMPDIR
    cp "$MUSL_LIBC" "$W/libc.a"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# a python expression over the JSON report in $1, printed
jq_() {
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"
}

# links the 2-thread churn statically against the libc.a in directory $1, into $2
link_churn() {
    musl-gcc -static -L"$1" -o "$2" "$PX/churn.o"
}

# the active allocator's id and every allocator id present, from inspect --json
active_id() {
    "$T" inspect --json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["active"]["id"])'
}
present_ids() {
    "$T" inspect --json "$1" | python3 -c 'import json,sys; print(" ".join(a["id"] for a in json.load(sys.stdin)["files"][0]["allocators"]))'
}

@test "--help, and usage errors exit 2" {
    run "$T" patch --help
    [ "$status" -eq 0 ]
    [[ "$output" == *"usage: malloc-doctor patch"*"LIBC.a"* ]]
    [[ "$output" == *"--allocator ARCHIVE.a"*"--dry-run"*"--restore"* ]]
    # the usage line is the README's synopsis, word for word
    synopsis=$(grep -m1 '^malloc-doctor patch \[' README.md)
    [ "${lines[0]}" = "usage: $synopsis" ]
    run "$T" patch
    [ "$status" -eq 2 ]
    [[ "$output" == *"no LIBC.a given"* ]]
    run "$T" patch --bogus "$W/libc.a"
    [ "$status" -eq 2 ]
    run "$T" patch --restore -o "$W/x.a" "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"--restore takes neither"* ]]
    run "$T" patch "$W/libc.a" "$W/libc.a"
    [ "$status" -eq 2 ]
}

@test "--dry-run prints the plan (both free.lo and realloc.lo out, objects in, symbols checked) and writes nothing" {
    before=$(sha "$W/libc.a")
    run "$T" patch --dry-run "$W/libc.a"
    [ "$status" -eq 0 ]
    [[ "$output" == *"mallocng"* ]]
    [ "$(grep -cE '^  #[0-9]+ +free\.lo ' <<<"$output")" -eq 2 ]
    [ "$(grep -cE '^  #[0-9]+ +realloc\.lo ' <<<"$output")" -eq 2 ]
    [[ "$output" == *"donate.lo"* && *"malloc.lo"* && *"lite_malloc.lo"* ]]
    [[ "$output" == *"mdalloc.o"* ]]
    [[ "$output" == *"__libc_malloc "*"<- mdalloc.o"* ]]
    [[ "$output" == *"0 missing, 0 defined twice"* ]]
    [[ "$output" == *"dry run"*"nothing written"* ]]
    [ "$(sha "$W/libc.a")" = "$before" ]
    [ "$(ls "$W")" = libc.a ] # no backup, no temp file
}

@test "--json: the plan as a report, members chosen by the symbols they define" {
    "$T" patch --dry-run --json "$W/libc.a" >"$W/r.json"
    [ "$(jq_ "$W/r.json" 'r["command"] + " " + r["status"]')" = "patch planned" ]
    [ "$(jq_ "$W/r.json" 'r["libc"]["musl_allocator"]')" = mallocng ]
    [ "$(jq_ "$W/r.json" 'sorted(m["member"] for m in r["remove"] if m["member"] in ("free.lo","realloc.lo"))')" = "['free.lo', 'free.lo', 'realloc.lo', 'realloc.lo']" ]
    # fork.lo keeps its weak __malloc_atfork stub: it is not part of the allocator
    [ "$(jq_ "$W/r.json" '[m for m in r["remove"] if m["member"]=="fork.lo"]')" = "[]" ]
    [ "$(jq_ "$W/r.json" '[o["strong_in"] for o in r["overrides"] if o["symbol"]=="__malloc_atfork"]')" = "['mdalloc.o']" ]
    [ "$(jq_ "$W/r.json" 'len(r["missing"]) + len(r["duplicates"])')" = 0 ]
    [ "$(jq_ "$W/r.json" 'sorted(c["symbol"] for c in r["checked"] if c["symbol"].startswith("__libc_"))')" = "['__libc_calloc', '__libc_free', '__libc_malloc']" ]
}

# every key the README lists for patch's JSON, in every result; $2 the status, $3 the error's words
json_shape() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
keys = ["libc", "allocator", "dry_run", "status", "error", "output", "backup", "unchanged",
        "members_written", "bytes_written", "stale_temps_removed", "remove", "add", "checked",
        "missing", "duplicates", "overrides", "warnings"]
assert [k for k in r if k not in ("schema", "tool", "command")] == keys, list(r)
assert set(r["libc"]) == {"path", "target", "members", "musl_allocator"}, r["libc"]
assert r["allocator"] is None or set(r["allocator"]) == {"path", "members"}, r["allocator"]
assert r["status"] == sys.argv[2], r["status"]
assert (r["error"] is None) == (sys.argv[3] == ""), r["error"]
assert sys.argv[3] in (r["error"] or ""), r["error"]
PY
}

@test "a report that cannot be printed after the write is exit 2 and says the file was written" {
    run bash -c '"$1" patch "$2" >/dev/full' _ "$T" "$W/libc.a"
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: patch: $W/libc.a was patched (original kept as $W/libc.a.orig), but the standard output could not be written: No space left on device" ]
    cmp "$W/libc.a" "$REF"
    cmp "$W/libc.a.orig" "$MUSL_LIBC"
    run bash -c '"$1" patch --json --restore "$2" >/dev/full' _ "$T" "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"libc.a was restored from $W/libc.a.orig, but the standard output could not be written"* ]]
    cmp "$W/libc.a" "$MUSL_LIBC"
    mkdir "$W/o"
    run bash -c '"$1" patch -o "$2" "$3" >/dev/full' _ "$T" "$W/o/libc.a" "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"o/libc.a was written, but the standard output could not be written"* ]]
    # nothing written: the plain error, once
    run bash -c '"$1" patch --dry-run "$2" >/dev/full' _ "$T" "$W/libc.a"
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: patch: cannot write the standard output: No space left on device" ]
    # a closed stdout is named as such, not as the /dev/full that holds its place
    run bash -c '"$1" patch "$2" >&-' _ "$T" "$W/libc.a"
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: patch: $W/libc.a was patched (original kept as $W/libc.a.orig), but the standard output could not be written: Bad file descriptor" ]
}

@test "--json: one shape for every result; refusals have status refused and the error" {
    run "$T" patch --json /usr/lib/x86_64-linux-gnu/libc.a
    [ "$status" -eq 2 ]
    "$T" patch --json /usr/lib/x86_64-linux-gnu/libc.a >"$W/r.json" 2>/dev/null || true
    json_shape "$W/r.json" refused "this is glibc's libc.a"
    "$T" patch --json --dry-run "$PX/notmusl.a" >"$W/r.json" 2>/dev/null || true
    json_shape "$W/r.json" refused "not a musl libc.a"
    "$T" patch --json --dry-run "$W/nonexistent.a" >"$W/r.json" 2>/dev/null || true
    json_shape "$W/r.json" refused "nonexistent.a"
    "$T" patch --json --dry-run --allocator "$PX/libmdalloc-nocalloc.a" "$W/libc.a" >"$W/r.json" || true
    json_shape "$W/r.json" refused "would not link"
    "$T" patch --json --dry-run "$W/libc.a" >"$W/r.json"
    json_shape "$W/r.json" planned ""
    "$T" patch --json "$W/libc.a" >"$W/r.json"
    json_shape "$W/r.json" patched ""
    [ "$(jq_ "$W/r.json" '(r["unchanged"], r["stale_temps_removed"], r["members_written"] > 0)')" = "(False, 0, True)" ]
    "$T" patch --json "$W/libc.a" >"$W/r.json"
    json_shape "$W/r.json" already-patched ""
    [ "$(jq_ "$W/r.json" '(r["output"] == r["libc"]["path"], r["unchanged"], r["backup"], r["remove"])')" = "(True, True, None, None)" ]
    "$T" patch --json --restore --dry-run "$W/libc.a" >"$W/r.json"
    json_shape "$W/r.json" restore-planned ""
    [ "$(jq_ "$W/r.json" '(r["dry_run"], r["allocator"], r["libc"]["path"] == r["output"])')" = "(True, None, True)" ]
    "$T" patch --json --restore "$W/libc.a" >"$W/r.json"
    json_shape "$W/r.json" restored ""
    "$T" patch --json --restore "$W/libc.a" >"$W/r.json" 2>/dev/null || true
    json_shape "$W/r.json" refused "no backup to restore"
}

@test "-v lists every member needing each checked symbol and every symbol a member defines; JSON has the full lists" {
    "$T" patch --dry-run --json "$W/libc.a" >"$W/r.json"
    [ "$(jq_ "$W/r.json" 'all(len(c["needed_by"]) == c["needed_by_count"] for c in r["checked"])')" = True ]
    [ "$(jq_ "$W/r.json" '[c["needed_by_count"] for c in r["checked"] if c["symbol"] == "malloc"][0] > 3')" = True ]
    run "$T" patch -v --dry-run "$W/libc.a"
    [ "$status" -eq 0 ]
    [[ "$output" != *"..."* ]]
    want=$(jq_ "$W/r.json" '[" ".join(c["needed_by"]) + "  <- " + c["provided_by"] for c in r["checked"] if c["symbol"] == "malloc"][0]')
    grep -qxF -- "  $(printf '%-24s' malloc) needed by $want" <<<"$output"
    defs=$(jq_ "$W/r.json" '[" ".join(m["defines"]) for m in r["remove"] if m["member"] == "malloc.lo"][0]')
    [ "${#defs}" -gt 60 ]
    grep -qE -- "^  #[0-9]+ +malloc\.lo +$defs\$" <<<"$output"
    # without -v, long lists are cut, and say so
    run "$T" patch --dry-run "$W/libc.a"
    grep -qE -- '^  malloc +needed by .* \.\.\.  <- ' <<<"$output"
}

@test "patched archive: ar t and the symbol index are valid, -o leaves the input untouched" {
    before=$(sha "$W/libc.a")
    run "$T" patch -o "$W/out.a" "$W/libc.a"
    [ "$status" -eq 0 ]
    [[ "$output" == *"wrote $W/out.a"* ]]
    [ "$(sha "$W/libc.a")" = "$before" ]
    [ ! -e "$W/libc.a.orig" ]
    ar t "$W/out.a" >"$W/members"
    run grep -qxE 'malloc\.lo|donate\.lo|lite_malloc\.lo|free\.lo|realloc\.lo' "$W/members"
    [ "$status" -eq 1 ]
    grep -qx mdalloc.o "$W/members"
    grep -qx clone.lo "$W/members" # other duplicate names survive
    [ "$(grep -cx clone.lo "$W/members")" -eq "$(ar t "$MUSL_LIBC" | grep -cx clone.lo)" ]
    removed=$("$T" patch --dry-run --json "$W/libc.a" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(len(r["remove"]) - len(r["add"]))')
    # and the mark of the original, last, which defines nothing
    [ "$(wc -l <"$W/members")" -eq $(($(ar t "$MUSL_LIBC" | wc -l) - removed + 1)) ]
    [ "$(tail -1 "$W/members")" = malloc-doctor-patch.o ]
    ar p "$W/out.a" malloc-doctor-patch.o >"$W/mark.o"
    [ -z "$(nm "$W/mark.o" 2>/dev/null)" ]
    [ "$(readelf -p .comment "$W/mark.o" | grep -o 'made from a libc.a of .*')" = "made from a libc.a of $(stat -c %s "$W/libc.a") bytes, sha256 $before" ]
    nm --print-armap "$W/out.a" >"$W/armap" 2>/dev/null
    grep -qx 'malloc in mdalloc.o' "$W/armap"
    grep -qx '__libc_free in mdalloc.o' "$W/armap"
    grep -qx 'memcpy in memcpy.lo' "$W/armap"
    # the index lists exactly the global definitions of the members
    index=$(sed -n '/^Archive index:/,/^$/p' "$W/armap" | grep -c ' in ')
    defs=$(nm -g --defined-only "$W/out.a" 2>/dev/null | grep -cE '^[0-9a-f]+ [A-Za-z] ')
    [ "$index" -eq "$defs" ]
}

@test "a multithreaded static program links against the patched libc.a, runs, and mdalloc serves malloc" {
    mkdir -p "$W/p"
    "$T" patch -o "$W/p/libc.a" "$W/libc.a"
    link_churn "$W/p" "$W/churn"
    run "$W/churn" 2 20000
    [ "$status" -eq 0 ]
    [[ "$output" == "ok 2 20000 "* ]]
    [ "$(active_id "$W/churn")" = mdalloc ]
    [ "$(present_ids "$W/churn")" = mdalloc ]
    run "$T" inspect --expect mdalloc "$W/churn"
    [ "$status" -eq 0 ]
    # the control: the same object linked against the original libc.a is musl's
    [ "$(active_id "$PX/churn-musl")" = musl-mallocng ]
}

@test "a program with its own malloc, free, calloc and realloc links against the patched libc.a as against musl's, and libc's internal allocations go to mdalloc" {
    mkdir -p "$W/p"
    cp "$REF" "$W/p/libc.a"
    # the control: musl's own libc.a takes the program's allocator
    musl-gcc -static -o "$W/own-musl" "$PX/own_malloc.o"
    run "$W/own-musl"
    [ "$status" -eq 0 ]
    [[ "$output" == "ok own="* ]]
    # the program's malloc is the public one, mdalloc serves setlocale and posix_spawn's actions
    musl-gcc -static -L"$W/p" -o "$W/own" "$PX/own_malloc.o"
    MDALLOC_VERBOSE=1 run "$W/own"
    echo "$output"
    [ "$status" -eq 0 ]
    [[ "$output" == *"ok own="* ]]
    [[ "$output" == *"mdalloc: version "*"(musl-embedded)"* ]]
    # inspect: the program's malloc serves malloc, not mdalloc (which was "the only allocator
    # present", high); --expect mdalloc fails, and MD002 says why instead of prescribing a patch
    for f in "$W/own" "$W/own-musl"; do
        run "$T" inspect --json "$f"
        [ "$(echo "$output" | python3 -c 'import json,sys; a=json.load(sys.stdin)["files"][0]["active"]; print(a["id"], a["reason"])')" = "None defined-elsewhere" ]
    done
    run "$T" inspect --expect mdalloc "$W/own"
    [ "$status" -eq 1 ]
    [[ "$output" == *"unknown (malloc defined elsewhere)"* ]]
    [[ "$output" == *"fix: the file defines a malloc of its own (or links an allocator this tool does not know), which wins over mdalloc's"* ]]
}

@test "a program whose own malloc is the only one linked (no libc allocator, musl's or mdalloc's libc.a, or glibc's) is defined-elsewhere, and MD003 says to remove that malloc before any patch or archive; stripped, nothing is known" {
    for f in own-only-musl own-only-mdalloc own-only-glibc; do
        run "$T" inspect --json "$PX/$f"
        [ "$(echo "$output" | python3 -c 'import json,sys; f=json.load(sys.stdin)["files"][0]; a=f["active"]; print(a["id"], a["reason"], len(f["allocators"]))')" = "None defined-elsewhere 0" ]
        run "$T" inspect "$PX/$f"
        [[ "$output" == *"unknown (malloc defined elsewhere)"* ]]
        run "$T" inspect --expect mdalloc "$PX/$f"
        echo "$output"
        [ "$status" -eq 1 ]
        [[ "$output" == *"MD003"*"malloc is served by the file's own malloc (or an allocator this tool does not know)"* ]]
        [[ "$output" == *"fix: the file defines a malloc of its own (or links an allocator this tool does not know), which wins over mdalloc's: remove that definition, then "* ]]
        # what follows "then" is MD003's usual prescription, after the definition is gone
        [[ "$output" == *"then "*"patch -o"* || "$output" == *"then link all of mdalloc's archive"* ]]
        [[ "$output" != *"MD002"* ]] # no allocator is linked to be passed over
    done
    # the file's own libc's malloc: removing the definition is all it takes
    run "$T" inspect --expect musl "$PX/own-only-musl"
    [ "$status" -eq 1 ]
    [[ "$output" == *"which wins over musl's: remove that definition"* ]]
    [[ "$output" != *"rebuild with that libc"* ]]
    # without symbols there is no malloc to find: unknown, and MD003's usual fix
    run "$T" inspect --json "$PX/own-only-musl-stripped"
    [ "$(echo "$output" | python3 -c 'import json,sys; a=json.load(sys.stdin)["files"][0]["active"]; print(a["id"], a["reason"])')" = "None None" ]
    run "$T" inspect --expect mdalloc "$PX/own-only-musl-stripped"
    [ "$status" -eq 1 ]
    [[ "$output" == *"fix: "*"patch -o"* ]]
}

@test "the patched libc.a adds no global name outside the reserved ones but the malloc API: a program may define md_options" {
    mkdir -p "$W/p"
    cp "$REF" "$W/p/libc.a"
    musl-gcc -static -L"$W/p" -o "$W/names" "$PX/md_names.o"
    run "$W/names"
    [ "$status" -eq 0 ]
    [ "$output" = "ok 42" ]
    [ "$(active_id "$W/names")" = mdalloc ]
    # what the added member defines globally: the malloc API and names reserved to the
    # implementation (__x, _X), nothing else
    ar p "$W/p/libc.a" mdalloc.o >"$W/mdalloc.o"
    nm -g --defined-only "$W/mdalloc.o" | awk '{print $3}' >"$W/globals"
    grep -qx __libc_malloc "$W/globals"
    run grep -vxE '__.*|_[A-Z].*|malloc|free|calloc|realloc|reallocarray|aligned_alloc|posix_memalign|memalign|valloc|pvalloc|malloc_usable_size|free_sized|free_aligned_sized' "$W/globals"
    echo "$output"
    [ "$status" -eq 1 ]
}

@test "a program linked with the patched libc.a carries no debug info of mdalloc's" {
    mkdir -p "$W/p"
    cp "$REF" "$W/p/libc.a"
    # the object is built without -g; musl's crt1.o brings a little DWARF of its own
    musl-gcc -static -o "$W/churn-musl" "$PX/churn-nodebug.o"
    musl-gcc -static -L"$W/p" -o "$W/churn" "$PX/churn-nodebug.o"
    [ "$(active_id "$W/churn")" = mdalloc ]
    info_size() { readelf -S -W "$1" | sed -n 's/^ *\[ *[0-9]*\] \.debug_info  *[A-Z]*  *[0-9a-f]* [0-9a-f]* \([0-9a-f]*\) .*/\1/p'; }
    [ -n "$(info_size "$W/churn-musl")" ]
    [ "$(info_size "$W/churn")" = "$(info_size "$W/churn-musl")" ]
    run bash -c "readelf --debug-dump=info '$W/churn' | grep -E 'DW_AT_name.*(alloc|options|heap|segment|glue_musl_embed)\.c'"
    [ "$status" -eq 1 ]
    run grep -cF "$PWD/alloc" "$W/churn"
    [ "$output" = 0 ]
}

@test "trace: futex and mmap per allocator operation drop after the patch" {
    mkdir -p "$W/p"
    cp "$REF" "$W/p/libc.a"
    link_churn "$W/p" "$W/churn"
    "$T" trace --json -o "$W/before.json" -- "$PX/churn-musl" 2 20000 >/dev/null
    "$T" trace --json -o "$W/after.json" -- "$W/churn" 2 20000 >/dev/null
    per_op() { # report, syscall
        jq_ "$1" "sum(s['per_op'] for s in r['syscalls'] if s['name'] in ('$2'.split(',')))"
    }
    b_mmap=$(per_op "$W/before.json" mmap,munmap)
    a_mmap=$(per_op "$W/after.json" mmap,munmap)
    b_futex=$(per_op "$W/before.json" futex)
    a_futex=$(per_op "$W/after.json" futex)
    echo "mmap+munmap per op: $b_mmap -> $a_mmap; futex per op: $b_futex -> $a_futex"
    python3 -c "import sys; b,a=map(float,sys.argv[1:]); sys.exit(0 if a*10 < b else 1)" "$b_mmap" "$a_mmap"
    python3 -c "import sys; b,a=map(float,sys.argv[1:]); sys.exit(0 if a <= b else 1)" "$b_futex" "$a_futex"
}

@test "output is deterministic: same input, same bytes" {
    "$T" patch -o "$W/a.a" "$W/libc.a" >/dev/null
    "$T" patch -o "$W/b.a" "$W/libc.a" >/dev/null
    cmp "$W/a.a" "$W/b.a"
    cmp "$W/a.a" "$REF"
}

@test "in place: backup, mode and owner kept; a second patch is a no-op; --restore gives the original bytes" {
    orig=$(sha "$W/libc.a")
    chmod 640 "$W/libc.a"
    if [ "$(id -u)" = 0 ]; then chown 1234:5678 "$W/libc.a"; fi
    owner=$(stat -c %u:%g "$W/libc.a")
    run "$T" patch "$W/libc.a"
    [ "$status" -eq 0 ]
    [[ "$output" == *"original kept as $W/libc.a.orig"* ]]
    cmp "$W/libc.a" "$REF"
    [ "$(sha "$W/libc.a.orig")" = "$orig" ]
    [ "$(stat -c %a "$W/libc.a")" = 640 ]
    [ "$(stat -c %u:%g "$W/libc.a")" = "$owner" ]
    patched=$(sha "$W/libc.a")
    run "$T" patch "$W/libc.a"
    [ "$status" -eq 0 ]
    [[ "$output" == *"already patched"*"nothing to do"* ]]
    # no plan was made: no empty one is shown (remove 0, add 0, symbols checked: 0)
    [[ "$output" != *"remove 0"* && "$output" != *"add 0"* && "$output" != *"symbols checked"* ]]
    [ "$(sha "$W/libc.a")" = "$patched" ]
    [ "$(sha "$W/libc.a.orig")" = "$orig" ]
    run "$T" patch --restore "$W/libc.a"
    [ "$status" -eq 0 ]
    [[ "$output" == *"restored"* ]]
    [ "$(sha "$W/libc.a")" = "$orig" ]
    [ ! -e "$W/libc.a.orig" ]
    [ "$(stat -c %a "$W/libc.a")" = 640 ]
    [ "$(stat -c %u:%g "$W/libc.a")" = "$owner" ]
    run "$T" patch --restore "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"no backup to restore"* ]]
    [ -z "$(ls "$W" | grep md-tmp)" ]
}

@test "three concurrent in-place runs: one patches, each other one is busy or already patched" {
    orig=$(sha "$W/libc.a")
    # starts staggered by a step that grows each round, so that some run reads libc.a while
    # another one is writing it, whatever the speed of this machine and build
    round=0
    for step in 0 0.02 0.05 0.1 0.2 0.4; do
        round=$((round + 1))
        mkdir "$W/c$round"
        cp "$W/libc.a" "$W/c$round/libc.a"
        for i in 1 2 3; do
            "$T" patch "$W/c$round/libc.a" >"$W/c$round/out$i" 2>&1 &
            sleep "$step"
        done
        wait
        # a run that read libc.a before another replaced it found the other's backup in its
        # way, and told the user to move it away: never again
        [ -z "$(grep -h "exists and differs" "$W/c$round"/out*)" ]
        [ "$(grep -l "original kept as" "$W/c$round"/out* | wc -l)" -eq 1 ]
        for i in 1 2 3; do
            grep -q -e "original kept as" -e "already patched" \
                -e "another malloc-doctor patch is writing in this directory" "$W/c$round/out$i"
        done
        cmp "$W/c$round/libc.a" "$REF"
        [ "$(sha "$W/c$round/libc.a.orig")" = "$orig" ]
    done
}

@test "--backup SUFFIX, and a different existing backup is never overwritten" {
    orig=$(sha "$W/libc.a")
    run "$T" patch --backup .pristine "$W/libc.a"
    [ "$status" -eq 0 ]
    [ "$(sha "$W/libc.a.pristine")" = "$orig" ]
    run "$T" patch --restore --backup .pristine "$W/libc.a"
    [ "$status" -eq 0 ]
    [ "$(sha "$W/libc.a")" = "$orig" ]
    echo stale >"$W/libc.a.orig"
    run "$T" patch "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"libc.a.orig exists and differs"* ]]
    [ "$(sha "$W/libc.a")" = "$orig" ]
    [ "$(cat "$W/libc.a.orig")" = stale ]
}

@test "a backup name that is a symlink or not a file is refused before anything is touched" {
    orig=$(sha "$W/libc.a")
    # in place: libc.a.orig -> libc.a would show the patched file once libc.a is replaced
    mkdir "$W/bd2"
    cp "$MUSL_LIBC" "$W/bd2/libc.a"
    ln -s libc.a "$W/bd2/libc.a.orig"
    run "$T" patch "$W/bd2/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"bd2/libc.a.orig: a symbolic link; the backup of "*"must be a regular file"* ]]
    [ "$(sha "$W/bd2/libc.a")" = "$orig" ]
    [ "$(readlink "$W/bd2/libc.a.orig")" = libc.a ]
    [ "$(ls "$W/bd2" | tr '\n' ' ')" = "libc.a libc.a.orig " ] # no temp file left
    # -o over an existing archive whose backup name links to it
    mkdir "$W/bd3"
    echo 'int x;' >"$W/st.c"
    ar rc "$W/bd3/out.a" "$W/st.c"
    ln -s out.a "$W/bd3/out.a.orig"
    before=$(sha "$W/bd3/out.a")
    run "$T" patch -o "$W/bd3/out.a" "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"bd3/out.a.orig: a symbolic link"* ]]
    [ "$(sha "$W/bd3/out.a")" = "$before" ]
    [ "$(readlink "$W/bd3/out.a.orig")" = out.a ]
    # a link to an identical copy elsewhere is no backup either, and neither is a directory
    mkdir "$W/bd4"
    cp "$MUSL_LIBC" "$W/bd4/libc.a"
    cp "$MUSL_LIBC" "$W/copy.a"
    ln -s ../copy.a "$W/bd4/libc.a.orig"
    run "$T" patch "$W/bd4/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"bd4/libc.a.orig: a symbolic link"* ]]
    [ "$(sha "$W/bd4/libc.a")" = "$orig" ]
    rm "$W/bd4/libc.a.orig"
    mkdir "$W/bd4/libc.a.orig"
    run "$T" patch "$W/bd4/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"bd4/libc.a.orig: not a regular file"* ]]
    [ "$(sha "$W/bd4/libc.a")" = "$orig" ]
}

@test "--restore refuses a backup name that is a symlink, even to an identical original" {
    "$T" patch "$W/libc.a" >/dev/null
    mv "$W/libc.a.orig" "$W/copy.a"
    ln -s copy.a "$W/libc.a.orig"
    run "$T" patch --restore "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"libc.a.orig: a symbolic link, not a backup this tool made"* ]]
    [ ! -L "$W/libc.a" ]
    cmp "$W/libc.a" "$REF"
    [ -L "$W/libc.a.orig" ]
}

@test "a symlinked libc.a is patched where it lives and stays a link" {
    mkdir -p "$W/real"
    mv "$W/libc.a" "$W/real/libc.a"
    ln -s real/libc.a "$W/libc.a"
    run "$T" patch "$W/libc.a"
    [ "$status" -eq 0 ]
    [ -L "$W/libc.a" ]
    cmp "$W/real/libc.a" "$REF"
    cmp "$W/real/libc.a.orig" "$MUSL_LIBC"
    run "$T" patch --restore "$W/libc.a"
    [ "$status" -eq 0 ]
    [ -L "$W/libc.a" ]
    cmp "$W/real/libc.a" "$MUSL_LIBC"
}

@test "patched before with another allocator: refused, restore first" {
    "$T" patch "$W/libc.a" >/dev/null
    run "$T" patch --allocator "$PX/libmdalloc-dup.a" "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"patched before"*"--restore"* ]]
    cmp "$W/libc.a" "$REF"
}

@test "patched before with another allocator and no backup (an -o result): the advice is to patch the original" {
    mkdir "$W/out"
    "$T" patch -o "$W/out/libc.a" "$W/libc.a" >/dev/null
    run "$T" patch --allocator "$PX/libmdalloc-dup.a" -o "$W/p2.a" "$W/out/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"patched before"*"there is no backup to --restore: patch the original musl libc.a instead"* ]]
    [[ "$output" != *"run --restore first"* ]]
    [ ! -e "$W/p2.a" ]
    # in place with a backup, the advice names it
    "$T" patch "$W/libc.a" >/dev/null
    run "$T" patch --allocator "$PX/libmdalloc-dup.a" "$W/libc.a"
    [[ "$output" == *"run --restore first (the original is kept as $W/libc.a.orig)"* ]]
}

@test "killing the process at any step of the write leaves the original intact" {
    orig=$(sha "$W/libc.a")
    for step in 1 2 3 4 5 6 7; do
        rm -f "$W"/libc.a*
        cp "$MUSL_LIBC" "$W/libc.a"
        run env MALLOC_DOCTOR_PATCH_KILL_AT=$step "$T" patch "$W/libc.a"
        echo "step $step: status $status"
        [ "$status" -eq 137 ] # really killed there
        if [ "$(sha "$W/libc.a")" != "$orig" ]; then
            # only after the rename: then the result is complete and the backup is the original
            [ "$step" -eq 7 ]
            cmp "$W/libc.a" "$REF"
            [ "$(sha "$W/libc.a.orig")" = "$orig" ]
        fi
        # and the next run finishes the job and clears the killed run's temp file
        run "$T" patch "$W/libc.a"
        [ "$status" -eq 0 ]
        cmp "$W/libc.a" "$REF"
        [ "$(sha "$W/libc.a.orig")" = "$orig" ]
        [ -z "$(ls "$W" | grep md-tmp)" ]
    done
}

@test "oldmalloc layout (no donate.lo, one free.lo): patched, links, runs, mdalloc active" {
    mkdir -p "$W/old" "$W/oldp"
    cp "$PX/oldmalloc/libc.a" "$W/old/libc.a"
    link_churn "$W/old" "$W/churn-old"
    [ "$(active_id "$W/churn-old")" = musl-oldmalloc ] # the fixture really is oldmalloc
    "$T" patch --dry-run --json "$W/old/libc.a" >"$W/r.json"
    [ "$(jq_ "$W/r.json" 'r["libc"]["musl_allocator"]')" = oldmalloc ]
    [ "$(jq_ "$W/r.json" 'sorted(m["member"] for m in r["remove"] if m["member"] in ("malloc.lo","free.lo","realloc.lo","donate.lo"))')" = "['free.lo', 'malloc.lo', 'realloc.lo']" ]
    [ "$(jq_ "$W/r.json" '[m["because"] for m in r["remove"] if m["member"]=="malloc.lo"]')" = "['__libc_malloc_impl']" ]
    run "$T" patch -o "$W/oldp/libc.a" "$W/old/libc.a"
    [ "$status" -eq 0 ]
    link_churn "$W/oldp" "$W/churn-oldp"
    run "$W/churn-oldp" 2 20000
    [ "$status" -eq 0 ]
    [[ "$output" == "ok 2 20000 "* ]]
    [ "$(active_id "$W/churn-oldp")" = mdalloc ]
    [ "$(present_ids "$W/churn-oldp")" = mdalloc ]
}

@test "--allocator missing a symbol that libc.a needs: refused with the list, nothing written" {
    before=$(sha "$W/libc.a")
    run "$T" patch --allocator "$PX/libmdalloc-nocalloc.a" -o "$W/out.a" "$W/libc.a"
    [ "$status" -eq 1 ]
    [[ "$output" == *"__libc_calloc"*"needed by"*"atexit.lo"*"MISSING"* ]]
    [[ "$output" == *"was defined by removed member libc_calloc.lo"* ]]
    [[ "$output" == *"refused"*"nothing written"* ]]
    [ ! -e "$W/out.a" ]
    run "$T" patch --json --allocator "$PX/libmdalloc-nocalloc.a" "$W/libc.a"
    [ "$status" -eq 1 ]
    [ "$(sha "$W/libc.a")" = "$before" ]
    [ ! -e "$W/libc.a.orig" ]
    echo "$output" >"$W/r.json"
    [ "$(jq_ "$W/r.json" '[m["symbol"] for m in r["missing"]]')" = "['__libc_calloc']" ]
    [ "$(jq_ "$W/r.json" 'r["status"]')" = refused ]
}

@test "--allocator needing the compiler's runtime (libgcc): accepted, and it links" {
    mkdir -p "$W/out"
    run "$T" patch --json --allocator "$PX/libmdalloc-libgcc.a" -o "$W/out/libc.a" "$W/libc.a"
    echo "$output"
    [ "$status" -eq 0 ]
    echo "$output" >"$W/r.json"
    [ "$(jq_ "$W/r.json" 'r["missing"]')" = "[]" ]
    [ "$(jq_ "$W/r.json" 'r["add"][-1]["member"]')" = patch_libgcc.o ]
    # the object that needs __popcountdi2, __divti3 and __cpu_model, linked in
    musl-gcc -static -L "$W/out" -o "$W/prog" "$PX/churn.o" -Wl,-u,patch_libgcc_user
    run "$W/prog"
    [ "$status" -eq 0 ]
}

@test "--allocator that is a libc, or the input itself: refused, not 'already patched'" {
    orig=$(sha "$W/libc.a")
    cp "$MUSL_LIBC" "$W/other-libc.a"
    for a in "$W/libc.a" "$W/other-libc.a" /usr/lib/x86_64-linux-gnu/libc.a; do
        [ -e "$a" ] || continue
        run "$T" patch --allocator "$a" "$W/libc.a"
        [ "$status" -eq 2 ]
        [[ "$output" != *"already patched"* ]]
        [[ "$output" == *"it takes an archive of allocator objects"* || "$output" == *"a libc, not an allocator"* ]]
    done
    run "$T" patch --allocator "$W/libc.a" "$W/libc.a"
    [[ "$output" == *"--allocator names the input libc.a itself"* ]]
    run "$T" patch --allocator "$W/other-libc.a" -o "$W/out.a" "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"other-libc.a: a libc, not an allocator"* ]]
    [ ! -e "$W/out.a" ]
    [ "$(sha "$W/libc.a")" = "$orig" ]
    [ ! -e "$W/libc.a.orig" ]
}

@test "--allocator defining a symbol libc.a keeps: refused as a duplicate definition" {
    run "$T" patch --allocator "$PX/libmdalloc-dup.a" --dry-run "$W/libc.a"
    [ "$status" -eq 1 ]
    [[ "$output" == *"strlen"*"DEFINED TWICE: kept strlen.lo and added patch_dup.o"* ]]
}

@test "--allocator of another machine is refused, named by its machine where libbfd has no name for it" {
    # mdalloc's object relabelled aarch64 (e_machine 183): this libbfd calls it only elf64-little
    mkdir "$W/arm"
    (cd "$W/arm" && ar x "$(dirname "$T")/alloc/musl/libmdalloc.a" && python3 -c "
d = bytearray(open('mdalloc.o', 'rb').read()); d[18:20] = (183).to_bytes(2, 'little')
open('mdalloc.o', 'wb').write(d)" && ar rcs arm.a mdalloc.o)
    run "$T" patch --allocator "$W/arm/arm.a" --dry-run "$W/libc.a"
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: patch: $W/libc.a: objects are elf64-x86-64 but the allocator $W/arm/arm.a has elf64-little (aarch64) objects" ]
}

@test "refusals: glibc's libc.a, not musl, thin archive, LTO member, not an archive" {
    cp /usr/lib/x86_64-linux-gnu/libc.a "$W/glibc.a"
    run "$T" patch "$W/glibc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"this is glibc's libc.a, not musl's"* ]]
    cmp "$W/glibc.a" /usr/lib/x86_64-linux-gnu/libc.a
    run "$T" patch --dry-run "$PX/notmusl.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"not a musl libc.a"* ]]
    run "$T" patch --dry-run "$PX/thin.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"thin archive"* ]]
    # a thin archive that nests an archive: libbfd's probe of it kept memory (the sanitizer
    # build then failed with exit 1); refused before libbfd, as LIBC.a and as --allocator
    (cd "$W" && ar rcsT thinfull.a "$MUSL_LIBC")
    for args in "$W/thinfull.a" "--allocator $W/thinfull.a -o $W/q.a $W/libc.a"; do
        run "$T" patch $args
        [ "$status" -eq 2 ]
        [ "${#lines[@]}" -eq 1 ]
        [[ "$output" == *"thinfull.a: thin archive"* ]]
    done
    run "$T" patch --dry-run "$PX/lto.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"LTO member"* ]]
    run "$T" patch --dry-run "$PX/churn.o"
    [ "$status" -eq 2 ]
    [[ "$output" == *"not an ar archive"* ]]
    run "$T" patch --dry-run "$W/nonexistent.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"$W/nonexistent.a: No such file or directory"* ]]
    # said as inspect says it, not as libbfd's "file format not recognized"
    for args in "$W" "--allocator $W -o $W/q.a $W/libc.a"; do
        run "$T" patch $args
        [ "$status" -eq 2 ]
        [ "$output" = "malloc-doctor: patch: $W: is a directory" ]
    done
    # an empty name is said as such, whichever of patch's modes gets it
    for args in "" "--dry-run" "-o $W/q.a" "--restore"; do
        run "$T" patch $args ""
        [ "$status" -eq 2 ]
        [ "$output" = "malloc-doctor: patch: empty file name" ]
    done
}

@test "a FIFO as LIBC.a or as --allocator is refused at once (exit 2), not read and waited on" {
    mkfifo "$W/ff.a"
    # timeout: a regression fails here instead of hanging the suite (libbfd opened it blocking)
    for args in "$W/ff.a" "--dry-run $W/ff.a" "--allocator $W/ff.a -o $W/q.a $W/libc.a"; do
        run timeout 10 "$T" patch $args
        [ "$status" -eq 2 ]
        [ "${#lines[@]}" -eq 1 ]
        [[ "$output" == *"$W/ff.a: not a regular file"* ]]
    done
    [ -p "$W/ff.a" ]
    [ ! -e "$W/q.a" ]
    # the directory lock was let go: a run that follows is not refused as concurrent
    "$T" patch -o "$W/ok.a" "$W/libc.a" >/dev/null
}

@test "-o onto a device or a directory is refused; through a symlink it writes the target, not through a dangling one" {
    # a private copy of /dev/null: renaming the result over it would make it a regular file
    mknod "$W/null" c 1 3 || skip "mknod not permitted"
    run "$T" patch -o "$W/null" "$W/libc.a"
    [ "$status" -ne 0 ]
    [[ "$output" == *"$W/null: not a regular file"* ]]
    [ -c "$W/null" ]
    mkdir "$W/dir"
    run "$T" patch -o "$W/dir" "$W/libc.a"
    [ "$status" -ne 0 ]
    [ -d "$W/dir" ]
    [ -z "$(ls "$W/dir")" ]
    cmp "$W/libc.a" "$MUSL_LIBC"
    [ "$(ls "$W")" = "$(printf 'dir\nlibc.a\nnull')" ] # no temporary file left
    # through a symlink: its target is written, the link stays
    touch "$W/real.a"
    ln -s real.a "$W/link.a"
    "$T" patch -o "$W/link.a" "$W/libc.a" >/dev/null
    [ -L "$W/link.a" ]
    cmp "$W/real.a" "$REF"
    # a link to nothing is not written through (as cp): said so, not a bare ENOENT
    ln -s nothere.a "$W/dangling.a"
    run "$T" patch -o "$W/dangling.a" "$W/libc.a"
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: patch: $W/dangling.a: a symbolic link to a file that does not exist; not written through it" ]
    [ ! -e "$W/nothere.a" ]
}

@test "finds mdalloc from any directory: the build tree and an install layout" {
    cd /
    run "$T" patch --dry-run --json "$W/libc.a"
    [ "$status" -eq 0 ]
    echo "$output" >"$W/r.json"
    [ "$(jq_ "$W/r.json" 'r["allocator"]["path"]')" = "$(dirname "$T")/alloc/musl/libmdalloc.a" ]
    mkdir -p "$W/prefix/bin" "$W/prefix/lib/malloc-doctor" "$W/bare"
    cp "$T" "$W/prefix/bin/malloc-doctor"
    cp "$(dirname "$T")/alloc/musl/libmdalloc.a" "$W/prefix/lib/malloc-doctor/libmdalloc-musl.a"
    run "$W/prefix/bin/malloc-doctor" patch -o "$W/inst.a" "$W/libc.a"
    [ "$status" -eq 0 ]
    cmp "$W/inst.a" "$REF"
    cp "$T" "$W/bare/malloc-doctor"
    run "$W/bare/malloc-doctor" patch --dry-run "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"mdalloc's musl archive is not installed beside this binary"* ]]
}

@test "a truncated copy of libc.a is refused with inspect's reason, not as 'not an ar archive'" {
    head -c 5000 "$MUSL_LIBC" >"$W/t.a"
    run "$T" patch --dry-run "$W/t.a"
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: patch: $W/t.a: corrupt archive member header at offset 8 (bad size)" ]
    run "$T" inspect "$W/t.a"
    [[ "$output" == *"$W/t.a: corrupt archive member header at offset 8 (bad size)"* ]]
    # cut inside a later member: libbfd reads the index, the header walk names the member's header
    head -c 300000 "$MUSL_LIBC" >"$W/t2.a"
    run "$T" patch "$W/t2.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"$W/t2.a: corrupt archive member header at offset "*" (bad size)" ]]
    [ ! -e "$W/t2.a.orig" ]
}

@test "--restore after a toolchain update puts back the backup the patch was made from, never an older one" {
    "$T" patch "$W/libc.a" >/dev/null # keeps libc.a.orig: v1
    # the update: a new libc.a (v2: one more member), patched again with the README's suffix
    cp "$MUSL_LIBC" "$W/v2.a"
    echo 'int new_in_v2(void) { return 2; }' | musl-gcc -c -o "$W/n.o" -x c -
    ar rs "$W/v2.a" "$W/n.o"
    cp "$W/v2.a" "$W/libc.a"
    "$T" patch --backup .orig-new "$W/libc.a" >/dev/null
    patched=$(sha "$W/libc.a")
    for dry in "" --dry-run; do
        run "$T" patch --restore $dry "$W/libc.a"
        [ "$status" -eq 2 ]
        [ "${#lines[@]}" -eq 1 ]
        [ "$output" = "malloc-doctor: patch: $W/libc.a: not patched from $W/libc.a.orig (it was made from a libc.a of $(stat -c %s "$W/v2.a") bytes, sha256 $(sha "$W/v2.a")); both stay: name its backup with --backup SUFFIX, and remove a stale one" ]
    done
    "$T" patch --restore --json "$W/libc.a" >"$W/r.json" 2>/dev/null || true
    [ "$(jq_ "$W/r.json" 'r["status"] + " " + str("not patched from" in r["error"])')" = "refused True" ]
    [ "$(sha "$W/libc.a")" = "$patched" ]
    cmp "$W/libc.a.orig" "$MUSL_LIBC"
    cmp "$W/libc.a.orig-new" "$W/v2.a"
    run "$T" patch --restore --backup .orig-new "$W/libc.a"
    [ "$status" -eq 0 ]
    cmp "$W/libc.a" "$W/v2.a"
}

@test "--restore of a libc.a patched before the mark checks the backup by its members" {
    "$T" patch "$W/libc.a" >/dev/null
    ar d "$W/libc.a" malloc-doctor-patch.o # as an older malloc-doctor wrote it
    cp "$W/libc.a" "$W/old.a"
    run "$T" patch --restore --dry-run "$W/libc.a"
    [ "$status" -eq 0 ]
    # a backup whose kept member differs is another libc.a
    cp "$MUSL_LIBC" "$W/other.a"
    echo 'int abs(int x) { return x < 0 ? -x : x; }' | musl-gcc -O0 -c -o "$W/abs.lo" -x c -
    ar r "$W/other.a" "$W/abs.lo"
    cp "$W/other.a" "$W/libc.a.orig"
    run "$T" patch --restore "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"$W/libc.a: not patched from $W/libc.a.orig (the backup's member abs.lo (#"*") is not in it); both stay"* ]]
    cmp "$W/libc.a" "$W/old.a"
    cp "$MUSL_LIBC" "$W/libc.a.orig"
    run "$T" patch --restore "$W/libc.a"
    [ "$status" -eq 0 ]
    cmp "$W/libc.a" "$MUSL_LIBC"
}

@test "an archive whose member is truncated is refused before libbfd copies it" {
    run "$T" patch --dry-run "$PWD/build/fixtures/bad/truncated-member.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"truncated-member.a(half.o): truncated section header table"* ]]
}

@test "--restore refuses to discard a LIBC.a this tool did not patch, or to restore a backup that is not musl's libc.a" {
    "$T" patch "$W/libc.a" >/dev/null
    # a toolchain update put another archive there since the patch: restoring would lose it
    cp /usr/lib/x86_64-linux-gnu/libc.a "$W/libc.a"
    for dry in "" --dry-run; do
        run "$T" patch --restore $dry "$W/libc.a"
        [ "$status" -eq 2 ]
        [ "${#lines[@]}" -eq 1 ]
        [[ "$output" == *"$W/libc.a: not a libc.a this tool patched (this is glibc's libc.a"*"restoring $W/libc.a.orig would discard it"* ]]
    done
    cmp "$W/libc.a" /usr/lib/x86_64-linux-gnu/libc.a
    cmp "$W/libc.a.orig" "$MUSL_LIBC"
    # a new musl libc.a (unpatched: its own allocator is in it) is not discarded either
    cp "$PX/oldmalloc/libc.a" "$W/libc.a"
    run "$T" patch --restore "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"$W/libc.a: not a libc.a this tool patched (musl's own oldmalloc is in it)"* ]]
    cmp "$W/libc.a" "$PX/oldmalloc/libc.a"
    cmp "$W/libc.a.orig" "$MUSL_LIBC"
    # a backup that is not musl's libc.a is not put in place of the patched one
    cp "$REF" "$W/libc.a"
    cp /usr/lib/x86_64-linux-gnu/libjemalloc.a "$W/libc.a.orig"
    run "$T" patch --restore "$W/libc.a"
    [ "$status" -eq 2 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == *"$W/libc.a.orig: not an unpatched musl libc.a (not a musl libc.a"* ]]
    cmp "$W/libc.a" "$REF"
    cmp "$W/libc.a.orig" /usr/lib/x86_64-linux-gnu/libjemalloc.a
    # nor is a patched one
    cp "$REF" "$W/libc.a.orig"
    run "$T" patch --restore "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"$W/libc.a.orig: not an unpatched musl libc.a (musl's allocator is not in it); it stays, and so does $W/libc.a" ]]
    # with no LIBC.a there, only the backup stays
    mv "$W/libc.a" "$W/libc.a.away"
    run "$T" patch --restore "$W/libc.a"
    [ "$status" -eq 2 ]
    [ "$output" = "malloc-doctor: patch: $W/libc.a.orig: not an unpatched musl libc.a (musl's allocator is not in it); it stays" ]
    [ ! -e "$W/libc.a" ]
    mv "$W/libc.a.away" "$W/libc.a"
    # the real pair restores; so does a backup whose LIBC.a is gone (nothing to lose)
    cp "$MUSL_LIBC" "$W/libc.a.orig"
    run "$T" patch --restore "$W/libc.a"
    [ "$status" -eq 0 ]
    cmp "$W/libc.a" "$MUSL_LIBC"
    mv "$W/libc.a" "$W/libc.a.orig"
    run "$T" patch --restore "$W/libc.a"
    [ "$status" -eq 0 ]
    cmp "$W/libc.a" "$MUSL_LIBC"
    [ "$(ls "$W")" = libc.a ]
}

@test "-o over an existing archive keeps it as OUT.orig and keeps its mode and owner; over a file that is not an archive it is refused" {
    mkdir "$W/o"
    cp "$PX/oldmalloc/libc.a" "$W/o/libc.a" # an earlier archive at OUT
    chmod 640 "$W/o/libc.a"
    if [ "$(id -u)" = 0 ]; then chown 1234:5678 "$W/o/libc.a"; fi
    owner=$(stat -c %u:%g "$W/o/libc.a")
    run "$T" patch -o "$W/o/libc.a" "$W/libc.a"
    [ "$status" -eq 0 ]
    [[ "$output" == *"wrote $W/o/libc.a (the file it replaced kept as $W/o/libc.a.orig)"* ]]
    cmp "$W/o/libc.a" "$REF"
    cmp "$W/o/libc.a.orig" "$PX/oldmalloc/libc.a"
    [ "$(stat -c %a "$W/o/libc.a")" = 640 ]
    [ "$(stat -c %u:%g "$W/o/libc.a")" = "$owner" ]
    # --backup SUFFIX names it; an identical backup already there is this file's
    for i in 1 2; do
        cp "$PX/oldmalloc/libc.a" "$W/o/libc.a"
        run "$T" patch -o "$W/o/libc.a" --backup .old "$W/libc.a"
        [ "$status" -eq 0 ]
        cmp "$W/o/libc.a" "$REF"
        cmp "$W/o/libc.a.old" "$PX/oldmalloc/libc.a"
    done
    # a different one is never overwritten, and then OUT is not replaced
    cp "$PX/oldmalloc/libc.a" "$W/o/libc.a"
    echo stale >"$W/o/libc.a.orig"
    run "$T" patch -o "$W/o/libc.a" "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"$W/o/libc.a.orig exists and differs from $W/o/libc.a"* ]]
    cmp "$W/o/libc.a" "$PX/oldmalloc/libc.a"
    [ "$(cat "$W/o/libc.a.orig")" = stale ]
    # a program is not an archive: refused, untouched, no backup, no temporary file
    cp /bin/ls "$W/o/ls"
    run "$T" patch -o "$W/o/ls" "$W/libc.a"
    [ "$status" -eq 2 ]
    [ "${#lines[@]}" -eq 1 ]
    [[ "$output" == *"$W/o/ls: exists and is not an ar archive; -o replaces only an archive"* ]]
    cmp "$W/o/ls" /bin/ls
    [ "$(ls "$W/o")" = "$(printf 'libc.a\nlibc.a.old\nlibc.a.orig\nls')" ]
}

@test "-o '' and -o DIR are usage errors before anything is touched; the temp sweep takes only OUT's own" {
    mkdir "$W/cwd" "$W/cwd/out.a.md-tmp-dirdir"
    cd "$W/cwd"
    # the user's files that look like temporary files, old enough to pass for orphans
    for f in .md-tmp.abcdef .md-tmp-abcdef ./-abcdef other.a.md-tmp-abcdef out.a.md-tmp-abcdefg; do
        echo mine >"$f"
    done
    ln -s other.a.md-tmp-abcdef out.a.md-tmp-linkln
    touch -h -d '1 hour ago' .md-tmp* ./-abcdef other* out*
    listing=$(ls -A)
    for o in "" "$W/cwd" "$W/cwd/" new/ .; do
        run "$T" patch -o "$o" "$W/libc.a"
        echo "-o '$o': $output"
        [ "$(ls -A)" = "$listing" ]
        [ "$status" -eq 2 ]
        [[ "$output" == *"Try 'malloc-doctor patch --help'"* ]]
    done
    run "$T" patch -o '' "$W/libc.a"
    [[ "$output" == "malloc-doctor: patch: -o needs a file name"* ]]
    run "$T" patch -o "$W/cwd/" "$W/libc.a"
    [[ "$output" == "malloc-doctor: patch: -o $W/cwd/: a directory; -o names the archive file to write"* ]]
    # a real write beside them sweeps none: only OUT's own temporary files, and only files
    run "$T" patch -o out.a "$W/libc.a"
    [ "$status" -eq 0 ]
    cmp out.a "$REF"
    [ "$(ls -A | grep -vx out.a)" = "$listing" ]
    [ "$(cat .md-tmp.abcdef)" = mine ]
}

@test "-o NEW from an already patched libc.a writes a copy, and programs link against it" {
    mkdir "$W/p"
    run "$T" patch -o "$W/p/libc.a" "$REF"
    [ "$status" -eq 0 ]
    cmp "$W/p/libc.a" "$REF"
    [[ "$output" == *"already patched with this allocator: copied it to $W/p/libc.a"* ]]
    [[ "$output" != *"remove 0"* && "$output" != *"symbols checked"* ]]
    link_churn "$W/p" "$W/churn"
    run "$W/churn" 2 2000
    [ "$status" -eq 0 ]
    [ "$(active_id "$W/churn")" = mdalloc ]
    # again: OUT already holds it, so nothing is replaced and no backup of the same bytes appears
    run "$T" patch -o "$W/p/libc.a" "$REF"
    [ "$status" -eq 0 ]
    [[ "$output" == *"already patched with this allocator: $W/p/libc.a already holds it: nothing replaced"* ]]
    "$T" patch --json -o "$W/p/libc.a" "$REF" >"$W/r.json"
    [ "$(jq_ "$W/r.json" 'r["status"] + " " + r["output"] + " " + str(r["unchanged"])')" = "already-patched $W/p/libc.a True" ]
    [ "$(ls "$W/p")" = libc.a ]
    # --dry-run still writes nothing
    run "$T" patch --dry-run -o "$W/new.a" "$REF"
    [ "$status" -eq 0 ]
    [ ! -e "$W/new.a" ]
}

@test "-o again after each musl update replaces its own earlier result, without a backup to trip on" {
    # MD001 prescribes `patch -o ~/musl-mdalloc/libc.a /usr/lib/x86_64-linux-musl/libc.a`; users
    # run it again after every musl update, each time with a different input
    mkdir "$W/u"
    for member in puts.lo putchar.lo perror.lo; do
        ar d "$W/libc.a" "$member" # the "update"
        run "$T" patch -o "$W/u/libc.a" "$W/libc.a"
        [ "$status" -eq 0 ]
        [ ! -e "$W/u/libc.a.orig" ]
        ! ar t "$W/u/libc.a" | grep -qx "$member"
    done
}

@test "-o over a musl libc.a patched with another allocator keeps it as OUT.orig" {
    # not patch's own result with this allocator (one member differs): the user's, kept
    mkdir "$W/c"
    cp "$REF" "$W/c/libc.a"
    (cd "$W/c" && ar x libc.a mdalloc.o && objcopy -R .comment mdalloc.o &&
        ar r libc.a mdalloc.o && rm mdalloc.o)
    run cmp -s "$W/c/libc.a" "$REF"
    [ "$status" -eq 1 ]
    cp "$W/c/libc.a" "$W/custom.a"
    run "$T" patch -o "$W/c/libc.a" "$W/libc.a"
    [ "$status" -eq 0 ]
    cmp "$W/c/libc.a.orig" "$W/custom.a"
    cmp "$W/c/libc.a" "$REF"
}

@test "the text names files as one line each, whatever their names hold" {
    out=$(printf '%s/new\nlibc\033[2J.a' "$W")
    run "$T" patch -o "$out" "$W/libc.a"
    [ "$status" -eq 0 ]
    [ "${lines[${#lines[@]} - 1]}" = "wrote $W/new?libc?[2J.a" ]
    [ -f "$out" ]
}

@test "a directory sync that fails: before the rename nothing changes, after it a warning (exit 0)" {
    shim="$PX/libfsync-dir-fails.so"
    orig=$(sha "$W/libc.a")
    # in place, the first directory sync is the backup's: refused, libc.a untouched
    run env LD_PRELOAD="$shim" ASAN_OPTIONS=verify_asan_link_order=0 "$T" patch "$W/libc.a"
    [ "$status" -eq 2 ]
    [[ "$output" == *"$W/libc.a.orig: the directory could not be synced (Input/output error); $W/libc.a is unchanged"* ]]
    [ "$(sha "$W/libc.a")" = "$orig" ]
    # the second is after the rename: patched, said on stderr and in the JSON
    rm -f "$W/libc.a.orig"
    run env LD_PRELOAD="$shim" FSYNC_DIR_FAIL_AT=2 ASAN_OPTIONS=verify_asan_link_order=0 "$T" patch "$W/libc.a"
    [ "$status" -eq 0 ]
    [[ "$output" == *"patched $W/libc.a (original kept as $W/libc.a.orig)"* ]]
    [[ "$output" == *"malloc-doctor: patch: warning: $W/libc.a: the directory could not be synced (Input/output error); the change is in place"* ]]
    cmp "$W/libc.a" "$REF"
    [ "$(sha "$W/libc.a.orig")" = "$orig" ]
    # --restore: restored all the same
    env LD_PRELOAD="$shim" ASAN_OPTIONS=verify_asan_link_order=0 \
        "$T" patch --restore --json "$W/libc.a" > "$W/r.json" 2> "$W/err"
    [ "$(jq_ "$W/r.json" 'r["status"] + " " + str(len(r["warnings"]))')" = "restored 1" ]
    grep -q "warning: $W/libc.a: the directory could not be synced" "$W/err"
    [ "$(sha "$W/libc.a")" = "$orig" ]
    # without a failing sync the array is there and empty
    "$T" patch --json -o "$W/out.a" "$W/libc.a" > "$W/r.json"
    [ "$(jq_ "$W/r.json" 'r["warnings"]')" = "[]" ]
}

@test "-o on a full disk: the error names the file asked for, nothing is left beside it, exit 2" {
    [ "$(id -u)" = 0 ] || skip "mounting a small tmpfs needs root"
    dir=$(mktemp -d)
    # room for the temporary file's creation, not for its contents
    run unshare -m sh -c 'mount -t tmpfs -o size=64k none "$1" &&
        { head -c 1M /dev/zero >"$1/filler" 2>/dev/null; true; } &&
        "$2" patch -o "$1/libc.a" "$3"; echo "rc=$?"; ls -A "$1"' _ "$dir" "$T" "$W/libc.a"
    rmdir "$dir"
    [ "$status" -eq 0 ]
    [ "$output" = "$(printf 'malloc-doctor: patch: %s/libc.a: write: No space left on device\nrc=2\nfiller' "$dir")" ]
}
