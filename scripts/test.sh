#!/usr/bin/env bash
# scripts/test.sh — what `make test` runs after building:
#   1. every unit test binary $FINTEGRATE_TEST_BIN_DIR/unit/test_* (default
#      build/release/tests; `make test SAN=1` points it at build/san/tests);
#   2. an isolated test stack (its own ports and run directory, fresh data,
#      fast PostgreSQL, a fixed admin key, high rate limits), which is ALWAYS
#      torn down at exit (success, failure, Ctrl-C);
#   3. every integration test binary $FINTEGRATE_TEST_BIN_DIR/integration/test_* against
#      it, with the stack's settings in the environment (FINTEGRATE_BASE_URL,
#      FINTEGRATE_DB_URL, FINTEGRATE_ADMIN_API_KEY, FINTEGRATE_RUN_DIR,
#      FINTEGRATE_AMQP_URL, FINTEGRATE_AMQP_MGMT_PORT, FINTEGRATE_CHECKOUT and
#      the rest of scripts/env.sh's variables), so that a test may call
#      scripts/stack.sh pg-stop|pg-start|broker-stop|broker-start|app-reload.
#   4. the API and deployment checks (tests/api/test_*, tests/config/test_*:
#      OpenAPI lint, the live contract check, the Postman collection under
#      newman, the docker-compose/Prometheus/Grafana files) against the same
#      stack, with the pinned npm tools of package-lock.json (tests/api/
#      npm_ci.sh installs them into node_modules/ when they changed).  Without
#      node/npm these are skipped with a message (scripts/install-deps.sh
#      installs them).
#   5. the short chaos run (scripts/chaos.sh --short: faults under load on a
#      cluster of two app nodes, three RabbitMQ nodes and a PostgreSQL
#      primary and standby, judged for lost, duplicated and reordered events).
# Every binary runs even when an earlier one failed; the exit status is
# non-zero when anything failed.
#
# The test stack is configured with FINTEGRATE_TEST_<NAME> (HTTP_PORT 18080,
# PG_PORT 16432, AMQP_PORT 16672, AMQP_MGMT_PORT 16673, AMQP_DIST_PORT 26672,
# EPMD_PORT 14369, RUN_DIR <checkout>/.run-test, WORKERS 4, RATE_KEY/RATE_IP
# 100000, BURST_KEY/BURST_IP 100000, ADMIN_API_KEY a fixed test key).  The
# plain FINTEGRATE_<NAME> settings of a `make run` stack are deliberately
# ignored, so that an exported dev configuration can never point the tests
# (which stop and wipe their stack) at the dev stack.
#
# Other knobs: FINTEGRATE_TEST_ONLY (a shell pattern: run only the test
# binaries whose name matches it, e.g. 'test_out*'; default all),
# FINTEGRATE_TEST_TIMEOUT (seconds per binary, default 900),
# FINTEGRATE_TEST_KEEP_DATA=1 (reuse the previous test data instead of a fresh
# initdb), FINTEGRATE_TEST_KEEP_STACK=1 (leave the stack running at the end,
# for debugging; stop it with the same FINTEGRATE_TEST_* and
# `scripts/test.sh --down`).
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CHECKOUT=$(cd "$SCRIPTS_DIR/.." && pwd -P)
STACK=$SCRIPTS_DIR/stack.sh

TEST_TIMEOUT=${FINTEGRATE_TEST_TIMEOUT:-900}
TEST_ADMIN_KEY_DEFAULT=fk_TestOnlyAdminKeyForTheIntegrationSuite000000

say() { printf 'test.sh: %s\n' "$*" >&2; }
die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }

# test_env — the test stack's settings, then scripts/env.sh on top of them.
test_env() {
    local name
    for name in HTTP_PORT PG_PORT AMQP_PORT AMQP_MGMT_PORT AMQP_DIST_PORT EPMD_PORT \
                WORKERS RATE_KEY BURST_KEY RATE_IP BURST_IP RUN_DIR RUN_NAME \
                DB_URL AMQP_URL BASE_URL AMQP_NODENAME ADMIN_API_KEY PG_FAST; do
        unset "FINTEGRATE_$name"
    done
    export FINTEGRATE_HTTP_PORT=${FINTEGRATE_TEST_HTTP_PORT:-18080}
    export FINTEGRATE_PG_PORT=${FINTEGRATE_TEST_PG_PORT:-16432}
    export FINTEGRATE_AMQP_PORT=${FINTEGRATE_TEST_AMQP_PORT:-16672}
    export FINTEGRATE_AMQP_MGMT_PORT=${FINTEGRATE_TEST_AMQP_MGMT_PORT:-16673}
    export FINTEGRATE_AMQP_DIST_PORT=${FINTEGRATE_TEST_AMQP_DIST_PORT:-26672}
    export FINTEGRATE_EPMD_PORT=${FINTEGRATE_TEST_EPMD_PORT:-14369}
    export FINTEGRATE_WORKERS=${FINTEGRATE_TEST_WORKERS:-4}
    export FINTEGRATE_RATE_KEY=${FINTEGRATE_TEST_RATE_KEY:-100000}
    export FINTEGRATE_BURST_KEY=${FINTEGRATE_TEST_BURST_KEY:-100000}
    export FINTEGRATE_RATE_IP=${FINTEGRATE_TEST_RATE_IP:-100000}
    export FINTEGRATE_BURST_IP=${FINTEGRATE_TEST_BURST_IP:-100000}
    export FINTEGRATE_ADMIN_API_KEY=${FINTEGRATE_TEST_ADMIN_API_KEY:-$TEST_ADMIN_KEY_DEFAULT}
    export FINTEGRATE_PG_FAST=1
    export FINTEGRATE_STACK_KIND=test
    if [ -n "${FINTEGRATE_TEST_RUN_DIR:-}" ]; then
        export FINTEGRATE_RUN_DIR=$FINTEGRATE_TEST_RUN_DIR
    else
        export FINTEGRATE_RUN_NAME=.run-test
    fi
    # shellcheck source=scripts/env.sh
    . "$SCRIPTS_DIR/env.sh"
    export FINTEGRATE_RUN_DIR FINTEGRATE_CHECKOUT
}

# check_run_dir — the test stack may stop and wipe only a run directory that
# a test stack created (marker kind=test), never a `make run` stack's.
check_run_dir() {
    local marker=$FINTEGRATE_RUN_DIR/.fintegrate-run-dir
    [ -e "$FINTEGRATE_RUN_DIR" ] || return 0
    if [ -f "$marker" ] && grep -qx 'kind=test' "$marker"; then
        return 0
    fi
    if [ -z "$(ls -A "$FINTEGRATE_RUN_DIR")" ]; then
        return 0
    fi
    die "$FINTEGRATE_RUN_DIR was not created by a test stack (see its .fintegrate-run-dir); refusing to stop or wipe it — set FINTEGRATE_TEST_RUN_DIR to another folder"
}

STACK_TOUCHED=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ "$STACK_TOUCHED" = 1 ]; then
        if [ "${FINTEGRATE_TEST_KEEP_STACK:-0}" = 1 ]; then
            say "FINTEGRATE_TEST_KEEP_STACK=1: the test stack keeps running in $FINTEGRATE_RUN_DIR"
        else
            say "tearing the test stack down"
            "$STACK" down >/dev/null 2>&1 || "$STACK" down || true
        fi
        [ "$rc" = 0 ] || say "logs of this run: $FINTEGRATE_RUN_DIR/logs/"
    fi
    exit "$rc"
}

# Results, per binary.
declare -a FAILED=()
BINARIES=0
TESTS_PASSED=0
TESTS_FAILED=0

# run_binary KIND PATH — run one cmocka binary, show its output, record it.
run_binary() {
    local kind=$1 bin=$2 name log rc start secs n
    name=$(basename "$bin")
    # shellcheck disable=SC2254
    case $name in
        ${FINTEGRATE_TEST_ONLY:-*}) ;;
        *) return 0 ;;
    esac
    log=$LOG_DIR/$kind-$name.log
    BINARIES=$((BINARIES + 1))
    printf '\n=== %s %s\n' "$kind" "$name"
    start=${EPOCHREALTIME/./}
    set +e
    timeout --kill-after=10 "$TEST_TIMEOUT" "$bin" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    secs=$(( (${EPOCHREALTIME/./} - start) / 100000 ))
    secs="$((secs / 10)).$((secs % 10))"
    n=$(sed -n -e 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' \
        -e 's/^\([0-9][0-9]*\) passed, [0-9][0-9]* failed$/\1/p' "$log" | tail -n 1)
    TESTS_PASSED=$((TESTS_PASSED + ${n:-0}))
    n=$(sed -n -e 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' \
        -e 's/^[0-9][0-9]* passed, \([0-9][0-9]*\) failed$/\1/p' "$log" | tail -n 1)
    TESTS_FAILED=$((TESTS_FAILED + ${n:-0}))
    if [ "$rc" = 0 ]; then
        printf -- '--- PASS %s %s (%ss)\n' "$kind" "$name" "$secs"
    else
        [ "$rc" = 124 ] && printf -- '--- %s timed out after %ss\n' "$name" "$TEST_TIMEOUT"
        printf -- '--- FAIL %s %s (exit %s, %ss)\n' "$kind" "$name" "$rc" "$secs"
        FAILED+=("$kind/$name")
    fi
}

# run_all KIND DIR — every executable test_* in DIR.
run_all() {
    local kind=$1 dir=$2 bin found=0
    for bin in "$dir"/test_*; do
        if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then continue; fi
        found=1
        run_binary "$kind" "$bin"
    done
    [ "$found" = 1 ] || say "no $kind test binaries in $dir: skipped"
}

# smoke — the stack answers through nginx before any test binary runs.
smoke() {
    local code
    code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "$FINTEGRATE_BASE_URL/health") || true
    if [ "$code" != 200 ]; then
        say "stack smoke check: GET /health answered $code, not 200"
        FAILED+=("stack/health")
        return 1
    fi
    code=$(curl -s -o /dev/null -m 10 -w '%{http_code}' "$FINTEGRATE_BASE_URL/customer/data") || true
    if [ "$code" != 401 ]; then
        say "stack smoke check: a request without X-API-Key answered $code, not 401"
        FAILED+=("stack/no-key")
    fi
}

# reset_run_dir — stop a stack left by a killed earlier run, then (unless
# FINTEGRATE_TEST_KEEP_DATA=1) start from an empty run directory.
reset_run_dir() {
    local out
    check_run_dir
    STACK_TOUCHED=1
    if [ -d "$FINTEGRATE_RUN_DIR/cluster" ]; then
        FINTEGRATE_CLUSTER_PORT_BASE=${FINTEGRATE_TEST_CLUSTER_PORT_BASE:-23000} \
            FINTEGRATE_CLUSTER_DIR=$FINTEGRATE_RUN_DIR/cluster \
            "$SCRIPTS_DIR/cluster.sh" down >/dev/null 2>&1 || true
    fi
    if [ -d "$FINTEGRATE_RUN_DIR" ]; then
        out=$("$STACK" down 2>&1) || { printf '%s\n' "$out" >&2; die "could not stop the previous test stack"; }
        if [ "${FINTEGRATE_TEST_KEEP_DATA:-0}" != 1 ]; then
            rm -rf "$FINTEGRATE_RUN_DIR"
        fi
    fi
    mkdir -p "$FINTEGRATE_RUN_DIR"
    chmod 0755 "$FINTEGRATE_RUN_DIR"
    [ -e "$FINTEGRATE_RUN_DIR/.fintegrate-run-dir" ] ||
        printf 'kind=test\ncheckout=%s\n' "$CHECKOUT" >"$FINTEGRATE_RUN_DIR/.fintegrate-run-dir"
    LOG_DIR=$FINTEGRATE_RUN_DIR/logs/tests
    mkdir -p "$LOG_DIR"
}

start_stack() {
    say "starting the test stack in $FINTEGRATE_RUN_DIR ($FINTEGRATE_BASE_URL)"
    if ! "$STACK" up >"$LOG_DIR/stack-up.log" 2>&1; then
        cat "$LOG_DIR/stack-up.log" >&2
        FAILED+=("stack/up")
        return 1
    fi
    grep '^stack:' "$LOG_DIR/stack-up.log" >&2 || true
}

# run_api_checks — tests/api/test_* and tests/config/test_* (scripts, run
# like the binaries) with the pinned npm tools; skipped only without npm.
run_api_checks() {
    local rc=0
    printf '\n=== npm tools (tests/api/npm_ci.sh)\n'
    "$CHECKOUT/tests/api/npm_ci.sh" || rc=$?
    if [ "$rc" = 3 ]; then
        say "SKIPPED the API and deployment checks: node/npm not installed (scripts/install-deps.sh installs them)"
        return 0
    elif [ "$rc" != 0 ]; then
        printf -- '--- FAIL api npm ci (exit %s)\n' "$rc"
        FAILED+=("api/npm-ci")
        return 0
    fi
    run_all api "$CHECKOUT/tests/api"
    run_all config "$CHECKOUT/tests/config"
}

# run_chaos — the short fault run (scripts/chaos.sh --short) on a cluster of
# its own (ports from FINTEGRATE_TEST_CLUSTER_PORT_BASE, default 23000; data
# under the test run directory), after the test stack is down so that the two
# never compete for the 2 cores.  chaos.sh always stops its cluster.
run_chaos() {
    local rc start secs
    # shellcheck disable=SC2254,SC2194
    case chaos in
        ${FINTEGRATE_TEST_ONLY:-*}) ;;
        *) return 0 ;;
    esac
    "$STACK" down >/dev/null 2>&1 || true
    BINARIES=$((BINARIES + 1))
    printf '\n=== chaos scripts/chaos.sh --short\n'
    start=${EPOCHREALTIME/./}
    set +e
    FINTEGRATE_CLUSTER_PORT_BASE=${FINTEGRATE_TEST_CLUSTER_PORT_BASE:-23000} \
        FINTEGRATE_CLUSTER_DIR=$FINTEGRATE_RUN_DIR/cluster \
        FINTEGRATE_CLUSTER_KIND=test FINTEGRATE_PG_FAST=1 \
        timeout --kill-after=30 "$TEST_TIMEOUT" "$SCRIPTS_DIR/chaos.sh" --short 2>&1 |
        tee "$LOG_DIR/chaos.log"
    rc=${PIPESTATUS[0]}
    set -e
    secs=$(( (${EPOCHREALTIME/./} - start) / 1000000 ))
    if [ "$rc" = 0 ]; then
        TESTS_PASSED=$((TESTS_PASSED + 1))
        printf -- '--- PASS chaos (%ss)\n' "$secs"
    else
        TESTS_FAILED=$((TESTS_FAILED + 1))
        printf -- '--- FAIL chaos (exit %s, %ss)\n' "$rc" "$secs"
        FAILED+=("chaos")
    fi
}

main() {
    local tests_dir=${FINTEGRATE_TEST_BIN_DIR:-$CHECKOUT/build/release/tests}
    local unit_dir=$tests_dir/unit itest_dir=$tests_dir/integration f
    local -a itests=()

    if [ "${1:-}" = --down ]; then
        test_env
        check_run_dir
        exec "$STACK" down
    fi
    [ $# -eq 0 ] || die "usage: $0 [--down]"

    test_env
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    reset_run_dir

    run_all unit "$unit_dir"

    for f in "$itest_dir"/test_*; do
        if [ -f "$f" ] && [ -x "$f" ]; then
            itests+=("$f")
        fi
    done
    if start_stack && smoke; then
        if [ ${#itests[@]} -eq 0 ]; then
            say "no integration test binaries in $itest_dir: skipped"
        fi
        for f in "${itests[@]}"; do
            run_binary integration "$f"
        done
        run_api_checks
    fi
    run_chaos

    echo
    if [ ${#FAILED[@]} -eq 0 ]; then
        echo "test.sh: PASS — $BINARIES test binaries, $TESTS_PASSED tests passed"
        return 0
    fi
    echo "test.sh: FAIL — ${#FAILED[@]} failed (${FAILED[*]}) of $BINARIES test binaries; tests: $TESTS_PASSED passed, $TESTS_FAILED failed"
    return 1
}

main "$@"
