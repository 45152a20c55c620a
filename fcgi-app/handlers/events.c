/*
 * fcgi-app/handlers/events.c — GET /events: the caller's own events (the
 * administrator's: everyone's), oldest first unless order=desc.
 */
#include "handler.h"
#include "../db/events_db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
events_list(struct ctx *c, json_t **data, struct app_err *err)
{
    json_t *types = json_object_get(c->in, "event_types");
    json_t *limit = json_object_get(c->in, "limit");
    const char *order = ctx_str(c, "order");
    char limit_text[24];
    char *types_text = types ? json_dumps(types, JSON_COMPACT) : NULL;
    json_t *list = NULL;

    snprintf(limit_text, sizeof limit_text, "%lld",
             limit ? (long long)json_integer_value(limit) : 100LL);
    struct events_filter f = {
        .owner = ctx_owner_filter(c),
        .customer_id = ctx_str(c, "customer_id"),
        .event_types = types_text,
        .publish_status = ctx_str(c, "publish_status"),
        .deliver_status = ctx_str(c, "deliver_status"),
        .limit = limit_text,
        .newest_first = order != NULL && strcmp(order, "desc") == 0,
    };
    int rc = events_db_list(c->db, &f, &list, err);
    free(types_text);
    if (rc < 0)
        return err->status;
    *data = json_pack("{s:o}", "events", list);
    return 200;
}
