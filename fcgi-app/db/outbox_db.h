/*
 * fcgi-app/db/outbox_db.h — writing events into the transactional outbox
 * (customer_events).
 *
 * outbox_db_append() must run inside the transaction that makes the change
 * the event describes, after that transaction has locked the customer row
 * (or created it): the next per-customer `sequence` and the event's
 * created_at (clock_timestamp()) are taken under that lock, so sequence
 * order and created_at order agree under concurrency.  Events without a
 * customer (consumer and key events) share one sequence, serialised by a
 * transaction-scoped advisory lock.
 *
 * The payload is the message body of API.md section 5, built here once and
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

/* Inserts the event; writes its id into event_id[37].  0 ok, -1 err. */
int outbox_db_append(struct db *db, const struct event_new *ev,
                     char event_id[37], struct app_err *err)
    __attribute__((warn_unused_result));

/* What the publisher needs of one event. */
struct outbox_event {
    char event_id[37];
    char *payload; /* owned: the stored text, byte for byte */
    char event_type[64];
    char consumer_name[64]; /* the owner's name: routing key and queue */
    char *request_id;       /* owned; may be NULL */
    long long created_epoch;
    char publish_status[16];
};

void outbox_event_free(struct outbox_event *ev);

/* Loads one event for publishing.  *found = false when it does not exist. */
int outbox_db_load(struct db *db, const char *event_id, struct outbox_event *ev,
                   bool *found, struct app_err *err)
    __attribute__((warn_unused_result));

/* Records a publish attempt: success makes it published; a failure keeps
 * it pending with the reason, or failed once publish_try_count reaches
 * OUTBOX_MAX_TRIES.  `reason` NULL = success. */
#define OUTBOX_MAX_TRIES 10
int outbox_db_record_publish(struct db *db, const char *event_id,
                             const char *reason, struct app_err *err)
    __attribute__((warn_unused_result));

/* Records a redelivery attempt (deliver_try_count + 1). */
int outbox_db_record_redeliver(struct db *db, const char *event_id,
                               const char *reason, struct app_err *err)
    __attribute__((warn_unused_result));

/* Builds the payload text (owned; free()).  Pure; unit-tested. */
char *outbox_payload(const struct event_new *ev, const char *event_id,
                     long long sequence, const char *created_at);

#endif
