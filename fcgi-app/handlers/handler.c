/*
 * fcgi-app/handlers/handler.c — input accessors shared by the handlers.
 */
#include "handler.h"

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
