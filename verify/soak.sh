#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# `make soak` (not in CI): long runs that find what short ones do not.
#   1. ThreadSanitizer build (clang) in build-soak-tsan/: the `stress` suite, then the
#      `slow` suite (multithread scenarios, 10 s each), each repeated for SOAK_STRESS_S
#      seconds (default 600)
#   2. the API-sequence fuzzer for SOAK_FUZZ_S seconds (default 3600; fuzz/run.sh)
# Ends with one summary line and exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1

STRESS_S=${SOAK_STRESS_S:-600}
FUZZ_S=${SOAK_FUZZ_S:-3600}
dir=${SOAK_BUILD:-build-soak-tsan}
summary=()
failed=0

wrap=()
if setarch "$(uname -m)" -R true 2>/dev/null; then
    wrap=(setarch "$(uname -m)" -R)  # clang 14's TSan and high ASLR entropy
fi

if [ ! -f "$dir/meson-private/coredata.dat" ]; then
    CC=clang CXX=clang++ meson setup "$dir" -Db_sanitize=thread -Db_lundef=false \
        -Dtests=enabled -Dbench=disabled -Ddemos=disabled || exit 1
fi
meson compile -C "$dir" || exit 1

# soak_suite SUITE: repeat one meson suite for STRESS_S seconds.
soak_suite() {
    local suite=$1 rounds=0 bad=0 end=$((SECONDS + STRESS_S))
    while [ $SECONDS -lt $end ]; do
        if "${wrap[@]}" meson test -C "$dir" --setup full --suite "$suite" \
                --print-errorlogs --timeout-multiplier 3 >"$dir/soak-$suite-$rounds.log" 2>&1; then
            rm -f "$dir/soak-$suite-$rounds.log"
        else
            bad=$((bad + 1))
            echo "soak: $suite round $rounds failed: $dir/soak-$suite-$rounds.log"
        fi
        rounds=$((rounds + 1))
    done
    summary+=("tsan $suite: $rounds rounds, $bad failed")
    failed=$((failed + bad))
}

soak_suite stress
soak_suite slow

if bash fuzz/run.sh "$FUZZ_S" >"$dir/soak-fuzz.log" 2>&1; then
    summary+=("$(tail -1 "$dir/soak-fuzz.log" | sed 's/^fuzz: //')")
else
    summary+=("fuzz ${FUZZ_S}s: FAIL ($dir/soak-fuzz.log)")
    failed=$((failed + 1))
fi

IFS=';'
echo "soak: ${summary[*]}; $failed failed"
[ "$failed" -eq 0 ]
