/*
 * fcgi-app/db/outbox_db.c — see outbox_db.h.
 */
#include "outbox_db.h"
#include "../core/text.h"

#include <stdio.h>
#include <stdlib.h>

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
    PGresult *r2 = db_exec(db, &outbox_insert, ins, err);
    if (r2 == NULL)
        goto out;
    PQclear(r2);
    rc = 0;
out:
    PQclear(res);
    free(payload);
    return rc;
}
