/*
 * fcgi-app/handlers/customers.c — POST/GET/DELETE /customer/data and
 * PATCH /customer/change-status.
 *
 * Every change and its outbox event are written in one transaction; the
 * event belongs to the customer's owner (customers.consumer_id), also when
 * the administrator makes the change.
 */
#include "handler.h"
#include "common/text.h"
#include "../db/customers_db.h"
#include "../db/tags_db.h"

#include <stdio.h>
#include <string.h>

int
customers_create(struct ctx *c, json_t **data, struct app_err *err)
{
    struct customer cu = {0};
    json_t *ev_data = NULL;
    char event_id[37];
    const char *state = ctx_str(c, "status");
    json_t *tags = json_object_get(c->in, "tags"); /* optional */
    int status = 500;

    uuid_new(cu.customer_id);
    memcpy(cu.consumer_id, c->caller->consumer_id, sizeof cu.consumer_id);
    snprintf(cu.status, sizeof cu.status, "%s", state ? state : "ACTIVE");
    cu.name = (char *)ctx_str(c, "name"); /* borrowed: not freed below */

    if (db_begin(c->db, err) < 0 || customers_db_insert(c->db, &cu, err) < 0)
        goto out;
    if (tags != NULL && json_object_size(tags) > 0 &&
        tags_db_insert(c->db, cu.customer_id, tags, err) < 0)
        goto out;
    ev_data = json_pack("{s:s, s:s, s:s}", "customer_id", cu.customer_id,
                        "name", cu.name, "status", cu.status);
    if (ev_data != NULL && tags != NULL) {
        if (tags_db_all(c->db, cu.customer_id, &cu.tags, err) < 0)
            goto out;
        json_object_set(ev_data, "tags", cu.tags);
    }
    if (customer_event(c, &cu, "customer_creation", ev_data, event_id, err) <
            0 ||
        db_commit(c->db, err) < 0)
        goto out;

    *data = json_pack("{s:s, s:s, s:s, s:s, s:s}", "customer_id",
                      cu.customer_id, "name", cu.name, "status", cu.status,
                      "created_at", cu.created_at, "event_id", event_id);
    status = 201;
out:
    json_decref(ev_data);
    cu.name = NULL;
    customer_free(&cu);
    return handler_done(c, status, err);
}

int
customers_get(struct ctx *c, json_t **data, struct app_err *err)
{
    struct customer cu = {0};
    const char *id = ctx_str(c, "customer_id");
    int status = 500;

    if (customers_db_get(c->db, id, ctx_owner_filter(c), &cu, err) < 0)
        goto out;
    if (!cu.found) {
        customer_not_found(id, err);
        goto out;
    }
    *data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "customer_id",
                      cu.customer_id, "name", cu.name, "status", cu.status,
                      "created_at", cu.created_at, "updated_at", cu.updated_at,
                      "tags", cu.tags);
    status = 200;
out:
    customer_free(&cu);
    return handler_done(c, status, err);
}

int
customers_delete(struct ctx *c, json_t **data, struct app_err *err)
{
    struct customer cu = {0};
    json_t *ev_data = NULL;
    char event_id[37], deleted_at[40];
    const char *id = ctx_str(c, "customer_id");
    int status = 500;

    if (customer_begin_locked(c, id, &cu, err) < 0)
        goto out;
    ev_data = json_pack("{s:s, s:s, s:s}", "customer_id", cu.customer_id,
                        "name", cu.name, "status", cu.status);
    if (customer_event(c, &cu, "customer_deletion", ev_data, event_id, err) <
            0 ||
        customers_db_delete(c->db, id, deleted_at, err) < 0 ||
        db_commit(c->db, err) < 0)
        goto out;

    *data = json_pack("{s:s, s:s, s:s}", "customer_id", cu.customer_id,
                      "deleted_at", deleted_at, "event_id", event_id);
    status = 200;
out:
    json_decref(ev_data);
    customer_free(&cu);
    return handler_done(c, status, err);
}

int
customers_change_status(struct ctx *c, json_t **data, struct app_err *err)
{
    struct customer cu = {0};
    json_t *ev_data = NULL;
    char event_id[37], updated_at[40];
    const char *id = ctx_str(c, "customer_id");
    const char *state = ctx_str(c, "status");
    int status = 500;

    if (customer_begin_locked(c, id, &cu, err) < 0)
        goto out;
    if (strcmp(cu.status, state) == 0) {
        err_set(err, 409, "Customer %s is already %s", cu.customer_id, state);
        goto out;
    }
    if (customers_db_set_status(c->db, id, state, updated_at, err) < 0)
        goto out;
    ev_data = json_pack("{s:s, s:s, s:s}", "customer_id", cu.customer_id,
                        "previous_status", cu.status, "status", state);
    if (customer_event(c, &cu, "customer_status_change", ev_data, event_id,
                       err) < 0 ||
        db_commit(c->db, err) < 0)
        goto out;

    *data =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "customer_id", cu.customer_id,
                  "status", state, "previous_status", cu.status, "updated_at",
                  updated_at, "event_id", event_id);
    status = 200;
out:
    json_decref(ev_data);
    customer_free(&cu);
    return handler_done(c, status, err);
}
