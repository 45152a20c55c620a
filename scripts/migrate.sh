#!/usr/bin/env bash
# scripts/migrate.sh — apply migrations/NNN_*.sql to $FINTEGRATE_DB_URL in
# numeric order.  Each file runs in its own transaction (psql
# --single-transaction, ON_ERROR_STOP) together with the INSERT that records
# its version ("001", the file's number) in schema_migrations, so a file is
# either applied and recorded, or neither.  Applied versions are skipped.  A
# failing migration stops the run, naming the file and quoting the database's
# message.  Forward-only: there are no down migrations.
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/env.sh
. "$SCRIPTS_DIR/env.sh"

MIGRATIONS_DIR=$FINTEGRATE_CHECKOUT/migrations

say() { printf 'migrate: %s\n' "$*" >&2; }
die() { printf 'migrate: error: %s\n' "$*" >&2; exit 1; }

# Quiet NOTICEs ("relation already exists, skipping" and the like).
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

# FINTEGRATE_DB_URL may name several hosts (docs/OPERATIONS.md, "Database
# timeouts and failover"): like the service, ask for the read-write one
# unless the URL or the caller says otherwise.
export PGTARGETSESSIONATTRS=${PGTARGETSESSIONATTRS:-read-write}
db() { psql -X -q -v ON_ERROR_STOP=1 -d "$FINTEGRATE_DB_URL" "$@"; }

ensure_table() {
    db -c 'CREATE TABLE IF NOT EXISTS schema_migrations (
               version    text PRIMARY KEY,
               applied_at timestamptz NOT NULL DEFAULT now())' ||
        die "cannot reach the database (FINTEGRATE_DB_URL) or create schema_migrations"
}

# list_migrations — "NUMBER FILE" lines, numerically sorted; refuses two
# files with the same number.
list_migrations() {
    local f base num
    local -A seen=()
    for f in "$MIGRATIONS_DIR"/[0-9]*_*.sql; do
        [ -e "$f" ] || continue
        base=$(basename "$f")
        num=${base%%_*}
        [[ $num =~ ^[0-9]+$ ]] || continue
        if [ -n "${seen[$((10#$num))]:-}" ]; then
            die "$base and ${seen[$((10#$num))]} have the same number"
        fi
        seen[$((10#$num))]=$base
        printf '%d %s %s\n' "$((10#$num))" "$num" "$base"
    done | sort -n -k1,1
}

apply_one() {
    local version=$1 file=$2
    # Run from the migrations folder so psql's messages name the file:
    # "psql:003_outbox_publish_columns.sql:12: ERROR: ..."
    if ! (cd "$MIGRATIONS_DIR" && db --single-transaction \
            -f "$file" \
            -c "INSERT INTO schema_migrations (version) VALUES ('$version')"); then
        die "$file failed (rolled back; nothing of it was applied)"
    fi
    say "applied $file"
}

main() {
    local applied migrations n version file count=0
    [ -d "$MIGRATIONS_DIR" ] || die "no migrations folder at $MIGRATIONS_DIR"
    mkdir -p "$FINTEGRATE_RUN_DIR"
    # One migrate at a time per stack.
    exec 8>"$FINTEGRATE_RUN_DIR/.migrate.lock"
    flock -w 120 8 || die "another migrate.sh holds $FINTEGRATE_RUN_DIR/.migrate.lock"
    ensure_table
    applied=$(db -At -c 'SELECT version FROM schema_migrations') ||
        die "cannot read schema_migrations"
    migrations=$(list_migrations)
    [ -n "$migrations" ] || die "no NNN_*.sql files in $MIGRATIONS_DIR"
    while read -r n version file; do
        : "$n"   # the numeric sort key
        if grep -qxF "$version" <<<"$applied"; then
            continue
        fi
        apply_one "$version" "$file"
        count=$((count + 1))
    done <<<"$migrations"
    if [ "$count" -eq 0 ]; then
        say "schema up to date"
    fi
    exec 8>&-
}

main "$@"
