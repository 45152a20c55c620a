# shellcheck shell=bash
# scripts/stack.d/postgres.sh — PostgreSQL 15 for scripts/stack.sh (sourced
# by it): initdb on first start, our settings in fintegrate.conf, start with
# pg_ctl as the postgres user, then the role and database `fintegrate`, the
# migrations (scripts/migrate.sh) and the administrator's key
# (scripts/setup-admin.sh).  FINTEGRATE_PG_STANDBY=1 (scripts/cluster.sh):
# a streaming standby, started without those three.

PG_DIR=$RUN/pg
PG_DATA=$PG_DIR/data
PG_LOG=$LOGS/postgresql.log

pg_pid() { pid_file_is "$PG_DATA/postmaster.pid" "$PG_DATA"; }

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
    local out
    ensure_run_dir
    if ! already_running postgres "$(pg_pid)"; then
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

# SIGINT = fast shutdown (SIGTERM would wait for the workers' persistent
# connections to end); SIGQUIT = immediate, then KILL.
pg_stop() { stop_service postgres "$(pg_pid)" INT QUIT || true; }
