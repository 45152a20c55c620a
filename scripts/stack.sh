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
#
# This file is the dispatcher and the whole-stack commands; each service is
# a file of scripts/stack.d/ (postgres.sh, rabbitmq.sh, app.sh, nginx.sh),
# sourced below with the process helpers they share (stack.d/lib.sh, which
# docker/entrypoint.sh sources too).  Knobs for scripts/cluster.sh, which
# runs several stacks side by side: FINTEGRATE_EPMD_SHARED=1 (rabbitmq.sh),
# FINTEGRATE_PG_STANDBY=1 (postgres.sh), FINTEGRATE_FCGI_BACKUPS (nginx.sh).
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/env.sh
. "$SCRIPTS_DIR/env.sh"

RUN=$FINTEGRATE_RUN_DIR
LOGS=$RUN/logs
ADMIN_KEY_FILE=$RUN/admin-api-key
MARKER=$RUN/.fintegrate-run-dir

: "${FINTEGRATE_START_TIMEOUT:=60}"       # seconds to wait for a service
: "${FINTEGRATE_STOP_TIMEOUT:=30}"        # seconds before KILL (stack.d/lib.sh)

# shellcheck source=scripts/stack.d/lib.sh
. "$SCRIPTS_DIR/stack.d/lib.sh"
# shellcheck source=scripts/stack.d/postgres.sh
. "$SCRIPTS_DIR/stack.d/postgres.sh"
# shellcheck source=scripts/stack.d/rabbitmq.sh
. "$SCRIPTS_DIR/stack.d/rabbitmq.sh"
# shellcheck source=scripts/stack.d/app.sh
. "$SCRIPTS_DIR/stack.d/app.sh"
# shellcheck source=scripts/stack.d/nginx.sh
. "$SCRIPTS_DIR/stack.d/nginx.sh"

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
    code=$(http_code "$FINTEGRATE_BASE_URL/health")
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
