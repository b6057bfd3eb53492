# SPDX-License-Identifier: MIT
# Shared setup for mdalloc's bats suites: where the builds and test programs are.
MD_ROOT=${MD_ROOT:-$(cd "$(dirname "$BATS_TEST_FILENAME")/../.." && pwd)}
MD_BUILD=${MD_BUILD:-$MD_ROOT/build}
MDA_GLIBC_SO=$MD_BUILD/alloc/glibc/libmdalloc.so
MDA_DEBUG_SO=$MD_BUILD/alloc/glibc/libmdalloc-debug.so
MDA_MUSL_SO=$MD_BUILD/alloc/musl/libmdalloc.so
MDA_MUSL_A=$MD_BUILD/alloc/musl/libmdalloc.a
MDA_GLIBC_A=$MD_BUILD/alloc/glibc/libmdalloc.a
MDA_TESTS=$MD_BUILD/alloc-tests

# run_with FLAVOR PROGRAM ARGS...: run a test program against one mdalloc build.
#   glibc: glibc program + preloaded .so      debug: same with the debug .so
#   musl:  musl program + preloaded musl .so  static: static musl program with the archive
#   gstatic: static glibc program with mdalloc's glibc archive
run_with() {
    local flavor=$1 prog=$2
    shift 2
    case $flavor in
    glibc) run env LD_PRELOAD="$MDA_GLIBC_SO" "$MDA_TESTS/glibc/$prog" "$@" ;;
    debug) run env LD_PRELOAD="$MDA_DEBUG_SO" "$MDA_TESTS/glibc/$prog" "$@" ;;
    musl) run env LD_PRELOAD="$MDA_MUSL_SO" "$MDA_TESTS/musl/$prog" "$@" ;;
    static) run "$MDA_TESTS/static/$prog" "$@" ;;
    gstatic) run "$MDA_TESTS/gstatic/$prog" "$@" ;;
    *) echo "unknown flavor $flavor" >&2; return 2 ;;
    esac
}

# The banner proves which mdalloc build served the program.
expect_banner() {
    local flavor=$1 prog=$2 target
    case $flavor in
    glibc | gstatic) target=glibc ;; debug) target='glibc, debug' ;;
    musl) target=musl-preload ;; static) target=musl-embedded ;;
    esac
    MDALLOC_VERBOSE=1 run_with "$flavor" "$prog" zero
    [ "$status" -eq 0 ]
    [[ "$output" == *"mdalloc: version "*"($target)"* ]]
}
