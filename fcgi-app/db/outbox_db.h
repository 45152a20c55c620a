/*
 * fcgi-app/db/outbox_db.h — writing events into the transactional outbox
 * (customer_events).
 *
 * outbox_db_append() must run inside the transaction that makes the change
 * the event describes, after that transaction has locked the customer row
 * (or created it): the next per-customer `sequence` and the event's
 * created_at (clock_timestamp()) are taken under that lock, so sequence
 * order and created_at order agree under concurrency.  Both are computed
 * inside the INSERT itself (one round trip), in a statement of its own
 * after the lock, so its snapshot sees every event committed before the
 * lock was granted.  Events without a customer (consumer and key events)
 * share one sequence, serialised by a transaction-scoped advisory lock.
 *
 * The payload is the message body of docs/API.md §8.2, built here once
 * (the database only splices the sequence and created_at into it) and
 * stored verbatim: whatever is published later is these bytes.
 */
#ifndef FI_OUTBOX_DB_H
#define FI_OUTBOX_DB_H

#include "db.h"

#include <jansson.h>
#include <stdbool.h>

struct event_new {
    const char *customer_id;    /* NULL for consumer and key events */
    const char *consumer_id;    /* the owner: whose queue it goes to */
    const char *event_type;     /* e.g. "customer_creation" */
    const char *source_service; /* "<METHOD>: <path>" */
    const char *request_id;
    json_t *data; /* borrowed: the payload's "data" */
};

/*
 * Inserts the event; writes its id into event_id[37].  When `publish` is
 * not NULL, *publish gets (owned; json_decref) what the inline publish
 * needs, as the INSERT returned it — the stored payload text, the owner's
 * consumer_name, the sequence, and prev_pending as seen under the lock —
 * so the step after commit sends it without reading it back
 * (outbox_event_from_json).  0 ok, -1 err.
 */
int outbox_db_append(struct db *db, const struct event_new *ev,
                     char event_id[37], json_t **publish, struct app_err *err)
    __attribute__((warn_unused_result));

/*
 * One event as a re-drive or the inline step sees it.  The strings point
 * into the result that outbox_rows owns.
 */
struct outbox_event {
    const char *event_id;
    const char *event_type;
    const char *consumer_name; /* the owner's name: routing key and queue */
    const char *payload;       /* the stored text, byte for byte */
    size_t payload_len;
    const char *request_id; /* NULL when none */
    const char *order_key;  /* customer_id, or the nil UUID */
    const char *created_at; /* full precision text: the keyset cursor */
    long long created_epoch;
    long long sequence;
    long long prev_pending; /* the sequence of the customer's latest pending
                               event before this one, 0 none: the
                               per-customer order rule (outbox/order.h) */
    long long try_count;    /* publish (or deliver) tries so far */
};

struct outbox_rows {
    PGresult *res; /* owns the strings */
    struct outbox_event *ev;
    size_t n;
};

void outbox_rows_free(struct outbox_rows *rows);

/*
 * Points `out` into `obj`, an object outbox_db_append returned (borrowed:
 * valid while obj lives).  false when obj is not such an object.
 */
bool outbox_event_from_json(const json_t *obj, struct outbox_event *out);

/* The events of `ids` (a JSON array of event ids), in sequence order per
 * customer: the inline step's just-committed events. */
int outbox_db_load(struct db *db, const char *ids_json,
                   struct outbox_rows *rows, struct app_err *err)
    __attribute__((warn_unused_result));

/* A re-drive's selection (docs/API.md §7.5). */
enum redrive_kind {
    REDRIVE_RESEND,    /* pending events */
    REDRIVE_REDELIVER, /* published, never confirmed */
    REDRIVE_RELAY,     /* pending and due (the back-off) */
};

struct redrive_query {
    enum redrive_kind kind;
    const char *period_days; /* integer text */
    const char *event_types; /* JSON array text, or NULL */
    const char *consumer_id; /* redeliver's owner filter, or NULL */
    const char *run_start;   /* events created after it wait for next time */
    const char *backoff_ms;  /* the relay's back-off base */
    const char *limit;       /* the batch size */
    /* The keyset cursor: the last event of the previous batch (NULL at the
     * start).  Each batch continues after it. */
    const char *after_created_at;
    const char *after_sequence;
    const char *after_event_id;
};

/* Locks the next batch (FOR UPDATE SKIP LOCKED) inside the caller's
 * transaction, in created_at order. */
int outbox_db_lock_batch(struct db *db, const struct redrive_query *q,
                         struct outbox_rows *rows, struct app_err *err)
    __attribute__((warn_unused_result));

/* The database's clock now, as text (a re-drive's run_start). */
int outbox_db_now(struct db *db, char *out, size_t size, struct app_err *err)
    __attribute__((warn_unused_result));

/* Bounds the batch transaction's lock waits (SET LOCAL lock_timeout). */
int outbox_db_lock_timeout(struct db *db, const char *ms, struct app_err *err)
    __attribute__((warn_unused_result));

/* One attempt's outcome. */
struct outbox_record {
    const char *event_id;
    const char *reason; /* NULL = success */
    bool refused;       /* a broker that answered refused it: back-off */
};

/*
 * Records the attempts of one batch in one statement: publish_* columns
 * (success makes the event published; a failure keeps it pending with the
 * reason, or failed once publish_try_count reaches OUTBOX_MAX_TRIES), or
 * deliver_* columns when `redeliver`.
 */
#define OUTBOX_MAX_TRIES 10
int outbox_db_record(struct db *db, bool redeliver,
                     const struct outbox_record *recs, size_t n,
                     struct app_err *err) __attribute__((warn_unused_result));

/* The relay's latest pass, for GET /events/health. */
int outbox_db_relay_pass(struct db *db, long long published,
                         struct app_err *err)
    __attribute__((warn_unused_result));

/* Builds the payload text (owned; free()).  Pure; unit-tested. */
char *outbox_payload(const struct event_new *ev, const char *event_id,
                     long long sequence, const char *created_at);

/*
 * The payload cut where the database puts the sequence and created_at:
 *   prefix <sequence> middle <created_at as a JSON string> suffix
 * is byte for byte outbox_payload() of the same event.  Owned strings
 * (outbox_payload_parts_free); 0, or -1 out of memory.  Pure; unit-tested.
 */
struct outbox_payload_parts {
    char *prefix, *middle, *suffix;
};
int outbox_payload_parts(const struct event_new *ev, const char *event_id,
                         struct outbox_payload_parts *out)
    __attribute__((warn_unused_result));
void outbox_payload_parts_free(struct outbox_payload_parts *parts);

#endif
