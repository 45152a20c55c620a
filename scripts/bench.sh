#!/usr/bin/env bash
# scripts/bench.sh — what `make bench` runs: throughput and latency of the
# real path (wrk → nginx → FastCGI → PostgreSQL → RabbitMQ) on an isolated
# stack of its own (ports 17xxx, run dir .run-bench), always torn down.
#
#   1. POST /customer/data with the broker up (every request also publishes
#      its event with a publisher confirm)
#   2. GET /customer/data of one customer
#   3. POST /customer/data with the broker stopped (the circuit breaker open)
#   4. the drain of a backlog: FINTEGRATE_BENCH_BACKLOG (default 100,000)
#      pending events written with the broker stopped (SQL: 10 events per
#      customer, customers interleaved as an outage leaves them), then the
#      broker started and the backlog drained (a) by the relay, no API call,
#      and (b) by one POST /events/resend with the relay off.  Prints
#      events/s and the peak RSS (VmHWM) of the process that did the work.
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

# ---- 4. draining a backlog ------------------------------------------------
BACKLOG=${FINTEGRATE_BENCH_BACKLOG:-100000}
PSQL=(psql "$FINTEGRATE_DB_URL" -qAtX -v ON_ERROR_STOP=1)

# make_backlog NAME — a consumer (through the API, so its queues exist) and
# $BACKLOG pending events of it, as an outage leaves them: inline try 1,
# broker unreachable (no back-off), 10 per customer.
make_backlog() {
    local name=$1 cid customers=$(((BACKLOG + 9) / 10))
    cid=$(curl -s -H "X-API-Key: $KEY" -X POST "$BASE/consumer/data" \
              -d "{\"consumer_name\":\"$name\"}" |
          sed -n 's/.*"consumer_id":"\([0-9a-f-]*\)".*/\1/p')
    [ -n "$cid" ] || { echo "bench: cannot create consumer $name" >&2; exit 1; }
    "${PSQL[@]}" <<SQL
WITH c AS (SELECT gen_random_uuid() AS customer_id, row_number() OVER () AS n
             FROM generate_series(1, ceil($BACKLOG / 10.0)::int)),
     e AS (SELECT c.customer_id, s.seq, gen_random_uuid() AS event_id,
                  clock_timestamp() - interval '1 hour'
                    + ((s.seq - 1) * $customers + c.n)
                      * interval '1 microsecond' AS created_at
             FROM c CROSS JOIN generate_series(1, 10) AS s(seq))
INSERT INTO customer_events (event_id, customer_id, consumer_id, event_type,
    source_service, sequence, payload, request_id, created_at,
    publish_try_count, publish_last_tried_at, publish_failure_reason)
SELECT event_id, customer_id, '$cid', 'customer_status_change',
       'PATCH: /customer/change-status', seq,
       json_build_object('schema_version', '1.0', 'event_id', event_id,
           'event_type', 'customer_status_change', 'sequence', seq,
           'consumer_id', '$cid', 'customer_id', customer_id,
           'data', json_build_object('customer_id', customer_id,
                   'previous_status', 'ACTIVE', 'status', 'INACTIVE'),
           'metadata', json_build_object('created_at', fintegrate_ts(created_at),
                   'source_service', 'PATCH: /customer/change-status',
                   'request_id', 'bench')),
       'bench', created_at, 1, created_at, 'Cannot connect to the broker'
  FROM e ORDER BY created_at LIMIT $BACKLOG;
SQL
}

# purge_queues — empty every queue (management API), so each drain starts on
# a broker that is not also carrying the previous runs' messages (measured:
# a broker holding 200k messages drains at half the speed).
purge_queues() {
    local mgmt="http://127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT/api/queues" q
    for q in $(curl -s -u guest:guest "$mgmt" | tr ',' '\n' |
               sed -n 's/^"name":"\(customer_notification_[^"]*\)"$/\1/p'); do
        curl -s -o /dev/null -u guest:guest -X DELETE "$mgmt/%2f/$q/contents"
    done
}

pending() { "${PSQL[@]}" -c "SELECT count(*) FROM customer_events WHERE publish_status = 'pending'"; }

# peak_rss_kb COMM — the largest VmHWM among the app's processes named COMM
# (fi-relay for the relay; the workers keep the binary's name).
peak_rss_kb() {
    local comm=$1 pid best=0 v
    for pid in $(pgrep -x "$comm" 2>/dev/null); do
        v=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "${v:-0}" -gt "$best" ] && best=$v
    done
    echo "$best"
}

rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

echo
echo "== drain of $BACKLOG pending events (broker stopped while they were written)"
stack broker-start >/dev/null
# what part 3 left pending goes first (the relay), so it is not timed below
for _ in $(seq 1 300); do [ "$(pending)" = 0 ] && break; sleep 0.2; done

# (a) the relay, with nothing but the broker coming back
purge_queues
stack broker-stop >/dev/null
make_backlog "bench_drain_relay_$(date +%s)"
before=$(pending)
stack broker-start >/dev/null
t0=$(now)
while [ "$(pending)" -gt $((before - BACKLOG)) ]; do sleep 0.1; done
t1=$(now)
s=$(secs "$t0" "$t1")
echo "relay : $BACKLOG events in ${s} s = $(rate "$BACKLOG" "$s") events/s" \
     "(from broker-start; includes up to one relay interval), relay peak RSS $(peak_rss_kb fi-relay) kB"

# (b) one resend, the relay off
FINTEGRATE_RELAY_INTERVAL_MS=0 stack app-stop >/dev/null
FINTEGRATE_RELAY_INTERVAL_MS=0 stack app-start >/dev/null
purge_queues
stack broker-stop >/dev/null
make_backlog "bench_drain_resend_$(date +%s)"
stack broker-start >/dev/null
t0=$(now)
summary=$(curl -s -m 600 -H "X-API-Key: $KEY" -X POST "$BASE/events/resend" -d '{"period_in_days":1}' |
          sed -n 's/.*"summary":\({[^}]*}\).*/\1/p')
t1=$(now)
s=$(secs "$t0" "$t1")
echo "resend: one call in ${s} s = $(rate "$BACKLOG" "$s") events/s, summary $summary," \
     "peak worker RSS $(peak_rss_kb fintegrate-fcgi) kB"

