/*
 * fcgi-app/handlers/handler.c — input accessors shared by the handlers.
 */
#include "handler.h"
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
