#!/usr/bin/env bash
# scripts/stack.sh — start, stop and inspect a Fintegrate stack made of plain
# processes (no systemd, no Docker): PostgreSQL 15, RabbitMQ 3.10 with the
# management plugin (and its own epmd), the FastCGI app under spawn-fcgi, and
# nginx.  Everything listens on 127.0.0.1 and keeps its data, logs, sockets and
# pid files under $FINTEGRATE_RUN_DIR (see scripts/env.sh for the settings).
#
#   stack.sh up | down | status
#   stack.sh pg-start | pg-stop | broker-start | broker-stop
#   stack.sh app-start | app-stop | app-reload | nginx-start | nginx-stop
#
# `up` is idempotent (running services are left alone) and starts PostgreSQL
# and RabbitMQ in parallel.  Data survives down/up.  Every service is waited for
# until ready (or a clear error with the tail of its log), and stopped by its
# PID (zombie-aware, TERM then KILL after a timeout).  Commands that change the
# stack hold a lock on the run directory, so two of them never interleave.
# The numbered pitfalls of docs/OPERATIONS.md §1 are cited as "pitfall N".
# Knobs for scripts/cluster.sh, which runs several stacks side by side:
# FINTEGRATE_EPMD_SHARED=1 (broker-stop leaves the epmd the nodes share),
# FINTEGRATE_PG_STANDBY=1 (pg-start of a streaming standby: no bootstrap,
# migrations or admin key), FINTEGRATE_FCGI_BACKUPS (other nodes' FastCGI
# sockets, nginx's backup servers).
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/env.sh
. "$SCRIPTS_DIR/env.sh"

RUN=$FINTEGRATE_RUN_DIR
LOGS=$RUN/logs
PG_DIR=$RUN/pg
PG_DATA=$PG_DIR/data
PG_LOG=$LOGS/postgresql.log
RB_DIR=$RUN/rabbitmq
RB_LOGS=$LOGS/rabbitmq
RB_PID=$RB_DIR/beam.pid
APP_SOCK=$RUN/fcgi.sock
APP_PID=$RUN/fcgi.pid
APP_LOG=$LOGS/app.log
APP_BIN=$RUN/bin/$(basename "$FINTEGRATE_FCGI_BIN")
NGINX_CONF=$RUN/nginx.conf
NGINX_PID=$RUN/nginx.pid
NGINX_ERR=$LOGS/nginx-error.log
ADMIN_KEY_FILE=$RUN/admin-api-key
MARKER=$RUN/.fintegrate-run-dir

: "${FINTEGRATE_START_TIMEOUT:=60}"       # seconds to wait for a service
: "${FINTEGRATE_STOP_TIMEOUT:=30}"        # seconds before KILL

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
say() { printf 'stack: %s\n' "$*" >&2; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

# pid_alive PID — the process exists and is not a zombie (pitfall 15).
pid_alive() {
    local pid=${1:-} line state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    line=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    state=${line##*) }
    state=${state:0:1}
    [ "$state" != Z ] && [ "$state" != X ]
}

# pid_is PID WORD — alive and its command line contains WORD.  Each service's
# WORD is a path inside this run directory, so a stale pid file naming a
# recycled PID (or another stack's server) is never taken for ours.
pid_is() {
    local pid=${1:-} word=$2 cmd
    pid_alive "$pid" || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$word"* ]]
}

# read_pid FILE — the first line of FILE if it is a number, else nothing.
read_pid() {
    local pid=""
    [ -r "$1" ] && { read -r pid <"$1" || true; }
    [[ $pid =~ ^[0-9]+$ ]] && printf '%s' "$pid"
    return 0
}

# stop_pid NAME PID SIGNAL... — send each SIGNAL in turn, waiting up to
# FINTEGRATE_STOP_TIMEOUT seconds after each for the process to go (a zombie
# counts as gone: pitfall 15), then KILL.
stop_pid() {
    local name=$1 pid=$2 sig i limit
    shift 2
    limit=$((FINTEGRATE_STOP_TIMEOUT * 10))
    for sig in "$@" KILL; do
        pid_alive "$pid" || return 0
        [ "$sig" = "$1" ] || say "$name (pid $pid) still running: sending $sig"
        kill "-$sig" "$pid" 2>/dev/null || true
        for ((i = 0; i < limit; i++)); do
            pid_alive "$pid" || return 0
            sleep 0.1
        done
    done
    say "$name (pid $pid) did not die"
    return 1
}

# port_busy PORT — something accepts connections on 127.0.0.1:PORT.
port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# need_free_port NAME PORT VAR — fail early, naming the variable, instead of
# waiting for a server that cannot bind.
need_free_port() {
    if port_busy "$2"; then
        die "$1: 127.0.0.1:$2 is already in use by another process (change $3, or stop that process)"
    fi
}

# show_log_tail FILE... — the last lines of the logs that explain a failure.
show_log_tail() {
    local f
    for f in "$@"; do
        [ -s "$f" ] || continue
        printf -- '--- last lines of %s ---\n' "$f" >&2
        tail -n 25 "$f" >&2
    done
}

# wait_for NAME TIMEOUT WATCH_PID LOGS CMD... — poll CMD every 0.1 s until it
# succeeds; fail (with the log tails) on timeout or when WATCH_PID dies.
# LOGS is a space-separated list of files.
wait_for() {
    local name=$1 timeout=$2 watch=$3 logs=$4 i limit
    shift 4
    limit=$((timeout * 10))
    for ((i = 0; i < limit; i++)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if [ -n "$watch" ] && ! pid_alive "$watch"; then
            say "$name exited during start-up"
            # shellcheck disable=SC2086  # word splitting of the file list
            show_log_tail $logs
            return 1
        fi
        sleep 0.1
    done
    say "$name was not ready after ${timeout}s"
    # shellcheck disable=SC2086
    show_log_tail $logs
    return 1
}

# sed_escape VALUE — VALUE made safe as a sed replacement (delimiter |).
sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }

# fcgi_backups — FINTEGRATE_FCGI_BACKUPS (comma-separated FastCGI sockets of
# other app nodes: unix socket paths or host:port) as nginx upstream lines.
fcgi_backups() {
    local item out=""
    local -a items
    IFS=, read -r -a items <<<"${FINTEGRATE_FCGI_BACKUPS:-}"
    for item in "${items[@]}"; do
        [ -n "$item" ] || continue
        [[ $item =~ ^[A-Za-z0-9._:/-]+$ ]] ||
            die "FINTEGRATE_FCGI_BACKUPS: \"$item\" is not a socket path or host:port"
        case $item in
            /*) out+="server unix:$item max_fails=0 backup; " ;;
            *) out+="server $item max_fails=0 backup; " ;;
        esac
    done
    printf '%s' "$out"
}

# render TEMPLATE OUT — replace the @PLACEHOLDERS@ of a config template.
render() {
    local backups
    backups=$(fcgi_backups)
    sed -e "s|@RUN_DIR@|$(sed_escape "$RUN")|g" \
        -e "s|@FCGI_BACKUPS@|$(sed_escape "$backups")|g" \
        -e "s|@CHECKOUT@|$(sed_escape "$FINTEGRATE_CHECKOUT")|g" \
        -e "s|@HTTP_PORT@|$FINTEGRATE_HTTP_PORT|g" \
        -e "s|@RATE_KEY@|$FINTEGRATE_RATE_KEY|g" \
        -e "s|@BURST_KEY@|$FINTEGRATE_BURST_KEY|g" \
        -e "s|@RATE_IP@|$FINTEGRATE_RATE_IP|g" \
        -e "s|@BURST_IP@|$FINTEGRATE_BURST_IP|g" \
        "$1" >"$2.tmp"
    if grep -q '@[A-Z_]*@' "$2.tmp"; then
        local left
        left=$(grep -o '@[A-Z_]*@' "$2.tmp" | sort -u | tr '\n' ' ')
        rm -f "$2.tmp"
        die "unknown placeholder left in $2: $left"
    fi
    mv "$2.tmp" "$2"
}

# ensure_run_dir — the run directory and its logs folder, traversable by the
# postgres and www-data users.
ensure_run_dir() {
    if [ ! -d "$RUN" ]; then
        mkdir -p "$RUN"
    fi
    chmod 0755 "$RUN"
    # The marker says which checkout and which kind of stack (dev: make run,
    # test: scripts/test.sh) own this folder; test.sh wipes only its own.
    [ -e "$MARKER" ] || printf 'kind=%s\ncheckout=%s\n' "${FINTEGRATE_STACK_KIND:-dev}" \
        "$FINTEGRATE_CHECKOUT" >"$MARKER"
    mkdir -p "$LOGS"
    chmod 0755 "$LOGS"
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------
pg_pid() {
    local pid
    pid=$(read_pid "$PG_DATA/postmaster.pid")
    pid_is "$pid" "$PG_DATA" && printf '%s' "$pid"
    return 0
}

pg_as_postgres() { (cd / && runuser -u postgres -- "$@"); }

pg_ready() {
    psql -X -q -h 127.0.0.1 -p "$FINTEGRATE_PG_PORT" -U postgres -d postgres \
        -tAc 'SELECT 1' >/dev/null 2>&1
}

pg_initdb() {
    say "postgres: initdb in $PG_DATA"
    mkdir -p "$PG_DATA"
    chown postgres:postgres "$PG_DIR" "$PG_DATA"
    chmod 0755 "$PG_DIR"
    chmod 0700 "$PG_DATA"
    if ! pg_as_postgres "$FINTEGRATE_PG_BIN/initdb" -D "$PG_DATA" -N -A trust -E UTF8 \
            --locale=C.UTF-8 -U postgres >>"$PG_LOG" 2>&1; then
        show_log_tail "$PG_LOG"
        die "postgres: initdb failed"
    fi
    # Our settings live in fintegrate.conf, rewritten at every start so that a
    # changed port or FINTEGRATE_PG_FAST takes effect.
    printf "\n# Fintegrate: settings rewritten by scripts/stack.sh at every start\ninclude_if_exists = 'fintegrate.conf'\n" \
        >>"$PG_DATA/postgresql.conf"
}

pg_write_conf() {
    {
        echo "# written by scripts/stack.sh at every start — do not edit"
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $FINTEGRATE_PG_PORT"
        echo "unix_socket_directories = '$PG_DIR'"
        echo "max_connections = 200"
        echo "log_line_prefix = '%m [%p] %q%u@%d '"
        echo "log_timezone = 'UTC'"
        echo "timezone = 'UTC'"
        if [ "$FINTEGRATE_PG_FAST" = 1 ]; then
            echo "# FINTEGRATE_PG_FAST=1: test stack only — a crash may lose or corrupt data"
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        fi
    } >"$PG_DATA/fintegrate.conf"
    chown postgres:postgres "$PG_DATA/fintegrate.conf"
}

# pg_bootstrap — role `fintegrate` (login) and database `fintegrate` owned by
# it; idempotent, so it runs at every start.
pg_bootstrap() {
    psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$FINTEGRATE_PG_PORT" -U postgres -d postgres <<'SQL' >/dev/null
SELECT 'CREATE ROLE fintegrate LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fintegrate')\gexec
SELECT 'CREATE DATABASE fintegrate OWNER fintegrate'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'fintegrate')\gexec
SQL
}

pg_start() {
    local pid out
    ensure_run_dir
    pid=$(pg_pid)
    if [ -n "$pid" ]; then
        say "postgres: already running (pid $pid)"
    else
        [ -f "$PG_DATA/PG_VERSION" ] || pg_initdb
        need_free_port postgres "$FINTEGRATE_PG_PORT" FINTEGRATE_PG_PORT
        pg_write_conf
        touch "$PG_LOG"
        chown postgres:postgres "$PG_LOG"
        # pg_ctl without -w: we poll ourselves, with our own timeout and message.
        if ! out=$(pg_as_postgres "$FINTEGRATE_PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -s -W start \
                </dev/null 2>&1); then
            printf '%s\n' "$out" >&2
            show_log_tail "$PG_LOG"
            die "postgres: pg_ctl start failed"
        fi
        sleep 0.1
        wait_for postgres "$FINTEGRATE_START_TIMEOUT" "" "$PG_LOG" pg_ready ||
            die "postgres: not ready on 127.0.0.1:$FINTEGRATE_PG_PORT"
        say "postgres: ready on 127.0.0.1:$FINTEGRATE_PG_PORT (pid $(pg_pid))"
    fi
    # A streaming standby (scripts/cluster.sh) is read-only: its schema and
    # its admin key come from the primary.
    [ "${FINTEGRATE_PG_STANDBY:-0}" = 1 ] && return 0
    pg_bootstrap || die "postgres: could not create role/database fintegrate"
    "$SCRIPTS_DIR/migrate.sh"
    FINTEGRATE_ADMIN_API_KEY=$ADMIN_KEY_FROM_ENV "$SCRIPTS_DIR/setup-admin.sh"
}

pg_stop() {
    local pid
    pid=$(pg_pid)
    if [ -z "$pid" ]; then
        say "postgres: not running"
        return 0
    fi
    # SIGINT = fast shutdown (SIGTERM would wait for the workers' persistent
    # connections to end); SIGQUIT = immediate, then KILL.
    say "postgres: stopping (pid $pid)"
    stop_pid postgres "$pid" INT QUIT || true
    say "postgres: stopped"
}

# ---------------------------------------------------------------------------
# RabbitMQ (pitfalls 1-11)
# ---------------------------------------------------------------------------
RB_BIN=/usr/lib/rabbitmq/bin

# The CLI tools open distribution ports of their own at dist port + 10000
# (inside the ephemeral range): keep them below 32768.
rb_ctl_port_min() {
    if [ $((FINTEGRATE_AMQP_DIST_PORT + 110)) -lt 32768 ]; then
        echo $((FINTEGRATE_AMQP_DIST_PORT + 100))
    else
        echo $((FINTEGRATE_AMQP_DIST_PORT - 110))
    fi
}

# rb_env_lines — the environment shared by the server and every CLI call.
rb_env_lines() {
    local min
    min=$(rb_ctl_port_min)
    cat <<EOF
HOME=$RB_DIR/home
RABBITMQ_CONF_ENV_FILE=/dev/null
RABBITMQ_MNESIA_BASE=$RB_DIR/mnesia
RABBITMQ_LOG_BASE=$RB_LOGS
RABBITMQ_CONFIG_FILE=$RB_DIR/rabbitmq.conf
RABBITMQ_ADVANCED_CONFIG_FILE=$RB_DIR/advanced.config
RABBITMQ_ENABLED_PLUGINS_FILE=$RB_DIR/enabled_plugins
RABBITMQ_PID_FILE=$RB_DIR/rabbit.pid
RABBITMQ_NODENAME=$FINTEGRATE_AMQP_NODENAME
RABBITMQ_USE_LONGNAME=false
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT=$FINTEGRATE_AMQP_PORT
RABBITMQ_DIST_PORT=$FINTEGRATE_AMQP_DIST_PORT
RABBITMQ_CTL_DIST_PORT_MIN=$min
RABBITMQ_CTL_DIST_PORT_MAX=$((min + 10))
ERL_EPMD_PORT=$FINTEGRATE_EPMD_PORT
ERL_EPMD_ADDRESS=127.0.0.1
RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}
EOF
}

rb_export_env() {
    local line
    while IFS= read -r line; do
        export "${line?}"
    done < <(rb_env_lines)
}

rb_pid() {
    local pid
    pid=$(read_pid "$RB_PID")
    pid_is "$pid" "$RB_DIR/home" && printf '%s' "$pid"
    return 0
}

rb_ready() {
    curl -sf -m 2 -u guest:guest "http://127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT/api/overview" >/dev/null
}

epmd_up() { epmd -port "$FINTEGRATE_EPMD_PORT" -names >/dev/null 2>&1; }

# rb_prepare — config files, cookie and the rabbitmqctl wrapper.
rb_prepare() {
    local q
    mkdir -p "$RB_DIR/home" "$RB_DIR/mnesia" "$RB_LOGS"
    chmod 0700 "$RB_DIR/home"
    if [ ! -s "$RB_DIR/home/.erlang.cookie" ]; then
        # 15 random bytes = 24 base32 characters, no padding.
        (umask 077 && head -c 15 /dev/urandom | base32 | tr -d '\n' >"$RB_DIR/home/.erlang.cookie")
    fi
    chmod 0400 "$RB_DIR/home/.erlang.cookie"
    cat >"$RB_DIR/rabbitmq.conf" <<EOF
# written by scripts/stack.sh at every broker start — do not edit
listeners.tcp.default = 127.0.0.1:$FINTEGRATE_AMQP_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $FINTEGRATE_AMQP_MGMT_PORT
loopback_users.guest = true
log.console = false
log.file.level = info
EOF
    echo '[].' >"$RB_DIR/advanced.config"
    echo '[rabbitmq_management].' >"$RB_DIR/enabled_plugins"
    # The wrapper sets the same environment as the server (pitfall 3).
    {
        echo '#!/bin/sh'
        echo '# rabbitmqctl for this Fintegrate stack (written by scripts/stack.sh)'
        while IFS= read -r q; do
            printf 'export %s=%q\n' "${q%%=*}" "${q#*=}"
        done < <(rb_env_lines)
        echo "exec $RB_BIN/rabbitmqctl \"\$@\""
    } >"$RUN/rabbitmqctl"
    chmod 0755 "$RUN/rabbitmqctl"
}

broker_start() {
    local pid wrapper i
    ensure_run_dir
    pid=$(rb_pid)
    if [ -n "$pid" ]; then
        say "rabbitmq: already running (pid $pid)"
        return 0
    fi
    need_free_port rabbitmq "$FINTEGRATE_AMQP_PORT" FINTEGRATE_AMQP_PORT
    need_free_port rabbitmq "$FINTEGRATE_AMQP_MGMT_PORT" FINTEGRATE_AMQP_MGMT_PORT
    need_free_port rabbitmq "$FINTEGRATE_AMQP_DIST_PORT" FINTEGRATE_AMQP_DIST_PORT
    rb_prepare
    rb_export_env
    # Our own epmd on 127.0.0.1 (pitfall 6); one left over from a killed run
    # on this port is reused.
    if ! epmd_up; then
        need_free_port epmd "$FINTEGRATE_EPMD_PORT" FINTEGRATE_EPMD_PORT
        epmd -daemon -relaxed_command_check -port "$FINTEGRATE_EPMD_PORT" -address 127.0.0.1 \
            </dev/null >/dev/null 2>&1
        wait_for epmd 10 "" "" epmd_up || die "epmd: not up on 127.0.0.1:$FINTEGRATE_EPMD_PORT"
    fi
    rm -f "$RB_DIR/rabbit.pid"
    printf '\n=== %s starting %s\n' "$(date -u +%FT%TZ)" "$FINTEGRATE_AMQP_NODENAME" >>"$RB_LOGS/startup.log"
    # The server script stays as a small sh parent (it traps TERM/INT and
    # waits) and runs erl → beam.smp as its child: we keep beam's PID.
    # setsid: its own session, out of reach of the caller's Ctrl-C.
    (cd "$RB_DIR" && exec setsid "$RB_BIN/rabbitmq-server" </dev/null >>"$RB_LOGS/startup.log" 2>&1) &
    wrapper=$!
    pid=""
    for ((i = 0; i < 100; i++)); do
        pid=$(pgrep -P "$wrapper" -x beam.smp || true)
        [ -n "$pid" ] && break
        pid_alive "$wrapper" || break
        sleep 0.1
    done
    if [ -z "$pid" ]; then
        show_log_tail "$RB_LOGS/startup.log"
        die "rabbitmq: beam.smp did not start"
    fi
    # rabbit.pid disappears at the start of shutdown while beam runs on ~5 s:
    # keep our own copy (pitfall 10).
    echo "$pid" >"$RB_PID"
    wait_for rabbitmq "$FINTEGRATE_START_TIMEOUT" "$pid" \
        "$RB_LOGS/startup.log $RB_LOGS/$FINTEGRATE_AMQP_NODENAME.log" rb_ready ||
        die "rabbitmq: management API not answering on 127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT"
    say "rabbitmq: ready on 127.0.0.1:$FINTEGRATE_AMQP_PORT, management on :$FINTEGRATE_AMQP_MGMT_PORT (pid $pid)"
}

broker_stop() {
    local pid
    pid=$(rb_pid)
    if [ -n "$pid" ]; then
        say "rabbitmq: stopping (pid $pid)"
        stop_pid rabbitmq "$pid" TERM || true
        say "rabbitmq: stopped"
    else
        say "rabbitmq: not running"
    fi
    rm -f "$RB_PID"
    # The nodes of a cluster (scripts/cluster.sh) share one epmd: the last
    # one's `down` stops it, not a single node's stop.
    if [ "${FINTEGRATE_EPMD_SHARED:-0}" != 1 ] && epmd_up; then
        epmd -port "$FINTEGRATE_EPMD_PORT" -kill >/dev/null 2>&1 || true
    fi
}

# ---------------------------------------------------------------------------
# The FastCGI app (spawn-fcgi + bin/fintegrate-fcgi)
# ---------------------------------------------------------------------------
app_pid() {
    local pid
    pid=$(read_pid "$APP_PID")
    pid_is "$pid" "$APP_BIN" && printf '%s' "$pid"
    return 0
}

# app_env CMD... — CMD with the app's environment: the stack's settings and
# its log file (the admin key is not exported by main: the app needs only its
# hash in the database).
app_env() {
    env -u _FINTEGRATE_RUN_DIR_NOTE -u _FINTEGRATE_STACK_LOCKED \
        FINTEGRATE_LOG_FILE="$APP_LOG" "$@"
}

nginx_answers() {
    local code
    code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$FINTEGRATE_BASE_URL/health") || true
    [ -n "$code" ] && [ "$code" != 000 ]
}

# The app answers /health through nginx (200, or 503 if the DB is down): not
# nginx's 502/504.
app_answers() {
    local code
    code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$FINTEGRATE_BASE_URL/health") || true
    [ "$code" = 200 ] || [ "$code" = 503 ]
}

app_start() {
    local pid out
    ensure_run_dir
    pid=$(app_pid)
    if [ -n "$pid" ]; then
        say "app: already running (pid $pid)"
        return 0
    fi
    [ -x "$FINTEGRATE_FCGI_BIN" ] ||
        die "app: $FINTEGRATE_FCGI_BIN is missing or not executable (build it: make)"
    # The app runs from a copy in the run directory: www-data can reach it
    # even when the checkout is not traversable, and `make` can rewrite
    # bin/fintegrate-fcgi while a stack runs (cp onto a running executable
    # fails with "Text file busy").
    mkdir -p "$RUN/bin"
    cp "$FINTEGRATE_FCGI_BIN" "$APP_BIN.new"
    chmod 0755 "$APP_BIN.new"
    mv -f "$APP_BIN.new" "$APP_BIN"
    touch "$APP_LOG"
    chown www-data:www-data "$APP_LOG"
    chmod 0640 "$APP_LOG"
    # --check-config as the user the app runs as, with the app's environment.
    if ! out=$(cd "$RUN" && app_env setpriv --reuid=www-data --regid=www-data --init-groups \
            "$APP_BIN" --check-config 2>&1); then
        printf '%s\n' "$out" >&2
        die "app: $(basename "$FINTEGRATE_FCGI_BIN") --check-config failed (see above); not starting"
    fi
    rm -f "$APP_SOCK"
    printf '=== %s starting %s (copy of %s)\n' "$(date -u +%FT%TZ)" "$APP_BIN" \
        "$FINTEGRATE_FCGI_BIN" >>"$APP_LOG"
    # spawn-fcgi in fork mode points the app's stdout/stderr at /dev/null;
    # with -n (no fork) it creates the socket, switches user and execs the
    # app in place, keeping our redirection, so stderr lands in app.log and
    # $! is the master's PID (-P is ignored with -n: we write the pid file).
    (cd "$RUN" && exec setsid env -u _FINTEGRATE_RUN_DIR_NOTE -u _FINTEGRATE_STACK_LOCKED \
        FINTEGRATE_LOG_FILE="$APP_LOG" \
        spawn-fcgi -n -s "$APP_SOCK" -M 0660 -U www-data -G www-data -u www-data -g www-data \
        -- "$APP_BIN" </dev/null >>"$APP_LOG" 2>&1) &
    pid=$!
    echo "$pid" >"$APP_PID"
    app_socket_ready() { [ -S "$APP_SOCK" ] && pid_is "$pid" "$APP_BIN"; }
    wait_for app 15 "$pid" "$APP_LOG" app_socket_ready ||
        die "app: did not come up (socket $APP_SOCK)"
    # Still alive a moment later (a master that dies on start-up)?
    sleep 0.3
    pid_alive "$pid" || { show_log_tail "$APP_LOG"; die "app: exited right after start"; }
    if [ -n "$(nginx_pid)" ]; then
        wait_for app 15 "$pid" "$APP_LOG" app_answers ||
            die "app: GET /health through nginx does not answer"
    fi
    say "app: running (pid $pid, $FINTEGRATE_WORKERS workers, socket $APP_SOCK)"
}

# app_group_alive PGID — any non-zombie process left in the app's process
# group (the master is a session leader, so its workers share its PGID).
app_group_pids() {
    local pgid=$1 p
    for p in $(pgrep -g "$pgid" 2>/dev/null || true); do
        pid_alive "$p" && printf '%s ' "$p"
    done
    return 0
}

app_stop() {
    local pid left
    pid=$(app_pid)
    if [ -z "$pid" ]; then
        say "app: not running"
    else
        # SIGTERM: graceful, in-flight requests finish.
        say "app: stopping (pid $pid)"
        stop_pid app "$pid" TERM || true
        left=$(app_group_pids "$pid")
        if [ -n "$left" ]; then
            say "app: killing leftover workers: $left"
            # shellcheck disable=SC2086
            kill -KILL $left 2>/dev/null || true
        fi
        say "app: stopped"
    fi
    rm -f "$APP_PID" "$APP_SOCK"
}

app_reload() {
    local pid
    pid=$(app_pid)
    [ -n "$pid" ] || die "app: not running"
    kill -HUP "$pid"
    say "app: SIGHUP sent to master $pid (workers roll)"
}

# ---------------------------------------------------------------------------
# nginx (pitfalls 13, 14, 16, 17)
# ---------------------------------------------------------------------------
nginx_pid() {
    local pid
    pid=$(read_pid "$NGINX_PID")
    pid_is "$pid" "-p $RUN/ " && printf '%s' "$pid"
    return 0
}

nginx_render() {
    local f
    mkdir -p "$RUN/nginx/conf.d"
    rm -f "$RUN/nginx/conf.d/"*.conf
    render "$FINTEGRATE_CHECKOUT/nginx/nginx.conf.in" "$NGINX_CONF"
    for f in "$FINTEGRATE_CHECKOUT"/nginx/conf.d/*.conf; do
        render "$f" "$RUN/nginx/conf.d/$(basename "$f")"
    done
    # GET /openapi.json and /openapi.yaml: nginx (www-data) serves copies
    # from the run directory, reachable even when the checkout is not.
    mkdir -p "$RUN/nginx/openapi"
    chmod 0755 "$RUN/nginx" "$RUN/nginx/openapi"
    for f in openapi.json openapi.yaml; do
        if [ -f "$FINTEGRATE_CHECKOUT/docs/$f" ]; then
            install -m 0644 "$FINTEGRATE_CHECKOUT/docs/$f" "$RUN/nginx/openapi/$f"
        fi
    done
}

nginx_cmd() {
    nginx -p "$RUN/" -c "$NGINX_CONF" -e "$NGINX_ERR" "$@"
}

nginx_start() {
    local pid out
    ensure_run_dir
    pid=$(nginx_pid)
    if [ -n "$pid" ]; then
        say "nginx: already running (pid $pid)"
        return 0
    fi
    need_free_port nginx "$FINTEGRATE_HTTP_PORT" FINTEGRATE_HTTP_PORT
    nginx_render
    if ! out=$(nginx_cmd -t -q 2>&1); then
        printf '%s\n' "$out" >&2
        die "nginx: configuration test failed ($NGINX_CONF)"
    fi
    rm -f "$NGINX_PID"
    if ! nginx_cmd </dev/null >/dev/null 2>>"$NGINX_ERR"; then
        show_log_tail "$NGINX_ERR"
        die "nginx: failed to start"
    fi
    wait_for nginx 10 "" "$NGINX_ERR" nginx_answers ||
        die "nginx: not answering on 127.0.0.1:$FINTEGRATE_HTTP_PORT"
    say "nginx: listening on 127.0.0.1:$FINTEGRATE_HTTP_PORT (pid $(nginx_pid))"
}

nginx_stop() {
    local pid
    pid=$(nginx_pid)
    if [ -z "$pid" ]; then
        say "nginx: not running"
        return 0
    fi
    say "nginx: stopping (pid $pid)"
    stop_pid nginx "$pid" TERM || true
    rm -f "$NGINX_PID"
    say "nginx: stopped"
}

# ---------------------------------------------------------------------------
# Whole stack
# ---------------------------------------------------------------------------
print_summary() {
    local key="(unknown: set FINTEGRATE_ADMIN_API_KEY and run again to install one)"
    if [ -r "$ADMIN_KEY_FILE" ]; then
        key=$(cat "$ADMIN_KEY_FILE")
    fi
    cat <<EOF

Fintegrate is up.
  API base URL     $FINTEGRATE_BASE_URL   (try: curl $FINTEGRATE_BASE_URL/health)
  admin API key    $key
                   (send it as X-API-Key; kept in $ADMIN_KEY_FILE, mode 0600)
  RabbitMQ UI      http://127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT   (guest / guest)
  PostgreSQL       psql "$FINTEGRATE_DB_URL"
  logs             $LOGS/  (app.log, nginx-access.log, nginx-error.log, postgresql.log, rabbitmq/)
  rabbitmqctl      $RUN/rabbitmqctl
  stop             make stop   (or scripts/stack.sh down)
EOF
}

stack_up() {
    local pg_job rb_job rc=0 code
    ensure_run_dir
    # PostgreSQL (~1.5 s) and RabbitMQ (~10 s) in parallel.
    pg_start &
    pg_job=$!
    broker_start &
    rb_job=$!
    wait "$pg_job" || rc=1
    wait "$rb_job" || rc=1
    [ "$rc" = 0 ] || die "up: a service failed to start (see above); 'scripts/stack.sh down' stops the rest"
    app_start
    nginx_start
    wait_for "app (GET /health)" 15 "" "$APP_LOG $NGINX_ERR" app_answers ||
        die "up: GET $FINTEGRATE_BASE_URL/health does not reach the app"
    code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$FINTEGRATE_BASE_URL/health") || true
    [ "$code" = 200 ] || say "warning: GET /health answers $code"
    print_summary
}

stack_down() {
    local pg_job rb_job
    nginx_stop
    app_stop
    # RabbitMQ's graceful stop takes ~5 s: stop both servers in parallel.
    broker_stop &
    rb_job=$!
    pg_stop &
    pg_job=$!
    wait "$rb_job" || true
    wait "$pg_job" || true
    say "stack stopped (data kept in $RUN)"
}

status_line() {
    local name=$1 pid=$2 where=$3
    if [ -n "$pid" ]; then
        printf '  %-10s running  pid %-8s %s\n' "$name" "$pid" "$where"
    else
        printf '  %-10s stopped\n' "$name"
    fi
}

stack_status() {
    local pg rb app ngx
    pg=$(pg_pid); rb=$(rb_pid); app=$(app_pid); ngx=$(nginx_pid)
    echo "Fintegrate stack in $RUN"
    status_line postgres "$pg" "127.0.0.1:$FINTEGRATE_PG_PORT"
    status_line rabbitmq "$rb" "127.0.0.1:$FINTEGRATE_AMQP_PORT, UI http://127.0.0.1:$FINTEGRATE_AMQP_MGMT_PORT"
    status_line app "$app" "$APP_SOCK"
    status_line nginx "$ngx" "$FINTEGRATE_BASE_URL"
    [ -n "$pg" ] && [ -n "$rb" ] && [ -n "$app" ] && [ -n "$ngx" ]
}

usage() {
    echo "usage: $0 {up|down|status|pg-start|pg-stop|broker-start|broker-stop|app-start|app-stop|app-reload|nginx-start|nginx-stop}" >&2
    exit 2
}

# with_lock CMD... — one stack command at a time per run directory.  flock -o
# keeps the lock's descriptor out of the servers we start (they would hold
# the lock for ever).
with_lock() {
    if [ -z "${_FINTEGRATE_STACK_LOCKED:-}" ]; then
        ensure_run_dir
        export _FINTEGRATE_STACK_LOCKED=1
        if [ -n "$ADMIN_KEY_FROM_ENV" ]; then
            export FINTEGRATE_ADMIN_API_KEY=$ADMIN_KEY_FROM_ENV   # environ, not argv
        fi
        exec flock -o -w 600 "$RUN/.stack.lock" "$0" "$@"
    fi
}

# The admin key (when given) goes to setup-admin.sh only, never into the
# environment of the servers this script starts.
ADMIN_KEY_FROM_ENV=${FINTEGRATE_ADMIN_API_KEY:-}
export -n FINTEGRATE_ADMIN_API_KEY 2>/dev/null || true
unset FINTEGRATE_ADMIN_API_KEY

main() {
    [ $# -eq 1 ] || usage
    [ "$(id -u)" -eq 0 ] || die "run as root (PostgreSQL runs as postgres, nginx/app as www-data)"
    if [ "$1" = down ] && [ ! -d "$RUN" ]; then
        say "nothing to stop ($RUN does not exist)"
        return 0
    fi
    case $1 in
        up|down|pg-start|pg-stop|broker-start|broker-stop|app-start|app-stop|app-reload|nginx-start|nginx-stop)
            with_lock "$1" ;;
        status) ;;
        *) usage ;;
    esac
    case $1 in
        up) stack_up ;;
        down) stack_down ;;
        status) stack_status ;;
        pg-start) pg_start ;;
        pg-stop) pg_stop ;;
        broker-start) broker_start ;;
        broker-stop) broker_stop ;;
        app-start) app_start ;;
        app-stop) app_stop ;;
        app-reload) app_reload ;;
        nginx-start) nginx_start ;;
        nginx-stop) nginx_stop ;;
    esac
}

main "$@"
