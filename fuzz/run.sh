#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# The API-sequence fuzzer (fuzz/fuzz_api.cpp): build, replay, fuzz, measure coverage.
#
#   fuzz/run.sh [SECONDS]     build, replay fuzz/corpus, then fuzz for SECONDS (default 60)
#   fuzz/run.sh replay        build, replay fuzz/corpus only
#   fuzz/run.sh coverage      build fuzz-api-cov, replay the corpus, print llvm-cov line
#                             coverage of src/ (the figures in docs/reliability.md)
#
# Environment: FUZZ_BUILD (default /tmp/build-fuzz: a clang build directory with
# -Dfuzz=enabled, configured here if missing), FUZZ_WORK (the growing corpus a fuzzing run
# writes to; default $FUZZ_BUILD/fuzz-work, seeded from fuzz/corpus, never the committed
# corpus).
# Every run ends with one line "fuzz: <what>: ok|FAIL ..."; exit status 0 iff ok.
# Crashes, leaks and timeouts are written to $FUZZ_BUILD/fuzz-artifacts/; reproduce one with
#   AIO_FUZZ_TRACE=1 $FUZZ_BUILD/fuzz/fuzz-api <file>
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(dirname "$here")
build=${FUZZ_BUILD:-/tmp/build-fuzz}
work=${FUZZ_WORK:-$build/fuzz-work}
artifacts=$build/fuzz-artifacts
what=${1:-60}

say() { printf 'fuzz: %s\n' "$*"; }

configure() {
    if [ ! -f "$build/meson-private/coredata.dat" ]; then
        CC=clang CXX=clang++ meson setup "$build" "$src" -Dfuzz=enabled -Dtests=disabled \
            -Dbench=disabled -Ddemos=disabled >"$build.setup.log" 2>&1 ||
            { cat "$build.setup.log"; say "$what: FAIL (meson setup, see $build.setup.log)"; exit 1; }
    fi
}

build_target() {
    meson compile -C "$build" "fuzz/$1" >"$build/fuzz-build.log" 2>&1 ||
        { tail -40 "$build/fuzz-build.log"; say "$what: FAIL (build of $1)"; exit 1; }
}

# ASan: leaks are findings too; libFuzzer reports them per input.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
common=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048)

configure
case $what in
    coverage)
        build_target fuzz-api-cov
        prof=$build/fuzz-cov
        rm -rf "$prof" && mkdir -p "$prof"
        LLVM_PROFILE_FILE="$prof/corpus-%p.profraw" "$build/fuzz/fuzz-api-cov" -runs=0 \
            "$here/corpus" >"$prof/replay.log" 2>&1 ||
            { tail -20 "$prof/replay.log"; say "coverage: FAIL (replay)"; exit 1; }
        llvm-profdata-14 merge -sparse "$prof"/*.profraw -o "$prof/corpus.profdata"
        # Line coverage per file of src/ (columns: lines, missed, cover), then the total of
        # the loop, bottom-half, fd-handler and timer sources the issue sets the goal for.
        llvm-cov-14 report "$build/fuzz/fuzz-api-cov" -instr-profile="$prof/corpus.profdata" \
            2>/dev/null | grep '/src/' |
            awk '{f=$1; sub(/.*\/src\//, "", f); printf "%-24s %6s %6s %8s\n", f, $8, $9, $10}' |
            tee "$prof/report.txt"
        awk '$1 ~ /^(context\.cpp|context_impl\.hpp|notify\.cpp|bh\.cpp|fd_handlers\.cpp|fdmon\/.*|gsource\.cpp|timer\.cpp|timer_list\.hpp)$/ {
                 l += $2; m += $3 }
             END { printf "loop+BH+handlers+timers: %d lines, %d missed, %.1f%% line coverage\n",
                          l, m, 100 * (l - m) / l }' "$prof/report.txt"
        say "coverage: ok (llvm-cov-14 show $build/fuzz/fuzz-api-cov -instr-profile=$prof/corpus.profdata for line detail)"
        exit 0
        ;;
esac

build_target fuzz-api
mkdir -p "$artifacts"
start=$SECONDS
n=$(find "$here/corpus" -type f | wc -l)
if ! "$build/fuzz/fuzz-api" -runs=0 "${common[@]}" -artifact_prefix="$artifacts/" \
        "$here/corpus" >"$build/fuzz-replay.log" 2>&1; then
    grep -E 'model mismatch|ERROR|SUMMARY|Test unit written' "$build/fuzz-replay.log" | head -20
    say "replay: FAIL (one of $n corpus inputs; log $build/fuzz-replay.log)"
    exit 1
fi
[ "$what" = replay ] && { say "replay: ok ($n inputs, $((SECONDS - start)) s)"; exit 0; }

case $what in
    ''|*[!0-9]*) say "usage: fuzz/run.sh [SECONDS|replay|coverage]"; exit 2 ;;
esac
mkdir -p "$work"
cp -n "$here"/corpus/* "$work"/ 2>/dev/null
"$build/fuzz/fuzz-api" -max_total_time="$what" "${common[@]}" -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work" >"$build/fuzz-run.log" 2>&1
rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/fuzz-run.log" | head -1)
if [ $rc -ne 0 ] || grep -qE 'model mismatch|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error' \
        "$build/fuzz-run.log"; then
    grep -E 'model mismatch|ERROR|SUMMARY|runtime error|Test unit written' "$build/fuzz-run.log" | head -20
    say "fuzz ${what}s: FAIL (${runs:-?} runs; artifacts in $artifacts, log $build/fuzz-run.log)"
    exit 1
fi
say "replay + fuzz ${what}s: ok ($n corpus inputs, ${runs:-?} runs, 0 crashes, 0 leaks, 0 timeouts, $((SECONDS - start)) s)"
