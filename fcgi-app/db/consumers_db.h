/*
 * fcgi-app/db/consumers_db.h — consumers (the banking systems).  Their API
 * keys are api_keys_db.h's.
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

#endif
