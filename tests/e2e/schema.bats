#!/usr/bin/env bats
# Every finding the rules produce on real programs validates against rules/finding.schema.json,
# and every registered rule is among them (a rule without a triggering fixture fails here).
# Validation uses Debian's python3-jsonschema through /usr/bin/python3.

load common

setup() {
    common_setup
}

teardown() {
    common_teardown
}

@test "the schema is valid and a finding that breaks it is caught" {
    echo '{"schema":"malloc-doctor/1","command":"trace","findings":[{"id":"X1","rule":"r",
      "severity":"fatal","title":"t","message":"m","fix":null,"evidence":{}}]}' >"$DIR/bad.json"
    run validate_findings "$DIR"/*.json
    [ "$status" -eq 1 ]
    [[ "$output" == *"'fatal' is not one of"* ]]
    [[ "$output" == *"'X1' does not match"* ]]
}

@test "every registered rule fires on a fixture, and all findings validate" {
    "$T" inspect --json "$FX/musl-static" "$FX/fake-mimalloc-musl" >"$DIR/inspect.json" || true
    "$T" inspect --json --expect mimalloc "$FX/glibc-dynamic" >"$DIR/expect.json" || true
    "$T" inspect --json "$FX/asan-dynamic" >"$DIR/sanitizer.json"
    "$T" trace --json -o "$DIR/toy.json" -- "$FX/toy-driver" 2>/dev/null
    "$T" trace --json -o "$DIR/musl.json" -- "$FX/musl-static" >/dev/null
    "$T" trace --json -o "$DIR/lock.json" -- "$FX/rules/lock-hotspot" 1 >/dev/null
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072 \
        "$T" trace --json -o "$DIR/mmap.json" -- "$FX/rules/cycle" 262144 1000
    GLIBC_TUNABLES=glibc.malloc.trim_threshold=0:glibc.malloc.top_pad=0 \
        "$T" trace --json -o "$DIR/madvise.json" -- "$FX/rules/cycle" 65536 1000 thread
    GLIBC_TUNABLES=glibc.malloc.trim_threshold=0:glibc.malloc.top_pad=0 \
        "$T" trace --json -o "$DIR/brk.json" -- "$FX/rules/cycle" 65536 4000
    "$T" trace --leaks --leak-min 1000 --json -o "$DIR/leaks.json" -- "$FX/leaker"
    run validate_findings "$DIR"/*.json
    [ "$status" -eq 0 ]
    seen=${lines[${#lines[@]} - 1]}
    for id in $("$T" rules --json | python3 -c \
        "import json,sys; print(' '.join(r['id'] for r in json.load(sys.stdin)['rules']))"); do
        [[ " $seen " == *" $id "* ]] || { echo "no fixture triggers $id (seen: $seen)"; false; }
    done
}
