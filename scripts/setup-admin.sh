#!/usr/bin/env bash
# scripts/setup-admin.sh — make sure the system consumer `system_default`
# (00000000-0000-0000-0000-000000000001, the administrator) has an active,
# unexpired API key.  Run by stack.sh after migrate.sh.
#
# * FINTEGRATE_ADMIN_API_KEY set (20-512 visible ASCII characters): when its
#   hash differs from the active admin key's, it is installed and the old key
#   deactivated, in one transaction.
# * Not set, and no active admin key: a key is generated — "fk_" + 43 base64url
#   characters from 32 bytes of /dev/urandom.
# * The key in use is kept in $FINTEGRATE_RUN_DIR/admin-api-key (mode 0600,
#   root) so that every `stack.sh up` can print it.  The database holds only
#   api_key_hash (lower-case hex SHA-256 of the key text) and api_key_prefix
#   (first 11 characters).  The admin key expires 100 years after it is
#   installed: in practice never; it is replaced by rotation, not by expiry.
#
# The key never appears in a process list, the database or a log: it is
# hashed here (sha256sum reading a pipe fed by the printf builtin) and psql
# receives only the hash and the prefix, on its standard input.
set -euo pipefail

SCRIPTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=scripts/env.sh
. "$SCRIPTS_DIR/env.sh"

export LC_ALL=C
SYSTEM_CONSUMER=00000000-0000-0000-0000-000000000001
KEY_FILE=$FINTEGRATE_RUN_DIR/admin-api-key

say() { printf 'setup-admin: %s\n' "$*" >&2; }
die() { printf 'setup-admin: error: %s\n' "$*" >&2; exit 1; }

# FINTEGRATE_DB_URL may name several hosts (docs/OPERATIONS.md, "Database
# timeouts and failover"): like the service, ask for the read-write one
# unless the URL or the caller says otherwise.
export PGTARGETSESSIONATTRS=${PGTARGETSESSIONATTRS:-read-write}
db() { psql -X -q -v ON_ERROR_STOP=1 -d "$FINTEGRATE_DB_URL" "$@"; }

key_hash() { printf '%s' "$1" | sha256sum | cut -c1-64; }

generate_key() {
    local b64
    b64=$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')
    [ "${#b64}" -eq 43 ] || die "could not generate a key"
    printf 'fk_%s' "$b64"
}

# psql_quote VALUE — VALUE as a single-quoted psql \set argument.
psql_quote() {
    local v=${1//\\/\\\\}
    printf "'%s'" "${v//\'/\'\'}"
}

active_hash() {
    db -At <<SQL
SELECT api_key_hash FROM consumer_api_keys
 WHERE consumer_id = '$SYSTEM_CONSUMER' AND api_key_status = 'active' AND expires_at > now()
SQL
}

hash_owner() {
    db -At -v hash="$1" <<'SQL'
SELECT consumer_id FROM consumer_api_keys WHERE api_key_hash = :'hash'
SQL
}

# install_key KEY — make KEY the administrator's only active key.
install_key() {
    local key=$1 hash owner
    hash=$(key_hash "$key")
    owner=$(hash_owner "$hash")
    if [ -n "$owner" ] && [ "$owner" != "$SYSTEM_CONSUMER" ]; then
        die "FINTEGRATE_ADMIN_API_KEY is the key of another consumer ($owner); choose another"
    fi
    db <<SQL >/dev/null
\\set sys '$SYSTEM_CONSUMER'
\\set hash '$hash'
\\set prefix $(psql_quote "${key:0:11}")
BEGIN;
-- Serialises with a concurrent setup or an API rotation of the admin key.
SELECT 1 FROM consumers WHERE consumer_id = :'sys' FOR UPDATE;
UPDATE consumer_api_keys
   SET api_key_status = 'deactivated', updated_at = now()
 WHERE consumer_id = :'sys' AND api_key_status = 'active' AND api_key_hash <> :'hash';
INSERT INTO consumer_api_keys (consumer_id, api_key_hash, api_key_prefix, api_key_status, expires_at)
VALUES (:'sys', :'hash', :'prefix', 'active', now() + interval '100 years')
ON CONFLICT (api_key_hash) DO UPDATE
   SET api_key_status = 'active', expires_at = EXCLUDED.expires_at, updated_at = now()
 WHERE consumer_api_keys.consumer_id = EXCLUDED.consumer_id;
COMMIT;
SQL
}

save_key() {
    (umask 077 && printf '%s\n' "$1" >"$KEY_FILE.tmp")
    chmod 0600 "$KEY_FILE.tmp"
    mv -f "$KEY_FILE.tmp" "$KEY_FILE"
}

saved_key() {
    local k=""
    [ -r "$KEY_FILE" ] && { IFS= read -r k <"$KEY_FILE" || true; }
    printf '%s' "$k"
}

main() {
    # (env.sh has checked FINTEGRATE_ADMIN_API_KEY: 20-512 visible ASCII.)
    local wanted=${FINTEGRATE_ADMIN_API_KEY:-} current saved
    unset FINTEGRATE_ADMIN_API_KEY
    db -At -c "SELECT 1 FROM consumers WHERE consumer_id = '$SYSTEM_CONSUMER'" | grep -qx 1 ||
        die "system consumer $SYSTEM_CONSUMER is missing (migration 005 not applied?)"
    current=$(active_hash)
    saved=$(saved_key)

    if [ -n "$wanted" ]; then
        if [ "$(key_hash "$wanted")" = "$current" ]; then
            say "admin API key unchanged (from FINTEGRATE_ADMIN_API_KEY)"
        else
            install_key "$wanted"
            say "admin API key installed from FINTEGRATE_ADMIN_API_KEY${current:+; the previous one is deactivated}"
        fi
        [ "$saved" = "$wanted" ] || save_key "$wanted"
        return 0
    fi

    if [ -n "$current" ]; then
        if [ -n "$saved" ] && [ "$(key_hash "$saved")" = "$current" ]; then
            return 0
        fi
        # Rotated through the API, or installed from an environment that is
        # gone: the key on file (if any) no longer works.
        rm -f "$KEY_FILE"
        say "the active admin API key is not known to this run directory (rotated through the API?); set FINTEGRATE_ADMIN_API_KEY to install a known one"
        return 0
    fi

    saved=$(generate_key)
    install_key "$saved"
    save_key "$saved"
    say "admin API key generated (kept in $KEY_FILE)"
}

main "$@"
