/*
 * fcgi-app/db/consumers_db.c — see consumers_db.h.
 */
#include "consumers_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONSUMER_COLUMNS                                                       \
    "consumer_id, consumer_name, status, fintegrate_ts(created_at), "          \
    "fintegrate_ts(updated_at)"

DB_STMT(consumers_insert, 2,
        "INSERT INTO consumers (consumer_id, consumer_name) VALUES ($1, $2) "
        "RETURNING " CONSUMER_COLUMNS);
DB_STMT(consumers_get, 1,
        "SELECT " CONSUMER_COLUMNS " FROM consumers WHERE consumer_id = $1");
DB_STMT(consumers_lock, 1,
        "SELECT " CONSUMER_COLUMNS " FROM consumers WHERE consumer_id = $1 "
        "FOR UPDATE");
DB_STMT(consumers_set_status, 2,
        "UPDATE consumers SET status = $2, updated_at = clock_timestamp() "
        " WHERE consumer_id = $1 RETURNING fintegrate_ts(updated_at)");

DB_STMT(consumers_names, 0,
        "SELECT consumer_name FROM consumers ORDER BY consumer_name");

#define KEY_COLUMNS                                                            \
    "api_key_prefix, consumer_id, "                                            \
    "CASE WHEN api_key_status = 'active' AND expires_at <= now() "             \
    "     THEN 'expired' ELSE api_key_status END, "                            \
    "api_key_status = 'active', fintegrate_ts(created_at), "                   \
    "fintegrate_ts(expires_at), fintegrate_ts(updated_at)"

DB_STMT(keys_get, 1,
        "SELECT " KEY_COLUMNS
        " FROM consumer_api_keys WHERE api_key_hash = $1");
DB_STMT(keys_lock, 1,
        "SELECT " KEY_COLUMNS " FROM consumer_api_keys WHERE api_key_hash = $1 "
        "FOR UPDATE");
DB_STMT(keys_deactivate_all, 1,
        "WITH old AS (SELECT api_key_id, api_key_prefix, "
        "                    CASE WHEN api_key_status = 'expired' "
        "                           OR expires_at <= now() THEN 'expired' "
        "                         ELSE 'active' END AS previous_status "
        "               FROM consumer_api_keys "
        "              WHERE consumer_id = $1 "
        "                AND api_key_status IN ('active', 'expired') "
        "                FOR UPDATE) "
        "UPDATE consumer_api_keys k SET api_key_status = 'deactivated', "
        "       updated_at = clock_timestamp() "
        "  FROM old WHERE k.api_key_id = old.api_key_id "
        "RETURNING old.api_key_prefix, old.previous_status");
DB_STMT(keys_insert, 4,
        "INSERT INTO consumer_api_keys (consumer_id, api_key_hash, "
        "  api_key_prefix, expires_at) "
        "VALUES ($1, $2, $3, now() + make_interval(secs => $4::bigint)) "
        "RETURNING fintegrate_ts(expires_at)");
/* Deactivation only, from 'active' or 'expired'.  The lazy 'expired'
 * write-back is api_keys_db_mark_expired (api_keys_db.c), guarded by
 * api_key_status = 'active', so it cannot overwrite a concurrent
 * rotation's 'deactivated'. */
DB_STMT(keys_deactivate, 1,
        "UPDATE consumer_api_keys SET api_key_status = 'deactivated', "
        "       updated_at = clock_timestamp() "
        " WHERE api_key_hash = $1 "
        "   AND api_key_status IN ('active', 'expired')");
DB_STMT(keys_count_usable, 1,
        "SELECT count(*) FROM consumer_api_keys WHERE consumer_id = $1 "
        "   AND api_key_status = 'active' AND expires_at > now()");

static void
copy(char *dst, size_t n, const char *src)
{
    snprintf(dst, n, "%s", src);
}

static void
consumer_from_row(PGresult *res, struct consumer *out)
{
    out->found = true;
    copy(out->consumer_id, sizeof out->consumer_id, PQgetvalue(res, 0, 0));
    copy(out->consumer_name, sizeof out->consumer_name, PQgetvalue(res, 0, 1));
    copy(out->status, sizeof out->status, PQgetvalue(res, 0, 2));
    copy(out->created_at, sizeof out->created_at, PQgetvalue(res, 0, 3));
    copy(out->updated_at, sizeof out->updated_at, PQgetvalue(res, 0, 4));
}

static int
read_consumer(struct db *db, struct db_stmt *st, const char *const *p,
              struct consumer *out, struct app_err *err)
{
    memset(out, 0, sizeof *out);
    PGresult *res = db_exec(db, st, p, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 1)
        consumer_from_row(res, out);
    PQclear(res);
    return 0;
}

int
consumers_db_insert(struct db *db, const char *consumer_id, const char *name,
                    struct consumer *out, struct app_err *err)
{
    const char *p[] = {consumer_id, name};
    return read_consumer(db, &consumers_insert, p, out, err);
}

int
consumers_db_get(struct db *db, const char *consumer_id, struct consumer *out,
                 struct app_err *err)
{
    const char *p[] = {consumer_id};
    return read_consumer(db, &consumers_get, p, out, err);
}

int
consumers_db_lock(struct db *db, const char *consumer_id, struct consumer *out,
                  struct app_err *err)
{
    const char *p[] = {consumer_id};
    return read_consumer(db, &consumers_lock, p, out, err);
}

int
consumers_db_set_status(struct db *db, const char *consumer_id,
                        const char *status, char updated_at[40],
                        struct app_err *err)
{
    const char *p[] = {consumer_id, status};
    return db_exec_value(db, &consumers_set_status, p, updated_at, 40, err);
}

int
keys_db_get(struct db *db, const char *hash, bool lock, struct key_row *out,
            struct app_err *err)
{
    const char *p[] = {hash};
    memset(out, 0, sizeof *out);
    PGresult *res = db_exec(db, lock ? &keys_lock : &keys_get, p, err);
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
keys_db_deactivate_all(struct db *db, const char *consumer_id,
                       json_t **prefixes, struct app_err *err)
{
    const char *p[] = {consumer_id};
    *prefixes = NULL;
    PGresult *res = db_exec(db, &keys_deactivate_all, p, err);
    if (res == NULL)
        return -1;
    *prefixes = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(
            *prefixes,
            json_pack("{s:s, s:s}", "api_key_prefix", PQgetvalue(res, i, 0),
                      "previous_status", PQgetvalue(res, i, 1)));
    PQclear(res);
    return 0;
}

int
keys_db_insert(struct db *db, const char *consumer_id, const char *hash,
               const char *prefix, const char *seconds, char expires_at[40],
               struct app_err *err)
{
    const char *p[] = {consumer_id, hash, prefix, seconds};
    return db_exec_value(db, &keys_insert, p, expires_at, 40, err);
}

int
keys_db_deactivate(struct db *db, const char *hash, struct app_err *err)
{
    const char *p[] = {hash};
    return db_exec_command(db, &keys_deactivate, p, err);
}

int
keys_db_count_usable(struct db *db, const char *consumer_id, long *n,
                     struct app_err *err)
{
    const char *p[] = {consumer_id};
    char count[24];
    if (db_exec_value(db, &keys_count_usable, p, count, sizeof count, err) < 0)
        return -1;
    *n = strtol(count, NULL, 10);
    return 0;
}

int
consumers_db_names(struct db *db, json_t **names, struct app_err *err)
{
    *names = NULL;
    PGresult *res = db_exec(db, &consumers_names, NULL, err);
    if (res == NULL)
        return -1;
    *names = json_array();
    for (int i = 0; i < PQntuples(res); i++)
        json_array_append_new(*names, json_string(PQgetvalue(res, i, 0)));
    PQclear(res);
    return 0;
}
