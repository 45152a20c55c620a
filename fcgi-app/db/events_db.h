/*
 * fcgi-app/db/events_db.h — reading the outbox (customer_events).
 */
#ifndef FI_EVENTS_DB_H
#define FI_EVENTS_DB_H

#include "db.h"

#include <jansson.h>
#include <stdbool.h>

/* Filters of GET /events; NULL members are "not given". */
struct events_filter {
    const char *owner; /* NULL = every consumer (administrator) */
    const char *customer_id;
    const char *event_types; /* a JSON array text */
    const char *publish_status;
    const char *deliver_status;
    const char *limit; /* decimal text */
    bool newest_first;
};

/* The matching events, each with every column (owned array; payload as a
 * JSON object). */
int events_db_list(struct db *db, const struct events_filter *f, json_t **list,
                   struct app_err *err) __attribute__((warn_unused_result));

/* The outbox's health numbers as an object (owned): pending_count,
 * oldest_pending_age_hours (or null), failed_count, undelivered_count,
 * delivery_failed_count; and the relay's latest pass as another (owned):
 * last_pass_at (or null), last_pass_published. */
int events_db_health(struct db *db, json_t **out, json_t **relay,
                     struct app_err *err) __attribute__((warn_unused_result));

/* A delivery confirmation, in the caller's transaction: locks the event
 * (of `owner` when given), writes the receipt once per (event, status),
 * and applies the status.  *found = false when there is no such event.
 * *out = {event_id, deliver_status, delivered_at} (owned);
 * *first_delivery = delivered_at was set by this call. */
struct confirmation {
    const char *event_id;
    const char *owner;
    const char *status;         /* received / processed / failed */
    const char *received_at;    /* or NULL = now */
    const char *failure_reason; /* or NULL */
};
int events_db_confirm(struct db *db, const struct confirmation *cf, bool *found,
                      json_t **out, bool *first_delivery, double *lag_seconds,
                      struct app_err *err) __attribute__((warn_unused_result));

#endif
