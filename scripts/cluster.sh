#!/usr/bin/env bash
# scripts/cluster.sh — the distributed Fintegrate stack on one machine, as
# plain processes (no Docker): what docs/OPERATIONS.md section 8 recommends
# for production, small enough to start on a laptop.
#
#   rabbit1..3  a 3-node RabbitMQ cluster (one Erlang cookie, one epmd,
#               node names fintegrate-<amqp port>@localhost); the
#               consumers' queues are quorum queues replicated on all three
#   pg1, pg2    a PostgreSQL primary and a streaming standby made with
#               pg_basebackup and a replication slot (which one is the
#               primary is kept in $DIR/pg-primary: a failover swaps them)
#   app1, app2  two app nodes, each its own FastCGI pool (master, workers,
#               relay) and nginx, sharing the database (libpq multi-host
#               URL, target_session_attrs=read-write) and the broker cluster
#               (FINTEGRATE_AMQP_URL lists the three nodes); each nginx
#               passes to the other node's pool while its own refuses
#
#   cluster.sh up | down | status | env
#   cluster.sh part NAME CMD      scripts/stack.sh CMD for one part, e.g.
#                                 `part rabbit2 broker-stop`, `part app1 app-reload`
#   cluster.sh pg-failover        kill -9 the primary, promote the standby
#   cluster.sh pg-rejoin          rebuild the old primary as the new standby
#   cluster.sh queue-leader NAME  the broker part leading quorum queue NAME
#
# Every part is a scripts/stack.sh run directory under $DIR (default
# <checkout>/.run-cluster), started with that part's ports; stack.sh does the
# real work (its pitfalls: docs/OPERATIONS.md §1).  Ports come from
# FINTEGRATE_CLUSTER_PORT_BASE (B, default 21000): HTTP B+81 and B+82,
# PostgreSQL B+432 and B+433, AMQP B+672..B+674, management B+675..B+677,
# Erlang distribution B+1672..B+1674, epmd B+369.  Other knobs:
# FINTEGRATE_CLUSTER_DIR, FINTEGRATE_CLUSTER_WORKERS (workers per app node,
# default 3), FINTEGRATE_ADMIN_API_KEY (default: generated once, kept in
# $DIR/admin-api-key), FINTEGRATE_PG_FAST=1 (tests), FINTEGRATE_CLUSTER_KIND
# (the run directories' marker, default cluster).
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CHECKOUT=$(cd "$SCRIPTS_DIR/.." && pwd -P)
STACK=$SCRIPTS_DIR/stack.sh

BASE=${FINTEGRATE_CLUSTER_PORT_BASE:-21000}
DIR=${FINTEGRATE_CLUSTER_DIR:-$CHECKOUT/.run-cluster}
WORKERS=${FINTEGRATE_CLUSTER_WORKERS:-3}
KIND=${FINTEGRATE_CLUSTER_KIND:-cluster}
PG_FAST=${FINTEGRATE_PG_FAST:-0}
PG_BIN=${FINTEGRATE_PG_BIN:-/usr/lib/postgresql/15/bin}
SLOT=fintegrate_standby

say() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }

if ! [[ $BASE =~ ^[0-9]{4,5}$ ]] || [ "$BASE" -lt 1024 ] || [ $((BASE + 1800)) -ge 32768 ]; then
    die "FINTEGRATE_CLUSTER_PORT_BASE must be between 1024 and 30967 (got \"$BASE\")"
fi
case $DIR in /*) ;; *) DIR=$PWD/$DIR ;; esac

HTTP_PORT=([1]=$((BASE + 81)) [2]=$((BASE + 82)))
PG_PORT=([1]=$((BASE + 432)) [2]=$((BASE + 433)))
AMQP_PORT=([1]=$((BASE + 672)) [2]=$((BASE + 673)) [3]=$((BASE + 674)))
MGMT_PORT=([1]=$((BASE + 675)) [2]=$((BASE + 676)) [3]=$((BASE + 677)))
DIST_PORT=([1]=$((BASE + 1672)) [2]=$((BASE + 1673)) [3]=$((BASE + 1674)))
EPMD_PORT=$((BASE + 369))

rabbit_node() { printf 'fintegrate-%s@localhost' "${AMQP_PORT[$1]}"; }

amqp_urls() {
    local i out=""
    for i in 1 2 3; do
        out+="${out:+,}amqp://guest:guest@127.0.0.1:${AMQP_PORT[$i]}"
    done
    printf '%s' "$out"
}

db_url() {
    printf 'postgresql://fintegrate@127.0.0.1:%s,127.0.0.1:%s/fintegrate?target_session_attrs=read-write' \
        "${PG_PORT[1]}" "${PG_PORT[2]}"
}

# part_env NAME — the environment of one part as NAME=VALUE lines.  Every
# part gets a full, distinct port set (scripts/env.sh checks them); the ports
# a part does not serve are only checked, never bound.
part_env() {
    local name=$1 i=${1: -1} http pg amqp mgmt dist
    http=${HTTP_PORT[1]} pg=${PG_PORT[1]} amqp=${AMQP_PORT[1]} mgmt=${MGMT_PORT[1]} dist=${DIST_PORT[1]}
    case $name in
        rabbit[123]) amqp=${AMQP_PORT[$i]} mgmt=${MGMT_PORT[$i]} dist=${DIST_PORT[$i]} ;;
        pg[12]) pg=${PG_PORT[$i]} ;;
        app[12]) http=${HTTP_PORT[$i]} ;;
        *) die "unknown part \"$name\" (rabbit1..3, pg1, pg2, app1, app2)" ;;
    esac
    cat <<EOF
FINTEGRATE_RUN_DIR=$DIR/$name
FINTEGRATE_STACK_KIND=$KIND
FINTEGRATE_HTTP_PORT=$http
FINTEGRATE_PG_PORT=$pg
FINTEGRATE_AMQP_PORT=$amqp
FINTEGRATE_AMQP_MGMT_PORT=$mgmt
FINTEGRATE_AMQP_DIST_PORT=$dist
FINTEGRATE_EPMD_PORT=$EPMD_PORT
FINTEGRATE_EPMD_SHARED=1
FINTEGRATE_PG_FAST=$PG_FAST
FINTEGRATE_WORKERS=$WORKERS
EOF
    case $name in
        app1) echo "FINTEGRATE_FCGI_BACKUPS=$DIR/app2/fcgi.sock" ;;
        app2) echo "FINTEGRATE_FCGI_BACKUPS=$DIR/app1/fcgi.sock" ;;
    esac
    case $name in
        app[12])
            echo "FINTEGRATE_DB_URL=$(db_url)"
            echo "FINTEGRATE_AMQP_URL=$(amqp_urls)"
            ;;
    esac
}

# part NAME CMD... — CMD with the part's environment instead of the caller's
# stack settings (other FINTEGRATE_* knobs, e.g. the relay's, pass through).
part() {
    local name=$1 line v
    shift
    local -a envs=()
    for v in HTTP_PORT PG_PORT AMQP_PORT AMQP_MGMT_PORT AMQP_DIST_PORT EPMD_PORT \
             EPMD_SHARED RUN_DIR RUN_NAME DB_URL AMQP_URL BASE_URL AMQP_NODENAME \
             WORKERS PG_FAST STACK_KIND FCGI_BACKUPS; do
        envs+=(-u "FINTEGRATE_$v")
    done
    while IFS= read -r line; do envs+=("$line"); done < <(part_env "$name")
    env "${envs[@]}" "$@" 9>&-
}

stack() { local name=$1; shift; part "$name" "$STACK" "$@"; }

# ---------------------------------------------------------------------------
# RabbitMQ
# ---------------------------------------------------------------------------
# One cookie for the three nodes, written before a node's first start
# (stack.sh keeps a cookie that is already there).
rabbit_cookie() {
    local i cookie=$DIR/erlang.cookie home
    if [ ! -s "$cookie" ]; then
        (umask 077 && head -c 15 /dev/urandom | base32 | tr -d '\n' >"$cookie")
    fi
    for i in 1 2 3; do
        home=$DIR/rabbit$i/rabbitmq/home
        mkdir -p "$home"
        chmod 0700 "$home"
        if ! cmp -s "$cookie" "$home/.erlang.cookie" 2>/dev/null; then
            rm -f "$home/.erlang.cookie"
            install -m 0400 "$cookie" "$home/.erlang.cookie"
        fi
    done
}

rabbitmqctl_of() { local i=$1; shift; "$DIR/rabbit$i/rabbitmqctl" "$@"; }

# rabbit_join I — node I joins node 1's cluster unless it is a member.
rabbit_join() {
    local i=$1 first
    first=$(rabbit_node 1)
    if rabbitmqctl_of "$i" -q cluster_status --formatter json 2>/dev/null |
            grep -q "\"$first\""; then
        return 0
    fi
    say "rabbit$i: joining $first"
    rabbitmqctl_of "$i" -q stop_app >/dev/null
    rabbitmqctl_of "$i" -q reset >/dev/null
    rabbitmqctl_of "$i" -q join_cluster "$first" >/dev/null
    rabbitmqctl_of "$i" -q start_app >/dev/null
}

# rabbits_start — the three nodes in parallel: a clustered node that was not
# the last to stop waits at boot for its peers, so they must come up together.
rabbits_start() {
    local i rc=0
    local -a jobs=()
    # The shared epmd first: three nodes starting it at once would race.
    if ! epmd -port "$EPMD_PORT" -names >/dev/null 2>&1; then
        epmd -daemon -relaxed_command_check -port "$EPMD_PORT" -address 127.0.0.1 \
            </dev/null >/dev/null 2>&1
        for i in $(seq 50); do
            epmd -port "$EPMD_PORT" -names >/dev/null 2>&1 && break
            sleep 0.1
        done
    fi
    for i in 1 2 3; do
        stack "rabbit$i" broker-start &
        jobs+=($!)
    done
    for i in "${jobs[@]}"; do wait "$i" || rc=1; done
    [ "$rc" = 0 ] || die "a RabbitMQ node failed to start (see above)"
    rabbit_join 2
    rabbit_join 3
}

rabbits_stop() {
    local i
    local -a jobs=()
    for i in 1 2 3; do
        [ -d "$DIR/rabbit$i" ] || continue
        stack "rabbit$i" broker-stop &
        jobs+=($!)
    done
    for i in "${jobs[@]}"; do wait "$i" || true; done
    epmd -port "$EPMD_PORT" -kill >/dev/null 2>&1 || true
}

# queue_leader QUEUE — rabbit1..3, the part whose node leads QUEUE.
queue_leader() {
    local q=$1 i leader
    for i in 1 2 3; do
        leader=$(curl -sf -m 5 -u guest:guest \
            "http://127.0.0.1:${MGMT_PORT[$i]}/api/queues/%2F/$q" 2>/dev/null |
            sed -n 's/.*"leader":"\([^"]*\)".*/\1/p') || true
        [ -n "$leader" ] && break
    done
    [ -n "$leader" ] || die "queue $q: no node reports its leader"
    for i in 1 2 3; do
        if [ "$leader" = "$(rabbit_node "$i")" ]; then
            echo "rabbit$i"
            return 0
        fi
    done
    die "queue $q: leader $leader is not a node of this cluster"
}

# ---------------------------------------------------------------------------
# PostgreSQL: primary and streaming standby
# ---------------------------------------------------------------------------
pg_primary() {
    local p=pg1
    [ -r "$DIR/pg-primary" ] && read -r p <"$DIR/pg-primary"
    case $p in pg1|pg2) ;; *) p=pg1 ;; esac
    printf '%s' "$p"
}
pg_standby() { [ "$(pg_primary)" = pg1 ] && echo pg2 || echo pg1; }
pg_data() { printf '%s/%s/pg/data' "$DIR" "$1"; }
pg_port_of() { printf '%s' "${PG_PORT[${1: -1}]}"; }

pg_postmaster() {
    local pid=""
    [ -r "$(pg_data "$1")/postmaster.pid" ] && read -r pid <"$(pg_data "$1")/postmaster.pid"
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && printf '%s' "$pid"
    return 0
}

# pg_make_standby NAME — NAME's data = a base backup of the primary that
# streams from it through the replication slot (pg_basebackup -R writes
# standby.signal and primary_conninfo; -c fast: a spread checkpoint on a
# primary under load made it wait minutes).
pg_make_standby() {
    local name=$1 primary data dir slot_exists
    primary=$(pg_primary)
    data=$(pg_data "$name")
    dir=$(dirname "$data")
    say "$name: base backup of $primary (127.0.0.1:$(pg_port_of "$primary"))"
    rm -rf "$data"
    mkdir -p "$dir" "$DIR/$name/logs"
    chmod 0755 "$DIR/$name" "$dir"
    chown postgres:postgres "$dir"
    slot_exists=$(psql -X -qtA -h 127.0.0.1 -p "$(pg_port_of "$primary")" -U postgres -d postgres \
        -c "SELECT 1 FROM pg_replication_slots WHERE slot_name = '$SLOT'")
    local -a slot_args=(-S "$SLOT")
    [ "$slot_exists" = 1 ] || slot_args+=(-C)
    (cd / && runuser -u postgres -- "$PG_BIN/pg_basebackup" -h 127.0.0.1 \
        -p "$(pg_port_of "$primary")" -U postgres -D "$data" -R -X stream -c fast "${slot_args[@]}") ||
        die "$name: pg_basebackup failed"
}

pg_both_start() {
    local primary standby
    primary=$(pg_primary)
    standby=$(pg_standby)
    stack "$primary" pg-start
    if [ ! -f "$(pg_data "$standby")/standby.signal" ]; then
        pg_make_standby "$standby"
    fi
    FINTEGRATE_PG_STANDBY=1 stack "$standby" pg-start
}

# pg_failover — the primary dies (kill -9), the standby is promoted and
# becomes the primary; the app nodes find it through the multi-host URL.
pg_failover() {
    local primary standby pid
    primary=$(pg_primary)
    standby=$(pg_standby)
    [ -f "$(pg_data "$standby")/standby.signal" ] || die "$standby is not a standby"
    pid=$(pg_postmaster "$primary")
    if [ -n "$pid" ]; then
        say "$primary: kill -9 of the postmaster (pid $pid)"
        kill -KILL "$pid"
    fi
    say "$standby: promote"
    (cd / && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$(pg_data "$standby")" -w -t 60 promote) >/dev/null ||
        die "$standby: promote failed"
    echo "$standby" >"$DIR/pg-primary"
    # The killed primary's children go once they notice the postmaster died.
    sleep 1
    say "$standby is the primary now"
}

# pg_rejoin — the old primary becomes a standby of the new one.
pg_rejoin() {
    local standby pid
    standby=$(pg_standby)
    pid=$(pg_postmaster "$standby")
    if [ -n "$pid" ] && [ -f "$(pg_data "$standby")/standby.signal" ]; then
        say "$standby: already a running standby"
        return 0
    fi
    stack "$standby" pg-stop >/dev/null 2>&1 || true
    pg_make_standby "$standby"
    FINTEGRATE_PG_STANDBY=1 stack "$standby" pg-start
}

# ---------------------------------------------------------------------------
# Whole cluster
# ---------------------------------------------------------------------------
admin_key() {
    local f=$DIR/admin-api-key
    # Given or generated, the key in use is kept in the file (mode 0600)
    # for the clients (chaos.sh) and the summary.
    if [ -n "${FINTEGRATE_ADMIN_API_KEY:-}" ]; then
        (umask 077 && printf '%s' "$FINTEGRATE_ADMIN_API_KEY" >"$f")
    elif [ ! -s "$f" ]; then
        (umask 077 && printf 'fk_%s' "$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')" >"$f")
    fi
    cat "$f"
}

cluster_up() {
    local start key pg_job rc=0 i code
    start=${EPOCHREALTIME/./}
    mkdir -p "$DIR"
    chmod 0755 "$DIR"
    [ -x "$CHECKOUT/bin/fintegrate-fcgi" ] || die "bin/fintegrate-fcgi is missing (make build)"
    key=$(admin_key)
    rabbit_cookie
    # The primary's pg-start installs the admin key (setup-admin.sh).
    (FINTEGRATE_ADMIN_API_KEY=$key pg_both_start) &
    pg_job=$!
    rabbits_start || rc=1
    wait "$pg_job" || rc=1
    [ "$rc" = 0 ] || die "up: a part failed to start (see above); 'scripts/cluster.sh down' stops the rest"
    for i in 1 2; do
        stack "app$i" app-start
        stack "app$i" nginx-start
    done
    for i in 1 2; do
        code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:${HTTP_PORT[$i]}/health") || true
        [ "$code" = 200 ] || say "warning: app$i GET /health answers $code"
    done
    say "up in $(( (${EPOCHREALTIME/./} - start) / 1000000 )) s"
    cat <<EOF

Fintegrate cluster is up ($DIR).
  app nodes        http://127.0.0.1:${HTTP_PORT[1]}  http://127.0.0.1:${HTTP_PORT[2]}
  admin API key    kept in $DIR/admin-api-key (mode 0600)
  RabbitMQ UI      http://127.0.0.1:${MGMT_PORT[1]}  (guest / guest; nodes $(rabbit_node 1) $(rabbit_node 2) $(rabbit_node 3))
  PostgreSQL       psql "$(db_url)"   (primary $(pg_primary), standby $(pg_standby))
  stop             make cluster-stop  (or scripts/cluster.sh down)
EOF
}

cluster_down() {
    local i name
    for i in 1 2; do
        [ -d "$DIR/app$i" ] || continue
        stack "app$i" nginx-stop || true
        stack "app$i" app-stop || true
    done
    rabbits_stop &
    for name in pg1 pg2; do
        [ -d "$DIR/$name" ] && { stack "$name" pg-stop || true; }
    done
    wait
    say "cluster stopped (data kept in $DIR)"
}

cluster_status() {
    local name line ok=0
    echo "Fintegrate cluster in $DIR (PostgreSQL primary: $(pg_primary))"
    for name in rabbit1 rabbit2 rabbit3 pg1 pg2 app1 app2; do
        [ -d "$DIR/$name" ] || { printf '  %-8s absent\n' "$name"; ok=1; continue; }
        case $name in
            rabbit*) line=$(stack "$name" status 2>/dev/null | grep ' rabbitmq ') || true ;;
            pg*) line=$(stack "$name" status 2>/dev/null | grep ' postgres ') || true ;;
            app*) line=$(stack "$name" status 2>/dev/null | grep -e ' app ' -e ' nginx ' | tr -s ' ' | tr '\n' ';') || true ;;
        esac
        printf '  %-8s %s\n' "$name" "$line"
        case $line in *stopped*|'') ok=1 ;; esac
    done
    return "$ok"
}

# env — the settings a client needs, as shell assignments.
cluster_env() {
    cat <<EOF
FINTEGRATE_CLUSTER_DIR=$DIR
FINTEGRATE_CLUSTER_URLS="http://127.0.0.1:${HTTP_PORT[1]} http://127.0.0.1:${HTTP_PORT[2]}"
FINTEGRATE_CLUSTER_DB_URL="$(db_url)"
FINTEGRATE_CLUSTER_AMQP_URL="$(amqp_urls)"
FINTEGRATE_CLUSTER_MGMT_PORTS="${MGMT_PORT[1]} ${MGMT_PORT[2]} ${MGMT_PORT[3]}"
FINTEGRATE_CLUSTER_PG_PRIMARY_PORT=$(pg_port_of "$(pg_primary)")
EOF
}

usage() {
    echo "usage: $0 {up|down|status|env|pg-failover|pg-rejoin|queue-leader QUEUE|part NAME CMD...}" >&2
    exit 2
}

main() {
    [ $# -ge 1 ] || usage
    [ "$(id -u)" -eq 0 ] || die "run as root (as scripts/stack.sh)"
    case $1 in
        up|down|pg-failover|pg-rejoin)
            mkdir -p "$DIR"
            exec 9>"$DIR/.cluster.lock"
            flock -w 600 9 || die "another cluster.sh holds $DIR/.cluster.lock"
            ;;
    esac
    case $1 in
        up) cluster_up ;;
        down)
            if [ ! -d "$DIR" ]; then say "nothing to stop ($DIR does not exist)"; return 0; fi
            cluster_down ;;
        status) cluster_status ;;
        env) cluster_env ;;
        pg-failover) pg_failover ;;
        pg-rejoin) pg_rejoin ;;
        queue-leader) [ $# -eq 2 ] || usage; queue_leader "$2" ;;
        part) [ $# -ge 3 ] || usage; shift; stack "$@" ;;
        *) usage ;;
    esac
}

main "$@"
