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
#include "../db/outbox_db.h"
#include "../db/tags_db.h"

#include <stdio.h>
#include <string.h>

static int
not_found(const char *customer_id, struct app_err *err)
{
    err_set(err, 404, "Customer %s not found", customer_id);
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
        not_found(customer_id, err);
        return -1;
    }
    return 0;
}

/* Appends the event for `customer` to the outbox. */
static int
append_event(struct ctx *c, const struct customer *customer,
             const char *event_type, json_t *event_data, char event_id[37],
             struct app_err *err)
{
    struct event_new ev = {
        .customer_id = customer->customer_id,
        .consumer_id = customer->consumer_id,
        .event_type = event_type,
        .source_service = c->source_service,
        .request_id = c->req->request_id,
        .data = event_data,
    };
    return ctx_append_event(c, &ev, event_id, err);
}

int
customers_create(struct ctx *c, json_t **data, struct app_err *err)
{
    struct customer cu = {0};
    json_t *ev_data = NULL;
    char event_id[37];
    const char *status = ctx_str(c, "status");
    json_t *tags = json_object_get(c->in, "tags"); /* optional */

    uuid_new(cu.customer_id);
    memcpy(cu.consumer_id, c->caller->consumer_id, sizeof cu.consumer_id);
    cu.name = (char *)ctx_str(c, "name"); /* borrowed; not freed below */
    snprintf(cu.status, sizeof cu.status, "%s", status ? status : "ACTIVE");

    if (db_begin(c->db, err) < 0 || customers_db_insert(c->db, &cu, err) < 0)
        goto fail;
    if (tags != NULL && json_object_size(tags) > 0 &&
        tags_db_insert(c->db, cu.customer_id, tags, err) < 0)
        goto fail;
    ev_data = json_pack("{s:s, s:s, s:s}", "customer_id", cu.customer_id,
                        "name", cu.name, "status", cu.status);
    if (ev_data != NULL && tags != NULL &&
        tags_db_all(c->db, cu.customer_id, &cu.tags, err) == 0)
        json_object_set(ev_data, "tags", cu.tags);
    if (err->status)
        goto fail;
    if (append_event(c, &cu, "customer_creation", ev_data, event_id, err) < 0 ||
        db_commit(c->db, err) < 0)
        goto fail;

    *data = json_pack("{s:s, s:s, s:s, s:s, s:s}", "customer_id",
                      cu.customer_id, "name", cu.name, "status", cu.status,
                      "created_at", cu.created_at, "event_id", event_id);
    json_decref(ev_data);
    json_decref(cu.tags);
    return 201;
fail:
    db_rollback(c->db);
    json_decref(ev_data);
    json_decref(cu.tags);
    return err->status;
}

int
customers_get(struct ctx *c, json_t **data, struct app_err *err)
{
    struct customer cu;
    const char *id = ctx_str(c, "customer_id");
    int status;

    if (customers_db_get(c->db, id, ctx_owner_filter(c), &cu, err) < 0) {
        status = err->status;
        goto out;
    }
    if (!cu.found) {
        status = not_found(id, err);
        goto out;
    }
    *data = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "customer_id",
                      cu.customer_id, "name", cu.name, "status", cu.status,
                      "created_at", cu.created_at, "updated_at", cu.updated_at,
                      "tags", cu.tags);
    status = 200;
out:
    customer_free(&cu);
    return status;
}

int
customers_delete(struct ctx *c, json_t **data, struct app_err *err)
{
    struct customer cu = {0};
    json_t *ev_data = NULL;
    char event_id[37], deleted_at[40];
    const char *id = ctx_str(c, "customer_id");

    if (customer_begin_locked(c, id, &cu, err) < 0)
        goto fail;
    ev_data = json_pack("{s:s, s:s, s:s}", "customer_id", cu.customer_id,
                        "name", cu.name, "status", cu.status);
    if (append_event(c, &cu, "customer_deletion", ev_data, event_id, err) < 0 ||
        customers_db_delete(c->db, id, deleted_at, err) < 0 ||
        db_commit(c->db, err) < 0)
        goto fail;

    *data = json_pack("{s:s, s:s, s:s}", "customer_id", cu.customer_id,
                      "deleted_at", deleted_at, "event_id", event_id);
    json_decref(ev_data);
    customer_free(&cu);
    return 200;
fail:
    db_rollback(c->db);
    json_decref(ev_data);
    customer_free(&cu);
    return err->status;
}

int
customers_change_status(struct ctx *c, json_t **data, struct app_err *err)
{
    struct customer cu = {0};
    json_t *ev_data = NULL;
    char event_id[37], updated_at[40];
    const char *id = ctx_str(c, "customer_id");
    const char *status = ctx_str(c, "status");

    if (customer_begin_locked(c, id, &cu, err) < 0)
        goto fail;
    if (strcmp(cu.status, status) == 0) {
        err_set(err, 409, "Customer %s is already %s", cu.customer_id, status);
        goto fail;
    }
    if (customers_db_set_status(c->db, id, status, updated_at, err) < 0)
        goto fail;
    ev_data = json_pack("{s:s, s:s, s:s}", "customer_id", cu.customer_id,
                        "previous_status", cu.status, "status", status);
    if (append_event(c, &cu, "customer_status_change", ev_data, event_id, err) <
            0 ||
        db_commit(c->db, err) < 0)
        goto fail;

    *data =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "customer_id", cu.customer_id,
                  "status", status, "previous_status", cu.status, "updated_at",
                  updated_at, "event_id", event_id);
    json_decref(ev_data);
    customer_free(&cu);
    return 200;
fail:
    db_rollback(c->db);
    json_decref(ev_data);
    customer_free(&cu);
    return err->status;
}
