# shellcheck shell=bash
# scripts/stack.d/app.sh — the FastCGI pool for scripts/stack.sh (sourced by
# it): bin/fintegrate-fcgi (master, workers and the outbox relay, all one
# process group) under spawn-fcgi, run as www-data from a copy in the run
# directory, on the unix socket $RUN/fcgi.sock (pitfall 14).

APP_SOCK=$RUN/fcgi.sock
APP_PID=$RUN/fcgi.pid
APP_LOG=$LOGS/app.log
APP_BIN=$RUN/bin/$(basename "$FINTEGRATE_FCGI_BIN")

app_pid() { pid_file_is "$APP_PID" "$APP_BIN"; }

# app_env CMD... — CMD with the app's environment: the stack's settings and
# its log file (the admin key is not exported by main: the app needs only its
# hash in the database).
app_env() {
    env -u _FINTEGRATE_RUN_DIR_NOTE -u _FINTEGRATE_STACK_LOCKED \
        FINTEGRATE_LOG_FILE="$APP_LOG" "$@"
}

# The app answers /health through nginx (200, or 503 if the DB is down): not
# nginx's 502/504.
app_answers() {
    local code
    code=$(http_code "$FINTEGRATE_BASE_URL/health")
    [ "$code" = 200 ] || [ "$code" = 503 ]
}

app_start() {
    local pid out
    ensure_run_dir
    already_running app "$(app_pid)" && return 0
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
    # shellcheck disable=SC2317  # called through wait_for
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

app_stop() {
    local pid left
    pid=$(app_pid)
    if [ -z "$pid" ]; then
        say "app: not running"
    else
        # SIGTERM: graceful, in-flight requests finish.
        say "app: stopping (pid $pid)"
        stop_pid app "$pid" TERM || true
        # The master is a session leader: its workers share its PGID.
        left=$(group_pids "$pid")
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
