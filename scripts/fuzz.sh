#!/usr/bin/env bash
# scripts/fuzz.sh — what `make fuzz` runs after building the libFuzzer
# targets (build/fuzz/fuzz_<name>, clang -fsanitize=fuzzer,address,undefined):
# each target of FUZZ_TARGETS (default: all) for FUZZ_SECONDS (default 60),
# one after the other, then a table of executions, coverage (libFuzzer's
# cov: and ft:) and crashes per target.
#
# The committed corpus tests/fuzz/fuzz_<name>/ is only read; what libFuzzer
# finds goes to build/fuzz/corpus/<name>/, crash inputs to
# build/fuzz/crashes/<name>-crash-…, the log to build/fuzz/logs/<name>.log.
# A crash input belongs in the committed corpus once its bug is fixed
# (`make test` replays it for ever); `FUZZ_MERGE=1` merges what was found
# into the committed corpus (libFuzzer -merge=1: only inputs that add
# coverage).  Other knobs: FUZZ_JOBS (targets run at once, default 1),
# FUZZ_FLAGS (more libFuzzer flags).  Exit status 1 when a target crashed.
set -uo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CHECKOUT=$(cd "$SCRIPTS_DIR/.." && pwd -P)
OUT=$CHECKOUT/build/fuzz
SECONDS_EACH=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
read -r -a TARGETS <<<"${FUZZ_TARGETS:-}"
if [ ${#TARGETS[@]} -eq 0 ]; then
    for f in "$CHECKOUT"/tests/fuzz/fuzz_*.c; do
        n=${f##*/fuzz_}
        TARGETS+=("${n%.c}")
    done
fi

die() { printf 'fuzz.sh: error: %s\n' "$*" >&2; exit 2; }
case $SECONDS_EACH in ''|*[!0-9]*) die "FUZZ_SECONDS must be a number of seconds";; esac
case $JOBS in ''|*[!0-9]*|0) die "FUZZ_JOBS must be at least 1";; esac
mkdir -p "$OUT/logs" "$OUT/crashes" "$OUT/corpus"

# run_target NAME — one libFuzzer run; its log holds the final statistics.
run_target() {
    local name=$1 bin=$OUT/fuzz_$1 seeds=$CHECKOUT/tests/fuzz/fuzz_$1
    [ -x "$bin" ] || die "$bin is not built (make fuzz builds it)"
    mkdir -p "$OUT/corpus/$name"
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -artifact_prefix="$OUT/crashes/$name-" -timeout=25 \
        ${FUZZ_FLAGS:-} "$OUT/corpus/$name" "$seeds" \
        >"$OUT/logs/$name.log" 2>&1
    echo $? >"$OUT/logs/$name.rc"
    if [ "${FUZZ_MERGE:-0}" = 1 ] && [ "$(cat "$OUT/logs/$name.rc")" = 0 ]; then
        "$bin" -merge=1 "$seeds" "$OUT/corpus/$name" \
            >"$OUT/logs/$name.merge.log" 2>&1 ||
            echo "fuzz.sh: merging $name's corpus failed (see $OUT/logs/$name.merge.log)" >&2
    fi
}

printf 'fuzz.sh: %s target(s), %ss each, %s at a time\n' "${#TARGETS[@]}" \
    "$SECONDS_EACH" "$JOBS"
running=0
for t in "${TARGETS[@]}"; do
    rm -f "$OUT/logs/$t.rc"
    printf 'fuzz.sh: fuzzing %s\n' "$t"
    run_target "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

status=0
printf '\n%-10s %12s %8s %8s %8s  %s\n' target executions cov ft corpus result
for t in "${TARGETS[@]}"; do
    log=$OUT/logs/$t.log
    rc=$(cat "$OUT/logs/$t.rc" 2>/dev/null || echo '?')
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | grep -E ' cov: ' | tail -n 1)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
    if [ "$rc" = 0 ]; then
        result=ok
    else
        result="CRASH (exit $rc): $(ls "$OUT"/crashes/"$t"-* 2>/dev/null | tail -n 1)"
        status=1
    fi
    printf '%-10s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${cov:-?}" \
        "${ft:-?}" "${corp:-?}" "$result"
done
printf '\nlogs: %s/logs/\n' "$OUT"
exit "$status"
