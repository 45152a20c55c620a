/*
 * fcgi-app/db/api_keys_db.c — see api_keys_db.h.
 */
#include "api_keys_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

DB_STMT(api_keys_lookup, 1,
        "SELECT c.consumer_id, c.consumer_name, c.status = 'ACTIVE', "
        "       k.api_key_status, k.expires_at <= now(), "
        "       extract(epoch FROM k.expires_at)::float8 "
        "  FROM consumer_api_keys k JOIN consumers c USING (consumer_id) "
        " WHERE k.api_key_hash = $1");

DB_STMT(api_keys_mark_expired, 1,
        "UPDATE consumer_api_keys SET api_key_status = 'expired', "
        "       updated_at = now() "
        " WHERE api_key_hash = $1 AND api_key_status = 'active' "
        "   AND expires_at <= now()");

int
api_keys_db_lookup(struct db *db, const char *hash_hex, struct key_lookup *out,
                   struct app_err *err)
{
    const char *p[] = {hash_hex};
    memset(out, 0, sizeof *out);
    PGresult *res = db_exec(db, &api_keys_lookup, p, err);
    if (res == NULL)
        return -1;
    if (PQntuples(res) == 1) {
        out->found = true;
        snprintf(out->consumer_id, sizeof out->consumer_id, "%s",
                 PQgetvalue(res, 0, 0));
        snprintf(out->consumer_name, sizeof out->consumer_name, "%s",
                 PQgetvalue(res, 0, 1));
        out->consumer_active = PQgetvalue(res, 0, 2)[0] == 't';
        snprintf(out->key_status, sizeof out->key_status, "%s",
                 PQgetvalue(res, 0, 3));
        out->past_expiry = PQgetvalue(res, 0, 4)[0] == 't';
        out->expires_epoch = strtod(PQgetvalue(res, 0, 5), NULL);
    }
    PQclear(res);
    return 0;
}

int
api_keys_db_mark_expired(struct db *db, const char *hash_hex,
                         struct app_err *err)
{
    const char *p[] = {hash_hex};
    return db_exec_command(db, &api_keys_mark_expired, p, err);
}
