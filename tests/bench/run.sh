#!/bin/sh
# `make bench`: every benchmark, side by side, in one go. Speed goals live here, never in tests.
set -eu
. "$(dirname "$0")/usage.sh"
bench_usage "$@"
cd "$(dirname "$0")/../.."
sh tests/bench/inspect.sh
sh tests/bench/trace.sh
sh tests/bench/patch.sh
bash tests/bench/alloc/run.sh 1 5
