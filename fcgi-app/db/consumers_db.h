/*
 * fcgi-app/db/consumers_db.h — consumers (the banking systems) and the
 * write side of their API keys.
 */
#ifndef FI_CONSUMERS_DB_H
#define FI_CONSUMERS_DB_H

#include "db.h"

#include <jansson.h>
#include <stdbool.h>

struct consumer {
    bool found;
    char consumer_id[37];
    char consumer_name[64];
    char status[16];
    char created_at[40];
    char updated_at[40];
};

/* Inserts a consumer; a taken name is a 409 in `err` (code 23505). */
int consumers_db_insert(struct db *db, const char *consumer_id,
                        const char *name, struct consumer *out,
                        struct app_err *err)
    __attribute__((warn_unused_result));
int consumers_db_get(struct db *db, const char *consumer_id,
                     struct consumer *out, struct app_err *err)
    __attribute__((warn_unused_result));
/* Reads and row-locks a consumer (FOR UPDATE) inside a transaction. */
int consumers_db_lock(struct db *db, const char *consumer_id,
                      struct consumer *out, struct app_err *err)
    __attribute__((warn_unused_result));
int consumers_db_set_status(struct db *db, const char *consumer_id,
                            const char *status, char updated_at[40],
                            struct app_err *err)
    __attribute__((warn_unused_result));

/* Every consumer's name (owned array of strings), for declaring queues. */
int consumers_db_names(struct db *db, json_t **names, struct app_err *err)
    __attribute__((warn_unused_result));

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
int keys_db_get(struct db *db, const char *hash, bool lock, struct key_row *out,
                struct app_err *err) __attribute__((warn_unused_result));

/* Deactivates the consumer's current key — active, or expired (whether or
 * not the lazy write-back marked it already: rotation retires it either
 * way); *prefixes = array of the
 * deactivated keys' {api_key_prefix, previous_status} (owned). */
int keys_db_deactivate_all(struct db *db, const char *consumer_id,
                           json_t **prefixes, struct app_err *err)
    __attribute__((warn_unused_result));

/* Inserts an active key; expires_at = now + `seconds`.  Writes the stored
 * expires_at into expires_at[40]. */
int keys_db_insert(struct db *db, const char *consumer_id, const char *hash,
                   const char *prefix, const char *seconds, char expires_at[40],
                   struct app_err *err) __attribute__((warn_unused_result));

/* Deactivates one key that is 'active' or 'expired' (the caller holds its
 * row, keys_db_get with `lock`).  The lazy 'expired' write-back is
 * api_keys_db_mark_expired (api_keys_db.h), which touches only an active
 * key past its expiry. */
int keys_db_deactivate(struct db *db, const char *hash, struct app_err *err)
    __attribute__((warn_unused_result));

/* Active, unexpired keys of a consumer. */
int keys_db_count_usable(struct db *db, const char *consumer_id, long *n,
                         struct app_err *err)
    __attribute__((warn_unused_result));

#endif
