/*
 * fcgi-app/db/outbox_db.c — see outbox_db.h.
 */
#include "outbox_db.h"
#include "../core/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIL_UUID "'00000000-0000-0000-0000-000000000000'::uuid"
#define ORDER_KEY(t) "COALESCE(" t ".customer_id, " NIL_UUID ")"
/* "Pending", in the words of customer_events_unpublished_order_idx's
 * predicate (migration 009), so that the probe for an earlier pending event
 * can use only that index, never the created_at one. */
#define UNPUBLISHED(t)                                                         \
    t ".publish_status <> 'published' AND " t ".publish_status <> 'failed'"

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

/* What a publish needs of an event (struct outbox_event, in this order);
 * `tries` is the try counter the caller's summary reports. */
#define ROW_COLUMNS(prev_pending, tries)                                       \
    "SELECT e.event_id, e.event_type, c.consumer_name, e.payload::text, "      \
    "       e.request_id, " ORDER_KEY(                                         \
        "e") "::text, e.created_at::text, "                                    \
             "       floor(extract(epoch FROM e.created_at))::bigint, "        \
             "e.sequence, "                                                    \
             "       " prev_pending ", " tries                                 \
             "  FROM customer_events e JOIN consumers c "                      \
             "    ON c.consumer_id = e.consumer_id "

/* The latest pending event of the same customer before this one. */
#define PREV_PENDING                                                           \
    "COALESCE((SELECT max(p.sequence) FROM customer_events p "                 \
    "           WHERE " ORDER_KEY("p") " = " ORDER_KEY(                        \
        "e") "             AND " UNPUBLISHED("p") " "                          \
             "             AND p.sequence < e.sequence), 0)"

DB_STMT(outbox_load_ids, 1,
        ROW_COLUMNS(
            PREV_PENDING,
            "e.publish_try_count") " WHERE e.event_id IN "
                                   "       (SELECT "
                                   "json_array_elements_text($1::json)::uuid) "
                                   " ORDER BY e.created_at, e.sequence");

/* Resend ($8 NULL) and the relay ($8 = its back-off base in ms): pending
 * events of the period, not in flight (publish_try_count 0 and younger than
 * 30 s: its worker is publishing it right now), created before the run
 * began ($3); the relay only those due. */
#define PENDING_WHERE                                                          \
    " WHERE e.publish_status = 'pending' "                                     \
    "   AND e.created_at > now() - make_interval(days => $1::int) "            \
    "   AND e.created_at <= $3::timestamptz "                                  \
    "   AND ($2::json IS NULL OR e.event_type IN "                             \
    "        (SELECT json_array_elements_text($2::json))) "                    \
    "   AND NOT (e.publish_try_count = 0 "                                     \
    "            AND e.created_at > now() - interval '30 seconds') "           \
    "   AND ($8::float8 IS NULL OR NOT e.publish_last_refused "                \
    "        OR e.publish_last_tried_at IS NULL "                              \
    "        OR e.publish_last_tried_at + LEAST($8::float8 * "                 \
    "             power(2, GREATEST(e.publish_try_count - 1, 0)), "            \
    "             3600000) * interval '1 millisecond' <= now()) "

/* Redeliver: published, never confirmed, of one owner ($8) if given. */
#define UNDELIVERED_WHERE                                                      \
    " WHERE e.publish_status = 'published' "                                   \
    "   AND e.deliver_status = 'pending' "                                     \
    "   AND e.created_at > now() - make_interval(days => $1::int) "            \
    "   AND e.created_at <= $3::timestamptz "                                  \
    "   AND ($2::json IS NULL OR e.event_type IN "                             \
    "        (SELECT json_array_elements_text($2::json))) "                    \
    "   AND ($8::uuid IS NULL OR e.consumer_id = $8) "

/* The next batch after the keyset cursor ($4, $5, $6).  Two statements,
 * the first batch's without it: an "IS NULL OR" would keep even a generic
 * plan from starting the index scan at the cursor, and every batch would
 * wade through the index entries of the events the run already published. */
#define FIRST_BATCH                                                            \
    "   AND $4::timestamptz IS NULL AND $5::bigint IS NULL "                   \
    "   AND $6::uuid IS NULL "
#define NEXT_BATCH                                                             \
    "   AND e.created_at >= $4::timestamptz "                                  \
    "   AND (e.created_at, e.sequence, e.event_id) > "                         \
    "       ($4::timestamptz, $5::bigint, $6::uuid) "
#define BATCH_ORDER                                                            \
    " ORDER BY e.created_at, e.sequence, e.event_id "                          \
    " LIMIT $7 "                                                               \
    "   FOR UPDATE OF e SKIP LOCKED"

DB_STMT(outbox_lock_pending_first, 8,
        ROW_COLUMNS(PREV_PENDING, "e.publish_try_count")
            PENDING_WHERE FIRST_BATCH BATCH_ORDER);
DB_STMT(outbox_lock_pending_next, 8,
        ROW_COLUMNS(PREV_PENDING, "e.publish_try_count")
            PENDING_WHERE NEXT_BATCH BATCH_ORDER);
DB_STMT(outbox_lock_undelivered_first, 8,
        ROW_COLUMNS("0", "e.deliver_try_count")
            UNDELIVERED_WHERE FIRST_BATCH BATCH_ORDER);
DB_STMT(outbox_lock_undelivered_next, 8,
        ROW_COLUMNS("0", "e.deliver_try_count")
            UNDELIVERED_WHERE NEXT_BATCH BATCH_ORDER);

DB_STMT(outbox_now, 0, "SELECT clock_timestamp()::text");

DB_STMT(outbox_set_lock_timeout, 1,
        "SELECT set_config('lock_timeout', $1 || 'ms', true)");

/* An attempt's effects on its event; `r` holds (event_id, reason,
 * refused). */
#define RECORD_PUBLISH(from)                                                   \
    "UPDATE customer_events e SET "                                            \
    "  publish_try_count = e.publish_try_count + 1, "                          \
    "  publish_last_tried_at = clock_timestamp(), "                            \
    "  publish_status = CASE WHEN r.reason IS NULL THEN 'published' "          \
    "       WHEN e.publish_status = 'published' THEN 'published' "             \
    "       WHEN e.publish_try_count + 1 >= 10 THEN 'failed' "                 \
    "       ELSE 'pending' END, "                                              \
    "  published_at = CASE WHEN r.reason IS NULL "                             \
    "       THEN COALESCE(e.published_at, clock_timestamp()) "                 \
    "       ELSE e.published_at END, "                                         \
    "  publish_failure_reason = COALESCE(r.reason, "                           \
    "       e.publish_failure_reason), "                                       \
    "  publish_last_refused = r.reason IS NOT NULL AND r.refused "             \
    "  FROM " from " WHERE e.event_id = r.event_id"

DB_STMT(outbox_record_publish, 1,
        RECORD_PUBLISH("json_to_recordset($1::json) "
                       "  AS r(event_id uuid, reason text, refused boolean)"));
/* One event (the inline publish): keyed by its id, so the plan is always
 * the primary key.  The recordset form is estimated at 100 rows, and on a
 * table of a few thousand events its generic plan hashed them against a
 * sequential scan of the whole outbox, on every write. */
DB_STMT(outbox_record_publish_one, 3,
        RECORD_PUBLISH("(SELECT $1::uuid AS event_id, $2::text AS reason, "
                       "        $3::boolean AS refused) r"));

DB_STMT(outbox_record_redeliver, 1,
        "UPDATE customer_events e SET "
        "  deliver_try_count = e.deliver_try_count + 1, "
        "  deliver_last_tried_at = clock_timestamp(), "
        "  deliver_failure_reason = COALESCE(r.reason, "
        "       e.deliver_failure_reason) "
        "  FROM json_to_recordset($1::json) "
        "       AS r(event_id uuid, reason text, refused boolean) "
        " WHERE e.event_id = r.event_id");

DB_STMT(outbox_relay_pass, 1,
        "UPDATE outbox_relay_state SET last_pass_at = now(), "
        "       last_pass_published = $1");

void
outbox_rows_free(struct outbox_rows *rows)
{
    PQclear(rows->res);
    free(rows->ev);
    rows->res = NULL;
    rows->ev = NULL;
    rows->n = 0;
}

static const char *
value_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

/* Points rows->ev into `res` (taken over). */
static int
rows_from_result(PGresult *res, struct outbox_rows *rows, struct app_err *err)
{
    int n = PQntuples(res);
    rows->res = res;
    rows->n = 0;
    rows->ev = n > 0 ? calloc((size_t)n, sizeof *rows->ev) : NULL;
    if (n > 0 && rows->ev == NULL) {
        err_set(err, 500, "Out of memory loading events");
        outbox_rows_free(rows);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        struct outbox_event *ev = &rows->ev[i];
        ev->event_id = PQgetvalue(res, i, 0);
        ev->event_type = PQgetvalue(res, i, 1);
        ev->consumer_name = PQgetvalue(res, i, 2);
        ev->payload = PQgetvalue(res, i, 3);
        ev->payload_len = (size_t)PQgetlength(res, i, 3);
        ev->request_id = value_or_null(res, i, 4);
        ev->order_key = PQgetvalue(res, i, 5);
        ev->created_at = PQgetvalue(res, i, 6);
        ev->created_epoch = strtoll(PQgetvalue(res, i, 7), NULL, 10);
        ev->sequence = strtoll(PQgetvalue(res, i, 8), NULL, 10);
        ev->prev_pending = strtoll(PQgetvalue(res, i, 9), NULL, 10);
        ev->try_count = strtoll(PQgetvalue(res, i, 10), NULL, 10);
    }
    rows->n = (size_t)n;
    return 0;
}

int
outbox_db_load(struct db *db, const char *ids_json, struct outbox_rows *rows,
               struct app_err *err)
{
    const char *p[] = {ids_json};
    memset(rows, 0, sizeof *rows);
    PGresult *res = db_exec(db, &outbox_load_ids, p, err);
    return res ? rows_from_result(res, rows, err) : -1;
}

int
outbox_db_lock_batch(struct db *db, const struct redrive_query *q,
                     struct outbox_rows *rows, struct app_err *err)
{
    bool undelivered = q->kind == REDRIVE_REDELIVER;
    const char *last = undelivered
                           ? q->consumer_id
                           : (q->kind == REDRIVE_RELAY ? q->backoff_ms : NULL);
    const char *p[] = {
        q->period_days,    q->event_types,    q->run_start, q->after_created_at,
        q->after_sequence, q->after_event_id, q->limit,     last};
    memset(rows, 0, sizeof *rows);
    bool first = q->after_created_at == NULL;
    struct db_stmt *st = undelivered ? (first ? &outbox_lock_undelivered_first
                                              : &outbox_lock_undelivered_next)
                                     : (first ? &outbox_lock_pending_first
                                              : &outbox_lock_pending_next);
    PGresult *res = db_exec(db, st, p, err);
    return res ? rows_from_result(res, rows, err) : -1;
}

int
outbox_db_now(struct db *db, char *out, size_t size, struct app_err *err)
{
    return db_exec_value(db, &outbox_now, NULL, out, size, err);
}

int
outbox_db_lock_timeout(struct db *db, const char *ms, struct app_err *err)
{
    const char *p[] = {ms};
    return db_exec_command(db, &outbox_set_lock_timeout, p, err);
}

int
outbox_db_record(struct db *db, bool redeliver,
                 const struct outbox_record *recs, size_t n,
                 struct app_err *err)
{
    json_t *list = json_array();
    char *text = NULL;
    int rc = -1;

    if (n == 0) {
        json_decref(list);
        return 0;
    }
    if (n == 1 && !redeliver) {
        const char *one[] = {recs[0].event_id, recs[0].reason,
                             recs[0].refused ? "true" : "false"};
        json_decref(list);
        return db_exec_command(db, &outbox_record_publish_one, one, err);
    }
    for (size_t i = 0; list != NULL && i < n; i++)
        if (json_array_append_new(
                list, json_pack("{s:s, s:s?, s:b}", "event_id",
                                recs[i].event_id, "reason", recs[i].reason,
                                "refused", recs[i].refused)) < 0)
            goto out;
    text = list ? json_dumps(list, JSON_COMPACT) : NULL;
    if (text == NULL)
        goto out;
    const char *p[] = {text};
    rc = db_exec_command(
        db, redeliver ? &outbox_record_redeliver : &outbox_record_publish, p,
        err);
out:
    if (rc < 0 && text == NULL)
        err_set(err, 500, "Out of memory recording publish attempts");
    free(text);
    json_decref(list);
    return rc;
}

int
outbox_db_relay_pass(struct db *db, long long published, struct app_err *err)
{
    char text[24];
    snprintf(text, sizeof text, "%lld", published);
    const char *p[] = {text};
    return db_exec_command(db, &outbox_relay_pass, p, err);
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
