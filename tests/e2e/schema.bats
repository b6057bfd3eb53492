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

# Collects the findings of every report in $DIR into one array and validates each one.
validate_all() {
    /usr/bin/python3 - "$DIR" rules/finding.schema.json <<'PY'
import glob, json, sys
import jsonschema
schema = json.load(open(sys.argv[2]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
seen, bad = set(), 0
for path in sorted(glob.glob(sys.argv[1] + "/*.json")):
    report = json.load(open(path))
    findings = list(report.get("findings", []))
    for f in report.get("files", []):
        findings += f.get("findings", [])
    for finding in findings:
        for e in validator.iter_errors(finding):
            print(f"{path}: {finding.get('id')}: {e.message}")
            bad += 1
        seen.add(finding.get("id"))
print(" ".join(sorted(seen)))
sys.exit(1 if bad else 0)
PY
}

@test "the schema is valid and a finding that breaks it is caught" {
    echo '{"schema":"malloc-doctor/1","command":"trace","findings":[{"id":"X1","rule":"r",
      "severity":"fatal","title":"t","message":"m","fix":null,"evidence":{}}]}' >"$DIR/bad.json"
    run validate_all
    [ "$status" -eq 1 ]
    [[ "$output" == *"'fatal' is not one of"* ]]
    [[ "$output" == *"'X1' does not match"* ]]
}

@test "every registered rule fires on a fixture, and all findings validate" {
    "$T" inspect --json "$FX/musl-static" "$FX/fake-mimalloc-musl" >"$DIR/inspect.json" || true
    "$T" inspect --json --expect mimalloc "$FX/glibc-dynamic" >"$DIR/expect.json" || true
    "$T" trace --json -o "$DIR/toy.json" -- "$FX/toy-driver" 2>/dev/null
    run validate_all
    [ "$status" -eq 0 ]
    seen=${lines[${#lines[@]} - 1]}
    for id in $("$T" rules --json | python3 -c \
        "import json,sys; print(' '.join(r['id'] for r in json.load(sys.stdin)['rules']))"); do
        [[ " $seen " == *" $id "* ]] || { echo "no fixture triggers $id (seen: $seen)"; false; }
    done
}
