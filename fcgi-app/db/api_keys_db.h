/*
 * fcgi-app/db/api_keys_db.h — API key lookups for authentication.
 */
#ifndef FI_API_KEYS_DB_H
#define FI_API_KEYS_DB_H

#include "db.h"

#include <stdbool.h>

struct key_lookup {
    bool found;
    char consumer_id[37];
    char consumer_name[64];
    bool consumer_active; /* consumers.status = 'ACTIVE' */
    char key_status[16];  /* active / expired / deactivated */
    bool past_expiry;     /* expires_at <= now() */
    double expires_epoch; /* expires_at as Unix time */
};

/* Looks a key up by the hex SHA-256 of its text.  0 ok (found or not), -1
 * on a database error. */
int api_keys_db_lookup(struct db *db, const char *hash_hex,
                       struct key_lookup *out, struct app_err *err)
    __attribute__((warn_unused_result));

/* Writes back 'expired' for an active key past its expiry (lazy). */
int api_keys_db_mark_expired(struct db *db, const char *hash_hex,
                             struct app_err *err)
    __attribute__((warn_unused_result));

#endif
