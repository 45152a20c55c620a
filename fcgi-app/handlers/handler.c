/*
 * fcgi-app/handlers/handler.c — what the handlers share: input accessors,
 * the end of a handler, the 404s, row locks and events.
 */
#include "handler.h"
#include "../db/consumers_db.h"
#include "../db/customers_db.h"
#include "../db/outbox_db.h"

const char *
ctx_str(const struct ctx *c, const char *field)
{
    return json_string_value(json_object_get(c->in, field));
}

const char *
ctx_owner_filter(const struct ctx *c)
{
    if (c->caller == NULL || c->caller->is_admin)
        return NULL;
    return c->caller->consumer_id;
}

int
ctx_append_event(struct ctx *c, const struct event_new *ev, char event_id[37],
                 struct app_err *err)
{
    json_t *publish = NULL;
    if (outbox_db_append(c->db, ev, event_id,
                         c->events != NULL ? &publish : NULL, err) < 0)
        return -1;
    if (publish != NULL && json_array_append_new(c->events, publish) < 0) {
        err_set(err, 500, "Out of memory recording an event");
        return -1;
    }
    return 0;
}

int
handler_done(struct ctx *c, int status, struct app_err *err)
{
    if (status < 400)
        return status;
    db_rollback(c->db);
    return err->status ? err->status : status;
}

int
customer_not_found(const char *customer_id, struct app_err *err)
{
    err_set(err, 404, "Customer %s not found", customer_id);
    return 404;
}

int
consumer_not_found(const char *consumer_id, struct app_err *err)
{
    err_set(err, 404, "Consumer %s not found", consumer_id);
    return 404;
}

int
customer_begin_locked(struct ctx *c, const char *customer_id,
                      struct customer *cu, struct app_err *err)
{
    if (db_begin(c->db, err) < 0 ||
        customers_db_lock(c->db, customer_id, ctx_owner_filter(c), cu, err) < 0)
        return -1;
    if (!cu->found) {
        customer_not_found(customer_id, err);
        return -1;
    }
    return 0;
}

int
consumer_begin_locked(struct ctx *c, const char *consumer_id,
                      struct consumer *co, struct app_err *err)
{
    if (db_begin(c->db, err) < 0 ||
        consumers_db_lock(c->db, consumer_id, co, err) < 0)
        return -1;
    if (!co->found) {
        consumer_not_found(consumer_id, err);
        return -1;
    }
    return 0;
}

/* Appends an event owned by consumer_id (about customer_id, or none). */
static int
append_event(struct ctx *c, const char *customer_id, const char *consumer_id,
             const char *event_type, json_t *data, char event_id[37],
             struct app_err *err)
{
    struct event_new ev = {
        .customer_id = customer_id,
        .consumer_id = consumer_id,
        .event_type = event_type,
        .source_service = c->source_service,
        .request_id = c->req->request_id,
        .data = data,
    };
    if (data == NULL) {
        err_set(err, 500, "Out of memory building the event");
        return -1;
    }
    return ctx_append_event(c, &ev, event_id, err);
}

int
customer_event(struct ctx *c, const struct customer *cu, const char *event_type,
               json_t *data, char event_id[37], struct app_err *err)
{
    return append_event(c, cu->customer_id, cu->consumer_id, event_type, data,
                        event_id, err);
}

int
system_event(struct ctx *c, const char *event_type, json_t *data,
             char event_id[37], struct app_err *err)
{
    return append_event(c, NULL, SYSTEM_CONSUMER_ID, event_type, data, event_id,
                        err);
}
