/*
 * fcgi-app/db/customers_db.h — customer rows.
 *
 * `owner` arguments implement tenancy: NULL matches any customer (the
 * administrator), otherwise only customers of that consumer; another
 * consumer's customer is simply not found.
 */
#ifndef FI_CUSTOMERS_DB_H
#define FI_CUSTOMERS_DB_H

#include "db.h"

#include <jansson.h>
#include <stdbool.h>

struct customer {
    bool found;
    char customer_id[37];
    char consumer_id[37];
    char *name; /* owned; customer_free */
    char status[16];
    char created_at[40];
    char updated_at[40];
    json_t *tags; /* owned; keys in byte order of tag_key; NULL unless read */
};

void customer_free(struct customer *c);

/* Inserts a customer (in the caller's transaction); fills created_at and
 * updated_at of `c` from the database. */
int customers_db_insert(struct db *db, struct customer *c, struct app_err *err)
    __attribute__((warn_unused_result));

/* Reads a customer with its tags. */
int customers_db_get(struct db *db, const char *customer_id, const char *owner,
                     struct customer *out, struct app_err *err)
    __attribute__((warn_unused_result));

/* Reads and row-locks a customer (FOR UPDATE) inside a transaction. */
int customers_db_lock(struct db *db, const char *customer_id, const char *owner,
                      struct customer *out, struct app_err *err)
    __attribute__((warn_unused_result));

/* Sets the status of a locked customer; writes updated_at[40]. */
int customers_db_set_status(struct db *db, const char *customer_id,
                            const char *status, char updated_at[40],
                            struct app_err *err)
    __attribute__((warn_unused_result));

/* updated_at = now (clock time) for a locked customer; e.g. a tag change. */
int customers_db_touch(struct db *db, const char *customer_id,
                       struct app_err *err) __attribute__((warn_unused_result));

/* Deletes a locked customer (its tags go with it); writes deleted_at[40]. */
int customers_db_delete(struct db *db, const char *customer_id,
                        char deleted_at[40], struct app_err *err)
    __attribute__((warn_unused_result));

#endif
