#!/usr/bin/env bash
# docker/entrypoint.sh — the app container of docker-compose.yml.
#
#   entrypoint.sh run               (the default) wait for PostgreSQL, apply the
#                                   migrations, install the administrator's key,
#                                   start the FastCGI pool (spawn-fcgi) and nginx,
#                                   and stop both gracefully on SIGTERM
#   entrypoint.sh render-nginx DIR  only render nginx's configuration into DIR
#                                   (what `run` does; tests/config/test_deploy.sh
#                                   checks the result with `nginx -t`)
#   entrypoint.sh CMD...            run CMD (e.g. fintegrate-consumer, psql)
#
# nginx's configuration comes from the same templates as `make run`
# (nginx/nginx.conf.in, nginx/conf.d/*.conf, rendered by the same code:
# scripts/stack.d/lib.sh, sourced here), except that it listens on all
# interfaces of the container (the host side of the port mapping decides who
# reaches it).  Logs go to the
# container's stdout/stderr.  Settings: the FINTEGRATE_* variables of
# docs/OPERATIONS.md; FINTEGRATE_DB_URL is required.
set -euo pipefail

APP_HOME=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
: "${FINTEGRATE_RUN_DIR:=/var/lib/fintegrate/run}"
: "${FINTEGRATE_HTTP_PORT:=8080}"
: "${FINTEGRATE_RATE_KEY:=50}"
: "${FINTEGRATE_BURST_KEY:=100}"
: "${FINTEGRATE_RATE_IP:=200}"
: "${FINTEGRATE_BURST_IP:=400}"
export FINTEGRATE_RUN_DIR FINTEGRATE_HTTP_PORT FINTEGRATE_RATE_KEY FINTEGRATE_BURST_KEY \
    FINTEGRATE_RATE_IP FINTEGRATE_BURST_IP

# The stack's process helpers and template renderer (say/die redefined below).
# shellcheck source=scripts/stack.d/lib.sh
. "$APP_HOME/scripts/stack.d/lib.sh"
say() { printf 'entrypoint: %s\n' "$*" >&2; }
die() { printf 'entrypoint: error: %s\n' "$*" >&2; exit 1; }

# container_nginx RUN — nginx.conf and conf.d/ under RUN, every path nginx
# uses inside RUN (pid, temp dirs, the FastCGI socket, the description
# files), rendered by stack.d/lib.sh's render_nginx like `make run`'s but
# listening on all interfaces of the container instead of 127.0.0.1, and
# with no backup servers.
container_nginx() {
    local run=$1 f
    mkdir -p "$run/logs"
    for f in client_body_temp proxy_temp fastcgi_temp uwsgi_temp scgi_temp; do
        mkdir -p "$run/nginx/$f"
    done
    render_nginx "$run" "$APP_HOME" "" -e "s|listen 127\.0\.0\.1:@HTTP_PORT@|listen @HTTP_PORT@|"
    chmod 0755 "$run"
}

db_answers() { psql -X -q -d "$FINTEGRATE_DB_URL" -tAc 'SELECT 1' >/dev/null 2>&1; }

run() {
    local run=$FINTEGRATE_RUN_DIR app ngx rc=0 had_key stopping=0
    [ -n "${FINTEGRATE_DB_URL:-}" ] || die "FINTEGRATE_DB_URL is not set"
    mkdir -p "$run"
    chmod 0755 "$run"
    wait_for PostgreSQL 60 "" "" db_answers || die "PostgreSQL does not answer at FINTEGRATE_DB_URL after 60 s"
    # scripts/env.sh (sourced by both) validates the settings.
    "$APP_HOME/scripts/migrate.sh"
    had_key=0
    [ -s "$run/admin-api-key" ] && had_key=1
    "$APP_HOME/scripts/setup-admin.sh"
    if [ "$had_key" = 0 ] && [ -z "${FINTEGRATE_ADMIN_API_KEY:-}" ] && [ -s "$run/admin-api-key" ]; then
        say "administrator API key (generated, shown once; kept in $run/admin-api-key): $(cat "$run/admin-api-key")"
    fi
    unset FINTEGRATE_ADMIN_API_KEY

    container_nginx "$run"
    # nginx's logs to the container's output (its master opens them as root).
    ln -sfn /dev/stdout "$run/logs/nginx-access.log"
    ln -sfn /dev/stderr "$run/logs/nginx-error.log"

    setpriv --reuid=www-data --regid=www-data --init-groups "$APP_HOME/bin/fintegrate-fcgi" --check-config ||
        die "fintegrate-fcgi --check-config failed (see above)"
    rm -f "$run/fcgi.sock"
    # spawn-fcgi -n: creates the socket, drops to www-data and execs the master
    # in place; the app logs one line per request to stderr.
    spawn-fcgi -n -s "$run/fcgi.sock" -M 0660 -U www-data -G www-data -u www-data -g www-data \
        -- "$APP_HOME/bin/fintegrate-fcgi" &
    app=$!
    wait_for fintegrate-fcgi 10 "$app" "" test -S "$run/fcgi.sock" ||
        die "fintegrate-fcgi: no socket $run/fcgi.sock"
    nginx -p "$run/" -c "$run/nginx.conf" -e /dev/stderr -g 'daemon off;' &
    ngx=$!
    say "listening on :$FINTEGRATE_HTTP_PORT (nginx $ngx, fintegrate-fcgi $app)"

    # SIGTERM (docker stop): nginx stops taking requests, the app finishes
    # the ones in flight.
    trap 'stopping=1' TERM INT
    wait -n "$app" "$ngx" || rc=$?
    if [ "$stopping" = 1 ]; then
        rc=0
    else
        say "a process exited (status $rc): stopping the container"
    fi
    kill -QUIT "$ngx" 2>/dev/null || true
    kill -TERM "$app" 2>/dev/null || true
    wait "$app" "$ngx" 2>/dev/null || true
    exit "$rc"
}

case ${1:-run} in
    run) run ;;
    render-nginx)
        [ $# -eq 2 ] || die "usage: $0 render-nginx DIR"
        container_nginx "$2"
        ;;
    *) exec "$@" ;;
esac
