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
    const char *owner;          /* NULL = every consumer (administrator) */
    const char *customer_id;
    const char *event_types;    /* a JSON array text */
    const char *publish_status;
    const char *deliver_status;
    const char *limit;          /* decimal text */
    bool newest_first;
};

/* The matching events, each with every column (owned array; payload as a
 * JSON object). */
int events_db_list(struct db *db, const struct events_filter *f,
                   json_t **list, struct app_err *err)
    __attribute__((warn_unused_result));

#endif
