# Shared by the e2e suites that `load common`: the tool under test, the fixtures, a scratch
# directory, and a query helper over JSON reports.

common_setup() {
    cd "${MD_ROOT:-$BATS_TEST_DIRNAME/../..}"
    T=${MD_TOOL:-build/malloc-doctor}
    FX=build/fixtures
    DIR=$(mktemp -d)
    OUT=$DIR/report.json
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
