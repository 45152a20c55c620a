#!/usr/bin/env bash
# scripts/chaos.sh — the fault-injection run (`make chaos`; `make test` runs
# `chaos.sh --short`).  On a fresh cluster (scripts/cluster.sh: two app
# nodes, a 3-node RabbitMQ cluster, a PostgreSQL primary and standby) it
#   1. creates FINTEGRATE_CHAOS_CONSUMERS consumers and their keys, and runs
#      one fintegrate-consumer per consumer (the bank side), each told every
#      broker node;
#   2. drives a steady write load through both app nodes (creates and status
#      changes, bin/fintegrate-chaos load), FINTEGRATE_CHAOS_RATE requests/s;
#   3. injects the faults one after another, each in its own time window
#      (written to windows.txt: name, start, end, database window or not, how
#      many processes were killed; each kill's moment to kills.txt);
#   4. after the load, waits until the consumers processed every accepted
#      event (no resend is called: the relay re-drives) and prints
#      fintegrate-chaos report (a table per fault) and verify (accepted,
#      processed, lost, processed twice, order violations, drain time).
# Exit status non-zero when anything was lost, processed twice or out of
# order, or when a request outside the database windows got a 5xx or no
# answer without having been in flight on an app node when one of its
# processes was killed (kills.txt).
#
#   chaos.sh [--short]
#
# Knobs: FINTEGRATE_CHAOS_RATE (default 150), FINTEGRATE_CHAOS_CONSUMERS (3),
# FINTEGRATE_CHAOS_WINDOW (seconds per fault, default 20; --short: 12),
# FINTEGRATE_CHAOS_RETRY (1, the default: every write carries an
# Idempotency-Key and is retried with it after a 502/503/504/no answer, and
# verify counts customers created twice and writes that never took effect;
# 0: no key, no retry), FINTEGRATE_CHAOS_KEEP=1
# (leave the cluster running), FINTEGRATE_CHAOS_DRAIN (seconds allowed for
# the consumers to catch up, default 240), and cluster.sh's
# FINTEGRATE_CLUSTER_* (port base, folder, workers per node).
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CHECKOUT=$(cd "$SCRIPTS_DIR/.." && pwd -P)
CLUSTER=$SCRIPTS_DIR/cluster.sh
CHAOS_BIN=${FINTEGRATE_CHAOS_BIN:-$CHECKOUT/bin/fintegrate-chaos}
CONSUMER_BIN=${FINTEGRATE_CONSUMER_BIN:-$CHECKOUT/bin/fintegrate-consumer}

SHORT=0
[ "${1:-}" = --short ] && SHORT=1
RATE=${FINTEGRATE_CHAOS_RATE:-150}
NCONSUMERS=${FINTEGRATE_CHAOS_CONSUMERS:-3}
if [ "$SHORT" = 1 ]; then WINDOW=${FINTEGRATE_CHAOS_WINDOW:-12}; else WINDOW=${FINTEGRATE_CHAOS_WINDOW:-20}; fi
RETRY=${FINTEGRATE_CHAOS_RETRY:-1}
DRAIN=${FINTEGRATE_CHAOS_DRAIN:-240}
WARMUP=8

say() { printf 'chaos: [%s] %s\n' "$(date -u +%T)" "$*" >&2; }
die() { printf 'chaos: error: %s\n' "$*" >&2; exit 1; }

positive() { # positive VALUE NAME
    if ! [[ $1 =~ ^[0-9]{1,6}$ ]] || [ "$1" -lt 1 ]; then
        die "$2 must be a positive integer (got \"$1\")"
    fi
}
positive "$RATE" FINTEGRATE_CHAOS_RATE
positive "$NCONSUMERS" FINTEGRATE_CHAOS_CONSUMERS
positive "$WINDOW" FINTEGRATE_CHAOS_WINDOW
positive "$DRAIN" FINTEGRATE_CHAOS_DRAIN
[ -x "$CHAOS_BIN" ] || die "$CHAOS_BIN is missing (make build)"
[ -x "$CONSUMER_BIN" ] || die "$CONSUMER_BIN is missing (make build)"

eval "$("$CLUSTER" env)"
DIR=$FINTEGRATE_CLUSTER_DIR
read -r URL1 URL2 <<<"$FINTEGRATE_CLUSTER_URLS"
OUT=$DIR/chaos
WINDOWS=$OUT/windows.txt
KILLS=$OUT/kills.txt

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# kill_app N PID [GROUP] — kill -9 a worker of app node N (or, with GROUP,
# PID's whole process group), wait until those processes are gone (their
# sockets closed; at most 2 s) and record the kill (kills.txt: the request
# log's node index, the time before the kill and after the last exit, and
# how many failures it explains: 1 for a worker, 0 = all for a node): only
# requests in flight on that node in between may fail.
kill_app() {
    local node=$1 pid=$2 before p state i alive
    local -a pids=("$pid")
    if [ "${3:-}" = group ]; then
        mapfile -t pids < <(pgrep -g "$pid")
    fi
    before=$(now_ms)
    if [ "${3:-}" = group ]; then kill -KILL -- "-$pid"; else kill -KILL "$pid"; fi
    for ((i = 0; i < 400; i++)); do
        alive=0
        for p in "${pids[@]}"; do
            state=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) || state=""
            [ -n "$state" ] && [ "$state" != Z ] && alive=1
        done
        [ "$alive" = 0 ] && break
        sleep 0.005
    done
    # a worker served one request; a whole node also had its listen queue
    printf '%s %s %s %s\n' "$((node - 1))" "$before" "$(now_ms)" \
        "$([ "${3:-}" = group ] && echo 0 || echo 1)" >>"$KILLS"
}

# ---------------------------------------------------------------------------
# Cleanup: consumers and load stopped, cluster down, always.
# ---------------------------------------------------------------------------
declare -a CONSUMER_PIDS=()
LOAD_PID=""
BLACKHOLE_PORT=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    unblackhole
    [ -n "$LOAD_PID" ] && kill "$LOAD_PID" 2>/dev/null
    for p in "${CONSUMER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${FINTEGRATE_CHAOS_KEEP:-0}" = 1 ]; then
        say "FINTEGRATE_CHAOS_KEEP=1: the cluster keeps running in $DIR"
    else
        "$CLUSTER" down >/dev/null 2>&1 || "$CLUSTER" down || true
    fi
    [ "$rc" = 0 ] || say "logs: $DIR/*/logs/ and $OUT/"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------
api() { # api METHOD PATH KEY BODY → the body of the answer
    curl -s -m 30 -X "$1" -H "X-API-Key: $3" -H 'Content-Type: application/json' \
        --data-binary "$4" "$URL1$2"
}
json_field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"; }

fresh_cluster() {
    local start
    start=$(now_ms)
    "$CLUSTER" down >/dev/null 2>&1 || true
    rm -rf "$DIR"
    "$CLUSTER" up >"$DIR.up.log" 2>&1 || { tail -n 40 "$DIR.up.log" >&2; die "cluster.sh up failed"; }
    mkdir -p "$OUT/state" "$OUT/out"
    mv "$DIR.up.log" "$OUT/cluster-up.log"
    CLUSTER_UP_S=$(( ($(now_ms) - start) / 1000 ))
    say "cluster up in ${CLUSTER_UP_S}s"
}

make_consumers() {
    local admin i name id key run
    admin=$(cat "$DIR/admin-api-key")
    run=$(date +%s)
    : >"$OUT/keys.txt"
    chmod 0600 "$OUT/keys.txt"
    CONSUMER_NAMES=""
    for ((i = 1; i <= NCONSUMERS; i++)); do
        name="chaos_${run}_$i"
        id=$(api POST /consumer/data "$admin" "{\"consumer_name\":\"$name\"}" | json_field consumer_id)
        [ -n "$id" ] || die "could not create consumer $name"
        key=$(api POST /consumer/api-key "$admin" "{\"consumer_id\":\"$id\"}" | json_field api_key)
        [ -n "$key" ] || die "could not issue a key for $name"
        printf '%s %s\n' "$name" "$key" >>"$OUT/keys.txt"
        (umask 077 && printf '%s' "$key" >"$OUT/state/$name.key")
        CONSUMER_NAMES+="${CONSUMER_NAMES:+,}$name"
    done
}

start_consumer() { # start_consumer NAME INDEX
    local name=$1 i=$2 url=$URL1
    [ $((i % 2)) = 0 ] && url=$URL2
    FINTEGRATE_AMQP_URL=$FINTEGRATE_CLUSTER_AMQP_URL \
        "$CONSUMER_BIN" --name "$name" --api-key-file "$OUT/state/$name.key" \
        --base-url "$url" --state-dir "$OUT/state/$name" \
        >>"$OUT/out/$name.log" 2>>"$OUT/out/$name.err" </dev/null &
    CONSUMER_PIDS[i]=$!
}

# ---------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------
app_master() { cat "$DIR/app$1/fcgi.pid"; }
app_workers() { # the worker processes (not the relay) of app node N
    pgrep -P "$(app_master "$1")" -x fintegrate-fcgi || true
}
app_healthy() {
    local code
    code=$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$1/health") || true
    [ "$code" = 200 ]
}
wait_healthy() { # both nodes answer /health 200, at most $1 s (a check
    # that waits for its curl timeout counts too)
    local until=$(( $(now_ms) + $1 * 1000 ))
    while [ "$(now_ms)" -lt "$until" ]; do
        app_healthy "$URL1" && app_healthy "$URL2" && return 0
        sleep 0.1
    done
    say "warning: the app nodes are not healthy after $1 s"
    return 0
}

# window NAME DB KILLED CMD... — run the fault CMD (which returns once the
# fault was injected and undone), let the load run on, record the window.
window() {
    local name=$1 db=$2 killed=$3 start rest
    shift 3
    start=$(now_ms)
    say "fault: $name"
    "$@"
    wait_healthy 30
    rest=$(( WINDOW * 1000 - ($(now_ms) - start) ))
    [ "$rest" -gt 0 ] && sleep "$((rest / 1000)).$(printf '%03d' $((rest % 1000)))"
    printf '%s %s %s %s %s\n' "$name" "$start" "$(now_ms)" "$db" "$killed" >>"$WINDOWS"
}

f_kill_workers() { # three workers, spread over both nodes, 3 s apart
    local n victim
    for n in 1 2 1; do
        victim=$(app_workers "$n" | shuf -n 1)
        say "  kill -9 worker $victim of app$n"
        kill_app "$n" "$victim"
        sleep 3
    done
}
f_kill_node() {
    local m
    m=$(app_master 1)
    say "  kill -9 of app1's master $m and its process group"
    kill_app 1 "$m" group
    sleep 3
    "$CLUSTER" part app1 app-start >/dev/null
}
f_sighup() { "$CLUSTER" part app2 app-reload >/dev/null; sleep 3; }
f_broker_leader() {
    local first leader
    first=${CONSUMER_NAMES%%,*}
    leader=$("$CLUSTER" queue-leader "customer_notification_$first")
    say "  stopping $leader (leads customer_notification_$first)"
    "$CLUSTER" part "$leader" broker-stop >/dev/null
    sleep 8
    "$CLUSTER" part "$leader" broker-start >/dev/null
}
f_broker_all() {
    # The three together: a clustered node waits at boot for its peers.
    # (Wait for these jobs only: the consumers and the load are jobs too.)
    local i
    local -a pids=()
    for i in 1 2 3; do "$CLUSTER" part "rabbit$i" broker-stop >/dev/null & pids+=($!); done
    for i in "${pids[@]}"; do wait "$i" || true; done
    sleep 15
    pids=()
    for i in 1 2 3; do "$CLUSTER" part "rabbit$i" broker-start >/dev/null & pids+=($!); done
    for i in "${pids[@]}"; do wait "$i" || true; done
}
f_pg_restart() {
    local p
    p=$(cat "$DIR/pg-primary" 2>/dev/null || echo pg1)
    "$CLUSTER" part "$p" pg-stop >/dev/null
    sleep 2
    "$CLUSTER" part "$p" pg-start >/dev/null
}
f_pg_failover() { "$CLUSTER" pg-failover; }
f_blackhole() {
    local port
    # The primary of the moment (a failover may have moved it).
    port=$(eval "$("$CLUSTER" env)"; echo "$FINTEGRATE_CLUSTER_PG_PRIMARY_PORT")
    say "  dropping every packet to and from 127.0.0.1:$port for 10 s"
    # Reached only when iptables works here (checked before the load).
    BLACKHOLE_PORT=$port
    iptables -I INPUT -p tcp --dport "$port" -j DROP
    iptables -I INPUT -p tcp --sport "$port" -j DROP
    sleep 10
    unblackhole
}
unblackhole() {
    [ -n "$BLACKHOLE_PORT" ] || return 0
    iptables -D INPUT -p tcp --dport "$BLACKHOLE_PORT" -j DROP 2>/dev/null || true
    iptables -D INPUT -p tcp --sport "$BLACKHOLE_PORT" -j DROP 2>/dev/null || true
    BLACKHOLE_PORT=""
}
can_blackhole() {
    command -v iptables >/dev/null 2>&1 && iptables -L INPUT >/dev/null 2>&1
}

# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------
main() {
    local -a faults
    local i name rc=0 load_secs
    fresh_cluster
    make_consumers
    i=0
    for name in ${CONSUMER_NAMES//,/ }; do
        i=$((i + 1))
        start_consumer "$name" "$i"
    done
    : >"$WINDOWS"
    : >"$KILLS"
    if [ "$SHORT" = 1 ]; then
        faults=("kill-worker 0 1 f_kill_one_worker" "sighup-roll 0 0 f_sighup"
                "broker-leader-stop 0 0 f_broker_leader" "pg-primary-restart 1 0 f_pg_restart")
    else
        faults=("kill-3-workers 0 3 f_kill_workers"
                "kill-app-node 0 $(( ${FINTEGRATE_CLUSTER_WORKERS:-3} + 1 )) f_kill_node"
                "sighup-roll 0 0 f_sighup"
                "broker-leader-stop 0 0 f_broker_leader"
                "broker-cluster-down-15s 0 0 f_broker_all"
                "pg-primary-restart 1 0 f_pg_restart"
                "pg-failover 1 0 f_pg_failover")
        if can_blackhole; then
            faults+=("pg-blackhole-10s 1 0 f_blackhole")
        else
            say "note: no black-holed database window: iptables is missing or not permitted on this machine"
        fi
    fi
    load_secs=$(( WARMUP + ${#faults[@]} * (WINDOW + 10) + 10 ))
    local -a load_args=(load --url "$URL1" --url "$URL2" --keys "$OUT/keys.txt"
                        --rate "$RATE" --seconds "$load_secs" --out "$OUT/requests.txt")
    [ "$RETRY" = 1 ] && load_args+=(--retry)
    say "load: $RATE requests/s for up to ${load_secs}s through $URL1 and $URL2, $NCONSUMERS consumers"
    "$CHAOS_BIN" "${load_args[@]}" 2>"$OUT/load.err" &
    LOAD_PID=$!
    local since
    since=$(date -u +%FT%T.%3NZ)
    sleep "$WARMUP"
    for f in "${faults[@]}"; do
        # shellcheck disable=SC2086
        window $f
    done
    say "faults done; the load runs out"
    kill -TERM "$LOAD_PID" 2>/dev/null || true
    wait "$LOAD_PID" || true
    LOAD_PID=""
    cat "$OUT/load.err" >&2 || true
    if [ "$(cat "$DIR/pg-primary" 2>/dev/null)" = pg2 ]; then
        "$CLUSTER" pg-rejoin >/dev/null 2>&1 || say "warning: pg-rejoin failed"
    fi
    echo
    echo "=== requests per fault window (bin/fintegrate-chaos report)"
    "$CHAOS_BIN" report --requests "$OUT/requests.txt" --windows "$WINDOWS" \
        --kills "$KILLS" || rc=1
    echo
    echo "=== events (bin/fintegrate-chaos verify)"
    local -a outs=()
    for name in ${CONSUMER_NAMES//,/ }; do outs+=(--consumer-out "$OUT/out/$name.log"); done
    "$CHAOS_BIN" verify --db "$FINTEGRATE_CLUSTER_DB_URL" "${outs[@]}" \
        --consumers "$CONSUMER_NAMES" --since "$since" --wait "$DRAIN" \
        --requests "$OUT/requests.txt" --windows "$WINDOWS" || rc=1
    echo
    echo "cluster start-up: ${CLUSTER_UP_S}s; details in $OUT/"
    if [ "$rc" = 0 ]; then say "PASS"; else say "FAIL"; fi
    return "$rc"
}

f_kill_one_worker() {
    local victim
    victim=$(app_workers 1 | shuf -n 1)
    say "  kill -9 worker $victim of app1"
    kill_app 1 "$victim"
}

main
