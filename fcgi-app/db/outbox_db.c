/*
 * fcgi-app/db/outbox_db.c — see outbox_db.h.
 */
#include "outbox_db.h"
#include "../core/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

DB_STMT(outbox_next_customer_seq, 1,
        "SELECT COALESCE(MAX(sequence), 0) + 1, "
        "       fintegrate_ts(clock_timestamp()) "
        "  FROM customer_events WHERE customer_id = $1");

/* One sequence for events without a customer, serialised by an advisory
 * lock (an arbitrary constant owned by this module).  The lock must be its
 * own statement: under READ COMMITTED the MAX() that follows then takes a
 * snapshot that sees whatever the previous lock holder committed. */
DB_STMT(outbox_lock_system_seq, 0, "SELECT pg_advisory_xact_lock(7345112)");
DB_STMT(outbox_next_system_seq, 0,
        "SELECT COALESCE(MAX(sequence), 0) + 1, "
        "       fintegrate_ts(clock_timestamp()) "
        "  FROM customer_events WHERE customer_id IS NULL");

DB_STMT(outbox_insert, 9,
        "INSERT INTO customer_events (event_id, customer_id, consumer_id, "
        "  event_type, source_service, sequence, payload, request_id, "
        "  created_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::timestamptz)");

DB_STMT(outbox_load, 1,
        "SELECT e.payload::text, e.event_type, c.consumer_name, e.request_id, "
        "       floor(extract(epoch FROM e.created_at))::bigint, "
        "       e.publish_status "
        "  FROM customer_events e JOIN consumers c USING (consumer_id) "
        " WHERE e.event_id = $1");

DB_STMT(outbox_record_publish, 2,
        "UPDATE customer_events SET "
        "  publish_try_count = publish_try_count + 1, "
        "  publish_last_tried_at = clock_timestamp(), "
        "  publish_status = CASE WHEN $2::text IS NULL THEN 'published' "
        "       WHEN publish_status = 'published' THEN 'published' "
        "       WHEN publish_try_count + 1 >= 10 THEN 'failed' "
        "       ELSE 'pending' END, "
        "  published_at = CASE WHEN $2::text IS NULL "
        "       THEN COALESCE(published_at, clock_timestamp()) "
        "       ELSE published_at END, "
        "  publish_failure_reason = COALESCE($2, publish_failure_reason) "
        " WHERE event_id = $1");

DB_STMT(outbox_record_redeliver, 2,
        "UPDATE customer_events SET "
        "  deliver_try_count = deliver_try_count + 1, "
        "  deliver_last_tried_at = clock_timestamp(), "
        "  deliver_failure_reason = COALESCE($2, deliver_failure_reason) "
        " WHERE event_id = $1");

void
outbox_event_free(struct outbox_event *ev)
{
    free(ev->payload);
    free(ev->request_id);
    ev->payload = ev->request_id = NULL;
}

int
outbox_db_load(struct db *db, const char *event_id, struct outbox_event *ev,
               bool *found, struct app_err *err)
{
    const char *p[] = {event_id};
    memset(ev, 0, sizeof *ev);
    *found = false;
    PGresult *res = db_exec(db, &outbox_load, p, err);
    if (res == NULL)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 1) {
        *found = true;
        snprintf(ev->event_id, sizeof ev->event_id, "%s", event_id);
        ev->payload = strdup(PQgetvalue(res, 0, 0));
        snprintf(ev->event_type, sizeof ev->event_type, "%s",
                 PQgetvalue(res, 0, 1));
        snprintf(ev->consumer_name, sizeof ev->consumer_name, "%s",
                 PQgetvalue(res, 0, 2));
        if (!PQgetisnull(res, 0, 3))
            ev->request_id = strdup(PQgetvalue(res, 0, 3));
        ev->created_epoch = strtoll(PQgetvalue(res, 0, 4), NULL, 10);
        snprintf(ev->publish_status, sizeof ev->publish_status, "%s",
                 PQgetvalue(res, 0, 5));
        if (ev->payload == NULL) {
            err_set(err, 500, "Out of memory loading an event");
            rc = -1;
        }
    }
    PQclear(res);
    return rc;
}

static int
record(struct db *db, struct db_stmt *st, const char *event_id,
       const char *reason, struct app_err *err)
{
    const char *p[] = {event_id, reason};
    return db_exec_command(db, st, p, err);
}

int
outbox_db_record_publish(struct db *db, const char *event_id,
                         const char *reason, struct app_err *err)
{
    return record(db, &outbox_record_publish, event_id, reason, err);
}

int
outbox_db_record_redeliver(struct db *db, const char *event_id,
                           const char *reason, struct app_err *err)
{
    return record(db, &outbox_record_redeliver, event_id, reason, err);
}

char *
outbox_payload(const struct event_new *ev, const char *event_id,
               long long sequence, const char *created_at)
{
    json_t *root = json_pack(
        "{s:s, s:s, s:s, s:I, s:s, s:s*, s:O, s:{s:s, s:s, s:s?}}",
        "schema_version", "1.0", "event_id", event_id, "event_type",
        ev->event_type, "sequence", (json_int_t)sequence, "consumer_id",
        ev->consumer_id, "customer_id", ev->customer_id, "data", ev->data,
        "metadata", "created_at", created_at, "source_service",
        ev->source_service, "request_id", ev->request_id);
    if (root == NULL)
        return NULL;
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

int
outbox_db_append(struct db *db, const struct event_new *ev, char event_id[37],
                 struct app_err *err)
{
    PGresult *res = NULL;
    char *payload = NULL;
    int rc = -1;

    if (ev->customer_id != NULL) {
        const char *p[] = {ev->customer_id};
        res = db_exec(db, &outbox_next_customer_seq, p, err);
    } else {
        res = db_exec(db, &outbox_lock_system_seq, NULL, err);
        if (res == NULL)
            goto out;
        PQclear(res);
        res = db_exec(db, &outbox_next_system_seq, NULL, err);
    }
    if (res == NULL)
        goto out;

    const char *seq_text = PQgetvalue(res, 0, 0);
    const char *created_at = PQgetvalue(res, 0, 1);
    long long seq = strtoll(seq_text, NULL, 10);
    uuid_new(event_id);
    payload = outbox_payload(ev, event_id, seq, created_at);
    if (payload == NULL) {
        err_set(err, 500, "Out of memory building the event");
        goto out;
    }
    const char *ins[] = {event_id,       ev->customer_id,    ev->consumer_id,
                         ev->event_type, ev->source_service, seq_text,
                         payload,        ev->request_id,     created_at};
    if (db_exec_command(db, &outbox_insert, ins, err) < 0)
        goto out;
    rc = 0;
out:
    PQclear(res);
    free(payload);
    return rc;
}
