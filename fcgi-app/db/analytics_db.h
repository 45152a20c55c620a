/*
 * fcgi-app/db/analytics_db.h — customer analytics snapshots: a time-lapse
 * of a customer (name, status, tags, counts) taken on request.  Snapshots
 * carry their owner's consumer_id, so they stay readable after the customer
 * is deleted.
 */
#ifndef FI_ANALYTICS_DB_H
#define FI_ANALYTICS_DB_H

#include "db.h"

#include <jansson.h>

/* Takes a snapshot in one statement.  *data = {analytics_id, customer_id,
 * snapshot_at} (owned), or NULL when the customer is not found. */
int analytics_db_snapshot(struct db *db, const char *customer_id,
                          const char *owner, json_t **data, struct app_err *err)
    __attribute__((warn_unused_result));

/* The newest `limit` snapshots, newest first (owned array). */
int analytics_db_list(struct db *db, const char *customer_id, const char *owner,
                      const char *limit, json_t **list, struct app_err *err)
    __attribute__((warn_unused_result));

#endif
