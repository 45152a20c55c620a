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

struct event_new {
    const char *customer_id;    /* NULL for consumer and key events */
    const char *consumer_id;    /* the owner: whose queue it goes to */
    const char *event_type;     /* e.g. "customer_creation" */
    const char *source_service; /* "<METHOD>: <path>" */
    const char *request_id;
    json_t *data;               /* borrowed: the payload's "data" */
};

/* Inserts the event; writes its id into event_id[37].  0 ok, -1 err. */
int outbox_db_append(struct db *db, const struct event_new *ev,
                     char event_id[37], struct app_err *err)
    __attribute__((warn_unused_result));

/* Builds the payload text (owned; free()).  Pure; unit-tested. */
char *outbox_payload(const struct event_new *ev, const char *event_id,
                     long long sequence, const char *created_at);

#endif
