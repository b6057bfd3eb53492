# Sourced by the benchmark scripts before they start: `--help` prints the script's header comment
# (its purpose, goals and environment variables) and an argument it does not take is an error,
# instead of a long benchmark started by a mistyped option. BENCH_ARGS names the arguments a
# script takes ("" for none).
bench_usage() {
    case "${1:-}" in
    -h | --help)
        sed -n '2,/^set /p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*)
        echo "$0: unknown option '$1' (--help explains)" >&2
        exit 2
        ;;
    esac
    if [ -z "${BENCH_ARGS:-}" ] && [ $# -gt 0 ]; then
        echo "$0: takes no arguments (--help explains)" >&2
        exit 2
    fi
}
