#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Full benchmark run: 5 repetitions of every aio-bench row, medians into docs/benchmarks.md.
#
# Usage: bench/run.sh [BUILD_DIR [EXTRA_BENCHMARK_ARGS...]]
#   BUILD_DIR defaults to "build" (relative to the current directory), configured with
#   `meson setup build` (buildtype debugoptimized or release) and built with ninja.
#   Extra arguments go to aio-bench unchanged (e.g. --benchmark_filter=fd_1000).
# Writes BUILD_DIR/bench/aio-bench.json and docs/benchmarks.md (next to this script).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-build}
[ $# -gt 0 ] && shift

exe="$build/bench/aio-bench"
if [ ! -x "$exe" ]; then
    echo "run.sh: $exe not found; build it first: meson setup $build && ninja -C $build" >&2
    exit 1
fi

json="$build/bench/aio-bench.json"
set -- --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_format=json "$@"
command="$exe $*"
echo "run.sh: $command > $json" >&2
"$exe" "$@" > "$json"

# The multithread suite's printed rates go into the comutex_contended section.
mt="$build/bench/multithread.txt"
if [ -x "$build/tests/test-multithread" ]; then
    echo "run.sh: AIO_MT_SECONDS=1 $build/tests/test-multithread > $mt" >&2
    AIO_MT_SECONDS=1 "$build/tests/test-multithread" > "$mt" 2>&1 || true
else
    : > "$mt"
fi

python3 "$here/report.py" --command "$command" --build-dir "$build" \
    --multithread "$mt" --output "$root/docs/benchmarks.md" "$json"
echo "run.sh: wrote $root/docs/benchmarks.md" >&2
