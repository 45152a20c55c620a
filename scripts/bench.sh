#!/usr/bin/env bash
# scripts/bench.sh — what `make bench` runs: throughput and latency of the
# real path (wrk → nginx → FastCGI → PostgreSQL → RabbitMQ) on an isolated
# stack of its own (ports 17xxx, run dir .run-bench), always torn down, held
# against its own ceiling measured in the same run.
#
#   0. set-up: a consumer "bench" (through the API, so its queues exist) and
#      its key; 2 × FINTEGRATE_BENCH_CUSTOMERS customers with 3 tags each
#      and their published creation events (SQL): one set for the service,
#      one for pgbench's PATCH (so neither run disturbs the other).
#   1. saturating runs at FINTEGRATE_BENCH_CONNECTIONS (16), each followed
#      by its ceiling, pgbench running the bare SQL of the operation
#      (scripts/bench/*.sql) against the same PostgreSQL at the same
#      concurrency:
#        POST  /customer/data           (new customer + event, inline publish)
#        PATCH /customer/change-status  (a random preloaded customer)
#        GET   /customer/data           (a random preloaded customer + tags)
#      every request with the bench consumer's key (scripts/bench/*.lua).
#      Per run: r/s, p50, p99, ceiling, ratio; every event published? (the
#      outbox's counts and the queue's exact depth before and after); worker
#      RSS before and after; CPU used per component.
#   2. steady: FINTEGRATE_BENCH_STEADY_RATE writes/s (150; creates and
#      status changes, bin/fintegrate-chaos load, open loop) for
#      FINTEGRATE_BENCH_STEADY_SECONDS (60) with the consumer program
#      reading the queue and confirming every event; a table per 5 s of the
#      server's time per write (app.log), the client's p99, the consumer's
#      confirmations/s, the queue depth and the publishers' flow state
#      (management API, sampled).
#   3. POST /customer/data with the broker stopped (the breaker open).
#   4. the drain of a backlog: FINTEGRATE_BENCH_BACKLOG (default 100,000)
#      pending events written with the broker stopped, drained (a) by the
#      relay and (b) by one POST /events/resend with the relay off.
#
# Knobs: FINTEGRATE_BENCH_QUICK=1 (4 s runs, 20 s steady, no parts 3-4:
# for iterating), FINTEGRATE_BENCH_PARTS (default "saturate steady outage
# drain"), FINTEGRATE_BENCH_SECONDS (10), FINTEGRATE_BENCH_CONNECTIONS (16),
# FINTEGRATE_BENCH_THREADS (2), FINTEGRATE_BENCH_WORKERS (the service's
# default when unset), FINTEGRATE_BENCH_CUSTOMERS (2000),
# FINTEGRATE_BENCH_STEADY_RATE, FINTEGRATE_BENCH_STEADY_SECONDS,
# FINTEGRATE_BENCH_BACKLOG; FINTEGRATE_FCGI_BIN runs another build.
# Numbers measure this machine while it does whatever else it does: compare
# within one run (the ratio to the ceiling), and see the load average.
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CHECKOUT=$(cd "$SCRIPTS_DIR/.." && pwd -P)
BENCH_DIR=$SCRIPTS_DIR/bench
QUICK=${FINTEGRATE_BENCH_QUICK:-0}
if [ "$QUICK" = 1 ]; then
    SECONDS_EACH=${FINTEGRATE_BENCH_SECONDS:-4}
    STEADY_SECONDS=${FINTEGRATE_BENCH_STEADY_SECONDS:-20}
    PARTS=${FINTEGRATE_BENCH_PARTS:-saturate steady}
else
    SECONDS_EACH=${FINTEGRATE_BENCH_SECONDS:-10}
    STEADY_SECONDS=${FINTEGRATE_BENCH_STEADY_SECONDS:-60}
    PARTS=${FINTEGRATE_BENCH_PARTS:-saturate steady outage drain}
fi
CONNS=${FINTEGRATE_BENCH_CONNECTIONS:-16}
THREADS=${FINTEGRATE_BENCH_THREADS:-2}
CUSTOMERS=${FINTEGRATE_BENCH_CUSTOMERS:-2000}
STEADY_RATE=${FINTEGRATE_BENCH_STEADY_RATE:-150}
BACKLOG=${FINTEGRATE_BENCH_BACKLOG:-100000}
CHAOS_BIN=$CHECKOUT/bin/fintegrate-chaos
CONSUMER_BIN=${FINTEGRATE_CONSUMER_BIN:-$CHECKOUT/bin/fintegrate-consumer}
# The preloaded customers: the service's set and pgbench's PATCH set.
SVC_PREFIX=00000000-0000-4000-8000-
SQL_PREFIX=00000000-0000-4000-8001-

for v in HTTP_PORT PG_PORT AMQP_PORT AMQP_MGMT_PORT AMQP_DIST_PORT EPMD_PORT \
         RUN_DIR RUN_NAME DB_URL AMQP_URL BASE_URL AMQP_NODENAME ADMIN_API_KEY \
         WORKERS; do
    unset "FINTEGRATE_$v"
done
export FINTEGRATE_HTTP_PORT=17080 FINTEGRATE_PG_PORT=17432 \
       FINTEGRATE_AMQP_PORT=17672 FINTEGRATE_AMQP_MGMT_PORT=17673 \
       FINTEGRATE_AMQP_DIST_PORT=27672 FINTEGRATE_EPMD_PORT=17369 \
       FINTEGRATE_RUN_NAME=.run-bench FINTEGRATE_STACK_KIND=bench \
       FINTEGRATE_RATE_KEY=999999 FINTEGRATE_BURST_KEY=999999 \
       FINTEGRATE_RATE_IP=999999 FINTEGRATE_BURST_IP=999999 \
       FINTEGRATE_ADMIN_API_KEY=fk_BenchOnlyAdminKeyForMakeBench00000000000000
[ -n "${FINTEGRATE_BENCH_WORKERS:-}" ] && export FINTEGRATE_WORKERS=$FINTEGRATE_BENCH_WORKERS

die() { echo "bench: $*" >&2; exit 1; }
has_part() { [[ " $PARTS " == *" $1 "* ]]; }
for tool in wrk pgbench psql curl; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh installs it)"
done
if has_part steady; then
    [ -x "$CHAOS_BIN" ] || die "$CHAOS_BIN is missing (make chaos-tool)"
    [ -x "$CONSUMER_BIN" ] || die "$CONSUMER_BIN is missing (make build)"
fi

stack() { "$SCRIPTS_DIR/stack.sh" "$@"; }
declare -a BG_PIDS=()
cleanup() {
    local p
    for p in "${BG_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ "${FINTEGRATE_BENCH_KEEP:-0}" = 1 ]; then
        echo "bench: the stack stays up (FINTEGRATE_BENCH_KEEP=1): scripts/stack.sh with FINTEGRATE_RUN_NAME=.run-bench" >&2
        return 0
    fi
    stack down >/dev/null 2>&1 || true
}
trap cleanup EXIT
# shellcheck source=scripts/env.sh
. "$SCRIPTS_DIR/env.sh"
stack down >/dev/null 2>&1 || true
# a fresh stack every run (the same table sizes, an empty broker); only a
# folder that a bench stack made
if grep -qx 'kind=bench' "$FINTEGRATE_RUN_DIR/.fintegrate-run-dir" 2>/dev/null; then
    rm -rf "$FINTEGRATE_RUN_DIR"
fi
stack up >/dev/null
BASE=$FINTEGRATE_BASE_URL
ADMIN=$FINTEGRATE_ADMIN_API_KEY
RUN=$FINTEGRATE_RUN_DIR
WORK=$RUN/bench
mkdir -p "$WORK"
PSQL=(psql "$FINTEGRATE_DB_URL" -qAtX -v ON_ERROR_STOP=1)
APP_LOG=$RUN/logs/app.log
MGMT="http://127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT/api"

# ---- helpers ---------------------------------------------------------------
api() { # api METHOD PATH KEY [BODY]
    curl -s -m 30 -X "$1" -H "X-API-Key: $3" -H 'Content-Type: application/json' \
        ${4:+-d "$4"} "$BASE$2"
}
json_field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
rate() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", (s > 0 ? n / s : 0) }'; }

# make_consumer NAME — creates a consumer and its key; prints "id key".
make_consumer() {
    local id key
    id=$(api POST /consumer/data "$ADMIN" "{\"consumer_name\":\"$1\"}" | json_field consumer_id)
    [ -n "$id" ] || die "cannot create consumer $1"
    key=$(api POST /consumer/api-key "$ADMIN" "{\"consumer_id\":\"$id\"}" | json_field api_key)
    [ -n "$key" ] || die "cannot issue a key for consumer $1"
    echo "$id $key"
}

# queue_depth QUEUE — its exact message count (rabbitmqctl, not the
# management API's sample).
queue_depth() {
    "$RUN/rabbitmqctl" list_queues -q --no-table-headers name messages 2>/dev/null |
        awk -v q="$1" '$1 == q { print $2; found = 1 } END { if (!found) print "?" }'
}

purge_queue() {
    curl -s -o /dev/null -u guest:guest -X DELETE "$MGMT/queues/%2f/$1/contents"
}

# The workers keep the binary's name (FINTEGRATE_FCGI_BIN may run another
# build under another name); the relay is fi-relay.
FCGI_COMM=$(basename "${FINTEGRATE_FCGI_BIN:-fintegrate-fcgi}" | cut -c1-15)
app_workers() { # the FastCGI workers (not the relay, not the master)
    local master
    master=$(cat "$RUN/fcgi.pid" 2>/dev/null) || return 0
    pgrep -P "$master" -x "$FCGI_COMM" || true
}

# workers_rss — "max/min" VmRSS of the workers in MiB.
workers_rss() {
    local p v max=0 min=0
    for p in $(app_workers); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        [ "${v:-0}" -gt "$max" ] && max=$v
        { [ "$min" = 0 ] || [ "${v:-0}" -lt "$min" ]; } && min=$v
    done
    awk -v a="$max" 'BEGIN { printf "%.1f", a / 1024 }'
}

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

# ---- CPU used per component (clock ticks of each process tree) -------------
tree() { # tree PID — PID and its children
    [ -n "${1:-}" ] || return 0
    echo "$1"
    pgrep -P "$1" || true
}
component_pids() { # component_pids NAME
    case $1 in
    pg) tree "$(head -n1 "$RUN/pg/data/postmaster.pid" 2>/dev/null)" ;;
    mq) tree "$(cat "$RUN/rabbitmq/beam.pid" 2>/dev/null)" ;;
    nginx) tree "$(cat "$RUN/nginx.pid" 2>/dev/null)" ;;
    app) tree "$(cat "$RUN/fcgi.pid" 2>/dev/null)" ;;
    esac
}
ticks() { # ticks ROOT CHILD... — the CPU of a process tree: the root's
    # utime + stime + the children it reaped (cutime + cstime: PostgreSQL's
    # backends that ended, pgbench's) + the live children's utime + stime
    local root=${1:-} p sum=0 t
    [ -n "$root" ] || { echo 0; return; }
    sum=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$root/stat" 2>/dev/null || echo 0)
    shift
    for p in "$@"; do
        t=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}
machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
# cpu_snapshot — "pg mq nginx app machine" ticks now.
cpu_snapshot() {
    local c out=""
    for c in pg mq nginx app; do
        # shellcheck disable=SC2046
        out+="$(ticks $(component_pids "$c")) "
    done
    echo "$out$(machine_busy)"
}
# cpu_report BEFORE AFTER SECONDS REQUESTS — cores used per component, and
# milliseconds of CPU per request.
cpu_report() {
    awk -v a="$1" -v b="$2" -v s="$3" -v n="$4" -v hz="$(getconf CLK_TCK)" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        split("pg mq nginx app", name, " ")
        line = "  CPU, cores (ms per request):"
        known = 0
        for (i = 1; i <= 4; i++) {
            d = (y[i] - x[i]) / hz; known += d
            line = line sprintf(" %s %.2f (%.2f)", name[i], d / s, n > 0 ? 1000 * d / n : 0)
        }
        tot = (y[5] - x[5]) / hz
        line = line sprintf(" | rest of the machine (wrk, pgbench, other stacks) %.2f; machine %.2f of 2",
                            (tot - known) / s, tot / s)
        print line
    }'
}

# ---- 0. set-up ---------------------------------------------------------------
read -r BENCH_CID BENCH_KEY <<<"$(make_consumer "bench")"
[ -n "${BENCH_KEY:-}" ] || die "no consumer to bench with"
BENCH_QUEUE=customer_notification_bench
echo "bench: preloading 2 x $CUSTOMERS customers with 3 tags each"
"${PSQL[@]}" <<SQL
INSERT INTO customers (customer_id, consumer_id, name, status)
SELECT (p || lpad(n::text, 12, '0'))::uuid, '$BENCH_CID', 'Preloaded ' || n, 'ACTIVE'
  FROM generate_series(1, $CUSTOMERS) n, (VALUES ('$SVC_PREFIX'), ('$SQL_PREFIX')) v(p);
INSERT INTO customer_tags (customer_id, tag_key, tag_value)
SELECT c.customer_id, k, 'value of ' || k
  FROM customers c, (VALUES ('segment'), ('region'), ('tier')) t(k)
 WHERE c.consumer_id = '$BENCH_CID';
INSERT INTO customer_events (event_id, customer_id, consumer_id, event_type,
    source_service, sequence, payload, request_id, publish_status,
    published_at, publish_try_count)
SELECT gen_random_uuid(), customer_id, consumer_id, 'customer_creation',
       'bench preload', 1,
       json_build_object('customer_id', customer_id, 'name', name), 'bench',
       'published', now(), 1
  FROM customers WHERE consumer_id = '$BENCH_CID';
ANALYZE customers, customer_tags, customer_events;
SQL

export FINTEGRATE_BENCH_LUA_DIR=$BENCH_DIR FINTEGRATE_BENCH_KEY=$BENCH_KEY \
       FINTEGRATE_BENCH_CUSTOMERS=$CUSTOMERS FINTEGRATE_BENCH_ID_PREFIX=$SVC_PREFIX \
       FINTEGRATE_BENCH_THREADS=$THREADS
PAYLOAD="{\"schema_version\":\"1.0\",\"event_id\":\"5e789704-3704-44aa-a0b6-b2c5a2762f71\",\"event_type\":\"customer_creation\",\"sequence\":1,\"consumer_id\":\"$BENCH_CID\",\"customer_id\":\"39e1fdb9-419b-4b55-b3f4-1e958c221aa0\",\"data\":{\"customer_id\":\"39e1fdb9-419b-4b55-b3f4-1e958c221aa0\",\"name\":\"Bench Customer\",\"status\":\"ACTIVE\"},\"metadata\":{\"created_at\":\"2025-10-23T21:01:14.497319Z\",\"source_service\":\"POST: /customer/data\",\"request_id\":\"0123456789abcdef0123456789abcdef\"}}"

# outbox_counts — "written published pending failed" of the service's events
# of the bench consumer (not pgbench's, not the preload's).
outbox_counts() {
    "${PSQL[@]}" -F ' ' -c "SELECT count(*), count(*) FILTER (WHERE publish_status = 'published'),
        count(*) FILTER (WHERE publish_status = 'pending'),
        count(*) FILTER (WHERE publish_status = 'failed')
      FROM customer_events WHERE consumer_id = '$BENCH_CID'
       AND source_service NOT IN ('pgbench', 'bench preload')"
}

# ---- 1. saturating runs and their ceilings ----------------------------------
declare -a SUMMARY=()
# wrk_fields — the BENCH line of scripts/bench/common.lua as "requests
# duration_us non2xx errors p50_us p99_us".
wrk_fields() {
    awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
           print v["requests"], v["duration_us"], v["non2xx"], v["errors"], v["p50_us"], v["p99_us"] }'
}
ms_of_us() { awk -v u="$1" 'BEGIN { printf "%.1f ms", u / 1000 }'; }

# ceiling SQLFILE — pgbench's transactions/s of the bare SQL.
ceiling() {
    local out tps c0 c1
    c0=$(cpu_snapshot)
    out=$(pgbench -n -M prepared -c "$CONNS" -j "$THREADS" -T "$SECONDS_EACH" \
              -D cid="$BENCH_CID" -D payload="$PAYLOAD" -D ncust="$CUSTOMERS" \
              -D prefix="$2" -f "$BENCH_DIR/$1" "$FINTEGRATE_DB_URL" 2>&1) ||
        { echo "$out" >&2; die "pgbench $1 failed"; }
    c1=$(cpu_snapshot)
    tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -n1)
    echo "  ceiling: pgbench $1 -c$CONNS -j$THREADS -T$SECONDS_EACH: $(rate "$tps" 1) tx/s," \
         "$(grep -m1 '^latency average' <<<"$out" | sed 's/^latency average = /avg latency /')" >&2
    cpu_report "$c0" "$c1" "$SECONDS_EACH" "$(awk -v t="$tps" -v s="$SECONDS_EACH" 'BEGIN { printf "%d", t * s }')" >&2
    echo "$tps"
}

# saturate TITLE LUA SQLFILE PREFIX — one service run and its ceiling.
saturate() {
    local title=$1 lua=$2 sql=$3 prefix=$4
    local b_counts a_counts b_q a_q b_rss a_rss c0 c1 out line rps tps t0 waited=0
    echo
    echo "== $title  (wrk -t$THREADS -c$CONNS -d${SECONDS_EACH}s, key of consumer bench)"
    b_counts=$(outbox_counts)
    b_q=$(queue_depth "$BENCH_QUEUE")
    b_rss=$(workers_rss)
    c0=$(cpu_snapshot)
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_EACH}s" --latency \
              -s "$BENCH_DIR/$lua" "$BASE") || die "wrk failed: $out"
    c1=$(cpu_snapshot)
    line=$(grep '^BENCH ' <<<"$out") || die "wrk printed no summary: $out"
    local requests duration non2xx errors p50 p99
    read -r requests duration non2xx errors p50 p99 <<<"$(wrk_fields <<<"$line")"
    rps=$(awk -v n="$requests" -v d="$duration" 'BEGIN { printf "%.0f", n / (d / 1e6) }')
    # every event is marked once its confirm came: wait (bounded) for the
    # service's own marks, never for the relay
    t0=$(now)
    while [ "$(outbox_counts | awk '{ print $3 }')" -gt "$(awk '{ print $3 }' <<<"$b_counts")" ] &&
          [ "$waited" -lt 50 ]; do
        sleep 0.1; waited=$((waited + 1))
    done
    a_counts=$(outbox_counts)
    a_rss=$(workers_rss)
    # a quorum queue's message count lags its confirms by up to a few
    # seconds (it is the leader's periodic figure): wait for it to settle
    local expect tries=0
    expect=$(( ${b_q/\?/0} + $(awk -v a="$b_counts" -v b="$a_counts" 'BEGIN {
        split(a, x, " "); split(b, y, " "); print y[2] - x[2] }') ))
    while :; do
        a_q=$(queue_depth "$BENCH_QUEUE")
        [ "$a_q" = "$expect" ] || [ "$tries" -ge 10 ] && break
        sleep 1; tries=$((tries + 1))
    done
    echo "  service: $rps r/s, p50 $(ms_of_us "$p50"), p99 $(ms_of_us "$p99"), $requests requests," \
         "non-2xx $non2xx, socket errors $errors"
    cpu_report "$c0" "$c1" "$SECONDS_EACH" "$requests"
    local ev pub pend fail dq verdict
    read -r ev pub pend fail <<<"$(awk -v a="$b_counts" -v b="$a_counts" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        print y[1] - x[1], y[2] - x[2], y[3] - x[3], y[4] - x[4] }')"
    dq=$(( ${a_q/\?/0} - ${b_q/\?/0} ))
    if [ "$ev" = "$pub" ] && [ "$pend" = 0 ] && [ "$fail" = 0 ] && [ "$dq" = "$ev" ]; then
        verdict="all $ev published"
    else
        verdict="NOT all published: $ev written, $pub published, $pend pending, $fail failed, queue +$dq"
    fi
    echo "  events: $ev written, $pub published, $pend pending, $fail failed" \
         "(outbox before: $b_counts; after: $a_counts, marks waited $(secs "$t0" "$(now)") s);" \
         "queue $BENCH_QUEUE $b_q -> $a_q (+$dq)"
    echo "  worker RSS (largest): $b_rss MiB -> $a_rss MiB"
    purge_queue "$BENCH_QUEUE"
    tps=$(ceiling "$sql" "$prefix")
    SUMMARY+=("$(printf '| %s | %s | %s | %s | %s | %s | %s | %s → %s MiB |' \
        "$title" "$rps" "$(ms_of_us "$p50")" "$(ms_of_us "$p99")" "$(rate "$tps" 1)" \
        "$(awk -v a="$rps" -v b="$tps" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
        "$verdict" "$b_rss" "$a_rss")")
}

if has_part saturate; then
    saturate "POST /customer/data" post.lua post.sql "$SVC_PREFIX"
    saturate "PATCH /customer/change-status" patch.lua patch.sql "$SQL_PREFIX"
    saturate "GET /customer/data" get.lua get.sql "$SVC_PREFIX"
fi

# ---- 2. steady rate ----------------------------------------------------------
steady() {
    local name id key t0 t1 mark qname lpid spid cpid
    name="bench_steady_$(date +%s)"
    read -r id key <<<"$(make_consumer "$name")"
    [ -n "${key:-}" ] || die "no consumer for the steady run"
    qname=customer_notification_$name
    (umask 077 && printf '%s %s\n' "$name" "$key" >"$WORK/keys.txt" &&
        printf '%s' "$key" >"$WORK/steady.key")
    FINTEGRATE_AMQP_URL=$FINTEGRATE_AMQP_URL \
        "$CONSUMER_BIN" --name "$name" --api-key-file "$WORK/steady.key" \
        --base-url "$BASE" --state-dir "$WORK/consumer-state" \
        >"$WORK/consumer.out" 2>"$WORK/consumer.err" </dev/null &
    cpid=$!
    BG_PIDS+=("$cpid")
    sleep 2
    echo
    echo "== steady: $STEADY_RATE writes/s for ${STEADY_SECONDS}s (creates and status changes, key of $name)," \
         "the consumer program confirming every event"
    mark=$(wc -l <"$APP_LOG")
    t0=$(now_ms)
    # the sampler: queue depth and the publishers' connection state, every 5 s
    (
        set +e +o pipefail # a failed sample is a "?", never the sampler's end
        while :; do
            q=$(curl -s -m 2 -u guest:guest "$MGMT/queues/%2f/$qname?columns=messages,messages_unacknowledged" |
                sed -n 's/.*"messages":\([0-9]*\).*"messages_unacknowledged":\([0-9]*\).*/\1 \2/p')
            f=$(curl -s -m 2 -u guest:guest "$MGMT/connections?columns=state" |
                grep -o '"state":"[a-z]*"' | sort | uniq -c | awk '{ printf "%s%s=%s", (n++ ? "," : ""), substr($2, 10, length($2) - 10), $1 }')
            a=$(curl -s -m 2 -u guest:guest "$MGMT/nodes?columns=mem_alarm,disk_free_alarm" |
                grep -c 'alarm":true' || true)
            echo "$(now_ms) ${q:-? ?} ${f:-none} $a"
            sleep 5
        done
    ) >"$WORK/samples.txt" 2>/dev/null &
    spid=$!
    BG_PIDS+=("$spid")
    "$CHAOS_BIN" load --url "$BASE" --keys "$WORK/keys.txt" --rate "$STEADY_RATE" \
        --seconds "$STEADY_SECONDS" --connections 32 --out "$WORK/requests.txt" \
        2>"$WORK/load.err" &
    lpid=$!
    wait "$lpid" || true
    t1=$(now_ms)
    sed 's/^/  load: /' "$WORK/load.err"

    # every accepted event delivered and confirmed by the consumer program?
    local since ev left start waited=0
    since=$(date -u -d "@$((t0 / 1000 - 1))" +%FT%TZ)
    ev=$("${PSQL[@]}" -c "SELECT count(*) FROM customer_events WHERE consumer_id = '$id'")
    start=$(now)
    while :; do
        left=$("${PSQL[@]}" -c "SELECT count(*) FROM customer_events WHERE consumer_id = '$id'
                                  AND deliver_status <> 'delivered'")
        [ "$left" = 0 ] || [ "$waited" -ge 1200 ] && break
        sleep 0.1; waited=$((waited + 1))
    done
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    kill "$cpid" 2>/dev/null || true
    wait "$cpid" 2>/dev/null || true

    # One table per 5 s: the server's time per write (app.log), the client's
    # p99 (the load's request log), confirmations/s, the samples.
    local t0_sod
    t0_sod=$(awk -v t="$t0" 'BEGIN { printf "%.3f", (t / 1000) % 86400 }')
    {
        tail -n +"$((mark + 1))" "$APP_LOG" |
            awk -v t0="$t0_sod" '/ request rid=/ {
                split(substr($1, 12, 15), h, ":")
                rel = h[1] * 3600 + h[2] * 60 + h[3] - t0
                if (rel < -43200) rel += 86400
                if (rel < 0) next
                b = int(rel / 5)
                m = ""; r = ""; ms = ""
                for (i = 2; i <= NF; i++) {
                    if ($i ~ /^method=/) m = substr($i, 8)
                    else if ($i ~ /^route=/) r = substr($i, 7)
                    else if ($i ~ /^ms=/) ms = substr($i, 4)
                }
                if (r == "/events/confirm-delivery") print b, "c", ms
                else if (m == "POST" || m == "PATCH") print b, "w", ms
            }'
        awk -v t0="$t0" '!/^#/ && NF >= 6 {
                b = int(($1 - t0) / 5000); if (b < 0) next
                print b, "l", $2 - $1; if ($6 !~ /^2/) print b, "e", 1 }' "$WORK/requests.txt"
        awk -v t0="$t0" '{ b = int(($1 - t0) / 5000); if (b >= 0) print b, "s", $2, $3, $4, $5 }' "$WORK/samples.txt"
    } | sort -k1,1n -k2,2 -k3,3n | awk '
        function flush(   p50, p99, lp99) {
            if (cur < 0) return
            p50 = nw ? w[int((nw - 1) * 0.50) + 1] : 0
            p99 = nw ? w[int((nw - 1) * 0.99) + 1] : 0
            lp99 = nl ? l[int((nl - 1) * 0.99) + 1] : 0
            printf "  %4d-%-4d %9.1f %10.1f %10.1f %11d %11d %12.1f %9s %9s  %s\n",
                cur * 5, cur * 5 + 5, nw / 5, p50, p99, lp99, ne, nc / 5, sq, su, sf (sa > 0 ? " ALARM" : "")
            nw = nl = nc = ne = 0; sq = su = sf = "-"; sa = 0
        }
        BEGIN {
            cur = -1; sq = su = sf = "-"
            printf "  %-9s %9s %10s %10s %11s %11s %12s %9s %9s  %s\n", "t (s)", "writes/s",
                "server p50", "server p99", "client p99", "non-2xx", "confirms/s", "queue", "unacked", "connections"
        }
        $1 != cur { flush(); cur = $1 }
        $2 == "w" { w[++nw] = $3 }
        $2 == "l" { l[++nl] = $3 }
        $2 == "c" { nc++ }
        $2 == "e" { ne++ }
        $2 == "s" { sq = $3; su = $4; sf = $5; sa = $6 }
        END { flush() }'
    echo "  (server p50/p99: ms of a write inside the service, app.log; client p99: ms seen by the load;"
    echo "   queue/unacked: sampled by the management API; connections: the broker's connection states)"

    echo "  events: $ev written since $since; $((ev - left)) confirmed by the consumer" \
         "($left not yet, $(secs "$start" "$(now)") s after the load ended);" \
         "$("${PSQL[@]}" -c "SELECT count(*) FILTER (WHERE publish_status = 'published') || ' published, ' ||
                               count(*) FILTER (WHERE publish_try_count > 1) || ' re-driven'
                             FROM customer_events WHERE consumer_id = '$id'")"
    echo "  load: $(( (t1 - t0) / 1000 )) s; the table runs on until the consumer confirmed the last event"
}
has_part steady && steady

# ---- 3. the broker stopped ----------------------------------------------------
if has_part outage; then
    stack broker-stop >/dev/null
    echo
    echo "== POST /customer/data, broker stopped (breaker open after 5 failures per worker)"
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"${SECONDS_EACH}s" --latency \
              -s "$BENCH_DIR/post.lua" "$BASE") || die "wrk failed"
    line=$(grep '^BENCH ' <<<"$out")
    awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
           printf "  service: %.0f r/s, p50 %.1f ms, p99 %.1f ms, non-2xx %d\n",
               v["requests"] / (v["duration_us"] / 1e6), v["p50_us"] / 1000, v["p99_us"] / 1000, v["non2xx"] }' <<<"$line"
    "${PSQL[@]}" -c "SELECT '  outbox: ' || count(*) FILTER (WHERE publish_status = 'published') || ' published, ' ||
                            count(*) FILTER (WHERE publish_status = 'pending') || ' pending' FROM customer_events"
    stack broker-start >/dev/null
fi

# ---- 4. draining a backlog ------------------------------------------------
# make_backlog NAME — a consumer (through the API, so its queues exist) and
# $BACKLOG pending events of it, as an outage leaves them: inline try 1,
# broker unreachable (no back-off), 10 per customer.
make_backlog() {
    local name=$1 cid customers=$(((BACKLOG + 9) / 10))
    cid=$(api POST /consumer/data "$ADMIN" "{\"consumer_name\":\"$name\"}" | json_field consumer_id)
    [ -n "$cid" ] || die "cannot create consumer $name"
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
    local q
    for q in $(curl -s -u guest:guest "$MGMT/queues" | tr ',' '\n' |
               sed -n 's/^"name":"\(customer_notification_[^"]*\)"$/\1/p'); do
        purge_queue "$q"
    done
}

pending() { "${PSQL[@]}" -c "SELECT count(*) FROM customer_events WHERE publish_status = 'pending'"; }

if has_part drain && [ "$BACKLOG" -gt 0 ]; then
    echo
    echo "== drain of $BACKLOG pending events (broker stopped while they were written)"
    # what earlier parts left pending goes first (the relay), so it is not
    # timed below
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
    echo "  relay : $BACKLOG events in ${s} s = $(rate "$BACKLOG" "$s") events/s" \
         "(from broker-start; includes up to one relay interval), relay peak RSS $(peak_rss_kb fi-relay) kB"

    # (b) one resend, the relay off
    FINTEGRATE_RELAY_INTERVAL_MS=0 stack app-stop >/dev/null
    FINTEGRATE_RELAY_INTERVAL_MS=0 stack app-start >/dev/null
    purge_queues
    stack broker-stop >/dev/null
    make_backlog "bench_drain_resend_$(date +%s)"
    stack broker-start >/dev/null
    t0=$(now)
    summary=$(api POST /events/resend "$ADMIN" '{"period_in_days":1}' |
              sed -n 's/.*"summary":\({[^}]*}\).*/\1/p')
    t1=$(now)
    s=$(secs "$t0" "$t1")
    echo "  resend: one call in ${s} s = $(rate "$BACKLOG" "$s") events/s, summary $summary," \
         "peak worker RSS $(peak_rss_kb "$FCGI_COMM") kB"
fi

# ---- the table ---------------------------------------------------------------
if [ "${#SUMMARY[@]}" -gt 0 ]; then
    echo
    echo "== $(date -u +%F) make bench: $(nproc) cores, ${FINTEGRATE_WORKERS:-?} workers," \
         "wrk -t$THREADS -c$CONNS -d${SECONDS_EACH}s, ceiling pgbench -c$CONNS -j$THREADS -M prepared;" \
         "load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| test | service r/s | p50 | p99 | ceiling (pgbench, bare SQL) | ratio | events | worker RSS (largest) |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${SUMMARY[@]}"
fi
