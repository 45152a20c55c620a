/*
 * fcgi-app/db/tags_db.h — a customer's key/value tags.
 *
 * All calls that change tags run inside the caller's transaction, after the
 * customer row was locked (customers_db_lock), so concurrent tag changes on
 * one customer serialise and the "full tags after the change" of the event
 * is exact.
 */
#ifndef FI_TAGS_DB_H
#define FI_TAGS_DB_H

#include "db.h"

#include <jansson.h>
#include <stdbool.h>

/* All tags as an object, keys in ascending byte order (owned). */
int tags_db_all(struct db *db, const char *customer_id, json_t **tags,
                struct app_err *err) __attribute__((warn_unused_result));

/* Inserts every pair of `tags` (an object; borrowed). */
int tags_db_insert(struct db *db, const char *customer_id, const json_t *tags,
                   struct app_err *err) __attribute__((warn_unused_result));

/* One tag's value (owned; free()), or *value = NULL when there is none. */
int tags_db_get(struct db *db, const char *customer_id, const char *owner,
                const char *tag_key, char **value, struct app_err *err)
    __attribute__((warn_unused_result));

/* Each sets *found; a missing tag changes nothing. */
int tags_db_delete(struct db *db, const char *customer_id, const char *tag_key,
                   bool *found, struct app_err *err)
    __attribute__((warn_unused_result));
int tags_db_rename(struct db *db, const char *customer_id, const char *tag_key,
                   const char *new_key, bool *found, struct app_err *err)
    __attribute__((warn_unused_result));
int tags_db_set_value(struct db *db, const char *customer_id,
                      const char *tag_key, const char *value, bool *found,
                      struct app_err *err) __attribute__((warn_unused_result));

#endif
