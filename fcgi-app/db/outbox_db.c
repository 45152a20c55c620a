/*
 * fcgi-app/db/outbox_db.c — see outbox_db.h.
 */
#include "outbox_db.h"
#include "common/strbuf.h"
#include "common/text.h"

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

/* One sequence for events without a customer, serialised by an advisory
 * lock (an arbitrary constant owned by this module).  The lock must be its
 * own statement: under READ COMMITTED the INSERT that follows then takes a
 * snapshot that sees whatever the previous lock holder committed. */
DB_STMT(outbox_lock_system_seq, 0, "SELECT pg_advisory_xact_lock(7345112)");

/*
 * The INSERT takes the next sequence of the event's customer (`seq_where`)
 * and clock_timestamp() itself, splices both into the payload built in C
 * ($6 <sequence> $7 <created_at> $8: outbox_payload_parts), and returns
 * what the inline publish needs: the stored payload text, the AMQP
 * timestamp, the owner's consumer_name and the customer's latest pending
 * sequence before this event (per-customer order, outbox/order.h), judged
 * under the caller's row lock (customer_events_unpublished_order_idx, one
 * customer's few entries, walked backwards).
 */
/* clang-format off */
#define INSERT_EVENT(seq_where)                                                \
    "INSERT INTO customer_events AS e (event_id, customer_id, consumer_id, "   \
    "  event_type, source_service, sequence, payload, request_id, "            \
    "  created_at) "                                                           \
    "SELECT $1::uuid, $2::uuid, $3::uuid, $4::text, $5::text, s.seq, "         \
    "       ($6::text || s.seq || $7::text || "                                \
    "        to_json(fintegrate_ts(s.ts))::text || $8::text)::json, "          \
    "       $9::text, s.ts "                                                   \
    "  FROM (SELECT COALESCE(max(sequence), 0) + 1 AS seq, "                   \
    "               clock_timestamp() AS ts "                                  \
    "          FROM customer_events WHERE " seq_where ") s "                   \
    "RETURNING e.sequence, e.payload::text, "                                  \
    "  floor(extract(epoch FROM e.created_at))::bigint, "                      \
    "  (SELECT c.consumer_name FROM consumers c "                              \
    "    WHERE c.consumer_id = e.consumer_id), "                               \
    "  COALESCE((SELECT p.sequence FROM customer_events p "                    \
    "     WHERE " ORDER_KEY("p") " = " ORDER_KEY("e")                          \
    "       AND " UNPUBLISHED("p")                                             \
    "       AND p.sequence < e.sequence "                                      \
    "     ORDER BY " ORDER_KEY("p") " DESC, p.sequence DESC "                  \
    "     LIMIT 1), 0)"
/* clang-format on */

DB_STMT(outbox_insert_customer, 9, INSERT_EVENT("customer_id = $2::uuid"));
DB_STMT(outbox_insert_system, 9, INSERT_EVENT("customer_id IS NULL"));

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
/* clang-format off */
#define PREV_PENDING                                                           \
    "COALESCE((SELECT max(p.sequence) FROM customer_events p "                 \
    "           WHERE " ORDER_KEY("p") " = " ORDER_KEY("e")                    \
    "             AND " UNPUBLISHED("p")                                       \
    "             AND p.sequence < e.sequence), 0)"
/* clang-format on */

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

/* The text of `obj` without its outer braces, appended to sb. */
static void
append_inner(struct strbuf *sb, const json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    size_t n = text ? strlen(text) : 0;
    if (n < 2) {
        sb->oom = true; /* out of memory: make the caller fail */
    } else {
        sb_append(sb, text + 1, n - 2);
    }
    free(text);
}

int
outbox_payload_parts(const struct event_new *ev, const char *event_id,
                     struct outbox_payload_parts *out)
{
    /* The three runs of keys between the database's two values, each
     * dumped by jansson exactly as the whole object would be. */
    json_t *head =
        json_pack("{s:s, s:s, s:s}", "schema_version", "1.0", "event_id",
                  event_id, "event_type", ev->event_type);
    json_t *mid = json_pack("{s:s, s:s*, s:O}", "consumer_id", ev->consumer_id,
                            "customer_id", ev->customer_id, "data", ev->data);
    json_t *tail = json_pack("{s:s, s:s?}", "source_service",
                             ev->source_service, "request_id", ev->request_id);
    struct strbuf a = STRBUF_INIT, b = STRBUF_INIT, c = STRBUF_INIT;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (head == NULL || mid == NULL || tail == NULL)
        goto out;
    sb_puts(&a, "{");
    append_inner(&a, head);
    sb_puts(&a, ",\"sequence\":");
    sb_puts(&b, ",");
    append_inner(&b, mid);
    sb_puts(&b, ",\"metadata\":{\"created_at\":");
    sb_puts(&c, ",");
    append_inner(&c, tail);
    sb_puts(&c, "}}");
    if (a.oom || b.oom || c.oom)
        goto out;
    out->prefix = sb_steal(&a);
    out->middle = sb_steal(&b);
    out->suffix = sb_steal(&c);
    if (out->prefix == NULL || out->middle == NULL || out->suffix == NULL) {
        outbox_payload_parts_free(out);
        goto out;
    }
    rc = 0;
out:
    sb_free(&a);
    sb_free(&b);
    sb_free(&c);
    json_decref(head);
    json_decref(mid);
    json_decref(tail);
    return rc;
}

void
outbox_payload_parts_free(struct outbox_payload_parts *parts)
{
    free(parts->prefix);
    free(parts->middle);
    free(parts->suffix);
    parts->prefix = parts->middle = parts->suffix = NULL;
}

char *
outbox_payload(const struct event_new *ev, const char *event_id,
               long long sequence, const char *created_at)
{
    struct outbox_payload_parts parts;
    struct strbuf sb = STRBUF_INIT;
    json_t *ts = json_string(created_at);
    char *ts_text = ts ? json_dumps(ts, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    char *text = NULL;

    if (ts_text != NULL && outbox_payload_parts(ev, event_id, &parts) == 0) {
        sb_printf(&sb, "%s%lld%s%s%s", parts.prefix, sequence, parts.middle,
                  ts_text, parts.suffix);
        outbox_payload_parts_free(&parts);
        text = sb.oom ? NULL : sb_steal(&sb);
    }
    sb_free(&sb);
    free(ts_text);
    json_decref(ts);
    return text;
}

bool
outbox_event_from_json(const json_t *obj, struct outbox_event *out)
{
    const json_t *payload = json_object_get(obj, "payload");
    memset(out, 0, sizeof *out);
    out->event_id = json_string_value(json_object_get(obj, "event_id"));
    out->event_type = json_string_value(json_object_get(obj, "event_type"));
    out->consumer_name =
        json_string_value(json_object_get(obj, "consumer_name"));
    out->payload = json_string_value(payload);
    out->payload_len = json_string_length(payload);
    out->request_id = json_string_value(json_object_get(obj, "request_id"));
    out->order_key = json_string_value(json_object_get(obj, "order_key"));
    out->created_at = "";
    out->created_epoch =
        (long long)json_integer_value(json_object_get(obj, "created_epoch"));
    out->sequence =
        (long long)json_integer_value(json_object_get(obj, "sequence"));
    out->prev_pending =
        (long long)json_integer_value(json_object_get(obj, "prev_pending"));
    out->try_count = 0;
    return out->event_id != NULL && out->event_type != NULL &&
           out->consumer_name != NULL && out->payload != NULL &&
           out->order_key != NULL && out->sequence > 0;
}

#define NIL_UUID_TEXT "00000000-0000-0000-0000-000000000000"

int
outbox_db_append(struct db *db, const struct event_new *ev, char event_id[37],
                 json_t **publish, struct app_err *err)
{
    struct outbox_payload_parts parts = {0};
    PGresult *res = NULL;
    int rc = -1;

    if (publish != NULL)
        *publish = NULL;
    uuid_new(event_id);
    if (outbox_payload_parts(ev, event_id, &parts) < 0) {
        err_set(err, 500, "Out of memory building the event");
        goto out;
    }
    if (ev->customer_id == NULL &&
        db_exec_command(db, &outbox_lock_system_seq, NULL, err) < 0)
        goto out;
    const char *p[] = {event_id,       ev->customer_id,    ev->consumer_id,
                       ev->event_type, ev->source_service, parts.prefix,
                       parts.middle,   parts.suffix,       ev->request_id};
    res = db_exec(db,
                  ev->customer_id != NULL ? &outbox_insert_customer
                                          : &outbox_insert_system,
                  p, err);
    if (res == NULL)
        goto out;
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 3)) {
        err_set(err, 500, "Internal error writing an event");
        err_detail(err, "outbox insert: %d rows, or no owner's name",
                   PQntuples(res));
        goto out;
    }
    if (publish != NULL) {
        *publish = json_pack(
            "{s:s, s:s, s:s, s:s%, s:s?, s:s, s:I, s:I, s:I}", "event_id",
            event_id, "event_type", ev->event_type, "consumer_name",
            PQgetvalue(res, 0, 3), "payload", PQgetvalue(res, 0, 1),
            (size_t)PQgetlength(res, 0, 1), "request_id", ev->request_id,
            "order_key", ev->customer_id ? ev->customer_id : NIL_UUID_TEXT,
            "sequence", (json_int_t)strtoll(PQgetvalue(res, 0, 0), NULL, 10),
            "created_epoch",
            (json_int_t)strtoll(PQgetvalue(res, 0, 2), NULL, 10),
            "prev_pending",
            (json_int_t)strtoll(PQgetvalue(res, 0, 4), NULL, 10));
        if (*publish == NULL) {
            err_set(err, 500, "Out of memory building the event");
            goto out;
        }
    }
    rc = 0;
out:
    PQclear(res);
    outbox_payload_parts_free(&parts);
    return rc;
}
