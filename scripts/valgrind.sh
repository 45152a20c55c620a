#!/usr/bin/env bash
# scripts/valgrind.sh — what `make valgrind` runs: the service under
# valgrind's memcheck (master and every worker, --trace-children), driven by
# integration test binaries through nginx, then stopped with SIGTERM so each
# process reports its leaks.  Passes when every process reports 0 errors and
# 0 bytes definitely or indirectly lost.
#
# Uses its own stack (.run-valgrind, ports 25xxx) and tears it down.
# FINTEGRATE_VALGRIND_TESTS picks the binaries (default: customers, tags,
# events list, tenancy); valgrind makes everything ~20x slower.
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CHECKOUT=$(cd "$SCRIPTS_DIR/.." && pwd -P)
BUILD_TESTS=${FINTEGRATE_TEST_BIN_DIR:-$CHECKOUT/build/release/tests}
TESTS=${FINTEGRATE_VALGRIND_TESTS:-test_customers test_tags test_events_list test_tenancy}

for v in HTTP_PORT PG_PORT AMQP_PORT AMQP_MGMT_PORT AMQP_DIST_PORT EPMD_PORT \
         RUN_DIR RUN_NAME DB_URL AMQP_URL BASE_URL AMQP_NODENAME; do
    unset "FINTEGRATE_$v"
done
export FINTEGRATE_HTTP_PORT=25080 FINTEGRATE_PG_PORT=25432 \
       FINTEGRATE_AMQP_PORT=25672 FINTEGRATE_AMQP_MGMT_PORT=25673 \
       FINTEGRATE_AMQP_DIST_PORT=30872 FINTEGRATE_EPMD_PORT=25369 \
       FINTEGRATE_RUN_NAME=.run-valgrind FINTEGRATE_STACK_KIND=valgrind \
       FINTEGRATE_WORKERS=2 FINTEGRATE_PG_FAST=1 \
       FINTEGRATE_RATE_KEY=100000 FINTEGRATE_BURST_KEY=100000 \
       FINTEGRATE_RATE_IP=100000 FINTEGRATE_BURST_IP=100000 \
       FINTEGRATE_ADMIN_API_KEY=fk_TestOnlyAdminKeyForTheIntegrationSuite000000

command -v valgrind >/dev/null || { echo "valgrind: not installed" >&2; exit 1; }
stack() { "$SCRIPTS_DIR/stack.sh" "$@"; }
LOGS=$(mktemp -d /tmp/fintegrate-valgrind.XXXXXX)
cleanup() {
    [ -n "${MASTER:-}" ] && kill -TERM "$MASTER" 2>/dev/null || true
    stack down >/dev/null 2>&1 || true
}
trap cleanup EXIT

stack down >/dev/null 2>&1 || true
stack up >/dev/null
stack app-stop >/dev/null
# shellcheck source=scripts/env.sh
. "$SCRIPTS_DIR/env.sh"
export FINTEGRATE_CHECKOUT=$CHECKOUT FINTEGRATE_BASE_URL FINTEGRATE_DB_URL \
       FINTEGRATE_AMQP_URL FINTEGRATE_RUN_DIR FINTEGRATE_AMQP_MGMT_PORT
SOCK=$FINTEGRATE_RUN_DIR/fcgi.sock
rm -f "$SOCK"
(cd /tmp && FINTEGRATE_LOG_FILE=$FINTEGRATE_RUN_DIR/logs/app.log \
    exec spawn-fcgi -n -s "$SOCK" -M 0660 -U www-data -G www-data -- \
    "$(command -v valgrind)" --trace-children=yes --leak-check=full \
        --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
        --log-file="$LOGS/vg.%p.log" "$CHECKOUT/bin/fintegrate-fcgi" </dev/null \
        >>"$FINTEGRATE_RUN_DIR/logs/app.log" 2>&1) &
MASTER=$!
ready=0
for _ in $(seq 1 150); do
    if curl -sf "$FINTEGRATE_BASE_URL/health" >/dev/null 2>&1; then ready=1; break; fi
    sleep 0.2
done
[ "$ready" = 1 ] || { echo "valgrind: the service did not come up under valgrind" >&2; exit 1; }

status=0
for t in $TESTS; do
    if "$BUILD_TESTS/integration/$t" >"$LOGS/$t.out" 2>&1; then
        echo "valgrind: $t passed under valgrind"
    else
        echo "valgrind: $t FAILED under valgrind (see $LOGS/$t.out)"; status=1
    fi
done
kill -TERM "$MASTER"
for _ in $(seq 1 150); do kill -0 "$MASTER" 2>/dev/null || break; sleep 0.2; done
MASTER=

for f in "$LOGS"/vg.*.log; do
    errors=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$f")
    lost=$(grep -E 'definitely lost|indirectly lost' "$f" | grep -vc ' 0 bytes' || true)
    echo "valgrind: $(basename "$f"): ${errors:-?} errors, $lost leak lines with bytes lost"
    if [ "${errors:-1}" != 0 ] || [ "$lost" != 0 ]; then status=1; fi
done
echo "valgrind: logs in $LOGS"
exit $status
