/*
 * fcgi-app/db/events_db.c — see events_db.h.
 */
#include "events_db.h"

#include <stdlib.h>
#include <string.h>

#define EVENT_COLUMNS                                                          \
    "SELECT event_id, customer_id, consumer_id, event_type, source_service, "  \
    "       sequence, payload, request_id, "                                   \
    "       fintegrate_ts(created_at) AS created_at, publish_status, "         \
    "       fintegrate_ts(published_at) AS published_at, publish_try_count, "  \
    "       fintegrate_ts(publish_last_tried_at) AS publish_last_tried_at, "   \
    "       publish_failure_reason, deliver_status, "                          \
    "       fintegrate_ts(delivered_at) AS delivered_at, deliver_try_count, "  \
    "       fintegrate_ts(deliver_last_tried_at) AS deliver_last_tried_at, "   \
    "       deliver_failure_reason "                                           \
    "  FROM customer_events "

#define EVENT_FILTERS                                                          \
    " WHERE ($1::uuid IS NULL OR consumer_id = $1) "                           \
    "   AND ($2::uuid IS NULL OR customer_id = $2) "                           \
    "   AND ($3::json IS NULL OR event_type IN "                               \
    "        (SELECT json_array_elements_text($3::json))) "                    \
    "   AND ($4::text IS NULL OR publish_status = $4) "                        \
    "   AND ($5::text IS NULL OR deliver_status = $5) "

/* Two statements rather than a computed ORDER BY, so both use the index. */
DB_STMT(events_list_asc, 6,
        EVENT_COLUMNS EVENT_FILTERS
        " ORDER BY created_at, sequence, event_id LIMIT $6");
DB_STMT(events_list_desc, 6,
        EVENT_COLUMNS EVENT_FILTERS
        " ORDER BY created_at DESC, sequence DESC, event_id DESC LIMIT $6");

int
events_db_list(struct db *db, const struct events_filter *f, json_t **list,
               struct app_err *err)
{
    const char *p[] = {f->owner,          f->customer_id,    f->event_types,
                       f->publish_status, f->deliver_status, f->limit};
    return db_exec_rows(db,
                        f->newest_first ? &events_list_desc : &events_list_asc,
                        p, db_row_object, list, err);
}

/* Each count uses a partial index (migrations 003, 004, 006). */
DB_STMT(events_health, 0,
        "SELECT "
        " (SELECT count(*) FROM customer_events "
        "   WHERE publish_status = 'pending') AS pending_count, "
        " round((extract(epoch FROM now() - (SELECT min(created_at) "
        "   FROM customer_events WHERE publish_status = 'pending')) "
        "   / 3600.0)::numeric, 6)::float8 AS oldest_pending_age_hours, "
        " (SELECT count(*) FROM customer_events "
        "   WHERE publish_status = 'failed') AS failed_count, "
        " (SELECT count(*) FROM customer_events "
        "   WHERE publish_status = 'published' "
        "     AND deliver_status = 'pending') AS undelivered_count, "
        " (SELECT count(*) FROM customer_events "
        "   WHERE deliver_status = 'failed') AS delivery_failed_count, "
        " (SELECT fintegrate_ts(last_pass_at) FROM outbox_relay_state) "
        "   AS last_pass_at, "
        " (SELECT last_pass_published FROM outbox_relay_state) "
        "   AS last_pass_published");

DB_STMT(events_lock_one, 2,
        "SELECT consumer_id, customer_id, event_type "
        "  FROM customer_events "
        " WHERE event_id = $1 AND ($2::uuid IS NULL OR consumer_id = $2) "
        "   FOR UPDATE");

DB_STMT(events_receipt, 7,
        "INSERT INTO consumer_event_receipts (consumer_id, event_id, "
        "  customer_id, event_type, received_at, processing_status, "
        "  processing_failure_reason) "
        "VALUES ($1, $2, $3, $4, COALESCE($5::timestamptz, now()), $6, $7) "
        "ON CONFLICT (event_id, processing_status) DO NOTHING");

/* The last confirmation decides deliver_status; delivered_at is set once,
 * at the first received/processed; a confirmed event was evidently
 * published, whatever the publish side recorded. */
DB_STMT(events_apply_confirm, 3,
        "UPDATE customer_events e SET "
        "  deliver_status = CASE WHEN $2 = 'failed' THEN 'failed' "
        "                        ELSE 'delivered' END, "
        "  delivered_at = CASE WHEN $2 = 'failed' THEN e.delivered_at "
        "                      ELSE COALESCE(e.delivered_at, now()) END, "
        "  deliver_failure_reason = CASE WHEN $2 = 'failed' "
        "       THEN COALESCE($3, 'Dead-lettered by the consumer') "
        "       ELSE e.deliver_failure_reason END, "
        "  publish_status = 'published', "
        "  published_at = COALESCE(e.published_at, now()) "
        "  FROM customer_events old "
        " WHERE e.event_id = $1 AND old.event_id = e.event_id "
        "RETURNING e.event_id, e.deliver_status, "
        "  fintegrate_ts(e.delivered_at) AS delivered_at, "
        "  old.delivered_at IS NULL AND e.delivered_at IS NOT NULL, "
        "  extract(epoch FROM e.delivered_at - e.created_at)::float8");

int
events_db_health(struct db *db, json_t **out, json_t **relay,
                 struct app_err *err)
{
    *out = *relay = NULL;
    PGresult *res = db_exec(db, &events_health, NULL, err);
    if (res == NULL)
        return -1;
    *out = db_row_object(res, 0);
    PQclear(res);
    if (*out != NULL) {
        /* the relay's two columns move into their own object */
        *relay = json_object();
        const char *keys[] = {"last_pass_at", "last_pass_published"};
        for (size_t i = 0; *relay != NULL && i < 2; i++) {
            json_object_set(*relay, keys[i], json_object_get(*out, keys[i]));
            json_object_del(*out, keys[i]);
        }
        if (*relay == NULL) {
            json_decref(*out);
            *out = NULL;
        }
    }
    if (*out == NULL) {
        err_set(err, 500, "Out of memory reading the outbox's health");
        return -1;
    }
    return 0;
}

int
events_db_confirm(struct db *db, const struct confirmation *cf, bool *found,
                  json_t **out, bool *first_delivery, double *lag_seconds,
                  struct app_err *err)
{
    const char *lp[] = {cf->event_id, cf->owner};
    PGresult *ev = NULL, *res = NULL;
    int rc = -1;

    *found = false;
    *out = NULL;
    *first_delivery = false;
    ev = db_exec(db, &events_lock_one, lp, err);
    if (ev == NULL)
        goto out;
    if (PQntuples(ev) == 0) {
        rc = 0;
        goto out;
    }
    *found = true;
    const char *rp[] = {PQgetvalue(ev, 0, 0),
                        cf->event_id,
                        PQgetisnull(ev, 0, 1) ? NULL : PQgetvalue(ev, 0, 1),
                        PQgetvalue(ev, 0, 2),
                        cf->received_at,
                        cf->status,
                        cf->failure_reason};
    res = db_exec(db, &events_receipt, rp, err);
    if (res == NULL)
        goto out;
    PQclear(res);
    const char *ap[] = {cf->event_id, cf->status, cf->failure_reason};
    res = db_exec(db, &events_apply_confirm, ap, err);
    if (res == NULL)
        goto out;
    *out =
        json_pack("{s:s, s:s, s:o}", "event_id", PQgetvalue(res, 0, 0),
                  "deliver_status", PQgetvalue(res, 0, 1), "delivered_at",
                  PQgetisnull(res, 0, 2) ? json_null()
                                         : json_string(PQgetvalue(res, 0, 2)));
    *first_delivery = PQgetvalue(res, 0, 3)[0] == 't';
    *lag_seconds = strtod(PQgetvalue(res, 0, 4), NULL);
    rc = *out ? 0 : -1;
    if (rc < 0)
        err_set(err, 500, "Out of memory answering a confirmation");
out:
    PQclear(ev);
    PQclear(res);
    return rc;
}
