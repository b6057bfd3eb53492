# Shared by the e2e suites that `load common`: the tool under test, the fixtures, a scratch
# directory, and a query helper over JSON reports.

common_setup() {
    cd "${MD_ROOT:-$BATS_TEST_DIRNAME/../..}"
    T=${MD_TOOL:-build/malloc-doctor}
    FX=build/fixtures
    DIR=$(mktemp -d)
    OUT=$DIR/report.json
    # how prescribed commands name the tool under test: by its path, PATH finds no malloc-doctor
    TOOL_CMD=$(realpath "$T")
}

common_teardown() {
    rm -rf "$DIR"
}

# jq-like: a python expression over the report r in file $1, printed
qf() {
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print($2)" "$1"
}

# the same over $OUT
q() {
    qf "$OUT" "$1"
}

# Validates every finding in the reports given (top-level findings and each file's) against
# rules/finding.schema.json with Debian's python3-jsonschema; prints each violation, then the
# ids seen on the last line. Fails when a finding does not validate.
validate_findings() {
    /usr/bin/python3 - rules/finding.schema.json "$@" <<'PY'
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
seen, bad = set(), 0
for path in sys.argv[2:]:
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
