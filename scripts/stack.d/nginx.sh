# shellcheck shell=bash
# scripts/stack.d/nginx.sh — nginx for scripts/stack.sh (sourced by it), its
# configuration rendered from nginx/ into the run directory (pitfalls 13,
# 14, 16, 17).  FINTEGRATE_FCGI_BACKUPS (scripts/cluster.sh): other nodes'
# FastCGI sockets, nginx's backup servers.

NGINX_CONF=$RUN/nginx.conf
NGINX_PID=$RUN/nginx.pid
NGINX_ERR=$LOGS/nginx-error.log

nginx_pid() { pid_file_is "$NGINX_PID" "-p $RUN/ "; }

# nginx_answers — nginx answers GET /health, whatever the status.
nginx_answers() {
    local code
    code=$(http_code "$FINTEGRATE_BASE_URL/health")
    [ -n "$code" ] && [ "$code" != 000 ]
}

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

nginx_cmd() {
    nginx -p "$RUN/" -c "$NGINX_CONF" -e "$NGINX_ERR" "$@"
}

nginx_start() {
    local out backups
    ensure_run_dir
    already_running nginx "$(nginx_pid)" && return 0
    need_free_port nginx "$FINTEGRATE_HTTP_PORT" FINTEGRATE_HTTP_PORT
    backups=$(fcgi_backups)
    render_nginx "$RUN" "$FINTEGRATE_CHECKOUT" "$backups"
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
    stop_service nginx "$(nginx_pid)" TERM || return 0
    rm -f "$NGINX_PID"
}
