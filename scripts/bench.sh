#!/usr/bin/env bash
# scripts/bench.sh — what `make bench` runs: throughput and latency of the
# real path (wrk → nginx → FastCGI → PostgreSQL → RabbitMQ) on an isolated
# stack of its own (ports 17xxx, run dir .run-bench), always torn down.
#
#   1. POST /customer/data with the broker up (every request also publishes
#      its event with a publisher confirm)
#   2. GET /customer/data of one customer
#   3. POST /customer/data with the broker stopped (the circuit breaker open)
#
# Each run prints wrk's summary and latency percentiles.  Knobs:
# FINTEGRATE_BENCH_SECONDS (default 10), FINTEGRATE_BENCH_CONNECTIONS (16),
# FINTEGRATE_BENCH_THREADS (2), FINTEGRATE_BENCH_WORKERS (4).
# Numbers measure this machine; the ceilings to hold them against are in
# ../shared/notes/ENVIRONMENT.md.
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CHECKOUT=$(cd "$SCRIPTS_DIR/.." && pwd -P)
SECONDS_EACH=${FINTEGRATE_BENCH_SECONDS:-10}
CONNS=${FINTEGRATE_BENCH_CONNECTIONS:-16}
THREADS=${FINTEGRATE_BENCH_THREADS:-2}

for v in HTTP_PORT PG_PORT AMQP_PORT AMQP_MGMT_PORT AMQP_DIST_PORT EPMD_PORT \
         RUN_DIR RUN_NAME DB_URL AMQP_URL BASE_URL AMQP_NODENAME ADMIN_API_KEY; do
    unset "FINTEGRATE_$v"
done
export FINTEGRATE_HTTP_PORT=17080 FINTEGRATE_PG_PORT=17432 \
       FINTEGRATE_AMQP_PORT=17672 FINTEGRATE_AMQP_MGMT_PORT=17673 \
       FINTEGRATE_AMQP_DIST_PORT=27672 FINTEGRATE_EPMD_PORT=17369 \
       FINTEGRATE_RUN_NAME=.run-bench FINTEGRATE_STACK_KIND=bench \
       FINTEGRATE_WORKERS=${FINTEGRATE_BENCH_WORKERS:-4} \
       FINTEGRATE_RATE_KEY=999999 FINTEGRATE_BURST_KEY=999999 \
       FINTEGRATE_RATE_IP=999999 FINTEGRATE_BURST_IP=999999 \
       FINTEGRATE_ADMIN_API_KEY=fk_BenchOnlyAdminKeyForMakeBench00000000000000

command -v wrk >/dev/null || { echo "bench: wrk is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }

stack() { "$SCRIPTS_DIR/stack.sh" "$@"; }
trap 'stack down >/dev/null 2>&1 || true' EXIT
stack down >/dev/null 2>&1 || true
stack up >/dev/null

# shellcheck source=scripts/env.sh
. "$SCRIPTS_DIR/env.sh"
BASE=$FINTEGRATE_BASE_URL
KEY=$FINTEGRATE_ADMIN_API_KEY
LUA=$(mktemp /tmp/fintegrate-bench.XXXXXX.lua)
trap 'rm -f "$LUA"; stack down >/dev/null 2>&1 || true' EXIT

post_script() {
    cat >"$LUA" <<LUA
wrk.method = "POST"
wrk.body   = '{"name":"Bench Customer","status":"ACTIVE"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "$KEY"
LUA
}

get_script() {
    cat >"$LUA" <<LUA
wrk.method = "GET"
wrk.headers["X-API-Key"] = "$KEY"
LUA
}

run() {
    local title=$1 url=$2
    echo
    echo "== $title  (wrk -t$THREADS -c$CONNS -d${SECONDS_EACH}s)"
    wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_EACH}s" --latency -s "$LUA" "$url" |
        grep -E 'Requests/sec|Non-2xx|Socket errors|^ +(50|75|90|99)%|Latency  '
}

id=$(curl -s -H "X-API-Key: $KEY" -X POST "$BASE/customer/data" -d '{"name":"Read Me"}' |
     sed -n 's/.*"customer_id":"\([0-9a-f-]*\)".*/\1/p')

post_script
run "POST /customer/data, broker up (inline publish with confirms)" "$BASE/customer/data"
get_script
run "GET /customer/data" "$BASE/customer/data?customer_id=$id"

stack broker-stop >/dev/null
post_script
run "POST /customer/data, broker stopped (breaker open after 5 failures per worker)" "$BASE/customer/data"

psql "$FINTEGRATE_DB_URL" -Atc "SELECT 'outbox: ' || count(*) FILTER (WHERE publish_status = 'published') || ' published, ' || count(*) FILTER (WHERE publish_status = 'pending') || ' pending' FROM customer_events"
