#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Model-checks the notify protocol (verify/notify.pml) with Spin.
#
#   verify/run.sh                 every variant below
#   verify/run.sh CORRECT ...     only those
#
# Each variant is checked twice: a safety pass (assertions + invalid end states, the never
# claim compiled out) and a liveness pass (./pan -a: the LTL property `examined`).
# Expected: CORRECT* verify with 0 errors in both passes; every BROKEN_* variant is refuted
# (errors > 0 in some pass) and its counterexample is written to $VERIFY_OUT/<variant>.trail.txt.
# Prints one line per variant and exits non-zero if any outcome differs from the expected.
# Needs spin and a C compiler (Debian: apt-get install spin gcc).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
model=$here/notify.pml
CC=${CC:-cc}
# CORRECT3: the correct protocol with three producers (about 3 s, 300 MB).
ALL=(CORRECT CORRECT3 BROKEN_NO_FENCE_A BROKEN_NO_FENCE_B BROKEN_NO_FENCE_C
     BROKEN_NO_FENCE_D BROKEN_SKIP_WRITE)
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=("${ALL[@]}")

for tool in spin "$CC"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "verify: $tool not found (Debian: apt-get install spin gcc)" >&2
        exit 77  # meson's "skipped"
    fi
done

out=${VERIFY_OUT:-$(mktemp -d /tmp/aio-verify.XXXXXX)}
mkdir -p "$out"
bad=0

for v in "${variants[@]}"; do
    defs=()
    case $v in
        CORRECT) defs=(-DCORRECT) ;;
        CORRECT3) defs=(-DCORRECT -DNPROD=3) ;;
        BROKEN_*) defs=("-D$v") ;;
        *) echo "verify: unknown variant $v" >&2; bad=1; continue ;;
    esac
    work=$out/$v
    rm -rf "$work"
    start=$SECONDS
    # pass DIR PAN-ARGS SPIN-ARGS...: generate, compile and run one pan verifier in $work/DIR.
    pass() {
        local dir=$work/$1 args=$2
        shift 2
        mkdir -p "$dir" && cp "$model" "$dir/notify.pml" &&
        (cd "$dir" && spin "$@" -a notify.pml >spin.log 2>&1 &&
         $CC -O1 -o pan pan.c >cc.log 2>&1 && { ./pan $args -m1000000 >pan.log 2>&1; true; })
    }
    errors() { sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$work/$1/pan.log" 2>/dev/null | head -1; }
    # safety: assertions and invalid end states (the never claim left out: NOLTL)
    pass safety "" "${defs[@]}" -DNOLTL
    es=$(errors safety)
    # liveness: the LTL property (acceptance cycles); a refuted broken variant skips it
    el=0
    if [[ $v == CORRECT* ]] || [ "${es:-0}" -eq 0 ]; then
        pass liveness -a "${defs[@]}"
        el=$(errors liveness)
    fi
    states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$work/safety/pan.log" | head -1)
    if [ -z "$es" ] || [ -z "$el" ]; then
        echo "FAIL  $v: spin, $CC or pan failed (see $work/*/{spin,cc,pan}.log)"
        bad=1
        continue
    fi
    secs=$((SECONDS - start))
    case $v in
        CORRECT*)
            if [ "$es" -eq 0 ] && [ "$el" -eq 0 ] &&
               ! grep -q 'search not completed\|max search depth too small' "$work"/*/pan.log; then
                echo "ok    $v: verified, 0 errors (safety + LTL [] (work>0 -> <> work==0), $states states, ${secs} s)"
            else
                echo "FAIL  $v: expected no errors, got safety=$es liveness=$el (see $work)"
                bad=1
            fi
            ;;
        BROKEN_*)
            if [ "$es" -gt 0 ] || [ "$el" -gt 0 ]; then
                pass=safety
                [ "$es" -gt 0 ] || pass=liveness
                why=$(grep -m1 -o 'assertion violated.*\|acceptance cycle.*\|invalid end state.*' \
                      "$work/$pass/pan.log" | head -1)
                pdefs=("${defs[@]}")
                [ $pass = liveness ] || pdefs+=(-DNOLTL)
                (cd "$work/$pass" && spin "${pdefs[@]}" -t -p -g notify.pml >"$out/$v.trail.txt" 2>&1)
                echo "ok    $v: refuted as expected ($pass: $why; counterexample in $out/$v.trail.txt)"
            else
                echo "FAIL  $v: the broken variant verified (no counterexample found)"
                bad=1
            fi
            ;;
    esac
done
exit $bad
