/*
 * fcgi-app/db/api_keys_db.c — see api_keys_db.h.
 */
#include "api_keys_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The status a key has now: a stored 'active' past its expiry is expired
 * (the write-back may not have run yet). */
#define KEY_STATUS_NOW                                                         \
    "CASE WHEN api_key_status = 'active' AND expires_at <= now() "             \
    "     THEN 'expired' ELSE api_key_status END"

#define KEY_COLUMNS                                                            \
    "api_key_prefix, consumer_id, " KEY_STATUS_NOW ", "                        \
    "api_key_status = 'active', fintegrate_ts(created_at), "                   \
    "fintegrate_ts(expires_at), fintegrate_ts(updated_at)"

DB_STMT(api_keys_lookup, 1,
        "SELECT c.consumer_id, c.consumer_name, c.status = 'ACTIVE', "
        "       k.api_key_status, k.expires_at <= now(), "
        "       extract(epoch FROM k.expires_at)::float8 "
        "  FROM consumer_api_keys k JOIN consumers c USING (consumer_id) "
        " WHERE k.api_key_hash = $1");

/* The only statement that writes 'expired'. */
DB_STMT(api_keys_mark_expired, 1,
        "UPDATE consumer_api_keys SET api_key_status = 'expired', "
        "       updated_at = now() "
        " WHERE api_key_hash = $1 AND api_key_status = 'active' "
        "   AND expires_at <= now()");

DB_STMT(api_keys_get, 1,
        "SELECT " KEY_COLUMNS
        " FROM consumer_api_keys WHERE api_key_hash = $1");
DB_STMT(api_keys_lock, 1,
        "SELECT " KEY_COLUMNS " FROM consumer_api_keys WHERE api_key_hash = $1 "
        "FOR UPDATE");
DB_STMT(api_keys_deactivate_all, 1,
        "WITH old AS (SELECT api_key_id, api_key_prefix, "
        "                    " KEY_STATUS_NOW " AS previous_status "
        "               FROM consumer_api_keys "
        "              WHERE consumer_id = $1 "
        "                AND api_key_status IN ('active', 'expired') "
        "                FOR UPDATE) "
        "UPDATE consumer_api_keys k SET api_key_status = 'deactivated', "
        "       updated_at = clock_timestamp() "
        "  FROM old WHERE k.api_key_id = old.api_key_id "
        "RETURNING old.api_key_prefix, old.previous_status");
DB_STMT(api_keys_insert, 4,
        "INSERT INTO consumer_api_keys (consumer_id, api_key_hash, "
        "  api_key_prefix, expires_at) "
        "VALUES ($1, $2, $3, now() + make_interval(secs => $4::bigint)) "
        "RETURNING fintegrate_ts(expires_at)");
/* Deactivation only, from 'active' or 'expired'. */
DB_STMT(api_keys_deactivate, 1,
        "UPDATE consumer_api_keys SET api_key_status = 'deactivated', "
        "       updated_at = clock_timestamp() "
        " WHERE api_key_hash = $1 "
        "   AND api_key_status IN ('active', 'expired')");
DB_STMT(api_keys_count_usable, 1,
        "SELECT count(*) FROM consumer_api_keys WHERE consumer_id = $1 "
        "   AND api_key_status = 'active' AND expires_at > now()");

static void
copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src);
}

int
api_keys_db_lookup(struct db *db, const char *hash, struct key_lookup *out,
                   struct app_err *err)
{
    const char *p[] = {hash};
    memset(out, 0, sizeof *out);
    PGresult *res = db_exec(db, &api_keys_lookup, p, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 1) {
        out->found = true;
        copy(out->consumer_id, sizeof out->consumer_id, PQgetvalue(res, 0, 0));
        copy(out->consumer_name, sizeof out->consumer_name,
             PQgetvalue(res, 0, 1));
        out->consumer_active = PQgetvalue(res, 0, 2)[0] == 't';
        copy(out->key_status, sizeof out->key_status, PQgetvalue(res, 0, 3));
        out->past_expiry = PQgetvalue(res, 0, 4)[0] == 't';
        out->expires_epoch = strtod(PQgetvalue(res, 0, 5), NULL);
    }
    PQclear(res);
    return 0;
}

void
api_keys_db_mark_expired(struct db *db, const char *hash)
{
    const char *p[] = {hash};
    struct app_err ignore = APP_ERR_INIT;
    if (db_exec_command(db, &api_keys_mark_expired, p, &ignore) < 0)
        err_clear(&ignore);
}

int
api_keys_db_get(struct db *db, const char *hash, bool lock, struct key_row *out,
                struct app_err *err)
{
    const char *p[] = {hash};
    memset(out, 0, sizeof *out);
    PGresult *res = db_exec(db, lock ? &api_keys_lock : &api_keys_get, p, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 1) {
        out->found = true;
        copy(out->api_key_prefix, sizeof out->api_key_prefix,
             PQgetvalue(res, 0, 0));
        copy(out->consumer_id, sizeof out->consumer_id, PQgetvalue(res, 0, 1));
        copy(out->status, sizeof out->status, PQgetvalue(res, 0, 2));
        out->stored_active = PQgetvalue(res, 0, 3)[0] == 't';
        copy(out->created_at, sizeof out->created_at, PQgetvalue(res, 0, 4));
        copy(out->expires_at, sizeof out->expires_at, PQgetvalue(res, 0, 5));
        copy(out->updated_at, sizeof out->updated_at, PQgetvalue(res, 0, 6));
    }
    PQclear(res);
    return 0;
}

int
api_keys_db_deactivate_all(struct db *db, const char *consumer_id,
                           json_t **prefixes, struct app_err *err)
{
    const char *p[] = {consumer_id};
    return db_exec_rows(db, &api_keys_deactivate_all, p, db_row_object,
                        prefixes, err);
}

int
api_keys_db_insert(struct db *db, const char *consumer_id, const char *hash,
                   const char *prefix, const char *seconds, char expires_at[40],
                   struct app_err *err)
{
    const char *p[] = {consumer_id, hash, prefix, seconds};
    return db_exec_value(db, &api_keys_insert, p, expires_at, 40, err);
}

int
api_keys_db_deactivate(struct db *db, const char *hash, struct app_err *err)
{
    const char *p[] = {hash};
    return db_exec_command(db, &api_keys_deactivate, p, err);
}

int
api_keys_db_count_usable(struct db *db, const char *consumer_id, long *n,
                         struct app_err *err)
{
    const char *p[] = {consumer_id};
    char count[24];
    if (db_exec_value(db, &api_keys_count_usable, p, count, sizeof count, err) <
        0)
        return -1;
    *n = strtol(count, NULL, 10);
    return 0;
}
