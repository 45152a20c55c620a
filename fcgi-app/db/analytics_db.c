/*
 * fcgi-app/db/analytics_db.c — see analytics_db.h.
 */
#include "analytics_db.h"
#include "common/text.h"

DB_STMT(
    analytics_snapshot, 3,
    "INSERT INTO customer_analytics (analytics_id, customer_id, "
    "  consumer_id, name, status, tags, tag_count, event_count, "
    "  customer_created_at, customer_updated_at, snapshot_at) "
    "SELECT $1, c.customer_id, c.consumer_id, c.name, c.status, "
    "       COALESCE(t.tags, '{}'), COALESCE(t.n, 0), "
    "       (SELECT count(*) FROM customer_events e "
    "         WHERE e.customer_id = c.customer_id), "
    "       c.created_at, c.updated_at, clock_timestamp() "
    "  FROM customers c "
    "  LEFT JOIN LATERAL (SELECT jsonb_object_agg(tag_key, tag_value) AS "
    "                            tags, count(*) AS n "
    "                       FROM customer_tags "
    "                      WHERE customer_id = c.customer_id) t ON true "
    " WHERE c.customer_id = $2 AND ($3::uuid IS NULL OR c.consumer_id = $3) "
    "RETURNING analytics_id, customer_id, fintegrate_ts(snapshot_at) AS "
    "          snapshot_at");

/* jsonb forgets key order; tags come back sorted by byte order of key. */
DB_STMT(
    analytics_list, 3,
    "SELECT a.analytics_id, a.customer_id, a.consumer_id, a.name, "
    "       a.status, "
    "       (SELECT COALESCE(json_object_agg(key, value "
    "                        ORDER BY key COLLATE \"C\"), '{}') "
    "          FROM jsonb_each(a.tags)) AS tags, "
    "       a.tag_count, a.event_count, "
    "       fintegrate_ts(a.customer_created_at) AS customer_created_at, "
    "       fintegrate_ts(a.customer_updated_at) AS customer_updated_at, "
    "       fintegrate_ts(a.snapshot_at) AS snapshot_at "
    "  FROM customer_analytics a "
    " WHERE a.customer_id = $1 AND ($2::uuid IS NULL OR a.consumer_id = $2) "
    " ORDER BY a.snapshot_at DESC, a.analytics_id "
    " LIMIT $3");

int
analytics_db_snapshot(struct db *db, const char *customer_id, const char *owner,
                      json_t **data, struct app_err *err)
{
    char id[37];
    uuid_new(id);
    const char *p[] = {id, customer_id, owner};
    *data = NULL;
    PGresult *res = db_exec(db, &analytics_snapshot, p, err);
    if (res == NULL)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 1) {
        *data = db_row_object(res, 0);
        if (*data == NULL) {
            err_set(err, 500, "Out of memory reading a snapshot");
            rc = -1;
        }
    }
    PQclear(res);
    return rc;
}

int
analytics_db_list(struct db *db, const char *customer_id, const char *owner,
                  const char *limit, json_t **list, struct app_err *err)
{
    const char *p[] = {customer_id, owner, limit};
    return db_exec_rows(db, &analytics_list, p, db_row_object, list, err);
}
