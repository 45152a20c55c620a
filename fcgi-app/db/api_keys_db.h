/*
 * fcgi-app/db/api_keys_db.h — every query on consumer_api_keys: the lookup
 * that authenticates a request, the reads and writes of the key endpoints,
 * and the lazy 'expired' write-back.
 *
 * Keys are found by the hex SHA-256 of their text (`hash`); the text itself
 * is never stored.  Who writes which status:
 *   'active'      api_keys_db_insert (a new key);
 *   'deactivated' api_keys_db_deactivate (one key) and
 *                 api_keys_db_deactivate_all (rotation), from 'active' or
 *                 'expired';
 *   'expired'     api_keys_db_mark_expired only, from 'active' past its
 *                 expiry.
 * A key is *shown* as expired as soon as its expiry passes, whether or not
 * the write-back has run yet.
 */
#ifndef FI_API_KEYS_DB_H
#define FI_API_KEYS_DB_H

#include "db.h"

#include <jansson.h>
#include <stdbool.h>

/* A key and its consumer, as authentication needs them. */
struct key_lookup {
    bool found;
    char consumer_id[37];
    char consumer_name[64];
    bool consumer_active; /* consumers.status = 'ACTIVE' */
    char key_status[16];  /* active / expired / deactivated, as stored */
    bool past_expiry;     /* expires_at <= now() */
    double expires_epoch; /* expires_at as Unix time */
};

/* Looks a key up for authentication.  0 ok (found or not), -1 on a
 * database error. */
int api_keys_db_lookup(struct db *db, const char *hash, struct key_lookup *out,
                       struct app_err *err) __attribute__((warn_unused_result));

/* The lazy write-back of 'expired' for a key that is still stored 'active'
 * past its expiry: one guarded statement (active and past expiry), so that
 * it never overwrites a concurrent rotation's or deactivation's
 * 'deactivated'.  Best effort: a failure is ignored (the next request that
 * finds the key expired tries again).  Run it outside a transaction. */
void api_keys_db_mark_expired(struct db *db, const char *hash);

/* A key row as GET /consumer/api-key shows it. */
struct key_row {
    bool found;
    char api_key_prefix[16];
    char consumer_id[37];
    char status[16];    /* with 'expired' computed for a past expiry */
    bool stored_active; /* api_key_status = 'active' in the row */
    char created_at[40];
    char expires_at[40];
    char updated_at[40];
};

/* Looks a key up by hash; FOR UPDATE when `lock`. */
int api_keys_db_get(struct db *db, const char *hash, bool lock,
                    struct key_row *out, struct app_err *err)
    __attribute__((warn_unused_result));

/* Deactivates the consumer's current key — active, or expired (whether or
 * not the lazy write-back marked it already: rotation retires it either
 * way); *prefixes = array of the deactivated keys' {api_key_prefix,
 * previous_status} (owned). */
int api_keys_db_deactivate_all(struct db *db, const char *consumer_id,
                               json_t **prefixes, struct app_err *err)
    __attribute__((warn_unused_result));

/* Inserts an active key; expires_at = now + `seconds`.  Writes the stored
 * expires_at into expires_at[40]. */
int api_keys_db_insert(struct db *db, const char *consumer_id, const char *hash,
                       const char *prefix, const char *seconds,
                       char expires_at[40], struct app_err *err)
    __attribute__((warn_unused_result));

/* Deactivates one key that is 'active' or 'expired' (the caller holds its
 * row, api_keys_db_get with `lock`). */
int api_keys_db_deactivate(struct db *db, const char *hash, struct app_err *err)
    __attribute__((warn_unused_result));

/* Active, unexpired keys of a consumer. */
int api_keys_db_count_usable(struct db *db, const char *consumer_id, long *n,
                             struct app_err *err)
    __attribute__((warn_unused_result));

#endif
